"""Age-prediction metrics, torch-free so that the portal's reports reuse them.

Ages arrive in days and are reported in months (days / `ages.DAYS_PER_MONTH`). MAPE is undefined
at age 0: it is computed over true ages of at least one month, and the count left out is
reported. Every figure comes with its N. Age groups are those of `ages` (`ages.group_days`).

Confidence intervals are percentile bootstrap intervals (Efron & Tibshirani 1993, ch. 13): items
are resampled with replacement, and each section's interval comes from resampling within that
section (a section's N stays fixed, as it was observed; the alternative, resampling the whole set
and taking the section from each resample, lets a small section's N drift from resample to
resample). A section of fewer than two items has no interval (`None` bounds): with one item
every resample repeats it, and a zero-width interval would claim a certainty the data cannot give.
"""

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from inference_worker.ages import (
    AGE_GROUPS,
    DAYS_PER_MONTH,
    REPORTED_SEXES,
    SEXES,
    group_days,
    group_name,
)

CONFIDENCE = 0.95
# Overall MAE in months by sex, internal and external validation (Li et al., Insights into
# Imaging 2025). The paper's per-age-group figures are not available here.
PUBLISHED = {"internal": {"M": 5.86, "F": 5.80}, "external": {"M": 7.40, "F": 7.29}}
PUBLISHED_SOURCE = (
    "Li et al. 2025, Predicting pediatric age from chest X-rays using deep learning: "
    "a novel approach. Insights into Imaging."
)
# Values gathered per bootstrap step: bounds the memory (8 bytes each) whatever the set's size.
_CHUNK = 1 << 20


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
    values = np.asarray(values)
    order = np.argsort(values)  # ties are averaged, so the sort need not be stable
    sorted_values = values[order]
    # Each run of equal values gets the mean of the ranks it spans.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
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


def group_index(true: np.ndarray, groups: tuple[tuple[float, float], ...]) -> np.ndarray:
    """`ages.age_group` for a whole array: the index of the first group that holds each age, or
    -1; the same boundary days (`ages.group_days`) as the queue and set filters."""
    index = np.full(len(true), -1)
    for i, (low, high) in enumerate(groups):
        first, end = group_days(low, high)
        index[(index == -1) & (first <= true) & (true < end)] = i
    return index


def report_sections(
    true: np.ndarray,
    sex: np.ndarray,
    groups: tuple[tuple[float, float], ...],
    site: np.ndarray | None,
) -> dict[str, dict[str, np.ndarray]]:
    """Boolean masks per section and key, in the order and with the keys `report` uses: every
    group (empty ones too), M and F within every group, the sexes present, the sites present."""
    index = group_index(true, groups)
    out: dict[str, dict[str, np.ndarray]] = {
        "overall": {"overall": np.ones(len(true), dtype=bool)},
        "by_group": {},
        "by_sex": {},
        "by_group_sex": {},
    }
    for i, (low, high) in enumerate(groups):
        name = group_name(low, high)
        mask = index == i
        out["by_group"][name] = mask
        for s in REPORTED_SEXES:
            out["by_group_sex"][f"{name} {s}"] = mask & (sex == s)
    for s in SEXES:
        mask = sex == s
        if mask.any():
            out["by_sex"][s] = mask
    if site is not None:
        # Items without a site count everywhere else but in no site's row.
        out["by_site"] = {
            str(name): site == name for name in sorted({v for v in site if v not in (None, "")})
        }
        # Every site present x every group (empty cells too), keyed "<site> <group>" like
        # "<group> <sex>": the reports' site x age-group table.
        out["by_site_group"] = {
            f"{name} {group_name(low, high)}": mask & (index == i)
            for name, mask in out["by_site"].items()
            for i, (low, high) in enumerate(groups)
        }
    return out


def as_arrays(true_days, predicted_days, sexes, sites):
    true = np.asarray(true_days, dtype=float)
    pred = np.asarray(predicted_days, dtype=float)
    sex = np.asarray(list(sexes), dtype=object)
    site = None if sites is None else np.asarray(list(sites), dtype=object)
    if not len(true) == len(pred) == len(sex) or (site is not None and len(site) != len(true)):
        raise ValueError("true ages, predictions, sexes and sites must have the same length")
    return true, pred, sex, site


