"""Site recalibration math: least squares and pool-adjacent-violators, checked against numpy's
and scipy's own implementations on the same data."""

import numpy as np
import pytest
from scipy.optimize import isotonic_regression

from inference_worker import recalibration


def cases(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A model that reads east films 20% young and 200 days late, with noise."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(0, 6500, n)
    predicted = 0.8 * true - 200 + rng.normal(0, 150, n)
    return predicted, true


def test_linear_fit_is_the_least_squares_line_and_cuts_the_error():
    predicted, true = cases()
    step = recalibration.fit("linear", predicted, true)
    slope, intercept = np.polyfit(predicted, true, 1)
    assert step["slope"] == pytest.approx(slope)
    assert step["intercept"] == pytest.approx(intercept)
    after = recalibration.apply(step, predicted)
    assert np.abs(after - true).mean() < 0.5 * np.abs(predicted - true).mean()


def test_isotonic_fit_matches_scipy_at_the_cases_and_is_monotone_between():
    predicted, true = cases(seed=1)
    step = recalibration.fit("isotonic", predicted, true)
    order = np.argsort(predicted)
    reference = isotonic_regression(true[order]).x
    assert recalibration.apply(step, predicted[order]) == pytest.approx(reference.clip(0, None))
    grid = np.linspace(predicted.min() - 500, predicted.max() + 500, 400)
    mapped = recalibration.apply(step, grid)
    assert np.all(np.diff(mapped) >= -1e-9)
    # Flat beyond the fitted range: no extrapolation past the curated cases.
    assert mapped[0] == pytest.approx(reference[0])
    assert mapped[-1] == pytest.approx(reference[-1])


def test_steps_apply_in_order_and_no_step_changes_nothing():
    predicted, true = cases(seed=2)
    first = recalibration.fit("linear", predicted, true)
    once = recalibration.apply(first, predicted)
    second = recalibration.fit("isotonic", once, true)
    assert recalibration.apply([first, second], predicted) == pytest.approx(
        recalibration.apply(second, once)
    )
    assert recalibration.apply([], predicted) is predicted
    assert recalibration.apply(None, predicted) is predicted


def test_ages_never_go_below_zero():
    step = {"method": "linear", "slope": 1.0, "intercept": -500.0}
    assert recalibration.apply(step, np.array([100.0, 900.0])).tolist() == [0.0, 400.0]


@pytest.mark.parametrize(
    ("predicted", "true", "reason"),
    [
        (np.arange(20.0), 100 - np.arange(20.0), "reverse the ranking"),
        (np.full(20, 7.0), np.arange(20.0), "same prediction"),
        (np.arange(5.0), np.arange(5.0), "needs 10"),
    ],
)
def test_fits_that_would_mislead_are_refused(predicted, true, reason):
    with pytest.raises(recalibration.RecalibrationError, match=reason):
        recalibration.fit("linear", predicted, true)


def test_an_unknown_method_is_refused():
    predicted, true = cases()
    with pytest.raises(recalibration.RecalibrationError, match="one of linear, isotonic"):
        recalibration.fit("spline", predicted, true)


def test_a_sites_step_changes_only_that_sites_ages():
    """A version recalibrated for `east` is still the parent for `north`'s films, whichever
    version is active; without the images' sites, a site's step changes nothing."""
    predicted = np.array([1000.0, 2000.0, 3000.0])
    step = {"method": "linear", "slope": 2.0, "intercept": 0.0, "site": "east"}
    everywhere = {"method": "linear", "slope": 1.0, "intercept": 10.0}
    sites = ["east", "north", "east"]
    assert recalibration.apply([step], predicted, sites).tolist() == [2000.0, 2000.0, 6000.0]
    assert recalibration.apply([everywhere, step], predicted, sites).tolist() == [
        2020.0,
        2010.0,
        6020.0,
    ]
    assert recalibration.apply([step], predicted).tolist() == predicted.tolist()
