// GEMM family, plain TypeScript reference (llm.c CPU-reference style).
//
//   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C
//   transA: A is stored [K,M] (row stride lda >= M), else [M,K] (lda >= K)
//   transB: B is stored [N,K] (row stride ldb >= K), else [K,N] (ldb >= N)
//   beta == 0: C is not read (may hold NaN).
//
// All accumulation happens in float64 (JS numbers / Float64Array scratch), whatever the storage type.

import type { FloatArray } from '../types.js';

/** Anything indexable by number that yields a number (Float32Array, Float64Array, ...). */
type Num = { readonly [i: number]: number; readonly length: number };

/**
 * Core GEMM on arbitrary numeric arrays with element offsets (aOff/bOff/cOff) so batched and grouped
 * variants need no subarray views. For each output row i:
 *   aRow[K]  = row i of op(A) (gathered once, contiguous, f64)
 *   transB=0: acc[N] += aRow[k] * B[k, :]   (i-k-j order, B rows are contiguous)
 *   transB=1: acc[j]  = dot(aRow, B[j, :])  (i-j-k order, B rows are contiguous along k)
 */
export function gemmCore(
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: Num, aOff: number, lda: number, B: Num, bOff: number, ldb: number,
  beta: number, C: FloatArray, cOff: number, ldc: number,
  aRow: Float64Array, acc: Float64Array,
): void {
  for (let i = 0; i < M; i++) {
    // gather row i of op(A): [K]
    if (transA) {
      for (let k = 0, p = aOff + i; k < K; k++, p += lda) aRow[k] = A[p]!;
    } else {
      const aBase = aOff + i * lda;
      for (let k = 0; k < K; k++) aRow[k] = A[aBase + k]!;
    }
    if (transB) {
      let j = 0;
      // four dot products per sweep over aRow
      for (; j + 3 < N; j += 4) {
        const b0 = bOff + j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let k = 0; k < K; k++) {
          const a = aRow[k]!;
          s0 += a * B[b0 + k]!; s1 += a * B[b1 + k]!; s2 += a * B[b2 + k]!; s3 += a * B[b3 + k]!;
        }
        acc[j] = s0; acc[j + 1] = s1; acc[j + 2] = s2; acc[j + 3] = s3;
      }
      for (; j < N; j++) {
        const bBase = bOff + j * ldb;
        let s = 0;
        for (let k = 0; k < K; k++) s += aRow[k]! * B[bBase + k]!;
        acc[j] = s;
      }
    } else {
      acc.fill(0, 0, N);
      let k = 0;
      // four rows of B per sweep over acc: a quarter of the acc loads/stores
      for (; k + 3 < K; k += 4) {
        const a0 = aRow[k]!, a1 = aRow[k + 1]!, a2 = aRow[k + 2]!, a3 = aRow[k + 3]!;
        const b0 = bOff + k * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
        for (let j = 0; j < N; j++) {
          acc[j] += a0 * B[b0 + j]! + a1 * B[b1 + j]! + a2 * B[b2 + j]! + a3 * B[b3 + j]!;
        }
      }
      for (; k < K; k++) {
        const a = aRow[k]!;
        const bBase = bOff + k * ldb;
        for (let j = 0; j < N; j++) acc[j] += a * B[bBase + j]!;
      }
    }
    const cBase = cOff + i * ldc;
    if (beta === 0) {
      for (let j = 0; j < N; j++) C[cBase + j] = alpha * acc[j]!;
    } else {
      for (let j = 0; j < N; j++) C[cBase + j] = alpha * acc[j]! + beta * C[cBase + j]!;
    }
  }
}

export function sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: FloatArray, lda: number, B: FloatArray, ldb: number, beta: number, C: FloatArray, ldc: number): void {
  if (M <= 0 || N <= 0) return;
  gemmCore(transA, transB, M, N, K, alpha, A, 0, lda, B, 0, ldb, beta, C, 0, ldc,
    new Float64Array(K), new Float64Array(N));
}

