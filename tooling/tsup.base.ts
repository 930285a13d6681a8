import { defineConfig } from 'tsup';

// Every @farskip package builds the same way: src/index.ts as ESM (index.js, index.d.ts) and CommonJS
// (index.cjs, index.d.cts), so both `import` and `require` consumers get native code paths and matching types
// (publint --strict and attw check the pair). koffi and sibling packages stay external: they resolve at install
// time and are never bundled twice. `shims` gives the CommonJS build an import.meta.url (native library and
// kernel-manifest lookup, createRequire) that points at the .cjs file.
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  shims: true,
  target: 'es2022',
  external: ['koffi', /^@farskip\//],
});
