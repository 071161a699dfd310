"""A report (a JSON-friendly dict) turned into files: JSON, CSV, PNG plots, a PDF, and what an HTML
template needs. Pure functions: no models, no database.

A report holds `inference_worker.metrics.report` sections for its model ("overall", "by_sex",
"by_group", "by_group_sex", "by_site", with the MAE's bootstrap interval), optionally the same for
a compare model ("compare"), their paired difference ("paired") and the layout of Li et al. 2025
("paper_table"). The plots also need the points: {"true_days", "predicted_days",
"compare_predicted_days" (or None), "sex", "site"}.

Numbers are shown the same way everywhere, the CSV included: months and differences with 2
decimals, MAPE with 1, Spearman's rho with 3, an interval as "[low, high]". The JSON keeps full
precision.
"""

import base64
import csv
import io
import json
import textwrap
from collections.abc import Iterable

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from inference_worker.metrics import DAYS_PER_MONTH

SECTIONS = ("overall", "by_sex", "by_group", "by_group_sex", "by_site")
# The CSV: one row per (model, section, group). Paired rows (section "paired_<section>", model
# "<a> - <b>") fill only n and the difference columns; paper-table rows (section
# "paper_internal" / "paper_external", group "<age group> <sex>" or "overall <sex>") fill n, MAE,
# MAPE and, on the overall rows, the published MAE.
CSV_COLUMNS = (
    "model",
    "section",
    "group",
    "n",
    "mae_months",
    "mae_ci_low_months",
    "mae_ci_high_months",
    "rmse_months",
    "bias_months",
    "mape_percent",
    "mape_n",
    "mape_excluded",
    "spearman_rho",
    "difference_months",
    "difference_ci_low_months",
    "difference_ci_high_months",
    "published_mae_months",
)
DECIMALS = {
    "mae_months": 2,
    "mae_ci_low_months": 2,
    "mae_ci_high_months": 2,
    "rmse_months": 2,
    "bias_months": 2,
    "mape_percent": 1,
    "spearman_rho": 3,
    "difference_months": 2,
    "difference_ci_low_months": 2,
    "difference_ci_high_months": 2,
    "published_mae_months": 2,
}
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
# Type 42 (TrueType) fonts so that the PDF's text can be extracted and searched.
_PDF_RC = {"pdf.fonttype": 42}


def fmt(value: float | None, decimals: int = 2) -> str:
    """A number with a fixed number of decimals; "" for None; never "-0.00"."""
    if value is None:
        return ""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_ci(low: float | None, high: float | None, decimals: int = 2) -> str:
    return "" if low is None or high is None else f"[{fmt(low, decimals)}, {fmt(high, decimals)}]"


def _models(report: dict) -> list[tuple[str, dict]]:
    """(name, sections) for the model and, when comparing, the compare model."""
    models = [(report["model"], {s: report.get(s) or {} for s in SECTIONS})]
    if report.get("compare"):
        compare = report["compare"]
        models.append((report["compare_model"], {s: compare.get(s) or {} for s in SECTIONS}))
    return models


def _entries(sections: dict, names: Iterable[str] = SECTIONS) -> list[tuple[str, str, dict]]:
    """(section, group, metrics) in report order; the overall entry's group is "overall"."""
    out = []
    for section in names:
        if section == "overall":
            if sections.get("overall"):
                out.append(("overall", "overall", sections["overall"]))
        else:
            out.extend((section, key, m) for key, m in (sections.get(section) or {}).items())
    return out


# JSON and CSV


def to_json(report: dict) -> str:
    return json.dumps(report, sort_keys=True, indent=2)


def _csv_row(**values) -> dict:
    return {
        column: (
            ""
            if values.get(column) is None
            else fmt(values[column], DECIMALS[column])
            if column in DECIMALS
            else values[column]
        )
        for column in CSV_COLUMNS
    }


def _paper_rows(model: str, table: dict) -> list[dict]:
    rows = []
    for cohort, entry in table["cohorts"].items():
        for sex in ("M", "F"):
            cells = [(f"{g} {sex}", entry[sex]["by_group"][g]) for g in table["groups"]]
            cells.append((f"overall {sex}", entry[sex]["overall"]))
            rows.extend(
                _csv_row(model=model, section=f"paper_{cohort}", group=group, **cell)
                for group, cell in cells
            )
    return rows


def to_csv(report: dict) -> str:
    """See CSV_COLUMNS. Empty cells for missing values (None)."""
    rows = [
        _csv_row(model=name, section=section, group=group, **m)
        for name, sections in _models(report)
        for section, group, m in _entries(sections)
    ]
    if report.get("paired"):
        pair = f"{report['model']} - {report['compare_model']}"
        for section, group, m in _entries(report["paired"]):
            rows.append(
                _csv_row(
                    model=pair,
                    section=f"paired_{section}",
                    group=group,
                    n=m["n"],
                    difference_months=m["difference_months"],
                    difference_ci_low_months=m["ci_low_months"],
                    difference_ci_high_months=m["ci_high_months"],
                )
            )
    if report.get("paper_table"):
        rows.extend(_paper_rows(report["model"], report["paper_table"]))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# Tables as rows of formatted strings, shared by the PDF and the HTML context

