// Work.completedAt on the threads backend: the comm worker stamps the moment it finished the operation
// (performance.timeOrigin + performance.now(), comparable across the threads of the process), so it is known
// even when the rank thread only looks at it much later, e.g. after a long synchronous compute step.
import { describe, expect, it } from 'vitest';
import { createThreadsWorld } from '@farskip/collectives';
import type { Work } from '@farskip/collectives';

const clock = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const all = (ws: Work[]): Promise<void[]> => Promise.all(ws.map((w) => w.wait()));

describe('threads backend: Work.completedAt', () => {
  it('is undefined before completion and within [issue, now] after wait()', async () => {
    const comms = createThreadsWorld(2, { timeoutMs: 20_000 });
    try {
      await all(comms.map((c) => c.barrier())); // comm workers started
      const bufs = comms.map((_, k) => new Float32Array(64).fill(k + 1));
      const t0 = clock();
      const w0 = comms[0]!.allReduce(bufs[0]!);
      // only rank 0 issued: the op cannot have completed, even after the event loop ran for a while
      expect(w0.completed).toBe(false);
      expect(w0.completedAt).toBeUndefined();
      await sleep(20);
      expect(w0.completed).toBe(false);
      expect(w0.completedAt).toBeUndefined();

      const w1 = comms[1]!.allReduce(bufs[1]!);
      await all([w0, w1]);
      const now = clock();
      for (const w of [w0, w1]) {
        expect(w.completed).toBe(true);
        expect(typeof w.completedAt).toBe('number');
        expect(w.completedAt!).toBeGreaterThanOrEqual(t0);
        expect(w.completedAt!).toBeLessThanOrEqual(now);
      }
      // rank 0's op cannot have finished before rank 1 issued its half (after the 20 ms sleep)
      expect(w0.completedAt! - t0).toBeGreaterThanOrEqual(15);
      expect(w0.completedAt).toBe(w0.completedAt); // stable on re-read
      expect(Array.from(bufs[0]!.subarray(0, 3))).toEqual([3, 3, 3]);
      expect(Array.from(bufs[1]!.subarray(0, 3))).toEqual([3, 3, 3]);

      // a later op on the same communicator gets its own, later stamp
      const t1 = clock();
      const ws = comms.map((c, k) => c.allReduce(bufs[k]!));
      await all(ws);
      for (const w of ws) {
        expect(w.completedAt!).toBeGreaterThanOrEqual(t1);
        expect(w.completedAt!).toBeGreaterThan(w0.completedAt!);
        expect(w.completedAt!).toBeLessThanOrEqual(clock());
      }
    } finally {
      for (const c of comms) c.destroy();
    }
  });

  it('is stamped by the comm worker: an op that finished during a 50 ms busy spin reports a time well before its end', async () => {
    const comms = createThreadsWorld(2, { timeoutMs: 20_000 });
    try {
      await all(comms.map((c) => c.barrier())); // comm workers started
      const bufs = comms.map((_, k) => new Float32Array(16).fill(k + 1));
      const t0 = clock();
      const ws = comms.map((c, k) => c.allReduce(bufs[k]!));
      while (clock() - t0 < 50) { /* busy: never yields, nor reads the works */ }
      const spinEnd = clock();
      // read only now: a stamp taken when this thread settles the work would be >= spinEnd
      for (const w of ws) {
        expect(w.completed).toBe(true);
        expect(w.completedAt!).toBeGreaterThanOrEqual(t0);
        expect(w.completedAt!).toBeLessThan(spinEnd - 30);
      }
      const seen = ws.map((w) => w.completedAt);
      await all(ws);
      expect(ws.map((w) => w.completedAt)).toEqual(seen); // wait() does not restamp it
      expect(Array.from(bufs[0]!)).toEqual(new Array(16).fill(3));
    } finally {
      for (const c of comms) c.destroy();
    }
  });

  it('stays undefined for an operation that failed', async () => {
    const comms = createThreadsWorld(2, { timeoutMs: 20_000 });
    await all(comms.map((c) => c.barrier()));
    const w = comms[0]!.allReduce(new Float32Array(4)); // rank 1 never joins
    comms[0]!.destroy();
    await expect(w.wait()).rejects.toMatchObject({ kind: 'destroyed' });
    expect(w.completed).toBe(false);
    expect(w.completedAt).toBeUndefined();
    comms[1]!.destroy();
  });
});
