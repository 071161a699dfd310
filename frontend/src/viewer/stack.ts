// One Cornerstone3D StackViewport showing one radiograph at full resolution, with the review tools.
import { Enums, getRenderingEngine, imageLoader, RenderingEngine, type Types } from "@cornerstonejs/core";
import { initCornerstone } from "../cornerstone/init";
import { attachToolGroup, destroyToolGroup, REVIEW_TOOLS } from "../cornerstone/tools";
import { voiPresets, type VoiPreset } from "./voi";

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
  reset(): void;
  destroy(): void;
}

export async function createStackViewer(element: HTMLDivElement, imageId: string): Promise<StackViewer> {
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

  const viewer: StackViewer = {
    element,
    viewport,
    image,
    presets: voiPresets(image, fileDefault, baseInvert),
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
    reset() {
      viewer.presetIndex = 0;
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
