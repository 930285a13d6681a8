// Row-major GEMM expressed as cuBLAS's column-major call. No data moves; only the arguments change.
//
// We want, row-major,  C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C
// with A stored [M, K] (transA 'N') or [K, M] (transA 'T') with row stride lda, B likewise [K, N] / [N, K] with
// ldb, and C [M, N] with ldc.
//
// A row-major matrix X (rows × cols, row stride ld) is, read column-major with leading dimension ld, the matrix
// Xᵀ (cols × rows). So the column-major view of C is Cᵀ, and Cᵀ = op(B)ᵀ · op(A)ᵀ. In column-major terms:
//   - the first operand is B's memory: its column-major view is Bᵀ, and op(B)ᵀ = Bᵀ when transB = 'N' and = B
//     = (Bᵀ)ᵀ when transB = 'T': the SAME transpose flag, applied to the view;
//   - the second operand is A's memory with transA, by the same argument;
//   - the column-major result is N × M (m' = N, n' = M, k' = K), leading dimensions unchanged.
// Hence  gemm_rm(tA, tB, M, N, K, A, lda, B, ldb, C, ldc) = cublasGemmEx(tB, tA, N, M, K, B, ldb, A, lda, C, ldc).
// Strided batches swap their strides with the operands.
import { CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_T, CUDA_DTYPE, type GemmDType } from './enums.js';

export type Trans = 'N' | 'T';

export interface GemmDTypes {
  a: GemmDType;
  b: GemmDType;
  c: GemmDType;
}

/** Row-major GEMM arguments. `P` is the pointer type: bigint for device memory, anything for a host reference. */
export interface RowMajorGemm<P> {
  transA: Trans;
  transB: Trans;
  M: number;
  N: number;
  K: number;
  alpha: number;
  A: P;
  lda: number;
  B: P;
  ldb: number;
  beta: number;
  C: P;
  ldc: number;
  dtypes: GemmDTypes;
  /** Strided batched: elements between consecutive matrices of each operand, and the batch count. */
  batch?: { count: number; strideA: number; strideB: number; strideC: number };
}

/** The column-major cublasGemm(StridedBatched)Ex arguments, in cuBLAS's order and enum values. */
export interface ColumnMajorGemm<P> {
  transa: number;
  transb: number;
  m: number;
  n: number;
  k: number;
  alpha: number;
  A: P;
  Atype: number;
  lda: number;
  B: P;
  Btype: number;
  ldb: number;
  beta: number;
  C: P;
  Ctype: number;
  ldc: number;
  computeType: number;
  batch?: { count: number; strideA: number; strideB: number; strideC: number };
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new RangeError(`gemm: ${what}`);
}

/** Validates the row-major arguments (throwing a message that names the bad one) and maps them to cuBLAS's. */
export function rowMajorToCublas<P>(g: RowMajorGemm<P>): ColumnMajorGemm<P> {
  for (const [name, v] of [['M', g.M], ['N', g.N], ['K', g.K]] as const) {
    check(Number.isInteger(v) && v >= 0 && v <= 0x7fffffff, `${name} = ${v}: expected a non-negative 32-bit integer`);
  }
  for (const t of [g.transA, g.transB]) check(t === 'N' || t === 'T', `transpose flag '${t}': expected 'N' or 'T'`);
  const colsA = g.transA === 'N' ? g.K : g.M;
  const colsB = g.transB === 'N' ? g.N : g.K;
  check(g.lda >= Math.max(1, colsA), `lda = ${g.lda} < ${colsA} (columns of row-major A ${g.transA === 'N' ? '[M, K]' : '[K, M]'})`);
  check(g.ldb >= Math.max(1, colsB), `ldb = ${g.ldb} < ${colsB} (columns of row-major B ${g.transB === 'N' ? '[K, N]' : '[N, K]'})`);
  check(g.ldc >= Math.max(1, g.N), `ldc = ${g.ldc} < N = ${g.N} (columns of row-major C [M, N])`);
  for (const [k, d] of Object.entries(g.dtypes)) check(d in CUDA_DTYPE, `dtype ${k} = '${d}': expected bf16, f16 or f32`);
  if (g.batch) check(Number.isInteger(g.batch.count) && g.batch.count >= 1, `batch count ${g.batch.count}: expected >= 1`);
  const op = (t: Trans): number => (t === 'N' ? CUBLAS_OP_N : CUBLAS_OP_T);
  return {
    transa: op(g.transB), transb: op(g.transA),
    m: g.N, n: g.M, k: g.K,
    alpha: g.alpha,
    A: g.B, Atype: CUDA_DTYPE[g.dtypes.b], lda: g.ldb,
    B: g.A, Btype: CUDA_DTYPE[g.dtypes.a], ldb: g.lda,
    beta: g.beta,
    C: g.C, Ctype: CUDA_DTYPE[g.dtypes.c], ldc: g.ldc,
    computeType: CUBLAS_COMPUTE_32F,
    ...(g.batch ? { batch: { count: g.batch.count, strideA: g.batch.strideB, strideB: g.batch.strideA, strideC: g.batch.strideC } } : {}),
  };
}
