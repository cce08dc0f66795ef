import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The model imports @flocker/api's pure modules (sizes, schemas) from its CommonJS
// dist; the browser build takes their TypeScript sources instead, so zod is bundled
// once, as ES modules, and tree-shaken.
const apiSrc = fileURLToPath(new URL('../api/src/', import.meta.url));

// The app is served by `flocker ui` from dist/app (next to the model tsc builds in dist/).
export default defineConfig({
  plugins: [react()],
  base: '/',
  resolve: { alias: [{ find: /^@flocker\/api\/dist\/(sizes|schemas)$/, replacement: `${apiSrc}$1.ts` }] },
  build: { outDir: 'dist/app', emptyOutDir: true, sourcemap: true },
  server: { proxy: { '/api': 'http://127.0.0.1:4580' } },
});
