"""Split-conformal prediction intervals for a predicted age, Mondrian by age group (and site).

Torch-free and Django-free: the portal's calibration service, reports and the bench import it.

Why label-conditional: the goal (issue 19) is coverage per TRUE age group, but at prediction time
only the predicted age and the site are known. Cells by predicted age group give coverage per
predicted group; regression to the mean (the youngest predicted too old, the oldest too young)
then under-covers the edge groups of true age. Instead each cell is a true age group (x site),
and a prediction's interval holds the ages y that y's own cell accepts for the residual
y - predicted (label-conditional conformal prediction, Vovk 2012, "Conditional validity of
inductive conformal predictors", sec. 5; the per-label cells are a Mondrian taxonomy). A case of
true group g is accepted with probability >= `coverage`, whatever the other groups do. The
accepted ages can fall apart into pieces; the interval is their hull (only wider, so the
guarantee holds).

Scheme "curves" (the default). The first version ("constant") gave each cell one pair of
residual ends. With predictions that regress to the mean those ends step up from one group to
the next, so the pieces of neighbouring groups leave a gap at each group boundary; the hull
fills it, and the ages in it are covered although their own cell rejects them: 3-5 points of
coverage too many in most groups (bench/intervals.py). Now the cell ends follow the true age
smoothly: on a random third of each (site, group) stratum, FIT_FRACTION, the residual quantiles
at a/2 and 1 - a/2 (a = 1 - coverage) in bins of about BIN_CASES cases by true age, each bin
within one group, give two curves, read between the bins' median ages by linear interpolation
and made to rise slower than the age (`curves` in the record). On
the other cases a score, how far a residual lies outside the curves at its own true age
(max(low(y) - r, r - high(y)), negative inside), has per cell the conformal quantile, the
ceil((m + 1)(1 - a))-th smallest of its m scores: the cell's `margin`. Age y is accepted when
low(y) - margin <= y - predicted <= high(y) + margin with the margin of y's cell. The curves
are continuous, so only the margins step at group boundaries and the gaps shrink to almost
nothing.

The guarantee that remains, precisely: the curves come from cases the margins never see, so for
cases exchangeable with a cell's scored calibration cases (same site profile and model, the true
age group given), P(accepted | true group g) >= coverage, in finite samples, per cell (Lei et
al. 2018, JASA, sec. 2.2, applied within the cell); the interval holds every accepted age, so its
coverage is at least that. Without ties it is also at most coverage + 1 / (m + 1) plus what the
hull adds at the group boundaries (measured, bench/intervals.py). It says nothing about a
single site, sex or age within a group, nor about a calibration set unlike the cases predicted.
Sets of fewer than MIN_CURVES cases keep the constant cells (the split would leave too few
cases per cell), as do records stored before the curves (no "scheme": read as constant).

Constant cells: with n residuals sorted, the upper end is the ceil((n + 1)(1 - a/2))-th and the
lower the floor((n + 1) a/2)-th; when a rank falls outside 1..n that end is unbounded and the
interval runs to 0 or 18 years. JSON has no infinity, so such an end is stored as None.
`taxonomy="predicted"` keeps the simpler constant cells by predicted group for comparison.

Site cells: a site gets cells (and curves) of its own only when every age group has at least
`min_cell` (MIN_CELL = 50) of its calibration cases: with fewer, one case moves an end a lot.
Other sites (and predictions without a site) use the pooled group cells. A group cell with too
few cases for a finite end (19 residuals at 90%) or margin (9 scores) falls back to all groups
together, flagged `fallback` in the record: such a cell keeps no guarantee of its own.
"""

import functools
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
from inference_worker.metrics import CONFIDENCE, group_index, wilson
from inference_worker.recalibration import pool_adjacent_violators

