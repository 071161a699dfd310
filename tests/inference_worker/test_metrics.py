import math

import pytest

from inference_worker.metrics import age_group, compute, report, spearman

MONTH = 30.4375


def test_metrics_against_hand_computed_values():
    true = [365.25, 730.5, 15.0]
    predicted = [365.25 + MONTH, 730.5 - 2 * MONTH, 15.0 + MONTH]  # errors +1, -2, +1 months
    m = compute(true, predicted)
    assert m.n == 3
    assert m.mae_months == pytest.approx(4 / 3)
    assert m.rmse_months == pytest.approx(math.sqrt(2))
    assert m.bias_months == pytest.approx(0)
    # MAPE leaves out the 15-day-old: (1/12 + 2/24) / 2 = 8.33 %
    assert m.mape_percent == pytest.approx(100 / 12)
    assert (m.mape_n, m.mape_excluded) == (2, 1)
    assert m.spearman_rho == pytest.approx(1.0)


def test_spearman_averages_tied_ranks():
    # ranks [1, 2.5, 2.5, 4] against [1, 2, 3, 4]: rho = 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_age_groups_are_half_open_years():
    assert [age_group(d) for d in (0, 364, 365.25, 1095.75, 6574)] == [
        "0-1",
        "0-1",
        "1-3",
        "3-6",
        "12-18",
    ]


def test_report_splits_by_age_group_and_sex_with_n():
    rep = report([100, 200, 800, 5000], [130, 170, 800, 5000], ["M", "F", "M", "F"])
    assert rep["overall"]["n"] == 4
    assert rep["by_group"]["0-1"]["n"] == 2
    assert rep["by_group_sex"]["0-1 M"]["mae_months"] == pytest.approx(30 / MONTH)
    assert rep["by_group_sex"]["3-6 F"]["n"] == 0
    assert rep["by_sex"]["F"]["n"] == 2
