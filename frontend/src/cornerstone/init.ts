// One-time Cornerstone3D start-up: the DICOM image loader (wadors, which the viewer loads films
// through, and wadouri; decode workers), then core, then tools. Memoised so every screen can call
// it. Its start-up clears the metadata caches: register an image's metadata after it (wadors.ts).
import { init as coreInit } from "@cornerstonejs/core";
import { init as dicomImageLoaderInit } from "@cornerstonejs/dicom-image-loader";
import { metaData } from "@cornerstonejs/metadata";
import { init as toolsInit } from "@cornerstonejs/tools";
import { registerTools } from "./tools";

let started: Promise<void> | null = null;

const positive = (value: unknown): boolean => typeof value === "number" && Number.isFinite(value) && value > 0;

/**
 * Some CR films carry PixelSpacing 0\0; a zero spacing collapses the image to nothing in world
 * space (a black viewport). Such films are shown in pixel units instead, as without any spacing.
 *
 * A film with a spacing is marked as not using default values: Cornerstone sets that flag for a
 * missing ImagePositionPatient or ImageOrientationPatient too, which no radiograph has, and then
 * measures every length of it in pixels although its spacing is known.
 */
function repairPixelSpacing(next: metaData.TypedProviderBound, query: string, data?: unknown, options?: unknown): unknown {
  const plane = next(query, data, options);
  if (plane === null || typeof plane !== "object" || plane instanceof Promise) return plane;
  const { rowPixelSpacing, columnPixelSpacing } = plane as { rowPixelSpacing?: unknown; columnPixelSpacing?: unknown };
  if (positive(rowPixelSpacing) && positive(columnPixelSpacing)) return { ...plane, usingDefaultValues: false };
  return { ...plane, rowPixelSpacing: 1, columnPixelSpacing: 1, pixelSpacing: [1, 1], usingDefaultValues: true };
}

export function initCornerstone(): Promise<void> {
  started ??= (async () => {
    // Half the cores, at most 4: a single radiograph decodes in one worker anyway.
    const cores = navigator.hardwareConcurrency || 2;
    dicomImageLoaderInit({ maxWebWorkers: Math.max(1, Math.min(4, Math.floor(cores / 2))) });
    // Ahead of the loader's own image plane provider, which it wraps.
    metaData.addTypedProvider("imagePlaneModule", repairPixelSpacing, { priority: 1000 });
    coreInit();
    toolsInit();
    registerTools();
  })();
  return started;
}
