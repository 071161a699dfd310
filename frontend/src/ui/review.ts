// The review screen: the radiograph in a Cornerstone3D viewport with its heatmap, the case panel,
// and the decision (confirm / correct / exclude), all reachable from the keyboard.
import {
  ApiResponseError,
  ReviewApi,
  type DecisionRequest,
  type ImageDetail,
  type QueueLease,
} from "../api/client";
import { wadoRsImageId } from "../cornerstone/wadors";
import { createHeatmapOverlay, decodeHeatmap, type HeatmapLayer, type HeatmapOverlay } from "../viewer/heatmap";
import { createStackViewer, type StackViewer } from "../viewer/stack";
import { describeChange, describeFieldErrors, formatAge, formatLease, REASONS, SEX } from "./review/format";
import { modelOutputText, revealed } from "./review/blind";
import { renderOtherFilms, whyText } from "./review/context";
import { blankHeatmapNote, missingHeatmapNote, renderLegend } from "./review/heatmap-panel";
import { applyPreset, renderPresets, renderPresetState } from "./review/presets";
import { actionFor, renderHelp, type Action } from "./review/keys";
import { isViewerAction, runViewerAction, startViewerTools } from "./review/viewer-actions";
import { describeError, element, isTyping, setText } from "./review/dom";
import { renderHistory } from "./review/history";
import { readCorrection, readExclusion } from "./review/forms";
import { loadPrefs, loadTrail, rememberVisit, savePrefs, takePreviousVisit } from "./review/session";

const OPACITY_STEP = 0.1;
/** Long enough to read "saved" before the next case replaces the page. */
const AUTO_NEXT_MS = 700;

class ReviewScreen {
  private readonly api: ReviewApi;
  private readonly imageId: number;
  private readonly queueQuery: string;
  private detail: ImageDetail | null = null;
  private viewer: StackViewer | null = null;
  private heatmap: HeatmapOverlay | null = null;
  private prefs = loadPrefs();
  private pending = false;
  private open: "correct" | "exclude" | null = null;

  private readonly correctForm = element<HTMLFormElement>("correct-form");
  private readonly excludeForm = element<HTMLFormElement>("exclude-form");
  private readonly years = element<HTMLInputElement>("age-years");
  private readonly months = element<HTMLInputElement>("age-months");
  private readonly reason = element<HTMLSelectElement>("exclude-reason");
  private readonly comment = element<HTMLTextAreaElement>("exclude-comment");
  private readonly opacity = element<HTMLInputElement>("heatmap-opacity");
  private readonly help = element<HTMLElement>("help");

  constructor(private readonly root: HTMLElement) {
    this.api = new ReviewApi(root.dataset.csrf ?? "");
    this.imageId = Number(root.dataset.imageId);
    this.queueQuery = root.dataset.queueQuery ?? "";
  }

  async start(): Promise<void> {
    renderHelp(this.help);
    this.bind();
    element<HTMLButtonElement>("btn-prev").disabled = loadTrail().length === 0;
    try {
      this.detail = await this.api.getImage(this.imageId);
    } catch (error) {
      setText("viewer-status", `The case could not be loaded: ${describeError(error)}`);
      this.root.dataset.ready = "error";
      return;
    }
    this.renderDetail();
    void renderHistory(this.api, this.imageId);
    await this.startViewer(this.detail);
  }

  // ---- viewer ----

  private async startViewer(detail: ImageDetail): Promise<void> {
    // Fetch the heatmap while the DICOM downloads and decodes.
    const layer = this.fetchHeatmap(detail);
    try {
      const imageId = await wadoRsImageId(detail.wado_rs_url, (url) => this.api.getDicomMetadata(url));
      this.viewer = await createStackViewer(element<HTMLDivElement>("viewport"), imageId);
    } catch (error) {
      setText("viewer-status", `The image could not be shown: ${describeError(error)}`);
      this.root.dataset.ready = "error";
      return;
    }
    if (this.viewer) renderPresets(this.viewer);
    if (this.viewer) startViewerTools(this.viewer);
    if (this.viewer) void renderOtherFilms(this.api, detail, this.viewer);
    element<HTMLButtonElement>("invert").disabled = false;
    element<HTMLButtonElement>("reset").disabled = false;
    setText("viewer-status", `${detail.columns} × ${detail.rows} px, ${detail.photometric_interpretation}`);
    await this.showHeatmap(detail, layer);
    this.root.dataset.ready = "true";
  }

