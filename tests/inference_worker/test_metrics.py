import json
import math

import numpy as np
import pytest
from scipy.stats import bootstrap, spearmanr

from inference_worker.ages import AGE_GROUPS, AGE_GROUPS_DAYS, AGE_LIMIT_DAYS, age_group
from inference_worker.metrics import (
    compute,
    paired_difference,
    paper_table,
    report,
    spearman,
)

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


def test_report_groups_every_day_as_the_age_group_function_does():
    days = np.arange(0, AGE_LIMIT_DAYS + 2)
    rep = report(days, days, ["M"] * len(days))
    counts = {name: m["n"] for name, m in rep["by_group"].items()}
    expected = {}
    for d in days:
        if (name := age_group(int(d))) is not None:
            expected[name] = expected.get(name, 0) + 1
    assert counts == expected
    assert counts == {
        f"{a}-{b}": hi - lo
        for (a, b), (lo, hi) in zip(
            ((0, 1), (1, 3), (3, 6), (6, 12), (12, 18)), AGE_GROUPS_DAYS, strict=True
        )
    }


def test_report_splits_by_age_group_and_sex_with_n():
    rep = report([100, 200, 800, 5000], [130, 170, 800, 5000], ["M", "F", "M", "F"])
    assert rep["overall"]["n"] == 4
    assert rep["by_group"]["0-1"]["n"] == 2
    assert rep["by_group_sex"]["0-1 M"]["mae_months"] == pytest.approx(30 / MONTH)
    assert rep["by_group_sex"]["3-6 F"]["n"] == 0
    assert rep["by_sex"]["F"]["n"] == 2


# A fixture checked by hand: errors +1, -2, +3, -1, +6 months; a 15-day-old (left out of MAPE);
# tied true ages (two 2-year-olds); one item in 6-12; nobody in 3-6 or 12-18.
HAND = {
    "true": [15.0, 6 * MONTH, 730.5, 730.5, 3652.5],
    "predicted": [15.0 + MONTH, 4 * MONTH, 730.5 + 3 * MONTH, 730.5 - MONTH, 3652.5 + 6 * MONTH],
    "sex": ["M", "F", "M", "F", "M"],
    "site": ["A", "A", "B", "B", "B"],
}


def _random_set(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, int(18 * 365.25), n).astype(float)
    # Whole-month predictions give ties in both columns.
    predicted = np.round((true + rng.normal(0, 150, n)) / MONTH) * MONTH
    return {
        "true": true,
        "predicted": predicted,
        "sex": rng.choice(["M", "F"], n),
        "site": rng.choice(["north", "south", "east"], n),
    }


def test_hand_fixture_overall_matches_hand_computed_values():
    m = compute(HAND["true"], HAND["predicted"])
    assert m.n == 5
    assert m.mae_months == pytest.approx(13 / 5)
    assert m.rmse_months == pytest.approx(math.sqrt(51 / 5))
    assert m.bias_months == pytest.approx(7 / 5)
    # MAPE over the four aged a month or more: (2/6 + 3/24 + 1/24 + 6/120) / 4 = 13.75 %
    assert m.mape_percent == pytest.approx(13.75)
    assert (m.mape_n, m.mape_excluded) == (4, 1)
    # Ranks [1, 2, 3.5, 3.5, 5] against [1, 2, 4, 3, 5]: rho = 9.5 / sqrt(9.5 * 10)
    assert m.spearman_rho == pytest.approx(math.sqrt(0.95))
    assert m.spearman_rho == pytest.approx(spearmanr(HAND["true"], HAND["predicted"]).statistic)


