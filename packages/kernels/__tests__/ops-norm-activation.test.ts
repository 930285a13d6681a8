// rmsNorm, softmax / logSoftmax (last and middle dim), silu, swiglu, topk, embedding: f32 forward against the
// float64 reference on both backends, f64 gradcheck, f32 backward against f64 gradients, bf16 rmsNorm.
import { describe, expect, it } from 'vitest';
import { embedding, logSoftmax, rmsNorm, silu, softmax, swiglu, topk, useBackend } from '@farskip/kernels';
import {
  Rng, assertClose, embeddingRef, expectF32GradsMatchF64, expectGradcheck, gradsOf, maxAbs, prod, rmsNormRef, roundAllBf16, roundAllF32,
  siluRef, softmaxRef, swigluRef, t, topkRef,
} from './reference64.js';
import { BACKENDS, forBackends } from './for-backends.js';


const TOL = { atol: 1e-6, rtol: 1e-5 };

forBackends(() => {
  describe('rmsNorm forward f32', () => {
    it.each([[[1, 1]], [[3, 17]], [[2, 5, 31]], [[4, 65]], [[1, 128]], [[7, 3]]])('x %j, default and custom eps', (shape) => {
      const rng = new Rng(prod(shape) + 3);
      const cols = shape[shape.length - 1]!, rows = prod(shape) / cols;
      const x = roundAllF32(rng.randn(prod(shape), 2)), w = roundAllF32(rng.randn(cols));
      const y = rmsNorm(t(x, shape), t(w, [cols]));
      expect(y.shape).toEqual(shape);
      assertClose(y.data as Float32Array, rmsNormRef(x, w, rows, cols, 1e-6), TOL, 'rmsNorm eps=1e-6');
      const y2 = rmsNorm(t(x, shape), t(w, [cols]), 0.5);
      assertClose(y2.data as Float32Array, rmsNormRef(x, w, rows, cols, 0.5), TOL, 'rmsNorm eps=0.5');
    });
  });

  describe('softmax / logSoftmax forward f32', () => {
    it.each([
      [[1, 1], -1], [[3, 17], -1], [[65], 0], [[2, 31, 5], 1], [[4, 3, 33], -1], [[5, 7, 3], 0], [[2, 129], 1],
    ] as [number[], number][])('x %j dim %i (also with logits scaled x30)', (shape, dim) => {
      const rng = new Rng(prod(shape) * 3 + dim);
      for (const mag of [1, 30]) {
        const x = roundAllF32(rng.randn(prod(shape), mag));
        const y = softmax(t(x, shape), dim);
        expect(y.shape).toEqual(shape);
        assertClose(y.data as Float32Array, softmaxRef(x, shape, dim), TOL, `softmax mag ${mag}`);
        const ly = logSoftmax(t(x, shape), dim);
        assertClose(ly.data as Float32Array, softmaxRef(x, shape, dim, true), { atol: 1e-5, rtol: 1e-5 }, `logSoftmax mag ${mag}`);
      }
    });
  });

  describe('silu / swiglu forward f32', () => {
    it.each([[1], [3], [17], [31], [65], [1000]])('n=%i (values in [-30, 30])', (n) => {
      const rng = new Rng(n);
      const g = roundAllF32(Float64Array.from({ length: n }, () => (rng.uniform() * 2 - 1) * (rng.uniform() < 0.2 ? 30 : 4)));
      const u = roundAllF32(rng.randn(n));
      const y = silu(t(g, [n]));
      assertClose(y.data as Float32Array, siluRef(g), TOL, 'silu');
      const s = swiglu(t(g, [1, n]), t(u, [1, n]));
      expect(s.shape).toEqual([1, n]);
      assertClose(s.data as Float32Array, swigluRef(g, u), TOL, 'swiglu');
    });
  });

  describe('topk forward f32', () => {
    it.each([[1, 1, 1], [3, 17, 4], [2, 65, 8], [5, 31, 31], [1, 3, 0], [4, 16, 2]])('rows=%i n=%i k=%i', (rows, n, k) => {
      const rng = new Rng(rows * 100 + n + k);
      const x = roundAllF32(rng.randn(rows * n));
      const r = topk(t(x, [rows, n]), k);
      const ref = topkRef(x, rows, n, k);
      expect(r.values.shape).toEqual([rows, k]);
      expect(r.indices.dtype).toBe('i32');
      expect(Array.from(r.indices.data as Int32Array)).toEqual(ref.indices);
      assertClose(r.values.data as Float32Array, ref.values, { atol: 0, rtol: 0 }, 'topk values');
    });

    it('ties keep the lower index first; works on [B, T, n]', () => {
      const x = [1, 3, 3, 0, 3, 2, 2, 2, -1, 5, 5, 5, 0, 0, 1, 1];
      const r = topk(t(x, [2, 2, 4]), 3);
      const ref = topkRef(x, 4, 4, 3);
      expect(r.values.shape).toEqual([2, 2, 3]);
      expect(Array.from(r.indices.data as Int32Array)).toEqual(ref.indices);
      expect(Array.from(r.indices.data as Int32Array)).toEqual([1, 2, 0, 0, 1, 2, 1, 2, 3, 2, 3, 0]);
      assertClose(r.values.data as Float32Array, ref.values, { atol: 0, rtol: 0 }, 'topk tie values');
    });
  });

  describe('embedding forward f32', () => {
    it.each([[1, 1, 1], [7, 5, 6], [65, 17, 31], [3, 64, 9]])('vocab=%i dim=%i tokens=%i (repeated ids)', (V, D, n) => {
      const rng = new Rng(V * D + n);
      const table = roundAllF32(rng.randn(V * D));
      const ids = rng.ints(n, 0, V);
      if (n > 2) ids[n - 1] = ids[0]!;
      const y = embedding(t(ids, [1, n], 'i32'), t(table, [V, D]));
      expect(y.shape).toEqual([1, n, D]);
      assertClose(y.data as Float32Array, embeddingRef(ids, table, D), { atol: 0, rtol: 0 }, 'embedding');
    });
  });

  describe('f32 backward against f64 gradients', () => {
    it('rmsNorm (x and weight)', async () => {
      const rng = new Rng(81);
      await expectF32GradsMatchF64((x, w) => rmsNorm(x!, w!), [rng.randn(3 * 65), rng.randn(65)], [[3, 65], [65]], 'rmsNorm');
      await expectF32GradsMatchF64((x, w) => rmsNorm(x!, w!, 1e-5), [rng.randn(2 * 5 * 17), rng.randn(17)], [[2, 5, 17], [17]], 'rmsNorm 3-D');
    });

    it('softmax / logSoftmax last and middle dim', async () => {
      const rng = new Rng(82);
      const x = rng.randn(3 * 17 * 5, 3);
      await expectF32GradsMatchF64((a) => softmax(a!), [x], [[3, 17, 5]], 'softmax -1');
      await expectF32GradsMatchF64((a) => softmax(a!, 1), [x], [[3, 17, 5]], 'softmax 1');
      await expectF32GradsMatchF64((a) => logSoftmax(a!), [x], [[15, 17]], 'logSoftmax -1');
      await expectF32GradsMatchF64((a) => logSoftmax(a!, 1), [x], [[3, 17, 5]], 'logSoftmax 1');
    });

    it('rmsNorm with a constant weight; swiglu with a constant up', async () => {
      const rng = new Rng(84);
      const w = roundAllF32(rng.randn(31)), u = roundAllF32(rng.randn(2 * 31));
      await expectF32GradsMatchF64((x) => rmsNorm(x!, t(w, [31], x!.dtype)), [rng.randn(2 * 31)], [[2, 31]], 'rmsNorm const w');
      await expectF32GradsMatchF64((g) => swiglu(g!, t(u, [2, 31], g!.dtype)), [rng.randn(2 * 31)], [[2, 31]], 'swiglu const up');
    });

    it('silu / swiglu / topk / embedding', async () => {
      const rng = new Rng(83);
      await expectF32GradsMatchF64((a) => silu(a!), [rng.randn(65, 4)], [[65]], 'silu');
      await expectF32GradsMatchF64((a, b) => swiglu(a!, b!), [rng.randn(3 * 31, 4), rng.randn(3 * 31)], [[3, 31], [3, 31]], 'swiglu');
      await expectF32GradsMatchF64((a) => topk(a!, 5).values, [rng.randn(3 * 17)], [[3, 17]], 'topk');
      const ids = t([1, 4, 1, 0, 6, 1, 4], [7], 'i32');
      await expectF32GradsMatchF64((tab) => embedding(ids, tab!), [rng.randn(7 * 17)], [[7, 17]], 'embedding');
    });
  });
});

