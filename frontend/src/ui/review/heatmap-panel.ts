// What the viewer says about the heatmap beside the image: the legend of its colours and, where
// nothing is drawn, why.
import type { HeatmapScale, ImageDetail } from "../../api/client";
import { legendGradient } from "../../viewer/heatmap-colours";
import { element, setText } from "./dom";

/** Why no overlay is drawn for `detail`, before its heatmap is fetched; null when one may be. */
export function missingHeatmapNote(detail: ImageDetail, hasLayer: boolean): string | null {
  if (detail.output_hidden) return "blind reading: the heatmap is shown once you have decided";
  if (!hasLayer) return detail.prediction ? "no heatmap for this prediction" : "no heatmap: not predicted yet";
  return null;
}

/** Why a fetched heatmap that would draw nothing is not shown as "on". */
export function blankHeatmapNote(scale: HeatmapScale | null | undefined): string {
  return scale === "signed"
    ? "no heatmap signal: the model's gradient is zero on this image, no region pushes its age up or down"
    : "this heatmap shows nothing: it was stored before signed maps, which leave out evidence for a younger age";
}

/** What the colours mean: signed maps in two colours; older maps in one (where it looked). */
export function renderLegend(scale: HeatmapScale): void {
  const legend = element("heatmap-legend");
  legend.dataset.scale = scale;
  element("heatmap-legend-bar").style.background = legendGradient(scale);
  const signed = scale === "signed";
  setText("heatmap-legend-low", signed ? "pushes age down" : "weak");
  setText("heatmap-legend-high", signed ? "up" : "strong");
  const meaning = signed
    ? "Heatmap: warm (yellow, red) where the region pushes the predicted age up, cool (cyan, blue) " +
      "where it pushes it down; stronger colour, larger push; clear, no effect."
    : "Heatmap stored before signed maps: one-sided, where the model found evidence for an older age only.";
  legend.title = meaning;
  legend.setAttribute("aria-label", meaning);
}
