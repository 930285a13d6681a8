import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Package suites test sources (aliased), so `npm test` needs no build; the cross-package suite in tests/
// consumes the built packages through their public exports, as a downstream user would.
const src = (pkg: string): string => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));
const alias = { '@farskip/tensor': src('tensor'), '@farskip/kernels': src('kernels') };

export default defineConfig({
  test: {
    projects: [
      { resolve: { alias }, test: { name: 'tensor', root: 'packages/tensor', include: ['__tests__/**/*.test.ts'] } },
      { resolve: { alias }, test: { name: 'kernels', root: 'packages/kernels', include: ['__tests__/**/*.test.ts'], testTimeout: 60_000 } },
      { test: { name: 'integration', root: 'tests', include: ['**/*.test.ts'], testTimeout: 120_000 } },
    ],
  },
});
