"""Thin Celery tasks of the reports area (queue `default`)."""

from celery import shared_task

from portal.predictions.services import JOB_FINISHED_TASK
from portal.reports import services


@shared_task(name=services.BUILD_TASK, acks_late=True, reject_on_worker_lost=True)
def report_build(report_id: int) -> None:
    services.report_build(report_id=report_id)


@shared_task(name=JOB_FINISHED_TASK, acks_late=True, reject_on_worker_lost=True)
def prediction_job_finished(job_id: int) -> None:
    """Sent by the predictions area when a job ends: reports waiting for it go on."""
    services.reports_resume(job_id=job_id)


@shared_task(name=services.RESEND_TASK, acks_late=True, reject_on_worker_lost=True)
def report_resend() -> None:
    """Celery beat runs this (CELERY_BEAT_SCHEDULE): reports whose build message was lost."""
    services.report_resend()
