// The image's history beside the film: its decisions and audit events, newest first.
import type { AuditRecord, ReviewApi, ReviewRecord } from "../../api/client";
import { describeError, element } from "./dom";
import { formatTime, historyRows } from "./format";

export async function renderHistory(api: ReviewApi, imageId: number): Promise<void> {
  const list = element<HTMLOListElement>("history");
  let reviews: ReviewRecord[];
  let audit: AuditRecord[];
  try {
    [reviews, audit] = await Promise.all([api.listReviews(imageId), api.listAudit(imageId)]);
  } catch (error) {
    list.replaceChildren(historyItem("", `The history could not be loaded: ${describeError(error)}`, "error"));
    return;
  }
  const rows = historyRows(reviews, audit);
  list.replaceChildren(...rows.map((row) => historyItem(row.at, row.text, row.kind)));
  if (rows.length === 0) list.replaceChildren(historyItem("", "No reviews yet.", "note"));
}

function historyItem(at: string, text: string, kind: string): HTMLLIElement {
  const item = document.createElement("li");
  item.className = kind;
  if (at) {
    const time = document.createElement("time");
    time.dateTime = at;
    time.textContent = formatTime(at);
    item.append(time, " ");
  }
  item.append(text);
  return item;
}
