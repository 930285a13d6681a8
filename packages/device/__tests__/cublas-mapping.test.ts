// The row-major -> cuBLAS column-major argument mapping, checked without a GPU: a float64 host implementation of
// exactly what cuBLAS's column-major GEMM computes from its arguments (BLAS semantics: op(A) is m x k, element
// (i, j) of a column-major matrix with leading dimension ld lives at i + j * ld) runs on the MAPPED arguments over
// the same host arrays, and must equal a row-major reference computed directly from the row-major definition.
import { describe, expect, it } from 'vitest';
import { rowMajorToCublas, type RowMajorGemm, type Trans } from '../src/cublas/mapping.js';
import { CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_T, CUDA_R_16BF, CUDA_R_32F } from '../src/cublas/enums.js';

type Host = { data: Float64Array; offset: number };

/** cublasGemmEx / cublasGemmStridedBatchedEx semantics on host float64 arrays. */
function columnMajorGemm(g: ReturnType<typeof rowMajorToCublas<Host>>): void {
  const count = g.batch?.count ?? 1;
  for (let b = 0; b < count; b++) {
    const oa = g.A.offset + b * (g.batch?.strideA ?? 0), ob = g.B.offset + b * (g.batch?.strideB ?? 0), oc = g.C.offset + b * (g.batch?.strideC ?? 0);
    const a = (i: number, p: number): number => (g.transa === CUBLAS_OP_N ? g.A.data[oa + i + p * g.lda]! : g.A.data[oa + p + i * g.lda]!);
    const bm = (p: number, j: number): number => (g.transb === CUBLAS_OP_N ? g.B.data[ob + p + j * g.ldb]! : g.B.data[ob + j + p * g.ldb]!);
    for (let j = 0; j < g.n; j++) {
      for (let i = 0; i < g.m; i++) {
        let s = 0;
        for (let p = 0; p < g.k; p++) s += a(i, p) * bm(p, j);
        const at = oc + i + j * g.ldc;
        g.C.data[at] = g.alpha * s + g.beta * g.C.data[at]!;
      }
    }
  }
}

/** The row-major definition, straight from the shapes: op(A)[i][p] = A[i][p] ('N') or A[p][i] ('T'). */
function rowMajorReference(g: RowMajorGemm<Host>): Float64Array {
  const out = g.C.data.slice();
  const count = g.batch?.count ?? 1;
  for (let b = 0; b < count; b++) {
    const oa = g.A.offset + b * (g.batch?.strideA ?? 0), ob = g.B.offset + b * (g.batch?.strideB ?? 0), oc = g.C.offset + b * (g.batch?.strideC ?? 0);
    for (let i = 0; i < g.M; i++) {
      for (let j = 0; j < g.N; j++) {
        let s = 0;
        for (let p = 0; p < g.K; p++) {
          const a = g.transA === 'N' ? g.A.data[oa + i * g.lda + p]! : g.A.data[oa + p * g.lda + i]!;
          const bv = g.transB === 'N' ? g.B.data[ob + p * g.ldb + j]! : g.B.data[ob + j * g.ldb + p]!;
          s += a * bv;
        }
        out[oc + i * g.ldc + j] = g.alpha * s + g.beta * out[oc + i * g.ldc + j]!;
      }
    }
  }
  return out;
}

let seed = 12345;
const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 - 0.5; };
const filled = (n: number): Float64Array => Float64Array.from({ length: n }, rand);

