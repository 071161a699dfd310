// The jobs page: every prediction job with its counters, refreshed while any is unfinished.
import { ApiClient, type JobStatus } from "../api/client";
import { formatEta } from "./jobs-format";

const POLL_MS = 2000;
const IDLE_POLL_MS = 10000;

function row(job: JobStatus): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.className = job.state;
  tr.dataset.job = String(job.id);
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.value = job.progress;
  const cells: (string | HTMLElement)[] = [
    String(job.id), job.model, job.site ?? "", job.upload === null ? "" : String(job.upload),
    job.state + (job.failure_reason ? `: ${job.failure_reason}` : ""), progress,
    String(job.done), String(job.failed), String(job.total), formatEta(job.eta_seconds),
  ];
  for (const cell of cells) {
    const td = document.createElement("td");
    td.append(cell);
    tr.append(td);
  }
  return tr;
}

async function refresh(api: ApiClient, body: HTMLTableSectionElement): Promise<void> {
  for (;;) {
    const jobs = await api.listJobs();
    body.replaceChildren(...jobs.map(row));
    if (jobs.length === 0) body.innerHTML = '<tr><td colspan="10">No prediction jobs yet.</td></tr>';
    const busy = jobs.some((job) => job.state === "queued" || job.state === "running");
    await new Promise((resolve) => setTimeout(resolve, busy ? POLL_MS : IDLE_POLL_MS));
  }
}

const table = document.getElementById("jobs-table") as HTMLTableElement | null;
if (table) void refresh(new ApiClient(""), table.tBodies[0]);
