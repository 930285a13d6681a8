// Failure handling of the threads backend: mismatched sizes / dtypes / operation order / roots, timeouts,
// destroy (twice, with pending work), and a process that never calls destroy() exiting by itself. Every
// surviving rank must get a CollectiveError naming the operation, the communicator and the rank, quickly.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CollectiveError, createThreadsWorld } from '@farskip/collectives';
import type { Work } from '@farskip/collectives';

async function errors(ws: Work[]): Promise<CollectiveError[]> {
  const out: CollectiveError[] = [];
  for (const w of ws) {
    try { await w.wait(); expect.fail('expected a CollectiveError'); } catch (e) { expect(e).toBeInstanceOf(CollectiveError); out.push(e as CollectiveError); }
  }
  return out;
}

describe('threads backend failures', () => {
  it('mismatched sizes fail on every rank, naming op, communicator, rank and culprit', async () => {
    const comms = createThreadsWorld(3, { timeoutMs: 10_000 });
    const t0 = performance.now();
    const es = await errors(comms.map((c, k) => c.allReduce(new Float32Array(k === 2 ? 5 : 4))));
    expect(performance.now() - t0).toBeLessThan(2000);
    es.forEach((e, k) => {
      expect(e.kind).toBe('mismatch');
      expect(e.op).toBe('allReduce');
      expect(e.rank).toBe(k);
      expect(e.culprit).toBe(2);
      expect(e.message).toMatch(/allReduce on communicator 'world' \(rank \d\): size mismatch/);
    });
    // the communicator stays broken: later calls fail at once instead of hanging
    const later = await errors(comms.map((c) => c.barrier()));
    expect(later[0]!.message).toMatch(/failed earlier/);
    for (const c of comms) c.destroy();
  });

  it('mismatched dtype, reduce op, root and operation order', async () => {
    const cases: [string, (k: number, c: ReturnType<typeof createThreadsWorld>[number]) => Work, RegExp][] = [
      ['dtype', (k, c) => c.allReduce(k ? new Float32Array(4) : new Uint16Array(4)), /dtype mismatch/],
      ['op', (k, c) => c.allReduce(new Float32Array(4), k ? 'max' : 'sum'), /reduce op mismatch/],
      ['root', (k, c) => c.broadcast(new Float32Array(4), k), /root mismatch/],
      ['order', (k, c) => (k ? c.allGather(new Float32Array(2), new Float32Array(4)) : c.allReduce(new Float32Array(4))), /called allReduce but rank 1 called allGather/],
      ['all-to-all counts', (k, c) => c.allToAll(new Float32Array(4), new Float32Array(4), [2, 2], k ? [1, 3] : [2, 2]), /count mismatch/],
    ];
    for (const [, issue, re] of cases) {
      const comms = createThreadsWorld(2, { timeoutMs: 10_000 });
      const es = await errors(comms.map((c, k) => issue(k, c)));
      es.forEach((e, k) => { expect(e.message).toMatch(re); expect(e.rank).toBe(k); });
      for (const c of comms) c.destroy();
    }
  });

  it('a rank that never calls times out on the others (timeoutMs) and they tell the laggard', async () => {
    const comms = createThreadsWorld(3, { timeoutMs: 300 });
    const t0 = performance.now();
    const es = await errors([comms[0]!.allReduce(new Float32Array(4)), comms[1]!.allReduce(new Float32Array(4))]);
    expect(performance.now() - t0).toBeLessThan(3000);
    // the first to time out tells the others, which then report it as a failed peer; the message says timed out
    for (const e of es) { expect(['timeout', 'peer-failed']).toContain(e.kind); expect(e.message).toMatch(/allReduce on communicator 'world'.*timed out after 300 ms/); }
    expect(es.some((e) => e.kind === 'timeout')).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    const [late] = await errors([comms[2]!.allReduce(new Float32Array(4))]);
    expect(late!.kind).toBe('peer-failed');
    for (const c of comms) c.destroy();
  });

  it('a peer that destroyed the communicator fails the survivors at once; destroy is idempotent and fails pending work', async () => {
    const comms = createThreadsWorld(2, { timeoutMs: 30_000 });
    await Promise.all(comms.map((c) => c.barrier().wait()));
    comms[1]!.destroy();
    comms[1]!.destroy();
    const t0 = performance.now();
    const [e] = await errors([comms[0]!.allReduce(new Float32Array(4))]);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(e!.kind).toBe('peer-failed');
    expect(e!.message).toMatch(/rank 1 destroyed the communicator/);
    const c2 = createThreadsWorld(2);
    const pending = c2[0]!.allReduce(new Float32Array(4)); // rank 1 never joins
    c2[0]!.destroy();
    const [d] = await errors([pending]);
    expect(d!.kind).toBe('destroyed');
    const [after] = await errors([c2[0]!.barrier()]);
    expect(after!.kind).toBe('destroyed');
    c2[1]!.destroy();
  });

  it('a process with an undestroyed communicator exits by itself', () => {
    const code = `import { createThreadsWorld } from '@farskip/collectives';
      const cs = createThreadsWorld(2); const b = cs.map(() => new Float32Array(16).fill(1));
      await Promise.all(cs.map((c, k) => c.allReduce(b[k]).wait())); console.log('sum', b[0][0]);`;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: __dirname, timeout: 15_000, encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('sum 2');
    expect(r.status).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
