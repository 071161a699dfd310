"""Split-conformal intervals (inference_worker/conformal.py): the finite-sample level, coverage
per true age group on synthetic residuals that regress to the mean (within 2 points of the goal
in every group, averaged over calibrations), the curves' split and intervals, records stored
before the curves, and site cells that fall back to the pooled ones when a site is small."""

import json
import math

import numpy as np
import pytest

from inference_worker import conformal
from inference_worker.ages import AGE_GROUPS, AGE_LIMIT_DAYS, group_days


def synthetic(n: int, seed: int, sites=("north", "east")):
    """Ages over 0-18 y; predictions pulled towards the middle (regression to the mean) with an
    error that grows with age: the edge groups are where cells by predicted age go wrong."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(0, AGE_LIMIT_DAYS - 1, n).round()
    pred = true + (3000 - true) * 0.08 + rng.normal(0, 40 + 0.05 * true, n)
    site = rng.choice(sites, n)
    return true, np.clip(pred, 0, AGE_LIMIT_DAYS - 1).round(), site


@pytest.mark.parametrize(
    ("n", "coverage", "ranks"),
    [(19, 0.9, (1, 19)), (18, 0.9, (None, None)), (99, 0.9, (5, 95)), (9, 0.8, (1, 9))],
)
def test_the_finite_sample_ranks_are_ceil_n_plus_1_q(n, coverage, ranks):
    assert conformal.quantile_ranks(n, coverage) == ranks
    low, high = ranks
    if high is not None:
        assert high == math.ceil((n + 1) * (1 - (1 - coverage) / 2))


def test_a_cell_interval_holds_its_order_statistics():
    true = np.zeros(99)
    pred = -np.arange(1, 100, dtype=float)  # residuals 1..99
    cal = conformal.calibrate(true, pred, None, groups=[(0, 18)])
    cell = cal["cells"]["0-18"]
    assert (cell["n"], cell["low"], cell["high"]) == (99, 5.0, 95.0)
    json.dumps(cal)  # the record is stored as JSON


def test_coverage_per_true_age_group_meets_the_goal_on_held_out_cases():
    cal = conformal.calibrate(*synthetic(4000, seed=1), coverage=0.9)
    table = conformal.coverage_table(*synthetic(6000, seed=2), cal)
    for group, row in table["by_group"].items():
        assert row["n"] >= 300, group
        assert 0.87 <= row["coverage"] <= 0.95, (group, row)
        assert row["ci_low"] < row["coverage"] < row["ci_high"]
    assert abs(table["overall"]["coverage"] - 0.9) < 0.03


def test_cells_by_predicted_age_under_cover_the_youngest_true_group():
    """Why the default taxonomy is the true group: with predictions regressing to the mean,
    cells by predicted group cover the youngest children less than label-conditional cells."""
    train, test = synthetic(4000, seed=3), synthetic(6000, seed=4)
    label = conformal.coverage_table(*test, conformal.calibrate(*train))
    predicted = conformal.coverage_table(*test, conformal.calibrate(*train, taxonomy="predicted"))
    assert label["by_group"]["0-1"]["coverage"] > predicted["by_group"]["0-1"]["coverage"]
    assert label["by_group"]["0-1"]["coverage"] >= 0.87


def test_intervals_are_whole_days_within_scope_and_hold_the_prediction_when_unbiased():
    cal = conformal.calibrate(*synthetic(2000, seed=5))
    for predicted in (0, 10, 3000, AGE_LIMIT_DAYS - 1):
        low, high = conformal.interval(cal, predicted, "north")
        assert isinstance(low, int)
        assert isinstance(high, int)
        assert 0 <= low <= high <= AGE_LIMIT_DAYS - 1
    low, high = conformal.interval(cal, 3000, None)
    assert low < 3000 < high


def test_a_site_gets_its_own_cells_only_when_every_age_group_has_min_cell_cases():
    true, pred, site = synthetic(3000, seed=6, sites=("north",))
    # A small site with a very different error: it must not get cells of its own.
    small_true = np.array([100.0, 500, 1500, 3000, 5000] * 8)
    small_pred = small_true + 900
    cal = conformal.calibrate(
        np.concatenate([true, small_true]),
        np.concatenate([pred, small_pred]),
        np.concatenate([site, ["tiny"] * len(small_true)]),
        min_cell=50,
    )
    assert set(cal["sites"]) == {"north"}
    assert cal["sites_pooled"] == ["tiny"]
    assert "age group x site" in cal["method"]
    assert conformal.interval(cal, 3000, "tiny") == conformal.interval(cal, 3000, None)
    # With a lower minimum, the same small site gets its own (far wider) cells.
    own = conformal.calibrate(
        np.concatenate([true, small_true]),
        np.concatenate([pred, small_pred]),
        np.concatenate([site, ["tiny"] * len(small_true)]),
        min_cell=8,
    )
    assert "tiny" in own["sites"]
    assert conformal.interval(own, 3900, "tiny") != conformal.interval(own, 3900, None)


def test_a_group_too_small_for_finite_ends_falls_back_to_all_groups():
    rng = np.random.default_rng(7)
    true = np.concatenate([rng.uniform(400, 6000, 500), [100.0] * 5])
    pred = true + rng.normal(0, 60, len(true))
    cal = conformal.calibrate(true, pred, None, scheme="constant")
    cell = cal["cells"]["0-1"]
    assert (cell["n"], cell["fallback"]) == (5, "pooled")
    assert (cell["low"], cell["high"]) == (cal["pooled"]["low"], cal["pooled"]["high"])
    assert cal["cells"]["6-12"]["fallback"] is None
    # The curves: the group's margin is the margin of all groups' scores.
    cal = conformal.calibrate(true, pred, None)
    cell = cal["cells"]["0-1"]
    assert (cal["scheme"], cell["n"], cell["fallback"]) == ("curves", 5, "pooled")
    assert cell["margin"] == cal["pooled"]["margin"]
    assert cal["cells"]["6-12"]["fallback"] is None


def test_too_few_cases_or_a_bad_goal_are_refused():
    with pytest.raises(ValueError, match="at least 19"):
        conformal.calibrate([1000] * 10, [1000] * 10, None)
    with pytest.raises(ValueError, match="coverage"):
        conformal.calibrate([1000] * 50, [1000] * 50, None, coverage=1.5)


def test_the_interval_covers_each_group_piece_it_accepts():
    """The hull of the per-group pieces: an age accepted by any group's cell is inside."""
    cal = conformal.calibrate(*synthetic(3000, seed=8), scheme="constant")
    predicted = 1090  # near the 1-3 / 3-6 boundary (1095)
    low, high = conformal.interval(cal, predicted, None)
    for lo, hi in AGE_GROUPS:
        first, end = group_days(lo, hi)
        cell = cal["cells"][f"{lo:g}-{hi:g}"]
        a, b = max(first, predicted + cell["low"]), min(end - 1, predicted + cell["high"])
        if a <= b:
            assert low <= math.floor(a)
            assert math.ceil(b) <= high


