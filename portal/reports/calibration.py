"""Calibrating a model version on a frozen validation set (`manage.py calibrate`).

This lives with reports, not predictions, because it reads frozen sets (validation is above
predictions: DESIGN.md, "Apps depend one way"); predictions keeps the record with plain fields.
The cases are the frozen items' curated ages with the model's predictions, as a report uses.
"""

from django.db import transaction

from portal.predictions.calibration import calibration_store
from portal.predictions.models import Calibration, ModelVersion, Prediction, PredictionJob
from portal.predictions.services import PredictionError, prediction_job_create
from portal.reports.services import ReportError, missing_images
from portal.validation.models import ValidationItem, ValidationSetVersion


def calibration_predict_missing(
    *, version: ValidationSetVersion, model: ModelVersion, user=None
) -> PredictionJob | None:
    """Queue a prediction job for the set's items the model has not predicted (None: none)."""
    missing = missing_images(version=version, model=model)
    if not missing:
        return None
    with transaction.atomic():
        return prediction_job_create(model_version=model, image_ids=missing, user=user)


def calibration_create(
    *,
    version: ValidationSetVersion,
    model: ModelVersion,
    coverage: float = 0.9,
    taxonomy: str = "label",
    user=None,
) -> Calibration:
    """Calibrate `model` on every item of the frozen `version`; each item needs a successful
    prediction from the model first (`calibration_predict_missing`)."""
    missing = missing_images(version=version, model=model)
    if missing:
        raise ReportError(
            f"{len(missing)} of {version.item_count} items of "
            f"{version.validation_set.name}:{version.number} have no prediction from "
            f"{model.name} (image ids {', '.join(map(str, missing[:5]))}"
            f"{', ...' if len(missing) > 5 else ''}): predict them first"
        )
    predicted = dict(
        Prediction.objects.filter(
            model_version=model, error="", image_id__in=version.items.values("image_id")
        ).values_list("image_id", "age_days")
    )
    items = (
        ValidationItem.objects.filter(version=version)
        .order_by("image_id")
        .values_list("image_id", "curated_age_days", "site__slug")
    )
    true, pred, sites = [], [], []
    for image_id, age, site in items.iterator(chunk_size=5000):
        true.append(age)
        pred.append(predicted[image_id])
        sites.append(site)
    try:
        return calibration_store(
            version=model,
            true_days=true,
            predicted_days=pred,
            sites=sites,
            coverage=coverage,
            validation_set=version.validation_set.name,
            validation_set_version=version.number,
            manifest_sha256=version.manifest_sha256,
            taxonomy=taxonomy,
            user=user,
        )
    except PredictionError as exc:
        raise ReportError(str(exc)) from exc
