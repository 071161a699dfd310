"""Thin Celery tasks of the learning area (queue `default`)."""

from celery import shared_task

from portal.learning import services


@shared_task(name=services.RESULT_TASK, acks_late=True, reject_on_worker_lost=True)
def training_result(answer: dict) -> None:
    """Sent by the inference worker when a training job ends."""
    services.training_result_store(answer=answer)


@shared_task(name=services.RESEND_TASK, acks_late=True, reject_on_worker_lost=True)
def resend_queued() -> None:
    """Celery beat runs this (CELERY_BEAT_SCHEDULE): jobs whose message no worker took."""
    services.training_job_resend()
