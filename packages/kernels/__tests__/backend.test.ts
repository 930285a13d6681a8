// tsBackend held to independent float64 formulas written here (textbook loops, definitions, finite differences).
// Seeded (mulberry32) so every failure reproduces.

import { describe, expect, it } from 'vitest';
import { tsBackend as ts } from '../src/backend/ts/index.js';
import { dot, expectClose, mulberry32, numericGrad, randInt, randInts, randn } from './helpers.js';

const F64 = { rtol: 1e-12, atol: 1e-12 };

// ---- naive references ------------------------------------------------------------------------------------

/** C = alpha * op(A) op(B) + beta * C0 by the textbook triple loop; returns a fresh [M, ldc] buffer. */
function refGemm(tA: boolean, tB: boolean, M: number, N: number, K: number, alpha: number,
  A: ArrayLike<number>, lda: number, B: ArrayLike<number>, ldb: number, beta: number,
  C0: ArrayLike<number>, ldc: number): Float64Array {
  const C = Float64Array.from(C0);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const a = tA ? A[k * lda + i]! : A[i * lda + k]!;
        const b = tB ? B[j * ldb + k]! : B[k * ldb + j]!;
        s += a * b;
      }
      C[i * ldc + j] = alpha * s + (beta === 0 ? 0 : beta * C0[i * ldc + j]!);
    }
  }
  return C;
}

function sigmoid(x: number): number { return 1 / (1 + Math.exp(-x)); }

// ---- GEMM -----------------------------------------------------------------------------------------------

describe('tsBackend GEMM vs textbook triple loop (f64)', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 7, 3], [5, 1, 9], [3, 4, 1], [17, 33, 15], [16, 16, 16], [31, 2, 47], [64, 17, 65],
  ];
  for (const tA of [false, true]) for (const tB of [false, true]) {
    it(`sgemm transA=${tA} transB=${tB}: odd shapes, padded lds, beta`, () => {
      const rng = mulberry32(1000 + (tA ? 2 : 0) + (tB ? 1 : 0));
      for (const [M, N, K] of shapes) {
        for (const [alpha, beta] of [[1, 0], [0.7, 0.3], [-1.5, 1]] as const) {
          const pad = randInt(rng, 0, 4);
          const lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + randInt(rng, 0, 3), ldc = N + randInt(rng, 0, 3);
          const A = randn(rng, (tA ? K : M) * lda), B = randn(rng, (tB ? N : K) * ldb);
          const C = randn(rng, M * ldc);
          const want = refGemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
          ts.sgemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
          expectClose(C, want, F64, `sgemm ${M}x${N}x${K} a=${alpha} b=${beta}`);
        }
      }
    });
  }

  it('sgemm beta=0 ignores NaN in C; K=0 gives beta*C', () => {
    const rng = mulberry32(7);
    const A = randn(rng, 6), B = randn(rng, 6);
    const C = new Float64Array(4).fill(NaN);
    ts.sgemm(false, false, 2, 2, 3, 1, A, 3, B, 2, 0, C, 2);
    expectClose(C, refGemm(false, false, 2, 2, 3, 1, A, 3, B, 2, 0, new Float64Array(4), 2), F64, 'beta0');
    const C2 = Float64Array.of(1, 2, 3, 4);
    ts.sgemm(false, false, 2, 2, 0, 1, A, 1, B, 2, 0.5, C2, 2);
    expectClose(C2, [0.5, 1, 1.5, 2], F64, 'K=0');
  });

  it('sgemm on Float32Array stays within f32 rounding of the f64 result', () => {
    const rng = mulberry32(8);
    const [M, N, K] = [13, 29, 70];
    const A = randn(rng, M * K, Float32Array), B = randn(rng, K * N, Float32Array);
    const C = new Float32Array(M * N);
    ts.sgemm(false, true, M, N, K, 1, A, K, B, K, 0, C, N);
    expectClose(C, refGemm(false, true, M, N, K, 1, A, K, B, K, 0, new Float64Array(M * N), N),
      { rtol: 1e-6, atol: 1e-6 }, 'f32 sgemm');
  });

  it('sgemmBatched with strides, strideB = 0 broadcast', () => {
    const rng = mulberry32(9);
    for (const tA of [false, true]) for (const tB of [false, true]) for (const bcast of [false, true]) {
      const [batch, M, N, K] = [3, 5, 7, 6];
      const sA = M * K + 2, sB = bcast ? 0 : K * N + 1, sC = M * N + 3;
      const A = randn(rng, batch * sA), B = randn(rng, (bcast ? 1 : batch) * (K * N + 1)), C = randn(rng, batch * sC);
      const want = Float64Array.from(C);
      for (let b = 0; b < batch; b++) {
        const r = refGemm(tA, tB, M, N, K, 0.5, A.subarray(b * sA), tA ? M : K, B.subarray(b * sB), tB ? K : N,
          0.25, C.subarray(b * sC, b * sC + M * N), N);
        want.set(r, b * sC);
      }
      ts.sgemmBatched(batch, tA, tB, M, N, K, 0.5, A, tA ? M : K, sA, B, tB ? K : N, sB, 0.25, C, N, sC);
      expectClose(C, want, F64, `batched tA=${tA} tB=${tB} bcast=${bcast}`);
    }
  });

  it('bgemm decodes bf16 exactly and accumulates in f64', () => {
    const rng = mulberry32(10);
    for (const tA of [false, true]) for (const tB of [false, true]) {
      const [M, N, K] = [9, 18, 33];
      const af = randn(rng, M * K, Float32Array) as Float32Array, bf = randn(rng, K * N, Float32Array) as Float32Array;
      const A = new Uint16Array(M * K), B = new Uint16Array(K * N);
      ts.f32ToBf16(A.length, af, A); ts.f32ToBf16(B.length, bf, B);
      const decode = (u: Uint16Array) => new Float32Array(new Uint32Array(Array.from(u, (v) => v * 65536)).buffer);
      const C = randn(rng, M * N, Float32Array) as Float32Array;
      const want = refGemm(tA, tB, M, N, K, 2, decode(A), tA ? M : K, decode(B), tB ? K : N, 0.5, C, N);
      ts.bgemm(tA, tB, M, N, K, 2, A, tA ? M : K, B, tB ? K : N, 0.5, C, N);
      expectClose(C, want, { rtol: 1e-6, atol: 1e-6 }, 'bgemm');
    }
  });
});

