// Typed client of the portal's REST API: returns data, never touches the DOM.

export type UploadState = "receiving" | "submitted" | "processing" | "done" | "failed" | "expired";
/** The report's groups, as the `outcome` filter of an upload's files names them. */
export type Outcome = "accepted" | "duplicates" | "rejected";

/** One line of an upload's report. The file is named by its position (`#3`, `#3/2` for entry 2
 * of an archive); `name` only where the site keeps uploaders' file names. */
export interface ReportLine {
  file: string;
  index: number;
  entry: number | null;
  name?: string;
  outcome: "accepted" | "duplicate" | "rejected";
  image?: number;
  sex?: "M" | "F" | "O";
  age_days?: number;
  age_source?: "birthdate" | "patient_age";
  reason?: string;
  /** What the line warns of (an accepted file whose PatientAge disagrees with its dates), one
   * warning per line of text; "" for none. */
  warning: string;
}

/** The small status document of an upload (no per-file lines: those are paged). */
export interface UploadStatus {
  id: number;
  site: string;
  source: string;
  status: UploadState;
  failure_reason: string;
  received_files: number;
  total_files: number;
  processed_files: number;
  progress: number;
  counts: { accepted: number; duplicates: number; rejected: number };
  created_at: string;
  submitted_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  expires_at: string | null;
}

export type JobState = "queued" | "running" | "done" | "failed";

export interface JobStatus {
  id: number;
  state: JobState;
  failure_reason: string;
  model: string;
  site: string | null;
  upload: number | null;
  total: number;
  done: number;
  failed: number;
  progress: number;
  eta_seconds: number | null;
}

export interface NamedFile {
  file: File;
  path: string;
}

/** The demo model's training as the banner words it (`text` null: no demo model trains). */
export interface DemoTraining {
  state: "starting" | "phantoms" | "preprocessing" | "training" | "done" | "failed" | null;
  minutes_left: number | null;
  text: string | null;
}

export class ApiError extends Error {}

export class ApiClient {
  constructor(private readonly csrfToken: string) {}

  /** Starts an upload that stays open for more batches until `submit`. */
  createUpload(site: string, batch: NamedFile[], onSent: (bytes: number) => void): Promise<UploadStatus> {
    const form = this.filesForm(batch);
    form.append("finish", "false");
    form.append("source", "web");
    return this.send<UploadStatus>(`/api/sites/${encodeURIComponent(site)}/uploads/`, form, onSent);
  }

  addFiles(uploadId: number, batch: NamedFile[], onSent: (bytes: number) => void): Promise<UploadStatus> {
    return this.send<UploadStatus>(`/api/uploads/${uploadId}/files/`, this.filesForm(batch), onSent);
  }

  submit(uploadId: number): Promise<UploadStatus> {
    return this.send<UploadStatus>(`/api/uploads/${uploadId}/submit/`, new FormData(), () => undefined);
  }

  async getUpload(uploadId: number): Promise<UploadStatus> {
    const response = await fetch(`/api/uploads/${uploadId}/`, { credentials: "same-origin" });
    if (!response.ok) throw new ApiError(`upload ${uploadId}: HTTP ${response.status}`);
    return (await response.json()) as UploadStatus;
  }

  /** One page of an upload's report: the first (of one outcome group, if given) or the page a
   * `next` / `previous` link names. */
  async uploadReport(
    uploadId: number,
    page: { outcome?: Outcome; limit?: number } | string,
  ): Promise<Page<ReportLine>> {
    let url: string;
    if (typeof page === "string") url = page;
    else {
      const query = new URLSearchParams({ limit: String(page.limit ?? 100) });
      if (page.outcome) query.set("outcome", page.outcome);
      url = `/api/uploads/${uploadId}/files/?${query}`;
    }
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new ApiError(`upload ${uploadId} report: HTTP ${response.status}`);
    return (await response.json()) as Page<ReportLine>;
  }

  /** The demo model's training status (anyone may ask, as the login page shows it too). */
  async demoTraining(): Promise<DemoTraining> {
    const response = await fetch("/api/status/demo-model/", { credentials: "same-origin" });
    if (!response.ok) throw new ApiError(`demo model status: HTTP ${response.status}`);
    return (await response.json()) as DemoTraining;
  }

  /** The newest jobs (the first cursor page). */
  async listJobs(filter: { upload?: number; site?: string } = {}): Promise<JobStatus[]> {
    return (await this.jobsPage(filter)).results;
  }

