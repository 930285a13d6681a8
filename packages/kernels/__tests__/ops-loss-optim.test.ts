// crossEntropy (ignoreIndex, all reductions), klDiv (temperature, reductions), AdamW / adamwStep: f32 forward
// against the float64 reference on both backends, f64 gradcheck, f32 backward against f64 gradients, AdamW
// against the torch.optim.AdamW formula, and bf16 parameters with an f32 master copy.
import { describe, expect, it } from 'vitest';
import { Tensor } from '@farskip/tensor';
import { AdamW, adamwStep, crossEntropy, klDiv, mul, sub, sum } from '@farskip/kernels';
import {
  Rng, adamwRefInit, adamwRefStep, assertClose, crossEntropyRef, expectF32GradsMatchF64, expectGradcheck, klDivRef, roundAllF32, roundBf16, t,
} from './reference64.js';
import { forBackends } from './for-backends.js';
import type { Reduction } from './reference64.js';


const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];
const LOSS_TOL = { atol: 2e-5, rtol: 1e-5 };

forBackends(() => {
  describe('crossEntropy forward f32', () => {
    it.each([
      [[1, 1]], [[3, 17]], [[2, 5, 31]], [[7, 65]], [[4, 1000]], [[17, 3]],
    ] as [number[]][])('logits %j with an ignored row, every reduction', (shape) => {
      const V = shape[shape.length - 1]!, rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const rng = new Rng(rows * 1000 + V);
      const logits = roundAllF32(rng.randn(rows * V, 3));
      const targets = rng.ints(rows, 0, V);
      if (rows > 1) targets[1] = -100;
      for (const reduction of REDUCTIONS) {
        const y = crossEntropy(t(logits, shape), t(targets, shape.slice(0, -1), 'i32'), { reduction });
        expect(y.shape).toEqual(reduction === 'none' ? shape.slice(0, -1) : []);
        assertClose(y.data as Float32Array, crossEntropyRef(logits, targets, V, reduction), LOSS_TOL, `crossEntropy ${reduction}`);
      }
    });

    it('custom ignoreIndex', () => {
      const rng = new Rng(5);
      const logits = roundAllF32(rng.randn(4 * 7));
      const targets = [0, 3, 0, 6];
      for (const reduction of REDUCTIONS) {
        const y = crossEntropy(t(logits, [4, 7]), t(targets, [4], 'i32'), { ignoreIndex: 0, reduction });
        assertClose(y.data as Float32Array, crossEntropyRef(logits, targets, 7, reduction, 0), LOSS_TOL, `ignoreIndex 0 ${reduction}`);
      }
    });
  });

  describe('klDiv forward f32', () => {
    it.each([
      [[1, 1], 1], [[3, 17], 1], [[2, 5, 31], 2], [[7, 65], 0.5], [[2, 1000], 2], [[9, 3], 4],
    ] as [number[], number][])('logits %j temperature %d, every reduction', (shape, T) => {
      const V = shape[shape.length - 1]!, rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const rng = new Rng(rows * 100 + V + T);
      const s = roundAllF32(rng.randn(rows * V, 2)), te = roundAllF32(rng.randn(rows * V, 2));
      for (const reduction of REDUCTIONS) {
        const y = klDiv(t(s, shape), t(te, shape), { temperature: T, reduction });
        expect(y.shape).toEqual(reduction === 'none' ? shape.slice(0, -1) : []);
        assertClose(y.data as Float32Array, klDivRef(s, te, rows, V, T, reduction), LOSS_TOL, `klDiv T=${T} ${reduction}`);
      }
      // KL of identical distributions is 0; default temperature is 1 and default reduction is mean
      assertClose(klDiv(t(s, shape), t(s, shape)).data as Float32Array, [0], { atol: 1e-6, rtol: 0 }, 'KL(p||p)');
      assertClose(klDiv(t(s, shape), t(te, shape)).data as Float32Array, klDivRef(s, te, rows, V, 1, 'mean'), LOSS_TOL, 'klDiv defaults');
    });
  });

  describe('f32 backward against f64 gradients', () => {
    it('crossEntropy (ignored row; mean, sum, none)', async () => {
      const rng = new Rng(501);
      const targets = t([3, -100, 64, 0, 17], [5], 'i32');
      for (const reduction of REDUCTIONS) {
        await expectF32GradsMatchF64((l) => crossEntropy(l!, targets, { reduction }), [rng.randn(5 * 65, 3)], [[5, 65]], `crossEntropy ${reduction}`);
      }
    });

    it('klDiv T=2 (student only)', async () => {
      const rng = new Rng(502);
      const te = roundAllF32(rng.randn(4 * 33, 2));
      for (const reduction of REDUCTIONS) {
        await expectF32GradsMatchF64((s) => klDiv(s!, t(te, [4, 33], s!.dtype), { temperature: 2, reduction }), [rng.randn(4 * 33, 2)], [[4, 33]],
          `klDiv ${reduction}`);
      }
    });
  });

  describe('AdamW (f32) against the torch.optim.AdamW formula', () => {
    it.each([1, 17, 65, 1000])('n=%i, 6 steps, custom hyper-parameters and defaults', (n) => {
      for (const opts of [{ lr: 1e-2, betas: [0.8, 0.95] as [number, number], eps: 1e-6, weightDecay: 0.1 }, {}]) {
        const rng = new Rng(n + 7);
        const p0 = roundAllF32(rng.randn(n));
        const p = t(p0, [n], 'f32', true);
        const opt = new AdamW([p], opts);
        const ref = Float64Array.from(p0), st = adamwRefInit(n);
        const lr = opts.lr ?? 1e-3, [b1, b2] = opts.betas ?? [0.9, 0.999], eps = opts.eps ?? 1e-8, wd = opts.weightDecay ?? 0.01;
        for (let s = 0; s < 6; s++) {
          const g = roundAllF32(rng.randn(n, s === 3 ? 1e-3 : 1));
          p.grad = t(g, [n]);
          opt.step();
          adamwRefStep(ref, g, st, lr, b1, b2, eps, wd);
          assertClose(p.data as Float32Array, ref, { atol: 2e-6, rtol: 2e-6 }, `AdamW step ${s + 1} ${JSON.stringify(opts)}`);
        }
        expect(opt.stepCount).toBe(6);
      }
    });

    it('adamwStep with caller-held moments (f32 and f64)', () => {
      const rng = new Rng(601);
      const n = 33;
      for (const dtype of ['f32', 'f64'] as const) {
        const p0 = roundAllF32(rng.randn(n));
        const p = t(p0, [n], dtype), m = Tensor.zeros([n], { dtype }), v = Tensor.zeros([n], { dtype });
        const ref = Float64Array.from(p0), st = adamwRefInit(n);
        for (let s = 1; s <= 4; s++) {
          const g = roundAllF32(rng.randn(n));
          adamwStep(p, t(g, [n], dtype), m, v, s, { lr: 3e-3, weightDecay: 0.05 });
          adamwRefStep(ref, g, st, 3e-3, 0.9, 0.999, 1e-8, 0.05);
          const tol = dtype === 'f64' ? { atol: 1e-13, rtol: 1e-12 } : { atol: 2e-6, rtol: 2e-6 };
          assertClose(p.data as Float32Array, ref, tol, `adamwStep ${dtype} step ${s}`);
          assertClose(m.data as Float32Array, st.m, { atol: 1e-6, rtol: 1e-5 }, `adamwStep ${dtype} m`);
          assertClose(v.data as Float32Array, st.v, { atol: 1e-6, rtol: 1e-5 }, `adamwStep ${dtype} v`);
        }
      }
    });
  });

  describe('bf16 losses', () => {
    it('crossEntropy and klDiv accept bf16 logits', () => {
      const rng = new Rng(650);
      const l = Float64Array.from(rng.randn(4 * 17, 2), roundBf16), te = Float64Array.from(rng.randn(4 * 17, 2), roundBf16);
      const targets = [3, -100, 16, 0];
      const ce = crossEntropy(t(l, [4, 17], 'bf16'), t(targets, [4], 'i32'));
      assertClose(ce.toArray(), crossEntropyRef(l, targets, 17), { atol: 1e-4, rtol: 2 ** -8 }, 'bf16 crossEntropy');
      const kl = klDiv(t(l, [4, 17], 'bf16'), t(te, [4, 17], 'bf16'), { temperature: 2 });
      assertClose(kl.toArray(), klDivRef(l, te, 4, 17, 2), { atol: 1e-4, rtol: 2 ** -7 }, 'bf16 klDiv');
    });
  });

  describe('AdamW bookkeeping', () => {
    it('several parameters; a parameter without grad is left untouched; zeroGrad clears grads', () => {
      const rng = new Rng(660);
      const a0 = roundAllF32(rng.randn(5)), b0 = roundAllF32(rng.randn(3));
      const a = t(a0, [5], 'f32', true), b = t(b0, [3], 'f32', true);
      const opt = new AdamW([a, b], { lr: 0.1 });
      const g = roundAllF32(rng.randn(5));
      a.grad = t(g, [5]);
      opt.step();
      const ref = Float64Array.from(a0);
      adamwRefStep(ref, g, adamwRefInit(5), 0.1, 0.9, 0.999, 1e-8, 0.01);
      assertClose(a.data as Float32Array, ref, { atol: 1e-6, rtol: 1e-6 }, 'param a');
      expect(Array.from(b.data as Float32Array)).toEqual(Array.from(Float32Array.from(b0)));
      opt.zeroGrad();
      expect(a.grad).toBeNull();
      expect(b.grad).toBeNull();
    });
  });

  describe('AdamW with bf16 parameters (f32 master copy)', () => {
    it('updates far below the bf16 ulp still accumulate', () => {
      const p = Tensor.ones([17], { dtype: 'bf16', requiresGrad: true });
      const opt = new AdamW([p], { lr: 1e-4, weightDecay: 0 });
      for (let s = 0; s < 100; s++) {
        p.grad = Tensor.ones([17], { dtype: 'bf16' });
        opt.step();
      }
      // each step moves ~lr = 1e-4, far below half a bf16 ulp at 1.0 (2^-9); 100 steps move 0.01
      const want = roundBf16(1 - 100 * 1e-4);
      for (const x of p.toArray()) expect(Math.abs(x - want)).toBeLessThanOrEqual(2 ** -8);
      expect(p.toArray()[0]).toBeLessThan(1);
    });

    it('loss keeps decreasing on a tiny quadratic', async () => {
      const rng = new Rng(701);
      const target = t(rng.randn(17), [17], 'bf16');
      const p = Tensor.zeros([17], { dtype: 'bf16', requiresGrad: true });
      const opt = new AdamW([p], { lr: 0.05, weightDecay: 0 });
      const losses: number[] = [];
      for (let s = 0; s < 60; s++) {
        const d = sub(p, target);
        const loss = sum(mul(d, d));
        losses.push(loss.item());
        opt.zeroGrad();
        await loss.backward();
        expect(p.grad?.dtype).toBe('bf16');
        opt.step();
      }
      expect(losses[59]!).toBeLessThan(losses[0]! * 0.05);
      for (let i = 10; i < 60; i += 10) expect(losses[i]!).toBeLessThan(losses[i - 10]!);
    });
  });
});