describe('tsBackend grouped expert GEMM (f64)', () => {
  const cases = [
    { E: 4, sizes: [3, 0, 5, 1] }, { E: 1, sizes: [7] }, { E: 3, sizes: [0, 0, 0] }, { E: 5, sizes: [0, 4, 0, 2, 0] },
  ];
  for (const transW of [false, true]) {
    it(`groupedSgemm + wgrad transW=${transW} (empty groups, beta)`, () => {
      const rng = mulberry32(transW ? 21 : 20);
      for (const { E, sizes } of cases) for (const beta of [0, 0.5]) {
        const [N, K] = [7, 5];
        const offsets = new Int32Array(E + 1);
        for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + sizes[e]!;
        const rows = offsets[E]!;
        const X = randn(rng, rows * K), W = randn(rng, E * K * N), Y = randn(rng, rows * N);
        const w = (e: number, k: number, n: number) => (transW ? W[(e * N + n) * K + k]! : W[(e * K + k) * N + n]!);
        const wantY = new Float64Array(rows * N);
        for (let e = 0; e < E; e++) for (let r = offsets[e]!; r < offsets[e + 1]!; r++) for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += X[r * K + k]! * w(e, k, n);
          wantY[r * N + n] = s + beta * Y[r * N + n]!;
        }
        ts.groupedSgemm(E, offsets, transW, N, K, X, W, beta, Y);
        expectClose(Y, wantY, F64, `grouped fwd E=${E} sizes=${sizes}`);

        const dY = randn(rng, rows * N), dW = randn(rng, E * K * N);
        const wantDW = new Float64Array(E * K * N);
        for (let e = 0; e < E; e++) for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) {
          let s = 0;
          for (let r = offsets[e]!; r < offsets[e + 1]!; r++) s += X[r * K + k]! * dY[r * N + n]!;
          const idx = transW ? (e * N + n) * K + k : (e * K + k) * N + n;
          wantDW[idx] = s + beta * dW[idx]!;
        }
        ts.groupedSgemmWgrad(E, offsets, transW, N, K, X, dY, beta, dW);
        expectClose(dW, wantDW, F64, `grouped wgrad E=${E} sizes=${sizes}`);
      }
    });
  }
});

// ---- elementwise ---------------------------------------------------------------------------------------

describe('tsBackend elementwise (f64)', () => {
  it('axpby, mul, scale, addRow, mulRow, addCol, mulCol, sumAxis', () => {
    const rng = mulberry32(30);
    const n = 37, a = randn(rng, n), b = randn(rng, n), out = new Float64Array(n);
    ts.axpby(n, 0.3, a, -2, b, out);
    expectClose(out, Array.from(a, (v, i) => 0.3 * v - 2 * b[i]!), F64, 'axpby');
    ts.mul(n, a, b, out);
    expectClose(out, Array.from(a, (v, i) => v * b[i]!), F64, 'mul');
    ts.scale(n, a, 1.7, out);
    expectClose(out, Array.from(a, (v) => v * 1.7), F64, 'scale');
    const [rows, cols] = [5, 9];
    const m = randn(rng, rows * cols), r = randn(rng, cols), o = new Float64Array(rows * cols);
    ts.addRow(rows, cols, m, r, o);
    expectClose(o, Array.from(m, (v, i) => v + r[i % cols]!), F64, 'addRow');
    ts.mulRow(rows, cols, m, r, o);
    expectClose(o, Array.from(m, (v, i) => v * r[i % cols]!), F64, 'mulRow');
    const cv = randn(rng, rows);
    ts.addCol(rows, cols, m, cv, o);
    expectClose(o, Array.from(m, (v, i) => v + cv[Math.floor(i / cols)]!), F64, 'addCol');
    ts.mulCol(rows, cols, m, cv, o);
    expectClose(o, Array.from(m, (v, i) => v * cv[Math.floor(i / cols)]!), F64, 'mulCol');
    const inPlace = Float64Array.from(m);
    ts.mulCol(rows, cols, inPlace, cv, inPlace);
    expectClose(inPlace, Array.from(m, (v, i) => v * cv[Math.floor(i / cols)]!), F64, 'mulCol in place');
    for (const [outer, dim, inner] of [[1, 1, 1], [3, 5, 7], [2, 100, 1], [1, 9, 13]] as const) {
      const x = randn(rng, outer * dim * inner), s = new Float64Array(outer * inner);
      ts.sumAxis(outer, dim, inner, x, s);
      const want = new Float64Array(outer * inner);
      for (let p = 0; p < outer; p++) for (let d = 0; d < dim; d++) for (let q = 0; q < inner; q++) {
        want[p * inner + q] += x[(p * dim + d) * inner + q]!;
      }
      expectClose(s, want, F64, `sumAxis ${outer},${dim},${inner}`);
    }
  });

  it('silu / swiglu forward by definition, backward by finite differences', () => {
    const rng = mulberry32(31);
    const n = 23, x = randn(rng, n, Float64Array, 3) as Float64Array, up = randn(rng, n) as Float64Array;
    const dy = randn(rng, n), y = new Float64Array(n), dx = new Float64Array(n), dup = new Float64Array(n);
    ts.siluFwd(n, x, y);
    expectClose(y, Array.from(x, (v) => v * sigmoid(v)), F64, 'silu');
    ts.swigluFwd(n, x, up, y);
    expectClose(y, Array.from(x, (v, i) => v * sigmoid(v) * up[i]!), F64, 'swiglu');
    const siluL = () => { const t = new Float64Array(n); ts.siluFwd(n, x, t); return dot(t, dy); };
    ts.siluBwd(n, x, dy, dx);
    expectClose(dx, numericGrad(x, siluL), { rtol: 1e-7, atol: 1e-8 }, 'silu bwd');
    const swL = () => { const t = new Float64Array(n); ts.swigluFwd(n, x, up, t); return dot(t, dy); };
    ts.swigluBwd(n, x, up, dy, dx, dup);
    expectClose(dx, numericGrad(x, swL), { rtol: 1e-7, atol: 1e-8 }, 'swiglu dgate');
    expectClose(dup, numericGrad(up, swL), { rtol: 1e-7, atol: 1e-8 }, 'swiglu dup');
  });

  it('embedding fwd gathers rows, bwd scatter-adds (repeated ids accumulate, += semantics)', () => {
    const rng = mulberry32(32);
    const [vocab, dim, n] = [11, 6, 17];
    const ids = randInts(rng, n, 0, vocab), table = randn(rng, vocab * dim), out = new Float64Array(n * dim);
    ts.embeddingFwd(n, dim, ids, table, out);
    for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) expect(out[i * dim + d]).toBe(table[ids[i]! * dim + d]);
    const dout = randn(rng, n * dim), dtable = randn(rng, vocab * dim), want = Float64Array.from(dtable);
    for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) want[ids[i]! * dim + d] += dout[i * dim + d]!;
    ts.embeddingBwd(n, dim, ids, dout, dtable);
    expectClose(dtable, want, F64, 'embedding bwd');
  });
});