  private fetchHeatmap(detail: ImageDetail): Promise<HeatmapLayer> | null {
    const heatmapUrl = detail.prediction?.heatmap_url ?? null;
    const scale = detail.prediction?.heatmap_scale ?? "positive";
    const layer = heatmapUrl ? this.api.getHeatmap(heatmapUrl).then((png) => decodeHeatmap(png, scale)) : null;
    layer?.catch(() => undefined);
    return layer;
  }

  /** Draws the heatmap (or says why there is none); also after a decision reveals it. */
  private async showHeatmap(detail: ImageDetail, layer: Promise<HeatmapLayer> | null): Promise<void> {
    if (!this.viewer || this.heatmap) return;
    const missing = missingHeatmapNote(detail, layer !== null);
    if (missing !== null || !layer) {
      setText("heatmap-note", missing ?? "");
    } else {
      try {
        const decoded = await layer;
        if (detail.prediction?.heatmap_blank || decoded.blank) {
          // Nothing would be drawn: say so rather than show an empty overlay as "on".
          this.root.dataset.heatmap = "blank";
          setText("heatmap-note", blankHeatmapNote(detail.prediction?.heatmap_scale));
          return;
        }
        this.heatmap = createHeatmapOverlay(this.viewer, decoded.canvas, this.prefs.opacity);
        this.heatmap.setVisible(this.prefs.visible);
        element<HTMLButtonElement>("heatmap-toggle").disabled = false;
        this.opacity.disabled = false;
        this.opacity.value = String(this.prefs.opacity);
        setText("heatmap-note", "");
        renderLegend(detail.prediction?.heatmap_scale ?? "positive");
      } catch {
        setText("heatmap-note", "the heatmap could not be loaded");
      }
    }
    this.renderHeatmapState();
  }

  private toggleHeatmap(): void {
    if (!this.heatmap) return;
    this.heatmap.setVisible(!this.heatmap.visible);
    this.savePrefs();
    this.renderHeatmapState();
  }

  private setOpacity(value: number): void {
    if (!this.heatmap) return;
    this.heatmap.setOpacity(Math.round(value * 100) / 100);
    // Moving the slider means the reviewer wants to see the heatmap.
    if (!this.heatmap.visible) this.heatmap.setVisible(true);
    this.opacity.value = String(this.heatmap.opacity);
    this.savePrefs();
    this.renderHeatmapState();
  }

  private savePrefs(): void {
    if (!this.heatmap) return;
    this.prefs = { visible: this.heatmap.visible, opacity: this.heatmap.opacity };
    savePrefs(this.prefs);
  }

  private renderHeatmapState(): void {
    const on = this.heatmap?.visible ?? false;
    this.root.dataset.heatmap = on ? "on" : "off";
    element("heatmap-toggle").setAttribute("aria-pressed", String(on));
    element("heatmap-legend").hidden = !on;
  }

  // ---- panel ----

  private renderDetail(): void {
    const d = this.detail;
    if (!d) return;
    const approximate = d.age_source === "patient_age" ? " (from PatientAge)" : "";
    setText("recorded-age", `${formatAge(d.recorded_age_days)}${approximate}`);
    const output = modelOutputText(d);
    setText("predicted-age", output.predicted);
    setText("residual", output.residual);
    setText("score", output.score);
    setText("interval", output.interval);
    setText("why", whyText(d));
    this.root.dataset.outputHidden = String(d.output_hidden);
    setText("sex", SEX[d.sex] ?? d.sex);
    setText("site", d.site);
    setText("view-position", [d.modality, d.view_position].filter(Boolean).join(" ") || "—");
    setText("case-status", d.status);
    setText("case-revision", String(d.revision));
    setText("curated-age", d.curated_age_days === null ? "—" : formatAge(d.curated_age_days));
    setText("lease", formatLease(d));
    element("lease").classList.toggle("warning-text", d.lease !== null && !d.lease.mine);
    element("burned-in-warning").hidden = !d.burned_in_annotation;
    element("case-status").dataset.status = d.status;

    const adjudicating = d.status === "disputed";
    setText("decision-title", adjudicating ? "Adjudication" : d.double_reading ? "Decision (double reading)" : "Decision");
    const blocked = this.blockedReason();
    const note = element("decision-blocked");
    note.hidden = blocked === null;
    note.textContent = blocked ?? "";
    this.renderButtons();
  }

  /** Why this user cannot decide on this case now, or null. */
  private blockedReason(): string | null {
    const d = this.detail;
    if (!d) return "loading…";
    if (d.status === "disputed") {
      return d.can_adjudicate ? null : "The two readers disagree: only a lead can adjudicate this case.";
    }
    if (!d.can_review) return `You cannot review images of site ${d.site}.`;
    return null;
  }

