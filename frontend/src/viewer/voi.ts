// Window/level presets for plain radiographs: first the windows the file itself names (its
// WindowCenter/WindowWidth pairs, as the modality chose them for this film), then, since CR/DX
// pixel values are not calibrated (no Hounsfield units), percentiles of the image's own histogram,
// taken in display order (0 = darkest, 1 = brightest on screen) so that they mean the same for
// MONOCHROME1 and 2.
import { utilities, type Types } from "@cornerstonejs/core";

export interface VoiPreset {
  id: string;
  label: string;
  range: Types.VOIRange;
}

/** Display-order percentiles [from, to]: lungs are the dark part of a chest film, bone the bright. */
const RELATIVE_PRESETS: { id: string; label: string; from: number; to: number }[] = [
  { id: "lung", label: "Lung", from: 0.02, to: 0.6 },
  { id: "soft", label: "Soft tissue", from: 0.3, to: 0.95 },
  { id: "bone", label: "Bone", from: 0.6, to: 0.998 },
];

const MAX_SAMPLES = 262144;

/** A sorted, strided sample of the pixels: exact enough for a window, fast on a 4k x 4k film. */
function sortedSample(pixels: ArrayLike<number>): Float64Array {
  const stride = Math.max(1, Math.floor(pixels.length / MAX_SAMPLES));
  const sample = new Float64Array(Math.ceil(pixels.length / stride));
  let n = 0;
  for (let i = 0; i < pixels.length; i += stride) sample[n++] = pixels[i];
  return sample.subarray(0, n).sort();
}

/** The file's VOI LUT module as the metadata provider answers it (each value one or several). */
export interface VoiLutModule {
  windowCenter?: number | number[] | string;
  windowWidth?: number | number[] | string;
  windowCenterWidthExplanation?: string | string[];
}

const list = <T>(value: T | T[] | undefined | null): T[] =>
  value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];

const numbers = (value: unknown): number[] =>
  list(value as unknown)
    .flatMap((v) => (typeof v === "string" ? v.split("\\") : [v]))
    .map(Number);

/**
 * The file's own windows (PS3.3 C.11.2: WindowCenter and WindowWidth, one pair per window, each
 * named by WindowCenterWidthExplanation where the file gives one), as linear VOI ranges.
 */
export function fileWindows(module: VoiLutModule | undefined | null): VoiPreset[] {
  if (!module) return [];
  const centers = numbers(module.windowCenter);
  const widths = numbers(module.windowWidth);
  const names = list(module.windowCenterWidthExplanation).flatMap((v) => String(v).split("\\"));
  const presets: VoiPreset[] = [];
  for (let i = 0; i < Math.min(centers.length, widths.length); i++) {
    const [center, width] = [centers[i], widths[i]];
    if (!Number.isFinite(center) || !Number.isFinite(width) || width < 1) continue;
    const name = names[i]?.trim();
    const label = name ? `File: ${name}` : centers.length > 1 ? `File window ${i + 1}` : "File window";
    presets.push({ id: `file-${i + 1}`, label, range: utilities.windowLevel.toLowHighRange(width, center) });
  }
  return presets;
}

/** Window width and level (centre) of a VOI range, as the readout and DICOM state them. */
export function windowOf(range: Types.VOIRange): { width: number; level: number } {
  const { windowWidth, windowCenter } = utilities.windowLevel.toWindowLevel(range.lower, range.upper);
  return { width: windowWidth, level: windowCenter };
}

/**
 * The presets for one image: the file's own windows first (without any, Cornerstone's choice,
 * the stored range), then lung, soft tissue, bone, and the full stored range.
 */
export function voiPresets(
  image: Types.IImage,
  fileDefault: Types.VOIRange,
  inverted: boolean,
  own: VoiPreset[] = [],
): VoiPreset[] {
  const sorted = sortedSample(image.getPixelData());
  const last = sorted.length - 1;
  // An inverted display (MONOCHROME1) shows low values bright: display order is value order reversed.
  const at = (q: number) => sorted[Math.round((inverted ? 1 - q : q) * last)];
  const relative = RELATIVE_PRESETS.map(({ id, label, from, to }) => {
    const [a, b] = [at(from), at(to)];
    return { id, label, range: { lower: Math.min(a, b), upper: Math.max(a, b, Math.min(a, b) + 1) } };
  });
  const full = { lower: image.minPixelValue, upper: Math.max(image.maxPixelValue, image.minPixelValue + 1) };
  return [
    ...(own.length ? own : [{ id: "default", label: "Default", range: fileDefault }]),
    ...relative,
    { id: "full", label: "Full range", range: full },
  ];
}
