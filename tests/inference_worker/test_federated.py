"""Federated pooling (`inference_worker.federated`): pooled cells equal the figures over every
site's items, and the heterogeneity equals statsmodels' DerSimonian-Laird meta-analysis."""

import numpy as np
import pytest
from statsmodels.stats.meta_analysis import combine_effects

from inference_worker import metrics
from inference_worker.federated import heterogeneity, pool, site_cells


def _site(n: int, spread: float, shift: float, seed: int):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 6500, n).astype(float)
    return true, true + rng.normal(shift, spread, n), rng.choice(["M", "F"], n)


def test_pooled_cells_equal_the_figures_over_all_sites_items():
    sites = [_site(120, 150, 0, 1), _site(60, 300, 40, 2), _site(90, 200, -30, 3)]
    shares = [site_cells(t, p, s) for t, p, s in sites]
    pooled = pool(shares)["pooled"]
    true, pred, sex = (np.concatenate(parts) for parts in zip(*sites, strict=True))
    everything = metrics.report(true, pred, sex)
    error = np.abs(pred - true) / metrics.DAYS_PER_MONTH
    overall = pooled["overall"]
    assert overall["n"] == 270
    assert overall["sites"] == 3
    for name in ("mae_months", "rmse_months", "bias_months", "mape_percent"):
        assert overall[name] == pytest.approx(everything["overall"][name], rel=1e-9)
    assert overall["abs_error_sd_months"] == pytest.approx(np.std(error, ddof=1), rel=1e-9)
    cell = pooled["by_group_sex"]["3-6 F"]
    assert cell["mae_months"] == pytest.approx(everything["by_group_sex"]["3-6 F"]["mae_months"])
    assert cell["n"] == everything["by_group_sex"]["3-6 F"]["n"]


def test_heterogeneity_agrees_with_statsmodels_dersimonian_laird():
    sites = [_site(120, 150, 0, 1), _site(60, 300, 40, 2), _site(90, 200, -30, 3)]
    shares = [site_cells(t, p, s) for t, p, s in sites]
    spread = pool(shares)["heterogeneity"]["overall"]
    maes = [s["overall"]["mae_months"] for s in shares]
    ses = [s["overall"]["abs_error_sd_months"] / np.sqrt(s["overall"]["n"]) for s in shares]
    reference = combine_effects(np.array(maes), np.array(ses) ** 2, method_re="dl")
    assert spread["sites"] == 3
    assert spread["df"] == 2
    assert spread["q"] == pytest.approx(reference.q, rel=1e-9)
    assert spread["i2_percent"] == pytest.approx(100 * reference.i2, rel=1e-9)
    assert spread["tau2"] == pytest.approx(reference.tau2, rel=1e-9)
    assert spread["random_mae_months"] == pytest.approx(reference.mean_effect_re, rel=1e-9)
    assert spread["random_mae_months"] - spread["random_ci_low_months"] == pytest.approx(
        1.959963984540054 * reference.sd_eff_w_re, rel=1e-6
    )


def test_heterogeneity_by_hand_and_with_too_few_sites():
    # Equal MAEs: Q = 0, no heterogeneity; two sites with SE 1: Q = (a - b)^2 / 2.
    same = heterogeneity([5.0, 5.0, 5.0], [0.5, 0.4, 0.3])
    assert (same["q"], same["i2_percent"], same["tau2"]) == (0.0, 0.0, 0.0)
    two = heterogeneity([4.0, 8.0], [1.0, 1.0])
    assert two["q"] == pytest.approx(8.0)
    assert two["i2_percent"] == pytest.approx(100 * 7 / 8)
    assert two["tau2"] == pytest.approx(7 / 1)  # (Q - df) / (sum w - sum w^2 / sum w) = 7 / 1
    assert heterogeneity([4.0], [1.0])["q"] is None