def bootstrap_means(
    values: np.ndarray, masks: list[np.ndarray], resamples: int, seed: int
) -> list[np.ndarray | None]:
    """For each mask, `resamples` means of `values` over a resample with replacement of the
    mask's items (of the same size); `None` for masks of fewer than two items.

    The sections overlap (overall, by sex, by group, by site), and resampling each one on its own
    costs sections x N x resamples draws. Instead the items are split into atoms, the cells of
    the finest partition the masks make (group x sex x site). A resample of n_s items from a
    section is, in distribution, a multinomial(n_s, atom sizes / n_s) split of n_s over the
    section's atoms followed by that many uniform draws within each atom; the draws within an
    atom are taken once per bootstrap step and shared by every section that holds the atom, so
    each value is drawn about once per step (the sections' intervals are correlated with each
    other, each one is exact on its own). The index matrices are chunked to bound the memory.
    """
    rng = np.random.default_rng(seed)
    sizes = np.array([int(m.sum()) for m in masks])
    out: list[np.ndarray | None] = [None] * len(masks)
    wanted = [i for i, size in enumerate(sizes) if size >= 2]
    if not wanted:
        return out
    # An item's atom is the set of sections that hold it, built up one section (bit) at a time
    # and renumbered densely (below N) every 16 bits, long before an int64 could overflow.
    code = np.zeros(len(values), dtype=np.int64)
    for j, i in enumerate(wanted):
        code = code * 2 + masks[i]
        if j % 16 == 15:
            code = np.unique(code, return_inverse=True)[1].reshape(-1)
    keep = np.zeros(len(values), dtype=bool)
    for i in wanted:
        keep |= masks[i]
    _, first, atom_of = np.unique(code[keep], return_index=True, return_inverse=True)
    atom_of = atom_of.reshape(-1)
    atom_sections = np.stack([masks[i][keep][first] for i in wanted], axis=1)
    order = np.argsort(atom_of, kind="stable")
    atom_values = np.split(values[keep][order], np.cumsum(np.bincount(atom_of))[:-1])
    atom_sizes = np.array([len(v) for v in atom_values])

    # How many items each section's resamples draw from each of its atoms: (resamples,) arrays.
    draws: list[list[tuple[int, np.ndarray]]] = [[] for _ in atom_values]
    for j in range(len(wanted)):
        atoms = np.flatnonzero(atom_sections[:, j])
        n = atom_sizes[atoms].sum()
        if len(atoms) == 1:
            counts = np.full((resamples, 1), n)
        else:
            counts = rng.multinomial(n, atom_sizes[atoms] / n, size=resamples)
        for column, atom in enumerate(atoms):
            draws[atom].append((j, counts[:, column]))

    totals = np.zeros((len(wanted), resamples))
    for atom, needs in enumerate(draws):
        low = min(int(k.min()) for _, k in needs)
        high = max(int(k.max()) for _, k in needs)
        if high == 0:
            continue
        v = atom_values[atom]
        dtype = np.uint16 if len(v) <= 1 << 16 else np.intp  # smaller draws are cheaper
        step = max(1, _CHUNK // high)
        for start in range(0, resamples, step):
            stop = min(start + step, resamples)
            # Row r holds the r-th draw of every resample in the chunk (one column each), so
            # that the running sums below run over contiguous rows.
            drawn = v[rng.integers(0, len(v), size=(high, stop - start), dtype=dtype)]
            head = drawn[:low].sum(axis=0)
            running = np.zeros((high - low + 1, stop - start))
            np.cumsum(drawn[low:], axis=0, out=running[1:])
            columns = np.arange(stop - start)
            for j, k in needs:
                totals[j, start:stop] += head + running[k[start:stop] - low, columns]
    for j, i in enumerate(wanted):
        out[i] = totals[j] / sizes[i]
    return out


def bootstrap_interval(means: np.ndarray | None, confidence: float = CONFIDENCE) -> tuple:
    if means is None:
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def wilson(covered: int, n: int, confidence: float = CONFIDENCE) -> tuple:
    """Wilson score interval of a proportion (Wilson 1927): sound near 0 and 1 and for small n,
    where the normal approximation is not; no scipy needed."""
    if n == 0:
        return None, None
    z = {0.95: 1.959963984540054, 0.9: 1.6448536269514722}.get(confidence)
    if z is None:
        raise ValueError(f"unsupported confidence {confidence!r}")
    p = covered / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def report(
    true_days: Sequence[float],
    predicted_days: Sequence[float],
    sexes: Sequence[str],
    groups: tuple[tuple[float, float], ...] = AGE_GROUPS,
    sites: Sequence[str] | None = None,
    resamples: int = 0,
    seed: int = 0,
) -> dict:
    """Overall, per age group, per sex, per age group x sex, and (given `sites`) per site and
    per site x age group (`by_site_group`, keyed "<site> <group>": every site x every group).

    With `resamples` > 0 every metrics dict gains `mae_ci_low_months` and `mae_ci_high_months`:
    the 95 % percentile bootstrap interval of its MAE (see the module's docstring)."""
    true, pred, sex, site = as_arrays(true_days, predicted_days, sexes, sites)
    sections = report_sections(true, sex, groups, site)
    out: dict = {}
    for section, masks in sections.items():
        out[section] = {key: compute(true[m], pred[m]).as_dict() for key, m in masks.items()}
    out["overall"] = out["overall"]["overall"]
    if resamples > 0:
        error = np.abs(pred - true) / DAYS_PER_MONTH
        flat = [(section, key, m) for section, ms in sections.items() for key, m in ms.items()]
        means = bootstrap_means(error, [m for _, _, m in flat], resamples, seed)
        for (section, key, _), boot in zip(flat, means, strict=True):
            target = out[section] if section == "overall" else out[section][key]
            target["mae_ci_low_months"], target["mae_ci_high_months"] = bootstrap_interval(boot)
    return out


def paired_difference(
    true_days: Sequence[float],
    predicted_a: Sequence[float],
    predicted_b: Sequence[float],
    sexes: Sequence[str],
    groups: tuple[tuple[float, float], ...] = AGE_GROUPS,
    sites: Sequence[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """MAE of model a minus MAE of model b on the same items, per section as in `report`, with
    a paired percentile bootstrap interval: both models are scored on the same resampled items,
    i.e. the per-item differences |error a| - |error b| are resampled. Negative: a is better."""
    true, pred_a, sex, site = as_arrays(true_days, predicted_a, sexes, sites)
    pred_b = np.asarray(predicted_b, dtype=float)
    if len(pred_b) != len(true):
        raise ValueError("both models need a prediction for every item")
    abs_a = np.abs(pred_a - true) / DAYS_PER_MONTH
    abs_b = np.abs(pred_b - true) / DAYS_PER_MONTH
    sections = report_sections(true, sex, groups, site)
    flat = [(section, key, m) for section, ms in sections.items() for key, m in ms.items()]
    means = (
        bootstrap_means(abs_a - abs_b, [m for _, _, m in flat], resamples, seed)
        if resamples > 0
        else [None] * len(flat)
    )
    out: dict = {section: {} for section in sections}
    for (section, key, m), boot in zip(flat, means, strict=True):
        n = int(m.sum())
        mae_a = float(abs_a[m].mean()) if n else None
        mae_b = float(abs_b[m].mean()) if n else None
        low, high = bootstrap_interval(boot)
        out[section][key] = {
            "n": n,
            "mae_a_months": mae_a,
            "mae_b_months": mae_b,
            "difference_months": mae_a - mae_b if n else None,
            "ci_low_months": low,
            "ci_high_months": high,
        }
    out["overall"] = out["overall"]["overall"]
    return out


def _paper_cell(true: np.ndarray, pred: np.ndarray) -> dict:
    m = compute(true, pred)
    return {
        "n": m.n,
        "mae_months": m.mae_months,
        "mape_percent": m.mape_percent,
        "mape_n": m.mape_n,
        "mape_excluded": m.mape_excluded,
    }


def paper_table(
    true_days: Sequence[float],
    predicted_days: Sequence[float],
    sexes: Sequence[str],
    sites: Sequence[str],
    internal_sites: Collection[str],
    groups: tuple[tuple[float, float], ...] = AGE_GROUPS,
) -> dict:
    """The layout of Li et al. 2025: MAE and MAPE by age group for males and females, on the
    internal sites and on the external ones (every site not in `internal_sites`), and overall per
    sex per cohort beside the paper's published overall MAE. Items of other sexes are left out
    (the paper reports M and F) and counted in `left_out_other_sex`."""
    true, pred, sex, site = as_arrays(true_days, predicted_days, sexes, sites)
    internal = np.array([s in internal_sites for s in site], dtype=bool)
    index = group_index(true, groups)
    names = [group_name(low, high) for low, high in groups]
    cohorts: dict = {}
    for cohort, in_cohort in (("internal", internal), ("external", ~internal)):
        entry: dict = {"sites": sorted({str(s) for s in site[in_cohort]})}
        for s in REPORTED_SEXES:
            mask = in_cohort & (sex == s)
            overall = _paper_cell(true[mask], pred[mask])
            published = PUBLISHED[cohort][s]
            overall["published_mae_months"] = published
            overall["difference_from_published_months"] = (
                overall["mae_months"] - published if overall["mae_months"] is not None else None
            )
            by_group = {
                name: _paper_cell(true[mask & (index == i)], pred[mask & (index == i)])
                for i, name in enumerate(names)
            }
            entry[s] = {"overall": overall, "by_group": by_group}
        cohorts[cohort] = entry
    return {
        "source": PUBLISHED_SOURCE,
        "groups": names,
        "cohorts": cohorts,
        "published": PUBLISHED,
        "published_by_group": None,
        "note": (
            "Published figures: overall MAE (months) per sex and cohort only; the paper's "
            "per-age-group figures are not available here."
        ),
        "left_out_other_sex": int((~np.isin(sex, REPORTED_SEXES)).sum()),
    }


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
