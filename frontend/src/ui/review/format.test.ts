// The correction form end to end, without the browser: what a reviewer types in years and
// months is sent as days that show back unchanged, in the group the queue filter, the
// validation-set filter and the report give those days (ages.expected.json, which the
// portal's own filters are tested against in tests/portal/review/test_age_rules.py).
import { describe, expect, it } from "vitest";
import { groupDays } from "../../ages";
import expected from "../../ages.expected.json";
import { formatAge } from "./format";
import { readCorrection } from "./forms";

function typed(years: number, months: number): number {
  const request = readCorrection(String(years), String(months));
  if (typeof request === "string") throw new Error(request);
  if (request.decision !== "correct") throw new Error(`a ${request.decision}, not a correction`);
  return request.age_days;
}

describe("the correction form", () => {
  it("shows every (years 0-17, months 0-11) entered back unchanged", () => {
    for (let years = 0; years < 18; years += 1) {
      for (let months = 0; months < 12; months += 1) {
        const days = typed(years, months);
        expect(formatAge(days)).toBe(`${years} y ${months} m`);
      }
    }
  });

  it("sends the days Python stores for each entry, inside its group's queue and set filters", () => {
    const groups = new Map(expected.groups.map((g) => [g.name, g]));
    for (const entry of expected.entries) {
      const days = typed(entry.years, entry.months);
      expect(days).toBe(entry.days);
      const group = groups.get(entry.group);
      if (!group) throw new Error(`no group ${entry.group}`);
      // The queue's ?age_group=LOW-HIGH and the report: [low, high) in days.
      const [first, end] = groupDays(group.years[0], group.years[1]);
      expect([first, end]).toEqual(group.days);
      expect(first <= days && days < end).toBe(true);
      // A validation set's age group: min_age_days = first, max_age_days = end - 1.
      expect(first <= days && days <= end - 1).toBe(true);
      // And in no other group.
      const others = expected.groups.filter((g) => g.name !== entry.group);
      expect(others.some((g) => g.days[0] <= days && days < g.days[1])).toBe(false);
    }
  });

  it("stores 1 y 0 m as 365 days, in 1-3", () => {
    expect(typed(1, 0)).toBe(365);
    expect(formatAge(365)).toBe("1 y 0 m");
  });

  it.each([
    ["1", "12", "Months must be 0 to 11"],
    ["18", "0", "under 18 years"],
    ["1.5", "0", "whole numbers"],
    ["-1", "0", "whole numbers"],
    ["1e3", "0", "whole numbers"],
    ["٣", "0", "whole numbers"],
    ["", "", "Enter the age"],
  ])("refuses years %j, months %j", (years, months, message) => {
    const request = readCorrection(years, months);
    expect(typeof request).toBe("string");
    expect(request as string).toContain(message);
  });
});
