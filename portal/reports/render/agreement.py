"""The report's reader agreement (its `agreement` section, from double reads) as a table, a
summary line and definitions, for the page, the HTML file and the PDF; nothing where the set
has no double-read films (and for reports made before the section existed)."""

from inference_worker.agreement import LIMITS_Z
from portal.reports.render.tables import NO_VALUE, fmt, fmt_ci, fmt_n

COLUMNS = [
    "age group",
    "N films",
    "readers' MAE (months)",
    "ICC(A,1)",
    "bias (months)",
    "lower limit (months)",
    "upper limit (months)",
    "model MAE, same films (months)",
]


def _cell(figure: dict, decimals: int = 2) -> str:
    """ "2.40 [2.06, 2.80]": the figure and its interval."""
    value = fmt(figure["value"], decimals) or NO_VALUE
    ci = fmt_ci(figure["ci_low"], figure["ci_high"], decimals)
    return f"{value} {ci}" if ci else value


def _row(group: str, section: dict) -> list[str]:
    limits = section["bland_altman"]
    model = section.get("model_mae_months") or {"value": None, "n": 0}
    return [
        group,
        fmt_n(section["n"]),
        _cell(section["mae_between_readers_months"]),
        _cell(section["icc"], 3),
        _cell(limits["bias"]),
        _cell(limits["lower"]),
        _cell(limits["upper"]),
        f"{fmt(model['value']) or NO_VALUE} (N {model['n']})",
    ]


def agreement_tables(report: dict) -> list[dict]:
    """One table (kind "agreement"): overall, then each age group with double reads."""
    section = report.get("agreement")
    if not section:
        return []
    rows = [_row("overall", section)]
    rows += [_row(group, s) for group, s in section["by_group"].items()]
    excluded = section.get("excluded_pairs") or 0
    note = (
        "First read minus second read, on the set's double-read films, from reads made before "
        "the set was frozen; each figure with its bootstrap interval."
        + (f" {excluded} pairs left out: a reader excluded the film." if excluded else "")
    )
    return [
        {
            "kind": "agreement",
            "title": f"Reader agreement (double reads) beside {section.get('model', 'the model')}",
            "columns": COLUMNS,
            "rows": rows,
            "note": note,
        }
    ]


def agreement_summary(report: dict) -> list[str]:
    section = report.get("agreement")
    if not section:
        return []
    limits = section["bland_altman"]
    model = section.get("model_mae_months") or {"value": None}
    return [
        f"Reader agreement on {section['n']} double-read films: readers' MAE "
        f"{_cell(section['mae_between_readers_months'])} months, ICC(A,1) "
        f"{_cell(section['icc'], 3)}, bias {fmt(limits['bias']['value']) or NO_VALUE} months "
        f"(limits {fmt(limits['lower']['value']) or NO_VALUE} to "
        f"{fmt(limits['upper']['value']) or NO_VALUE}); the model's MAE on them "
        f"{fmt(model['value']) or NO_VALUE} months"
    ]


def agreement_definitions(report: dict) -> list[tuple[str, str]]:
    if not report.get("agreement"):
        return []
    return [
        (
            "Double-read films",
            "films of the set read by two reviewers independently (a site with double "
            "reading): the first read and the second read, before the set was frozen; a "
            "film counts once, in the age group of its curated age.",
        ),
        (
            "readers' MAE (months)",
            "mean(|first read − second read|): how far two readers' ages for the same film "
            "are apart, to set beside the model's MAE on the same films.",
        ),
        (
            "ICC(A,1)",
            "intraclass correlation, two-way random effects, absolute agreement, single rater "
            "(McGraw & Wong 1996; Shrout & Fleiss ICC(2,1)): 1 means the readers give the same "
            "ages; it falls with any disagreement, systematic or not.",
        ),
        (
            "bias, lower and upper limit (months)",
            "Bland-Altman (1986): bias = mean(first − second read); the 95% limits of "
            f"agreement = bias ∓ {LIMITS_Z} × SD of the differences, where about 95% of two "
            "readers' differences fall. Intervals: percentile bootstrap over the films, as "
            "for the MAE.",
        ),
    ]
