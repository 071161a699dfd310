"""Site recalibration of a model's output: a monotone map from predicted to curated age in days,
fitted on a site's curated cases and kept in the model card (`"recalibration"`, a list of steps
applied in order, so that a recalibrated version can be recalibrated again).

Torch-free (numpy alone): the inference worker applies it to the predictions of the version
(`predict.Predictor`), a site's step to that site's images only; the fine-tune job fits it
(`finetune`), and the portal may read it.

- linear: least squares `true = slope x predicted + intercept`; a fit whose slope is not positive
  (too few cases, or a model that ranks nothing) is refused, since it would reverse the ranking.
- isotonic: pool-adjacent-violators on the cases sorted by prediction (a step function through
  the block means), interpolated between blocks and flat beyond the fitted range.
"""

from collections.abc import Sequence

import numpy as np

METHODS = ("linear", "isotonic")
# The cheap path learns from few cases by design: the "at most 200 curated cases".
MAX_CASES = 200
MIN_CASES = 10


class RecalibrationError(ValueError):
    """Cases that cannot support a recalibration, with the reason."""


def fit(method: str, predicted_days: Sequence[float], true_days: Sequence[float]) -> dict:
    """One recalibration step (JSON-ready) from paired predicted and curated ages in days."""
    predicted = np.asarray(predicted_days, dtype=float)
    true = np.asarray(true_days, dtype=float)
    if predicted.shape != true.shape or predicted.ndim != 1:
        raise RecalibrationError("predicted and curated ages must pair up one to one")
    if len(predicted) < MIN_CASES:
        raise RecalibrationError(f"{len(predicted)} cases: a recalibration needs {MIN_CASES}")
    if method == "linear":
        return _fit_linear(predicted, true)
    if method == "isotonic":
        return _fit_isotonic(predicted, true)
    raise RecalibrationError(f"method {method!r}: one of {', '.join(METHODS)}")


def _fit_linear(predicted: np.ndarray, true: np.ndarray) -> dict:
    spread = predicted - predicted.mean()
    variance = float(spread @ spread)
    if variance <= 0:
        raise RecalibrationError("every case has the same prediction: nothing to fit")
    slope = float(spread @ (true - true.mean())) / variance
    if slope <= 0:
        raise RecalibrationError(f"the fitted slope is {slope:.3f}: it would reverse the ranking")
    intercept = float(true.mean() - slope * predicted.mean())
    return {"method": "linear", "slope": slope, "intercept": intercept, "cases": len(predicted)}


def pool_adjacent_violators(values: Sequence[float]) -> list[tuple[float, int, int]]:
    """The least-squares nondecreasing fit of a sequence, as blocks (sum, count, first index):
    adjacent values are pooled while a block's mean is not above the one before (Ayer et al.
    1955). Isotonic recalibration and the interval curves' slope (`conformal`) both use it."""
    blocks: list[list] = []
    for i, value in enumerate(values):
        blocks.append([float(value), 1, i])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            total, count, _ = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    return [(total, count, first) for total, count, first in blocks]


def _fit_isotonic(predicted: np.ndarray, true: np.ndarray) -> dict:
    order = np.argsort(predicted, kind="stable")
    x, y = predicted[order].tolist(), true[order].tolist()
    knots_x, knots_y = [], []
    for total, n, first in pool_adjacent_violators(y):
        level, low, high = total / n, x[first], x[first + n - 1]
        knots_x.append(low)
        knots_y.append(level)
        if high > low:
            knots_x.append(high)
            knots_y.append(level)
    return {"method": "isotonic", "x": knots_x, "y": knots_y, "cases": len(predicted)}


def apply(
    steps: Sequence[dict] | dict | None,
    predicted_days: np.ndarray,
    sites: Sequence[str | None] | None = None,
) -> np.ndarray:
    """The recalibrated ages (days, never below 0); no steps: the ages unchanged. A step fitted
    for one site (its `"site"`) changes only the ages of that site's images (`sites`, one per
    age): activating a version recalibrated for `east` leaves `north`'s predictions as the
    parent made them. Without `sites`, only the steps for every site apply."""
    if not steps:
        return predicted_days
    days = np.asarray(predicted_days, dtype=float)
    where = np.asarray(list(sites), dtype=object) if sites is not None else None
    for step in [steps] if isinstance(steps, dict) else steps:
        if step["method"] == "linear":
            mapped = step["slope"] * days + step["intercept"]
        elif step["method"] == "isotonic":
            mapped = np.interp(days, step["x"], step["y"])
        else:
            raise RecalibrationError(f"unknown recalibration method {step['method']!r}")
        site = step.get("site")
        if site is None:
            days = mapped
        elif where is not None:
            days = np.where(where == site, mapped, days)
    return days.clip(0, None)
