// Progressive display: the page carries a small JPEG of the film (rendered by the server from the
// stored file, the file's own window) inside the viewport element, so that the first pixels are
// on screen before the viewer's script has even started. It is laid over the viewport with the
// film's aspect, centred, as Cornerstone fits the film, and dropped once Cornerstone has drawn the
// full-resolution film (or failed to).

export const PREVIEW_CLASS = "viewport-preview";

/** Removes a preview that did not load (404: nothing could be rendered), now or when it fails. */
export function watchPreview(element: HTMLElement): void {
  const img = element.querySelector<HTMLImageElement>(`img.${PREVIEW_CLASS}`);
  if (!img) return;
  if (img.complete && img.naturalWidth === 0) img.remove();
  else img.addEventListener("error", () => img.remove(), { once: true });
}

export function dropPreview(element: HTMLElement): void {
  element.querySelector(`img.${PREVIEW_CLASS}`)?.remove();
}
