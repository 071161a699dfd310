// The model's heatmap drawn over the radiograph from the viewport's own camera: an overlay canvas
// inside the Cornerstone element, redrawn on every render with the image corners mapped through
// worldToCanvas, so zoom, pan, resize and device pixel ratio keep it aligned with the pixels.
import { Enums, utilities, type Types } from "@cornerstonejs/core";
import type { StackViewer } from "./stack";
import { colourLut, isBlank, type HeatmapScale } from "./heatmap-colours";

/** A decoded heatmap: the coloured layer, and whether it draws nothing at all. */
export interface HeatmapLayer {
  canvas: HTMLCanvasElement;
  blank: boolean;
}

/**
 * Decodes a heatmap PNG into a drawable layer. A grey one (R = G = B, opaque: the compact 8-bit
 * map) is coloured here by its scale (signed, or positive for maps stored before signed ones);
 * any other is taken as already coloured RGBA, blank when fully transparent.
 */
export async function decodeHeatmap(png: Blob, scale: HeatmapScale = "positive"): Promise<HeatmapLayer> {
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
  if (!grey) return { canvas, blank: isBlank(data.subarray(3), "positive", 4) };
  const blank = isBlank(data, scale, 4);
  const lut = colourLut(scale);
  for (let i = 0; i < data.length; i += 4) {
    const v = data[i] * 4;
    data[i] = lut[v];
    data[i + 1] = lut[v + 1];
    data[i + 2] = lut[v + 2];
    data[i + 3] = lut[v + 3];
  }
  ctx.putImageData(pixels, 0, 0);
  return { canvas, blank };
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
