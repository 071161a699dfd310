"""Thin Celery tasks of the validation area (queue `default`)."""

from celery import shared_task

from portal.validation import exports


@shared_task(name=exports.EXPORT_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def export_build(self, export_id: int) -> None:
    # The broker marks a message it hands back after its worker died: only that one rebuilds
    # a running export; one sent again while the first runs does nothing.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    exports.export_run(export_id=export_id, redelivered=redelivered)


@shared_task(name=exports.RESEND_TASK, acks_late=True, reject_on_worker_lost=True)
def export_resend() -> None:
    """Celery beat runs this (CELERY_BEAT_SCHEDULE): queued exports whose task never came."""
    exports.export_resend()
