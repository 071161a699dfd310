"""Model versions, prediction jobs and storing what the inference workers send back.

The portal never runs the model: it sends batches by task name to the `inference` queue and the
workers answer by task name on the `default` queue (DESIGN.md, How data flows, step 2).
"""

import json
import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from inference_worker import card as checkpoint_card
from inference_worker.metrics import DAYS_PER_MONTH, age_group
from portal.celery import app as celery_app
from portal.ingest.models import Image, Site, Upload
from portal.predictions.models import ModelVersion, Prediction, PredictionJob

log = logging.getLogger(__name__)
PREDICT_TASK = "inference_worker.predict_batch"
STORE_TASK = "portal.predictions.store_results"
INFERENCE_QUEUE = "inference"
CARD, WEIGHTS = checkpoint_card.CARD, checkpoint_card.WEIGHTS


class PredictionError(Exception):
    """A request the predictions area refuses, with a reason for the user."""


def _read_verified_card(folder: Path) -> dict:
    """The same verification the inference workers apply, plus what registering needs."""
    try:
        card = checkpoint_card.verify(folder)
    except (checkpoint_card.CheckpointError, OSError) as exc:
        raise PredictionError(f"{exc}; refusing the checkpoint") from exc
    for key in ("architecture", "input_size", "normalisation"):
        if key not in card:
            raise PredictionError(f"{folder / CARD}: no {key!r}")
    return card


