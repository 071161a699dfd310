"""Agreement between two readers of the same films (double reading), torch-free so that the
portal's reports use it: the mean absolute difference between the readers, ICC(A,1) and
Bland-Altman bias with 95 % limits of agreement, overall and per age group, each with a
percentile bootstrap interval from `metrics`' bootstrap (the same seeded resampling as the
model's MAE beside it).

ICC(A,1) is McGraw & Wong's (1996) two-way random effects, absolute agreement, single rater
(Shrout & Fleiss's ICC(2,1)): (MSR - MSE) / (MSR + (k-1) MSE + k/n (MSC - MSE)) from the two-way
ANOVA of n films x k = 2 readers. With k = 2 every mean square is a function of the means of
s = a + b, s^2, d = a - b and d^2 over the films (see `_figures`), so a resample's ICC needs only
the resample's means of those columns. `metrics.bootstrap_means` draws the same resamples for
any values given the same masks and seed (its draws depend on sizes, never on values), so each
column's means come from one and the same set of resampled films. Bland-Altman (1986): bias =
mean(d), limits = bias -/+ 1.96 SD(d) (SD with n - 1). Differences are first read minus second
read, in months.
"""

from collections.abc import Sequence

import numpy as np

from inference_worker.ages import AGE_GROUPS, DAYS_PER_MONTH, group_name
from inference_worker.metrics import CONFIDENCE, bootstrap_interval, bootstrap_means, group_index

# 95 % limits of agreement: bias -/+ 1.96 SD of the differences (Bland & Altman 1986).
LIMITS_Z = 1.96
FIGURES = ("mae", "icc", "bias", "lower", "upper")


def limits_of_agreement(differences: np.ndarray) -> tuple[float, float, float]:
    """Bias and the 95% limits of agreement (lower, upper) of paired differences, by the rule
    the report's figures use: the reports' Bland-Altman plot of a model against the truth
    draws its lines from here too."""
    d = np.asarray(differences, dtype=float)
    bias = float(d.mean())
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    return bias, bias - LIMITS_Z * sd, bias + LIMITS_Z * sd


def _figures(n: int, mean_s, mean_s2, mean_d, mean_d2, mean_abs_d) -> dict:
    """Every figure from the section's column means; scalars or arrays (one per resample).
    NaN where a figure is undefined (every film read alike by both readers: no variance)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        var_s = np.maximum(mean_s2 - mean_s**2, 0.0)  # population variances
        var_d = np.maximum(mean_d2 - mean_d**2, 0.0)
        msr = n * var_s / 2 / (n - 1)  # films: SSR = n var(s) / 2, n - 1 df
        msc = n * mean_d**2 / 2  # readers: SSC = n mean(d)^2 / 2, 1 df
        mse = n * var_d / 2 / (n - 1)  # residual: SSE = n var(d) / 2, n - 1 df
        denominator = msr + mse + 2 / n * (msc - mse)
        icc = np.where(denominator > 0, (msr - mse) / denominator, np.nan)
        sd = np.sqrt(var_d * n / (n - 1))
    return {
        "mae": mean_abs_d,
        "icc": icc,
        "bias": mean_d,
        "lower": mean_d - LIMITS_Z * sd,
        "upper": mean_d + LIMITS_Z * sd,
    }


def _value(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _ci(values: np.ndarray | None) -> tuple[float | None, float | None]:
    """The percentile interval over the resamples where the figure is defined."""
    if values is None:
        return None, None
    finite = values[np.isfinite(values)]
    return bootstrap_interval(finite) if len(finite) else (None, None)


def _entry(value, boot: np.ndarray | None) -> dict:
    low, high = _ci(boot)
    return {"value": _value(value), "ci_low": low, "ci_high": high}


def agreement(
    first_days: Sequence[float],
    second_days: Sequence[float],
    reference_days: Sequence[float],
    groups: tuple[tuple[float, float], ...] = AGE_GROUPS,
    resamples: int = 0,
    seed: int = 0,
) -> dict | None:
    """Agreement of two reads per film, overall and per age group of `reference_days` (the
    curated age, so that a film counts in the same group as in the model's figures); only the
    groups that hold a film. None without films. Each figure is {"value", "ci_low",
    "ci_high"}; an interval needs `resamples` > 0 and at least two films, a figure at least two
    films (one film: the MAE and bias only)."""
    a = np.asarray(first_days, dtype=float) / DAYS_PER_MONTH
    b = np.asarray(second_days, dtype=float) / DAYS_PER_MONTH
    reference = np.asarray(reference_days, dtype=float)
    if not len(a) == len(b) == len(reference):
        raise ValueError("both reads and the reference age are needed for every film")
    if len(a) == 0:
        return None
    s, d = a + b, a - b
    s = s - s.mean()  # ICC is unchanged by a shift; centring keeps s^2 - mean(s)^2 precise
    columns = (s, s**2, d, d**2, np.abs(d))
    index = group_index(reference, groups)
    masks = {"overall": np.ones(len(a), dtype=bool)}
    for i, (low, high) in enumerate(groups):
        if (index == i).any():
            masks[group_name(low, high)] = index == i
    keys, mask_list = list(masks), list(masks.values())
    boots = (
        [bootstrap_means(column, mask_list, resamples, seed) for column in columns]
        if resamples > 0
        else [[None] * len(mask_list) for _ in columns]
    )
    sections = {}
    for j, (key, mask) in enumerate(zip(keys, mask_list, strict=True)):
        n = int(mask.sum())
        point = _figures(n, *(float(c[mask].mean()) for c in columns))
        drawn = [column_boots[j] for column_boots in boots]
        boot = _figures(n, *drawn) if drawn[0] is not None else dict.fromkeys(FIGURES)
        entries = {name: _entry(point[name], boot[name]) for name in FIGURES}
        if n < 2:  # no spread from one film: ICC and limits are undefined
            for name in ("icc", "lower", "upper"):
                entries[name] = {"value": None, "ci_low": None, "ci_high": None}
        sections[key] = {
            "n": n,
            "mae_between_readers_months": entries["mae"],
            "icc": entries["icc"],
            "bland_altman": {name: entries[name] for name in ("bias", "lower", "upper")},
        }
    out = sections.pop("overall")
    out["by_group"] = sections
    out["confidence"] = CONFIDENCE
    return out
