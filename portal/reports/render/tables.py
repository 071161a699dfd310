"""Tables of a report: JSON, CSV, and rows of formatted strings for the PDF and the page.

Numbers are shown the same way everywhere, the CSV included: months and differences with 2
decimals, MAPE with 1, Spearman's rho with 3, an interval as "[low, high]". The JSON keeps full
precision.
"""

import io
import json
from collections.abc import Iterable

from inference_worker.ages import REPORTED_SEXES, group_name
from portal.core.csv_cells import SafeDictWriter
from portal.reports.render.copies import copies_csv_rows, copies_table
from portal.reports.render.coverage import coverage_csv_rows, coverage_table

SECTIONS = ("overall", "by_sex", "by_group", "by_group_sex", "by_site", "by_site_group")
# A figure over fewer items than this is flagged (SMALL_MARK beside its N, "small_n" in the CSV):
# too few for a stable figure. Stated in the report's definitions.
SMALL_N = 30
SMALL_MARK = "†"
# The CSV: one row per (model, section, group). Paired rows (section "paired_<section>", model
# "<a> - <b>") fill only n and the difference columns; paper-table rows (section
# "paper_internal" / "paper_external", group "<age group> <sex>" or "overall <sex>") fill n, MAE,
# MAPE and, on the overall rows, the published MAE. Site x age-group rows: section
# "by_site_group", group "<site> <age group>". `small_n` is "yes" when n < SMALL_N. Corrections
# equal to the model's output (the page's and the PDF's "copies" table): section
# "copied_corrections", model the model compared with, group "<reader> <site>" (n corrections,
# `copies`, `blind_copies`) and "overall" (the totals, and the flagged image ids, space-separated).
# Calibrated-interval coverage (render/coverage.py): sections "coverage_overall",
# "coverage_by_group", "coverage_by_site" fill n, MAE and the coverage columns (fractions).
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
    "small_n",
    "copies",
    "blind_copies",
    "flagged_images",
    "coverage",
    "coverage_ci_low",
    "coverage_ci_high",
    "median_interval_width_months",
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
    "coverage": 3,
    "coverage_ci_low": 3,
    "coverage_ci_high": 3,
    "median_interval_width_months": 2,
}

