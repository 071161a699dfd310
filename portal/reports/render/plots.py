"""The report's plots (matplotlib `Figure`s, never pyplot: no display, no global state), as PNG
bytes that the page and the PDF both embed (one rendering, one source)."""

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from inference_worker.ages import DAYS_PER_MONTH, DAYS_PER_YEAR, REPORTED_SEXES, group_name
from inference_worker.agreement import LIMITS_Z, limits_of_agreement
from portal.reports.render.tables import SMALL_MARK, SMALL_N, _models, fmt, fmt_n

PLOTS = {
    "scatter": "Predicted vs curated age, in years",
    "bland_altman": "Bland-Altman: prediction minus curated age",
    "mae_by_group": "MAE by age group and sex",
    "mae_by_site": "MAE by site",
}
FIGSIZE = (6, 4)  # inches
# 200 dots per inch: 1200 x 800 pixels, sharp when printed at the page's width (about 17 cm)
# and on a high-density screen at 600 x 400 CSS pixels.
DPI = 200
COLOURS = ("tab:blue", "tab:orange")  # model, compare model
SEX_COLOURS = {"M": "tab:blue", "F": "tab:red", "O": "tab:gray"}
SEX_NAMES = {"M": "male", "F": "female", "O": "other or unknown"}
# The scatter is coloured by site when the set has 2 to this many sites (a legend stays
# readable), else by sex.
MAX_SITE_COLOURS = 10
# matplotlib's tab10, ten colours a reader tells apart
SITE_COLOURS = tuple(
    f"tab:{c}"
    for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan", "gray")
)

# Plots


def _months(values) -> np.ndarray:
    return np.asarray([] if values is None else values, dtype=float) / DAYS_PER_MONTH


def _point_style(n: int) -> dict:
    # Dots a reader can see and whose colours stay apart; many points get smaller and lighter
    # (rasterised, so that 128,000 of them stay fast), never below a visible alpha.
    return {
        "linestyle": "none",
        "marker": "o",
        "markersize": 3.5 if n <= 2000 else 2 if n <= 20000 else 1.2,
        "markeredgewidth": 0,
        "alpha": min(0.8, max(0.3, 8000 / max(n, 1))),
        "rasterized": True,
    }


def _series(report: dict, points: dict) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """(model, curated months, predicted months, colour) for each model."""
    true = _months(points["true_days"])
    out = [(report["model"], true, _months(points["predicted_days"]), COLOURS[0])]
    if report.get("compare_model") and points.get("compare_predicted_days") is not None:
        compare = _months(points["compare_predicted_days"])
        out.append((report["compare_model"], true, compare, COLOURS[1]))
    return out


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    return fig, ax


def _no_data(ax: Axes, text: str = "No items") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _colour_groups(points: dict) -> tuple[str, list[tuple[str, np.ndarray, str]]]:
    """What the scatter's colours mean ("Site" or "Sex") and (legend label, mask, colour) per
    colour: by site when there are 2 to MAX_SITE_COLOURS sites, else by sex."""
    n = len(points["true_days"])
    sites = np.asarray(points.get("site") or [""] * n, dtype=object)
    names = sorted({str(s) for s in sites if s})
    if 2 <= len(names) <= MAX_SITE_COLOURS:
        masks = [(name, sites == name) for name in names]
        return "Site", [
            (f"{name} (N {fmt_n(int(mask.sum()))})", mask, SITE_COLOURS[i])
            for i, (name, mask) in enumerate(masks)
        ]
    sexes = np.asarray(points.get("sex") or ["O"] * n, dtype=object)
    return "Sex", [
        (f"{SEX_NAMES[s]} (N {fmt_n(int((sexes == s).sum()))})", sexes == s, SEX_COLOURS[s])
        for s in SEX_COLOURS
        if (sexes == s).any()
    ]


