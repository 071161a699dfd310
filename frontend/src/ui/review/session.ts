// What the review screen keeps for the tab's session: the heatmap choice and the cases visited.

const TRAIL_KEY = "cxr-review-trail";
const PREFS_KEY = "cxr-review-heatmap";
const TRAIL_MAX = 200;

export interface HeatmapPrefs {
  visible: boolean;
  opacity: number;
}

/** The reviewer's heatmap choice carries over to the next case of the session. */
export function loadPrefs(): HeatmapPrefs {
  try {
    const saved = JSON.parse(sessionStorage.getItem(PREFS_KEY) ?? "null") as Partial<HeatmapPrefs> | null;
    return {
      visible: typeof saved?.visible === "boolean" ? saved.visible : true,
      opacity: typeof saved?.opacity === "number" ? saved.opacity : 1,
    };
  } catch {
    return { visible: true, opacity: 1 };
  }
}

/** Cases visited before this one in this tab, for "previous". */
export function loadTrail(): number[] {
  try {
    const saved: unknown = JSON.parse(sessionStorage.getItem(TRAIL_KEY) ?? "[]");
    return Array.isArray(saved) ? saved.filter((id): id is number => Number.isInteger(id)) : [];
  } catch {
    return [];
  }
}

function saveTrail(trail: number[]): void {
  sessionStorage.setItem(TRAIL_KEY, JSON.stringify(trail.slice(-TRAIL_MAX)));
}

export function savePrefs(prefs: HeatmapPrefs): void {
  sessionStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
}

/** Before moving on: this case is where "previous" comes back to. */
export function rememberVisit(imageId: number): void {
  const trail = loadTrail();
  if (trail[trail.length - 1] !== imageId) trail.push(imageId);
  saveTrail(trail);
}

/** The case visited before, taken off the trail. */
export function takePreviousVisit(): number | undefined {
  const trail = loadTrail();
  const previous = trail.pop();
  if (previous !== undefined) saveTrail(trail);
  return previous;
}
