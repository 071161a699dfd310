"""Federated validation math, torch-free: what one site shares (metrics and counts per age group
x sex, never a per-image row) and how a coordinator pools many sites' shares.

A site's cells are `metrics.compute` figures plus the standard deviation of the absolute error
(`abs_error_sd_months`, n - 1): with the MAE and N it gives the MAE's standard error, which the
heterogeneity needs, and with every site's it gives the pooled SD exactly.

Pooling: MAE and bias are means over items, so the pooled figure is the count-weighted mean of
the sites' (exactly the figure over all sites' items); RMSE pools its squares the same way; MAPE
by each site's MAPE N. Spearman's rho does not pool and is left out. Between-site heterogeneity
of the MAE: Cochran's Q with inverse-variance weights (variance = SD^2 / N), I^2 = (Q - df) / Q
(Higgins & Thompson 2002) and the DerSimonian-Laird (1986) tau^2, with the random-effects MAE
and its 95 % interval; over the sites with at least two items and a non-zero SD.
"""

import math
from collections.abc import Sequence

import numpy as np

from inference_worker.ages import AGE_GROUPS, DAYS_PER_MONTH
from inference_worker.metrics import as_arrays, report, report_sections

# The cells a site shares: no site split (the file is one site's) and no per-image rows.
SECTIONS = ("overall", "by_group", "by_sex", "by_group_sex")
Z_95 = 1.959963984540054  # the normal quantile of the random-effects interval


def site_cells(
    true_days: Sequence[float],
    predicted_days: Sequence[float],
    sexes: Sequence[str],
    groups: tuple[tuple[float, float], ...] = AGE_GROUPS,
    resamples: int = 0,
    seed: int = 0,
) -> dict:
    """`metrics.report`'s overall, by_group, by_sex and by_group_sex cells, each with
    `abs_error_sd_months` (None under two items)."""
    rep = report(true_days, predicted_days, sexes, groups=groups, resamples=resamples, seed=seed)
    true, pred, sex, _ = as_arrays(true_days, predicted_days, sexes, None)
    error = np.abs(pred - true) / DAYS_PER_MONTH
    out = {section: rep[section] for section in SECTIONS}
    for section, masks in report_sections(true, sex, groups, None).items():
        if section not in SECTIONS:
            continue
        for key, mask in masks.items():
            cell = out[section] if section == "overall" else out[section][key]
            cell["abs_error_sd_months"] = (
                float(np.std(error[mask], ddof=1)) if mask.sum() >= 2 else None
            )
    return out


def _weighted(cells: list[dict], value: str, weight: str = "n") -> float | None:
    pairs = [(c[weight], c[value]) for c in cells if c.get(value) is not None and c[weight]]
    total = sum(w for w, _ in pairs)
    return sum(w * v for w, v in pairs) / total if total else None


def pool_cell(cells: list[dict]) -> dict:
    """One cell pooled over the sites' same cell (see the module's docstring)."""
    n = sum(c["n"] for c in cells)
    mae = _weighted(cells, "mae_months")
    squares = [
        {"n": c["n"], "sq": c["rmse_months"] ** 2} for c in cells if c["rmse_months"] is not None
    ]
    mean_square = _weighted(squares, "sq")
    sd = None
    if n >= 2 and mae is not None:
        # Within-site sums of squares plus between-site ones: the SD over all items.
        within = sum(
            (c["n"] - 1) * (c.get("abs_error_sd_months") or 0.0) ** 2 for c in cells if c["n"]
        )
        between = sum(c["n"] * (c["mae_months"] - mae) ** 2 for c in cells if c["n"])
        sd = math.sqrt((within + between) / (n - 1))
    return {
        "n": n,
        "sites": sum(1 for c in cells if c["n"]),
        "mae_months": mae,
        "rmse_months": math.sqrt(mean_square) if mean_square is not None else None,
        "bias_months": _weighted(cells, "bias_months"),
        "mape_percent": _weighted(cells, "mape_percent", "mape_n"),
        "mape_n": sum(c["mape_n"] for c in cells),
        "mape_excluded": sum(c["mape_excluded"] for c in cells),
        "abs_error_sd_months": sd,
    }


def heterogeneity(maes: Sequence[float], ses: Sequence[float]) -> dict:
    """Cochran's Q, I^2 (%), DerSimonian-Laird tau^2 (months^2) and the random-effects mean of
    per-site MAEs `maes` with standard errors `ses`; figures None under two sites."""
    y, se = np.asarray(maes, dtype=float), np.asarray(ses, dtype=float)
    k = len(y)
    out = {"sites": k, "q": None, "df": k - 1 if k else 0, "i2_percent": None, "tau2": None}
    out.update(fixed_mae_months=None, random_mae_months=None)
    out.update(random_ci_low_months=None, random_ci_high_months=None)
    if k < 2:
        return out
    w = 1 / se**2
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    df = k - 1
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - df) / c)
    w_random = 1 / (se**2 + tau2)
    mu = float(np.sum(w_random * y) / np.sum(w_random))
    half = Z_95 * math.sqrt(1 / float(np.sum(w_random)))
    out.update(
        q=q,
        i2_percent=100 * max(0.0, (q - df) / q) if q > 0 else 0.0,
        tau2=tau2,
        fixed_mae_months=fixed,
        random_mae_months=mu,
        random_ci_low_months=mu - half,
        random_ci_high_months=mu + half,
    )
    return out


def cell_heterogeneity(cells: list[dict]) -> dict:
    """`heterogeneity` over the sites whose cell has a standard error (N >= 2, SD > 0)."""
    usable = [c for c in cells if c["n"] >= 2 and c.get("abs_error_sd_months")]
    return heterogeneity(
        [c["mae_months"] for c in usable],
        [c["abs_error_sd_months"] / math.sqrt(c["n"]) for c in usable],
    )


def pool(sites: list[dict]) -> dict:
    """Pooled cells and the MAE's heterogeneity for every cell of the sites' `site_cells`
    (all made with the same age groups)."""
    pooled: dict = {}
    spread: dict = {}
    for section in SECTIONS:
        if section == "overall":
            cells = [s["overall"] for s in sites]
            pooled[section], spread[section] = pool_cell(cells), cell_heterogeneity(cells)
            continue
        keys = list(dict.fromkeys(k for s in sites for k in s[section]))
        pooled[section], spread[section] = {}, {}
        for key in keys:
            cells = [s[section][key] for s in sites if key in s[section]]
            pooled[section][key] = pool_cell(cells)
            spread[section][key] = cell_heterogeneity(cells)
    return {"pooled": pooled, "heterogeneity": spread}
