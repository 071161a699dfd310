// The viewer loads films through the portal's WADO-RS (/dicomweb/), as any DICOMweb viewer would.
// Cornerstone's wadors loader fetches only the pixels (frame 1, as stored: it asks for
// `transfer-syntax=*`); it decodes them with what the metadata providers say of the image, so the
// instance's header (its /metadata, DICOM JSON) has to be registered under the frame's image id
// before the image is loaded. Registered as a DICOMweb instance of the metadata package (the
// providers the wadouri loader answers from too), not in the loader's deprecated wadors manager,
// so that the typed providers init.ts adds (the PixelSpacing repair) apply to these films as well.
import { utilities } from "@cornerstonejs/metadata";
import { initCornerstone } from "./init";

/** A DICOM JSON data set (PS3.18 F.2): attributes by eight hex digits. */
export type DicomJson = Record<string, { vr: string; Value?: unknown[]; InlineBinary?: string; BulkDataURI?: string }>;

const ROWS = "00280010";
const COLUMNS = "00280011";

/**
 * `wadors:<instance URL>/frames/1`, the URL absolute: the image id the loader fetches the frame
 * from (the loader drops the `wadors:` prefix) and the metadata is registered under.
 */
export function frameImageId(instanceUrl: string, base: string = location.href): string {
  const url = new URL(instanceUrl, base);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/frames/1`;
  return `wadors:${url.href}`;
}

/** The instance's URL of its metadata: `<instance URL>/metadata`. */
export function metadataUrl(instanceUrl: string): string {
  return `${instanceUrl.replace(/\/+$/, "")}/metadata`;
}

/**
 * The one data set of an instance's /metadata answer, which is a list (one entry per instance
 * of what was asked for). Anything else throws: a list passed whole to the providers leaves the
 * image with no pixel module, and the loader fails far from the cause.
 */
export function instanceMetadata(body: unknown): DicomJson {
  if (!Array.isArray(body) || body.length !== 1) {
    throw new Error("the image's DICOM metadata is not one instance's");
  }
  const [instance] = body as unknown[];
  if (instance === null || typeof instance !== "object" || !(ROWS in instance) || !(COLUMNS in instance)) {
    throw new Error("the image's DICOM metadata has no image size");
  }
  return instance as DicomJson;
}

/**
 * Registers an instance's /metadata answer for its frame; returns the frame's image id. Only
 * after Cornerstone has started: the loader's start-up clears the metadata caches, and a header
 * registered before it is gone when the image loads (no pixel module: the decode fails).
 */
export function registerInstance(instanceUrl: string, body: unknown, base: string = location.href): string {
  const imageId = frameImageId(instanceUrl, base);
  void utilities.addDicomWebInstance(imageId, instanceMetadata(body));
  return imageId;
}

/**
 * Fetches the instance's metadata (with `fetchMetadata`, the caller's credentials) while
 * Cornerstone starts, and registers it; resolves with the image id to load.
 */
export async function wadoRsImageId(instanceUrl: string, fetchMetadata: (url: string) => Promise<unknown>): Promise<string> {
  const [body] = await Promise.all([fetchMetadata(metadataUrl(instanceUrl)), initCornerstone()]);
  return registerInstance(instanceUrl, body);
}