describe('gradcheck (f64)', () => {
  it('rmsNorm in x and weight', async () => {
    const rng = new Rng(91);
    await expectGradcheck((x, w) => rmsNorm(x!, w!), [rng.randn(10), rng.randn(5)], [[2, 5], [5]], 'rmsNorm 2-D');
    await expectGradcheck((x, w) => rmsNorm(x!, w!, 0.1), [rng.randn(24), rng.randn(4)], [[2, 3, 4], [4]], 'rmsNorm 3-D eps 0.1');
  });

  it('softmax / logSoftmax over the last and a middle dim', async () => {
    const rng = new Rng(92);
    const x = rng.randn(24);
    for (const dim of [-1, 1, 0]) {
      await expectGradcheck((a) => softmax(a!, dim), [x], [[2, 3, 4]], `softmax ${dim}`);
      await expectGradcheck((a) => logSoftmax(a!, dim), [x], [[2, 3, 4]], `logSoftmax ${dim}`);
    }
  });

  it('silu, swiglu', async () => {
    const rng = new Rng(93);
    await expectGradcheck((a) => silu(a!), [rng.randn(12, 3)], [[3, 4]], 'silu');
    await expectGradcheck((a, b) => swiglu(a!, b!), [rng.randn(12, 3), rng.randn(12)], [[3, 4], [3, 4]], 'swiglu');
  });

  it('topk values', async () => {
    const rng = new Rng(94);
    await expectGradcheck((a) => topk(a!, 3).values, [rng.randn(12)], [[2, 6]], 'topk');
    await expectGradcheck((a) => topk(a!, 1).values, [rng.randn(5)], [[5]], 'topk k=1');
  });

  it('embedding with repeated ids (gradient accumulates per row)', async () => {
    const rng = new Rng(95);
    const ids = t([2, 0, 2, 2, 4, 0], [2, 3], 'i32');
    await expectGradcheck((tab) => embedding(ids, tab!), [rng.randn(15)], [[5, 3]], 'embedding');
    // explicit: d table[v] = sum of the output grads of the positions holding v
    const [g] = await gradsOf((tab) => embedding(ids, tab!), [rng.randn(15)], [[5, 3]], 'f64', 7);
    const r = new Rng(7).randn(18);
    const want = new Float64Array(15);
    [2, 0, 2, 2, 4, 0].forEach((id, i) => { for (let c = 0; c < 3; c++) want[id * 3 + c] += r[i * 3 + c]!; });
    assertClose(g!, want, { atol: 1e-12, rtol: 0 }, 'embedding grad by definition');
  });
});

