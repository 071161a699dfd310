"""Reader agreement for a report: the double reads of the frozen set's films, scored by
`inference_worker.agreement` beside the model's error on the same films.

Only reads made before the version was frozen count (as `report_copied_corrections`), so a
report computed again later says the same. A film counts once: its first second read, paired
with the latest first read before it (the pair the review service settled). A pair where either
reader excluded the film has no age difference: it is left out and counted.
"""

import numpy as np

from inference_worker import agreement
from inference_worker.ages import DAYS_PER_MONTH, group_name
from inference_worker.metrics import group_index
from portal.predictions.models import Prediction
from portal.reports.models import Report
from portal.review.models import Kind, Review


def _pairs(report: Report) -> tuple[list[tuple[int, int, int]], int]:
    """(image id, first read's age, second read's age) per film, and how many pairs were
    left out because a reader excluded the film."""
    version = report.version
    reads = Review.objects.filter(
        image_id__in=version.items.values("image_id"),
        kind__in=[Kind.FIRST_READ, Kind.SECOND_READ],
        created_at__lte=version.frozen_at,
    ).values_list("id", "image_id", "kind", "age_days")
    firsts: dict[int, int | None] = {}
    pairs: dict[int, tuple[int | None, int | None]] = {}
    for _id, image_id, kind, age in reads.order_by("id").iterator():
        if image_id in pairs:
            continue
        if kind == Kind.FIRST_READ:
            firsts[image_id] = age
        elif image_id in firsts:
            pairs[image_id] = (firsts[image_id], age)
    kept = [(i, a, b) for i, (a, b) in pairs.items() if a is not None and b is not None]
    return kept, len(pairs) - len(kept)


def _model_mae(
    true: np.ndarray, predicted: np.ndarray, masks: dict[str, np.ndarray]
) -> dict[str, dict]:
    """The model's MAE (months) and N on each section's films that it predicted."""
    out = {}
    for key, mask in masks.items():
        have = mask & ~np.isnan(predicted)
        n = int(have.sum())
        mae = float(np.mean(np.abs(predicted[have] - true[have]))) / DAYS_PER_MONTH if n else None
        out[key] = {"value": mae, "n": n}
    return out


def report_agreement(*, report: Report) -> dict | None:
    """`inference_worker.agreement.agreement` of the frozen set's double reads (None without
    any), each section with `model_mae_months`: the report's model on the same films, and the
    pairs left out because a reader excluded the film (`excluded_pairs`)."""
    pairs, excluded = _pairs(report)
    if not pairs:
        return None
    ids = [i for i, _, _ in pairs]
    curated = dict(
        report.version.items.filter(image_id__in=ids).values_list("image_id", "curated_age_days")
    )
    predicted = dict(
        Prediction.objects.filter(
            model_version=report.model_version, error="", image_id__in=ids
        ).values_list("image_id", "age_days")
    )
    true = np.array([curated[i] for i in ids], dtype=float)
    groups = tuple(tuple(g) for g in report.age_groups)
    out = agreement.agreement(
        [a for _, a, _ in pairs],
        [b for _, _, b in pairs],
        true,
        groups=groups,
        resamples=report.resamples,
        seed=report.seed,
    )
    index = group_index(true, groups)
    masks = {"overall": np.ones(len(ids), dtype=bool)}
    for i, (low, high) in enumerate(groups):
        masks[group_name(low, high)] = index == i
    model = _model_mae(true, np.array([predicted.get(i, np.nan) for i in ids], float), masks)
    out["model_mae_months"] = model["overall"]
    for key, section in out["by_group"].items():
        section["model_mae_months"] = model[key]
    out["model"] = report.model_version.name
    out["excluded_pairs"] = excluded
    return out