MIN_CELL = 50
TAXONOMIES = ("label", "predicted")
# How the label cells' ends are shaped: "curves" (the default, see the docstring) or "constant"
# (one pair of residual ends per cell; records made before the curves have no "scheme" and are
# read as constant).
SCHEMES = ("curves", "constant")
FIT_FRACTION = 1 / 3  # of each (site, true age group) stratum: the curves; the rest: the ends
MIN_CURVES = 200  # fewer calibration cases: constant cells (a split would leave too few)
BIN_CASES = 50  # fit cases per knot of the curves
MAX_KNOTS = 24
SPLIT_SEED = 19  # the split is random but reproducible: the same cases give the same record
METHOD = "split conformal, signed residual quantiles, Mondrian by {cells} ({taxonomy} taxonomy)"
METHOD_CURVES = (
    "split conformal, label-conditional: residual-quantile curves over the true age fitted on "
    "{fraction} of the cases, widened per {cells} by the conformal quantile of the other cases' "
    "scores"
)


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


def _split(strata: list[str], fraction: float) -> np.ndarray:
    """The fit cases (True) of a random but reproducible split: `fraction` of each stratum."""
    rng = np.random.default_rng(SPLIT_SEED)
    keys = np.asarray(strata, dtype=object)
    fit = np.zeros(len(keys), dtype=bool)
    for key in sorted(set(strata)):
        members = np.flatnonzero(keys == key)
        fit[rng.permutation(members)[: round(fraction * len(members))]] = True
    return fit


