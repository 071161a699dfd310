import { defineConfig } from "vite";

// Django serves the build from /static/ (STATICFILES_DIRS = frontend/dist): stable entry names
// so templates can name them without a manifest.
export default defineConfig({
  base: "/static/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    rollupOptions: {
      input: { upload: "src/ui/upload.ts", jobs: "src/ui/jobs.ts" },
      output: { entryFileNames: "[name].js", chunkFileNames: "chunks/[name]-[hash].js" },
    },
  },
  optimizeDeps: {
    exclude: ["@cornerstonejs/dicom-image-loader"],
    include: ["dicom-parser"],
  },
  worker: { format: "es" },
});
