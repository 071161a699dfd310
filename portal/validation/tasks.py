"""Thin Celery tasks of the validation area (queue `default`)."""

from celery import shared_task

from portal.validation import exports


@shared_task(name=exports.EXPORT_TASK, acks_late=True, reject_on_worker_lost=True)
def export_build(export_id: int) -> None:
    exports.export_run(export_id=export_id)
