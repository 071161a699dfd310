// The jobs page: one cursor page of prediction jobs (newest first) with their counters,
// refreshed while any is unfinished; "older" / "newer" follow the API's next / previous links.
import { ApiClient, type JobStatus, type Page } from "../api/client";
import { formatEta } from "./jobs-format";

const POLL_MS = 2000;
const IDLE_POLL_MS = 10000;
const PAGE_SIZE = 50;

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

class JobsPage {
  /** The URL of the page shown (undefined: the first); a cursor page stays put while polled. */
  private url: string | undefined;
  private page: Page<JobStatus> | null = null;
  private timer: number | undefined;

  constructor(
    private readonly api: ApiClient,
    private readonly body: HTMLTableSectionElement,
    private readonly newer: HTMLButtonElement | null,
    private readonly older: HTMLButtonElement | null,
  ) {
    newer?.addEventListener("click", () => this.go(this.page?.previous ?? undefined));
    older?.addEventListener("click", () => this.go(this.page?.next ?? undefined));
  }

  go(url: string | undefined): void {
    this.url = url;
    void this.refresh();
  }

  private async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    const page = await this.api.jobsPage({ limit: PAGE_SIZE }, this.url);
    this.page = page;
    this.body.replaceChildren(...page.results.map(row));
    if (page.results.length === 0) this.body.innerHTML = '<tr><td colspan="10">No prediction jobs yet.</td></tr>';
    if (this.newer) this.newer.hidden = page.previous === null;
    if (this.older) this.older.hidden = page.next === null;
    const busy = page.results.some((job) => job.state === "queued" || job.state === "running");
    this.timer = window.setTimeout(() => void this.refresh(), busy ? POLL_MS : IDLE_POLL_MS);
  }
}

const table = document.getElementById("jobs-table") as HTMLTableElement | null;
if (table) {
  const button = (id: string) => document.getElementById(id) as HTMLButtonElement | null;
  new JobsPage(new ApiClient(""), table.tBodies[0], button("jobs-newer"), button("jobs-older")).go(undefined);
}