METRIC_COLUMNS = ["group", "N", "MAE", "95% CI", "RMSE", "bias", "MAPE %", "MAPE N", "excl.", "rho"]
PAIRED_COLUMNS = ["group", "N", "MAE a", "MAE b", "a - b", "95% CI"]
PAPER_COLUMNS = ["age group", "M N", "M MAE", "M MAPE %", "F N", "F MAE", "F MAPE %"]


def _metric_row(group: str, m: dict) -> list[str]:
    return [
        group,
        str(m["n"]),
        fmt(m["mae_months"]),
        fmt_ci(m.get("mae_ci_low_months"), m.get("mae_ci_high_months")),
        fmt(m["rmse_months"]),
        fmt(m["bias_months"]),
        fmt(m["mape_percent"], 1),
        str(m["mape_n"]),
        str(m["mape_excluded"]),
        fmt(m["spearman_rho"], 3),
    ]


def _tables(report: dict) -> list[dict]:
    """Every table of the report, {"kind" ("metrics", "paired" or "paper"), "title", "columns",
    "rows", "note"}, the rows as lists of formatted strings; months throughout."""
    tables = []
    for name, sections in _models(report):
        for title, names in (
            ("overall, by sex, by age group", ("overall", "by_sex", "by_group")),
            ("by age group and sex", ("by_group_sex",)),
            ("by site", ("by_site",)),
        ):
            rows = [_metric_row(group, m) for _, group, m in _entries(sections, names)]
            if rows:
                tables.append(
                    {
                        "kind": "metrics",
                        "title": f"{name}: {title}",
                        "columns": METRIC_COLUMNS,
                        "rows": rows,
                        "note": "",
                    }
                )
    if report.get("paired"):
        rows = [
            [
                group,
                str(m["n"]),
                fmt(m["mae_a_months"]),
                fmt(m["mae_b_months"]),
                fmt(m["difference_months"]),
                fmt_ci(m["ci_low_months"], m["ci_high_months"]),
            ]
            for _, group, m in _entries(report["paired"])
        ]
        tables.append(
            {
                "kind": "paired",
                "title": (
                    f"Paired difference: a = {report['model']}, b = {report['compare_model']}"
                ),
                "columns": PAIRED_COLUMNS,
                "rows": rows,
                "note": "MAE a - MAE b in months on the same items (negative: a is better), "
                "with a paired bootstrap interval.",
            }
        )
    if report.get("paper_table"):
        table = report["paper_table"]
        for cohort, entry in table["cohorts"].items():
            rows = []
            for group in [*table["groups"], "overall"]:
                row = [group]
                for sex in ("M", "F"):
                    by_sex = entry[sex]
                    cell = by_sex["overall"] if group == "overall" else by_sex["by_group"][group]
                    row += [str(cell["n"]), fmt(cell["mae_months"]), fmt(cell["mape_percent"], 1)]
                rows.append(row)
            published = table["published"][cohort]
            rows.append(["published", "", fmt(published["M"]), "", "", fmt(published["F"]), ""])
            sites = ", ".join(entry["sites"]) or "none"
            tables.append(
                {
                    "kind": "paper",
                    "title": f"Li et al. 2025 layout, {cohort} (sites: {sites})",
                    "columns": PAPER_COLUMNS,
                    "rows": rows,
                    "note": table["note"],
                }
            )
    return tables


def _text_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]

    def line(cells: list[str]) -> str:
        # The first column (the group) left-aligned, the numbers right-aligned.
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs]
        return "  ".join(padded)

    return [line(columns), *(line(r) for r in rows)]


def _meta(report: dict) -> list[tuple[str, str]]:
    vs = report["validation_set"]
    boot = report.get("bootstrap") or {}
    meta = [
        ("Validation set", f"{vs['name']} v{vs['version']} ({vs['items']} items)"),
        ("Manifest sha256", vs["manifest_sha256"]),
        ("Model", report["model"]),
        ("Model sha256", report.get("model_sha256") or ""),
    ]
    if report.get("compare_model"):
        meta += [
            ("Compare model", report["compare_model"]),
            ("Compare model sha256", report.get("compare_model_sha256") or ""),
        ]
    groups = ", ".join(f"{low:g}-{high:g}" for low, high in report.get("age_groups") or [])
    meta += [
        ("Created", report.get("created_at") or ""),
        ("Age groups (years)", groups),
        (
            "Bootstrap",
            f"{boot.get('resamples', 0)} resamples, seed {boot.get('seed', '')}, "
            f"{100 * boot.get('confidence', 0.95):g}% percentile interval"
            if boot.get("resamples")
            else "none",
        ),
    ]
    return meta


