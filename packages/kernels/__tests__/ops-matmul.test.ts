// mm / matmul / linear / groupedMatmul: f32 forward against the float64 reference (native when built, and
// the TS backend), f64 gradcheck, f32 backward against f64 gradients, and the bf16 GEMM.
import { describe, expect, it } from 'vitest';
import { Tensor } from '@farskip/tensor';
import { groupedMatmul, linear, matmul, mm, useBackend } from '@farskip/kernels';
import {
  Rng, assertClose, bmmRef, expectF32GradsMatchF64, expectGradcheck, gradsOf, groupedMatmulRef, linearRef, matmulRef, maxAbs, roundAllBf16,
  roundAllF32, t,
} from './reference64.js';
import { BACKENDS, forBackends } from './for-backends.js';


/** Unit-normal inputs: |C| ~ sqrt(K); f32 accumulation error stays well under 1e-5*sqrt(K). */
const gemmTol = (K: number) => ({ atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 });

const SHAPES: [number, number, number][] = [[1, 1, 1], [3, 17, 5], [17, 31, 65], [65, 3, 17], [31, 65, 1], [1, 65, 31], [33, 129, 47], [64, 32, 16], [130, 257, 97]];
const TRANS: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];

forBackends(() => {
  describe('mm forward f32', () => {
    it.each(SHAPES)('M=%i K=%i N=%i, all transpose combos', (M, K, N) => {
      const rng = new Rng(M * 1000 + K * 10 + N);
      for (const [ta, tb] of TRANS) {
        const a = roundAllF32(rng.randn(M * K)), b = roundAllF32(rng.randn(K * N));
        const y = mm(t(a, ta ? [K, M] : [M, K]), t(b, tb ? [N, K] : [K, N]), ta, tb);
        expect(y.shape).toEqual([M, N]);
        expect(y.dtype).toBe('f32');
        assertClose(y.data as Float32Array, matmulRef(a, b, M, K, N, ta, tb), gemmTol(K), `mm ${M}x${K}x${N} tA=${ta} tB=${tb}`);
      }
    });

    it('batched [3,17,31] x [3,31,5] with transposes', () => {
      const rng = new Rng(5);
      const [B, M, K, N] = [3, 17, 31, 5];
      for (const [ta, tb] of TRANS) {
        const a = roundAllF32(rng.randn(B * M * K)), b = roundAllF32(rng.randn(B * K * N));
        const y = mm(t(a, ta ? [B, K, M] : [B, M, K]), t(b, tb ? [B, N, K] : [B, K, N]), ta, tb);
        expect(y.shape).toEqual([B, M, N]);
        assertClose(y.data as Float32Array, bmmRef(a, b, B, M, K, N, ta, tb), gemmTol(K), `bmm tA=${ta} tB=${tb}`);
      }
    });
  });

  describe('matmul forward f32 (torch.matmul shapes)', () => {
    it('2-D, 3-D batched, [B,M,K]x[K,N] broadcast, [M,K]x[B,K,N], 4-D, vectors', () => {
      const rng = new Rng(11);
      const [B, M, K, N] = [2, 3, 17, 5];
      const a3 = roundAllF32(rng.randn(B * M * K)), b2 = roundAllF32(rng.randn(K * N)), b3 = roundAllF32(rng.randn(B * K * N));
      const a2 = roundAllF32(rng.randn(M * K));
      const tol = gemmTol(K);
      // [B,M,K] x [K,N]
      const y1 = matmul(t(a3, [B, M, K]), t(b2, [K, N]));
      expect(y1.shape).toEqual([B, M, N]);
      assertClose(y1.data as Float32Array, matmulRef(a3, b2, B * M, K, N), tol, 'matmul [B,M,K]x[K,N]');
      // [B,M,K] x [B,K,N]
      const y2 = matmul(t(a3, [B, M, K]), t(b3, [B, K, N]));
      assertClose(y2.data as Float32Array, bmmRef(a3, b3, B, M, K, N), tol, 'matmul batched');
      // [M,K] x [B,K,N]
      const y3 = matmul(t(a2, [M, K]), t(b3, [B, K, N]));
      expect(y3.shape).toEqual([B, M, N]);
      const ref3 = bmmRef([...a2, ...a2], b3, B, M, K, N);
      assertClose(y3.data as Float32Array, ref3, tol, 'matmul [M,K]x[B,K,N]');
      // 4-D [2,1,M,K] x [2,1,K,N]
      const y4 = matmul(t(a3, [B, 1, M, K]), t(b3, [B, 1, K, N]));
      expect(y4.shape).toEqual([B, 1, M, N]);
      assertClose(y4.data as Float32Array, bmmRef(a3, b3, B, M, K, N), tol, 'matmul 4-D');
      // vector cases
      const v = roundAllF32(rng.randn(K));
      const yv = matmul(t(a2, [M, K]), t(v, [K]));
      expect(yv.shape).toEqual([M]);
      assertClose(yv.data as Float32Array, matmulRef(a2, v, M, K, 1), tol, 'matmul [M,K]x[K]');
      const yv2 = matmul(t(v, [K]), t(b2, [K, N]));
      expect(yv2.shape).toEqual([N]);
      assertClose(yv2.data as Float32Array, matmulRef(v, b2, 1, K, N), tol, 'matmul [K]x[K,N]');
    });
  });

  describe('linear forward f32', () => {
    it.each([[1, 1, 1], [3, 17, 5], [7, 31, 65], [2, 65, 3]])('rows=%i in=%i out=%i with and without bias', (rows, inF, outF) => {
      const rng = new Rng(rows + inF * 7 + outF * 13);
      const x = roundAllF32(rng.randn(rows * inF)), w = roundAllF32(rng.randn(outF * inF)), bias = roundAllF32(rng.randn(outF));
      const y = linear(t(x, [1, rows, inF]), t(w, [outF, inF]), t(bias, [outF]));
      expect(y.shape).toEqual([1, rows, outF]);
      assertClose(y.data as Float32Array, linearRef(x, w, bias, rows, inF, outF), gemmTol(inF), 'linear+bias');
      const y2 = linear(t(x, [rows, inF]), t(w, [outF, inF]));
      assertClose(y2.data as Float32Array, linearRef(x, w, null, rows, inF, outF), gemmTol(inF), 'linear');
    });
  });

  describe('groupedMatmul forward f32', () => {
    it.each([
      [[3, 0, 14, 1], 17, 5],
      [[0, 31, 0], 31, 65],
      [[1], 3, 1],
      [[5, 9, 0, 0, 17, 2], 65, 16],
    ] as [number[], number, number][])('sizes %j K=%i N=%i, transW both ways', (sizes, K, N) => {
      const rng = new Rng(K * 31 + N);
      const E = sizes.length, rows = sizes.reduce((a, b) => a + b, 0);
      const x = roundAllF32(rng.randn(rows * K)), w = roundAllF32(rng.randn(E * K * N));
      for (const transW of [false, true]) {
        const y = groupedMatmul(t(x, [rows, K]), t(w, transW ? [E, N, K] : [E, K, N]), t(sizes, [E], 'i32'), { transW });
        expect(y.shape).toEqual([rows, N]);
        assertClose(y.data as Float32Array, groupedMatmulRef(x, w, sizes, K, N, transW), gemmTol(K), `grouped transW=${transW}`);
      }
    });
  });

  describe('f32 backward against f64 gradients', () => {
    it('mm, all four transpose combos (M=17, K=31, N=5) and batched', async () => {
      const rng = new Rng(21);
      const [M, K, N] = [17, 31, 5];
      for (const [ta, tb] of TRANS) {
        await expectF32GradsMatchF64((a, b) => mm(a!, b!, ta, tb), [rng.randn(M * K), rng.randn(K * N)],
          [ta ? [K, M] : [M, K], tb ? [N, K] : [K, N]], `mm tA=${ta} tB=${tb}`);
      }
      await expectF32GradsMatchF64((a, b) => matmul(a!, b!), [rng.randn(3 * M * K), rng.randn(K * N)], [[3, M, K], [K, N]], 'matmul [B,M,K]x[K,N]');
      await expectF32GradsMatchF64((a, b) => matmul(a!, b!), [rng.randn(2 * M * K), rng.randn(2 * K * N)], [[2, M, K], [2, K, N]], 'bmm');
    });

    it('only one operand requires grad (the other is a constant)', async () => {
      const rng = new Rng(24);
      const a = roundAllF32(rng.randn(17 * 31)), b = roundAllF32(rng.randn(31 * 5));
      for (const [ta, tb] of TRANS) {
        await expectF32GradsMatchF64((y) => mm(t(a, ta ? [31, 17] : [17, 31], y!.dtype), y!, ta, tb), [b], [tb ? [5, 31] : [31, 5]], `mm const a ${ta}/${tb}`);
        await expectF32GradsMatchF64((x) => mm(x!, t(b, tb ? [5, 31] : [31, 5], x!.dtype), ta, tb), [a], [ta ? [31, 17] : [17, 31]], `mm const b ${ta}/${tb}`);
      }
    });

    it('linear with bias', async () => {
      const rng = new Rng(22);
      await expectF32GradsMatchF64((x, w, b) => linear(x!, w!, b!), [rng.randn(2 * 3 * 17), rng.randn(65 * 17), rng.randn(65)],
        [[2, 3, 17], [65, 17], [65]], 'linear');
    });

    it('groupedMatmul incl. an empty group, transW both ways', async () => {
      const rng = new Rng(23);
      const sizes = [3, 0, 14, 1], K = 17, N = 5, rows = 18;
      for (const transW of [false, true]) {
        await expectF32GradsMatchF64((x, w) => groupedMatmul(x!, w!, t(sizes, [4], 'i32'), { transW }), [rng.randn(rows * K), rng.randn(4 * K * N)],
          [[rows, K], transW ? [4, N, K] : [4, K, N]], `grouped transW=${transW}`);
      }
    });
  });
});

