"""Sending a job's batches, and finding jobs that stopped moving (issue 9, "Jobs that always end").

Dispatch is a task of its own on the `default` queue: each run sends at most
`PORTAL_DISPATCH_CHUNK_BATCHES` batches of the job's pending images in image order, records the
last image sent after every batch (the cursor) and enqueues the next run, so a request never
sends 8,000 batches and a dispatch that died resumes where it stopped. Each dispatch has a round
number; the sweep starts a new round (cursor back to 0, pending images only) and a task of an
older round stops at once.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal.core import outbox
from portal.predictions import workers
from portal.predictions.models import JobImage, PredictionJob
from portal.predictions.services import (
    INFERENCE_QUEUE,
    JOB_HEADER,
    PREDICT_TASK,
    dispatch_enqueue,
    prediction_job_finish,
)

log = logging.getLogger(__name__)


def prediction_job_dispatch(*, job_id: int, round_: int) -> int:
    """Send the next chunk of the job's pending images; returns the batches sent."""
    job = PredictionJob.objects.select_related("model_version").filter(pk=job_id).first()
    if job is None or job.finished_at is not None or job.dispatches != round_:
        return 0  # finished, deleted, or a newer round took over
    version = job.model_version
    model = {"name": version.name, "path": version.path, "sha256": version.sha256}
    size = settings.PREDICT_BATCH_SIZE
    limit = size * settings.PREDICT_DISPATCH_CHUNK
    rows = list(
        JobImage.objects.filter(
            job=job, state=JobImage.State.PENDING, image_id__gt=job.dispatch_cursor
        )
        .order_by("image_id")
        .values_list("image_id", "image__file", "image__sex", "image__site__slug", "image__uuid")[
            :limit
        ]
    )
    sent = 0
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        payload = {
            "job": job.pk,
            "model": model,
            "attempt": 1,
            "images": [
                {
                    "id": image_id,
                    "path": path,
                    "sex": sex,
                    "site": site,  # a recalibration fitted on one site applies to its images
                    "heatmap": f"heatmaps/{version.name}/{uuid}.png",
                }
                for image_id, path, sex, site, uuid in batch
            ],
        }
        if not outbox.send(
            PREDICT_TASK, args=[payload], queue=INFERENCE_QUEUE, headers={JOB_HEADER: job.pk}
        ):
            return sent  # the broker is down: the cursor stays, and the sweep sends the rest
        sent += 1
        PredictionJob.objects.filter(pk=job.pk, dispatches=round_).update(
            dispatch_cursor=batch[-1][0], batches=F("batches") + 1, progressed_at=timezone.now()
        )
    if len(rows) == limit:
        dispatch_enqueue(job_id=job.pk, round_=round_)
    return sent


def prediction_jobs_sweep(*, now: datetime | None = None) -> dict[int, str]:
    """Re-dispatch the pending images of every unfinished job that made no progress for
    `PORTAL_JOB_STALL_MINUTES` while nothing holds its messages (no worker has one active or
    reserved, no queue has one waiting); fail it after `PORTAL_JOB_MAX_DISPATCHES` rounds.
    Returns what was done per job id."""
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.JOB_STALL_MINUTES)
    stalled = list(
        PredictionJob.objects.filter(finished_at__isnull=True, progressed_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not stalled:
        return {}
    held = workers.jobs_in_flight()
    return {
        job_id: _recover(job_id=job_id, cutoff=cutoff, now=now)
        for job_id in stalled
        if job_id not in held
    }


def _recover(*, job_id: int, cutoff: datetime, now: datetime) -> str:
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().get(pk=job_id)
        if job.finished_at is not None or job.progressed_at >= cutoff:
            return "moving"  # changed since the sweep looked
        pending = JobImage.objects.filter(job=job, state=JobImage.State.PENDING).count()
        if pending == 0:
            prediction_job_finish(job=job, now=now)
            outcome = "finished"
        elif job.dispatches >= settings.JOB_MAX_DISPATCHES:
            minutes = settings.JOB_STALL_MINUTES
            prediction_job_finish(
                job=job,
                now=now,
                reason=(
                    f"no progress for {minutes} minutes after {job.dispatches} dispatches, "
                    f"with no worker holding its batches; {pending} images unanswered "
                    "(run predict again)"
                ),
            )
            outcome = "failed"
        else:
            job.dispatches += 1
            job.dispatch_cursor = 0
            round_ = job.dispatches
            transaction.on_commit(lambda: dispatch_enqueue(job_id=job_id, round_=round_))
            outcome = "redispatched"
        job.progressed_at = now
        job.save()
    log.warning("job %s stalled: %s", job_id, outcome)
    return outcome