def _scatter(report: dict, points: dict) -> Figure:
    """Predicted vs curated age in years with the identity line, one panel per model, the dots
    coloured by site (or sex) with a legend beside the plot."""
    series = _series(report, points)
    figsize = FIGSIZE if len(series) == 1 else (FIGSIZE[0], 2 * FIGSIZE[1] - 0.5)
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    axes = fig.subplots(len(series), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    fig.suptitle(PLOTS["scatter"], fontsize=11)
    title, colours = _colour_groups(points)
    true_years = np.asarray(points["true_days"], dtype=float) / DAYS_PER_YEAR
    top = 1.0
    for ax, (model, true, predicted, _) in zip(axes, series, strict=True):
        predicted_years = predicted * DAYS_PER_MONTH / DAYS_PER_YEAR
        top = max(
            top, float(np.max(true_years, initial=0)), float(np.max(predicted_years, initial=0))
        )
        # The largest group first, so that the smaller ones stay visible on top of it.
        for label, mask, colour in sorted(colours, key=lambda c: -int(c[1].sum())):
            ax.plot(
                true_years[mask],
                predicted_years[mask],
                color=colour,
                label=label,
                **_point_style(len(true)),
            )
        mae = float(np.mean(np.abs(predicted - true))) if len(true) else None
        ax.set_title(f"{model}: MAE {fmt(mae) or '-'} months, N {fmt_n(len(true))}", fontsize=9)
        ax.set_ylabel("Predicted age (years)")
        ax.grid(color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
        if not len(true):
            _no_data(ax)
    for ax in axes:
        ax.plot([0, top], [0, top], color="black", linewidth=1, linestyle="--", label="identity")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)  # the same scale on both axes: the identity is the diagonal
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(integer=True))  # whole years
    axes[-1].set_xlabel("Curated age (years)")
    handles, labels = axes[0].get_legend_handles_labels()
    by_label = dict(zip(labels, handles, strict=True))
    order = [label for label, _, _ in colours] + ["identity"]
    legend = fig.legend(
        [by_label[label] for label in order if label in by_label],
        [label for label in order if label in by_label],
        loc="outside right upper",
        title=title,
        fontsize=7,
        title_fontsize=8,
        markerscale=2.5,
    )
    for handle in legend.legend_handles:
        handle.set_alpha(1)
    return fig


