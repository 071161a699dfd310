import { describe, expect, it } from "vitest";
import type { ImageDetail, PatientFilm } from "../../api/client";
import { HIDDEN } from "./blind";
import { filmCaption, whyText } from "./context";

const film = (recorded_age_days: number, view_position = "PA"): PatientFilm => ({
  id: 7,
  recorded_age_days,
  view_position,
  dicom_url: "/api/images/7/dicom/",
  wado_rs_url: "/dicomweb/studies/2.25.7/series/2.25.8/instances/2.25.9",
});

function detail(overrides: Partial<ImageDetail>): ImageDetail {
  return { output_hidden: false, why: null, recorded_age_days: 60, ...overrides } as ImageDetail;
}

describe("why a case is in the queue", () => {
  it("shows the portal's sentence", () => {
    expect(whyText(detail({ why: "The model reads 3 y 4 m against a recorded 0 y 2 m." }))).toBe(
      "The model reads 3 y 4 m against a recorded 0 y 2 m.",
    );
  });

  it("hides it from a blind reader before the decision", () => {
    expect(whyText(detail({ output_hidden: true, why: undefined }))).toContain(HIDDEN);
  });

  it("says there is no score without a prediction", () => {
    expect(whyText(detail({ why: null }))).toMatch(/no score/);
  });
});

describe("another film of the same patient", () => {
  it("gives its recorded age and how it stands to this film's, in years and months", () => {
    expect(filmCaption(film(1461), 60)).toBe("4 y 0 m, PA: 3 y 10 m older than this film");
    expect(filmCaption(film(30, ""), 395)).toBe("0 y 1 m: 1 y 0 m younger than this film");
    expect(filmCaption(film(60), 60)).toBe("0 y 2 m, PA: the same recorded age as this film");
  });
});
