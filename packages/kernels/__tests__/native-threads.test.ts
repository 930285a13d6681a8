// The native library in a process whose worker threads come and go (the threads backend runs each rank as a
// worker thread, and a driver may launch several times): every worker loads it through koffi and runs GEMMs on
// its thread pool, then exits. When the last loader's koffi handle went away, dlclose unmapped code the pool's
// threads were parked in, and the next round crashed or hung; the library is linked -z nodelete for this.
// Runs in a child process (a crash must fail the test, not the runner) on the built package.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { native, skipSuffix } from './native-setup.js';

const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));

const child = `
import { Worker } from 'node:worker_threads';
const body = \`
  import { Tensor } from '@farskip/tensor';
  import { loadNativeBackend, matmul } from \${JSON.stringify(process.argv[1])};
  loadNativeBackend().setNumThreads(4); // a pool with workers, whatever this machine's core count
  const a = Tensor.randn([192, 192], { seed: 1 });
  for (let i = 0; i < 10; i++) matmul(a, a);
\`;
for (let round = 0; round < 6; round++) {
  await Promise.all([0, 1].map(() => new Promise((ok, fail) => {
    const w = new Worker(body, { eval: true, type: 'module' });
    w.on('error', fail);
    w.on('exit', (code) => (code === 0 ? ok() : fail(new Error('worker exit ' + code))));
  })));
}
console.log('rounds done');
`;

describe.skipIf(!native || !existsSync(dist))(`native library across worker threads${skipSuffix}`, () => {
  it('six rounds of workers that load it, run pooled GEMMs and exit: no crash, no hang', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', child, dist], { encoding: 'utf8', timeout: 30_000, cwd: fileURLToPath(new URL('..', import.meta.url)) });
    expect(r.signal, `${r.stdout}\n${r.stderr}`).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rounds done/);
  });
});
