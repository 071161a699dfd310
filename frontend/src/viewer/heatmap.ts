// The model's heatmap drawn over the radiograph from the viewport's own camera: an overlay canvas
// inside the Cornerstone element, redrawn on every render with the image corners mapped through
// worldToCanvas, so zoom, pan, resize and device pixel ratio keep it aligned with the pixels.
import { Enums, utilities, type Types } from "@cornerstonejs/core";
import type { StackViewer } from "./stack";

/** Colour map anchors (dark blue -> cyan -> yellow -> red) over heat 0..1. */
const ANCHORS: [number, number, number][] = [
  [0, 0, 0.5],
  [0, 0.3, 1],
  [0, 0.9, 0.9],
  [1, 0.9, 0],
  [1, 0.1, 0],
];
const MAX_ALPHA = 0.6;

function colourLut(): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(256 * 4);
  const segments = ANCHORS.length - 1;
  for (let v = 0; v < 256; v++) {
    const heat = v / 255;
    const x = heat * segments;
    const i = Math.min(segments - 1, Math.floor(x));
    const t = x - i;
    for (let c = 0; c < 3; c++) lut[v * 4 + c] = 255 * (ANCHORS[i][c] + (ANCHORS[i + 1][c] - ANCHORS[i][c]) * t);
    lut[v * 4 + 3] = 255 * heat * MAX_ALPHA;
  }
  return lut;
}

/**
 * Decodes a heatmap PNG into a drawable layer. A grey one (R = G = B, opaque: the compact 8-bit
 * heat map) is coloured here; any other is taken as already coloured RGBA.
 */
export async function decodeHeatmap(png: Blob): Promise<HTMLCanvasElement> {
  const bitmap = await createImageBitmap(png, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new Error("no 2D canvas");
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  let grey = true;
  for (let i = 0; i < data.length && grey; i += 4) {
    grey = data[i] === data[i + 1] && data[i] === data[i + 2] && data[i + 3] === 255;
  }
  if (!grey) return canvas;
  const lut = colourLut();
  for (let i = 0; i < data.length; i += 4) {
    const v = data[i] * 4;
    data[i] = lut[v];
    data[i + 1] = lut[v + 1];
    data[i + 2] = lut[v + 2];
    data[i + 3] = lut[v + 3];
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}

export interface HeatmapOverlay {
  readonly visible: boolean;
  readonly opacity: number;
  setVisible(visible: boolean): void;
  setOpacity(opacity: number): void;
  destroy(): void;
}

export function createHeatmapOverlay(viewer: StackViewer, layer: HTMLCanvasElement, opacity = 1): HeatmapOverlay {
  const { viewport, image } = viewer;
  const overlay = document.createElement("canvas");
  overlay.className = "heatmap-overlay";
  Object.assign(overlay.style, {
    position: "absolute", left: "0", top: "0", width: "100%", height: "100%", pointerEvents: "none",
  });
  // Beside Cornerstone's own canvas, in the same positioned box, so canvas coordinates coincide.
  viewport.canvas.after(overlay);
  const state = { visible: true, opacity };

  // The image's outer corners (pixel edges, not centres) in image coordinates: x = column, y = row.
  const corners: Types.Point2[] = [[0, 0], [image.columns, 0], [0, image.rows]];

  const draw = () => {
    const dpr = window.devicePixelRatio || 1;
    const width = viewport.canvas.width;
    const height = viewport.canvas.height;
    if (overlay.width !== width || overlay.height !== height) {
      overlay.width = width;
      overlay.height = height;
    }
    const ctx = overlay.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!state.visible || state.opacity <= 0) return;
    // worldToCanvas answers in CSS pixels; the backing store is in device pixels.
    const [tl, tr, bl] = corners.map((corner) => {
      const world = utilities.imageToWorldCoords(image.imageId, corner) as Types.Point3;
      const [x, y] = viewport.worldToCanvas(world);
      return [x * dpr, y * dpr];
    });
    const w = layer.width;
    const h = layer.height;
    // The affine map that takes the layer's own pixels onto the image's extent on screen.
    ctx.setTransform((tr[0] - tl[0]) / w, (tr[1] - tl[1]) / w, (bl[0] - tl[0]) / h, (bl[1] - tl[1]) / h, tl[0], tl[1]);
    ctx.globalAlpha = state.opacity;
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(layer, 0, 0);
  };

  viewer.element.addEventListener(Enums.Events.IMAGE_RENDERED, draw);
  draw();

  return {
    get visible() {
      return state.visible;
    },
    get opacity() {
      return state.opacity;
    },
    setVisible(visible) {
      state.visible = visible;
      draw();
    },
    setOpacity(value) {
      state.opacity = Math.min(1, Math.max(0, value));
      draw();
    },
    destroy() {
      viewer.element.removeEventListener(Enums.Events.IMAGE_RENDERED, draw);
      overlay.remove();
    },
  };
}
