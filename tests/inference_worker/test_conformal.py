"""Split-conformal intervals (inference_worker/conformal.py): the finite-sample level, coverage
per true age group on synthetic residuals that regress to the mean, and site cells that fall
back to the pooled ones when a site is small."""

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
    cal = conformal.calibrate(true, pred, None)
    cell = cal["cells"]["0-1"]
    assert (cell["n"], cell["fallback"]) == (5, "pooled")
    assert (cell["low"], cell["high"]) == (cal["pooled"]["low"], cal["pooled"]["high"])
    assert cal["cells"]["6-12"]["fallback"] is None


def test_too_few_cases_or_a_bad_goal_are_refused():
    with pytest.raises(ValueError, match="at least 19"):
        conformal.calibrate([1000] * 10, [1000] * 10, None)
    with pytest.raises(ValueError, match="coverage"):
        conformal.calibrate([1000] * 50, [1000] * 50, None, coverage=1.5)


def test_the_interval_covers_each_group_piece_it_accepts():
    """The hull of the per-group pieces: an age accepted by any group's cell is inside."""
    cal = conformal.calibrate(*synthetic(3000, seed=8))
    predicted = 1090  # near the 1-3 / 3-6 boundary (1095)
    low, high = conformal.interval(cal, predicted, None)
    for lo, hi in AGE_GROUPS:
        first, end = group_days(lo, hi)
        cell = cal["cells"][f"{lo:g}-{hi:g}"]
        a, b = max(first, predicted + cell["low"]), min(end - 1, predicted + cell["high"])
        if a <= b:
            assert low <= math.floor(a)
            assert math.ceil(b) <= high
