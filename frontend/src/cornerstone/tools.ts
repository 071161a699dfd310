// Cornerstone3D tools: each tool class is added once; tool groups are plain data.
import {
  addTool,
  Enums as ToolEnums,
  PanTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  type Types as ToolTypes,
} from "@cornerstonejs/tools";

const { MouseBindings, KeyboardBindings } = ToolEnums;

const TOOLS = [WindowLevelTool, ZoomTool, PanTool];

interface ToolGroupSpec {
  id: string;
  tools: { name: string; bindings: ToolTypes.IToolBinding[] }[];
}

/** The review viewer: left-drag window/level, right-drag or wheel zoom, middle or shift+left pan. */
export const REVIEW_TOOLS: ToolGroupSpec = {
  id: "review",
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
      group.addTool(name);
      group.setToolActive(name, { bindings });
    }
  }
  group.addViewport(viewportId, renderingEngineId);
}

export function destroyToolGroup(spec: ToolGroupSpec): void {
  ToolGroupManager.destroyToolGroup(spec.id);
}
