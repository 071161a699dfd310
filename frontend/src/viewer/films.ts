// Small Cornerstone3D stack viewports side by side, for other films of the same patient, whose
// window/level follows the main viewer's: one rendering engine (one WebGL context) for them all,
// separate from the main viewer's engine, which stack.ts owns and recreates per case.
import { Enums, getRenderingEngine, imageLoader, RenderingEngine, type Types } from "@cornerstonejs/core";
import { initCornerstone } from "../cornerstone/init";
import type { StackViewer } from "./stack";

const ENGINE_ID = "films-engine";

export interface FilmStrip {
  /** The films that could be shown, by their element's index; the others failed to load. */
  readonly shown: number;
  /** Applies a window/level range to every film (the main viewer's, when synchronised). */
  setVoi(range: Types.VOIRange): void;
  destroy(): void;
}

/** "lower:upper", rounded: what a film's viewport shows now, for the page and its tests. */
export function voiText(range: Types.VOIRange | undefined): string {
  return range ? `${Math.round(range.lower)}:${Math.round(range.upper)}` : "";
}

/**
 * One passive stack viewport per element (no tools: the main viewer is where one works), showing
 * the image id its `imageIds` function resolves with (WADO-RS: after fetching the film's
 * metadata); a film that does not load gets `data-state="error"` and is skipped. Each element's
 * `data-voi` says the range its viewport shows after every change.
 */
export async function createFilmStrip(elements: HTMLDivElement[], imageIds: (() => Promise<string>)[]): Promise<FilmStrip> {
  await initCornerstone();
  getRenderingEngine(ENGINE_ID)?.destroy();
  const engine = new RenderingEngine(ENGINE_ID);
  const viewports: { element: HTMLDivElement; viewport: Types.IStackViewport }[] = [];
  elements.forEach((element, index) => {
    const viewportId = `film-${index}`;
    engine.enableElement({
      viewportId,
      type: Enums.ViewportType.STACK,
      element,
      defaultOptions: { background: [0, 0, 0] },
    });
    viewports.push({ element, viewport: engine.getViewport<Types.IStackViewport>(viewportId) });
  });
  const loaded = await Promise.all(
    viewports.map(async ({ element, viewport }, index) => {
      try {
        const imageId = await imageIds[index]();
        await imageLoader.loadAndCacheImage(imageId);
        await viewport.setStack([imageId], 0);
        viewport.render();
        element.dataset.state = "shown";
        element.dataset.voi = voiText(viewport.getProperties().voiRange);
        return true;
      } catch {
        element.dataset.state = "error";
        return false;
      }
    }),
  );
  const resizer = new ResizeObserver(() => engine.resize(true, true));
  elements.forEach((element) => resizer.observe(element));
  return {
    shown: loaded.filter(Boolean).length,
    setVoi(range) {
      viewports.forEach(({ element, viewport }, index) => {
        if (!loaded[index]) return;
        viewport.setProperties({ voiRange: { lower: range.lower, upper: range.upper } });
        viewport.render();
        element.dataset.voi = voiText(viewport.getProperties().voiRange);
      });
    },
    destroy() {
      resizer.disconnect();
      engine.destroy();
    },
  };
}

/**
 * Keeps the strip's window/level on the main viewer's: now, and after every change there (drag,
 * preset, reset). Returns the function that stops following.
 */
export function followVoi(main: StackViewer, strip: FilmStrip, onChange?: (range: Types.VOIRange) => void): () => void {
  const apply = (range: Types.VOIRange | undefined) => {
    if (!range) return;
    strip.setVoi(range);
    onChange?.(range);
  };
  const listener = (event: Event) => {
    const detail = (event as CustomEvent<Types.EventTypes.VoiModifiedEventDetail>).detail;
    apply(detail?.range);
  };
  main.element.addEventListener(Enums.Events.VOI_MODIFIED, listener);
  apply(main.viewport.getProperties().voiRange);
  return () => main.element.removeEventListener(Enums.Events.VOI_MODIFIED, listener);
}
