import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// tensor and kernels suites test sources (aliased); collectives and the cross-package suite in tests/ consume
// the built packages through their public exports (`npm test` runs the cached turbo build first).
const src = (pkg: string): string => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));
const alias = { '@farskip/tensor': src('tensor'), '@farskip/kernels': src('kernels'), '@farskip/device': src('device') };
// layers runs its ranks in one thread (threads backend from collectives' dist) and tests its sources
const layersAlias = { ...alias, '@farskip/layers': src('layers') };
const modelsAlias = { ...layersAlias, '@farskip/models': src('models') };
const trainAlias = { ...modelsAlias, '@farskip/distill': src('distill'), '@farskip/eval': src('eval') };

export default defineConfig({
  test: {
    projects: [
      // device tests its sources; the GPU block inside skips itself where no libcuda / device is present
      { test: { name: 'device', root: 'packages/device', include: ['__tests__/**/*.test.ts'], testTimeout: 60_000 } },
      { resolve: { alias }, test: { name: 'tensor', root: 'packages/tensor', include: ['__tests__/**/*.test.ts'] } },
      { resolve: { alias }, test: { name: 'kernels', root: 'packages/kernels', include: ['__tests__/**/*.test.ts'], testTimeout: 60_000 } },
      { resolve: { alias: layersAlias }, test: { name: 'layers', root: 'packages/layers', include: ['__tests__/**/*.test.ts'], testTimeout: 120_000 } },
      { resolve: { alias: modelsAlias }, test: { name: 'models', root: 'packages/models', include: ['__tests__/**/*.test.ts'], testTimeout: 120_000 } },
      { resolve: { alias: trainAlias }, test: { name: 'distill', root: 'packages/distill', include: ['__tests__/**/*.test.ts'], testTimeout: 120_000 } },
      { resolve: { alias: trainAlias }, test: { name: 'eval', root: 'packages/eval', include: ['__tests__/**/*.test.ts'], testTimeout: 120_000 } },
      // the inference runner's suites run its sources in this thread; its CLI tests start the built dist (multi-rank)
      { resolve: { alias: modelsAlias }, test: { name: 'infer', root: 'apps/infer', include: ['__tests__/**/*.test.ts'], testTimeout: 180_000 } },
      { resolve: { alias: trainAlias }, test: { name: 'trainer', root: 'apps/trainer', include: ['__tests__/**/*.test.ts'], testTimeout: 180_000 } },
      // collectives runs ranks in worker threads, which load the built JS: its tests use dist (npm test builds first)
      { test: { name: 'collectives', root: 'packages/collectives', include: ['__tests__/**/*.test.ts'], testTimeout: 120_000 } },
      { test: { name: 'integration', root: 'tests', include: ['**/*.test.ts'], testTimeout: 120_000 } },
      // type-level API tests (*.test-d.ts): tsc over tsconfig.typetests.json checks the public contracts against the
      // built dist/*.d.ts, as a downstream consumer sees them; nothing runs
      { test: { name: 'types', root: '.', include: [], typecheck: { enabled: true, only: true, include: ['packages/*/__tests__/**/*.test-d.ts'], tsconfig: './tsconfig.typetests.json' } } },
    ],
  },
});
