import { defineConfig } from "vite";

// Django serves the build from /static/ (STATICFILES_DIRS = frontend/dist): stable entry names
// so templates can name them without a manifest. Workers and codec wasm files are emitted under
// assets/ and referenced relative to base, so they load from /static/ too.
export default defineConfig({
  base: "/static/",
  build: {
    // Cornerstone3D and vtk.js make one large entry (about 1 MB gzipped); it is the viewer.
    chunkSizeWarningLimit: 4096,
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    rollupOptions: {
      input: {
        upload: "src/ui/upload.ts",
        jobs: "src/ui/jobs.ts",
        review: "src/ui/review.ts",
        banner: "src/ui/banner.ts",
      },
      output: { entryFileNames: "[name].js", chunkFileNames: "chunks/[name]-[hash].js" },
    },
  },
  optimizeDeps: {
    // The loader creates its decode worker with new URL(..., import.meta.url): pre-bundling breaks it.
    exclude: ["@cornerstonejs/dicom-image-loader"],
    include: [
      "dicom-parser",
      "pako",
      "comlink",
      "@cornerstonejs/metadata",
      "@cornerstonejs/codec-charls/decodewasmjs",
      "@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs",
      "@cornerstonejs/codec-openjpeg/decodewasmjs",
      "@cornerstonejs/codec-openjph/wasmjs",
      "@cornerstonejs/codec-libjxl/decodewasmjs",
    ],
  },
  worker: { format: "es" },
});
