import { defineConfig } from 'vite';

// The dashboard is served by Lifeboat at /dashboard/ (src/http/dashboard.routes.ts) from
// dist/dashboard; everything is bundled (no CDN), so it works offline.
export default defineConfig({
  root: import.meta.dirname,
  base: '/dashboard/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: '../dist/dashboard',
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: true,
  },
});
