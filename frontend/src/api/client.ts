// Typed client of the portal's REST API: returns data, never touches the DOM.

export type UploadState = "receiving" | "processing" | "done" | "failed";
export type Outcome = "accepted" | "duplicates" | "rejected";

export interface ReportEntry {
  file: string;
  image?: number;
  sex?: "M" | "F" | "O";
  age_days?: number;
  age_source?: "birthdate" | "patient_age";
  reason?: string;
}

export interface UploadStatus {
  id: number;
  site: string;
  status: UploadState;
  failure_reason: string;
  total_files: number;
  processed_files: number;
  progress: number;
  counts: { accepted: number; duplicates: number; rejected: number };
}

export interface UploadDetail extends UploadStatus {
  accepted: ReportEntry[];
  duplicates: ReportEntry[];
  rejected: ReportEntry[];
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

  async getUpload(uploadId: number): Promise<UploadDetail> {
    const response = await fetch(`/api/uploads/${uploadId}/`, { credentials: "same-origin" });
    if (!response.ok) throw new ApiError(`upload ${uploadId}: HTTP ${response.status}`);
    return (await response.json()) as UploadDetail;
  }

  async listJobs(filter: { upload?: number; site?: string } = {}): Promise<JobStatus[]> {
    const query = new URLSearchParams();
    if (filter.upload !== undefined) query.set("upload", String(filter.upload));
    if (filter.site !== undefined) query.set("site", filter.site);
    const response = await fetch(`/api/jobs/?${query}`, { credentials: "same-origin" });
    if (!response.ok) throw new ApiError(`jobs: HTTP ${response.status}`);
    return (await response.json()) as JobStatus[];
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
