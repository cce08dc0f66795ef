import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The app is served by `flocker ui` from dist/app (next to the model tsc builds in dist/).
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: { outDir: 'dist/app', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 1024 },
  server: { proxy: { '/api': 'http://127.0.0.1:4580' } },
});