# Cells of these columns are numbers ("-1.20" is a bias, not a formula); the rest is text.
NUMERIC_COLUMNS = frozenset({"n", "mape_n", "mape_excluded", "copies", "blind_copies", *DECIMALS})


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
    values["small_n"] = "yes" if values.get("n") is not None and small(values["n"]) else ""
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
        for sex in REPORTED_SEXES:
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
    rows.extend(copies_csv_rows(report.get("copied_corrections"), _csv_row))
    rows.extend(coverage_csv_rows(report, _csv_row))
    out = io.StringIO()
    writer = SafeDictWriter(out, CSV_COLUMNS, numeric=NUMERIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# Tables as rows of formatted strings, shared by the PDF and the page (one template)

METRIC_COLUMNS = [
    "group",
    "N",
    "MAE (months)",
    "MAE 95% CI (months)",
    "RMSE (months)",
    "bias (months)",
    "MAPE (%)",
    "MAPE N",
    "excl.",
    "rho",
]
PAIRED_COLUMNS = [
    "group",
    "N",
    "MAE a (months)",
    "MAE b (months)",
    "a - b (months)",
    "95% CI (months)",
]
PAPER_COLUMNS = [
    "age group",
    "M N",
    "M MAE (months)",
    "M MAPE (%)",
    "F N",
    "F MAE (months)",
    "F MAPE (%)",
]
NO_VALUE = "–"  # a figure that cannot be computed (no items, or too few for it)


def small(n: int) -> bool:
    """Whether a figure over `n` items is flagged (see SMALL_N)."""
    return n < SMALL_N


def fmt_n(n: int) -> str:
    """An N as shown in the tables: flagged with SMALL_MARK below SMALL_N."""
    return f"{n} {SMALL_MARK}" if small(n) else str(n)


def _value(value: float | None, decimals: int = 2) -> str:
    return fmt(value, decimals) or NO_VALUE


def _metric_row(group: str, m: dict) -> list[str]:
    return [
        group,
        fmt_n(m["n"]),
        _value(m["mae_months"]),
        fmt_ci(m.get("mae_ci_low_months"), m.get("mae_ci_high_months")) or NO_VALUE,
        _value(m["rmse_months"]),
        _value(m["bias_months"]),
        _value(m["mape_percent"], 1),
        str(m["mape_n"]),
        str(m["mape_excluded"]),
        _value(m["spearman_rho"], 3),
    ]


def site_group_cell(m: dict | None) -> str:
    """One cell of the site x age-group table: "5.12 (N 40)", flagged below SMALL_N."""
    m = m or {"n": 0, "mae_months": None}
    return f"{_value(m['mae_months'])} (N {fmt_n(m['n'])})"


# Age groups per site x age-group table: more are split over several tables, so that each fits
# the width of an A4 page.
GROUPS_PER_TABLE = 6


def _site_group_tables(name: str, sections: dict, groups: list[str]) -> list[dict]:
    """MAE and N per site (rows) and age group (columns), with each site's and each group's
    overall figures, GROUPS_PER_TABLE groups a table; none for a report stored before the
    section existed."""
    cells = sections.get("by_site_group")
    if not cells:
        return []
    chunks = [groups[i : i + GROUPS_PER_TABLE] for i in range(0, len(groups), GROUPS_PER_TABLE)]
    tables = []
    for k, chunk in enumerate(chunks):
        rows = [
            [
                site,
                *(site_group_cell(cells.get(f"{site} {g}")) for g in chunk),
                site_group_cell(m),
            ]
            for site, m in sections["by_site"].items()
        ]
        rows.append(
            [
                "all sites",
                *(site_group_cell(sections["by_group"].get(g)) for g in chunk),
                site_group_cell(sections["overall"]),
            ]
        )
        part = f" ({k + 1} of {len(chunks)})" if len(chunks) > 1 else ""
        tables.append(
            {
                "kind": "site_group",
                "title": f"{name}: MAE by site and age group{part}",
                "columns": ["site", *(f"{g} y" for g in chunk), "all ages"],
                "rows": rows,
                "note": (
                    f"Each cell: MAE in months (N items). {SMALL_MARK}: N < {SMALL_N}. "
                    "Age groups in years, as defined above."
                ),
            }
        )
    return tables


def _tables(report: dict) -> list[dict]:
    """Every table of the report, {"kind" ("metrics", "site_group", "paired" or "paper"),
    "title", "columns", "rows", "note"}, the rows as lists of formatted strings; months
    throughout."""
    tables = []
    groups = [group_name(low, high) for low, high in report.get("age_groups") or []]
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
        tables.extend(_site_group_tables(name, sections, groups))
    if report.get("paired"):
        rows = [
            [
                group,
                fmt_n(m["n"]),
                _value(m["mae_a_months"]),
                _value(m["mae_b_months"]),
                _value(m["difference_months"]),
                fmt_ci(m["ci_low_months"], m["ci_high_months"]) or NO_VALUE,
            ]
            for section, group, m in _entries(report["paired"])
            if section != "by_site_group"  # the per-model tables carry the site x group cells
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
                for sex in REPORTED_SEXES:
                    by_sex = entry[sex]
                    cell = by_sex["overall"] if group == "overall" else by_sex["by_group"][group]
                    row += [
                        fmt_n(cell["n"]),
                        _value(cell["mae_months"]),
                        _value(cell["mape_percent"], 1),
                    ]
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
    copies = copies_table(report.get("copied_corrections"))
    if copies:
        tables.append(copies)
    coverage = coverage_table(report, fmt_n)
    if coverage:
        tables.append(coverage)
    return tables


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
    groups = ", ".join(group_name(low, high) for low, high in report.get("age_groups") or [])
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
    if report.get("missing_predictions"):
        meta.append(("Left out", f"{report['missing_predictions']} items without a prediction"))
    return meta


def _identity(report: dict) -> str:
    """The line every PDF page's header repeats: which model, which set, when."""
    vs = report["validation_set"]
    models = [(report["model"], report.get("model_sha256") or "")]
    if report.get("compare_model"):
        models.append((report["compare_model"], report.get("compare_model_sha256") or ""))
    names = " vs ".join(f"{name} (sha256 {sha[:12]})" for name, sha in models)
    created = (report.get("created_at") or "")[:16].replace("T", " ")
    return f"{names} · {vs['name']} v{vs['version']} · created {created} UTC"


def _summary(report: dict) -> list[str]:
    """One line per model with its overall figures, and the paired difference when comparing."""
    lines = []
    for name, sections in _models(report):
        m = sections["overall"]
        ci = fmt_ci(m.get("mae_ci_low_months"), m.get("mae_ci_high_months"))
        lines.append(
            f"{name}: MAE {fmt(m['mae_months']) or '-'} months"
            + (f" {ci}" if ci else "")
            + f", RMSE {fmt(m['rmse_months']) or '-'} months, "
            f"bias {fmt(m['bias_months']) or '-'} months, "
            f"MAPE {fmt(m['mape_percent'], 1) or '-'}%, rho {fmt(m['spearman_rho'], 3) or '-'}, "
            f"N {fmt_n(m['n'])}"
        )
    if report.get("paired"):
        m = report["paired"]["overall"]
        ci = fmt_ci(m["ci_low_months"], m["ci_high_months"])
        lines.append(
            f"{report['model']} - {report['compare_model']}: MAE difference "
            f"{fmt(m['difference_months']) or '-'} months" + (f" {ci}" if ci else "")
        )
    copied = report.get("copied_corrections")
    if copied:
        lines.append(
            f"Corrections equal to {copied['model']}'s output (within "
            f"{copied['tolerance_days']} days): {copied['copies']} of {copied['corrections']}"
            f", {copied['blind_copies']} of them blind; flagged images: "
            f"{len(copied['flagged_images'])}"
        )
    return lines
