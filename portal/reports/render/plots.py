"""The report's plots (matplotlib `Figure`s, never pyplot: no display, no global state)."""

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from inference_worker.ages import DAYS_PER_MONTH, REPORTED_SEXES, group_name
from portal.reports.render.tables import _models, fmt

PLOTS = {
    "scatter": "Predicted vs curated age",
    "bland_altman": "Bland-Altman: prediction minus curated age",
    "mae_by_group": "MAE by age group and sex",
    "mae_by_site": "MAE by site",
}
FIGSIZE = (6, 4)  # inches
DPI = 100
PAGE = (8.27, 11.69)  # A4 portrait, inches
LINES_PER_PAGE = 62
LINE_WIDTH = 100  # characters of 7.5 pt monospace across the page
COLOURS = ("tab:blue", "tab:orange")  # model, compare model
SEX_COLOURS = {"M": "tab:blue", "F": "tab:red"}

# Plots


def _months(values) -> np.ndarray:
    return np.asarray([] if values is None else values, dtype=float) / DAYS_PER_MONTH


def _point_style(n: int) -> dict:
    # Many points: small, faint and rasterised, so that 128,000 of them stay fast and legible.
    return {
        "linestyle": "none",
        "marker": ".",
        "markersize": 3 if n <= 2000 else 2,
        "markeredgewidth": 0,
        "alpha": min(0.6, max(0.1, 5000 / max(n, 1))),
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


def _scatter(report: dict, points: dict) -> Figure:
    fig, ax = _figure(PLOTS["scatter"])
    series = _series(report, points)
    top = max((float(np.max(p, initial=0)) for _, t, p, _ in series), default=0)
    top = max(top, float(np.max(series[0][1], initial=0)), 1.0)
    for model, true, predicted, colour in reversed(series):  # the report's model on top
        mae = float(np.mean(np.abs(predicted - true))) if len(true) else None
        ax.plot(
            true,
            predicted,
            color=colour,
            label=f"{model} (MAE {fmt(mae)} months)",
            **_point_style(len(true)),
        )
    ax.plot([0, top], [0, top], color="black", linewidth=1, linestyle="--", label="identity")
    if not len(series[0][1]):
        _no_data(ax)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("Curated age (months)")
    ax.set_ylabel("Predicted age (months)")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "identity")
    legend = ax.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="upper left",
        fontsize=8,
        markerscale=6,
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
        bias = float(diff.mean())
        sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        low, high = bias - 1.96 * sd, bias + 1.96 * sd
        prefix = f"{model}: " if len(series) > 1 else ""
        ax.axhline(bias, color=colour, linewidth=1.2, label=f"{prefix}bias {fmt(bias)} months")
        ax.axhline(
            high,
            color=colour,
            linewidth=1,
            linestyle="--",
            label=f"{prefix}limits of agreement, bias ± 1.96 SD: [{fmt(low)}, {fmt(high)}]",
        )
        ax.axhline(low, color=colour, linewidth=1, linestyle="--")
        if len(series) > 1:
            continue  # two models' labels would overlap; the legend carries the values
        for y, text in ((bias, "bias"), (high, "+1.96 SD"), (low, "-1.96 SD")):
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
        labels.append(f"{g}\n{n[0]} / {n[1]}")
    any_ci = _bars(ax, labels, series)
    ax.set_xlabel("Age group (years); N male / female")
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
    labels = [f"{s}\nN {models[0][1]['by_site'][s]['n']}" for s in sites]
    any_ci = _bars(ax, labels, series if sites else [])
    if not sites:
        _no_data(ax, "No sites")
    ax.set_xlabel("Site")
    if any_ci:
        ax.set_title(f"{PLOTS['mae_by_site']} (bars: 95% CI)", fontsize=11)
    return fig


def _points_or_empty(points: dict | None) -> dict:
    return points or {"true_days": [], "predicted_days": [], "compare_predicted_days": None}


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
    """PNG bytes of each plot in PLOTS, 600 x 400 pixels."""
    return {name: _png(fig) for name, fig in _figures(report, points).items()}