def test_report_handles_a_one_item_group_an_empty_group_and_mape_under_one_month():
    rep = report(HAND["true"], HAND["predicted"], HAND["sex"], resamples=200)
    infant = rep["by_group"]["0-1"]
    assert (infant["n"], infant["mape_n"], infant["mape_excluded"]) == (2, 1, 1)
    assert infant["mae_months"] == pytest.approx(1.5)
    assert infant["mape_percent"] == pytest.approx(100 * 2 / 6)
    single = rep["by_group"]["6-12"]
    assert (single["n"], single["mae_months"], single["spearman_rho"]) == (
        1,
        pytest.approx(6),
        None,
    )
    assert (single["mae_ci_low_months"], single["mae_ci_high_months"]) == (None, None)
    empty = rep["by_group"]["3-6"]
    assert empty["n"] == 0
    assert all(v is None for k, v in empty.items() if k not in ("n", "mape_n", "mape_excluded"))
    assert rep["by_sex"]["M"]["mae_months"] == pytest.approx(10 / 3)
    assert rep["by_group_sex"]["1-3 F"]["bias_months"] == pytest.approx(-1)
    assert "by_site" not in rep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_numpy_and_scipy_references(seed):
    data = _random_set(300, seed)
    true, predicted = data["true"], data["predicted"]
    error = (predicted - true) / MONTH
    valid = true >= MONTH
    m = compute(true, predicted)
    assert m.mae_months == pytest.approx(np.mean(np.abs(error)))
    assert m.rmse_months == pytest.approx(np.sqrt(np.mean(error**2)))
    assert m.bias_months == pytest.approx(np.mean(error))
    assert m.mape_percent == pytest.approx(
        100 * np.mean(np.abs(predicted - true)[valid] / true[valid])
    )
    assert m.mape_excluded == int((~valid).sum())
    assert len(np.unique(predicted)) < len(predicted)  # the ties are there
    assert m.spearman_rho == pytest.approx(spearmanr(true, predicted).statistic)


def test_spearman_with_heavy_ties_matches_scipy():
    a = [1, 1, 1, 2, 2, 3, 3, 3, 3, 4]
    b = [5, 3, 3, 3, 1, 1, 2, 2, 9, 9]
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # constant: undefined


def test_report_by_site_is_keyed_by_site_and_matches_compute():
    rep = report(HAND["true"], HAND["predicted"], HAND["sex"], sites=HAND["site"])
    assert list(rep["by_site"]) == ["A", "B"]
    assert rep["by_site"]["B"] == compute(HAND["true"][2:], HAND["predicted"][2:]).as_dict()
    assert "mae_ci_low_months" not in rep["overall"]


def test_report_by_site_group_covers_every_site_and_group_and_matches_compute():
    rep = report(HAND["true"], HAND["predicted"], HAND["sex"], sites=HAND["site"])
    assert list(rep["by_site_group"]) == [
        f"{site} {lo:g}-{hi:g}" for site in ("A", "B") for lo, hi in AGE_GROUPS
    ]
    # Site B: two items aged 730.5 days (1-3) and one of 3652.5 days (6-12).
    assert (
        rep["by_site_group"]["B 1-3"]
        == compute(HAND["true"][2:4], HAND["predicted"][2:4]).as_dict()
    )
    assert rep["by_site_group"]["B 6-12"]["n"] == 1
    assert rep["by_site_group"]["B 0-1"]["n"] == 0
    assert rep["by_site_group"]["A 0-1"]["n"] == 2
    assert "by_site_group" not in report(HAND["true"], HAND["predicted"], HAND["sex"])


def test_bootstrap_intervals_contain_the_point_estimate_in_every_section():
    data = _random_set(400)
    rep = report(data["true"], data["predicted"], data["sex"], sites=data["site"], resamples=500)
    sections = [rep["overall"]] + [
        m for key in ("by_group", "by_sex", "by_group_sex", "by_site") for m in rep[key].values()
    ]
    assert len(sections) == 1 + 5 + 2 + 10 + 3
    for m in sections:
        assert m["mae_ci_low_months"] < m["mae_months"] < m["mae_ci_high_months"]


def test_bootstrap_intervals_are_reproducible_with_a_seed():
    data = _random_set(200)
    args = (data["true"], data["predicted"], data["sex"])
    first = report(*args, resamples=300, seed=7)
    again = report(*args, resamples=300, seed=7)
    other = report(*args, resamples=300, seed=8)
    assert first == again
    assert (first["overall"]["mae_ci_low_months"], first["overall"]["mae_ci_high_months"]) != (
        other["overall"]["mae_ci_low_months"],
        other["overall"]["mae_ci_high_months"],
    )


