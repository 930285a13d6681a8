// mpi backend failure modes: a rank that dies ends the job with an error (never a hang), a late peer gives a
// timeout CollectiveError naming op, communicator and rank, abortMpi() ends every rank.
import { describe, expect, it } from 'vitest';
import { distBuilt, FLAVOURS, runMpi } from './mpi-launch.js';

for (const f of FLAVOURS) {
  const reason = !distBuilt ? 'dist/ not built (run tsup in packages/collectives)' : f.skip;
  describe.skipIf(reason)(`mpi backend failures on ${f.name}${reason ? ` (skipped: ${reason})` : ''}`, () => {
    for (const mode of ['die', 'kill']) {
      it(`a rank that ${mode === 'die' ? 'exits with an error' : 'is killed'}: the launcher exits with an error, no hang`, async () => {
        const r = await runMpi(f, 2, 'fail.mjs', [mode], 30_000);
        expect(r.killed, r.stderr.slice(-2000)).toBe(false);
        expect(r.code).not.toBe(0);
        expect(r.ms).toBeLessThan(15_000);
        expect(r.lines.filter((l) => l.unexpected)).toEqual([]);
      });
    }

    it('a late peer: timeout CollectiveError with op, communicator and rank; the job still ends by itself', async () => {
      const r = await runMpi(f, 2, 'fail.mjs', ['timeout'], 30_000);
      const why = r.stderr.slice(-2000);
      expect(r.killed, why).toBe(false);
      expect(r.code, why).toBe(0);
      const r0 = r.lines.find((l) => l.rank === 0) as { error: Record<string, unknown> } | undefined;
      expect(r0?.error).toMatchObject({ isCollectiveError: true, kind: 'timeout', op: 'allReduce', communicator: 'world', rank: 0 });
      expect(String(r0?.error.message)).toMatch(/allReduce on communicator 'world' \(rank 0\)/);
      const r1 = r.lines.find((l) => l.rank === 1) as { error: unknown; value: number } | undefined;
      expect(r1).toMatchObject({ error: null, value: 3 });
    });

    it('abortMpi() ends every rank with an error exit', async () => {
      const r = await runMpi(f, 2, 'fail.mjs', ['abort'], 30_000);
      expect(r.killed, r.stderr.slice(-2000)).toBe(false);
      expect(r.code).not.toBe(0);
      expect(r.lines).toEqual([]);
    });
  });
}
