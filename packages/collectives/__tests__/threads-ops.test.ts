// Every threads-backend operation on 1..4 ranks against a sequential reference computed here (float64 sums with a
// tolerance for f32, bf16 against an independent per-step-rounded reference, i32 exact), random sizes including
// 0, uneven all-to-all splits with zero counts, split sub-groups used concurrently, 50 in-flight mixed operations,
// and overlap with a busy rank thread.
import { afterAll, describe, expect, it } from 'vitest';
import { createThreadsWorld, linkForCommShare, parseLinkEmulation, threadsSharedLike } from '@farskip/collectives';
import type { ReduceOp, ThreadsCommunicator } from '@farskip/collectives';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}
const f = new Float32Array(1), u = new Uint32Array(f.buffer);
const toBf16 = (x: number): number => { f[0] = x; const b = u[0]!; return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff; };
const fromBf16 = (h: number): number => { u[0] = h << 16; return f[0]!; };
const OPS: ReduceOp[] = ['sum', 'avg', 'max', 'min'];

/** Sequential reference of a reduction over ranks 0..n-1 for element i, in the dtype's arithmetic. */
function refReduce(dt: string, op: ReduceOp, vals: number[]): number {
  const n = vals.length;
  const step = (a: number, x: number): number => (op === 'max' ? Math.max(a, x) : op === 'min' ? Math.min(a, x) : a + x);
  if (dt === 'bf16') {
    let a = fromBf16(vals[0]!);
    for (let p = 1; p < n; p++) a = fromBf16(toBf16(Math.fround(step(a, fromBf16(vals[p]!)))));
    return op === 'avg' ? toBf16(Math.fround(a / n)) : toBf16(a);
  }
  if (dt === 'i32') { let a = vals[0]!; for (let p = 1; p < n; p++) a = op === 'sum' || op === 'avg' ? (a + vals[p]!) | 0 : step(a, vals[p]!); return op === 'avg' ? Math.trunc(a / n) : a; }
  const r = vals.reduce(step); // float64, compared with a tolerance
  return op === 'avg' ? r / n : r;
}

type Arr = Float32Array | Float64Array | Int32Array | Uint16Array;
function make(dt: string, n: number, r: () => number, shared: boolean): Arr {
  const a = dt === 'f32' ? new Float32Array(n) : dt === 'f64' ? new Float64Array(n) : dt === 'i32' ? new Int32Array(n) : new Uint16Array(n);
  for (let i = 0; i < n; i++) a[i] = dt === 'bf16' ? toBf16(r() * 8 - 4) : dt === 'i32' ? Math.floor(r() * 2000 - 1000) : r() * 8 - 4;
  return shared ? (() => { const s = threadsSharedLike(a); s.set(a as never); return s; })() : a;
}
function close(dt: string, got: number, want: number, mag: number): boolean {
  if (dt === 'i32' || dt === 'bf16') return got === want;
  return Math.abs(got - want) <= (dt === 'f32' ? 1e-5 : 1e-12) * (mag + 1);
}

const worlds = new Map<number, ThreadsCommunicator[]>();
const world = (n: number): ThreadsCommunicator[] => { let w = worlds.get(n); if (!w) worlds.set(n, (w = createThreadsWorld(n, { timeoutMs: 20_000 }))); return w; };
afterAll(() => { for (const w of worlds.values()) for (const c of w) c.destroy(); });
const all = (ws: { wait(): Promise<void> }[]): Promise<void[]> => Promise.all(ws.map((w) => w.wait()));

