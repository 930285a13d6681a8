// The distillation building blocks against independent float64 references: forward KL (value, analytic
// gradient τ·(q_τ − p_τ)/count, central finite differences), hidden L2 and SFT cross-entropy, the cosine LR
// schedule, global-norm clipping (incl. expert-sharded parameters over a 2-rank threads world), early stopping,
// and the AdamW state round trip.
import { describe, expect, it } from 'vitest';
import { createThreadsWorld } from '@farskip/collectives';
import { AdamW } from '@farskip/kernels';
import { shardLeaf } from '@farskip/layers';
import { Tensor } from '@farskip/tensor';
import { clipGradNorm, cosineLr, EarlyStopping, forwardKl, hiddenL2, sftLoss } from '../src/index.js';

/** Deterministic uniform(−a, a) values (mulberry32). */
function rand(n: number, seed: number, a = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * a;
  }
  return out;
}

/** float64 softmax of row r of x [rows, V] at temperature tau. */
function softmax64(x: ArrayLike<number>, r: number, V: number, tau: number): Float64Array {
  const out = new Float64Array(V);
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, x[r * V + j]! / tau);
  let z = 0;
  for (let j = 0; j < V; j++) z += (out[j] = Math.exp(x[r * V + j]! / tau - m));
  for (let j = 0; j < V; j++) out[j]! /= z;
  return out;
}

/** τ² · Σ_kept Σ_j p (log p − log q) / count, all in float64. */
function klRef(s: ArrayLike<number>, t: ArrayLike<number>, rows: number, V: number, tau: number, mask?: ArrayLike<number>): number {
  let total = 0, count = 0;
  for (let r = 0; r < rows; r++) {
    const w = mask ? mask[r]! : 1;
    count += w;
    const p = softmax64(t, r, V, tau), q = softmax64(s, r, V, tau);
    let kl = 0;
    for (let j = 0; j < V; j++) kl += p[j]! * (Math.log(p[j]!) - Math.log(q[j]!));
    total += w * kl;
  }
  return (tau * tau * total) / count;
}

/** The derived gradient wrt the student logits: τ·(q_τ − p_τ)·mask/count. */
function klGradRef(s: ArrayLike<number>, t: ArrayLike<number>, rows: number, V: number, tau: number, mask?: ArrayLike<number>): Float64Array {
  const g = new Float64Array(rows * V);
  const count = mask ? Array.from(mask).reduce((a, b) => a + b, 0) : rows;
  for (let r = 0; r < rows; r++) {
    const w = mask ? mask[r]! : 1;
    const p = softmax64(t, r, V, tau), q = softmax64(s, r, V, tau);
    for (let j = 0; j < V; j++) g[r * V + j] = (tau * w * (q[j]! - p[j]!)) / count;
  }
  return g;
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
};

