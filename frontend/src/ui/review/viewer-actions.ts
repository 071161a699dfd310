// The viewer's camera and measuring keys: zoom, pan, rotate, flip, the length tool.
import type { StackViewer } from "../../viewer/stack";
import type { ViewerAction } from "./keys";
import { element } from "./dom";
import { renderMeasuring, startLengthReadout, startWindowReadout } from "./readout";

const ZOOM_STEP = 1.25;
/** A pan key moves the film by this fraction of the viewport. */
const PAN_STEP = 0.1;

const VIEWER_ACTIONS: Record<ViewerAction, (viewer: StackViewer) => void> = {
  zoomIn: (v) => v.zoom(ZOOM_STEP),
  zoomOut: (v) => v.zoom(1 / ZOOM_STEP),
  panLeft: (v) => v.pan(-PAN_STEP, 0),
  panRight: (v) => v.pan(PAN_STEP, 0),
  panUp: (v) => v.pan(0, -PAN_STEP),
  panDown: (v) => v.pan(0, PAN_STEP),
  rotateRight: (v) => v.rotate(90),
  rotateLeft: (v) => v.rotate(-90),
  flipH: (v) => v.flip(true),
  flipV: (v) => v.flip(false),
  measure: (v) => {
    v.setMeasuring(!v.measuring);
    renderMeasuring(v);
  },
  clearMeasures: (v) => v.clearMeasurements(),
};

export function isViewerAction(action: string): action is ViewerAction {
  return Object.hasOwn(VIEWER_ACTIONS, action);
}

export function runViewerAction(viewer: StackViewer | null, action: ViewerAction): void {
  if (viewer) VIEWER_ACTIONS[action](viewer);
}

/** Readouts and the measure button, once the film is on screen. */
export function startViewerTools(viewer: StackViewer): void {
  startWindowReadout(viewer);
  startLengthReadout(viewer);
  const measure = element<HTMLButtonElement>("measure");
  measure.disabled = false;
  measure.addEventListener("click", () => runViewerAction(viewer, "measure"));
  renderMeasuring(viewer);
}