def test_bootstrap_interval_agrees_with_scipys_percentile_bootstrap():
    data = _random_set(300, seed=3)
    rep = report(data["true"], data["predicted"], data["sex"], resamples=4000)
    abs_error = np.abs(data["predicted"] - data["true"]) / MONTH
    for key, m in [("overall", rep["overall"])] + list(rep["by_sex"].items()):
        mask = np.ones(300, dtype=bool) if key == "overall" else data["sex"] == key
        reference = bootstrap(
            (abs_error[mask],),
            np.mean,
            n_resamples=4000,
            method="percentile",
            random_state=np.random.default_rng(11),
        ).confidence_interval
        width = reference.high - reference.low
        assert m["mae_ci_low_months"] == pytest.approx(reference.low, abs=0.1 * width)
        assert m["mae_ci_high_months"] == pytest.approx(reference.high, abs=0.1 * width)


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    data = _random_set(300)
    paired = paired_difference(
        data["true"], data["predicted"], data["predicted"], data["sex"], sites=data["site"]
    )
    sections = [paired["overall"]] + [
        m for key in ("by_group", "by_sex", "by_group_sex", "by_site") for m in paired[key].values()
    ]
    for m in sections:
        assert m["difference_months"] == 0
        assert (m["ci_low_months"], m["ci_high_months"]) == (0, 0)


def test_paired_difference_of_a_clearly_better_model_excludes_zero():
    data = _random_set(300)
    rng = np.random.default_rng(1)
    worse = data["predicted"] + rng.normal(0, 200, 300)
    paired = paired_difference(data["true"], data["predicted"], worse, data["sex"], seed=3)
    overall = paired["overall"]
    rep_a = report(data["true"], data["predicted"], data["sex"])
    rep_b = report(data["true"], worse, data["sex"])
    assert overall["mae_a_months"] == pytest.approx(rep_a["overall"]["mae_months"])
    assert overall["mae_b_months"] == pytest.approx(rep_b["overall"]["mae_months"])
    assert overall["difference_months"] == pytest.approx(
        overall["mae_a_months"] - overall["mae_b_months"]
    )
    assert overall["ci_low_months"] < overall["difference_months"] < overall["ci_high_months"] < 0
    assert "by_site" not in paired


def test_paired_difference_leaves_small_sections_without_an_interval():
    paired = paired_difference(HAND["true"], HAND["predicted"], HAND["true"], HAND["sex"])
    assert paired["by_group"]["6-12"]["n"] == 1
    assert paired["by_group"]["6-12"]["difference_months"] == pytest.approx(6)
    assert paired["by_group"]["6-12"]["ci_low_months"] is None
    assert paired["by_group"]["3-6"] == {
        "n": 0,
        "mae_a_months": None,
        "mae_b_months": None,
        "difference_months": None,
        "ci_low_months": None,
        "ci_high_months": None,
    }


def test_paper_table_on_a_small_fixture():
    # Internal site A: two 2-year-old boys (errors +1, -3 months), a 10-year-old girl (+12).
    # External site B: a 6-month-old boy (+3), a 15-day-old girl (+1), one of another sex.
    true = [730.5, 730.5, 3652.5, 6 * MONTH, 15.0, 400.0]
    predicted = [730.5 + MONTH, 730.5 - 3 * MONTH, 3652.5 + 12 * MONTH, 9 * MONTH, 15 + MONTH, 0]
    table = paper_table(
        true, predicted, ["M", "M", "F", "M", "F", "O"], ["A", "A", "A", "B", "B", "B"], {"A"}
    )
    assert table["groups"] == ["0-1", "1-3", "3-6", "6-12", "12-18"]
    assert table["published_by_group"] is None
    assert table["left_out_other_sex"] == 1
    internal, external = table["cohorts"]["internal"], table["cohorts"]["external"]
    assert (internal["sites"], external["sites"]) == (["A"], ["B"])
    boys = internal["M"]["by_group"]["1-3"]
    assert (boys["n"], boys["mae_months"]) == (2, pytest.approx(2))
    assert boys["mape_percent"] == pytest.approx(100 * (1 / 24 + 3 / 24) / 2)
    assert internal["M"]["by_group"]["0-1"]["n"] == 0
    assert internal["M"]["overall"]["published_mae_months"] == 5.86
    assert internal["M"]["overall"]["difference_from_published_months"] == pytest.approx(2 - 5.86)
    assert internal["F"]["by_group"]["6-12"]["mape_percent"] == pytest.approx(10)
    assert external["M"]["by_group"]["0-1"]["mape_percent"] == pytest.approx(50)
    newborn = external["F"]["overall"]
    assert (newborn["n"], newborn["mae_months"], newborn["mape_percent"]) == (
        1,
        pytest.approx(1),
        None,
    )
    assert (newborn["mape_n"], newborn["mape_excluded"], newborn["published_mae_months"]) == (
        0,
        1,
        7.29,
    )
    assert json.loads(json.dumps(table)) == table
