// What the correction and exclusion forms send, or why they cannot yet.
import type { DecisionRequest, ExcludeReason } from "../../api/client";
import { MAX_AGE_YEARS, yearsMonthsToDays } from "../../ages";

const WHOLE = /^[0-9]{1,3}$/;

/** A correction in years and months; the revision is filled in when it is sent. The days
 * are those ages.ts stores for the entry, which show back as the same years and months. */
export function readCorrection(yearsValue: string, monthsValue: string): DecisionRequest | string {
  const yearsText = yearsValue.trim();
  const monthsText = monthsValue.trim();
  if (yearsText === "" && monthsText === "") return "Enter the age in years and months.";
  if (![yearsText, monthsText].every((text) => text === "" || WHOLE.test(text))) {
    return "Years and months must be whole numbers of at least 0.";
  }
  const years = yearsText === "" ? 0 : Number(yearsText);
  const months = monthsText === "" ? 0 : Number(monthsText);
  if (months > 11) return "Months must be 0 to 11 (add a year instead).";
  if (years >= MAX_AGE_YEARS) return `The age must be under ${MAX_AGE_YEARS} years.`;
  return { decision: "correct", age_days: yearsMonthsToDays(years, months), revision: 0 };
}

export function readExclusion(reasonValue: string, commentValue: string): DecisionRequest | string {
  const reason = reasonValue as ExcludeReason | "";
  if (reason === "") return "Choose a reason (1-5).";
  const comment = commentValue.trim();
  if (reason === "other" && comment === "") return "Say why in the comment.";
  return { decision: "exclude", reason, ...(comment ? { comment } : {}), revision: 0 };
}
