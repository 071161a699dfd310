// The case's context on the review screen: why it is in the queue (the portal's sentence), and
// the same patient's other films of the site beside the main image, their window/level following
// the main viewer's (the best check for a clerical age error: do the films' ages line up?).
import { yearsMonthsText } from "../../ages";
import type { ImageDetail, PatientFilm, ReviewApi } from "../../api/client";
import { wadoRsImageId } from "../../cornerstone/wadors";
import { createFilmStrip, followVoi, voiText } from "../../viewer/films";
import type { StackViewer } from "../../viewer/stack";
import { HIDDEN } from "./blind";
import { element } from "./dom";

/** The sentence saying why the case is in the queue, or why there is none. */
export function whyText(detail: ImageDetail): string {
  if (detail.output_hidden) return `Why it is in the queue: ${HIDDEN}.`;
  return detail.why ?? "No prediction yet: the case has no score, so it is not in the queue.";
}

/** "0 y 6 m, PA: 1 y 2 m younger than this film" (recorded ages, so a clerical slip shows). */
export function filmCaption(film: PatientFilm, recordedDays: number): string {
  const view = film.view_position ? `, ${film.view_position}` : "";
  const gap = film.recorded_age_days - recordedDays;
  const relation =
    gap === 0 ? "the same recorded age as this film" : `${yearsMonthsText(Math.abs(gap))} ${gap < 0 ? "younger" : "older"} than this film`;
  return `${yearsMonthsText(film.recorded_age_days)}${view}: ${relation}`;
}

/** Fills the panel with the other films (hidden when there are none) and keeps their W/L on the main viewer's. */
export async function renderOtherFilms(api: ReviewApi, detail: ImageDetail, main: StackViewer): Promise<void> {
  const panel = element("other-films");
  const strip = element("other-films-strip");
  const films = detail.other_films ?? [];
  panel.hidden = films.length === 0;
  if (films.length === 0) return;
  strip.replaceChildren();
  const viewports = films.map((film) => {
    const figure = document.createElement("figure");
    figure.className = "film";
    figure.dataset.image = String(film.id);
    const viewport = document.createElement("div");
    viewport.className = "film-viewport";
    viewport.setAttribute("aria-label", `film ${film.id}`);
    const caption = document.createElement("figcaption");
    const link = document.createElement("a");
    link.href = `/images/${film.id}/`;
    link.textContent = `Image ${film.id}`;
    caption.append(link, ` · ${filmCaption(film, detail.recorded_age_days)}`);
    figure.append(viewport, caption);
    strip.append(figure);
    return viewport;
  });
  try {
    const filmStrip = await createFilmStrip(
      viewports,
      films.map((film) => () => wadoRsImageId(film.wado_rs_url, (url) => api.getDicomMetadata(url))),
    );
    followVoi(main, filmStrip, (range) => (strip.dataset.voi = voiText(range)));
    strip.dataset.ready = "true";
  } catch {
    strip.dataset.ready = "error";
  }
}