describe('matmul of two 1-D vectors (torch.matmul: 0-d dot product)', () => {
  it('[K] x [K] -> [] equals the dot product', () => {
    const rng = new Rng(12);
    const a = roundAllF32(rng.randn(17)), b = roundAllF32(rng.randn(17));
    const y = matmul(t(a, [17]), t(b, [17]));
    expect(y.shape).toEqual([]);
    assertClose(y.data as Float32Array, matmulRef(a, b, 1, 17, 1), gemmTol(17), 'vector dot');
  });
});

describe('gradcheck (f64)', () => {
  it('mm, all four transpose combos', async () => {
    const rng = new Rng(31);
    const [M, K, N] = [2, 3, 4];
    for (const [ta, tb] of TRANS) {
      await expectGradcheck((a, b) => mm(a!, b!, ta, tb), [rng.randn(M * K), rng.randn(K * N)], [ta ? [K, M] : [M, K], tb ? [N, K] : [K, N]]);
    }
  });

  it('batched mm with transposes', async () => {
    const rng = new Rng(32);
    for (const [ta, tb] of TRANS) {
      await expectGradcheck((a, b) => mm(a!, b!, ta, tb), [rng.randn(12), rng.randn(12)], [ta ? [2, 3, 2] : [2, 2, 3], tb ? [2, 2, 3] : [2, 3, 2]]);
    }
  });

  it('matmul broadcasting [B,M,K]x[K,N], [M,K]x[B,K,N] and vector', async () => {
    const rng = new Rng(33);
    await expectGradcheck((a, b) => matmul(a!, b!), [rng.randn(12), rng.randn(6)], [[2, 2, 3], [3, 2]]);
    await expectGradcheck((a, b) => matmul(a!, b!), [rng.randn(6), rng.randn(12)], [[2, 3], [2, 3, 2]]);
    await expectGradcheck((a, b) => matmul(a!, b!), [rng.randn(6), rng.randn(3)], [[2, 3], [3]]);
  });

  it('linear with bias (and without)', async () => {
    const rng = new Rng(34);
    await expectGradcheck((x, w, b) => linear(x!, w!, b!), [rng.randn(12), rng.randn(12), rng.randn(4)], [[2, 2, 3], [4, 3], [4]]);
    await expectGradcheck((x, w) => linear(x!, w!), [rng.randn(8), rng.randn(12)], [[2, 4], [3, 4]]);
  });

  it('groupedMatmul with an empty group, transW both ways', async () => {
    const rng = new Rng(35);
    const sizes = [2, 0, 3];
    for (const transW of [false, true]) {
      await expectGradcheck((x, w) => groupedMatmul(x!, w!, t(sizes, [3], 'i32'), { transW }), [rng.randn(5 * 3), rng.randn(3 * 3 * 2)],
        [[5, 3], transW ? [3, 2, 3] : [3, 3, 2]]);
    }
  });
});