def _bland_altman(report: dict, points: dict) -> Figure:
    fig, ax = _figure(PLOTS["bland_altman"])
    series = _series(report, points)
    for model, true, predicted, colour in series:
        mean, diff = (predicted + true) / 2, predicted - true
        ax.plot(mean, diff, color=colour, **_point_style(len(true)))
        if len(diff) == 0:
            continue
        bias, low, high = limits_of_agreement(diff)
        prefix = f"{model}: " if len(series) > 1 else ""
        ax.axhline(bias, color=colour, linewidth=1.2, label=f"{prefix}bias {fmt(bias)} months")
        ax.axhline(
            high,
            color=colour,
            linewidth=1,
            linestyle="--",
            label=f"{prefix}limits of agreement, bias ± {LIMITS_Z} SD: [{fmt(low)}, {fmt(high)}]",
        )
        ax.axhline(low, color=colour, linewidth=1, linestyle="--")
        if len(series) > 1:
            continue  # two models' labels would overlap; the legend carries the values
        for y, text in ((bias, "bias"), (high, f"+{LIMITS_Z} SD"), (low, f"-{LIMITS_Z} SD")):
            ax.annotate(
                f"{text} {fmt(y)}",
                (1, y),
                xycoords=("axes fraction", "data"),
                xytext=(-3, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
                color=colour,
            )
    if not len(series[0][1]):
        _no_data(ax)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("Mean of predicted and curated age (months)")
    ax.set_ylabel("Predicted - curated age (months)")
    ax.legend(loc="upper left", fontsize=7)
    return fig


def _bars(ax: Axes, labels: list[str], series: list[tuple[str, list[dict], dict]]) -> bool:
    """Grouped bars of MAE with CI error bars where present; returns whether any CI was drawn.
    `series` is (legend label, metrics per label, bar style)."""
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    any_ci = False
    for i, (label, ms, style) in enumerate(series):
        offset = x - 0.4 + width * (i + 0.5)
        heights = [np.nan if m.get("mae_months") is None else m["mae_months"] for m in ms]
        ax.bar(offset, heights, width, label=label, **style)
        with_ci = [
            (o, m)
            for o, m in zip(offset, ms, strict=True)
            if m.get("mae_ci_low_months") is not None
        ]
        if with_ci:
            any_ci = True
            xs = [o for o, _ in with_ci]
            ys = [m["mae_months"] for _, m in with_ci]
            errors = [
                [m["mae_months"] - m["mae_ci_low_months"] for _, m in with_ci],
                [m["mae_ci_high_months"] - m["mae_months"] for _, m in with_ci],
            ]
            ax.errorbar(xs, ys, yerr=errors, fmt="none", ecolor="black", elinewidth=1, capsize=2)
    many = len(labels) > 6
    ax.set_xticks(x, labels, fontsize=7 if many else 8, rotation=45 if many else 0)
    ax.set_ylabel("MAE (months)")
    tops = [
        m.get("mae_ci_high_months") or m.get("mae_months") or 0 for _, ms, _ in series for m in ms
    ]
    ax.set_ylim(0, 1.3 * max(tops, default=0) or 1)  # headroom for the legend
    if series:
        ax.legend(fontsize=7, loc="upper center", ncols=min(len(series), 4))
    return any_ci


def _mae_by_group(report: dict) -> Figure:
    fig, ax = _figure(PLOTS["mae_by_group"])
    groups = [group_name(low, high) for low, high in report.get("age_groups") or []]
    models = _models(report)
    series = []
    for k, (name, sections) in enumerate(models):
        for sex in REPORTED_SEXES:
            ms = [sections["by_group_sex"].get(f"{g} {sex}", {}) for g in groups]
            style = {"color": SEX_COLOURS[sex], "alpha": 0.85 if k == 0 else 0.45}
            if k:
                style["hatch"] = "//"
            label = f"{name} {sex}" if len(models) > 1 else {"M": "male", "F": "female"}[sex]
            series.append((label, ms, style))
    labels = []
    for g in groups:
        n = [models[0][1]["by_group_sex"].get(f"{g} {s}", {}).get("n", 0) for s in REPORTED_SEXES]
        labels.append(f"{g}\n{fmt_n(n[0])} / {fmt_n(n[1])}")
    any_ci = _bars(ax, labels, series)
    ax.set_xlabel(f"Age group (years); N male / female; {SMALL_MARK}: N < {SMALL_N}")
    if any_ci:
        ax.set_title(f"{PLOTS['mae_by_group']} (bars: 95% CI)", fontsize=11)
    return fig


def _mae_by_site(report: dict) -> Figure:
    fig, ax = _figure(PLOTS["mae_by_site"])
    models = _models(report)
    sites = list(models[0][1]["by_site"])
    series = [
        (name, [sections["by_site"].get(s, {}) for s in sites], {"color": COLOURS[k]})
        for k, (name, sections) in enumerate(models)
    ]
    labels = [f"{s}\nN {fmt_n(models[0][1]['by_site'][s]['n'])}" for s in sites]
    any_ci = _bars(ax, labels, series if sites else [])
    if not sites:
        _no_data(ax, "No sites")
    ax.set_xlabel(f"Site; {SMALL_MARK}: N < {SMALL_N}")
    if any_ci:
        ax.set_title(f"{PLOTS['mae_by_site']} (bars: 95% CI)", fontsize=11)
    return fig


def _points_or_empty(points: dict | None) -> dict:
    return points or {
        "true_days": [],
        "predicted_days": [],
        "compare_predicted_days": None,
        "sex": [],
        "site": [],
    }


def _figures(report: dict, points: dict) -> dict[str, Figure]:
    return {
        "scatter": _scatter(report, points),
        "bland_altman": _bland_altman(report, points),
        "mae_by_group": _mae_by_group(report),
        "mae_by_site": _mae_by_site(report),
    }


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def plots(report: dict, points: dict) -> dict[str, bytes]:
    """PNG bytes of each plot in PLOTS, 1200 x 800 pixels (the scatter of two models is taller)."""
    return {name: _png(fig) for name, fig in _figures(report, points).items()}
