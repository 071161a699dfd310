"""Age at the examination (from the dates, else PatientAge) and sex, as ingest records them."""

import datetime as dt
import re
from dataclasses import dataclass

from pydicom.dataset import Dataset

from portal.ingest.dicom.errors import Rejected

DAYS_PER_MONTH = 30.4375
DAYS_PER_YEAR = 365.25
MAX_AGE_YEARS = 18
_PATIENT_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_AGE_UNIT_DAYS = {"D": 1, "W": 7, "M": DAYS_PER_MONTH, "Y": DAYS_PER_YEAR}
_AGE_UNIT_RESOLUTION = {"D": 1, "W": 7, "M": 30, "Y": 365}


@dataclass(frozen=True)
class Age:
    days: int
    source: str  # "birthdate" | "patient_age"
    resolution_days: int


def parse_date(value: object) -> dt.date | None:
    """DA values as real files write them: YYYYMMDD, or the old ACR-NEMA YYYY.MM.DD."""
    text = re.sub(r"[.\-/\s]", "", str(value or ""))[:8]
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def compute_age(ds: Dataset) -> Age:
    """Age at the examination: study (or acquisition) date minus birth date, else PatientAge."""
    birth_raw = ds.get("PatientBirthDate")
    birth = parse_date(birth_raw)
    exam = parse_date(ds.get("StudyDate")) or parse_date(ds.get("AcquisitionDate"))
    if birth is not None and exam is not None:
        days = (exam - birth).days
        if days < 0:
            raise Rejected("negative age: the study date is before the birth date")
        if exam >= _add_years(birth, MAX_AGE_YEARS):
            raise Rejected(
                f"age {days / DAYS_PER_YEAR:.1f} years is out of scope (18 years or more)"
            )
        return Age(days=days, source="birthdate", resolution_days=1)
    age = _patient_age(ds.get("PatientAge"))
    if age is not None:
        return age
    if birth is None and str(birth_raw or "").strip():
        problem = "the birth date cannot be parsed"
    elif birth is not None:
        problem = "there is a birth date but no study or acquisition date"
    else:
        problem = "no birth date"
    patient_age = str(ds.get("PatientAge") or "").strip()
    detail = "PatientAge cannot be parsed" if patient_age else "no PatientAge"
    raise Rejected(f"missing age label: {problem} and {detail}")


def _patient_age(value: object) -> Age | None:
    match = _PATIENT_AGE.match(str(value or ""))
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2).upper()
    exact_days = number * _AGE_UNIT_DAYS[unit]
    # Compared before rounding, in the age's own unit: 216M is 6574.5 days, which rounds
    # (half to even) to 6574, a day short of 18 years, though it is 18 years exactly.
    if exact_days >= MAX_AGE_YEARS * DAYS_PER_YEAR:
        raise Rejected(
            f"age {exact_days / DAYS_PER_YEAR:.1f} years is out of scope (18 years or more)"
        )
    days = round(exact_days)
    return Age(days=days, source="patient_age", resolution_days=_AGE_UNIT_RESOLUTION[unit])


def normalise_sex(value: object) -> str:
    sex = str(value or "").strip().upper()[:1]
    return sex if sex in {"M", "F"} else "O"


def format_patient_age(days: int) -> str:
    """The DICOM AS string closest to an age in days (nnnD up to 999 days, then months, years)."""
    if days < 1000:
        return f"{days:03d}D"
    months = int(days // DAYS_PER_MONTH)
    if months < 1000:
        return f"{months:03d}M"
    return f"{int(days // DAYS_PER_YEAR):03d}Y"
