import { describe, expect, it } from "vitest";
import { inMillimetres, lengthText } from "./length";

describe("lengthText", () => {
  it("says millimetres where the film states its pixel spacing", () => {
    expect(lengthText(84.24, "mm")).toBe("84.2 mm");
    expect(inMillimetres("mm")).toBe(true);
  });

  it("says where ImagerPixelSpacing measures: at the detector", () => {
    expect(lengthText(84.26, "mm Proj")).toBe("84.3 mm at the detector");
    expect(inMillimetres("mm Proj")).toBe(true);
  });

  it("never shows Cornerstone's 'px Unknown': pixels, and that they are not millimetres", () => {
    for (const unit of ["px", "px Unknown", undefined]) {
      expect(lengthText(120.4, unit)).toBe("120 px (no pixel spacing: not in mm)");
      expect(inMillimetres(unit)).toBe(false);
    }
  });
});
