"""Thin Celery tasks of the predictions area (queue `default`)."""

from celery import shared_task

from portal.predictions import services


@shared_task(name=services.STORE_TASK, acks_late=True, reject_on_worker_lost=True)
def store_results(answer: dict) -> None:
    services.prediction_results_store(answer=answer)