def problem(kind: str, n: int, seed: int):
    """(true, predicted, sites) days of a model's errors without a model, the ages spread evenly
    over the five age groups. "shrunk": predictions pulled hard towards 8 years (a quarter of
    the way) with an error that grows with age; "biased": predictions 150 days young plus a
    skewed (gamma) error, widest in infancy."""
    rng = np.random.default_rng(seed)
    spans = np.array([group_days(lo, hi) for lo, hi in AGE_GROUPS])
    first, end = spans[rng.integers(0, len(spans), n)].T
    true = np.floor(rng.uniform(first, end))
    if kind == "shrunk":
        pred = true + (3000 - true) * 0.25 + rng.normal(0, 40 + 0.08 * true)
    else:
        pred = true - 150 + rng.gamma(2.0, 60 + 200 * np.exp(-true / 800))
    return true, np.clip(pred, 0, AGE_LIMIT_DAYS - 1).round(), None


def mean_coverage(kind: str, calibrations: int, **options) -> dict:
    """Per true age group, the coverage on 40,000 held-out cases averaged over calibrations on
    independent sets of 6,000: what one calibration achieves on average, pinned down to about
    half a point (8,000 test cases and 800 scored calibration cases per group)."""
    test = problem(kind, 40_000, seed=999)
    rows = []
    for seed in range(calibrations):
        record = conformal.calibrate(*problem(kind, 6000, seed), **options)
        table = conformal.coverage_table(*test, record)
        rows.append([row["coverage"] for row in table["by_group"].values()])
    return dict(zip(table["by_group"], np.mean(rows, axis=0), strict=True))


@pytest.mark.parametrize("kind", ["shrunk", "biased"])
def test_every_true_age_group_is_covered_within_2_points_of_the_goal(kind):
    """The issue's goal, 90% +- 2 points in every true age group, on problems where the constant
    cells' hull over-covers: the curves' margins make each group's coverage the goal."""
    achieved = mean_coverage(kind, calibrations=8)
    for group, coverage in achieved.items():
        assert abs(coverage - 0.9) <= 0.02, (kind, group, achieved)
        # The finite-sample guarantee: at least the goal, less the averaging's noise.
        assert coverage >= 0.887, (kind, group, achieved)


def test_the_constant_cells_over_cover_where_the_curves_do_not():
    """Why the curves: with predictions that regress to the mean, the constant cells' pieces
    leave gaps between age groups that the interval's hull fills, 5 points too many."""
    constant = mean_coverage("shrunk", calibrations=2, scheme="constant")
    assert max(constant.values()) > 0.93, constant
    curves = mean_coverage("shrunk", calibrations=2)
    assert max(curves.values()) < max(constant.values()) - 0.02, (curves, constant)


