"""Why a case is in the review queue, in one sentence of words and numbers.

One function writes it for the queue page, the viewer and the API (`why` on queue rows and on
the image detail). It reads the expected error through `predictions.services.expected_error`,
the same figure the score divides by, so the sentence and the score cannot disagree; ages are
written by `inference_worker.ages.years_months_text`, as everywhere a person reads them.
"""

from inference_worker.ages import DAYS_PER_MONTH, years_months_text
from portal.predictions.services import ExpectedError, expected_error

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
    *, recorded_days: int, predicted_days: int, sex: str, card: dict, threshold: float
) -> str:
    """E.g. "The model reads 3 y 4 m against a recorded 0 y 2 m, 38.2 months (3 y 2 m) older:
    20.1x the expected 1.9-month error for boys under 1 year, above the queue's threshold of
    2.0 times." The ratio is the outlier score (|residual| / expected error)."""
    residual = predicted_days - recorded_days
    expected = expected_error(card=card, predicted_days=predicted_days, sex=sex)
    months = abs(residual) / DAYS_PER_MONTH
    ratio = months / expected.months
    if residual == 0:
        gap = "the same age"
    else:
        direction = "older" if residual > 0 else "younger"
        gap = f"{months:.1f} months ({years_months_text(abs(residual))}) {direction}"
    side = "above" if ratio > threshold else "not above"
    return (
        f"The model reads {years_months_text(predicted_days)} against a recorded "
        f"{years_months_text(recorded_days)}, {gap}: {ratio:.1f}x the expected "
        f"{expected.months:.1f}-month error {_whose(expected)}, {side} the queue's threshold "
        f"of {threshold:g} times."
    )
