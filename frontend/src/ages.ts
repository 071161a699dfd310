// The age and sex rules of inference_worker/ages.py, for the browser: the same constants,
// boundaries and conversions. ages.test.ts checks this module against ages.expected.json,
// which pytest (tests/inference_worker/test_ages.py) checks against the Python module, so the
// two cannot disagree without a test failing. Regenerate the JSON after changing the rules:
//   python -m inference_worker.ages > frontend/src/ages.expected.json
//
// The boundary of m months is the whole day floor(m x 30.4375), of y years floor(y x 365.25).
// An entered (years, months) is stored as its boundary day, and an age shows as the most
// (years, months) whose boundary it has reached, so every entry shows back unchanged.

export const DAYS_PER_YEAR = 365.25;
export const MONTHS_PER_YEAR = 12;
export const DAYS_PER_MONTH = DAYS_PER_YEAR / MONTHS_PER_YEAR; // 30.4375, exact in binary
export const MAX_AGE_YEARS = 18;
/** Default age groups in years, each [low, high). */
export const AGE_GROUPS: readonly (readonly [number, number])[] = [
  [0, 1],
  [1, 3],
  [3, 6],
  [6, 12],
  [12, 18],
];
export const SEXES = ["M", "F", "O"] as const;
/** The sexes reports break every age group down by (Li et al. 2025 report males and females). */
export const REPORTED_SEXES = ["M", "F"] as const;
export type Sex = (typeof SEXES)[number];

/** The boundary day of an age in years (fractions allowed): floor(years x 365.25). */
export function yearDays(years: number): number {
  if (!Number.isFinite(years) || years < 0) throw new RangeError(`years must be a finite number from 0, not ${years}`);
  return Math.floor(years * DAYS_PER_YEAR);
}

/** The boundary day of a whole number of months: floor(months x 30.4375). */
export function monthDays(months: number): number {
  if (!Number.isInteger(months) || months < 0) throw new RangeError(`months must be a whole number from 0, not ${months}`);
  return Math.floor(months * DAYS_PER_MONTH);
}

/** The most months whose boundary `days` has reached (the inverse of monthDays). */
export function completedMonths(days: number): number {
  if (!Number.isFinite(days) || days < 0) throw new RangeError(`an age must be a finite number of days from 0, not ${days}`);
  const whole = Math.floor(days);
  // monthDays(m) <= whole  <=>  m x 30.4375 < whole + 1; in integers: x 16 / 487.
  return Math.floor((16 * (whole + 1) - 1) / 487);
}

/** The first age out of scope, in days: ages are 0 <= days < AGE_LIMIT_DAYS (6574). */
export const AGE_LIMIT_DAYS = yearDays(MAX_AGE_YEARS);

export function inScope(days: number): boolean {
  return Number.isFinite(days) && days >= 0 && days < AGE_LIMIT_DAYS;
}

/** An entered age (years, months 0-11) as the whole days stored for it. */
export function yearsMonthsToDays(years: number, months: number): number {
  if (!Number.isInteger(years) || years < 0) throw new RangeError(`years must be a whole number from 0, not ${years}`);
  if (!Number.isInteger(months) || months < 0 || months >= MONTHS_PER_YEAR) {
    throw new RangeError(`months must be a whole number from 0 to 11, not ${months}`);
  }
  return monthDays(years * MONTHS_PER_YEAR + months);
}

/** An age in days as shown: completed years and months; yearsMonthsToDays' inverse. */
export function daysToYearsMonths(days: number): { years: number; months: number } {
  const total = completedMonths(days);
  return { years: Math.floor(total / MONTHS_PER_YEAR), months: total % MONTHS_PER_YEAR };
}

/** An age in days as a person reads it: "1 y 0 m" (completed years and months). */
export function yearsMonthsText(days: number): string {
  const { years, months } = daysToYearsMonths(days);
  return `${years} y ${months} m`;
}

/** An age group in years as the half-open interval [low, high) of whole days. */
export function groupDays(low: number, high: number): [number, number] {
  if (!(Number.isFinite(low) && Number.isFinite(high) && low >= 0 && low < high && high <= MAX_AGE_YEARS)) {
    throw new RangeError(`age group ${low}-${high}: expected 0 <= low < high <= 18 years`);
  }
  return [yearDays(low), yearDays(high)];
}

/** "1-3", as the queue's age_group filter and the report name a group. */
export function groupName(low: number, high: number): string {
  return `${low}-${high}`;
}

/** The name of the first group that holds the age, or null. */
export function ageGroup(days: number, groups: readonly (readonly [number, number])[] = AGE_GROUPS): string | null {
  for (const [low, high] of groups) {
    const [first, end] = groupDays(low, high);
    if (first <= days && days < end) return groupName(low, high);
  }
  return null;
}

/** M, F or O (everything else, blank included). */
export function normaliseSex(value: unknown): Sex {
  const sex = String(value ?? "").trim().toUpperCase().slice(0, 1);
  return sex === "M" || sex === "F" ? sex : "O";
}