describe('forwardKl', () => {
  const [B, T, V] = [2, 3, 7];
  const rows = B * T;
  const s = rand(rows * V, 11, 3), t = rand(rows * V, 12, 3);
  const mask = Float32Array.from([1, 0, 1, 1, 0, 1]);

  for (const tau of [1, 2.5]) {
    for (const masked of [false, true]) {
      it(`value and gradient == float64 formulas (τ=${tau}, ${masked ? 'masked' : 'all tokens'})`, async () => {
        const m = masked ? mask : undefined;
        const student = new Tensor(s.slice(), [B, T, V]).requiresGrad_();
        const loss = forwardKl(student, new Tensor(t.slice(), [B, T, V]), { temperature: tau, mask: m });
        const want = klRef(s, t, rows, V, tau, m);
        expect(Math.abs(loss.item() - want)).toBeLessThan(1e-5 * Math.max(1, want));
        await loss.backward();
        const g = student.grad!.data as Float32Array;
        const gRef = klGradRef(s, t, rows, V, tau, m);
        expect(maxAbsDiff(g, gRef)).toBeLessThan(1e-6);
        if (m) for (let r = 0; r < rows; r++) if (m[r] === 0) for (let j = 0; j < V; j++) expect(g[r * V + j] === 0).toBe(true); // ±0
      });
    }
  }

  it('the derived gradient τ·(q_τ − p_τ)/count matches central finite differences of the float64 KL', () => {
    const tau = 1.7, h = 1e-5;
    const s64 = Float64Array.from(s);
    const gRef = klGradRef(s64, t, rows, V, tau, mask);
    for (let i = 0; i < s64.length; i++) {
      const x = s64[i]!;
      s64[i] = x + h; const up = klRef(s64, t, rows, V, tau, mask);
      s64[i] = x - h; const dn = klRef(s64, t, rows, V, tau, mask);
      s64[i] = x;
      expect(Math.abs((up - dn) / (2 * h) - gRef[i]!)).toBeLessThan(1e-8);
    }
  });

  it('the implementation (f64 logits) agrees with central finite differences of itself', async () => {
    const tau = 2;
    const s64 = Float64Array.from(s), t64 = Float64Array.from(t);
    const at = (x: Float64Array): number => forwardKl(new Tensor(x, [B, T, V], { dtype: 'f64' }), new Tensor(t64, [B, T, V], { dtype: 'f64' }), { temperature: tau }).item();
    const student = new Tensor(s64.slice(), [B, T, V], { dtype: 'f64' }).requiresGrad_();
    await forwardKl(student, new Tensor(t64, [B, T, V], { dtype: 'f64' }), { temperature: tau }).backward();
    const g = student.grad!.data as Float64Array;
    const h = 1e-6;
    for (let i = 0; i < s64.length; i++) {
      const x = s64[i]!;
      s64[i] = x + h; const up = at(s64);
      s64[i] = x - h; const dn = at(s64);
      s64[i] = x;
      expect(Math.abs((up - dn) / (2 * h) - g[i]!)).toBeLessThan(1e-7);
    }
  });

  it('is zero (with zero gradient) when the student equals the teacher, and positive otherwise', async () => {
    const student = new Tensor(t.slice(), [B, T, V]).requiresGrad_();
    const loss = forwardKl(student, new Tensor(t.slice(), [B, T, V]), { temperature: 3 });
    expect(Math.abs(loss.item())).toBeLessThan(1e-6);
    await loss.backward();
    expect(maxAbsDiff(student.grad!.data as Float32Array, new Float32Array(rows * V))).toBeLessThan(1e-7);
    expect(forwardKl(new Tensor(s.slice(), [B, T, V]), new Tensor(t.slice(), [B, T, V])).item()).toBeGreaterThan(0);
  });

  it('does not differentiate the teacher, and rejects bad masks clearly', async () => {
    const teacher = new Tensor(t.slice(), [B, T, V]).requiresGrad_();
    const student = new Tensor(s.slice(), [B, T, V]).requiresGrad_();
    await forwardKl(student, teacher).backward();
    expect(teacher.grad).toBeNull();
    expect(() => forwardKl(student, teacher, { mask: new Float32Array(5) })).toThrow(/mask has 5 entries for 6 tokens/);
    expect(() => forwardKl(student, teacher, { mask: new Float32Array(6) })).toThrow(/keeps no token/);
  });
});

describe('hiddenL2 and sftLoss', () => {
  it('hiddenL2 = coef · mean((s − t)²) with gradient 2·coef·(s − t)/n', async () => {
    const n = 2 * 3 * 5;
    const a = rand(n, 21), b = rand(n, 22);
    const coef = 0.37;
    const sh = new Tensor(a.slice(), [2, 3, 5]).requiresGrad_();
    const loss = hiddenL2(sh, new Tensor(b.slice(), [2, 3, 5]), coef);
    let want = 0;
    for (let i = 0; i < n; i++) want += (a[i]! - b[i]!) ** 2;
    want *= coef / n;
    expect(Math.abs(loss.item() - want)).toBeLessThan(1e-6 * Math.max(1, want));
    await loss.backward();
    const g = sh.grad!.data as Float32Array;
    for (let i = 0; i < n; i++) expect(Math.abs(g[i]! - (2 * coef * (a[i]! - b[i]!)) / n)).toBeLessThan(1e-7);
  });

  it('sftLoss = mean next-token cross-entropy over non-ignored targets, gradient (softmax − onehot)/count', async () => {
    const [B, T, V] = [2, 4, 9];
    const x = rand(B * T * V, 31, 4);
    const targets = Int32Array.from([3, 0, 8, -100, 5, 5, -100, 1]);
    const logits = new Tensor(x.slice(), [B, T, V]).requiresGrad_();
    const loss = sftLoss(logits, targets);
    let want = 0, count = 0;
    const gRef = new Float64Array(B * T * V);
    for (let r = 0; r < B * T; r++) {
      if (targets[r] === -100) continue;
      count++;
      const p = softmax64(x, r, V, 1);
      want -= Math.log(p[targets[r]!]!);
    }
    for (let r = 0; r < B * T; r++) {
      if (targets[r] === -100) continue;
      const p = softmax64(x, r, V, 1);
      for (let j = 0; j < V; j++) gRef[r * V + j] = (p[j]! - (j === targets[r] ? 1 : 0)) / count;
    }
    want /= count;
    expect(Math.abs(loss.item() - want)).toBeLessThan(1e-5);
    await loss.backward();
    expect(maxAbsDiff(logits.grad!.data as Float32Array, gRef)).toBeLessThan(1e-6);
    // a custom ignore index
    const t2 = Int32Array.from([3, 0, 8, 7, 5, 5, 7, 1]);
    expect(Math.abs(sftLoss(new Tensor(x.slice(), [B, T, V]), t2, 7).item() - want)).toBeLessThan(1e-5);
  });
});

describe('cosineLr', () => {
  const s = { lr: 1e-3, minLr: 1e-5, warmupSteps: 4, totalSteps: 24 };
  it('warms up linearly (step+1)/warmup, peaks at lr, then follows min + ½(lr − min)(1 + cos πt)', () => {
    expect(cosineLr(0, s)).toBeCloseTo(0.25e-3, 15);
    expect(cosineLr(1, s)).toBeCloseTo(0.5e-3, 15);
    expect(cosineLr(3, s)).toBeCloseTo(1e-3, 15);
    expect(cosineLr(4, s)).toBeCloseTo(1e-3, 15); // t = 0
    expect(cosineLr(14, s)).toBeCloseTo(1e-5 + 0.5 * (1e-3 - 1e-5), 15); // mid: t = ½
    const t = 5 / 20;
    expect(cosineLr(9, s)).toBeCloseTo(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + Math.cos(Math.PI * t)), 15);
    expect(cosineLr(24, s)).toBeCloseTo(1e-5, 15); // end
    expect(cosineLr(100, s)).toBeCloseTo(1e-5, 15); // beyond: constant minLr
    for (let k = 4; k < 24; k++) expect(cosineLr(k + 1, s)).toBeLessThanOrEqual(cosineLr(k, s));
  });

  it('without warm-up starts at lr; minLr defaults to 0; a warm-up as long as the run does not divide by zero', () => {
    expect(cosineLr(0, { lr: 2, warmupSteps: 0, totalSteps: 10 })).toBe(2);
    expect(cosineLr(10, { lr: 2, warmupSteps: 0, totalSteps: 10 })).toBeCloseTo(0, 15);
    expect(cosineLr(5, { lr: 2, warmupSteps: 0, totalSteps: 10 })).toBeCloseTo(1, 15);
    for (let k = 0; k < 8; k++) expect(Number.isFinite(cosineLr(k, { lr: 1, warmupSteps: 5, totalSteps: 5 }))).toBe(true);
  });
});

describe('clipGradNorm', () => {
  const withGrad = (shape: number[], seed: number, a = 1): Tensor => {
    const p = new Tensor(new Float32Array(shape.reduce((x, y) => x * y, 1)), shape).requiresGrad_();
    p.grad = new Tensor(rand(p.numel, seed, a), shape);
    return p;
  };
  const sq64 = (ps: Tensor[]): number => ps.reduce((acc, p) => acc + (p.grad ? Array.from(p.grad.data as Float32Array).reduce((x, g) => x + g * g, 0) : 0), 0);

  it('returns the float64 global norm; scales by max/(norm + 1e-6) only above max; skips params without grads', async () => {
    const ps = [withGrad([3, 4], 41), withGrad([5], 42, 3), new Tensor(new Float32Array(2), [2]).requiresGrad_()];
    const before = ps.map((p) => (p.grad ? Float32Array.from(p.grad.data as Float32Array) : null));
    const want = Math.sqrt(sq64(ps));
    // max above the norm: untouched
    expect(Math.abs((await clipGradNorm(ps, want * 2)) - want)).toBeLessThan(1e-12);
    ps.forEach((p, i) => { if (before[i]) expect(Array.from(p.grad!.data as Float32Array)).toEqual(Array.from(before[i]!)); });
    // maxNorm 0 disables clipping
    await clipGradNorm(ps, 0);
    expect(Array.from(ps[0]!.grad!.data as Float32Array)).toEqual(Array.from(before[0]!));
    // below: scaled to ~max
    const max = want / 4;
    expect(Math.abs((await clipGradNorm(ps, max)) - want)).toBeLessThan(1e-12);
    const c = max / (want + 1e-6);
    ps.forEach((p, i) => {
      if (!before[i]) { expect(p.grad).toBeNull(); return; }
      const g = p.grad!.data as Float32Array;
      for (let k = 0; k < g.length; k++) expect(g[k]).toBe(Math.fround(before[i]![k]! * c));
    });
    expect(Math.abs(Math.sqrt(sq64(ps)) - max)).toBeLessThan(1e-5 * max);
  });

  it('a non-finite norm is reported and nothing is scaled', async () => {
    const p = withGrad([4], 43);
    (p.grad!.data as Float32Array)[2] = NaN;
    const before = Float32Array.from(p.grad!.data as Float32Array);
    expect(Number.isNaN(await clipGradNorm([p], 1e-3))).toBe(true);
    expect(Array.from(p.grad!.data as Float32Array)).toEqual(Array.from(before));
  });

  it('sharded parameters are summed over a 2-rank group: both ranks get the same norm and the same scale', async () => {
    const world = createThreadsWorld(2);
    try {
      const replicatedGrad = rand(6, 51, 2);
      const shardGrads = [rand(10, 52, 2), rand(10, 53, 2)];
      const want = Math.sqrt(sq64([withGrad([6], 51, 2), withGrad([10], 52, 2), withGrad([10], 53, 2)]));
      const results = await Promise.all(world.map(async (g) => {
        const rep = new Tensor(new Float32Array(6), [6]).requiresGrad_();
        rep.grad = new Tensor(replicatedGrad.slice(), [6]);
        // this rank's half of a [20] parameter, registered as a shard over the group (as the parallel layers do)
        const shard = shardLeaf(Tensor.zeros([20]), 0, 10 * g.rank, 10 * (g.rank + 1), g);
        shard.grad = new Tensor(shardGrads[g.rank]!.slice(), [10]);
        const norm = await clipGradNorm([rep, shard], 1);
        return { norm, rep: Float32Array.from(rep.grad.data as Float32Array), shard: Float32Array.from(shard.grad.data as Float32Array) };
      }));
      expect(Math.abs(results[0]!.norm - want)).toBeLessThan(1e-9);
      expect(results[1]!.norm).toBe(results[0]!.norm);
      const c = 1 / (want + 1e-6);
      for (const r of results) for (let k = 0; k < 6; k++) expect(r.rep[k]).toBe(Math.fround(replicatedGrad[k]! * c));
      results.forEach((r, rank) => { for (let k = 0; k < 10; k++) expect(r.shard[k]).toBe(Math.fround(shardGrads[rank]![k]! * c)); });
      // without the group every rank would see a different (local) norm
      expect(Math.sqrt(sq64([withGrad([6], 51, 2), withGrad([10], 52, 2)]))).toBeLessThan(want - 1e-3);
    } finally {
      for (const w of world) w.destroy();
    }
  });
});

