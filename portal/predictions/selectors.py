"""Reads of the predictions area: job progress, image details with their latest prediction."""

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from portal.accounts.selectors import site_scope
from portal.ingest.models import Image
from portal.predictions.blind import hidden_outputs
from portal.predictions.models import Calibration, ModelVersion, Prediction, PredictionJob
from portal.predictions.paths import strip_server_paths


def job_status(*, job: PredictionJob) -> dict:
    processed = job.done_count + job.failed_count
    eta = None
    if job.finished_at is None and processed:
        elapsed = (timezone.now() - job.created_at).total_seconds()
        eta = round((job.total - processed) * elapsed / processed)
    return {
        "id": job.pk,
        "state": job.state,
        "failure_reason": strip_server_paths(job.failure_reason),
        "model": job.model_version.name,
        "site": job.site.slug if job.site else None,
        "upload": job.upload_id,
        "total": job.total,
        "done": job.done_count,
        "failed": job.failed_count,
        "progress": round(processed / job.total, 4) if job.total else 1.0,
        "eta_seconds": eta,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def job_list(
    *, user, upload_id: int | None = None, site: str | None = None
) -> QuerySet[PredictionJob]:
    """Jobs of the user's sites (jobs over every site: superusers only), newest first."""
    jobs = PredictionJob.objects.select_related("model_version", "site").filter(
        site_scope(user=user)
    )
    if upload_id is not None:
        jobs = jobs.filter(upload_id=upload_id)
    if site:
        jobs = jobs.filter(site__slug=site)
    return jobs


def prediction_list(
    *, user, site: str | None = None, model: str | None = None
) -> QuerySet[Prediction]:
    """Predictions of the user's sites; the prediction's own site column keeps the filter on
    one table. Image, site and model come by prefetch, for the page only: joined into the
    list query, SQLite carried them through its sort of every row in scope (0.3 s at 128,000).
    Predictions that blind reading hides from the user are left out (`blind.hidden_outputs`)."""
    predictions = (
        Prediction.objects.prefetch_related("model_version", "image__site")
        .filter(site_scope(user=user))
        .exclude(hidden_outputs(user=user))
    )
    if site:
        predictions = predictions.filter(site__slug=site)
    if model:
        predictions = predictions.filter(model_version__name=model)
    return predictions


def prediction_data(*, prediction: Prediction) -> dict:
    return {
        "id": prediction.pk,
        "image": prediction.image_id,
        "site": prediction.image.site.slug,
        "model": prediction.model_version.name,
        "age_days": prediction.age_days,
        "recorded_age_days": prediction.image.age_days,
        "residual_days": prediction.residual_days,
        "score": prediction.score,
        "interval_low_days": prediction.interval_low_days,
        "interval_high_days": prediction.interval_high_days,
        "error": strip_server_paths(prediction.error),
        "heatmap_url": reverse("api-image-heatmap", args=[prediction.image_id])
        + f"?model={prediction.model_version.name}"
        if prediction.heatmap
        else None,
        # How the viewer reads the map, and whether it shows nothing (null: unknown, or no map).
        "heatmap_scale": prediction.heatmap_scale if prediction.heatmap else None,
        "heatmap_blank": prediction.heatmap_blank if prediction.heatmap else None,
        "timing_ms": prediction.timing_ms,
        "created_at": prediction.created_at,
    }


def latest_prediction(*, image: Image) -> Prediction | None:
    """The active version's prediction if there is one, else the newest successful one."""
    predictions = image.predictions.select_related("model_version").filter(error="")
    return (
        predictions.filter(model_version__is_active=True).first()
        or predictions.order_by("-created_at").first()
    )


def image_data(*, image: Image, latest: Prediction | None = None) -> dict:
    latest = latest or latest_prediction(image=image)
    return {
        "id": image.pk,
        "uuid": str(image.uuid),
        "site": image.site.slug,
        "upload": image.upload_id,
        "sex": image.sex,
        "age_days": image.age_days,
        "age_source": image.age_source,
        "modality": image.modality,
        "view_position": image.view_position,
        "rows": image.rows,
        "columns": image.columns,
        "pixel_spacing_mm": image.pixel_spacing_mm,
        "photometric_interpretation": image.photometric_interpretation,
        "burned_in_annotation": image.burned_in_annotation,
        "dicom_url": reverse("api-image-dicom", args=[image.pk]),
        "wado_rs_url": image.wado_rs_path,
        "prediction": prediction_data(prediction=latest) if latest else None,
    }


def calibration_current(*, version: ModelVersion) -> Calibration | None:
    """A version's current calibration: its latest (the records are append-only)."""
    return version.calibrations.order_by("-id").first()