/** batch independent GEMMs; A/B/C matrix b starts at b*strideA / b*strideB / b*strideC (strideB = 0 broadcasts B). */
export function sgemmBatched(batch: number, transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: FloatArray, lda: number, strideA: number, B: FloatArray, ldb: number, strideB: number,
  beta: number, C: FloatArray, ldc: number, strideC: number): void {
  if (M <= 0 || N <= 0) return;
  const aRow = new Float64Array(K), acc = new Float64Array(N);
  for (let b = 0; b < batch; b++) {
    gemmCore(transA, transB, M, N, K, alpha, A, b * strideA, lda, B, b * strideB, ldb, beta, C, b * strideC, ldc,
      aRow, acc);
  }
}

/** Decode raw bf16 patterns into f32 values (bits << 16), exact. */
function decodeBf16(x: Uint16Array): Float32Array {
  const u32 = new Uint32Array(x.length);
  for (let i = 0; i < x.length; i++) u32[i] = x[i]! << 16;
  return new Float32Array(u32.buffer);
}

/** bf16 GEMM: A, B raw bf16 patterns (same layouts as sgemm); decoded exactly, accumulated in f64, f32 output. */
export function bgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: Uint16Array, lda: number, B: Uint16Array, ldb: number, beta: number, C: Float32Array, ldc: number): void {
  if (M <= 0 || N <= 0) return;
  gemmCore(transA, transB, M, N, K, alpha, decodeBf16(A), 0, lda, decodeBf16(B), 0, ldb, beta, C, 0, ldc,
    new Float64Array(K), new Float64Array(N));
}

/**
 * Grouped expert GEMM (forward). X [rows,K] grouped by expert: group e = rows [offsets[e], offsets[e+1]).
 * W [E, K, N] (transW=0) or [E, N, K] (transW=1, nn.Linear layout). Y [rows,N]:
 *   Y[group e] = X[group e] @ op(W_e) (+ beta * Y)
 */
export function groupedSgemm(E: number, offsets: Int32Array, transW: boolean, N: number, K: number,
  X: FloatArray, W: FloatArray, beta: number, Y: FloatArray): void {
  const aRow = new Float64Array(K), acc = new Float64Array(N);
  for (let e = 0; e < E; e++) {
    const r0 = offsets[e]!, m = offsets[e + 1]! - r0;
    if (m <= 0) continue;
    gemmCore(false, transW, m, N, K, 1, X, r0 * K, K, W, e * K * N, transW ? K : N, beta, Y, r0 * N, N, aRow, acc);
  }
}

/**
 * Grouped expert GEMM (weight gradient). X [rows,K], dY [rows,N]; dW [E,K,N] (transW=0) or [E,N,K] (transW=1):
 *   transW=0: dW_e[K,N] = X_e^T @ dY_e (+ beta * dW_e)
 *   transW=1: dW_e[N,K] = dY_e^T @ X_e (+ beta * dW_e)
 * An empty group still writes dW_e = beta * dW_e (zeros for beta = 0).
 */
export function groupedSgemmWgrad(E: number, offsets: Int32Array, transW: boolean, N: number, K: number,
  X: FloatArray, dY: FloatArray, beta: number, dW: FloatArray): void {
  let maxM = 0; // largest group: the reduction length of the per-expert GEMM
  for (let e = 0; e < E; e++) maxM = Math.max(maxM, offsets[e + 1]! - offsets[e]!);
  const aRow = new Float64Array(maxM), acc = new Float64Array(Math.max(N, K));
  for (let e = 0; e < E; e++) {
    const r0 = offsets[e]!, m = Math.max(0, offsets[e + 1]! - r0);
    if (!transW) {
      // dW_e [K,N] = (X_e [m,K])^T @ dY_e [m,N]
      gemmCore(true, false, K, N, m, 1, X, r0 * K, K, dY, r0 * N, N, beta, dW, e * K * N, N, aRow, acc);
    } else {
      // dW_e [N,K] = (dY_e [m,N])^T @ X_e [m,K]
      gemmCore(true, false, N, K, m, 1, dY, r0 * N, N, X, r0 * K, K, beta, dW, e * K * N, K, aRow, acc);
    }
  }
}
