"""Split-conformal prediction intervals for a predicted age, Mondrian by age group (and site).

Torch-free and Django-free: the portal's calibration service, reports and the bench import it.

Why label-conditional: the goal (issue 19) is coverage per TRUE age group, but at prediction time
only the predicted age and the site are known. Cells by predicted age group give coverage per
predicted group; regression to the mean (the youngest predicted too old, the oldest too young)
then under-covers the edge groups of true age. Instead each cell is a true age group (x site),
holding the signed residuals r = true - predicted of its calibration cases, and a prediction's
interval is the set of ages y that its own cell accepts: y is in it when y lies in a group g and
q_low[g] <= y - predicted <= q_high[g] (label-conditional conformal prediction, Vovk 2012,
"Conditional validity of inductive conformal predictors", sec. 5; the per-label cells are a
Mondrian taxonomy). A case of true group g is inside with probability >= `coverage`, whatever
the other groups do. The set is one piece per group at most; the interval is their hull (only
wider, so the guarantee holds). `taxonomy="predicted"` keeps the simpler cells by predicted
group for comparison (bench/intervals.py prints both).

Signed residual quantiles make the interval asymmetric where the model is biased. Finite-sample
levels: with n residuals sorted, the upper end is the ceil((n + 1)(1 - a/2))-th and the lower the
floor((n + 1) a/2)-th, a = 1 - coverage (Lei et al. 2018, JASA, "Distribution-free predictive
inference for regression", sec. 2.2); when a rank falls outside 1..n that end is unbounded and
the interval runs to 0 or 18 years. JSON has no infinity, so such an end is stored as None.

Site cells: a site gets cells of its own only when every age group has at least `min_cell`
(MIN_CELL = 50) of its calibration cases: at 50 the 90% ends are the 2nd and 49th residuals, so
the achieved coverage of one calibration stays within a few points of the goal; with fewer, one
case moves an end a lot. Other sites (and predictions without a site) use the pooled group
cells. A group cell with too few cases for finite ends at the goal (n < 2 / a - 1, 19 at 90%)
falls back to the residuals of all groups together, flagged `fallback` in the record.
"""

import math
from collections.abc import Sequence

import numpy as np

from inference_worker.ages import (
    AGE_GROUPS,
    AGE_LIMIT_DAYS,
    DAYS_PER_MONTH,
    group_days,
    group_name,
)
from inference_worker.metrics import CONFIDENCE, group_index

MIN_CELL = 50
TAXONOMIES = ("label", "predicted")
METHOD = "split conformal, signed residual quantiles, Mondrian by {cells} ({taxonomy} taxonomy)"


def quantile_ranks(n: int, coverage: float) -> tuple[int | None, int | None]:
    """The 1-based ranks of the lower and upper ends among n sorted residuals; None = unbounded."""
    alpha = 1 - coverage
    # 1e-9: 1 - 0.9 is 0.0999..., and (99 + 1) x 0.05 must be rank 5, not 4.
    low = math.floor((n + 1) * alpha / 2 + 1e-9)
    high = math.ceil((n + 1) * (1 - alpha / 2) - 1e-9)
    return (low if low >= 1 else None), (high if high <= n else None)


def min_finite(coverage: float) -> int:
    """The fewest residuals whose ends are both finite at `coverage` (19 at 0.9)."""
    n = 1
    while None in quantile_ranks(n, coverage):
        n += 1
    return n


def _cell(residuals: np.ndarray, coverage: float) -> dict:
    """One cell: its count and the signed residual (true - predicted) ends in days."""
    ordered = np.sort(residuals)
    low_rank, high_rank = quantile_ranks(len(ordered), coverage)
    return {
        "n": len(ordered),
        "low": None if low_rank is None else float(ordered[low_rank - 1]),
        "high": None if high_rank is None else float(ordered[high_rank - 1]),
        "fallback": None,
    }


def _group_cells(
    residual: np.ndarray, index: np.ndarray, groups, coverage: float, pooled: dict
) -> dict:
    cells = {}
    for i, (low, high) in enumerate(groups):
        cell = _cell(residual[index == i], coverage)
        if cell["n"] < min_finite(coverage):
            cell = {**pooled, "n": cell["n"], "fallback": "pooled"}
        cells[group_name(low, high)] = cell
    return cells