  /** One cursor page of jobs, newest first: a page's `next` / `previous` URL, or the first page. */
  async jobsPage(filter: { upload?: number; site?: string; limit?: number } = {}, url?: string): Promise<Page<JobStatus>> {
    const query = new URLSearchParams();
    if (filter.upload !== undefined) query.set("upload", String(filter.upload));
    if (filter.site !== undefined) query.set("site", filter.site);
    if (filter.limit !== undefined) query.set("limit", String(filter.limit));
    const response = await fetch(url ?? `/api/jobs/?${query}`, { credentials: "same-origin" });
    if (!response.ok) throw new ApiError(`jobs: HTTP ${response.status}`);
    return (await response.json()) as Page<JobStatus>;
  }

  private filesForm(batch: NamedFile[]): FormData {
    const form = new FormData();
    for (const { file, path } of batch) {
      form.append("files", file, file.name);
      form.append("paths", path);
    }
    return form;
  }

  /** XMLHttpRequest rather than fetch: it reports upload progress. */
  private send<T>(url: string, body: FormData, onSent: (bytes: number) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", this.csrfToken);
      xhr.responseType = "json";
      xhr.upload.onprogress = (event) => onSent(event.loaded);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response as T);
        else {
          const detail = (xhr.response as { detail?: string } | null)?.detail ?? `HTTP ${xhr.status}`;
          reject(new ApiError(detail));
        }
      };
      xhr.onerror = () => reject(new ApiError("network error"));
      xhr.send(body);
    });
  }
}

// ---- Review: image detail, history, decisions, queue ----

export type Sex = "M" | "F" | "O";
export type ReviewStatus =
  | "unreviewed"
  | "awaiting_second_read"
  | "confirmed"
  | "corrected"
  | "excluded"
  | "disputed"
  | "adjudicated";
export type Decision = "confirm" | "correct" | "exclude";
export type ExcludeReason = "not_chest_pa_ap" | "poor_quality" | "wrong_patient" | "adult" | "other";
export type ReviewKind = "single" | "first_read" | "second_read" | "adjudication";

export interface Lease {
  holder: string;
  expires_at: string;
  mine: boolean;
}

/** How a heatmap PNG's grey levels read (frontend/src/viewer/heatmap-colours.ts). */
export type HeatmapScale = "signed" | "positive";

export interface PredictionSummary {
  id: number;
  model: string;
  age_days: number;
  score: number | null;
  residual_days: number | null;
  /** The model version's calibrated interval in days; null while the version is uncalibrated. */
  interval_low_days?: number | null;
  interval_high_days?: number | null;
  heatmap_url: string | null;
  /** How the PNG's levels read; null without a heatmap. */
  heatmap_scale: HeatmapScale | null;
  /** True: the model's gradient is zero here, the map shows nothing; null: not recorded. */
  heatmap_blank: boolean | null;
}

export interface ImageDetail {
  id: number;
  uuid: string;
  site: string;
  upload: number;
  sex: Sex;
  age_days: number;
  recorded_age_days: number;
  age_source: "birthdate" | "patient_age";
  modality: string;
  view_position: string;
  rows: number;
  columns: number;
  pixel_spacing_mm: [number, number] | null;
  photometric_interpretation: string;
  transfer_syntax_uid: string;
  burned_in_annotation: boolean;
  status: ReviewStatus;
  revision: number;
  curated_age_days: number | null;
  /** The model's output: absent (not null) while blind reading hides it (`output_hidden`). */
  predicted_age_days?: number | null;
  residual_days?: number | null;
  score?: number | null;
  lease: Lease | null;
  double_reading: boolean;
  /** The site reads blind: the model's output is shown once you have decided on the image. */
  blind_reading: boolean;
  output_hidden: boolean;
  can_review: boolean;
  can_adjudicate: boolean;
  dicom_url: string;
  /** The instance under /dicomweb/ (WADO-RS), where the viewer loads the film from. */
  wado_rs_url: string;
  prediction?: PredictionSummary | null;
  /** Why the case is (or is not) in the queue, in one sentence; absent while blind reading hides it. */
  why?: string | null;
  /** The same pseudonymous patient's other films of this site, youngest first. */
  other_films?: PatientFilm[];
}

