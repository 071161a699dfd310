// Small DOM helpers of the review screen.

export function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing #${id}`);
  return found as T;
}

/** Cornerstone's loaders reject with Errors, XHR wrappers or plain objects alike. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (error !== null && typeof error === "object") {
    const { message, status } = error as { message?: unknown; status?: unknown };
    if (typeof message === "string") return message;
    if (typeof status === "number") return `HTTP ${status}`;
  }
  return String(error);
}

export function setText(id: string, text: string): void {
  element(id).textContent = text;
}

/** Typing targets swallow the letter shortcuts; a range slider or a button does not. */
export function isTyping(target: EventTarget | null): boolean {
  if (target instanceof HTMLTextAreaElement) return true;
  if (target instanceof HTMLElement && target.isContentEditable) return true;
  return target instanceof HTMLInputElement && !["range", "checkbox", "radio", "button", "submit"].includes(target.type);
}
