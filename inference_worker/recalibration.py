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


def _fit_isotonic(predicted: np.ndarray, true: np.ndarray) -> dict:
    order = np.argsort(predicted, kind="stable")
    x, y = predicted[order], true[order]
    # Pool adjacent violators: blocks of (sum, count, first x, last x), merged while decreasing.
    sums: list[float] = []
    counts: list[int] = []
    lows: list[float] = []
    highs: list[float] = []
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        sums.append(yi)
        counts.append(1)
        lows.append(xi)
        highs.append(xi)
        while len(sums) > 1 and sums[-2] / counts[-2] >= sums[-1] / counts[-1]:
            last_sum, last_count, last_high = sums.pop(), counts.pop(), highs.pop()
            lows.pop()
            sums[-1] += last_sum
            counts[-1] += last_count
            highs[-1] = last_high
    knots_x, knots_y = [], []
    for total, n, low, high in zip(sums, counts, lows, highs, strict=True):
        level = total / n
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
