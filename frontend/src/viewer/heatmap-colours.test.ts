// The viewer's colour map against the worker's: heatmap.expected.json is `table()` of
// inference_worker/heatmap.py, and tests/inference_worker/test_heatmap.py fails if it is stale.
import { describe, expect, it } from "vitest";
import { colourLut, isBlank, legendGradient, levelValue, MAX_ALPHA, SIGNED_RANGE, ZERO_LEVEL } from "./heatmap-colours";
import expected from "./heatmap.expected.json";

describe("heatmap-colours.ts agrees with inference_worker/heatmap.py", () => {
  it("has the same constants", () => {
    expect([ZERO_LEVEL, SIGNED_RANGE, MAX_ALPHA]).toEqual([expected.zero_level, expected.signed_range, expected.max_alpha]);
  });

  it("colours every signed level as colourise does, within one step", () => {
    const lut = colourLut("signed");
    expected.signed_rgba.forEach((rgba, level) => {
      for (let c = 0; c < 4; c++) expect(Math.abs(lut[level * 4 + c] - rgba[c])).toBeLessThanOrEqual(1);
    });
  });

  it("calls the same maps blank", () => {
    for (const [levels, blank] of expected.blank as [number[], boolean][]) {
      expect(isBlank(levels, "signed")).toBe(blank);
    }
  });
});

describe("the signed map", () => {
  it("is clear where nothing contributes, warm for pushes up and cool for pushes down", () => {
    const lut = colourLut("signed");
    const rgba = (level: number) => Array.from(lut.slice(level * 4, level * 4 + 4));
    expect(rgba(ZERO_LEVEL)[3]).toBe(0);
    const [r, , b, a] = rgba(255);
    expect(r).toBeGreaterThan(200);
    expect(b).toBeLessThan(50);
    expect(a).toBe(Math.round(255 * MAX_ALPHA));
    const [r2, , b2, a2] = rgba(1);
    expect(b2).toBeGreaterThan(200);
    expect(r2).toBeLessThan(50);
    expect(a2).toBe(a);
    expect(levelValue(255, "signed")).toBe(1);
    expect(levelValue(1, "signed")).toBe(-1);
  });

  it("reads older positive maps as 0..1 heat, blank when all zero", () => {
    expect(levelValue(255, "positive")).toBe(1);
    expect(colourLut("positive")[3]).toBe(0);
    expect(isBlank([0, 0, 0], "positive")).toBe(true);
    expect(isBlank([0, 0, 1], "positive")).toBe(false);
    expect(isBlank([128, 128], "positive")).toBe(false);
  });

  it("isBlank reads one channel of RGBA pixels with a stride", () => {
    const pixels = [128, 128, 128, 255, 128, 128, 128, 255];
    expect(isBlank(pixels, "signed", 4)).toBe(true);
    pixels[4] = 129;
    expect(isBlank(pixels, "signed", 4)).toBe(false);
  });

  it("draws the legend from the same anchors, cool to warm", () => {
    expect(legendGradient("signed")).toBe(
      "linear-gradient(to right, rgb(0, 64, 255), rgb(0, 217, 255), rgb(255, 255, 255), rgb(255, 217, 0), rgb(255, 26, 0))",
    );
  });
});
