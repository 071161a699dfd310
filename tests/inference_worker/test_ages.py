"""The one home of the age and sex rules: entries round-trip, land in the group their years
name, 18 years is one day count, the TypeScript twin's expectations are current, and no other
module writes the rules again."""

import datetime as dt
import json
import math
import re
from pathlib import Path

import pytest

from inference_worker import ages
from inference_worker.ages import (
    AGE_GROUPS,
    AGE_GROUPS_DAYS,
    AGE_LIMIT_DAYS,
    age_group,
    check_group,
    completed_months,
    days_to_years_months,
    group_days,
    in_scope,
    month_days,
    normalise_sex,
    year_days,
    years_months_to_days,
)

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = [(years, months) for years in range(18) for months in range(12)]


def test_constants_and_the_first_age_out_of_scope():
    assert (ages.DAYS_PER_YEAR, ages.DAYS_PER_MONTH, ages.MAX_AGE_YEARS) == (365.25, 30.4375, 18)
    assert AGE_LIMIT_DAYS == 6574
    assert AGE_GROUPS_DAYS == ((0, 365), (365, 1095), (1095, 2191), (2191, 4383), (4383, 6574))


@pytest.mark.parametrize(("years", "months"), ENTRIES)
def test_every_entry_converts_to_days_and_back_unchanged(years, months):
    days = years_months_to_days(years, months)
    assert days_to_years_months(days) == (years, months)
    assert in_scope(days)


@pytest.mark.parametrize(("years", "months"), ENTRIES)
def test_every_entry_lands_in_the_group_its_years_name(years, months):
    low, high = next(g for g in AGE_GROUPS if g[0] <= years < g[1])
    assert age_group(years_months_to_days(years, months)) == f"{low}-{high}"


def test_one_year_zero_months_is_in_one_to_three_never_zero_to_one():
    assert years_months_to_days(1, 0) == 365
    assert (age_group(364), age_group(365)) == ("0-1", "1-3")
    assert days_to_years_months(364) == (0, 11)
    assert (ages.years_months_text(364), ages.years_months_text(365)) == ("0 y 11 m", "1 y 0 m")


def test_completed_months_is_the_inverse_of_the_month_boundaries():
    for days in range(AGE_LIMIT_DAYS + 400):
        m = completed_months(days)
        assert month_days(m) <= days < month_days(m + 1)
    assert completed_months(30.9) == completed_months(30)  # completed days only


def test_groups_are_half_open_in_days_and_nothing_is_in_scope_from_day_6574():
    for (low, high), (first, end) in zip(AGE_GROUPS, AGE_GROUPS_DAYS, strict=True):
        name = f"{low}-{high}"
        assert age_group(first) == name
        assert age_group(end - 1) == name
        assert age_group(end - 0.5) == name  # a fraction of a day has not completed it
    assert [age_group(d) for d in (-1, AGE_LIMIT_DAYS, 99999)] == [None, None, None]
    assert (in_scope(AGE_LIMIT_DAYS - 1), in_scope(AGE_LIMIT_DAYS)) == (True, False)
    assert [in_scope(d) for d in (math.nan, math.inf, -1)] == [False, False, False]


def test_a_birthday_always_reaches_its_year_boundary_so_an_18th_birthday_is_out_of_scope():
    birth = dt.date(1996, 1, 1)
    while birth < dt.date(2012, 1, 1):
        for years in (1, 3, 6, 12, 18):
            try:
                birthday = birth.replace(year=birth.year + years)
            except ValueError:  # 29 February: the birthday is 1 March
                birthday = dt.date(birth.year + years, 3, 1)
            assert (birthday - birth).days >= year_days(years)
        birth += dt.timedelta(days=1)
    assert not in_scope((dt.date(2018, 5, 15) - dt.date(2000, 5, 15)).days)


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (years_months_to_days, (1, 12)),
        (years_months_to_days, (-1, 0)),
        (years_months_to_days, (1.5, 0)),
        (years_months_to_days, (True, 0)),
        (year_days, (math.inf,)),
        (year_days, (math.nan,)),
        (completed_months, (math.nan,)),
        (completed_months, (-1,)),
        (check_group, (3, 1)),
        (check_group, (0, 19)),
        (check_group, (math.nan, 1)),
        (group_days, (-math.inf, 1)),
    ],
)
def test_conversions_refuse_what_is_not_an_age(call, args):
    with pytest.raises(ValueError, match=r"."):
        call(*args)


def test_sex_is_normalised_to_m_f_or_o():
    values = ("M", "f ", "", None, "X", "male", " Female", "o")
    assert [normalise_sex(v) for v in values] == ["M", "F", "O", "O", "O", "M", "F", "O"]


def test_the_typescript_twins_expectations_are_the_python_rules():
    """frontend/src/ages.test.ts checks ages.ts against this file; regenerate it with
    `python -m inference_worker.ages > frontend/src/ages.expected.json`."""
    stored = json.loads((ROOT / "frontend/src/ages.expected.json").read_text())
    assert stored == json.loads(json.dumps(ages.table()))


# The rules, written again anywhere but in their two homes, are a second chance to disagree.
_DUPLICATES = re.compile(r"30\.4375|365\.25|\b657[345]\b|upper\(\)\[:1\]")
_HOMES = {"inference_worker/ages.py", "frontend/src/ages.ts"}


def test_no_other_module_writes_the_age_rules_again():
    found = []
    for folder in ("portal", "inference_worker", "bench", "frontend/src"):
        for path in sorted((ROOT / folder).rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if (
                path.suffix not in {".py", ".ts", ".html"}
                or relative in _HOMES
                or "/migrations/" in relative
                or relative.endswith(".test.ts")
            ):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _DUPLICATES.search(line):
                    found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []
