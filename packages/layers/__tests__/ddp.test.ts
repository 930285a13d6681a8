// GradientBuckets (src/ddp.ts) on threads worlds of 2 and 3 ranks (all ranks in this thread): gradients become
// the average over ranks (expected values computed here in plain TS from per-rank gradients we chose); buckets
// launch during backward, in index order; a parameter without gradient contributes zeros; a second gradient in
// one step throws; the constructor's f32 / leaf checks; dataParallel's groups on a mesh.
import { describe, expect, it } from 'vitest';
import type { Communicator, HostBuffer, ReduceOp } from '@farskip/collectives';
import { add, mul, sum } from '@farskip/kernels';
import { Tensor } from '@farskip/tensor';
import { GradientBuckets, Tracer, buildStack, copyToGroup, dataParallel, solo, tracedBackward } from '../src/index.js';
import type { CommSpan } from '../src/index.js';
import { CFG, problem, runRank, withMesh } from './harness.js';

const SHAPES = [[3], [2, 2], [5], [1], [4], [2, 3]];
const clock = (): number => performance.timeOrigin + performance.now();

/** Rank r's gradient for parameter i: seeded random values, distinct per (rank, parameter). */
const gradOf = (r: number, i: number): Tensor => Tensor.randn(SHAPES[i]!, { seed: 100 * r + i + 1 });
const params = (): Tensor[] => SHAPES.map((s, i) => Tensor.randn(s, { seed: 7 + i }).requiresGrad_());

/** loss = Σ_i Σ(p_i ⊙ c_i) over the parameters in `used`: the gradient of p_i is exactly c_i. */
function loss(ps: Tensor[], r: number, used: (i: number) => boolean): Tensor {
  let l: Tensor | null = null;
  ps.forEach((p, i) => {
    if (!used(i)) return;
    const term = sum(mul(p, gradOf(r, i)));
    l = l ? add(l, term) : term;
  });
  return l!;
}

/** Wraps comm.allReduce so every call is logged (element count) into `log`. */
function logAllReduce(comm: Communicator, log: string[]): void {
  const orig = comm.allReduce.bind(comm);
  comm.allReduce = (buf, op?: ReduceOp) => {
    log.push(`allReduce:${(buf as HostBuffer).length}`);
    return orig(buf, op);
  };
}

describe('GradientBuckets: averages', () => {
  for (const n of [2, 3]) {
    it(`${n} ranks, 16-byte buckets: every gradient becomes the average over ranks; unused params contribute zeros`, async () => {
      // parameter 2 is unused on rank 0 only, parameter 4 on every rank
      const used = (r: number, i: number): boolean => i !== 4 && !(i === 2 && r === 0);
      const res = await withMesh({ dp: n }, async (_ctx, world) => {
        const ps = params();
        const b = new GradientBuckets(ps, world, { bucketBytes: 16 });
        await loss(ps, world.rank, (i) => used(world.rank, i)).backward();
        await b.finish();
        return { count: b.bucketCount, grads: ps.map((p) => ({ shape: p.grad!.shape, data: Array.from(p.grad!.data) })) };
      });
      // reversed: [2,3]=6 | [4]=4 | [1]+[5]=6 | [2,2]=4 | [3]=3 floats: five buckets
      expect(res[0]!.count).toBe(5);
      SHAPES.forEach((shape, i) => {
        const expected = new Float64Array(shape.reduce((a, b) => a * b, 1));
        for (let r = 0; r < n; r++) {
          if (!used(r, i)) continue; // no gradient: contributes zeros
          gradOf(r, i).data.forEach((v, j) => { expected[j]! += v / n; });
        }
        for (const r of res) {
          expect(r.grads[i]!.shape).toEqual(shape);
          r.grads[i]!.data.forEach((v, j) => expect(Math.abs(v - expected[j]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(expected[j]!))));
        }
      });
      expect(res[0]!.grads[4]!.data.every((v) => v === 0)).toBe(true);
      expect(res.every((r) => r.grads.every((g, i) => g.data.every((v, j) => v === res[0]!.grads[i]!.data[j])))).toBe(true);
    });
  }

  it('a second step (after zeroing .grad) averages again; one rank: finish() leaves gradients as they are', async () => {
    const res = await withMesh({ dp: 2 }, async (_ctx, world) => {
      const ps = params();
      const b = new GradientBuckets(ps, world, { bucketBytes: 8 });
      await loss(ps, world.rank, () => true).backward();
      await b.finish();
      for (const p of ps) p.grad = null;
      await loss(ps, world.rank + 1, () => true).backward(); // step 2: rank r now has rank r+1's gradients
      await b.finish();
      return ps.map((p) => Array.from(p.grad!.data));
    });
    SHAPES.forEach((_, i) => {
      const expected = Array.from(gradOf(1, i).data, (v, j) => (v + gradOf(2, i).data[j]!) / 2);
      res[0]![i]!.forEach((v, j) => expect(v).toBeCloseTo(expected[j]!, 6));
    });
    const ps = params();
    const one = new GradientBuckets(ps, solo(), { bucketBytes: 8 });
    await loss(ps, 5, () => true).backward();
    await one.finish();
    ps.forEach((p, i) => expect(Array.from(p.grad!.data)).toEqual(Array.from(gradOf(5, i).data)));
  });
});

