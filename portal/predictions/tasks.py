"""Thin Celery tasks of the predictions area (queue `default`)."""

from celery import shared_task

from portal.predictions import dispatch, services


@shared_task(name=services.STORE_TASK, acks_late=True, reject_on_worker_lost=True)
def store_results(answer: dict) -> None:
    services.prediction_results_store(answer=answer)


@shared_task(name=services.DISPATCH_TASK, acks_late=True, reject_on_worker_lost=True)
def dispatch_job(job_id: int, round_: int) -> None:
    dispatch.prediction_job_dispatch(job_id=job_id, round_=round_)


@shared_task(name=services.SWEEP_TASK, acks_late=True, reject_on_worker_lost=True)
def sweep_stalled_jobs() -> None:
    dispatch.prediction_jobs_sweep()
