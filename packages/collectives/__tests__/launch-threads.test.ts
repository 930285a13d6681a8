// The launcher: threads ranks (env, initCommunicator, output prefixes, per-rank results), a rank that throws or
// whose worker dies reported at once to every surviving rank, the farskip-launch CLI, the rendezvous store and
// child-process launching under mpiexec when MPI is installed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { launch, RendezvousClient, RendezvousStore } from '@farskip/collectives';

const fixture = (n: string): string => fileURLToPath(new URL(`./fixtures/${n}`, import.meta.url));
const results = (out = ''): Record<string, unknown>[] => out.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => JSON.parse(l.slice(7)));

describe('launch (threads)', () => {
  it('runs N ranks as worker threads with RANK/WORLD_SIZE/LOCAL_RANK and FARSKIP_NUM_THREADS', async () => {
    const res = await launch({ world: 3, script: fixture('rank-env.mjs'), args: ['a', 'b'], prefixOutput: false, captureOutput: true });
    expect(res.map((r) => r.exitCode)).toEqual([0, 0, 0]);
    res.forEach((r, k) => {
      const [x] = results(r.output);
      expect(x).toMatchObject({ rank: k, size: 3, backend: 'threads', worldRank: k, worldSize: 3, sum: 6, args: ['a', 'b'] });
      expect(x!.env).toMatchObject({ RANK: String(k), WORLD_SIZE: '3', LOCAL_RANK: String(k) });
      expect(Number((x!.env as Record<string, string>).FARSKIP_NUM_THREADS)).toBeGreaterThanOrEqual(1);
    });
  });

  for (const mode of ['throw', 'exit']) {
    it(`a rank that ${mode === 'throw' ? 'throws' : "exits (its worker dies)"} fails every survivor's pending collective at once`, async () => {
      const t0 = Date.now();
      const res = await launch({ world: 3, script: fixture('rank-failure.mjs'), args: [mode], prefixOutput: false, captureOutput: true });
      expect(Date.now() - t0).toBeLessThan(10_000); // the collective timeout is 30 s: detection came from the launcher
      expect(res[1]!.exitCode).not.toBe(0);
      if (mode === 'throw') expect(res[1]!.error?.message).toBe('rank 1 blew up');
      for (const k of [0, 2]) {
        const [x] = results(res[k]!.output);
        expect(x).toMatchObject({ name: 'CollectiveError', kind: 'peer-failed', op: 'allReduce', communicator: 'world', rank: k, culprit: 1 });
        expect(x!.message).toMatch(mode === 'throw' ? /rank 1 failed: threw Error: rank 1 blew up/ : /rank 1 failed: exited with code 3/);
        expect(res[k]!.exitCode).toBe(0);
      }
    });
  }

  it('farskip-launch CLI prefixes each rank\'s output', () => {
    const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
    const r = spawnSync(process.execPath, [cli, '-n', '2', fixture('rank-env.mjs')], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\[rank 0\] RESULT .*"sum":3/m);
    expect(r.stdout).toMatch(/^\[rank 1\] RESULT /m);
  });

  it('rendezvous store: set/get/wait across clients', async () => {
    const store = await RendezvousStore.start();
    const a = await RendezvousClient.connect(store.address);
    const b = await RendezvousClient.connect(store.address);
    const waiting = b.wait('nccl/uid', 5000);
    await a.set('nccl/uid', Buffer.alloc(128, 7).toString('base64'));
    expect(Buffer.from(await waiting, 'base64')).toEqual(Buffer.alloc(128, 7));
    expect(await a.get('missing')).toBeUndefined();
    await expect(b.wait('never', 50)).rejects.toThrow(/timed out/);
    a.close(); b.close();
    await store.close();
  });

  const mpiexec = ['/usr/bin/mpiexec', '/usr/local/bin/mpiexec'].find(existsSync);
  it.skipIf(!mpiexec)('backend mpi delegates to mpiexec -n N node script', async () => {
    const res = await launch({ world: 2, backend: 'mpi', script: fixture('mpi-env.mjs'), prefixOutput: false, captureOutput: true,
      env: { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' } }); // CI containers run as root
    expect(res[0]!.exitCode).toBe(0);
    const xs = results(res[0]!.output).sort((p, q) => Number(p.rank) - Number(q.rank));
    expect(xs.map((x) => x.rank)).toEqual(['0', '1']);
    expect(xs[0]!.rdzv).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});