describe('GradientBuckets: launch during backward, in index order', () => {
  it('buckets are issued while backward still waits on a collective, and before it resolves', async () => {
    // a -> x·a -> copyToGroup (async backward all-reduce) -> ·b -> ·c -> Σ: c and b get their gradients before
    // the copy's backward all-reduce is even issued, a only after it completed
    const res = await withMesh({ dp: 2 }, async (_ctx, world) => {
      const [a, b, c] = [0, 1, 2].map((i) => Tensor.randn([4], { seed: 20 + i }).requiresGrad_());
      const tracer = new Tracer(world.rank);
      const buckets = new GradientBuckets([a!, b!, c!], world, { bucketBytes: 16, tracer, name: 'ddp' });
      const x = Tensor.randn([4], { seed: 30 + world.rank });
      const h = copyToGroup(mul(a!, x), world, { schedule: 'overlapped', tracer }, 'copy');
      const l = sum(mul(mul(h, b!), c!));
      await tracedBackward(l, tracer);
      const resolvedAt = clock();
      const spans = tracer.spans.filter((s): s is CommSpan => s.kind === 'comm');
      await buckets.finish();
      return { spans, resolvedAt, grads: [a!, b!, c!].map((p) => Array.from(p.grad!.data)), x: Array.from(x.data), abc: [a!, b!, c!].map((p) => Array.from(p.data)) };
    });
    for (const r of res) {
      expect(r.spans.map((s) => s.name)).toEqual(['ddp.bucket0', 'ddp.bucket1', 'copy.backward', 'ddp.bucket2']);
      expect(r.spans.every((s) => s.phase === 'backward' && s.issued < r.resolvedAt)).toBe(true);
      const [b0, b1, copy, b2] = r.spans;
      expect(b0!.issued).toBeLessThanOrEqual(b1!.issued);
      expect(b1!.issued).toBeLessThanOrEqual(copy!.issued);
      expect(b2!.issued).toBeGreaterThanOrEqual(copy!.completed! - 0.05); // completedAt: comm worker's clock (50 µs slack)
    }
    // values: grad a = x_r · Σ_ranks(b·c) = 2·x_r·b·c, averaged over ranks -> (x_0 + x_1)·b·c
    const [a, b, c] = res[0]!.abc;
    for (let j = 0; j < 4; j++) {
      expect(res[0]!.grads[0]![j]).toBeCloseTo((res[0]!.x[j]! + res[1]!.x[j]!) * b![j]! * c![j]!, 5);
      expect(res[0]!.grads[2]![j]).toBeCloseTo(a![j]! * b![j]! * (res[0]!.x[j]! + res[1]!.x[j]!) / 2, 5);
    }
  });

  it('a bucket whose gradients are ready early waits for the lower-index buckets (index order)', async () => {
    const res = await withMesh({ dp: 2 }, async (_ctx, world) => {
      const log: string[] = [];
      // sizes 1, 2, 3: the all-reduce's length names the bucket (one parameter per bucket)
      const [a, b, c] = [1, 2, 3].map((n, i) => Tensor.randn([n], { seed: 40 + i }).requiresGrad_());
      const names = new Map<Tensor, string>([[a!, 'a'], [b!, 'b'], [c!, 'c']]);
      for (const p of [a!, b!, c!]) p.registerPostAccumulateGradHook((t) => log.push(`grad:${names.get(t)}`));
      logAllReduce(world, log);
      const buckets = new GradientBuckets([a!, b!, c!], world, { bucketBytes: 4 }); // buckets: c, b, a
      // Σ(c) + Σ(2b) + Σ(3a): backward reaches the latest term first, so a's gradient is ready first
      const l = add(add(sum(c!), sum(mul(b!, 2))), sum(mul(a!, 3)));
      await l.backward();
      const duringBackward = log.slice();
      await buckets.finish();
      return { log: duringBackward, count: buckets.bucketCount };
    });
    for (const r of res) {
      expect(r.count).toBe(3);
      expect(r.log).toEqual(['grad:a', 'grad:b', 'grad:c', 'allReduce:3', 'allReduce:2', 'allReduce:1']);
    }
  });

  it('the buckets of a stack on ep=2 launch during its backward, in index order', async () => {
    const p = problem();
    const res = await withMesh({ ep: 2 }, (ctx) => runRank(p, ctx, { tracer: true, bucketBytes: 2048 }));
    for (const r of res) {
      const comm = r.tracer!.spans.filter((s): s is CommSpan => s.kind === 'comm' && s.phase === 'backward');
      const buckets = comm.filter((s) => s.name.startsWith('dp.'));
      const a2a = comm.filter((s) => /moe\.(dispatch|combine)\.backward$/.test(s.name));
      expect(buckets.length).toBeGreaterThan(4);
      expect(a2a.length).toBeGreaterThan(0);
      const early = buckets.filter((s) => s.issued < r.backwardMs!.end);
      expect(early.length).toBeGreaterThan(0);
      // (whether a bucket goes out before the last reverse all-to-all depends on timing: the engine issues
      // collectives as early as it can, and both ranks share this thread; only "during backward" is guaranteed)
      const dense = buckets.filter((s) => s.name.startsWith('dp.dense.')).map((s) => Number(s.name.slice('dp.dense.bucket'.length)));
      expect(dense).toEqual([...dense].sort((x, y) => x - y)); // issued in index order
    }
  });
});

describe('GradientBuckets: errors and checks', () => {
  it('a second gradient for a parameter before finish() throws a clear error', async () => {
    const errors = await withMesh({ dp: 2 }, async (_ctx, world) => {
      const ps = params();
      new GradientBuckets(ps, world, { bucketBytes: 16, name: 'ddp' });
      await loss(ps, world.rank, () => true).backward();
      return loss(ps, world.rank, () => true).backward().then(() => null, (e: Error) => e.message);
    });
    for (const e of errors) expect(e).toMatch(/ddp: a parameter of shape \[.*\] received a second gradient in one backward/);
  });

  it('only f32 leaf parameters that require grad, each listed once', () => {
    const p = Tensor.randn([2]).requiresGrad_();
    expect(() => new GradientBuckets([Tensor.zeros([2], { dtype: 'f64' }).requiresGrad_()], solo())).toThrow(/f32 or bf16 gradients, got a f64 parameter/);
    expect(() => new GradientBuckets([mul(p, 2)], solo())).toThrow(/must be a leaf that requires grad/);
    expect(() => new GradientBuckets([Tensor.randn([2])], solo())).toThrow(/must be a leaf that requires grad/);
    expect(() => new GradientBuckets([p, p], solo())).toThrow(/listed twice/);
  });

  it('dataParallel on ep=2,dp=2: dense parameters over ep·dp = 4 ranks, expert parameters over dp = 2', async () => {
    const res = await withMesh({ ep: 2, dp: 2 }, async (ctx) => {
      const stack = buildStack(CFG, problem().weights, ctx);
      const dp = dataParallel(stack, ctx);
      const sizes = dp.buckets.map((b) => [b.name, b.group.size]);
      dp.remove();
      return sizes;
    });
    for (const r of res) expect(r).toEqual([['dp.dense', 4], ['dp.experts', 2]]);
  });
});
