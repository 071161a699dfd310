// One Cornerstone3D StackViewport showing one radiograph at full resolution, with the review tools.
import { Enums, getRenderingEngine, imageLoader, metaData, RenderingEngine, type Types } from "@cornerstonejs/core";
import { initCornerstone } from "../cornerstone/init";
import { attachToolGroup, clearMeasurements, destroyToolGroup, REVIEW_TOOLS, setMeasuring } from "../cornerstone/tools";
import { dropPreview, watchPreview } from "./preview";
import { fileWindows, voiPresets, type VoiLutModule, type VoiPreset } from "./voi";
import { panBy, rotateBy, toggleFlip, unrotate, zoomBy } from "./camera";

const ENGINE_ID = "review-engine";
const VIEWPORT_ID = "review-viewport";

export interface StackViewer {
  readonly element: HTMLDivElement;
  readonly viewport: Types.IStackViewport;
  readonly image: Types.IImage;
  readonly presets: VoiPreset[];
  /** The preset applied last (W/L drags leave it as it was). */
  presetIndex: number;
  applyPreset(index: number): void;
  /** Inverted relative to how the file asks to be shown (MONOCHROME1 is shown inverted already). */
  isInverted(): boolean;
  toggleInvert(): void;
  /** The window shown now (a VOI range in stored values, after the modality LUT). */
  getVoi(): Types.VOIRange;
  /** Shows `range` (another viewer's window, say); presets stay as they are. */
  setVoi(range: Types.VOIRange): void;
  /**
   * Calls `listener` with the window whenever it changes: a W/L drag (live, while dragging), a
   * preset, a reset, `setVoi`. Returns the function that stops it.
   */
  onVoiChange(listener: (range: Types.VOIRange) => void): () => void;
  /** Zoom by `factor` (> 1 magnifies) about the centre of the viewport. */
  zoom(factor: number): void;
  /** Moves the film by fractions of the viewport's width and height (right and down positive). */
  pan(dx: number, dy: number): void;
  /** Rotates by `degrees`, clockwise on screen. */
  rotate(degrees: number): void;
  /** Mirrors the film left-right (`horizontal`) or upside down. */
  flip(horizontal: boolean): void;
  /** Left drag measures lengths (true) or windows (false). */
  measuring: boolean;
  setMeasuring(on: boolean): void;
  clearMeasurements(): void;
  /** Resets zoom, pan, rotation, flips, window/level and invert (measurements stay). */
  reset(): void;
  destroy(): void;
}

export async function createStackViewer(element: HTMLDivElement, imageId: string): Promise<StackViewer> {
  watchPreview(element);
  await initCornerstone();
  getRenderingEngine(ENGINE_ID)?.destroy();
  const engine = new RenderingEngine(ENGINE_ID);
  engine.enableElement({
    viewportId: VIEWPORT_ID,
    type: Enums.ViewportType.STACK,
    element,
    defaultOptions: { background: [0, 0, 0] },
  });
  const viewport = engine.getViewport<Types.IStackViewport>(VIEWPORT_ID);
  attachToolGroup(REVIEW_TOOLS, VIEWPORT_ID, ENGINE_ID);

  // Right-drag zooms: keep the browser's context menu out of the way.
  const noMenu = (event: Event) => event.preventDefault();
  element.addEventListener("contextmenu", noMenu);
  const resizer = new ResizeObserver(() => engine.resize(true, true));
  resizer.observe(element);
  const destroy = () => {
    resizer.disconnect();
    element.removeEventListener("contextmenu", noMenu);
    dropPreview(element);
    destroyToolGroup(REVIEW_TOOLS);
    engine.destroy();
  };

  // Resolves once the pixels are on screen, not merely decoded (the render waits for a frame).
  const rendered = new Promise<void>((resolve) =>
    element.addEventListener(Enums.Events.IMAGE_RENDERED, () => resolve(), { once: true }),
  );
  let image: Types.IImage;
  try {
    // Loaded first because setStack swallows load and decode errors (it resolves with no image).
    await imageLoader.loadAndCacheImage(imageId);
    await viewport.setStack([imageId], 0);
    viewport.render();
    image = viewport.getCornerstoneImage();
    if (!image) throw new Error("the image did not load");
  } catch (error) {
    destroy();
    throw error;
  }
  const fileDefault = viewport.getProperties().voiRange ?? { lower: image.minPixelValue, upper: image.maxPixelValue };
  // Cornerstone shows MONOCHROME1 inverted from the start; that is the display order presets need.
  const baseInvert = viewport.getProperties().invert ?? false;
  await rendered;
  // The film is on screen: the server's quick low-resolution rendition gives way to it.
  dropPreview(element);
  const own = fileWindows(metaData.get("voiLutModule", imageId) as VoiLutModule | undefined);

  const viewer: StackViewer = {
    element,
    viewport,
    image,
    presets: voiPresets(image, fileDefault, baseInvert, own),
    presetIndex: 0,
    applyPreset(index) {
      viewer.presetIndex = index;
      viewport.setProperties({ voiRange: viewer.presets[index].range });
      viewport.render();
    },
    isInverted: () => (viewport.getProperties().invert ?? false) !== baseInvert,
    toggleInvert() {
      viewport.setProperties({ invert: !(viewport.getProperties().invert ?? false) });
      viewport.render();
    },
    getVoi: () => viewport.getProperties().voiRange ?? fileDefault,
    setVoi(range) {
      viewport.setProperties({ voiRange: range });
      viewport.render();
    },
    onVoiChange(listener) {
      const handler = (event: Event) => {
        const range = (event as CustomEvent<{ range?: Types.VOIRange }>).detail?.range;
        if (range) listener(range);
      };
      element.addEventListener(Enums.Events.VOI_MODIFIED, handler);
      return () => element.removeEventListener(Enums.Events.VOI_MODIFIED, handler);
    },
    zoom: (factor) => zoomBy(viewport, factor),
    pan: (dx, dy) => panBy(viewport, dx, dy),
    rotate: (degrees) => rotateBy(viewport, degrees),
    flip: (horizontal) => toggleFlip(viewport, horizontal),
    measuring: false,
    setMeasuring(on) {
      viewer.measuring = on;
      setMeasuring(REVIEW_TOOLS, on);
    },
    clearMeasurements: () => clearMeasurements(element),
    reset() {
      viewer.presetIndex = 0;
      unrotate(viewport);
      viewport.resetCamera();
      // Not resetProperties(): on a MONOCHROME1 film it restores the transfer function's
      // un-inverted nodes while keeping the inverted flag, so the film comes back negative.
      viewport.setProperties({ voiRange: fileDefault });
      viewport.setProperties({ invert: baseInvert });
      viewport.render();
    },
    destroy,
  };
  return viewer;
}
