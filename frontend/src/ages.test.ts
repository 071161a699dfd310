// The TypeScript twin against the Python module: ages.expected.json is `table()` of
// inference_worker/ages.py, and tests/inference_worker/test_ages.py fails if it is stale.
import { describe, expect, it } from "vitest";
import {
  AGE_GROUPS,
  AGE_LIMIT_DAYS,
  DAYS_PER_MONTH,
  DAYS_PER_YEAR,
  MAX_AGE_YEARS,
  REPORTED_SEXES,
  SEXES,
  ageGroup,
  completedMonths,
  daysToYearsMonths,
  groupDays,
  groupName,
  inScope,
  normaliseSex,
  yearsMonthsText,
  yearsMonthsToDays,
} from "./ages";
import expected from "./ages.expected.json";

describe("ages.ts agrees with inference_worker/ages.py", () => {
  it("has the same constants", () => {
    expect({
      days_per_year: DAYS_PER_YEAR,
      days_per_month: DAYS_PER_MONTH,
      max_age_years: MAX_AGE_YEARS,
      age_limit_days: AGE_LIMIT_DAYS,
      sexes: [...SEXES],
      reported_sexes: [...REPORTED_SEXES],
    }).toEqual({
      days_per_year: expected.days_per_year,
      days_per_month: expected.days_per_month,
      max_age_years: expected.max_age_years,
      age_limit_days: expected.age_limit_days,
      sexes: expected.sexes,
      reported_sexes: expected.reported_sexes,
    });
  });

  it("has the same default groups, in years and in days", () => {
    const groups = AGE_GROUPS.map(([low, high]) => ({
      name: groupName(low, high),
      years: [low, high],
      days: groupDays(low, high),
    }));
    expect(groups).toEqual(expected.groups);
  });

  it("stores every (years 0-17, months 0-11) entry as the same days, in the same group", () => {
    expect(expected.entries).toHaveLength(18 * 12);
    for (const entry of expected.entries) {
      const days = yearsMonthsToDays(entry.years, entry.months);
      expect({ ...entry, days, group: ageGroup(days) }).toEqual(entry);
    }
  });

  it("shows every day from 0 to the first out of scope as the same completed months", () => {
    const shown = Array.from({ length: AGE_LIMIT_DAYS + 1 }, (_, days) => completedMonths(days));
    expect(shown).toEqual(expected.completed_months);
  });

  it("writes ages as Python does (\"y m\")", () => {
    expect(expected.texts.length).toBeGreaterThan(0);
    for (const [days, text] of expected.texts) expect([days, yearsMonthsText(Number(days))]).toEqual([days, text]);
  });

  it("normalises sex as Python does", () => {
    for (const [value, sex] of expected.sex_examples) expect([value, normaliseSex(value)]).toEqual([value, sex]);
  });
});

describe("the age rules", () => {
  it("round-trips every entry and puts it in the group its years name", () => {
    for (let years = 0; years < MAX_AGE_YEARS; years += 1) {
      for (let months = 0; months < 12; months += 1) {
        const days = yearsMonthsToDays(years, months);
        expect(daysToYearsMonths(days)).toEqual({ years, months });
        const [low, high] = AGE_GROUPS.find(([lo, hi]) => lo <= years && years < hi) ?? [NaN, NaN];
        expect(ageGroup(days)).toBe(groupName(low, high));
        expect(inScope(days)).toBe(true);
      }
    }
  });

  it("puts 1 y 0 m in 1-3, never 0-1, and the day before it in 0-1", () => {
    expect(yearsMonthsToDays(1, 0)).toBe(365);
    expect(ageGroup(365)).toBe("1-3");
    expect(ageGroup(364)).toBe("0-1");
    expect(daysToYearsMonths(364)).toEqual({ years: 0, months: 11 });
  });

  it("puts day 6574 out of scope and in no group", () => {
    expect(AGE_LIMIT_DAYS).toBe(6574);
    expect(inScope(AGE_LIMIT_DAYS - 1)).toBe(true);
    expect(inScope(AGE_LIMIT_DAYS)).toBe(false);
    expect(ageGroup(AGE_LIMIT_DAYS)).toBeNull();
    expect(daysToYearsMonths(AGE_LIMIT_DAYS)).toEqual({ years: 18, months: 0 });
  });

  it("refuses entries that are not whole numbers or months past 11", () => {
    for (const [years, months] of [
      [1, 12],
      [1.5, 0],
      [-1, 0],
      [0, Number.NaN],
      [Number.POSITIVE_INFINITY, 0],
    ]) {
      expect(() => yearsMonthsToDays(years, months)).toThrow(RangeError);
    }
    expect(() => groupDays(3, 1)).toThrow(RangeError);
    expect(() => groupDays(0, Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => completedMonths(Number.NaN)).toThrow(RangeError);
  });
});
