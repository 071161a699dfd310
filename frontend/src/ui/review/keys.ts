// The review screen's keyboard map, as data: the key handler and the help overlay both read it.

export type Action =
  | "confirm"
  | "correct"
  | "exclude"
  | "next"
  | "prev"
  | "heatmap"
  | "opacityDown"
  | "opacityUp"
  | "invert"
  | "reset"
  | "presetNext"
  | "presetPrev"
  | ViewerAction
  | "help";

/** The viewer's camera and measuring keys (`viewer-actions` runs them). */
export type ViewerAction =
  | "zoomIn"
  | "zoomOut"
  | "panLeft"
  | "panRight"
  | "panUp"
  | "panDown"
  | "rotateRight"
  | "rotateLeft"
  | "flipH"
  | "flipV"
  | "measure"
  | "clearMeasures";

/** Global shortcuts (never while typing in a field). Digits are not global: they pick reasons. */
export const SHORTCUTS: { key: string; action: Action; label: string; shown?: string }[] = [
  { key: "c", action: "confirm", label: "confirm the recorded age" },
  { key: "e", action: "correct", label: "correct the age (years, Tab, months, Enter)" },
  { key: "x", action: "exclude", label: "exclude the image (then 1-5 for the reason, Enter)" },
  { key: "n", action: "next", label: "next case of the queue" },
  { key: "p", action: "prev", label: "previous case" },
  { key: "h", action: "heatmap", label: "heatmap on / off" },
  { key: "[", action: "opacityDown", label: "heatmap less opaque" },
  { key: "]", action: "opacityUp", label: "heatmap more opaque" },
  { key: "w", action: "presetNext", label: "next window/level preset" },
  { key: "W", action: "presetPrev", label: "previous window/level preset" },
  { key: "i", action: "invert", label: "invert grey levels" },
  { key: "+", action: "zoomIn", label: "zoom in (= too)" },
  { key: "=", action: "zoomIn", label: "zoom in", shown: "" },
  { key: "-", action: "zoomOut", label: "zoom out" },
  { key: "ArrowLeft", action: "panLeft", label: "pan: move the film left, right, up, down", shown: "← → ↑ ↓" },
  { key: "ArrowRight", action: "panRight", label: "", shown: "" },
  { key: "ArrowUp", action: "panUp", label: "", shown: "" },
  { key: "ArrowDown", action: "panDown", label: "", shown: "" },
  { key: "t", action: "rotateRight", label: "rotate 90° clockwise" },
  { key: "T", action: "rotateLeft", label: "rotate 90° anticlockwise", shown: "Shift + t" },
  { key: "f", action: "flipH", label: "flip left-right" },
  { key: "v", action: "flipV", label: "flip upside down" },
  { key: "m", action: "measure", label: "measure: left drag draws a length (mm), again for window/level" },
  { key: "M", action: "clearMeasures", label: "remove all lengths", shown: "Shift + m" },
  { key: "r", action: "reset", label: "reset zoom, pan, rotation, flips, window/level and invert" },
  { key: "?", action: "help", label: "show / hide this help" },
];

/** Keys that only work inside a form, and the mouse; listed in the help, handled where they apply. */
export const OTHER_KEYS: { key: string; label: string }[] = [
  { key: "1 – 5", label: "exclusion reason: not chest PA/AP, poor quality, wrong patient, adult, other" },
  { key: "Enter", label: "submit the open form (Shift+Enter: new line in the comment)" },
  { key: "Esc", label: "cancel the open form, close this help" },
  { key: "Tab", label: "years -> months in the correction form" },
  { key: "left drag", label: "window/level" },
  { key: "right drag, wheel", label: "zoom" },
  { key: "middle drag, Shift + left drag", label: "pan" },
];

export function actionFor(key: string): Action | undefined {
  return SHORTCUTS.find((shortcut) => shortcut.key === key)?.action;
}

/** The help overlay lists every shortcut, from the same table the keyboard uses. */
export function renderHelp(help: HTMLElement): void {
  const title = document.createElement("h2");
  title.textContent = "Keyboard shortcuts";
  const table = document.createElement("table");
  // A key listed with an empty `shown` is described by the row before it.
  const listed = SHORTCUTS.filter(({ shown }) => shown !== "");
  const rows = [...listed.map(({ key, label, shown }) => ({ key: shown ?? key, label })), ...OTHER_KEYS];
  for (const { key, label } of rows) {
    const tr = table.insertRow();
    const keyCell = tr.insertCell();
    const kbd = document.createElement("kbd");
    kbd.textContent = key === "W" ? "Shift + w" : key;
    keyCell.append(kbd);
    tr.insertCell().textContent = label;
  }
  const close = document.createElement("p");
  close.className = "note";
  close.textContent = "Press ? or Esc to close.";
  help.replaceChildren(title, table, close);
}
