// What the viewer reads out beside the film: the window (width and level, live while dragging)
// and the last length measured, in millimetres where the film states its pixel spacing.
import { utilities, type Types } from "@cornerstonejs/core";
import { eventTarget } from "@cornerstonejs/core";
import { annotation as annotations, Enums as ToolEnums, type Types as ToolTypes } from "@cornerstonejs/tools";
import { inMillimetres, lengthText } from "../../cornerstone/length";
import type { StackViewer } from "../../viewer/stack";
import { windowOf } from "../../viewer/voi";
import { element } from "./dom";

/** Integers for the usual stored values; one decimal where the window is narrower than 10. */
function number(value: number, fine: boolean): string {
  return fine ? value.toFixed(1) : String(Math.round(value));
}

export function formatWindow(range: Types.VOIRange): string {
  const { width, level } = windowOf(range);
  const fine = width < 10;
  return `W ${number(width, fine)} · L ${number(level, fine)}`;
}

/** Shows the window now and follows every change of it. */
export function startWindowReadout(viewer: StackViewer): void {
  const readout = element("wl-readout");
  const show = (range: Types.VOIRange) => {
    const { width, level } = windowOf(range);
    readout.textContent = formatWindow(range);
    readout.dataset.width = String(width);
    readout.dataset.level = String(level);
  };
  show(viewer.getVoi());
  viewer.onVoiChange(show);
}

interface LengthStats {
  length?: number;
  unit?: string;
}

/** The image-pixel length of a line between two world points of `imageId`. */
function pixelLength(imageId: string, points: Types.Point3[]): number {
  const [a, b] = points.map((point) => utilities.worldToImageCoords(imageId, point) as Types.Point2);
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}

/**
 * Shows the length last drawn or moved: "84.2 mm" where the film has a pixel spacing, else in
 * image pixels, with a note that the film states no spacing (then there is no true length).
 */
export function startLengthReadout(viewer: StackViewer): void {
  const readout = element("length-readout");
  const imageId = viewer.image.imageId;
  const show = (event: Event) => {
    // The lengths drawn now: an event can come late for a line just removed (the statistics are
    // throttled), and then names a line that is gone.
    const drawn = annotations.state.getAnnotations("Length", viewer.element) ?? [];
    const named = (event as CustomEvent<{ annotation?: ToolTypes.Annotation }>).detail?.annotation;
    const line = drawn.find((a) => a.annotationUID === named?.annotationUID) ?? drawn.at(-1);
    if (!line) {
      readout.hidden = true;
      return;
    }
    const stats = Object.values(line.data?.cachedStats ?? {})[0] as LengthStats | undefined;
    const points = line.data?.handles?.points as Types.Point3[] | undefined;
    if (!stats || typeof stats.length !== "number" || !points || points.length < 2) return;
    const pixels = pixelLength(imageId, points);
    const mm = inMillimetres(stats.unit);
    readout.hidden = false;
    readout.textContent = `Length ${lengthText(mm ? stats.length : pixels, stats.unit)}`;
    readout.dataset.unit = mm ? "mm" : "px";
    readout.dataset.length = String(mm ? stats.length : pixels);
    readout.dataset.pixels = String(pixels);
  };
  eventTarget.addEventListener(ToolEnums.Events.ANNOTATION_COMPLETED, show);
  eventTarget.addEventListener(ToolEnums.Events.ANNOTATION_MODIFIED, show);
  // Read again once the removal is done, whether the event comes before or after it.
  eventTarget.addEventListener(ToolEnums.Events.ANNOTATION_REMOVED, (event: Event) => {
    show(event);
    setTimeout(() => show(event), 0);
  });
}

/** The measure button's pressed state follows the mode. */
export function renderMeasuring(viewer: StackViewer): void {
  element("measure").setAttribute("aria-pressed", String(viewer.measuring));
  element("viewer-app").dataset.measuring = String(viewer.measuring);
}
