import { describe, expect, it } from "vitest";
import type { AuditRecord, ReviewRecord } from "../../api/client";
import { describeAudit, historyRows } from "./format";

const review: ReviewRecord = {
  id: 7,
  image: 3,
  reviewer: "bob",
  decision: "confirm",
  age_days: 1000,
  reason: "",
  comment: "",
  kind: "second_read",
  based_on_revision: 1,
  blind: false,
  created_at: "2026-12-06T10:00:00Z",
  text: "bob confirmed the recorded age, 2 y 8 m (second read)",
};

function event(overrides: Partial<AuditRecord>): AuditRecord {
  return {
    id: 1,
    at: "2026-12-06T10:00:00.001Z",
    actor: "bob",
    action: "review.confirm",
    site: "east",
    image: 3,
    target: "",
    before: { status: "awaiting_second_read", revision: 1 },
    after: { status: "disputed", revision: 2, kind: "second_read", decision: "confirm" },
    text: "bob confirmed the recorded age (second read): status: awaiting second read -> disputed",
    ...overrides,
  };
}

describe("the case history", () => {
  it("shows a decision once, in words, with what it made of the case", () => {
    const rows = historyRows([review], [event({})]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ kind: "review" });
    expect(rows[0].text).toBe(
      "bob confirmed the recorded age, 2 y 8 m (second read) → the case is now disputed",
    );
  });

  it("lists other events in the server's words, never as raw objects", () => {
    const lease = event({
      id: 2,
      action: "lease.take",
      before: null,
      after: { expires_at: "2026-12-06T10:05:00Z" },
      text: "bob took the case: held until: 2026-12-06 10:05 UTC",
    });
    const rows = historyRows([review], [event({}), lease]);
    expect(rows.map((row) => row.text)).toContain("bob took the case: held until: 2026-12-06 10:05 UTC");
    for (const row of rows) expect(row.text).not.toMatch(/[{}]/);
  });

  it("keeps a decision event that no listed review explains", () => {
    const rows = historyRows([], [event({})]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ kind: "audit", text: describeAudit(event({})) });
  });
});
