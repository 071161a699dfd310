// The upload screen: choose a site, drop files / folders / ZIPs, send them in batches, then
// follow the server-side ingest by polling its small status document and page through the
// per-file report. The portal names files by position (#3); this page shows the names of the
// files it sent itself, from its own list, for as long as it stays open.
import {
  ApiClient,
  type NamedFile,
  type Outcome,
  type Page,
  type ReportLine,
  type UploadStatus,
} from "../api/client";
import { describeJob } from "./jobs-format";
import { formatAge } from "./review/format";

const BATCH_FILES = 100;
const BATCH_BYTES = 128 * 1024 * 1024;
const POLL_MS = 1000;
const REPORT_PAGE = 100;
const FINISHED = new Set(["done", "failed", "expired"]);

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing #${id}`);
  return found as T;
}

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

/** Files under a dropped entry, with their path relative to what was dropped. */
async function collect(entry: FileSystemEntry, out: NamedFile[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\//, "") });
    return;
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  for (let batch = await readEntries(reader); batch.length > 0; batch = await readEntries(reader)) {
    for (const child of batch) await collect(child, out);
  }
}

function batches(files: NamedFile[]): NamedFile[][] {
  const out: NamedFile[][] = [];
  let current: NamedFile[] = [];
  let bytes = 0;
  for (const item of files) {
    if (current.length > 0 && (current.length >= BATCH_FILES || bytes + item.file.size > BATCH_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.file.size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

class UploadScreen {
  private chosen: NamedFile[] = [];
  /** The path of each file this page sent, by its index in the upload (1 for the first). */
  private sentNames = new Map<number, string>();
  private detail: UploadStatus | null = null;
  private filter: Outcome | "all" = "all";
  private page: Page<ReportLine> | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly api: ApiClient,
  ) {}

  start(): void {
    const uploadId = Number(this.root.dataset.uploadId || "0");
    document.querySelectorAll<HTMLInputElement>('input[name="filter"]').forEach((radio) =>
      radio.addEventListener("change", () => {
        this.filter = radio.value as Outcome | "all";
        void this.loadReport();
      }),
    );
    element<HTMLButtonElement>("report-next").addEventListener("click", () => void this.loadReport(this.page?.next));
    element<HTMLButtonElement>("report-previous").addEventListener("click", () =>
      void this.loadReport(this.page?.previous),
    );
    if (uploadId) void this.follow(uploadId);
    else this.bindChooser();
    this.root.dataset.ready = "true"; // the screen answers to input from here on
  }

  private bindChooser(): void {
    const zone = element<HTMLDivElement>("dropzone");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const entries = [...(event.dataTransfer?.items ?? [])]
        .map((item) => item.webkitGetAsEntry())
        .filter((entry): entry is FileSystemEntry => entry !== null);
      void (async () => {
        const found: NamedFile[] = [];
        for (const entry of entries) await collect(entry, found);
        this.choose(found);
      })();
    });
    for (const id of ["pick-files", "pick-folder"]) {
      const input = element<HTMLInputElement>(id);
      input.addEventListener("change", () =>
        this.choose([...(input.files ?? [])].map((file) => ({ file, path: file.webkitRelativePath || file.name }))),
      );
    }
    element<HTMLFormElement>("upload-form").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
  }

  private choose(files: NamedFile[]): void {
    this.chosen = this.chosen.concat(files);
    const bytes = this.chosen.reduce((sum, item) => sum + item.file.size, 0);
    element("selection").textContent = `${this.chosen.length} files chosen (${(bytes / 1e6).toFixed(1)} MB).`;
    element<HTMLButtonElement>("start").disabled = this.chosen.length === 0;
  }

  private async send(): Promise<void> {
    const site = element<HTMLSelectElement>("site").value;
    const total = this.chosen.reduce((sum, item) => sum + item.file.size, 0);
    element<HTMLButtonElement>("start").disabled = true;
    element("progress").hidden = false;
    let sentBefore = 0;
    let sentFiles = 0;
    let uploadId = 0;
    try {
      for (const batch of batches(this.chosen)) {
        const onSent = (bytes: number) => this.showSending(sentBefore + bytes, total);
        const status = uploadId ? await this.api.addFiles(uploadId, batch, onSent) : await this.api.createUpload(site, batch, onSent);
        uploadId = status.id;
        // The server numbers files in the order it receives them: this batch is files
        // sentFiles + 1 ... status.received_files.
        batch.forEach((item, offset) => this.sentNames.set(sentFiles + offset + 1, item.path));
        sentFiles += batch.length;
        if (status.received_files !== sentFiles) this.sentNames.clear(); // positions unknown
        sentBefore += batch.reduce((sum, item) => sum + item.file.size, 0);
      }
      await this.api.submit(uploadId);
      history.replaceState(null, "", (this.root.dataset.detailUrl ?? "").replace("/0/", `/${uploadId}/`));
      await this.follow(uploadId);
    } catch (error) {
      element("phase").textContent = `Upload failed: ${(error as Error).message}`;
      element("phase").classList.add("error");
    }
  }

  private showSending(sent: number, total: number): void {
    element("phase").textContent = `Sending files… ${(sent / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`;
    element<HTMLProgressElement>("bar").value = total ? sent / total : 0;
  }

  private async follow(uploadId: number): Promise<void> {
    element("progress").hidden = false;
    for (;;) {
      this.detail = await this.api.getUpload(uploadId);
      this.renderStatus();
      if (FINISHED.has(this.detail.status)) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    await this.loadReport();
    if (this.detail.status !== "expired") await this.followPredictions(uploadId);
  }

  /** The first page of the report (of the chosen group), or the page a link names. */
  private async loadReport(link?: string | null): Promise<void> {
    const d = this.detail;
    if (!d || !FINISHED.has(d.status) || link === null) return;
    const outcome = this.filter === "all" ? undefined : this.filter;
    this.page = await this.api.uploadReport(d.id, link ?? { outcome, limit: REPORT_PAGE });
    this.renderReport();
  }

  /** The prediction job that ingest queued for this upload's new images, if any. */
  private async followPredictions(uploadId: number): Promise<void> {
    const line = element("predictions");
    for (let polls = 0; ; polls++) {
      const [job] = await this.api.listJobs({ upload: uploadId });
      if (job) line.textContent = describeJob(job);
      else if (polls > 5) {
        line.textContent = "Predictions: no job for this upload itself (none was active when it " +
          "finished, or a site-wide job covers it: see Jobs).";
        return;
      }
      if (job && (job.state === "done" || job.state === "failed")) return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  private renderStatus(): void {
    const d = this.detail;
    if (!d) return;
    const phase = element("phase");
    phase.textContent =
      d.status === "failed"
        ? `Upload ${d.id} failed: ${d.failure_reason}`
        : d.status === "expired"
          ? `Upload ${d.id} expired: ${d.failure_reason}`
          : d.status === "done"
            ? `Upload ${d.id} done`
            : d.status === "processing"
              ? `Processing upload ${d.id}…`
              : `Upload ${d.id} queued`;
    phase.classList.toggle("error", d.status === "failed" || d.status === "expired");
    element<HTMLProgressElement>("bar").value = d.progress;
    element("counts").textContent =
      `${d.processed_files} of ${d.total_files} files processed: ` +
      `${d.counts.accepted} accepted, ${d.counts.duplicates} duplicates, ${d.counts.rejected} rejected`;
  }

  /** What the File column shows: the path this page sent (while it stays open), the name the
   * site keeps, or else the position alone. */
  private fileLabel(line: ReportLine): string {
    const sent = this.sentNames.get(line.index);
    const name = sent === undefined ? line.name : line.entry === null ? sent : `${sent} › entry ${line.entry}`;
    return name === undefined ? line.file : `${name} (${line.file})`;
  }

  private renderReport(): void {
    const page = this.page;
    if (!page) return;
    element("report").hidden = false;
    const body = element<HTMLTableElement>("report-table").tBodies[0];
    body.replaceChildren(
      ...page.results.map((line) => {
        const tr = document.createElement("tr");
        tr.className = line.outcome === "duplicate" ? "duplicates" : line.outcome;
        const cells = [
          this.fileLabel(line),
          line.outcome,
          line.sex ?? "",
          line.age_days === undefined ? "" : formatAge(line.age_days),
          line.age_source ?? "",
          line.reason ?? "",
        ];
        for (const text of cells) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        }
        // A warning is not a rejection: the file is stored; its own marked cell, one per line.
        const warning = document.createElement("td");
        if (line.warning) {
          tr.classList.add("warned");
          warning.className = "warning";
          for (const text of line.warning.split("\n")) {
            const item = document.createElement("div");
            item.textContent = `⚠ ${text}`;
            warning.append(item);
          }
        }
        tr.append(warning);
        return tr;
      }),
    );
    // `display`, not `hidden`: the stylesheet's button rule would show a hidden button.
    element("report-next").style.display = page.next === null ? "none" : "";
    element("report-previous").style.display = page.previous === null ? "none" : "";
  }
}

const root = document.getElementById("upload-app");
if (root) new UploadScreen(root, new ApiClient(root.dataset.csrf ?? "")).start();