def calibrate(
    true_days: Sequence[float],
    predicted_days: Sequence[float],
    sites: Sequence[str | None] | None,
    *,
    coverage: float = 0.9,
    groups: Sequence[Sequence[float]] = AGE_GROUPS,
    min_cell: int = MIN_CELL,
    taxonomy: str = "label",
) -> dict:
    """A JSON-able calibration record: per cell the residual ends, counts, the goal, the method."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be between 0 and 1, not {coverage!r}")
    if taxonomy not in TAXONOMIES:
        raise ValueError(f"taxonomy must be one of {TAXONOMIES}, not {taxonomy!r}")
    groups = tuple((float(lo), float(hi)) for lo, hi in groups)
    true = np.asarray(true_days, dtype=float)
    pred = np.asarray(predicted_days, dtype=float)
    site = np.asarray([None] * len(true) if sites is None else list(sites), dtype=object)
    if not len(true) == len(pred) == len(site):
        raise ValueError("true ages, predictions and sites must have the same length")
    if len(true) < min_finite(coverage):
        raise ValueError(
            f"{len(true)} calibration cases: at least {min_finite(coverage)} are needed for "
            f"a {coverage:.0%} interval"
        )
    residual = true - pred
    index = group_index(true if taxonomy == "label" else pred, groups)
    pooled = _cell(residual, coverage)
    by_site, small_sites = {}, []
    for name in sorted({s for s in site if s not in (None, "")}):
        mask = site == name
        counts = [int((mask & (index == i)).sum()) for i in range(len(groups))]
        if min(counts) >= min_cell:
            by_site[str(name)] = _group_cells(
                residual[mask], index[mask], groups, coverage, _cell(residual[mask], coverage)
            )
        else:
            small_sites.append(str(name))
    cells = "age group x site" if by_site else "age group"
    return {
        "method": METHOD.format(cells=cells, taxonomy=taxonomy),
        "taxonomy": taxonomy,
        "coverage": coverage,
        "groups": [list(g) for g in groups],
        "min_cell": min_cell,
        "n": len(true),
        "pooled": pooled,
        "cells": _group_cells(residual, index, groups, coverage, pooled),
        "sites": by_site,
        "sites_pooled": small_sites,
    }


def _clip(low: float, high: float) -> tuple[int, int]:
    last = AGE_LIMIT_DAYS - 1
    return max(0, min(last, math.floor(low))), max(0, min(last, math.ceil(high)))


def _ends(cell: dict, predicted: float) -> tuple[float, float]:
    low = -math.inf if cell["low"] is None else cell["low"]
    high = math.inf if cell["high"] is None else cell["high"]
    return predicted + low, predicted + high


def interval(calibration: dict, predicted_days: int, site: str | None) -> tuple[int, int]:
    """The (low, high) interval in whole days, within 0 .. 18 years less a day."""
    cells = calibration["sites"].get(site) if site else None
    cells = cells or calibration["cells"]
    groups = [tuple(g) for g in calibration["groups"]]
    if calibration["taxonomy"] == "predicted":
        index = int(group_index(np.array([float(predicted_days)]), groups)[0])
        cell = cells[group_name(*groups[index])] if index >= 0 else calibration["pooled"]
        return _clip(*_ends(cell, predicted_days))
    pieces = []
    for low, high in groups:
        first, end = group_days(low, high)
        lo, hi = _ends(cells[group_name(low, high)], predicted_days)
        lo, hi = max(lo, first), min(hi, end - 1)
        if lo <= hi:
            pieces.append((lo, hi))
    if not pieces:  # no group accepts any age: far from every cell; the pooled ends instead
        return _clip(*_ends(calibration["pooled"], predicted_days))
    return _clip(min(p[0] for p in pieces), max(p[1] for p in pieces))


def intervals(
    calibration: dict, predicted_days: Sequence[float], sites: Sequence[str | None] | None
) -> np.ndarray:
    """`interval` for many predictions: an (n, 2) array of whole days."""
    sites = [None] * len(predicted_days) if sites is None else list(sites)
    return np.array(
        [interval(calibration, p, s) for p, s in zip(predicted_days, sites, strict=True)],
        dtype=np.int64,
    ).reshape(-1, 2)


def wilson(covered: int, n: int, confidence: float = CONFIDENCE) -> tuple:
    """Wilson score interval of a proportion (Wilson 1927): sound near 0 and 1 and for small n,
    where the normal approximation is not; no scipy needed."""
    if n == 0:
        return None, None
    z = {0.95: 1.959963984540054, 0.9: 1.6448536269514722}.get(confidence)
    if z is None:
        raise ValueError(f"unsupported confidence {confidence!r}")
    p = covered / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _row(inside: np.ndarray, width: np.ndarray, error: np.ndarray) -> dict:
    n = len(inside)
    covered = int(inside.sum())
    low, high = wilson(covered, n)
    return {
        "n": n,
        "covered": covered,
        "coverage": covered / n if n else None,
        "ci_low": low,
        "ci_high": high,
        "median_width_months": float(np.median(width)) / DAYS_PER_MONTH if n else None,
        "mae_months": float(np.mean(error)) / DAYS_PER_MONTH if n else None,
    }


def coverage_table(
    true_days: Sequence[float],
    predicted_days: Sequence[float],
    sites: Sequence[str | None] | None,
    calibration: dict,
    groups: Sequence[Sequence[float]] = AGE_GROUPS,
) -> dict:
    """Achieved coverage overall, per TRUE age group and per site, each with its 95% Wilson
    interval, beside the median interval width and the MAE (months) of the same cases."""
    groups = tuple((float(lo), float(hi)) for lo, hi in groups)
    true = np.asarray(true_days, dtype=float)
    pred = np.asarray(predicted_days, dtype=float)
    site = np.asarray([None] * len(true) if sites is None else list(sites), dtype=object)
    if not len(true) == len(pred) == len(site):
        raise ValueError("true ages, predictions and sites must have the same length")
    bounds = intervals(calibration, pred, site)
    inside = (bounds[:, 0] <= true) & (true <= bounds[:, 1])
    width = (bounds[:, 1] - bounds[:, 0]).astype(float)
    error = np.abs(pred - true)
    index = group_index(true, groups)

    def row(mask: np.ndarray) -> dict:
        return _row(inside[mask], width[mask], error[mask])

    return {
        "goal": calibration["coverage"],
        "confidence": CONFIDENCE,
        "method": calibration["method"],
        "calibrated_by_site": bool(calibration["sites"]),
        "overall": row(np.ones(len(true), dtype=bool)),
        "by_group": {group_name(lo, hi): row(index == i) for i, (lo, hi) in enumerate(groups)},
        "by_site": {
            str(name): row(site == name)
            for name in sorted({s for s in site if s not in (None, "")})
        },
    }
