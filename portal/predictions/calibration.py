"""Storing a model version's calibration and bringing its predictions in step with it.

The conformal maths is `inference_worker.conformal` (torch-free, shared with the bench); which
frozen set the cases come from is the validation area's business (above this one: it calls
`calibration_store` with the set's name, version and manifest checksum as plain values).
"""

from collections.abc import Sequence

from django.db import transaction

from inference_worker import conformal
from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.ingest.models import Site
from portal.predictions.models import Calibration, ModelVersion, Prediction
from portal.predictions.services import PredictionError, outlier_score, prediction_interval
from portal.predictions.triage import triage_rescore

# Predictions rewritten per bulk update when a calibration is stored.
RESCORE_CHUNK = 2000


def calibration_store(
    *,
    version: ModelVersion,
    true_days: Sequence[int],
    predicted_days: Sequence[int],
    sites: Sequence[str | None],
    coverage: float,
    validation_set: str,
    validation_set_version: int,
    manifest_sha256: str,
    taxonomy: str = "label",
    user=None,
) -> Calibration:
    """Calibrate `version` on the given cases, store the record (append-only: the newest is the
    current one), audit it, and rewrite the intervals and scores of the version's predictions."""
    try:
        record = conformal.calibrate(
            true_days, predicted_days, sites, coverage=coverage, taxonomy=taxonomy
        )
    except ValueError as exc:
        raise PredictionError(str(exc)) from exc
    with transaction.atomic():
        calibration = Calibration.objects.create(
            model_version=version,
            validation_set=validation_set,
            validation_set_version=validation_set_version,
            manifest_sha256=manifest_sha256,
            coverage=coverage,
            record=record,
            created_by=user,
        )
        audit_record(
            actor=user,
            action=AuditAction.MODEL_CALIBRATE,
            target=version.name,
            after={
                "calibration": calibration.pk,
                "validation_set": f"{validation_set}:{validation_set_version}",
                "manifest_sha256": manifest_sha256,
                "coverage": coverage,
                "n": record["n"],
                "method": record["method"],
            },
        )
        rescored = predictions_rescore(version=version, calibration=record)
        # The queue's score is triage's (residual ratio, the patient's other films, dates): it
        # reads the intervals just written.
        triage_rescore(version=version)
    calibration.rescored = rescored
    return calibration


def predictions_rescore(*, version: ModelVersion, calibration: dict | None) -> int:
    """Rewrite every successful prediction's interval and score of `version` (the score, which
    the queue orders by, changes only under the interval rule). Returns how many were written."""
    slugs = dict(Site.objects.values_list("pk", "slug"))
    predictions = (
        Prediction.objects.filter(model_version=version, error="", age_days__isnull=False)
        .select_related("image")
        .only("pk", "age_days", "site_id", "image__age_days", "image__sex")
        .order_by("pk")
    )
    changed, count = [], 0
    for prediction in predictions.iterator(chunk_size=RESCORE_CHUNK):
        interval = prediction_interval(
            calibration=calibration,
            predicted_days=prediction.age_days,
            site=slugs.get(prediction.site_id),
        )
        prediction.interval_low_days = interval[0] if interval else None
        prediction.interval_high_days = interval[1] if interval else None
        prediction.score = outlier_score(
            card=version.card,
            predicted_days=prediction.age_days,
            recorded_days=prediction.image.age_days,
            sex=prediction.image.sex,
            interval=interval,
        )
        changed.append(prediction)
        if len(changed) >= RESCORE_CHUNK:
            count += _write(changed)
    return count + _write(changed)


def _write(predictions: list[Prediction]) -> int:
    Prediction.objects.bulk_update(
        predictions, ["interval_low_days", "interval_high_days", "score"]
    )
    written = len(predictions)
    predictions.clear()
    return written
