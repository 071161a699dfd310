// How the viewer words a measured length, on the film and in the readout beside it: one home, so
// the two never disagree. Cornerstone's own label reads "120 px Unknown" on a film that states no
// pixel spacing; a reader should see that the number is not in millimetres, and why.

/**
 * `length` in Cornerstone's `unit`: "mm", "mm Proj" (the spacing is ImagerPixelSpacing, at the
 * detector), or "px" with or without a calibration note where the film states no spacing.
 * "84.2 mm", "84.2 mm at the detector", or "120 px (no pixel spacing: not in mm)".
 */
export function lengthText(length: number, unit = "px"): string {
  const [base, calibration] = unit.split(" ");
  if (base !== "mm") return `${length.toFixed(0)} px (no pixel spacing: not in mm)`;
  return `${length.toFixed(1)} mm${calibration === "Proj" ? " at the detector" : ""}`;
}

/** Whether Cornerstone's `unit` is millimetres (with any calibration note). */
export function inMillimetres(unit = "px"): boolean {
  return unit.split(" ")[0] === "mm";
}