function problem(tA: Trans, tB: Trans, M: number, N: number, K: number, pad: number, batch = 0): RowMajorGemm<Host> {
  const rowsA = tA === 'N' ? M : K, colsA = tA === 'N' ? K : M;
  const rowsB = tB === 'N' ? K : N, colsB = tB === 'N' ? N : K;
  const lda = colsA + pad, ldb = colsB + pad, ldc = N + pad;
  const count = Math.max(1, batch);
  const strideA = rowsA * lda + 3, strideB = rowsB * ldb + 5, strideC = M * ldc + 7;
  return {
    transA: tA, transB: tB, M, N, K, alpha: 1.25, beta: -0.5,
    A: { data: filled(2 + count * strideA), offset: 2 }, lda,
    B: { data: filled(1 + count * strideB), offset: 1 }, ldb,
    C: { data: filled(3 + count * strideC), offset: 3 }, ldc,
    dtypes: { a: 'bf16', b: 'bf16', c: 'f32' },
    ...(batch ? { batch: { count, strideA, strideB, strideC } } : {}),
  };
}

describe('row-major gemm -> cuBLAS column-major arguments', () => {
  for (const tA of ['N', 'T'] as const) {
    for (const tB of ['N', 'T'] as const) {
      it(`transA=${tA} transB=${tB}: the column-major GEMM of the mapped arguments equals the row-major product`, () => {
        for (const [M, N, K, pad] of [[3, 5, 4, 0], [7, 2, 9, 3], [1, 6, 1, 1], [4, 4, 4, 2]] as const) {
          const g = problem(tA, tB, M, N, K, pad);
          const expected = rowMajorReference(g);
          const cm = rowMajorToCublas(g);
          columnMajorGemm(cm);
          expect(Math.max(...g.C.data.map((v, i) => Math.abs(v - expected[i]!)))).toBeLessThan(1e-12);
        }
      });
    }
  }

  it('strided batched: strides follow their operands through the swap', () => {
    for (const [tA, tB] of [['N', 'T'], ['T', 'N']] as const) {
      const g = problem(tA, tB, 3, 4, 5, 1, 3);
      const expected = rowMajorReference(g);
      columnMajorGemm(rowMajorToCublas(g));
      expect(Math.max(...g.C.data.map((v, i) => Math.abs(v - expected[i]!)))).toBeLessThan(1e-12);
    }
  });

  it('swaps operands, transposes, dimensions and dtypes; computes in f32', () => {
    const cm = rowMajorToCublas({ transA: 'T', transB: 'N', M: 2, N: 3, K: 4, alpha: 1, A: 'a', lda: 2, B: 'b', ldb: 3, beta: 0, C: 'c', ldc: 3, dtypes: { a: 'bf16', b: 'f32', c: 'bf16' } });
    expect(cm).toMatchObject({ transa: CUBLAS_OP_N, transb: CUBLAS_OP_T, m: 3, n: 2, k: 4, A: 'b', lda: 3, Atype: CUDA_R_32F, B: 'a', ldb: 2, Btype: CUDA_R_16BF, C: 'c', ldc: 3, Ctype: CUDA_R_16BF, computeType: CUBLAS_COMPUTE_32F });
    expect([CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_T]).toEqual([14, 0, 68, 0, 1]);
  });

  it('rejects leading dimensions smaller than the row-major column count, naming the argument', () => {
    const base = { transA: 'N' as const, transB: 'N' as const, M: 2, N: 3, K: 4, alpha: 1, A: 0n, B: 0n, C: 0n, beta: 0, dtypes: { a: 'bf16' as const, b: 'bf16' as const, c: 'f32' as const } };
    expect(() => rowMajorToCublas({ ...base, lda: 3, ldb: 3, ldc: 3 })).toThrow(/lda = 3 < 4 \(columns of row-major A \[M, K\]\)/);
    expect(() => rowMajorToCublas({ ...base, lda: 4, ldb: 2, ldc: 3 })).toThrow(/ldb = 2 < 3/);
    expect(() => rowMajorToCublas({ ...base, lda: 4, ldb: 3, ldc: 2 })).toThrow(/ldc = 2 < N = 3/);
    expect(() => rowMajorToCublas({ ...base, transA: 'C' as never, lda: 4, ldb: 3, ldc: 3 })).toThrow(/transpose flag 'C'/);
  });
});
