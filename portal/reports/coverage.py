"""The report's `coverage` section: how often the model's calibrated intervals hold the
curated age, per age group and site (`inference_worker.conformal.coverage_table`)."""

from collections.abc import Sequence

from inference_worker import conformal
from portal.predictions.models import ModelVersion
from portal.predictions.selectors import calibration_current
from portal.validation.models import ValidationSetVersion


def coverage_section(
    *,
    model: ModelVersion,
    version: ValidationSetVersion,
    true_days: Sequence[int],
    predicted_days: Sequence[int],
    sites: Sequence[str],
    groups: Sequence[Sequence[float]],
) -> dict | None:
    """Achieved coverage of the model's current calibration on the report's items (per age
    group and site, each with its Wilson interval); None when the model is uncalibrated. When
    the calibration came from this very set version the figures are in-sample, and say so."""
    calibration = calibration_current(version=model)
    if calibration is None:
        return None
    table = conformal.coverage_table(
        true_days, predicted_days, sites, calibration.record, groups=groups
    )
    return {
        **table,
        "calibration": {
            "id": calibration.pk,
            "validation_set": calibration.validation_set,
            "validation_set_version": calibration.validation_set_version,
            "manifest_sha256": calibration.manifest_sha256,
            "created_at": calibration.created_at.isoformat(),
            "in_sample": calibration.manifest_sha256 == version.manifest_sha256,
        },
    }
