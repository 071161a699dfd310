"""Age-prediction metrics, torch-free so that the portal's reports reuse them.

Ages arrive in days and are reported in months (days / 30.4375). MAPE is undefined at age 0: it
is computed over true ages of at least one month, and the count left out is reported. Every
figure comes with its N.
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DAYS_PER_MONTH = 30.4375
DAYS_PER_YEAR = 365.25
# Default age groups in years, [low, high).
AGE_GROUPS: tuple[tuple[float, float], ...] = ((0, 1), (1, 3), (3, 6), (6, 12), (12, 18))


@dataclass(frozen=True)
class Metrics:
    n: int
    mae_months: float | None
    rmse_months: float | None
    bias_months: float | None  # mean(predicted - true)
    mape_percent: float | None
    mape_n: int
    mape_excluded: int  # true ages under one month
    spearman_rho: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def _rank(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as in Spearman's definition)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2:
        return None
    rx, ry = _rank(x), _rank(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def compute(true_days: Sequence[float], predicted_days: Sequence[float]) -> Metrics:
    true = np.asarray(true_days, dtype=float)
    pred = np.asarray(predicted_days, dtype=float)
    n = len(true)
    if n == 0:
        return Metrics(0, None, None, None, None, 0, 0, None)
    error = (pred - true) / DAYS_PER_MONTH
    valid = true >= DAYS_PER_MONTH
    mape = (
        float(np.mean(np.abs(pred[valid] - true[valid]) / true[valid]) * 100)
        if valid.any()
        else None
    )
    return Metrics(
        n=n,
        mae_months=float(np.mean(np.abs(error))),
        rmse_months=float(math.sqrt(np.mean(error**2))),
        bias_months=float(np.mean(error)),
        mape_percent=mape,
        mape_n=int(valid.sum()),
        mape_excluded=int((~valid).sum()),
        spearman_rho=spearman(true, pred),
    )


def age_group(days: float, groups: tuple[tuple[float, float], ...] = AGE_GROUPS) -> str | None:
    years = days / DAYS_PER_YEAR
    for low, high in groups:
        if low <= years < high:
            return f"{low:g}-{high:g}"
    return None


def report(
    true_days: Sequence[float],
    predicted_days: Sequence[float],
    sexes: Sequence[str],
    groups: tuple[tuple[float, float], ...] = AGE_GROUPS,
) -> dict:
    """Overall, per age group, per sex, and per age group x sex."""
    true = np.asarray(true_days, dtype=float)
    pred = np.asarray(predicted_days, dtype=float)
    sex = np.asarray(list(sexes))
    labels = np.array([age_group(d, groups) for d in true], dtype=object)
    out: dict = {
        "overall": compute(true, pred).as_dict(),
        "by_group": {},
        "by_sex": {},
        "by_group_sex": {},
    }
    for low, high in groups:
        name = f"{low:g}-{high:g}"
        mask = labels == name
        out["by_group"][name] = compute(true[mask], pred[mask]).as_dict()
        for s in ("M", "F"):
            both = mask & (sex == s)
            out["by_group_sex"][f"{name} {s}"] = compute(true[both], pred[both]).as_dict()
    for s in ("M", "F", "O"):
        mask = sex == s
        if mask.any():
            out["by_sex"][s] = compute(true[mask], pred[mask]).as_dict()
    return out


def format_table(rep: dict) -> str:
    """A plain-text table of a `report`."""
    lines = [
        f"{'group':<14}{'N':>7}{'MAE mo':>9}{'RMSE mo':>9}{'bias mo':>9}{'MAPE %':>9}{'rho':>7}"
    ]

    def row(name: str, m: dict) -> str:
        def f(v: float | None, fmt: str) -> str:
            return format(v, fmt) if v is not None else "-".rjust(int(fmt.split(".")[0]))

        return (
            f"{name:<14}{m['n']:>7}{f(m['mae_months'], '9.2f')}{f(m['rmse_months'], '9.2f')}"
            f"{f(m['bias_months'], '9.2f')}{f(m['mape_percent'], '9.1f')}"
            f"{f(m['spearman_rho'], '7.3f')}"
        )

    lines.append(row("overall", rep["overall"]))
    for section in ("by_sex", "by_group", "by_group_sex"):
        for name, m in rep[section].items():
            lines.append(row(name, m))
    return "\n".join(lines)
