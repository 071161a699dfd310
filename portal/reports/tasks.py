"""Thin Celery tasks of the reports area (queue `default`)."""

from celery import shared_task

from portal.reports import services


@shared_task(name=services.BUILD_TASK, acks_late=True, reject_on_worker_lost=True)
def report_build(report_id: int) -> None:
    services.report_build(report_id=report_id)
