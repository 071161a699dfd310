"""Reader agreement (`inference_worker.agreement`) against pingouin's ICC and Bland-Altman on the
same data, and its bootstrap: seeded, one set of resampled films for every column."""

import matplotlib
import numpy as np
import pandas as pd
import pingouin
import pytest

from inference_worker.ages import DAYS_PER_MONTH
from inference_worker.agreement import agreement, limits_of_agreement
from inference_worker.metrics import bootstrap_means

matplotlib.use("Agg")
# pingouin 0.7 calls a pandas method that pandas 3.1 deprecates: its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")


def _reads(n: int = 80, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.integers(20, 6500, n).astype(float)
    first = np.round(true + rng.normal(0, 120, n))
    second = np.round(true + rng.normal(45, 200, n))  # the second reader reads older
    return first, second, true


def _pingouin(first: np.ndarray, second: np.ndarray) -> dict:
    a, b = first / DAYS_PER_MONTH, second / DAYS_PER_MONTH
    n = len(a)
    long = pd.DataFrame(
        {
            "film": np.r_[np.arange(n), np.arange(n)],
            "reader": ["first"] * n + ["second"] * n,
            "months": np.r_[a, b],
        }
    )
    table = pingouin.intraclass_corr(long, targets="film", raters="reader", ratings="months")
    # Two-way random, absolute agreement, single rater: "ICC2" before pingouin 0.7.
    icc = table.loc[table["Type"].isin(["ICC(A,1)", "ICC2"]), "ICC"].item()
    axes = pingouin.plot_blandaltman(a, b, agreement=1.96)
    # Its horizontal lines, in the order drawn: zero, bias, upper limit, lower limit.
    _, bias, upper, lower = (float(line.get_ydata()[0]) for line in axes.lines[:4])
    matplotlib.pyplot.close(axes.figure)
    return {"icc": icc, "bias": bias, "lower": lower, "upper": upper}


def test_icc_and_bland_altman_agree_with_pingouin_overall_and_per_group():
    first, second, true = _reads()
    ours = agreement(first, second, true, resamples=0)
    expected = _pingouin(first, second)
    assert ours["n"] == len(first)
    assert ours["icc"]["value"] == pytest.approx(expected["icc"], rel=1e-9)
    for name in ("bias", "lower", "upper"):
        assert ours["bland_altman"][name]["value"] == pytest.approx(expected[name], rel=1e-9)
    assert ours["mae_between_readers_months"]["value"] == pytest.approx(
        np.mean(np.abs(first - second)) / DAYS_PER_MONTH
    )
    # An age group is the same computation over its own films (by the reference age).
    in_group = (true >= 2192) & (true < 4383)  # 6-12 years: ages.group_days(6, 12)
    group = ours["by_group"]["6-12"]
    expected = _pingouin(first[in_group], second[in_group])
    assert group["n"] == int(in_group.sum())
    assert group["icc"]["value"] == pytest.approx(expected["icc"], rel=1e-9)
    assert group["bland_altman"]["upper"]["value"] == pytest.approx(expected["upper"], rel=1e-9)


def test_bootstrap_intervals_are_seeded_and_hold_the_estimate():
    first, second, true = _reads()
    one = agreement(first, second, true, resamples=300, seed=7)
    assert one == agreement(first, second, true, resamples=300, seed=7)
    assert one != agreement(first, second, true, resamples=300, seed=8)
    figures = [one["mae_between_readers_months"], one["icc"], *one["bland_altman"].values()]
    for figure in figures:
        assert figure["ci_low"] < figure["value"] < figure["ci_high"]
    # The second reader reads older: the bias interval lies below zero (first - second).
    assert one["bland_altman"]["bias"]["ci_high"] < 0


def test_every_column_is_resampled_over_the_same_films():
    # x and x^2 are the same 0/1 column: one set of resampled films gives equal means; two
    # different sets would not (the ICC's columns rely on this).
    x = np.random.default_rng(0).integers(0, 2, 50).astype(float)
    masks = [np.ones(50, dtype=bool), np.arange(50) < 20]
    means_x = bootstrap_means(x, masks, 200, 5)
    means_squared = bootstrap_means(x**2 + 0.0, masks, 200, 5)
    for a, b in zip(means_x, means_squared, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(means_x[0], bootstrap_means(x, masks, 200, 6)[0])


def test_one_film_gives_its_difference_but_no_icc_or_limits():
    one = agreement([400], [430], [410], resamples=100)
    assert one["mae_between_readers_months"] == {
        "value": pytest.approx(30 / DAYS_PER_MONTH),
        "ci_low": None,
        "ci_high": None,
    }
    assert one["bland_altman"]["bias"]["value"] == pytest.approx(-30 / DAYS_PER_MONTH)
    assert one["icc"]["value"] is None
    assert one["bland_altman"]["upper"]["value"] is None
    assert list(one["by_group"]) == ["1-3"]  # only the groups that hold a film
    assert agreement([], [], []) is None


def test_the_report_plots_limits_by_the_rule_of_its_figures():
    """The reports' Bland-Altman plot of a model against the truth draws its bias and limits
    with `limits_of_agreement`, the rule of the agreement figures (checked against pingouin)."""
    first, second, true = _reads()
    ours = agreement(first, second, true, resamples=0)["bland_altman"]
    bias, lower, upper = limits_of_agreement((first - second) / DAYS_PER_MONTH)
    assert (bias, lower, upper) == pytest.approx(
        (ours["bias"]["value"], ours["lower"]["value"], ours["upper"]["value"]), rel=1e-9
    )
