"""Thin Celery tasks of the predictions area (queue `default`)."""

from celery import shared_task

from portal.ingest.services import UPLOAD_DONE_TASK
from portal.predictions import dispatch, services, uploads


@shared_task(name=services.STORE_TASK, acks_late=True, reject_on_worker_lost=True)
def store_results(answer: dict) -> None:
    services.prediction_results_store(answer=answer)


@shared_task(name=services.DISPATCH_TASK, acks_late=True, reject_on_worker_lost=True)
def dispatch_job(job_id: int, round_: int) -> None:
    dispatch.prediction_job_dispatch(job_id=job_id, round_=round_)


@shared_task(name=UPLOAD_DONE_TASK, acks_late=True, reject_on_worker_lost=True)
def upload_done(upload_id: int) -> None:
    """Sent by the ingest area when an upload is done: its images are queued, once."""
    uploads.upload_done(upload_id=upload_id)


@shared_task(name=services.SWEEP_TASK, acks_late=True, reject_on_worker_lost=True)
def sweep_stalled_jobs() -> None:
    """Celery beat runs this (CELERY_BEAT_SCHEDULE): stalled jobs, and done uploads whose
    `upload_done` message was lost."""
    dispatch.prediction_jobs_sweep()
    uploads.upload_jobs_recover()
