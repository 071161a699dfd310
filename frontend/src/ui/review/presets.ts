// The window/level preset buttons of the review screen and their pressed state.
import type { StackViewer } from "../../viewer/stack";
import { element } from "./dom";

/** One button per preset of `viewer`; a click applies it. */
export function renderPresets(viewer: StackViewer): void {
  element("wl-presets").replaceChildren(
    ...viewer.presets.map((preset, index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.dataset.preset = preset.id;
      button.textContent = preset.label;
      button.addEventListener("click", () => applyPreset(viewer, index));
      return button;
    }),
  );
  renderPresetState(viewer);
}

/** Applies preset `index`, wrapping around both ways (the keys step through them). */
export function applyPreset(viewer: StackViewer, index: number): void {
  const count = viewer.presets.length;
  viewer.applyPreset(((index % count) + count) % count);
  renderPresetState(viewer);
}

export function renderPresetState(viewer: StackViewer): void {
  element("wl-presets")
    .querySelectorAll<HTMLButtonElement>("button")
    .forEach((button, index) => button.setAttribute("aria-pressed", String(index === viewer.presetIndex)));
  element("invert").setAttribute("aria-pressed", String(viewer.isInverted()));
}
