"""Age at the examination (from the dates, else PatientAge) and sex, as ingest records them."""

import datetime as dt
import re
from dataclasses import dataclass

from pydicom.dataset import Dataset

from inference_worker.ages import (
    AGE_LIMIT_DAYS,
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    completed_months,
    days_to_years_months,
)
from portal.ingest.dicom import elements
from portal.ingest.dicom.errors import Rejected
from portal.ingest.outcomes import Age

_PATIENT_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_AGE_UNIT_DAYS = {"D": 1, "W": 7, "M": DAYS_PER_MONTH, "Y": DAYS_PER_YEAR}
_AGE_UNIT_RESOLUTION = {"D": 1, "W": 7, "M": 30, "Y": 365}


def parse_date(value: object) -> dt.date | None:
    """DA values as real files write them: YYYYMMDD, or the old ACR-NEMA YYYY.MM.DD."""
    text = re.sub(r"[.\-/\s]", "", str(value or ""))[:8]
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def compute_age(ds: Dataset) -> Age:
    """Age at the examination: study (or acquisition) date minus birth date, else PatientAge."""
    birth_raw = elements.get(ds, "PatientBirthDate")
    birth = parse_date(birth_raw)
    exam = parse_date(elements.get(ds, "StudyDate")) or parse_date(
        elements.get(ds, "AcquisitionDate")
    )
    if birth is not None and exam is not None:
        days = (exam - birth).days
        if days < 0:
            raise Rejected("negative age: the study date is before the birth date")
        # One rule in days (inference_worker.ages): the limit is the fewest days 18 calendar
        # years can span, so an 18th birthday is always out of scope.
        if days >= AGE_LIMIT_DAYS:
            raise Rejected(_out_of_scope(days))
        return Age(days=days, source="birthdate", resolution_days=1)
    patient_age = str(elements.get(ds, "PatientAge") or "").strip()
    age = _patient_age(patient_age)
    if age is not None:
        return age
    if birth is None and str(birth_raw or "").strip():
        problem = "the birth date cannot be parsed"
    elif birth is not None:
        problem = "there is a birth date but no study or acquisition date"
    else:
        problem = "no birth date"
    detail = "PatientAge cannot be parsed" if patient_age else "no PatientAge"
    raise Rejected(f"missing age label: {problem} and {detail}")


def _parse_patient_age(value: object) -> tuple[int, str] | None:
    """PatientAge (AS) as (number, unit D/W/M/Y); None when it cannot be parsed."""
    match = _PATIENT_AGE.match(str(value or ""))
    if not match:
        return None
    return int(match.group(1)), match.group(2).upper()


def _patient_age(value: object) -> Age | None:
    parsed = _parse_patient_age(value)
    if parsed is None:
        return None
    number, unit = parsed
    exact_days = number * _AGE_UNIT_DAYS[unit]
    # The exact age and the whole days kept must both be in scope (216M is exactly 18 years).
    days = round(exact_days)
    if max(exact_days, days) >= AGE_LIMIT_DAYS:
        raise Rejected(_out_of_scope(exact_days))
    return Age(days=days, source="patient_age", resolution_days=_AGE_UNIT_RESOLUTION[unit])


@dataclass(frozen=True)
class AgeDisagreement:
    """PatientAge and the dates disagree: each age as the report says it (numbers only)."""

    patient_age: str
    dates: str


def patient_age_disagreement(ds: Dataset, age: Age) -> AgeDisagreement | None:
    """When the age comes from the dates and PatientAge says otherwise by more than one unit
    of its own (015Y on a child the dates make 5 years 2 months; 1 unit is rounding or an
    age written when the exam was booked), both ages; None when they agree, or there is
    nothing to compare. PatientAge counts completed units, as the dates are counted here."""
    # The keys' dict lookup, not Dataset.__contains__ (which converts to a Tag first).
    if age.source != "birthdate" or _PATIENT_AGE_TAG not in ds.keys():  # noqa: SIM118
        return None
    parsed = _parse_patient_age(ds[_PATIENT_AGE_TAG].value)
    if parsed is None:
        return None
    number, unit = parsed
    if abs(_in_unit(age.days, unit) - number) <= 1:
        return None
    return AgeDisagreement(_count(number, _UNIT_NAMES[unit]), _describe_days(age.days, unit))


_PATIENT_AGE_TAG = 0x00101010
_UNIT_NAMES = {"D": "day", "W": "week", "M": "month", "Y": "year"}


def _in_unit(days: int, unit: str) -> int:
    """Completed units of an age in days, by the rules of inference_worker.ages."""
    if unit == "Y":
        return days_to_years_months(days)[0]
    if unit == "M":
        return completed_months(days)
    return days // 7 if unit == "W" else days


def _describe_days(days: int, unit: str) -> str:
    """An age from the dates in PatientAge's unit, finer where that unit has a finer part:
    years and months for Y, months for M, weeks and days for W, days for D."""
    if unit == "M":
        return _count(completed_months(days), "month")
    if unit == "Y":
        years, months = days_to_years_months(days)
        parts = [_count(years, "year")] if years else []
        if months or not years:
            parts.append(_count(months, "month"))
        return " ".join(parts)
    if unit == "W":
        weeks, rest = divmod(days, 7)
        return " ".join([_count(weeks, "week")] + ([_count(rest, "day")] if rest else []))
    return _count(days, "day")


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" + ("" if number == 1 else "s")


def _out_of_scope(days: float) -> str:
    return f"age {days / DAYS_PER_YEAR:.1f} years is out of scope (18 years or more)"


def format_patient_age(days: int) -> str:
    """The DICOM AS string closest to an age in days (nnnD up to 999 days, then months, years)."""
    if days < 1000:
        return f"{days:03d}D"
    months = completed_months(days)
    if months < 1000:
        return f"{months:03d}M"
    return f"{days_to_years_months(days)[0]:03d}Y"
