// Text for the review screen: ages, residuals, what changed between two versions of a case.
import { DAYS_PER_MONTH, yearsMonthsText } from "../../ages";
import type { AuditRecord, ExcludeReason, ImageDetail, ReviewRecord } from "../../api/client";

/** "5 y 3 m", "0 y 2 m": completed years and months, as ages.ts writes them (the API keeps days). */
export function formatAge(days: number | null | undefined): string {
  if (days === null || days === undefined) return "—";
  return yearsMonthsText(days);
}

/** Signed months, one decimal: "+10.8 months" means the model says older than recorded. */
export function formatResidual(days: number | null | undefined): string {
  if (days === null || days === undefined) return "—";
  const months = days / DAYS_PER_MONTH;
  return `${months >= 0 ? "+" : "−"}${Math.abs(months).toFixed(1)} months`;
}

/** A calibrated interval, "2 y 3 m – 3 y 1 m", marked when the recorded age falls outside it;
 * "not calibrated" when the model version has no calibration (null ends). */
export function formatInterval(
  low: number | null | undefined,
  high: number | null | undefined,
  recorded: number,
): string {
  if (low === null || low === undefined || high === null || high === undefined) return "not calibrated";
  const outside = recorded < low || recorded > high ? " · recorded age outside" : "";
  return `${yearsMonthsText(low)} – ${yearsMonthsText(high)}${outside}`;
}

export function formatScore(score: number | null | undefined): string {
  return score === null || score === undefined ? "—" : score.toFixed(2);
}

export const SEX: Record<string, string> = { M: "male", F: "female", O: "other" };

export const REASONS: { value: ExcludeReason; label: string }[] = [
  { value: "not_chest_pa_ap", label: "not a chest PA/AP film" },
  { value: "poor_quality", label: "poor quality" },
  { value: "wrong_patient", label: "wrong patient" },
  { value: "adult", label: "adult" },
  { value: "other", label: "other" },
];

export function formatTime(iso: string, withDate = true): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return withDate
    ? date.toLocaleString([], { dateStyle: "short", timeStyle: "short" })
    : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function formatLease(detail: ImageDetail): string {
  const lease = detail.lease;
  if (!lease) return "none";
  const until = formatTime(lease.expires_at, false);
  const expired = Date.parse(lease.expires_at) < Date.now() ? " (expired)" : "";
  return `held by ${lease.mine ? "you" : lease.holder} until ${until}${expired}`;
}

/** "status confirmed -> corrected, revision 2 -> 3, curated age 5 y 3 m -> 5 y 6 m". */
export function describeChange(before: ImageDetail, after: ImageDetail): string {
  const changes: string[] = [];
  if (before.status !== after.status) changes.push(`status ${before.status} -> ${after.status}`);
  if (before.revision !== after.revision) changes.push(`revision ${before.revision} -> ${after.revision}`);
  if (before.curated_age_days !== after.curated_age_days) {
    changes.push(`curated age ${formatAge(before.curated_age_days)} -> ${formatAge(after.curated_age_days)}`);
  }
  const holder = (detail: ImageDetail) => (detail.lease ? (detail.lease.mine ? "you" : detail.lease.holder) : "nobody");
  if (holder(before) !== holder(after)) changes.push(`lease ${holder(before)} -> ${holder(after)}`);
  return changes.length > 0 ? changes.join(", ") : "nothing visible changed";
}

const VERB: Record<string, string> = { confirm: "confirmed", correct: "corrected", exclude: "excluded" };
const KIND: Record<string, string> = {
  single: "",
  first_read: "first read",
  second_read: "second read",
  adjudication: "adjudication",
};

export function describeReview(review: ReviewRecord): string {
  if (review.text) return review.text; // the server's words, as on the audit page
  let what = VERB[review.decision] ?? review.decision;
  if (review.decision === "correct" && review.age_days !== null) what += ` to ${formatAge(review.age_days)}`;
  if (review.decision === "exclude" && review.reason) {
    what += `: ${REASONS.find((r) => r.value === review.reason)?.label ?? review.reason}`;
  }
  if (review.comment) what += ` — “${review.comment}”`;
  const kind = KIND[review.kind] ? `${KIND[review.kind]}, ` : "";
  const blind = review.blind ? "blind, " : "";
  return `${review.reviewer} ${what} (${kind}${blind}on revision ${review.based_on_revision})`;
}

