"""The one home of the age and sex rules: day constants, the first age out of scope, the age
groups, sex normalisation and the days <-> (years, months) conversions.

Torch-free and numpy-free: ingest, review, validation, reports, metrics and the phantoms import
it, and `frontend/src/ages.ts` mirrors it (tested against `table()`, see docs/ages.md).

Ages are whole days since birth. A mean year is 365.25 days and a mean month 365.25 / 12 =
30.4375 days (both exact in binary floating point). Every boundary, of a month, a year, an age
group or the scope, is one function of the mean: the boundary of `m` months is the whole day
`floor(m * 30.4375)`, and of `y` years `floor(y * 365.25)`. For whole years that is 365 y +
floor(y / 4), the fewest days `y` calendar years can span: a child on or past a birthday has
always reached that birthday's boundary. So 18 years, the first age out of scope, is day 6574,
and an 18th birthday (6574 or 6575 days) is always out of scope.

An age shows as the most (years, months) whose boundary it has reached, and an entered
(years, months) is stored as exactly that boundary, so every entry shows back unchanged and
lands in the age group its years name: 1 y 0 m is day 365, in 1-3 and never in 0-1.
"""

import json
import math
from collections.abc import Sequence

DAYS_PER_YEAR = 365.25
MONTHS_PER_YEAR = 12
DAYS_PER_MONTH = DAYS_PER_YEAR / MONTHS_PER_YEAR  # 30.4375
MAX_AGE_YEARS = 18
# Default age groups in years, each [low, high); reports store groups in years (JSON).
AGE_GROUPS: tuple[tuple[float, float], ...] = ((0, 1), (1, 3), (3, 6), (6, 12), (12, 18))
SEXES = ("M", "F", "O")
# The sexes reports break every age group down by (Li et al. 2025 report males and females).
REPORTED_SEXES = ("M", "F")


def year_days(years: float) -> int:
    """The boundary day of an age in years (fractions allowed): floor(years x 365.25)."""
    if not math.isfinite(years) or years < 0:
        raise ValueError(f"years must be a finite number from 0, not {years!r}")
    return math.floor(years * DAYS_PER_YEAR)


def month_days(months: int) -> int:
    """The boundary day of a whole number of months: floor(months x 30.4375), exact in floats."""
    if isinstance(months, bool) or not isinstance(months, int) or months < 0:
        raise ValueError(f"months must be a whole number from 0, not {months!r}")
    return math.floor(months * DAYS_PER_MONTH)


def completed_months(days: float) -> int:
    """The most months whose boundary `days` has reached (the inverse of `month_days`)."""
    if not math.isfinite(days) or days < 0:
        raise ValueError(f"an age must be a finite number of days from 0, not {days!r}")
    whole = math.floor(days)
    # month_days(m) <= whole  <=>  m * 30.4375 < whole + 1; integers keep it exact (x 16 / 487).
    return (16 * (whole + 1) - 1) // 487


# The first age out of scope, in days: ages are 0 <= days < AGE_LIMIT_DAYS (6574).
AGE_LIMIT_DAYS = year_days(MAX_AGE_YEARS)


def in_scope(days: float) -> bool:
    """0 days to under 18 years (DESIGN.md, Ages)."""
    return math.isfinite(days) and 0 <= days < AGE_LIMIT_DAYS


def years_months_to_days(years: int, months: int) -> int:
    """An entered age (years, months 0-11) as the whole days stored for it."""
    if isinstance(years, bool) or not isinstance(years, int) or years < 0:
        raise ValueError(f"years must be a whole number from 0, not {years!r}")
    if isinstance(months, bool) or not isinstance(months, int) or not 0 <= months < 12:
        raise ValueError(f"months must be a whole number from 0 to 11, not {months!r}")
    return month_days(years * MONTHS_PER_YEAR + months)


def days_to_years_months(days: float) -> tuple[int, int]:
    """An age in days as shown: completed (years, months); `years_months_to_days`' inverse."""
    years, months = divmod(completed_months(days), MONTHS_PER_YEAR)
    return years, months


def years_months_text(days: float) -> str:
    """An age in days as a person reads it: "1 y 0 m" (completed years and months)."""
    years, months = days_to_years_months(days)
    return f"{years} y {months} m"


# Days whose "y m" text the TypeScript twin must show alike: month and year edges either side.
TEXT_EXAMPLES = (0, 1, 29, 30, 59, 60, 183, 364, 365, 366, 730, 1095, 2190, 4383, 6573)


def check_group(low: float, high: float) -> None:
    """An age group in years must be finite, from 0, no later than 18 years, and not empty."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("age group bounds must be finite numbers of years")
    if not 0 <= low < high <= MAX_AGE_YEARS:
        raise ValueError(f"age group {low:g}-{high:g}: expected 0 <= low < high <= 18 years")


def group_days(low: float, high: float) -> tuple[int, int]:
    """An age group in years as the half-open interval [low, high) of whole days."""
    check_group(low, high)
    return year_days(low), year_days(high)


def group_name(low: float, high: float) -> str:
    return f"{low:g}-{high:g}"


def age_group(days: float, groups: Sequence[Sequence[float]] = AGE_GROUPS) -> str | None:
    """The name ("1-3") of the first group that holds the age, or None."""
    for low, high in groups:
        first, end = year_days(low), year_days(high)
        if first <= days < end:
            return group_name(low, high)
    return None


AGE_GROUPS_DAYS: tuple[tuple[int, int], ...] = tuple(group_days(lo, hi) for lo, hi in AGE_GROUPS)


def normalise_sex(value: object) -> str:
    """M, F or O (everything else, blank included), from DICOM PatientSex or a CSV column."""
    sex = str(value or "").strip().upper()[:1]
    return sex if sex in ("M", "F") else "O"


def table() -> dict:
    """The rules as data, for the TypeScript twin's test (`frontend/src/ages.expected.json`):
    the constants, the default groups in days, and every (years 0-17, months 0-11) entry."""
    entries = []
    for years in range(MAX_AGE_YEARS):
        for months in range(MONTHS_PER_YEAR):
            days = years_months_to_days(years, months)
            entries.append(
                {"years": years, "months": months, "days": days, "group": age_group(days)}
            )
    return {
        "days_per_year": DAYS_PER_YEAR,
        "days_per_month": DAYS_PER_MONTH,
        "max_age_years": MAX_AGE_YEARS,
        "age_limit_days": AGE_LIMIT_DAYS,
        "sexes": list(SEXES),
        "reported_sexes": list(REPORTED_SEXES),
        "sex_examples": [
            [value, normalise_sex(value)]
            for value in ("M", "f ", "", None, "X", "male", " Female", "o", "U")
        ],
        "groups": [
            {"name": group_name(lo, hi), "years": [lo, hi], "days": list(group_days(lo, hi))}
            for lo, hi in AGE_GROUPS
        ],
        "entries": entries,
        # how a person reads an age: days -> "y m", at month and year edges
        "texts": [[d, years_months_text(d)] for d in TEXT_EXAMPLES],
        # completed months shown for every whole day from 0 to the first out of scope
        "completed_months": [completed_months(d) for d in range(AGE_LIMIT_DAYS + 1)],
    }


if __name__ == "__main__":  # python -m inference_worker.ages > frontend/src/ages.expected.json
    print(json.dumps(table(), separators=(",", ":")))
