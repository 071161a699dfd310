// Window/level presets for plain radiographs. CR/DX pixel values are not calibrated (no Hounsfield
// units), so the presets are percentiles of the image's own histogram, taken in display order
// (0 = darkest, 1 = brightest on screen) so that they mean the same for MONOCHROME1 and 2.
import type { Types } from "@cornerstonejs/core";

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

/**
 * The presets for one image: the file's own window first (or Cornerstone's choice without one),
 * then lung, soft tissue, bone, and the full stored range.
 */
export function voiPresets(image: Types.IImage, fileDefault: Types.VOIRange, inverted: boolean): VoiPreset[] {
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
    { id: "default", label: "Default", range: fileDefault },
    ...relative,
    { id: "full", label: "Full range", range: full },
  ];
}
