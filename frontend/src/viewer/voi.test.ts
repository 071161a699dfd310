import { describe, expect, it } from "vitest";
import { fileWindows, windowOf } from "./voi";

describe("fileWindows", () => {
  it("offers each of the file's windows, named by its explanation", () => {
    const presets = fileWindows({
      windowCenter: [15000, 2048],
      windowWidth: [30000, 4096],
      windowCenterWidthExplanation: ["NORMAL", "HARDER"],
    });
    expect(presets.map((p) => [p.id, p.label])).toEqual([
      ["file-1", "File: NORMAL"],
      ["file-2", "File: HARDER"],
    ]);
    expect(presets[0].range).toEqual({ lower: 0, upper: 29999 });
    expect(windowOf(presets[0].range)).toEqual({ width: 30000, level: 15000 });
  });

  it("reads one window, backslash lists, and leaves out what is not a window", () => {
    expect(fileWindows({ windowCenter: 40, windowWidth: 400 }).map((p) => p.label)).toEqual(["File window"]);
    expect(fileWindows({ windowCenter: "40\\50", windowWidth: "400\\0" }).map((p) => p.id)).toEqual(["file-1"]);
    expect(fileWindows({ windowCenter: [40], windowWidth: [] })).toEqual([]);
    expect(fileWindows(undefined)).toEqual([]);
  });
});
