// Blind reading on the review screen: what the panel shows of the model's output, which the API
// leaves out (absent, not null) until the reader has decided on the image.
import type { ImageDetail } from "../../api/client";
import { formatAge, formatInterval, formatResidual, formatScore } from "./format";

export const HIDDEN = "hidden until you decide";

export interface ModelOutputText {
  predicted: string;
  residual: string;
  score: string;
  interval: string;
}

/** The panel's predicted age, residual and score: "hidden until you decide" while blind reading
 * hides them, "not predicted yet" when there is no prediction. */
export function modelOutputText(detail: ImageDetail): ModelOutputText {
  if (detail.output_hidden) return { predicted: HIDDEN, residual: HIDDEN, score: HIDDEN, interval: HIDDEN };
  const predicted = detail.predicted_age_days ?? detail.prediction?.age_days ?? null;
  const p = detail.prediction;
  return {
    predicted: predicted === null ? "not predicted yet" : formatAge(predicted),
    residual: formatResidual(detail.residual_days ?? detail.prediction?.residual_days),
    score: formatScore(detail.score ?? detail.prediction?.score),
    interval: predicted === null ? "—" : formatInterval(p?.interval_low_days, p?.interval_high_days, detail.recorded_age_days),
  };
}

/** True when a saved decision has just revealed the model's output: the screen then shows it
 * and stays on the case instead of moving on, so that the reader can learn from it. */
export function revealed(before: ImageDetail, after: ImageDetail): boolean {
  return before.output_hidden && !after.output_hidden;
}
