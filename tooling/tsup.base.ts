import { defineConfig } from 'tsup';

// Every @farskip package builds the same way: one ESM entry (src/index.ts) with .d.ts, koffi and sibling
// packages external (they resolve at install time, never bundled twice).
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  external: ['koffi', /^@farskip\//],
});