describe('gradcheck (f64)', () => {
  it('crossEntropy with an ignored row, every reduction', async () => {
    const rng = new Rng(801);
    const targets = t([1, -100, 3], [3], 'i32');
    for (const reduction of REDUCTIONS) {
      await expectGradcheck((l) => crossEntropy(l!, targets, { reduction }), [rng.randn(12, 2)], [[3, 4]], `crossEntropy ${reduction}`);
    }
    await expectGradcheck((l) => crossEntropy(l!, t([2, 0, -100, 1], [2, 2], 'i32')), [rng.randn(12)], [[2, 2, 3]], 'crossEntropy [B,T,V]');
  });

  it('klDiv at T=2 (student only), every reduction', async () => {
    const rng = new Rng(802);
    const teacher = t(rng.randn(12, 2), [3, 4], 'f64');
    for (const reduction of REDUCTIONS) {
      await expectGradcheck((s) => klDiv(s!, teacher, { temperature: 2, reduction }), [rng.randn(12, 2)], [[3, 4]], `klDiv ${reduction}`);
    }
  });

  it('AdamW in f64 matches the reference to rounding', () => {
    const rng = new Rng(803);
    const p0 = rng.randn(9);
    const p = t(p0, [9], 'f64', true);
    const opt = new AdamW([p], { lr: 0.1, weightDecay: 0.2, betas: [0.5, 0.6] });
    const ref = Float64Array.from(p0), st = adamwRefInit(9);
    for (let s = 0; s < 5; s++) {
      const g = rng.randn(9);
      p.grad = t(g, [9], 'f64');
      opt.step();
      adamwRefStep(ref, g, st, 0.1, 0.5, 0.6, 1e-8, 0.2);
    }
    assertClose(p.data as Float64Array, ref, { atol: 1e-14, rtol: 1e-12 }, 'AdamW f64');
  });
});
