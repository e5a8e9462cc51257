import { defineConfig } from 'vite';

// The build goes straight into the Go package that embeds it. File names
// carry content hashes and nothing depends on time or machine, so the same
// sources always give the same bytes: CI rebuilds and compares.
export default defineConfig({
  base: '/',
  build: {
    outDir: process.env.CONSOLE_OUT || '../internal/console/dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1024,
  },
});