def test_a_curves_interval_is_the_hull_of_the_days_its_cells_accept():
    """Every whole day y whose group's widened curves accept y - predicted is inside, and the
    interval's ends are such days; worked out here from the stored record alone."""
    true, pred, site = synthetic(3000, seed=8)
    cal = conformal.calibrate(true, pred, site)
    assert cal["scheme"] == "curves"
    assert set(cal["sites"]) == {"north", "east"}
    json.dumps(cal)
    days = np.arange(AGE_LIMIT_DAYS)
    for name, curves, cells in (
        (None, cal["curves"], cal["cells"]),
        ("north", cal["site_curves"]["north"], cal["sites"]["north"]),
    ):
        for predicted in (400, 1090, 3000, 6000):
            accepted = []
            for lo, hi in AGE_GROUPS:
                first, end = group_days(lo, hi)
                cell = cells[f"{lo:g}-{hi:g}"]
                y = days[first:end]
                low = np.interp(y, curves["knots"], curves["low"]) - cell["margin"]
                high = np.interp(y, curves["knots"], curves["high"]) + cell["margin"]
                accepted.extend(y[(low <= y - predicted) & (y - predicted <= high)].tolist())
            assert accepted, predicted
            assert conformal.interval(cal, predicted, name) == (min(accepted), max(accepted))
    # No group accepts an age this far from the predictions it was calibrated on: the pooled
    # residual ends of the scored cases instead.
    pooled = cal["pooled"]
    assert conformal.interval(cal, 0, None) == (0, math.ceil(pooled["high"]))
    many = conformal.intervals(cal, [0, 1090, 3000], ["north", "unknown", None])
    assert many.tolist() == [
        list(conformal.interval(cal, 0, "north")),
        list(conformal.interval(cal, 1090, None)),
        list(conformal.interval(cal, 3000, None)),
    ]


def test_the_split_is_reproducible_and_stratified():
    true, pred, site = synthetic(3000, seed=9)
    first = conformal.calibrate(true, pred, site)
    assert first == conformal.calibrate(true, pred, site)
    for group, cell in first["cells"].items():
        assert abs(cell["fit"] - cell["n"] * conformal.FIT_FRACTION) <= 2, group
    assert first["curves"]["n"] == sum(cell["fit"] for cell in first["cells"].values())


def test_the_curves_rise_slower_than_the_age_so_the_accepted_ages_have_no_gaps():
    """A long-tailed error makes the bins' quantiles jumpy; age - end is made nondecreasing, so
    a prediction's accepted ages form one interval, which the hull then adds nothing to."""
    true, pred, _ = problem("biased", 6000, seed=3)
    cal = conformal.calibrate(true, pred, None)
    knots = np.array(cal["curves"]["knots"])
    assert np.all(np.diff(knots) > 0)
    for side in ("low", "high"):
        assert np.all(np.diff(knots - np.array(cal["curves"][side])) >= -1e-9), side
    low, high = conformal._accepted_ends(cal, None)
    days = np.arange(AGE_LIMIT_DAYS)
    for predicted in range(0, AGE_LIMIT_DAYS, 97):
        accepted = np.flatnonzero((low <= days - predicted) & (days - predicted <= high))
        if len(accepted):
            # Gaps only where a group's margin steps at its boundary: none of more than the step.
            gaps = np.diff(accepted)[np.diff(accepted) > 1] - 1
            steps = np.abs(np.diff([cell["margin"] for cell in cal["cells"].values()]))
            assert np.all(gaps <= 2 * steps.max() + 1), (predicted, gaps)


def test_a_record_stored_before_the_curves_reads_as_constant_cells():
    """Records in the predictions table from before the curves have no "scheme": their
    intervals stay what they were (the hull of constant per-group residual ends)."""
    old = {
        "method": "split conformal, signed residual quantiles, Mondrian by age group (label "
        "taxonomy)",
        "taxonomy": "label",
        "coverage": 0.9,
        "groups": [[0, 1], [1, 3], [3, 6], [6, 12], [12, 18]],
        "min_cell": 50,
        "n": 100,
        "pooled": {"n": 100, "low": -100.0, "high": 100.0, "fallback": None},
        "cells": {
            "0-1": {"n": 20, "low": -50.0, "high": 30.0, "fallback": None},
            "1-3": {"n": 20, "low": -60.0, "high": 40.0, "fallback": None},
            "3-6": {"n": 20, "low": -80.0, "high": 60.0, "fallback": None},
            "6-12": {"n": 20, "low": -120.0, "high": 90.0, "fallback": None},
            "12-18": {"n": 20, "low": -200.0, "high": 150.0, "fallback": None},
        },
        "sites": {},
        "sites_pooled": [],
    }
    assert conformal.interval(old, 200, None) == (150, 230)  # 0-1 alone: 200 - 50 .. 200 + 30
    # 0-1 accepts 300 .. 364 (its end), 1-3 accepts 365 (its start) .. 390: the hull.
    assert conformal.interval(old, 350, None) == (300, 390)
    assert conformal.intervals(old, [350], None).tolist() == [[300, 390]]