def model_version_register(
    *, folder: Path, name: str | None = None, activate: bool = False
) -> ModelVersion:
    """Verify a checkpoint folder and copy it into storage (`models/<name>/`)."""
    card = _read_verified_card(folder)
    name = slugify(name or card.get("name") or folder.name)
    existing = ModelVersion.objects.filter(name=name).first()
    if existing and existing.sha256 != card["sha256"]:
        raise PredictionError(f"model version {name!r} exists with other weights; pick a new name")
    if existing is None:
        relative = f"models/{name}"
        target = settings.DATA_DIR / relative
        staging = target.with_name(f".{name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(folder / card.get("weights", WEIGHTS), staging / WEIGHTS)
        (staging / CARD).write_text(json.dumps({**card, "weights": WEIGHTS}, indent=2))
        _read_verified_card(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        existing = ModelVersion.objects.create(
            name=name,
            architecture=card["architecture"],
            input_size=card["input_size"],
            path=relative,
            sha256=card["sha256"],
            card=card,
        )
    if activate:
        model_version_activate(version=existing)
    return existing


def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    with transaction.atomic():
        ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.refresh_from_db()
    return version


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def prediction_job_create(
    *,
    model_version: ModelVersion | None = None,
    site: Site | None = None,
    upload: Upload | None = None,
    image_ids: list[int] | None = None,
    user=None,
) -> PredictionJob:
    """Queue every image of the site, upload or list that has no prediction from this version
    yet."""
    version = model_version or active_model_version()
    if version is None:
        raise PredictionError("no active model version: register one with model_register")
    images: QuerySet[Image] = Image.objects.all()
    if image_ids is not None:
        images = images.filter(pk__in=image_ids)
    if upload is not None:
        images = images.filter(upload=upload)
    elif site is not None:
        images = images.filter(site=site)
    ids = list(
        images.exclude(predictions__model_version=version)
        .order_by("id")
        .values_list("id", flat=True)
    )
    now = timezone.now()
    job = PredictionJob.objects.create(
        model_version=version,
        site=site or (upload.site if upload else None),
        upload=upload,
        created_by=user,
        total=len(ids),
        state=PredictionJob.State.QUEUED if ids else PredictionJob.State.DONE,
        finished_at=None if ids else now,
    )
    if ids:
        transaction.on_commit(lambda: _dispatch(job.pk, ids))
    return job


def prediction_job_create_for_upload(*, upload: Upload) -> PredictionJob | None:
    """After an upload: queue its new images for the active model, if there is one."""
    if active_model_version() is None:
        log.info("upload %s: no active model version, nothing queued", upload.pk)
        return None
    return prediction_job_create(upload=upload)


def _dispatch(job_id: int, image_ids: list[int]) -> None:
    job = PredictionJob.objects.select_related("model_version").get(pk=job_id)
    version = job.model_version
    size = settings.PREDICT_BATCH_SIZE
    model = {"name": version.name, "path": version.path, "sha256": version.sha256}
    batches = 0
    try:
        for start in range(0, len(image_ids), size):
            rows = Image.objects.filter(pk__in=image_ids[start : start + size]).order_by("id")
            payload = {
                "job": job.pk,
                "model": model,
                "attempt": 1,
                "images": [
                    {
                        "id": img.pk,
                        "path": img.file,
                        "sex": img.sex,
                        "heatmap": f"heatmaps/{version.name}/{img.uuid}.png",
                    }
                    for img in rows
                ],
            }
            celery_app.send_task(PREDICT_TASK, args=[payload], queue=INFERENCE_QUEUE)
            batches += 1
    except Exception as exc:  # the broker is down: say so on the job
        log.exception("job %s: could not queue batch %s", job_id, batches + 1)
        PredictionJob.objects.filter(pk=job_id).update(
            state=PredictionJob.State.FAILED,
            batches=batches,
            finished_at=timezone.now(),
            failure_reason=f"could not queue the work ({type(exc).__name__}); run predict again",
        )
        return
    PredictionJob.objects.filter(pk=job_id).update(batches=batches)


def outlier_score(*, card: dict, predicted_days: int, recorded_days: int, sex: str) -> float:
    """|residual| over the model's expected error for the predicted age's group and the sex
    (the card's `expected_error_months["<group> <sex>"]`, else its `"overall"`)."""
    expected = card.get("expected_error_months") or {}
    group = age_group(predicted_days)
    months = expected.get(f"{group} {sex}") if group else None
    months = months or expected.get("overall") or 1.0
    return abs(predicted_days - recorded_days) / DAYS_PER_MONTH / float(months)


def prediction_results_store(*, answer: dict) -> PredictionJob | None:
    """Store a worker's answer: one prediction per image and version, however often the same
    answer arrives; the job's counters move only for images that are new to it."""
    version = ModelVersion.objects.get(name=answer["model"])
    job_id = answer.get("job")
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().filter(pk=job_id).first()
        done = failed = 0
        images = {
            img.pk: img
            for img in Image.objects.filter(pk__in=[r["image"] for r in answer["results"]]).only(
                "pk", "site_id", "age_days", "sex"
            )
        }
        for result in answer["results"]:
            image = images.get(result["image"])
            if image is None:
                continue  # deleted meanwhile
            age = result.get("age_days")
            prediction, created = Prediction.objects.get_or_create(
                image_id=result["image"],
                model_version=version,
                defaults={
                    "job": job,
                    "site_id": image.site_id,
                    "age_days": age,
                    "residual_days": None if age is None else age - image.age_days,
                    "score": None
                    if age is None
                    else outlier_score(
                        card=version.card,
                        predicted_days=age,
                        recorded_days=image.age_days,
                        sex=image.sex,
                    ),
                    "heatmap": result.get("heatmap") or "",
                    "heatmap_sha256": (result.get("heatmap_sha256") or "")[:64],
                    "error": result.get("error", "")[:2000],
                    "timing_ms": result.get("ms") or {},
                    "worker": answer.get("worker", "")[:255],
                },
            )
            if job is not None and (created or prediction.job_id != job.pk):
                done += prediction.succeeded
                failed += not prediction.succeeded
        if job is None:
            return None
        job.done_count += done
        job.failed_count += failed
        now = timezone.now()
        if job.state == PredictionJob.State.QUEUED:
            job.state, job.started_at = PredictionJob.State.RUNNING, now
        if job.done_count + job.failed_count >= job.total and job.finished_at is None:
            finished_all_failed = job.done_count == 0 and job.total > 0
            job.state = (
                PredictionJob.State.FAILED if finished_all_failed else PredictionJob.State.DONE
            )
            job.failure_reason = "every image failed" if finished_all_failed else ""
            job.finished_at = now
        job.save()
    return job
