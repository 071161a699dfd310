"""What a reader needs to read a report: the definition of every figure and column, and the age
groups as the intervals of days the metrics used (from `inference_worker.ages`, the one home of
the boundaries), so that a printed report explains itself."""

from inference_worker.ages import (
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    group_days,
    group_name,
    years_months_text,
)
from portal.reports.render.tables import SMALL_MARK, SMALL_N


def definitions(report: dict) -> list[tuple[str, str]]:
    """(term, definition) for every figure and column the report shows."""
    boot = report.get("bootstrap") or {}
    resamples = boot.get("resamples") or 0
    interval = (
        f"the {100 * boot.get('confidence', 0.95):g}% percentile bootstrap interval of the "
        f"MAE: {resamples} resamples with replacement of the row's own items (seed "
        f"{boot.get('seed', 0)}); none for fewer than 2 items"
        if resamples
        else "not computed for this report (no bootstrap)"
    )
    out = [
        (
            "Ages and units",
            f"ages are whole days since birth; figures are in months (days / {DAYS_PER_MONTH:g}, "
            f"a mean month), the scatter plot in years (days / {DAYS_PER_YEAR:g}).",
        ),
        (
            "Curated age",
            "the age the set froze for each image: the recorded age as confirmed or corrected "
            "by review. Every error is predicted minus curated age.",
        ),
        (
            "N",
            "the items in the row: images of the set with a prediction from every model of "
            "the report (images without one are left out of every figure and counted).",
        ),
        ("MAE (months)", "mean absolute error, mean(|predicted − curated|); 0 is perfect."),
        ("MAE 95% CI (months)", interval + "."),
        (
            "RMSE (months)",
            "root mean squared error, √mean((predicted − curated)²); weighs large errors "
            "more than the MAE does.",
        ),
        (
            "bias (months)",
            "mean(predicted − curated): positive, the model predicts older than the curated "
            "age on average; negative, younger; 0, no systematic error (errors may still be "
            "large: see the MAE).",
        ),
        (
            "MAPE (%)",
            "mean absolute percentage error, mean(|predicted − curated| / curated) × 100, "
            f"over the items with a curated age of at least one month ({DAYS_PER_MONTH:g} "
            "days): under it a percentage is undefined (age 0) or meaningless.",
        ),
        ("MAPE N", "the items the MAPE is computed over: N minus excl."),
        (
            "excl.",
            "the items left out of the MAPE because their curated age is under one month; "
            "every other figure includes them.",
        ),
        (
            "rho",
            "Spearman's rank correlation of predicted and curated age (1: the same order).",
        ),
        (
            f"{SMALL_MARK} (small N)",
            f"N < {SMALL_N}: too few items for a stable figure; its interval is wide or "
            'absent. Read it with care. "–": no figure (no items, or too few for it).',
        ),
        (
            "Age group",
            "a half-open interval [low, high) of ages: from the low bound's day up to, not "
            "including, the high bound's day (the table below).",
        ),
    ]
    if copied := report.get("copied_corrections"):
        out.append(
            (
                "Equal to the model",
                "a correction (a decision that corrects the age: a read or an adjudication) "
                f"of an item, made before the set was frozen, whose age is within "
                f"{copied['tolerance_days']} days of {copied['model']}'s predicted age for "
                "the image: the reader may have taken the model's answer, and the item then "
                "scores the model against its own output. Blind: made with the model's output "
                "hidden (blind reading). ⚑ marks readers with such corrections; the flagged "
                "images are listed under the table.",
            )
        )
    if report.get("paired"):
        out.append(
            (
                "a - b (months)",
                "MAE of model a minus MAE of model b on the same items (negative: a is "
                "better), with a paired bootstrap interval (both scored on the same resamples).",
            )
        )
    return out


def age_group_bounds(report: dict) -> list[dict]:
    """Each age group as an interval in years and months and in days, from `ages.group_days`."""
    rows = []
    for low, high in report.get("age_groups") or []:
        first, end = group_days(low, high)
        rows.append(
            {
                "name": group_name(low, high),
                "interval": f"[{years_months_text(first)}, {years_months_text(end)})",
                "days": f"[{first}, {end})",
                "first_last": f"day {first} to day {end - 1}",
            }
        )
    return rows
