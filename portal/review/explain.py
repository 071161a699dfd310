"""Why a case is in the review queue, in one sentence of words and numbers.

One function writes it for the queue page, the viewer and the API (`why` on queue rows and on
the image detail). It reads the expected error through `predictions.services.expected_error`,
the same figure the score divides by, so the sentence and the score cannot disagree; ages are
written by `inference_worker.ages.years_months_text`, as everywhere a person reads them. What
label-error triage weighed beside the residual (a clerical slip that would explain it, the
patient's other films) follows from the same verdict that scored the case
(`predictions.triage`).
"""

from django.conf import settings

from inference_worker.ages import DAYS_PER_MONTH, DAYS_PER_YEAR, years_months_text
from portal.predictions.services import ExpectedError, expected_error, outlier_score
from portal.predictions.triage import Verdict

SEX_PLURAL = {"M": "boys", "F": "girls"}


def _group_words(group: str) -> str:
    """Group "0-1" -> "under 1 year", "1-3" -> "aged 1 to 3 years"."""
    low, high = group.split("-")
    if float(low) == 0:
        return f"under {high} year{'' if float(high) == 1 else 's'}"
    return f"aged {low} to {high} years"


def _whose(expected: ExpectedError) -> str:
    if expected.source == "group" and expected.group:
        people = SEX_PLURAL.get(expected.sex or "", "children of other or unrecorded sex")
        return f"for {people} {_group_words(expected.group)}"
    if expected.source == "overall":
        return "over all ages (the model card gives no figure for this age group and sex)"
    return "(a 1-month stand-in: the model card gives no expected error)"


def why_in_queue(
    *,
    recorded_days: int,
    predicted_days: int,
    sex: str,
    card: dict,
    threshold: float,
    score: float | None = None,
    verdict: Verdict | None = None,
    interval: tuple[int, int] | None = None,
) -> str:
    """E.g. "The model reads 3 y 4 m against a recorded 0 y 2 m, 38.2 months (3 y 2 m) older:
    20.1x the expected 1.9-month error for boys under 1 year, above the queue's threshold of
    2.0 times." The ratio is the residual-only score (`outlier_score`, under the configured
    rule: with the "interval" rule and a calibrated `interval`, the sentence says whether the
    recorded age is inside it and how far it lies against the interval's reach); with a
    triage `verdict`, what else moved the stored `score` follows, and the threshold is
    compared with that score."""
    residual = predicted_days - recorded_days
    months = abs(residual) / DAYS_PER_MONTH
    ratio = outlier_score(
        card=card,
        predicted_days=predicted_days,
        recorded_days=recorded_days,
        sex=sex,
        interval=interval,
    )
    if residual == 0:
        gap = "the same age"
    else:
        direction = "older" if residual > 0 else "younger"
        gap = f"{months:.1f} months ({years_months_text(abs(residual))}) {direction}"
    text = (
        f"The model reads {years_months_text(predicted_days)} against a recorded "
        f"{years_months_text(recorded_days)}, {gap}: "
    )
    if interval is not None and settings.OUTLIER_RULE == "interval":
        low, high = interval
        where = "outside" if ratio > 1 else "inside"
        text += (
            f"the recorded age is {where} the model's calibrated interval of "
            f"{years_months_text(low)} to {years_months_text(high)}, at {ratio:.1f}x the "
            "interval's reach on its side"
        )
    else:
        expected = expected_error(card=card, predicted_days=predicted_days, sex=sex)
        text += f"{ratio:.1f}x the expected {expected.months:.1f}-month error {_whose(expected)}"
    reasons = triage_reasons(verdict, recorded_days=recorded_days) if verdict else []
    if score is None or not reasons:
        side = "above" if (ratio if score is None else score) > threshold else "not above"
        return f"{text}, {side} the queue's threshold of {threshold:g} times."
    side = "above" if score > threshold else "not above"
    return (
        f"{text}. {' '.join(reasons)} Triage score {score:.1f}, {side} the queue's threshold "
        f"of {threshold:g}."
    )


def triage_reasons(verdict: Verdict, *, recorded_days: int) -> list[str]:
    """Sentences for what triage weighed beside the residual: the clerical slip that best
    explains the recorded age, and how the patient's other films' ages and dates agree."""
    reasons = []
    implied = verdict.implied_days
    if verdict.kind == "swapped_day_month" and implied is not None:
        reasons.append(
            "The recorded age matches the model's reading with the birth date's day and month "
            f"swapped (that would make the child {years_months_text(implied)})."
        )
    elif verdict.kind == "wrong_year" and implied is not None:
        years = f"{verdict.years} year{'' if verdict.years == 1 else 's'}"
        reasons.append(
            f"The recorded age matches the model's reading with the birth year off by {years} "
            f"(that would make the child {years_months_text(implied)})."
        )
    elif verdict.kind == "months_as_years" and implied is not None:
        reasons.append(
            f"The recorded age is exactly {round(recorded_days / DAYS_PER_YEAR)} years and the "
            f"model reads about as many months ({years_months_text(implied)}): months typed "
            "as years?"
        )
    others = verdict.siblings
    films = f"film{'' if others == 1 else 's'}"
    if verdict.disagreeing:
        gaps = ", ".join(_gap_words(abs(g)) for g in verdict.disagreeing[:3])
        reasons.append(
            f"Its recorded age disagrees with the study dates of {len(verdict.disagreeing)} of "
            f"the patient's {others} other {films} (by {gaps})."
        )
    elif others:
        reasons.append(
            f"Its recorded age agrees with the study dates of the patient's {others} other {films}."
        )
    return reasons


def _gap_words(days: int) -> str:
    """ "7 months", or "3 days" under a month."""
    if days < DAYS_PER_MONTH:
        return f"{days} day{'' if days == 1 else 's'}"
    months = round(days / DAYS_PER_MONTH)
    return f"{months} month{'' if months == 1 else 's'}"
