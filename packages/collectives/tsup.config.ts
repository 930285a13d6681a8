import { rmSync } from 'node:fs';
import base from '../../tooling/tsup.base';

// More entries than the other packages: the worker that drives a threads-backend rank's collectives, the worker
// that runs one launched rank, and the farskip-launch CLI are separate files at run time. Flat names keep them
// next to the chunks that load them with `new URL('./comm-worker.js', import.meta.url)`. Those three are ESM
// only (rank-worker awaits at top level; the CommonJS index starts the same ESM workers); the index is built in
// both formats like every package. tsup builds the two configs concurrently and its `clean` would let one delete
// the other's declarations, so dist is emptied once here instead.
rmSync('dist', { recursive: true, force: true });

export default [
  { ...base, clean: false, format: ['esm'], entry: { index: 'src/index.ts', 'comm-worker': 'src/threads/comm-worker.ts', 'rank-worker': 'src/launch/rank-worker.ts', cli: 'src/cli.ts' } },
  { ...base, clean: false, format: ['cjs'], entry: { index: 'src/index.ts' } },
];