describe('bf16', () => {
  for (const label of BACKENDS) {
    it(`rmsNorm bf16 (${label}) vs f64 of the rounded inputs`, () => {
      useBackend(label === 'ts' ? 'ts' : 'auto');
      try {
        const rng = new Rng(101);
        for (const [rows, cols] of [[3, 17], [4, 65], [1, 1], [2, 128]]) {
          const x = roundAllBf16(rng.randn(rows * cols, 2)), w = roundAllBf16(rng.randn(cols));
          const y = rmsNorm(t(x, [rows, cols], 'bf16'), t(w, [cols], 'bf16'));
          expect(y.dtype).toBe('bf16');
          assertClose(y.toArray(), rmsNormRef(x, w, rows, cols), { atol: 1e-6, rtol: 2 ** -8 }, `bf16 rmsNorm ${rows}x${cols}`);
        }
      } finally { useBackend('auto'); }
    });
  }

  it('topk and embedding bf16', () => {
    const rng = new Rng(103);
    const x = roundAllBf16(rng.randn(3 * 17));
    const r = topk(t(x, [3, 17], 'bf16'), 4);
    const ref = topkRef(x, 3, 17, 4);
    expect(r.values.dtype).toBe('bf16');
    expect(r.indices.dtype).toBe('i32');
    expect(Array.from(r.indices.data as Int32Array)).toEqual(ref.indices);
    assertClose(r.values.toArray(), ref.values, { atol: 0, rtol: 0 }, 'bf16 topk');
    const ids = [3, 0, 16, 3];
    const e = embedding(t(ids, [4], 'i32'), t(x, [17, 3], 'bf16'));
    expect(e.dtype).toBe('bf16');
    assertClose(e.toArray(), embeddingRef(ids, x, 3), { atol: 0, rtol: 0 }, 'bf16 embedding');
  });

  it('rmsNorm bf16 backward close to f64 grads; softmax/silu bf16 forward', async () => {
    const rng = new Rng(102);
    const x = roundAllBf16(rng.randn(3 * 17)), w = roundAllBf16(rng.randn(17));
    const g64 = await gradsOf((a, b) => rmsNorm(a!, b!), [x, w], [[3, 17], [17]], 'f64');
    const gbf = await gradsOf((a, b) => rmsNorm(a!, b!), [x, w], [[3, 17], [17]], 'bf16');
    g64.forEach((g, i) => assertClose(gbf[i]!, g, { atol: 2 ** -6 * maxAbs(g), rtol: 2 ** -6 }, `bf16 rmsNorm grad[${i}]`));
    const s = softmax(t(x, [3, 17], 'bf16'));
    expect(s.dtype).toBe('bf16');
    assertClose(s.toArray(), softmaxRef(x, [3, 17]), { atol: 1e-6, rtol: 2 ** -8 }, 'bf16 softmax');
    assertClose(silu(t(x, [3, 17], 'bf16')).toArray(), siluRef(x), { atol: 1e-6, rtol: 2 ** -8 }, 'bf16 silu');
  });
});
