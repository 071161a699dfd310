"""Thin Celery tasks of the ingest area (queue `default`)."""

from celery import shared_task

from portal.ingest import services


@shared_task(name=services.PROCESS_TASK, acks_late=True, reject_on_worker_lost=True)
def upload_process(upload_id: int) -> None:
    services.upload_process_staged(upload_id=upload_id)