describe('bf16 GEMM', () => {
  for (const label of BACKENDS) {
    it(`mm bf16 x bf16 (${label}) vs f64 reference of the bf16-rounded inputs, all transposes`, () => {
      useBackend(label === 'ts' ? 'ts' : 'auto');
      try {
        const rng = new Rng(41);
        for (const [M, K, N] of [[3, 17, 5], [17, 65, 31], [1, 31, 1], [33, 64, 16]] as const) {
          for (const [ta, tb] of TRANS) {
            const a = roundAllBf16(rng.randn(M * K)), b = roundAllBf16(rng.randn(K * N));
            const y = mm(t(a, ta ? [K, M] : [M, K], 'bf16'), t(b, tb ? [N, K] : [K, N], 'bf16'), ta, tb);
            expect(y.dtype).toBe('bf16');
            expect(y.shape).toEqual([M, N]);
            // f32 accumulation then one rounding to bf16 (relative 2^-8 half-ulp .. use 2^-8)
            assertClose(y.toArray(), matmulRef(a, b, M, K, N, ta, tb), { atol: 1e-5 * Math.sqrt(K), rtol: 2 ** -8 }, `bf16 mm ${M}x${K}x${N} ${ta}/${tb}`);
          }
        }
      } finally { useBackend('auto'); }
    });
  }

  it('matmul/linear bf16 backward gives bf16 grads close to the f64 ones', async () => {
    const rng = new Rng(42);
    const x = roundAllBf16(rng.randn(3 * 17)), w = roundAllBf16(rng.randn(5 * 17));
    const g64 = await gradsOf((a, b) => linear(a!, b!), [x, w], [[3, 17], [5, 17]], 'f64');
    const gbf = await gradsOf((a, b) => linear(a!, b!), [x, w], [[3, 17], [5, 17]], 'bf16');
    g64.forEach((g, i) => assertClose(gbf[i]!, g, { atol: 2 ** -7 * maxAbs(g), rtol: 2 ** -7 }, `bf16 linear grad[${i}]`));
  });

  it('groupedMatmul bf16 forward', () => {
    const rng = new Rng(43);
    const sizes = [2, 0, 5], K = 17, N = 3;
    const x = roundAllBf16(rng.randn(7 * K)), w = roundAllBf16(rng.randn(3 * K * N));
    const y = groupedMatmul(t(x, [7, K], 'bf16'), t(w, [3, K, N], 'bf16'), t(sizes, [3], 'i32'));
    expect(y.dtype).toBe('bf16');
    assertClose(y.toArray(), groupedMatmulRef(x, w, sizes, K, N, false), { atol: 1e-5 * Math.sqrt(K), rtol: 2 ** -8 }, 'bf16 grouped');
  });
});
