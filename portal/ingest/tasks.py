"""Thin Celery tasks of the ingest area (queue `default`)."""

from celery import shared_task

from portal.ingest import services


@shared_task(name=services.PROCESS_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def upload_process(self, upload_id: int) -> None:
    # The broker marks a message it hands back after its worker died: only that one resumes.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    services.upload_process_staged(upload_id=upload_id, redelivered=redelivered)


@shared_task(name=services.RESEND_TASK, acks_late=True, reject_on_worker_lost=True)
def upload_resend() -> None:
    """Celery beat runs this (CELERY_BEAT_SCHEDULE): submitted uploads whose task never came."""
    services.upload_resend()


@shared_task(name=services.EXPIRE_TASK, acks_late=True, reject_on_worker_lost=True)
def upload_expire_stale() -> None:
    """Celery beat runs this (CELERY_BEAT_SCHEDULE); running it twice at once is harmless."""
    services.upload_expire_stale()
