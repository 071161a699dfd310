import type { JobStatus } from "../api/client";

export function formatEta(seconds: number | null): string {
  if (seconds === null) return "";
  if (seconds < 90) return `${seconds} s`;
  return `${Math.round(seconds / 60)} min`;
}

export function describeJob(job: JobStatus): string {
  const eta = job.eta_seconds !== null && job.state !== "done" ? `, about ${formatEta(job.eta_seconds)} left` : "";
  const failure = job.failure_reason ? ` (${job.failure_reason})` : "";
  return `Predictions (job ${job.id}, ${job.model}): ${job.state}${failure}, ${job.done} of ${job.total} done, ${job.failed} failed${eta}`;
}
