import { metaData, registerDefaultProviders, utilities } from "@cornerstonejs/metadata";
import { beforeEach, describe, expect, it } from "vitest";
import { frameImageId, instanceMetadata, metadataUrl, registerInstance } from "./wadors";

const BASE = "https://portal.example/images/7/";
const INSTANCE = "/dicomweb/studies/2.25.1/series/2.25.2/instances/2.25.3";

/** A /metadata answer as the portal serves it (RG3_J2KI's header, pydicom's DICOM JSON). */
const answer = () => [
  {
    "00080016": { vr: "UI", Value: ["1.2.840.10008.5.1.4.1.1.1"] },
    "00080060": { vr: "CS", Value: ["CR"] },
    "00280002": { vr: "US", Value: [1] },
    "00280004": { vr: "CS", Value: ["MONOCHROME1"] },
    "00280010": { vr: "US", Value: [1760] },
    "00280011": { vr: "US", Value: [1750] },
    "00280030": { vr: "DS", Value: [0.0, 0.0] },
    "00280100": { vr: "US", Value: [16] },
    "00280101": { vr: "US", Value: [10] },
    "00280102": { vr: "US", Value: [9] },
    "00280103": { vr: "US", Value: [0] },
    "00281050": { vr: "DS", Value: [550.0, 600.0] },
    "00281051": { vr: "DS", Value: [1024.0, 900.0] },
  },
];

describe("WADO-RS image ids", () => {
  it("names frame 1 of the instance, absolute, behind the wadors scheme", () => {
    expect(frameImageId(INSTANCE, BASE)).toBe(`wadors:https://portal.example${INSTANCE}/frames/1`);
    expect(frameImageId(`${INSTANCE}/`, BASE)).toBe(`wadors:https://portal.example${INSTANCE}/frames/1`);
    expect(metadataUrl(INSTANCE)).toBe(`${INSTANCE}/metadata`);
  });

  it("takes the one instance of a metadata answer and refuses anything else", () => {
    expect(instanceMetadata(answer())["00280004"].Value).toEqual(["MONOCHROME1"]);
    expect(() => instanceMetadata(answer()[0])).toThrow(/one instance/);
    expect(() => instanceMetadata([...answer(), ...answer()])).toThrow(/one instance/);
    expect(() => instanceMetadata([{ "00080060": { vr: "CS", Value: ["CR"] } }])).toThrow(/image size/);
  });
});

describe("registering an instance's metadata", () => {
  beforeEach(() => {
    // What the image loader's start-up does: the default providers, their caches emptied.
    registerDefaultProviders();
    utilities.clearCacheData();
  });

  it("answers the modules the wadors loader decodes with, for the frame's image id", () => {
    const imageId = registerInstance(INSTANCE, answer(), BASE);
    expect(metaData.get("imagePixelModule", imageId)).toMatchObject({
      samplesPerPixel: 1,
      photometricInterpretation: "MONOCHROME1",
      rows: 1760,
      columns: 1750,
      bitsAllocated: 16,
      bitsStored: 10,
      pixelRepresentation: 0,
    });
    const voi = metaData.get("voiLutModule", imageId) as { windowCenter: number[]; windowWidth: number[] };
    expect([voi.windowCenter, voi.windowWidth]).toEqual([
      [550, 600],
      [1024, 900],
    ]);
  });

  it("is lost when the loader starts after it: register after initCornerstone", () => {
    const imageId = registerInstance(INSTANCE, answer(), BASE);
    utilities.clearCacheData();
    expect(metaData.get("imagePixelModule", imageId)).toBeUndefined();
  });
});
