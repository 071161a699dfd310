// Cornerstone3D tools: each tool class is added once; tool groups are plain data.
import {
  addTool,
  annotation,
  Enums as ToolEnums,
  LengthTool,
  PanTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  type Types as ToolTypes,
} from "@cornerstonejs/tools";
import { lengthText } from "./length";

const { MouseBindings, KeyboardBindings } = ToolEnums;

const TOOLS = [WindowLevelTool, ZoomTool, PanTool, LengthTool];

interface ToolGroupSpec {
  id: string;
  tools: { name: string; bindings: ToolTypes.IToolBinding[] }[];
  /** Tools added passive: their annotations are drawn and can be edited, nothing starts them. */
  passive?: string[];
}

/**
 * The review viewer: left-drag window/level, right-drag or wheel zoom, middle or shift+left pan;
 * the length tool takes the left drag from window/level while measuring (`setMeasuring`).
 */
export const REVIEW_TOOLS: ToolGroupSpec = {
  id: "review",
  passive: [LengthTool.toolName],
  tools: [
    { name: WindowLevelTool.toolName, bindings: [{ mouseButton: MouseBindings.Primary }] },
    {
      name: ZoomTool.toolName,
      bindings: [{ mouseButton: MouseBindings.Secondary }, { mouseButton: MouseBindings.Wheel }],
    },
    {
      name: PanTool.toolName,
      bindings: [
        { mouseButton: MouseBindings.Auxiliary },
        { mouseButton: MouseBindings.Primary, modifierKey: KeyboardBindings.Shift },
      ],
    },
  ],
};

interface LengthData {
  cachedStats?: Record<string, { length?: number; unit?: string }>;
}

/** The label drawn beside a length on the film: the readout's words (`lengthText`). */
function lengthLabel(data: LengthData, targetId: string): string[] | undefined {
  const stats = data.cachedStats?.[targetId];
  if (typeof stats?.length !== "number" || Number.isNaN(stats.length)) return undefined;
  return [lengthText(stats.length, stats.unit)];
}

const TOOL_CONFIGURATION: Record<string, Record<string, unknown>> = {
  [LengthTool.toolName]: { getTextLines: lengthLabel },
};

let registered = false;

/** Called once by initCornerstone. */
export function registerTools(): void {
  if (registered) return;
  for (const tool of TOOLS) addTool(tool);
  registered = true;
}

/** Creates the group (or reuses it) and attaches one viewport to it. */
export function attachToolGroup(spec: ToolGroupSpec, viewportId: string, renderingEngineId: string): void {
  let group = ToolGroupManager.getToolGroup(spec.id);
  if (!group) {
    group = ToolGroupManager.createToolGroup(spec.id);
    if (!group) throw new Error(`tool group ${spec.id} could not be created`);
    for (const { name, bindings } of spec.tools) {
      group.addTool(name, TOOL_CONFIGURATION[name]);
      group.setToolActive(name, { bindings });
    }
    for (const name of spec.passive ?? []) {
      group.addTool(name, TOOL_CONFIGURATION[name]);
      group.setToolPassive(name);
    }
  }
  group.addViewport(viewportId, renderingEngineId);
}

export function destroyToolGroup(spec: ToolGroupSpec): void {
  ToolGroupManager.destroyToolGroup(spec.id);
}

/** Left drag measures lengths (on) or windows (off); the other bindings stay. */
export function setMeasuring(spec: ToolGroupSpec, on: boolean): void {
  const group = ToolGroupManager.getToolGroup(spec.id);
  if (!group) return;
  const primary = { mouseButton: MouseBindings.Primary };
  if (on) {
    group.setToolPassive(WindowLevelTool.toolName, { removeAllBindings: [primary] });
    group.setToolActive(LengthTool.toolName, { bindings: [primary] });
  } else {
    group.setToolPassive(LengthTool.toolName, { removeAllBindings: true });
    group.setToolActive(WindowLevelTool.toolName, { bindings: [primary] });
  }
}

/** Removes every length drawn on `element`'s viewport. */
export function clearMeasurements(element: HTMLDivElement): void {
  for (const drawn of annotation.state.getAnnotations(LengthTool.toolName, element) ?? []) {
    if (drawn.annotationUID) annotation.state.removeAnnotation(drawn.annotationUID);
  }
}
