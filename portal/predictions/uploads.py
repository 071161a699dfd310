"""A finished upload's prediction job: what the ingest app's `UPLOAD_DONE_TASK` runs (ingest,
lower down, sends it by name once the upload is done and committed; DESIGN.md, "Apps depend one
way"), and the sweep that makes good a send the broker lost.

The intent is the upload itself (DESIGN.md, "Intent before messages"): done, with accepted
images, finished while the active model was registered, and without a job. Both paths lock the
upload before they look, so a late message and the sweep make one job between them.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.ingest.models import Upload
from portal.predictions.models import PredictionJob
from portal.predictions.services import active_model_version, prediction_job_create

log = logging.getLogger(__name__)


def upload_done(*, upload_id: int) -> PredictionJob | None:
    """Queue the images of a done upload for the active model, once: None when the upload is
    not done, accepted nothing, has a job already, or finished while no model was active (the
    same intent as the sweep's, so a message the broker delivers late, after a model was
    registered, does not make a job that a timely one would not have)."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update(no_key=True).filter(pk=upload_id).first()
        if upload is None or upload.status != Upload.Status.DONE or not upload.accepted_count:
            return None
        if PredictionJob.objects.filter(upload=upload).exists():
            return None  # a message sent again, or the sweep was first
        version = active_model_version()
        if version is None or upload.finished_at < version.created_at:
            log.info("upload %s: finished while no model was active, nothing queued", upload.pk)
            return None
        return prediction_job_create(upload=upload, model_version=version)


def uploads_without_job(*, finished_before: datetime | None = None) -> list[int]:
    """Done uploads with accepted images that have no job although they finished after the
    active model was registered, and before `finished_before` (default: RESEND_AFTER_S ago,
    so that a message still on its way is not raced): their `UPLOAD_DONE_TASK` was lost.
    An upload finished while no model was active stays without one, as it always has (a
    lead queues it with `predict` or the jobs API)."""
    version = active_model_version()
    if version is None:
        return []
    cutoff = finished_before or timezone.now() - timedelta(seconds=settings.RESEND_AFTER_S)
    jobs = PredictionJob.objects.filter(upload__isnull=False).values("upload_id")
    waiting = (
        Upload.objects.filter(
            status=Upload.Status.DONE,
            accepted_count__gt=0,
            finished_at__gte=version.created_at,
            finished_at__lt=cutoff,
        )
        .exclude(pk__in=jobs)
        .order_by("pk")
    )
    return list(waiting.values_list("pk", flat=True))


def upload_jobs_recover(*, finished_before: datetime | None = None) -> int:
    """Make the job of every upload `uploads_without_job` finds, as beat's predictions sweep
    does every minute and `run_portal` at start; returns how many were made."""
    made = 0
    for upload_id in uploads_without_job(finished_before=finished_before):
        if upload_done(upload_id=upload_id) is not None:
            log.warning("upload %s: its prediction job was never made; made now", upload_id)
            made += 1
    return made