/** Another film of the same patient (site pseudonym): its recorded age only. */
export interface PatientFilm {
  id: number;
  recorded_age_days: number;
  view_position: string;
  dicom_url: string;
  /** The instance under /dicomweb/ (WADO-RS), where the viewer loads the film from. */
  wado_rs_url: string;
}

export interface Page<T> {
  next: string | null;
  previous: string | null;
  results: T[];
}

export interface ReviewRecord {
  id: number;
  image: number;
  reviewer: string;
  decision: Decision;
  age_days: number | null;
  reason: ExcludeReason | "";
  comment: string;
  kind: ReviewKind;
  based_on_revision: number;
  /** Made with the model's output hidden (blind reading). */
  blind: boolean;
  created_at: string;
  /** The decision in words, from the server: "alice corrected the age to 5 y 3 m (first read)". */
  text?: string;
}

export interface AuditRecord {
  id: number;
  at: string;
  actor: string;
  action: string;
  site: string;
  image: number | null;
  target: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  /** The event in words, changes as "field: old -> new", from the server. */
  text?: string;
}

export type DecisionRequest =
  | { decision: "confirm"; revision: number }
  | { decision: "correct"; age_days: number; revision: number }
  | { decision: "exclude"; reason: ExcludeReason; comment?: string; revision: number };

export interface DecisionResult extends ReviewRecord {
  revision: number;
  status: ReviewStatus;
}

export interface QueueLease {
  image: number;
  lease_expires_at: string;
}

/** An error answer with its status and parsed body (409 conflicts, 400 field errors, 403). */
export class ApiResponseError extends ApiError {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    const detail = typeof body.detail === "string" ? body.detail : `HTTP ${status}`;
    super(detail);
  }
}

/** Pages (of the API's largest size) followed at most for a history; newest first, so the cut drops the oldest. */
const MAX_PAGES = 5;
const PAGE_SIZE = 200;

export class ReviewApi {
  constructor(private readonly csrfToken: string) {}

  /** An instance's WADO-RS metadata (DICOM JSON, a list), with the session's credentials. */
  getDicomMetadata(url: string): Promise<unknown> {
    return this.getJson<unknown>(url, "application/dicom+json");
  }

  getImage(imageId: number): Promise<ImageDetail> {
    return this.getJson<ImageDetail>(`/api/images/${imageId}/`);
  }

  listReviews(imageId: number): Promise<ReviewRecord[]> {
    return this.allPages<ReviewRecord>(`/api/images/${imageId}/reviews/?limit=${PAGE_SIZE}`);
  }

  listAudit(imageId: number): Promise<AuditRecord[]> {
    return this.allPages<AuditRecord>(`/api/images/${imageId}/audit/?limit=${PAGE_SIZE}`);
  }

  async getHeatmap(url: string): Promise<Blob> {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new ApiResponseError(response.status, {});
    return response.blob();
  }

  /** Throws ApiResponseError on 400 / 403 / 409 with the server's body. */
  async decide(imageId: number, request: DecisionRequest): Promise<DecisionResult> {
    const response = await this.post(`/api/images/${imageId}/reviews/`, request);
    return (await response.json()) as DecisionResult;
  }

  /** Leases the next case of the queue with these filters; null when the queue is empty. */
  async nextInQueue(queueQuery: string): Promise<QueueLease | null> {
    const response = await this.post(`/api/review/queue/next/${queueQuery ? `?${queueQuery}` : ""}`, null);
    if (response.status === 204) return null;
    return (await response.json()) as QueueLease;
  }

  private async post(url: string, body: unknown): Promise<Response> {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": this.csrfToken },
      body: body === null ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new ApiResponseError(response.status, await this.errorBody(response));
    return response;
  }

  private async getJson<T>(url: string, accept = "application/json"): Promise<T> {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: accept } });
    if (!response.ok) throw new ApiResponseError(response.status, await this.errorBody(response));
    return (await response.json()) as T;
  }

  private async allPages<T>(url: string): Promise<T[]> {
    const out: T[] = [];
    let next: string | null = url;
    for (let page = 0; next !== null && page < MAX_PAGES; page++) {
      const body: Page<T> = await this.getJson<Page<T>>(next);
      out.push(...body.results);
      next = body.next;
    }
    return out;
  }

  private async errorBody(response: Response): Promise<Record<string, unknown>> {
    try {
      const body: unknown = await response.json();
      // DRF answers a bare list for errors that name no field.
      if (Array.isArray(body)) return { non_field_errors: body };
      return body !== null && typeof body === "object" ? (body as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  }
}