  private renderButtons(): void {
    const disabled = this.pending || this.blockedReason() !== null;
    for (const id of ["btn-confirm", "btn-correct", "btn-exclude"]) element<HTMLButtonElement>(id).disabled = disabled;
    for (const form of [this.correctForm, this.excludeForm]) {
      form.querySelectorAll<HTMLButtonElement>("button[type=submit]").forEach((b) => (b.disabled = disabled));
    }
    if (this.blockedReason() !== null) this.closeForms();
  }

  // ---- decisions ----

  private openForm(which: "correct" | "exclude"): void {
    if (this.blockedReason() !== null || this.pending) return;
    this.open = which;
    this.correctForm.hidden = which !== "correct";
    this.excludeForm.hidden = which !== "exclude";
    setText("decision-error", "");
    if (which === "correct") {
      this.years.focus();
      this.years.select();
    } else {
      this.reason.focus();
    }
  }

  private closeForms(): void {
    this.open = null;
    this.correctForm.hidden = true;
    this.excludeForm.hidden = true;
    if (document.activeElement instanceof HTMLElement && this.root.contains(document.activeElement)) {
      document.activeElement.blur();
    }
  }

  private pickReason(index: number): void {
    const reason = REASONS[index];
    if (!reason) return;
    this.reason.value = reason.value;
    // "other" needs a comment: go straight to it.
    if (reason.value === "other") this.comment.focus();
  }

  private submitCorrect(): void {
    const read = readCorrection(this.years.value, this.months.value);
    if (typeof read === "string") return this.showError(read);
    void this.decide(read);
  }

  private submitExclude(): void {
    const read = readExclusion(this.reason.value, this.comment.value);
    if (typeof read === "string") {
      if (this.reason.value === "other") this.comment.focus();
      return this.showError(read);
    }
    void this.decide(read);
  }

  private showError(text: string): void {
    setText("decision-error", text);
  }

  /** Sends the decision on the revision shown; the caller's revision is replaced. */
  private async decide(request: DecisionRequest): Promise<void> {
    const before = this.detail;
    if (!before || this.pending || this.blockedReason() !== null) return;
    this.pending = true;
    this.renderButtons();
    setText("decision-error", "");
    setText("decision-message", "Saving…");
    try {
      const result = await this.api.decide(this.imageId, { ...request, revision: before.revision });
      this.detail = { ...before, status: result.status, revision: result.revision };
      this.pending = false;
      this.closeForms();
      this.clearForms();
      this.renderDetail();
      setText("decision-message", `Saved: ${result.status}, revision ${result.revision}.`);
      await this.refresh();
      const after = this.detail ?? before;
      if (revealed(before, after)) {
        // Blind reading: the decision is in, the model's output is shown for learning; the
        // reader moves on with n when done.
        await this.showHeatmap(after, this.fetchHeatmap(after));
        setText("decision-message", `Saved: ${result.status}, revision ${result.revision}. The model's output is shown now; n for the next case.`);
      } else if (this.inQueue()) {
        setText("decision-message", `Saved: ${result.status}, revision ${result.revision}. Next case…`);
        setTimeout(() => void this.next(), AUTO_NEXT_MS);
      }
    } catch (error) {
      this.pending = false;
      this.renderButtons();
      setText("decision-message", "");
      await this.failed(error, before);
    }
  }

  private async failed(error: unknown, before: ImageDetail): Promise<void> {
    if (!(error instanceof ApiResponseError)) {
      this.showError(`Not saved: ${describeError(error)}`);
      return;
    }
    if (error.status === 409) {
      // Someone else decided (or holds the case) meanwhile: show what changed, keep the form open.
      this.showError(`Not saved: ${error.message}`);
      await this.refresh();
      const after = this.detail ?? before;
      setText("decision-error", `Not saved: ${error.message} Changed meanwhile: ${describeChange(before, after)}. Decide again on revision ${after.revision}.`);
      return;
    }
    if (error.status === 400) {
      this.showError(`Not saved:\n${describeFieldErrors(error.body)}`);
      return;
    }
    this.showError(`Not saved: ${error.message}`);
  }

  /** Re-reads the case and its history (after a decision or a conflict). */
  private async refresh(): Promise<void> {
    try {
      this.detail = await this.api.getImage(this.imageId);
      this.renderDetail();
    } catch {
      // The panel keeps what the decision's answer said.
    }
    await renderHistory(this.api, this.imageId);
  }

  private clearForms(): void {
    this.years.value = "";
    this.months.value = "";
    this.reason.value = "";
    this.comment.value = "";
  }

