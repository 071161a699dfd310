// Keyboard camera moves of the stack viewer: zoom about the centre, pan by a fraction of the
// viewport, rotate and flip on screen. The mouse tools do the same through Cornerstone's tools.
import type { Types } from "@cornerstonejs/core";

const add = (a: Types.Point3, b: Types.Point3): Types.Point3 => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
const sub = (a: Types.Point3, b: Types.Point3): Types.Point3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];

/** Keeps the zoom within what a film needs: from a thumbnail to single pixels filling the screen. */
const MIN_ZOOM = 0.1;
const MAX_ZOOM = 40;

export function zoomBy(viewport: Types.IStackViewport, factor: number): void {
  const zoom = viewport.getZoom();
  viewport.setZoom(Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom * factor)));
  viewport.render();
}

/** Moves the film right by `dx` and down by `dy` viewport widths and heights (as a pan drag). */
export function panBy(viewport: Types.IStackViewport, dx: number, dy: number): void {
  const { clientWidth: width, clientHeight: height } = viewport.canvas;
  const centre: Types.Point2 = [width / 2, height / 2];
  const moved: Types.Point2 = [centre[0] + dx * width, centre[1] + dy * height];
  const shift = sub(viewport.canvasToWorld(centre), viewport.canvasToWorld(moved));
  const { focalPoint, position } = viewport.getCamera();
  if (!focalPoint || !position) return;
  viewport.setCamera({ focalPoint: add(focalPoint, shift), position: add(position, shift) });
  viewport.render();
}

export function rotateBy(viewport: Types.IStackViewport, degrees: number): void {
  const rotation = viewport.getViewPresentation().rotation ?? 0;
  viewport.setViewPresentation({ rotation: (((rotation + degrees) % 360) + 360) % 360 });
  viewport.render();
}

export function toggleFlip(viewport: Types.IStackViewport, horizontal: boolean): void {
  const { flipHorizontal = false, flipVertical = false } = viewport.getViewPresentation({
    flipHorizontal: true,
    flipVertical: true,
  });
  // setCamera, not setViewPresentation: the latter cannot flip back (it asks flip() for
  // `false`, which flips nothing).
  viewport.setCamera(horizontal ? { flipHorizontal: !flipHorizontal } : { flipVertical: !flipVertical });
  viewport.render();
}

/** Back to no rotation and no flip (the zoom and pan are the caller's to reset). */
export function unrotate(viewport: Types.IStackViewport): void {
  viewport.setCamera({ flipHorizontal: false, flipVertical: false });
  viewport.setViewPresentation({ rotation: 0 });
}
