// What the correction and exclusion forms send, or why they cannot yet.
import type { DecisionRequest, ExcludeReason } from "../../api/client";
import { ageDays } from "./format";

/** A correction in years and months; the revision is filled in when it is sent. */
export function readCorrection(yearsValue: string, monthsValue: string): DecisionRequest | string {
  const yearsText = yearsValue.trim();
  const monthsText = monthsValue.trim();
  if (yearsText === "" && monthsText === "") return "Enter the age in years and months.";
  const years = yearsText === "" ? 0 : Number(yearsText);
  const months = monthsText === "" ? 0 : Number(monthsText);
  if (!Number.isFinite(years) || !Number.isFinite(months) || years < 0 || months < 0) {
    return "Years and months must be numbers of at least 0.";
  }
  return { decision: "correct", age_days: ageDays(years, months), revision: 0 };
}

export function readExclusion(reasonValue: string, commentValue: string): DecisionRequest | string {
  const reason = reasonValue as ExcludeReason | "";
  if (reason === "") return "Choose a reason (1-5).";
  const comment = commentValue.trim();
  if (reason === "other" && comment === "") return "Say why in the comment.";
  return { decision: "exclude", reason, ...(comment ? { comment } : {}), revision: 0 };
}
