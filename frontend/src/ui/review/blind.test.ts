import { describe, expect, it } from "vitest";
import type { ImageDetail } from "../../api/client";
import { HIDDEN, modelOutputText, revealed } from "./blind";

function detail(overrides: Partial<ImageDetail>): ImageDetail {
  return {
    id: 1,
    uuid: "u",
    site: "north",
    upload: 1,
    sex: "F",
    age_days: 1000,
    recorded_age_days: 1000,
    age_source: "birthdate",
    modality: "DX",
    view_position: "PA",
    rows: 64,
    columns: 64,
    pixel_spacing_mm: null,
    photometric_interpretation: "MONOCHROME2",
    transfer_syntax_uid: "1.2.840.10008.1.2.1",
    burned_in_annotation: false,
    status: "unreviewed",
    revision: 0,
    curated_age_days: null,
    lease: null,
    double_reading: false,
    blind_reading: true,
    output_hidden: true,
    can_review: true,
    can_adjudicate: false,
    dicom_url: "/api/images/1/dicom/",
    wado_rs_url: "/dicomweb/studies/2.25.1/series/2.25.2/instances/2.25.3",
    ...overrides,
  };
}

describe("blind reading in the panel", () => {
  it("says hidden, never 'not predicted', while the output is left out", () => {
    expect(modelOutputText(detail({}))).toEqual({
      predicted: HIDDEN,
      residual: HIDDEN,
      score: HIDDEN,
      interval: HIDDEN,
    });
  });

  it("shows the model's output once it is there", () => {
    const shown = modelOutputText(
      detail({ output_hidden: false, predicted_age_days: 1365, residual_days: 365, score: 2.5 }),
    );
    expect(shown).toEqual({
      predicted: "3 y 8 m",
      residual: "+12.0 months",
      score: "2.50",
      interval: "not calibrated",
    });
  });

  it("shows the calibrated interval and says when the recorded age is outside it", () => {
    const prediction = {
      id: 1,
      model: "demo",
      age_days: 1365,
      score: 2.5,
      residual_days: 365,
      heatmap_url: null,
      heatmap_scale: null,
      heatmap_blank: null,
      interval_low_days: 1200,
      interval_high_days: 1500,
    };
    const base = { output_hidden: false, predicted_age_days: 1365, prediction };
    expect(modelOutputText(detail({ ...base, recorded_age_days: 1000 })).interval).toBe(
      "3 y 3 m – 4 y 1 m · recorded age outside",
    );
    expect(modelOutputText(detail({ ...base, recorded_age_days: 1300 })).interval).toBe("3 y 3 m – 4 y 1 m");
  });

  it("says not predicted yet when there is no prediction", () => {
    const none = detail({ output_hidden: false, predicted_age_days: null, residual_days: null, score: null, prediction: null });
    expect(modelOutputText(none).predicted).toBe("not predicted yet");
  });

  it("reveals only when the output goes from hidden to shown", () => {
    expect(revealed(detail({}), detail({ output_hidden: false }))).toBe(true);
    expect(revealed(detail({ output_hidden: false }), detail({ output_hidden: false }))).toBe(false);
    expect(revealed(detail({}), detail({}))).toBe(false);
  });
});