function short(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function describeAudit(entry: AuditRecord): string {
  if (entry.text) return entry.text; // "field: old -> new", ages in y m (portal/review/history.py)
  const before = entry.before ?? {};
  const after = entry.after ?? {};
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const changed = keys
    .filter((key) => short(before[key]) !== short(after[key]))
    .map((key) => `${key} ${short(before[key])} -> ${short(after[key])}`);
  const target = entry.target ? ` ${entry.target}` : "";
  return `${entry.actor} ${entry.action}${target}${changed.length ? `: ${changed.join(", ")}` : ""}`;
}

/** DRF field errors ({"age_days": ["…"]}) as one line per field. */
export function describeFieldErrors(body: Record<string, unknown>): string {
  const lines: string[] = [];
  for (const [field, value] of Object.entries(body)) {
    const messages = Array.isArray(value) ? value.map(short).join(" ") : short(value);
    lines.push(field === "detail" || field === "non_field_errors" ? messages : `${field.replace(/_/g, " ")}: ${messages}`);
  }
  return lines.join("\n");
}

export interface HistoryRow {
  at: string;
  text: string;
  kind: "review" | "audit" | "access";
}

/**
 * Reviews and audit rows in one list, newest first. Every opening of the viewer logs its reads
 * (image.view, image.dicom, image.heatmap); a run of those by one person folds into one row.
 */
/** The reads the API logs for every opening of the viewer, in the order they happen. */
const ACCESS = ["image.view", "image.dicom", "image.heatmap"];

/** "the case is now disputed": what a decision's audit event says it made of the case. */
function outcome(entry: AuditRecord | undefined): string {
  const before = entry?.before?.status;
  const after = entry?.after?.status;
  if (typeof after !== "string" || after === before) return "";
  return ` → the case is now ${after.replace(/_/g, " ")}`;
}

/** A decision's audit event: the review.* event made on the decision's revision. */
function decisionEvent(review: ReviewRecord, audit: AuditRecord[]): AuditRecord | undefined {
  return audit.find(
    (entry) =>
      entry.action.startsWith("review.") &&
      entry.before?.revision === review.based_on_revision &&
      entry.actor === review.reviewer,
  );
}

export function historyRows(reviews: ReviewRecord[], audit: AuditRecord[]): HistoryRow[] {
  // A decision shows once, in words, with what it made of the case; its audit event (the
  // same decision as a diff) is folded into it rather than listed again.
  const folded = new Set<AuditRecord>();
  const decided = reviews.map((review) => {
    const entry = decisionEvent(review, audit);
    if (entry) folded.add(entry);
    return { at: review.created_at, review, entry: null, text: describeReview(review) + outcome(entry) };
  });
  const events = [
    ...decided,
    ...audit.filter((entry) => !folded.has(entry)).map((entry) => ({ at: entry.at, review: null, entry, text: "" })),
  ].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  const rows: HistoryRow[] = [];
  let run: { row: HistoryRow; actor: string; reads: Set<string>; opens: number } | null = null;
  for (const { at, review, entry, text } of events) {
    if (review) {
      rows.push({ at, text, kind: "review" });
      run = null;
    } else if (entry && ACCESS.includes(entry.action)) {
      if (!run || run.actor !== entry.actor) {
        run = { row: { at, text: "", kind: "access" }, actor: entry.actor, reads: new Set(), opens: 0 };
        rows.push(run.row);
      }
      run.reads.add(entry.action);
      if (entry.action === "image.view") run.opens += 1;
      const times = run.opens > 1 ? ` ${run.opens} times` : "";
      const seen = run.reads;
      const reads = ACCESS.filter((action) => seen.has(action)).map((action) => action.slice("image.".length));
      run.row.text = `${entry.actor} opened the image${times} (${reads.join(", ")})`;
    } else if (entry) {
      rows.push({ at, text: describeAudit(entry), kind: "audit" });
      run = null;
    }
  }
  return rows;
}
