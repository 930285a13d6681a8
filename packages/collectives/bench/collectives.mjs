#!/usr/bin/env node
// `npm run bench -w @farskip/collectives`: the threads benchmark (2 and 4 ranks, up to 64 MiB), then the mpi
// benchmark (MPICH, 2 ranks; skipped with the reason when mpiexec/mpicc are absent). Results: bench/results/*.json.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { here } from './common.mjs';

if (!existsSync(join(here, '..', 'dist', 'index.js'))) {
  console.error('bench: dist/ is missing, build first: npm run build -w @farskip/collectives');
  process.exit(1);
}
const t0 = performance.now();
for (const args of [['threads.mjs', '2,4', '64'], ['mpi.mjs', '--ranks', '2']]) {
  console.log(`\n=== node bench/${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(here, args[0]), ...args.slice(1)], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
console.log(`\nbench done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