def _curves(true: np.ndarray, residual: np.ndarray, index: np.ndarray, coverage: float) -> dict:
    """Residual quantiles at a/2 and 1 - a/2 in bins of about BIN_CASES cases by true age, each
    bin within one age group (a group's bins never mix in a neighbour's errors), at the bins'
    median ages (knots); read between knots by linear interpolation, flat beyond."""
    alpha = 1 - coverage
    knots: list[float] = []
    low: list[float] = []
    high: list[float] = []
    count = max(1, min(MAX_KNOTS, len(true) // BIN_CASES))
    for group in sorted(set(index.tolist()) - {-1}):
        mine = np.flatnonzero(index == group)
        mine = mine[np.argsort(true[mine], kind="stable")]
        bins = max(1, min(count, len(mine) // BIN_CASES))
        for part in np.array_split(mine, bins):
            ends = np.quantile(residual[part], [alpha / 2, 1 - alpha / 2])
            knots.append(float(np.median(true[part])))
            low.append(float(ends[0]))
            high.append(float(ends[1]))
    order = np.argsort(knots, kind="stable")
    merged: dict[float, tuple[float, float]] = {}
    for i in order:  # tied ages: one knot, the ends of the later bin
        merged[knots[i]] = (low[i], high[i])
    x = np.array(list(merged))
    # Age minus each end must not fall as the age rises (the ends' slope at most 1): then the
    # ages one prediction's cells accept form one interval, with no gap for the hull to fill.
    # A bin's 5% quantile of a long tail is noisy enough to break that; the least-squares
    # nondecreasing fit (pool adjacent violators) of age - end mends it.
    ends = np.array(list(merged.values())).reshape(-1, 2)
    fitted = [x - _nondecreasing(x - ends[:, side]) for side in (0, 1)]
    return {
        "n": len(true),
        "knots": x.tolist(),
        "low": fitted[0].tolist(),
        "high": fitted[1].tolist(),
    }


def _nondecreasing(values: np.ndarray) -> np.ndarray:
    """The least-squares nondecreasing fit of a sequence (pool adjacent violators)."""
    blocks = pool_adjacent_violators(values.tolist())
    return np.repeat([total / n for total, n, _ in blocks], [n for _, n, _ in blocks])


def _curve_ends(curves: dict, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.interp(days, curves["knots"], curves["low"]),
        np.interp(days, curves["knots"], curves["high"]),
    )


def _margin(scores: np.ndarray, coverage: float) -> float | None:
    """The conformal quantile of the scores: the ceil((n + 1) q)-th smallest; None if n is too
    small for a finite one."""
    rank = math.ceil((len(scores) + 1) * coverage - 1e-9)
    return float(np.sort(scores)[rank - 1]) if rank <= len(scores) else None


def _curve_cells(
    true: np.ndarray,
    residual: np.ndarray,
    fit: np.ndarray,
    index: np.ndarray,
    groups,
    coverage: float,
) -> tuple[dict, dict, dict] | None:
    """One taxonomy's curves (from the fit cases), its group cells and pooled cell (from the
    others); None when too few cases are left to score for a finite margin. A cell's `margin`
    widens both curves for the ages of its group; `low` and `high` are the widened residual
    ends at the group's middle day (what `calibrate` prints)."""
    if not (fit & (index >= 0)).any():
        return None
    curves = _curves(true[fit], residual[fit], index[fit], coverage)
    score = ~fit
    low, high = _curve_ends(curves, true[score])
    scores = np.maximum(low - residual[score], residual[score] - high)
    pooled = {**_cell(residual[score], coverage), "margin": _margin(scores, coverage)}
    if pooled["margin"] is None:
        return None
    cells = {}
    for i, (lo, hi) in enumerate(groups):
        mine = index[score] == i
        margin = _margin(scores[mine], coverage)
        fallback = None
        if margin is None:
            margin, fallback = pooled["margin"], "pooled"
        first, end = group_days(lo, hi)
        low_mid, high_mid = _curve_ends(curves, np.array([(first + end - 1) / 2]))
        cells[group_name(lo, hi)] = {
            "n": int((index == i).sum()),
            "fit": int((fit & (index == i)).sum()),
            "margin": margin,
            "low": float(low_mid[0]) - margin,
            "high": float(high_mid[0]) + margin,
            "fallback": fallback,
        }
    return curves, cells, pooled


def calibrate(
    true_days: Sequence[float],
    predicted_days: Sequence[float],
    sites: Sequence[str | None] | None,
    *,
    coverage: float = 0.9,
    groups: Sequence[Sequence[float]] = AGE_GROUPS,
    min_cell: int = MIN_CELL,
    taxonomy: str = "label",
    scheme: str = "curves",
) -> dict:
    """A JSON-able calibration record: per cell the residual ends, counts, the goal, the method."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be between 0 and 1, not {coverage!r}")
    if taxonomy not in TAXONOMIES:
        raise ValueError(f"taxonomy must be one of {TAXONOMIES}, not {taxonomy!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, not {scheme!r}")
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
    if taxonomy == "predicted" or len(true) < MIN_CURVES:
        scheme = "constant"
    named = sorted({s for s in site if s not in (None, "")})
    own = [
        str(name)
        for name in named
        if min(int(((site == name) & (index == i)).sum()) for i in range(len(groups))) >= min_cell
    ]
    record = {
        "taxonomy": taxonomy,
        "scheme": scheme,
        "coverage": coverage,
        "groups": [list(g) for g in groups],
        "min_cell": min_cell,
        "n": len(true),
        "sites_pooled": [str(name) for name in named if str(name) not in own],
    }
    cells = "age group x site" if own else "age group"
    fit = _split([f"{s}|{i}" for s, i in zip(site, index, strict=True)], FIT_FRACTION)
    # None only when too few cases are left to score (not at MIN_CURVES): constant cells then.
    made = None
    if scheme == "curves":
        made = _curve_cells(true, residual, fit, index, groups, coverage)
    if made is None:
        record["scheme"] = "constant"
        pooled = _cell(residual, coverage)
        record["sites"] = {}
        for name in own:
            mask = site == name
            record["sites"][name] = _group_cells(
                residual[mask], index[mask], groups, coverage, _cell(residual[mask], coverage)
            )
        return {
            "method": METHOD.format(cells=cells, taxonomy=taxonomy),
            **record,
            "pooled": pooled,
            "cells": _group_cells(residual, index, groups, coverage, pooled),
        }
    curves, group_cells, pooled = made
    record["sites"], record["site_curves"] = {}, {}
    for name in own:
        mask = site == name
        made = _curve_cells(true[mask], residual[mask], fit[mask], index[mask], groups, coverage)
        if made is None:  # too few of the site's cases left to score: the pooled cells
            record["sites_pooled"] = sorted([*record["sites_pooled"], name])
            continue
        record["site_curves"][name], record["sites"][name], _ = made
    if not record["sites"]:
        cells = "age group"
    return {
        "method": METHOD_CURVES.format(fraction=f"{FIT_FRACTION:.0%}", cells=cells),
        **record,
        "fit_fraction": FIT_FRACTION,
        "split_seed": SPLIT_SEED,
        "curves": curves,
        "pooled": pooled,
        "cells": group_cells,
    }


def _clip(low: float, high: float) -> tuple[int, int]:
    last = AGE_LIMIT_DAYS - 1
    return max(0, min(last, math.floor(low))), max(0, min(last, math.ceil(high)))


def _ends(cell: dict, predicted: float) -> tuple[float, float]:
    low = -math.inf if cell["low"] is None else cell["low"]
    high = math.inf if cell["high"] is None else cell["high"]
    return predicted + low, predicted + high


def _constant_interval(calibration: dict, predicted_days: float, site: str | None):
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


def _accepted_ends(calibration: dict, site: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Per whole day y of 0 .. 18 years the residual ends (true - predicted) that y's cell
    accepts: the curves widened by the margin of y's group; days in no group accept nothing."""
    own = bool(site) and site in calibration["sites"]
    cells = calibration["sites"][site] if own else calibration["cells"]
    curves = calibration["site_curves"][site] if own else calibration["curves"]
    margins = tuple(
        (float(lo), float(hi), float(cells[group_name(lo, hi)]["margin"]))
        for lo, hi in calibration["groups"]
    )
    return _ends_table(tuple(curves["knots"]), tuple(curves["low"]), tuple(curves["high"]), margins)


_DAYS = np.arange(AGE_LIMIT_DAYS, dtype=float)  # every whole day of 0 .. 18 years
_DAYS.flags.writeable = False


@functools.lru_cache(maxsize=32)  # rescoring a version asks for the same record's table often
def _ends_table(knots: tuple, low: tuple, high: tuple, margins: tuple) -> tuple:
    days = _DAYS
    widen = np.full(len(days), np.nan)  # NaN outside every group: never accepted
    for lo, hi, margin in margins:
        first, end = group_days(lo, hi)
        span = slice(first, end)
        widen[span] = np.where(np.isnan(widen[span]), margin, widen[span])
    ends = np.interp(days, knots, low) - widen, np.interp(days, knots, high) + widen
    for array in ends:
        array.flags.writeable = False
    return ends


def _curve_intervals(
    calibration: dict, predicted: np.ndarray, site: str | None, chunk: int = 256
) -> np.ndarray:
    """The hull of the whole days y whose cell accepts y - p, for each prediction p."""
    low, high = _accepted_ends(calibration, site)
    days = _DAYS
    values, inverse = np.unique(predicted, return_inverse=True)
    hulls = np.empty((len(values), 2), dtype=np.int64)
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk, None]
        residual = days[None, :] - part
        accepted = (low[None, :] <= residual) & (residual <= high[None, :])
        first = accepted.argmax(axis=1)
        last = len(days) - 1 - accepted[:, ::-1].argmax(axis=1)
        for row, p in enumerate(part[:, 0]):
            if accepted[row, first[row]]:
                hulls[start + row] = first[row], last[row]
            else:  # no group accepts any age: far from every cell; the pooled ends instead
                hulls[start + row] = _clip(*_ends(calibration["pooled"], p))
    return hulls[inverse.reshape(-1)]


def interval(calibration: dict, predicted_days: int, site: str | None) -> tuple[int, int]:
    """The (low, high) interval in whole days, within 0 .. 18 years less a day."""
    if calibration.get("scheme", "constant") == "constant":
        return _constant_interval(calibration, predicted_days, site)
    low, high = _curve_intervals(calibration, np.array([float(predicted_days)]), site)[0]
    return int(low), int(high)


def intervals(
    calibration: dict, predicted_days: Sequence[float], sites: Sequence[str | None] | None
) -> np.ndarray:
    """`interval` for many predictions: an (n, 2) array of whole days."""
    sites = [None] * len(predicted_days) if sites is None else list(sites)
    if len(sites) != len(predicted_days):
        raise ValueError("predictions and sites must have the same length")
    if calibration.get("scheme", "constant") == "constant":
        return np.array(
            [
                _constant_interval(calibration, p, s)
                for p, s in zip(predicted_days, sites, strict=True)
            ],
            dtype=np.int64,
        ).reshape(-1, 2)
    predicted = np.asarray(predicted_days, dtype=float)
    keys = np.array([s if s and s in calibration["sites"] else "" for s in sites], dtype=object)
    out = np.empty((len(predicted), 2), dtype=np.int64)
    for key in set(keys.tolist()):
        mask = keys == key
        out[mask] = _curve_intervals(calibration, predicted[mask], key or None)
    return out


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