def _summary(report: dict) -> list[str]:
    """One line per model with its overall figures, and the paired difference when comparing."""
    lines = []
    for name, sections in _models(report):
        m = sections["overall"]
        ci = fmt_ci(m.get("mae_ci_low_months"), m.get("mae_ci_high_months"))
        lines.append(
            f"{name}: MAE {fmt(m['mae_months']) or '-'} months"
            + (f" {ci}" if ci else "")
            + f", RMSE {fmt(m['rmse_months']) or '-'}, bias {fmt(m['bias_months']) or '-'}, "
            f"MAPE {fmt(m['mape_percent'], 1) or '-'}%, rho {fmt(m['spearman_rho'], 3) or '-'}, "
            f"N {m['n']}"
        )
    if report.get("paired"):
        m = report["paired"]["overall"]
        ci = fmt_ci(m["ci_low_months"], m["ci_high_months"])
        lines.append(
            f"{report['model']} - {report['compare_model']}: MAE difference "
            f"{fmt(m['difference_months']) or '-'} months" + (f" {ci}" if ci else "")
        )
    return lines


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
    groups = [f"{low:g}-{high:g}" for low, high in report.get("age_groups") or []]
    models = _models(report)
    series = []
    for k, (name, sections) in enumerate(models):
        for sex in ("M", "F"):
            ms = [sections["by_group_sex"].get(f"{g} {sex}", {}) for g in groups]
            style = {"color": SEX_COLOURS[sex], "alpha": 0.85 if k == 0 else 0.45}
            if k:
                style["hatch"] = "//"
            label = f"{name} {sex}" if len(models) > 1 else {"M": "male", "F": "female"}[sex]
            series.append((label, ms, style))
    labels = []
    for g in groups:
        n = [models[0][1]["by_group_sex"].get(f"{g} {s}", {}).get("n", 0) for s in ("M", "F")]
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


# PDF


def _text_page(title: str, lines: list[str], header: list[str] | None = None) -> Figure:
    fig = Figure(figsize=PAGE, dpi=DPI)
    fig.text(0.06, 0.955, title, fontsize=14, weight="bold", va="top")
    y = 0.92
    step = 0.86 / LINES_PER_PAGE
    for line in _wrap([*(header or []), *lines]):
        fig.text(0.06, y, line, family="DejaVu Sans Mono", fontsize=7.5, va="top")
        y -= step
    return fig


def _table_lines(table: dict) -> list[str]:
    lines = [table["title"], *_text_table(table["columns"], table["rows"])]
    if table["note"]:
        lines.append(table["note"])
    return [*lines, ""]


def _wrap(lines: list[str]) -> list[str]:
    return [part for line in lines for part in (textwrap.wrap(line, LINE_WIDTH) or [""])]


def _pages(title: str, lines: list[str]) -> list[Figure]:
    lines = _wrap(lines)
    chunks = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)]
    return [
        _text_page(title if i == 0 else f"{title} (continued)", chunk)
        for i, chunk in enumerate(chunks or [[]])
    ]


def to_pdf(report: dict, points: dict) -> bytes:
    """Page 1: the title block, the overall summary and the overall / by-sex / by-age-group table;
    then the other tables; one page per plot; the paper's layout last, when present."""
    tables = _tables(report)
    first, rest = tables[0], [t for t in tables[1:] if t["kind"] != "paper"]
    paper = [t for t in tables if t["kind"] == "paper"]
    vs = report["validation_set"]
    width = max(len(label) for label, _ in _meta(report))
    header = [f"{label + ':':<{width + 1}} {value}" for label, value in _meta(report)]
    header += ["", *_summary(report), ""]
    pages = [
        _text_page(
            f"Age prediction report: {vs['name']} v{vs['version']}", _table_lines(first), header
        )
    ]
    if rest:
        pages += _pages("Tables", [line for t in rest for line in _table_lines(t)])
    pages += list(_figures(report, _points_or_empty(points)).values())
    if paper:
        pages += _pages(
            "Li et al. 2025 layout",
            [report["paper_table"]["source"], ""]
            + [line for t in paper for line in _table_lines(t)],
        )
    out = io.BytesIO()
    metadata = {"Title": f"{vs['name']} v{vs['version']}: {report['model']}", "CreationDate": None}
    with matplotlib.rc_context(_PDF_RC), PdfPages(out, metadata=metadata) as pdf:
        for fig in pages:
            pdf.savefig(fig, dpi=DPI)
    return out.getvalue()


# HTML


def html_context(report: dict, points: dict) -> dict:
    """What the report's template needs: the title block as [label, value] pairs, summary lines
    (per model, and the paired difference), every table as {"kind", "title", "columns", "rows",
    "note"} of formatted strings (see `_tables`), and every plot as {"name", "title", "uri"} with
    a data:image/png;base64 URI."""
    vs = report["validation_set"]
    return {
        "title": f"{vs['name']} v{vs['version']}: {report['model']}"
        + (f" vs {report['compare_model']}" if report.get("compare_model") else ""),
        "meta": [list(pair) for pair in _meta(report)],
        "summary": _summary(report),
        "tables": _tables(report),
        "plots": [
            {
                "name": name,
                "title": PLOTS[name],
                "uri": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            }
            for name, png in plots(report, _points_or_empty(points)).items()
        ],
    }
