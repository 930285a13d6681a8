// mpi backend: every operation on 1-4 ranks under MPICH and Open MPI (mpiexec -n k node mpi-fixtures/ops.mjs),
// checked in each rank against a sequential reference from seeded per-rank inputs (see the fixture).
import { describe, expect, it } from 'vitest';
import { distBuilt, FLAVOURS, runMpi } from './mpi-launch.js';

for (const f of FLAVOURS) {
  const reason = !distBuilt ? 'dist/ not built (run tsup in packages/collectives)' : f.skip;
  describe.skipIf(reason)(`mpi backend on ${f.name}${reason ? ` (skipped: ${reason})` : ''}`, () => {
    // Two completion modes (src/mpi/work.ts): small operations polled by wait() (the default for the fixture's
    // sizes) and every operation on a progress thread (FARSKIP_MPI_ASYNC_BYTES=0).
    const cases = [...[1, 2, 3, 4].map((n) => [n, 'polled'] as const), ...[2, 3].map((n) => [n, 'threaded'] as const)];
    for (const [n, mode] of cases) {
      it(`all operations, bf16/f32/f64/i32/u8, split, in-flight ordering, destroy, exit: ${n} rank(s), ${mode}`, async () => {
        const env = mode === 'threaded' ? { FARSKIP_MPI_ASYNC_BYTES: '0' } : { FARSKIP_MPI_ASYNC_BYTES: '1000000000' };
        const r = await runMpi(f, n, 'ops.mjs', [String(17 + n)], 45_000, env);
        const why = `exit ${r.code}${r.killed ? ' (killed: hang)' : ''}\n${r.stderr.slice(-3000)}`;
        expect(r.killed, why).toBe(false);
        expect(r.code, why).toBe(0);
        expect(r.lines.length, why).toBe(n);
        for (const line of r.lines) {
          expect(line.failures, `rank ${line.rank}`).toEqual([]);
          expect(line.size).toBe(n);
          expect(line.flavour).toBe(f.name);
          expect(line.checks as number).toBeGreaterThan(100);
        }
        expect(new Set(r.lines.map((l) => l.rank))).toEqual(new Set(Array.from({ length: n }, (_, i) => i)));
      });
    }
  });
}

// A script that only calls initCommunicator() gets MPI's world when started by mpiexec directly.
for (const f of FLAVOURS) {
  const reason = !distBuilt ? 'dist/ not built (run tsup in packages/collectives)' : f.skip;
  describe.skipIf(reason)(`initCommunicator under ${f.name}'s mpiexec${reason ? ` (skipped: ${reason})` : ''}`, () => {
    it('returns the mpi world and all-reduces across it', async () => {
      const r = await runMpi(f, 3, 'init.mjs', [], 45_000);
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      expect(r.lines.map((l) => l.rank).sort()).toEqual([0, 1, 2]);
      for (const l of r.lines) expect(l).toMatchObject({ backend: 'mpi', size: 3, sum: 6 }); // 1 + 2 + 3
    });
  });
}