describe('EarlyStopping', () => {
  it("mode 'min': stops after `patience` evaluations without an improvement larger than minDelta", () => {
    const es = new EarlyStopping({ patience: 2, minDelta: 0.1 });
    expect(es.update(5)).toEqual({ improved: true, stop: false });
    expect(es.update(4.95)).toEqual({ improved: false, stop: false }); // within minDelta
    expect(es.update(4.8)).toEqual({ improved: true, stop: false }); // 4.8 < 5 − 0.1
    expect(es.best).toBe(4.8);
    expect(es.update(4.75)).toEqual({ improved: false, stop: false });
    expect(es.update(9)).toEqual({ improved: false, stop: true });
  });

  it("mode 'max' and state/restore continue identically", () => {
    const a = new EarlyStopping({ patience: 3, mode: 'max' });
    for (const v of [0.1, 0.3, 0.2]) a.update(v);
    expect(a.state()).toEqual({ best: 0.3, bad: 1 });
    const b = new EarlyStopping({ patience: 3, mode: 'max' });
    b.restore(JSON.parse(JSON.stringify(a.state())) as { best: number | null; bad: number });
    for (const v of [0.25, 0.31, 0.3, 0.3, 0.3]) expect(b.update(v)).toEqual(a.update(v));
    expect(b.state()).toEqual({ best: 0.31, bad: 3 });
    expect(b.update(0.2).stop).toBe(true);
  });

  it('rejects a non-positive or fractional patience', () => {
    expect(() => new EarlyStopping({ patience: 0 })).toThrow(/patience 0 must be a positive integer/);
    expect(() => new EarlyStopping({ patience: 1.5 })).toThrow(/positive integer/);
  });
});

describe('AdamW stateDict / loadStateDict', () => {
  const shapes = [[4, 3], [5]];
  const makeParams = (seed: number): Tensor[] => shapes.map((sh, i) => new Tensor(rand(sh.reduce((a, b) => a * b, 1), seed + i), sh).requiresGrad_());
  const setGrads = (ps: Tensor[], step: number): void => ps.forEach((p, i) => { p.grad = new Tensor(rand(p.numel, 1000 * step + i, 0.5), p.shape.slice()); });

  it('a restored optimizer (fresh params copied) continues bit for bit', () => {
    const a = makeParams(61);
    const optA = new AdamW(a, { lr: 3e-2, weightDecay: 0.05, betas: [0.8, 0.95] });
    for (let k = 1; k <= 3; k++) { setGrads(a, k); optA.lr = 3e-2 / k; optA.step(); optA.zeroGrad(); }
    const sd = optA.stateDict();
    // fresh parameters holding the same values, a fresh optimizer restored from a JSON-free copy of the state
    const b = a.map((p) => new Tensor(Float32Array.from(p.data as Float32Array), p.shape.slice()).requiresGrad_());
    const optB = new AdamW(b, { lr: 123, weightDecay: 0.05, betas: [0.8, 0.95] });
    optB.loadStateDict(sd);
    expect(optB.stepCount).toBe(3);
    expect(optB.lr).toBe(3e-2 / 3);
    // the snapshot is a copy: stepping A further does not change it
    const m0 = Float32Array.from(sd.params[0]!.m as Float32Array);
    for (let k = 4; k <= 6; k++) {
      for (const [ps, opt] of [[a, optA], [b, optB]] as const) { setGrads(ps, k); opt.lr = 1e-2; opt.step(); opt.zeroGrad(); }
    }
    expect(Array.from(sd.params[0]!.m)).toEqual(Array.from(m0));
    a.forEach((p, i) => {
      const x = p.data as Float32Array, y = b[i]!.data as Float32Array;
      for (let k = 0; k < x.length; k++) expect(Object.is(x[k], y[k])).toBe(true);
    });
    expect(optA.stateDict()).toEqual(optB.stateDict());
  });

  it('rejects a state of another shape', () => {
    const opt = new AdamW(makeParams(71));
    const sd = opt.stateDict();
    expect(() => new AdamW(makeParams(71).slice(0, 1)).loadStateDict(sd)).toThrow(/has 2 parameters but the optimizer has 1/);
    setGrads(opt.params as Tensor[], 1);
    opt.step();
    const other = new AdamW([makeParams(71)[1]!, makeParams(71)[0]!]);
    expect(() => other.loadStateDict(opt.stateDict())).toThrow(/parameter 0 .* has 5 elements but its saved moments have 12/);
  });
});
