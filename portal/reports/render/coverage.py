"""The report's `coverage` section (portal/reports/coverage.py) as a table for the page and
the PDF and as CSV rows: achieved coverage of the calibrated intervals per age group and site,
each with its 95% Wilson interval, beside the median interval width and the MAE."""

COVERAGE_COLUMNS = [
    "",
    "N",
    "coverage",
    "95% CI",
    "median width (months)",
    "width / MAE",
    "MAE (months)",
]
SECTIONS = (("overall", "overall"), ("by_group", "age group"), ("by_site", "site"))


def _entries(coverage: dict) -> list[tuple[str, str, dict]]:
    """(section, key, row) in report order: overall, each age group, each site."""
    out = [("overall", "overall", coverage["overall"])]
    for section, _ in SECTIONS[1:]:
        out.extend((section, key, row) for key, row in (coverage.get(section) or {}).items())
    return out


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def coverage_table(report: dict, fmt_n) -> dict | None:
    """The coverage table ({"kind": "coverage", ...} as `tables._tables` makes them); None when
    the model was uncalibrated (or the report is older than issue 19)."""
    coverage = report.get("coverage")
    if not coverage:
        return None
    rows = []
    for section, key, row in _entries(coverage):
        label = key if section == "overall" else f"{dict(SECTIONS)[section]} {key}"
        width, mae = row["median_width_months"], row["mae_months"]
        rows.append(
            [
                label,
                fmt_n(row["n"]),
                _percent(row["coverage"]),
                "–"
                if row["ci_low"] is None
                else f"[{_percent(row['ci_low'])}, {_percent(row['ci_high'])}]",
                "–" if width is None else f"{width:.2f}",
                "–" if width is None or not mae else f"{width / mae:.2f}",
                "–" if mae is None else f"{mae:.2f}",
            ]
        )
    cal = coverage["calibration"]
    note = (
        f"Goal {coverage['goal']:.0%}. Intervals of the calibration on "
        f"{cal['validation_set']}:{cal['validation_set_version']} ({coverage['method']}); "
        "coverage is per TRUE (curated) age group, its interval a 95% Wilson interval."
    )
    if cal["in_sample"]:
        note += " In-sample: these items are the calibration's own, so coverage reads high."
    return {
        "kind": "coverage",
        "title": f"Prediction intervals: achieved coverage ({report['model']})",
        "columns": COVERAGE_COLUMNS,
        "rows": rows,
        "note": note,
    }


def coverage_csv_rows(report: dict, csv_row) -> list[dict]:
    """CSV rows: section "coverage_overall" / "coverage_by_group" / "coverage_by_site"."""
    coverage = report.get("coverage")
    if not coverage:
        return []
    return [
        csv_row(
            model=report["model"],
            section=f"coverage_{section}",
            group=key,
            n=row["n"],
            mae_months=row["mae_months"],
            coverage=row["coverage"],
            coverage_ci_low=row["ci_low"],
            coverage_ci_high=row["ci_high"],
            median_interval_width_months=row["median_width_months"],
        )
        for section, key, row in _entries(coverage)
    ]