describe.each([1, 2, 3, 4])('threads backend, %i rank(s)', (N) => {
  const r = rng(1000 + N);
  for (const dt of ['f32', 'bf16', 'i32', 'f64']) {
    it(`allReduce ${dt}: sum/avg/max/min, sizes incl. 0, shared and staged buffers`, async () => {
      const comms = world(N);
      for (const op of OPS) for (const n of [0, 1, 7, 1 + Math.floor(r() * 40000)]) for (const shared of [true, false]) {
        const bufs = comms.map(() => make(dt, n, r, shared));
        const inputs = bufs.map((b) => Array.from(b));
        await all(comms.map((c, k) => c.allReduce(bufs[k]!, op)));
        for (let i = 0; i < n; i++) {
          const vals = inputs.map((x) => x[i]!);
          const want = refReduce(dt, op, vals);
          const mag = dt === 'bf16' ? 0 : vals.reduce((a, x) => a + Math.abs(x), 0);
          if (!close(dt, bufs[0]![i]!, want, mag)) expect.fail(`${dt} ${op} n=${n} i=${i}: got ${bufs[0]![i]}, want ${want}`);
          if (dt === 'bf16' && op === 'sum') expect(Math.abs(fromBf16(bufs[0]![i]!) - vals.reduce((a, x) => a + fromBf16(x), 0))).toBeLessThanOrEqual(0.05 * N);
        }
        for (const b of bufs) expect(Array.from(b)).toEqual(Array.from(bufs[0]!)); // bit-identical on every rank
      }
    });
  }

  it('allGather and reduceScatter (f32, bf16, i32), sizes incl. 0', async () => {
    const comms = world(N);
    for (const dt of ['f32', 'bf16', 'i32']) for (const n of [0, 3, 1 + Math.floor(r() * 5000)]) {
      const ins = comms.map(() => make(dt, n, r, r() < 0.5));
      const outs = comms.map(() => make(dt, N * n, r, r() < 0.5));
      await all(comms.map((c, k) => c.allGather(ins[k]!, outs[k]!)));
      const want = ins.flatMap((x) => Array.from(x));
      for (const o of outs) expect(Array.from(o)).toEqual(want);
      const rsIn = comms.map(() => make(dt, N * n, r, r() < 0.5));
      const rsOut = comms.map(() => make(dt, n, r, r() < 0.5));
      await all(comms.map((c, k) => c.reduceScatter(rsIn[k]!, rsOut[k]!, 'sum')));
      comms.forEach((_, k) => {
        for (let i = 0; i < n; i++) {
          const vals = rsIn.map((x) => x[k * n + i]!);
          const w = refReduce(dt, 'sum', vals);
          if (!close(dt, rsOut[k]![i]!, w, vals.reduce((a, x) => a + Math.abs(x), 0))) expect.fail(`reduceScatter ${dt} rank ${k} i=${i}`);
        }
      });
    }
  });

  it('allToAll: even and uneven splits with zero counts', async () => {
    const comms = world(N);
    for (let trial = 0; trial < 4; trial++) {
      // counts[p][q]: elements p sends to q (some zero)
      const counts = comms.map(() => comms.map(() => (r() < 0.3 ? 0 : Math.floor(r() * 50))));
      const ins = comms.map((_, p) => { const a = new Float32Array(counts[p]!.reduce((x, y) => x + y, 0)); a.forEach((_, i) => (a[i] = p * 1e4 + i)); return a; });
      const outs = comms.map((_, q) => new Float32Array(counts.reduce((s, row) => s + row[q]!, 0)));
      await all(comms.map((c, p) => c.allToAll(ins[p]!, outs[p]!, counts[p]!, counts.map((row) => row[p]!))));
      comms.forEach((_, q) => {
        const want: number[] = [];
        counts.forEach((row, p) => { const off = row.slice(0, q).reduce((x, y) => x + y, 0); want.push(...Array.from(ins[p]!.subarray(off, off + row[q]!))); });
        expect(Array.from(outs[q]!)).toEqual(want);
      });
    }
    const even = comms.map((_, p) => Int32Array.from({ length: 2 * N }, (_, i) => p * 100 + i));
    const eo = comms.map(() => new Int32Array(2 * N));
    await all(comms.map((c, p) => c.allToAll(even[p]!, eo[p]!)));
    eo.forEach((o, q) => expect(Array.from(o)).toEqual(comms.flatMap((_, p) => [p * 100 + 2 * q, p * 100 + 2 * q + 1])));
  });

  it('broadcast from every root, barrier, send/recv ring', async () => {
    const comms = world(N);
    for (let root = 0; root < N; root++) {
      const bufs = comms.map((_, k) => Int32Array.from({ length: 33 }, (_, i) => k * 1000 + i));
      await all(comms.map((c, k) => c.broadcast(bufs[k]!, root)));
      for (const b of bufs) expect(b[5]).toBe(root * 1000 + 5);
    }
    await all(comms.map((c) => c.barrier()));
    if (N > 1) {
      const got = comms.map(() => new Float32Array(17));
      const ws = comms.flatMap((c, k) => [c.send(Float32Array.from({ length: 17 }, (_, i) => k + i / 100), (k + 1) % N), c.recv(got[k]!, (k + N - 1) % N)]);
      await all(ws);
      got.forEach((g, k) => expect(g[3]).toBeCloseTo(((k + N - 1) % N) + 0.03, 5));
    }
  });
});

