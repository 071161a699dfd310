// The demo model's training banner (every page, while `make run` trains it): its words come
// from the server, polled, so the minutes left count down and the stage moves on without a
// reload; polling stops once the model is trained or its training failed.
import { ApiClient } from "../api/client";

const POLL_MS = 3000;
const RETRY_MS = 15000; // the portal restarting, or a moment's overload
const FINAL: ReadonlySet<string | null> = new Set(["done", "failed", null]);

async function follow(banner: HTMLElement, api: ApiClient): Promise<void> {
  let wait = POLL_MS;
  try {
    const status = await api.demoTraining();
    banner.dataset.state = status.state ?? "";
    if (status.text === null) banner.hidden = true;
    else banner.textContent = status.text;
    if (FINAL.has(status.state)) return;
  } catch {
    wait = RETRY_MS;
  }
  window.setTimeout(() => void follow(banner, api), wait);
}

const banner = document.getElementById("demo-training");
if (banner && !FINAL.has(banner.dataset.state ?? null)) {
  window.setTimeout(() => void follow(banner, new ApiClient("")), POLL_MS);
}
