// How a stored heatmap's grey levels become colours, and when a map has nothing to show. The
// signed colour map is the twin of `colourise` in inference_worker/heatmap.py:
// heatmap-colours.test.ts checks it against heatmap.expected.json, written by
//   python -m inference_worker.heatmap > frontend/src/viewer/heatmap.expected.json
// and tests/inference_worker/test_heatmap.py fails if that file is stale.

import type { HeatmapScale } from "../api/client";

export type { HeatmapScale };

/** Signed maps: the level of "no contribution" and the levels either side of it. */
export const ZERO_LEVEL = 128;
export const SIGNED_RANGE = 127;
export const MAX_ALPHA = 0.6;

type Rgb = [number, number, number];

/** Signed maps, over -1..1: blue, cyan (pushes the age down), white (nothing), yellow, red (up). */
export const SIGNED_ANCHORS: Rgb[] = [
  [0, 0.25, 1],
  [0, 0.85, 1],
  [1, 1, 1],
  [1, 0.85, 0],
  [1, 0.1, 0],
];

/** Positive maps (stored before signed maps), over 0..1: dark blue, cyan, yellow, red. */
const POSITIVE_ANCHORS: Rgb[] = [
  [0, 0, 0.5],
  [0, 0.3, 1],
  [0, 0.9, 0.9],
  [1, 0.9, 0],
  [1, 0.1, 0],
];

function ramp(anchors: Rgb[], position: number): Rgb {
  const segments = anchors.length - 1;
  const x = Math.min(1, Math.max(0, position)) * segments;
  const i = Math.min(segments - 1, Math.floor(x));
  const t = x - i;
  return [0, 1, 2].map((c) => anchors[i][c] + (anchors[i + 1][c] - anchors[i][c]) * t) as Rgb;
}

/** The value on -1..1 (signed) or 0..1 (positive) that a stored level stands for. */
export function levelValue(level: number, scale: HeatmapScale): number {
  if (scale === "positive") return level / 255;
  return Math.max(-1, Math.min(1, (level - ZERO_LEVEL) / SIGNED_RANGE));
}

/** RGBA (0..255) of every stored level: colour by value, opacity by its strength. */
export function colourLut(scale: HeatmapScale): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let level = 0; level < 256; level++) {
    const value = levelValue(level, scale);
    const rgb = scale === "signed" ? ramp(SIGNED_ANCHORS, (value + 1) / 2) : ramp(POSITIVE_ANCHORS, value);
    for (let c = 0; c < 3; c++) lut[level * 4 + c] = Math.round(255 * rgb[c]);
    lut[level * 4 + 3] = Math.round(255 * Math.abs(value) * MAX_ALPHA);
  }
  return lut;
}

/**
 * Whether a map of these grey levels draws nothing: every level at the scale's zero (128 for a
 * signed map, 0 for a positive one). inference_worker/heatmap.py `is_blank` is the rule for
 * signed maps; the viewer applies it to older positive maps too, whose blankness the portal
 * did not record.
 */
export function isBlank(levels: ArrayLike<number>, scale: HeatmapScale, stride = 1): boolean {
  const zero = scale === "signed" ? ZERO_LEVEL : 0;
  for (let i = 0; i < levels.length; i += stride) if (levels[i] !== zero) return false;
  return true;
}

/** A CSS gradient of the scale's colour map, low (left) to high (right), for the legend. */
export function legendGradient(scale: HeatmapScale): string {
  const anchors = scale === "signed" ? SIGNED_ANCHORS : POSITIVE_ANCHORS;
  const stops = anchors.map((rgb) => `rgb(${rgb.map((c) => Math.round(255 * c)).join(", ")})`);
  return `linear-gradient(to right, ${stops.join(", ")})`;
}
