"""Thin Celery tasks of the ingest area (queue `default`)."""

from celery import shared_task

from portal.ingest import services


@shared_task(name=services.PROCESS_TASK, acks_late=True, reject_on_worker_lost=True)
def upload_process(upload_id: int) -> None:
    services.upload_process_staged(upload_id=upload_id)


@shared_task(name=services.EXPIRE_TASK, acks_late=True, reject_on_worker_lost=True)
def upload_expire_stale() -> None:
    """Celery beat runs this (CELERY_BEAT_SCHEDULE); running it twice at once is harmless."""
    services.upload_expire_stale()