  // ---- navigation ----

  private inQueue(): boolean {
    return new URLSearchParams(this.queueQuery).has("queue");
  }

  private caseUrl(imageId: number): string {
    // Outside the queue, "next" starts queue mode with no filters.
    return `/images/${imageId}/?${this.queueQuery || "queue=1"}`;
  }

  private async next(): Promise<void> {
    setText("decision-error", "");
    let lease: QueueLease | null;
    try {
      lease = await this.api.nextInQueue(this.queueQuery);
    } catch (error) {
      this.showError(`Could not get the next case: ${describeError(error)}`);
      return;
    }
    if (lease === null) {
      setText("decision-message", "The queue is empty.");
      return;
    }
    rememberVisit(this.imageId);
    location.assign(this.caseUrl(lease.image));
  }

  private previous(): void {
    const previous = takePreviousVisit();
    if (previous !== undefined) location.assign(this.caseUrl(previous));
  }

  // ---- keyboard and buttons ----

  private run(action: Action): void {
    const viewer = this.viewer;
    switch (action) {
      case "confirm":
        void this.decide({ decision: "confirm", revision: 0 });
        break;
      case "correct":
        this.openForm("correct");
        break;
      case "exclude":
        this.openForm("exclude");
        break;
      case "next":
        void this.next();
        break;
      case "prev":
        this.previous();
        break;
      case "heatmap":
        this.toggleHeatmap();
        break;
      case "opacityDown":
        if (this.heatmap) this.setOpacity(this.heatmap.opacity - OPACITY_STEP);
        break;
      case "opacityUp":
        if (this.heatmap) this.setOpacity(this.heatmap.opacity + OPACITY_STEP);
        break;
      case "invert":
        if (viewer) {
          viewer.toggleInvert();
          renderPresetState(viewer);
        }
        break;
      case "reset":
        if (viewer) {
          viewer.reset();
          renderPresetState(viewer);
        }
        break;
      case "presetNext":
        if (viewer) applyPreset(viewer, viewer.presetIndex + 1);
        break;
      case "presetPrev":
        if (viewer) applyPreset(viewer, viewer.presetIndex - 1);
        break;
      case "help":
        this.help.hidden = !this.help.hidden;
        break;
      default:
        if (isViewerAction(action)) runViewerAction(viewer, action);
    }
  }

  private onKey(event: KeyboardEvent): void {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (event.key === "Escape") {
      if (!this.help.hidden) this.help.hidden = true;
      else if (this.open) this.closeForms();
      else return;
      event.preventDefault();
      return;
    }
    // While the exclude form is open, digits pick the reason and Enter submits, wherever the
    // focus is, except that the comment takes digits and Shift+Enter as text, and buttons their Enter.
    if (this.open === "exclude") {
      const inComment = target === this.comment;
      if (!inComment && !isTyping(target) && /^[1-5]$/.test(event.key)) {
        event.preventDefault();
        this.pickReason(Number(event.key) - 1);
        return;
      }
      if (event.key === "Enter" && !(inComment && event.shiftKey) && !(target instanceof HTMLButtonElement)) {
        event.preventDefault();
        this.submitExclude();
        return;
      }
    }
    if (isTyping(target) || target instanceof HTMLSelectElement) return;
    const action = actionFor(event.key);
    if (!action) return;
    event.preventDefault();
    this.run(action);
  }

  private bind(): void {
    document.addEventListener("keydown", (event) => this.onKey(event));
    const click = (id: string, action: () => void) => element(id).addEventListener("click", action);
    click("btn-confirm", () => this.run("confirm"));
    click("btn-correct", () => this.run("correct"));
    click("btn-exclude", () => this.run("exclude"));
    click("btn-next", () => this.run("next"));
    click("btn-prev", () => this.run("prev"));
    click("heatmap-toggle", () => this.run("heatmap"));
    click("invert", () => this.run("invert"));
    click("reset", () => this.run("reset"));
    click("help-toggle", () => this.run("help"));
    this.opacity.addEventListener("input", () => this.setOpacity(Number(this.opacity.value)));
    this.correctForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitCorrect();
    });
    this.excludeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitExclude();
    });
    this.reason.addEventListener("change", () => {
      if (this.reason.value === "other") this.comment.focus();
    });
    for (const form of [this.correctForm, this.excludeForm]) {
      form.querySelector("[data-cancel]")?.addEventListener("click", () => this.closeForms());
    }
  }
}

const root = document.getElementById("viewer-app");
if (root) void new ReviewScreen(root).start();