describe('threads backend: groups, ordering, overlap', () => {
  it('split 4 ranks into TP pairs and DP pairs; collectives on both concurrently', async () => {
    const comms = createThreadsWorld(4, { timeoutMs: 20_000 });
    const tp = comms.map((c, k) => c.split(k >> 1, k))!; // {0,1} {2,3}
    const dp = comms.map((c, k) => c.split(k & 1, k))!; // {0,2} {1,3}
    expect(tp.map((c) => [c!.rank, c!.size])).toEqual([[0, 2], [1, 2], [0, 2], [1, 2]]);
    expect(dp[3]!.name).toBe('world/split(color=1)');
    const a = comms.map((_, k) => Float32Array.from({ length: 1000 }, () => k + 1));
    const b = comms.map((_, k) => Float32Array.from({ length: 1000 }, () => 10 * (k + 1)));
    await all([...tp.map((c, k) => c!.allReduce(a[k]!)), ...dp.map((c, k) => c!.allReduce(b[k]!))]);
    expect([a[0]![0], a[2]![999], b[1]![0], b[2]![0]]).toEqual([3, 7, 60, 40]);
    expect(comms[0]!.split(-1)).toBeNull();
    for (const c of comms.slice(1)) c.split(-1);
    for (const c of comms) c.destroy();
  });

  it('50 mixed operations in flight before any wait complete correctly and in order', async () => {
    const N = 3;
    const comms = createThreadsWorld(N, { timeoutMs: 20_000 });
    const r = rng(7);
    const x = comms.map(() => threadsSharedLike(new Float64Array(256)));
    x.forEach((v, k) => v.fill(k + 1));
    const works: { wait(): Promise<void> }[] = [];
    let want = [1, 2, 3]; // every rank's value, tracked through the chain of in-place allReduces
    const checks: (() => void)[] = [];
    for (let i = 0; i < 50; i++) {
      const kind = Math.floor(r() * 3);
      if (kind === 0) { // chained in-place allReduce on shared buffers: order matters
        const op: ReduceOp = i % 2 ? 'sum' : 'max';
        works.push(...comms.map((c, k) => c.allReduce(x[k]!, op)));
        const v = op === 'sum' ? want.reduce((a, b) => a + b) : Math.max(...want);
        want = want.map(() => v);
      } else if (kind === 1) {
        const outs = comms.map(() => new Int32Array(N * 4));
        works.push(...comms.map((c, k) => c.allGather(Int32Array.of(i, k, i, k), outs[k]!)));
        checks.push(() => outs.forEach((o) => expect(Array.from(o)).toEqual([0, 1, 2].flatMap((k) => [i, k, i, k]))));
      } else {
        works.push(...comms.map((c) => c.barrier()));
      }
    }
    expect(works.length).toBe(150);
    await all(works);
    for (const c of checks) c();
    x.forEach((v, k) => expect([v[0], v[255]]).toEqual([want[k], want[k]]));
    for (const c of comms) c.destroy();
  });

  it('an allReduce completes in the background while the issuing thread busy-waits 200 ms', async () => {
    const comms = createThreadsWorld(2);
    await all(comms.map((c) => c.barrier())); // comm workers started
    const bufs = comms.map((_, k) => threadsSharedLike(new Float32Array(1 << 20)).fill(k + 1));
    const ws = comms.map((c, k) => c.allReduce(bufs[k]!));
    const t0 = performance.now();
    let doneAt = -1;
    while (performance.now() - t0 < 200) if (doneAt < 0 && ws.every((w) => w.completed)) doneAt = performance.now() - t0; // never yields
    expect(doneAt).toBeGreaterThanOrEqual(0);
    expect(doneAt).toBeLessThan(200);
    expect(bufs[1]![12345]).toBe(3);
    await all(ws);
    for (const c of comms) c.destroy();
  });

  it('link emulation (FARSKIP_EMULATE_LINK syntax) holds operations for the modelled time and is reported', async () => {
    const comms = createThreadsWorld(2, { linkEmulation: '1GB/s,2ms' });
    expect(comms[0]!.linkEmulation).toMatchObject({ spec: '1GB/s,2ms', bytesPerSecond: 1e9, latencySeconds: 0.002 });
    expect(createThreadsWorld(1, { linkEmulation: null })[0]!.linkEmulation).toBeNull();
    await all(comms.map((c) => c.barrier()));
    const bufs = comms.map(() => threadsSharedLike(new Float32Array(1 << 20)).fill(1)); // 4 MB: 2 msgs x 2 ms + 4 ms
    const t0 = performance.now();
    await all(comms.map((c, k) => c.allReduce(bufs[k]!)));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(7.5);
    expect(bufs[0]![0]).toBe(2);
    for (const c of comms) c.destroy();
  });

  it('linkForCommShare: the calibrated link makes the bytes take share / (1 - share) of the compute time', () => {
    const spec = linkForCommShare(3e6, 70, 0.3); // comm = 0.3 / 0.7 × 70 ms = 30 ms for 3 MB => 0.1 GB/s
    expect(spec).toBe('0.100GB/s,20us');
    const link = parseLinkEmulation(spec)!;
    expect((3e6 / link.bytesPerSecond) * 1e3).toBeCloseTo(30, 6);
    expect(link.latencySeconds).toBeCloseTo(20e-6, 12);
    expect(() => linkForCommShare(3e6, 70, 1)).toThrow(/0 < share < 1/);
  });
});
