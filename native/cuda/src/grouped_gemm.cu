// grouped_gemm.cu: grouped (segmented) expert GEMM, the fallback for cuBLAS (whose grouped GEMM needs one call or
// one pointer array per expert). Semantics: groupedSgemm / groupedSgemmWgrad in
// packages/kernels/src/backend/ts/gemm.ts.
//
// Rows of X are grouped by expert: group e = rows [offsets[e], offsets[e+1]) (offsets: E+1 int32, on device).
// W [E, K, N] (transW = 0) or [E, N, K] (transW = 1, nn.Linear layout).
//   fs_grouped_gemm_*:        Y[group e] = X[group e] [m_e, K] @ op(W_e) [K, N] (+ beta * Y);   X [rows, K], Y [rows, N]
//   fs_grouped_gemm_wgrad_*:  transW = 0: dW_e [K, N] = X_e^T @ dY_e (+ beta * dW_e)
//                             transW = 1: dW_e [N, K] = dY_e^T @ X_e (+ beta * dW_e)
//                             an empty group still writes dW_e = beta * dW_e (zeros for beta = 0)
// beta == 0 overwrites without reading the output (NaN in it is not propagated). Input gradient dX = dY @ op(W_e)^T
// is fs_grouped_gemm with the other transW and N, K swapped. All tensors f32 or all bf16 (f32 accumulation).
// Tiles 64 x 64 x 16, 256 threads, 4 x 4 outputs per thread; not tuned (a cuBLAS / CUTLASS path should win).
// Launch:
//   fs_grouped_gemm_*:        grid [cdiv(N, 64), cdiv(totalRows, 64) + E], block [256], sharedBytes 0;
//                             totalRows = offsets[E] (an upper bound is fine: surplus blocks exit). Block y picks
//                             the y-th 64-row tile in expert order (each expert's rows start a new tile).
//   fs_grouped_gemm_wgrad_*:  grid [cdiv(cols, 64), cdiv(rowsOut, 64), E] with rowsOut x cols = K x N (transW = 0)
//                             or N x K (transW = 1), block [256], sharedBytes 0.
#include "fs_cuda.cuh"

#define FS_GG_TILE 64
#define FS_GG_BK 16

// acc[i][j] += sum_kk As[kk][ty*4+i] * Bs[kk][tx*4+j]
__device__ __forceinline__ void fs_gg_mma(const float (*As)[FS_GG_TILE + 4], const float (*Bs)[FS_GG_TILE + 4],
                                          float acc[4][4], int ty, int tx) {
#pragma unroll
  for (int kk = 0; kk < FS_GG_BK; kk++) {
    float a[4], b[4];
#pragma unroll
    for (int u = 0; u < 4; u++) { a[u] = As[kk][ty * 4 + u]; b[u] = Bs[kk][tx * 4 + u]; }
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
      for (int v = 0; v < 4; v++) acc[u][v] += a[u] * b[v];
  }
}

// C [rowsC, colsC] (ld ldc) tile at (r0, c0): C = acc + beta * C, rows < rEnd, cols < colsC
template <typename T>
__device__ void fs_gg_store(T *C, long long ldc, int r0, int rEnd, int c0, int colsC, float beta, float acc[4][4],
                            int ty, int tx) {
#pragma unroll
  for (int u = 0; u < 4; u++) {
    const int r = r0 + ty * 4 + u;
    if (r >= rEnd) continue;
#pragma unroll
    for (int v = 0; v < 4; v++) {
      const int c = c0 + tx * 4 + v;
      if (c >= colsC) continue;
      T *p = C + (long long)r * ldc + c;
      fs_st(p, beta != 0.f ? acc[u][v] + beta * fs_ld(p) : acc[u][v]);
    }
  }
}

template <typename T>
__device__ void grouped_gemm_impl(int E, const int *offsets, int transW, int N, int K, const T *X, const T *W,
                                  float beta, T *Y) {
  __shared__ float As[FS_GG_BK][FS_GG_TILE + 4];  // As[k][row]
  __shared__ float Bs[FS_GG_BK][FS_GG_TILE + 4];  // Bs[k][col]
  // find this block's (expert, row tile)
  int t = blockIdx.y, e = 0, rBeg = 0, rEnd = 0;
  for (; e < E; e++) {
    const int g0 = offsets[e], m = offsets[e + 1] - g0;
    const int tiles = m > 0 ? (m + FS_GG_TILE - 1) / FS_GG_TILE : 0;
    if (t < tiles) { rBeg = g0 + t * FS_GG_TILE; rEnd = g0 + m; break; }
    t -= tiles;
  }
  if (e >= E) return;  // uniform: surplus block
  const int c0 = blockIdx.x * FS_GG_TILE, tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  const T *We = W + (long long)e * K * N;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += FS_GG_BK) {
    for (int idx = tid; idx < FS_GG_TILE * FS_GG_BK; idx += blockDim.x) {
      // A: k fastest (16 consecutive floats of one X row)
      const int kk = idx % FS_GG_BK, rr = idx / FS_GG_BK, r = rBeg + rr, k = k0 + kk;
      As[kk][rr] = (r < rEnd && k < K) ? fs_ld(X + (long long)r * K + k) : 0.f;
      // B: along the contiguous dim of W_e
      int bk, bn;
      if (transW) { bk = idx % FS_GG_BK; bn = idx / FS_GG_BK; } else { bn = idx % FS_GG_TILE; bk = idx / FS_GG_TILE; }
      const int kb = k0 + bk, nb = c0 + bn;
      float bv = 0.f;
      if (kb < K && nb < N) bv = fs_ld(We + (transW ? (long long)nb * K + kb : (long long)kb * N + nb));
      Bs[bk][bn] = bv;
    }
    __syncthreads();
    fs_gg_mma(As, Bs, acc, ty, tx);
    __syncthreads();
  }
  fs_gg_store(Y, N, rBeg, rEnd, c0, N, beta, acc, ty, tx);
}

// C_e [P, Q] = A_e^T @ B_e (+ beta C_e), A_e [m_e, P], B_e [m_e, Q]: rows offsets[e].. of A [rows, P], B [rows, Q]
template <typename T>
__device__ void grouped_gemm_wgrad_impl(int E, const int *offsets, int transW, int N, int K, const T *X,
                                        const T *dY, float beta, T *dW) {
  __shared__ float As[FS_GG_BK][FS_GG_TILE + 4];  // As[m][p]
  __shared__ float Bs[FS_GG_BK][FS_GG_TILE + 4];  // Bs[m][q]
  const int e = blockIdx.z;
  if (e >= E) return;
  const T *A = transW ? dY : X, *Bm = transW ? X : dY;
  const int P = transW ? N : K, Q = transW ? K : N;
  const int g0 = offsets[e], m = max(0, offsets[e + 1] - g0);
  const int p0 = blockIdx.y * FS_GG_TILE, q0 = blockIdx.x * FS_GG_TILE, tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < m; k0 += FS_GG_BK) {
    for (int idx = tid; idx < FS_GG_TILE * FS_GG_BK; idx += blockDim.x) {
      const int kk = idx / FS_GG_TILE, c = idx % FS_GG_TILE, r = k0 + kk;
      const long long row = (long long)g0 + r;
      As[kk][c] = (r < m && p0 + c < P) ? fs_ld(A + row * P + p0 + c) : 0.f;
      Bs[kk][c] = (r < m && q0 + c < Q) ? fs_ld(Bm + row * Q + q0 + c) : 0.f;
    }
    __syncthreads();
    fs_gg_mma(As, Bs, acc, ty, tx);
    __syncthreads();
  }
  fs_gg_store(dW + (long long)e * K * N, Q, p0, P, q0, Q, beta, acc, ty, tx);
}

extern "C" __global__ void fs_grouped_gemm_f32(int E, const int *offsets, int transW, int N, int K, const float *X, const float *W, float beta, float *Y) { grouped_gemm_impl(E, offsets, transW, N, K, X, W, beta, Y); }
extern "C" __global__ void fs_grouped_gemm_bf16(int E, const int *offsets, int transW, int N, int K, const bf16 *X, const bf16 *W, float beta, bf16 *Y) { grouped_gemm_impl(E, offsets, transW, N, K, X, W, beta, Y); }
extern "C" __global__ void fs_grouped_gemm_wgrad_f32(int E, const int *offsets, int transW, int N, int K, const float *X, const float *dY, float beta, float *dW) { grouped_gemm_wgrad_impl(E, offsets, transW, N, K, X, dY, beta, dW); }
extern "C" __global__ void fs_grouped_gemm_wgrad_bf16(int E, const int *offsets, int transW, int N, int K, const bf16 *X, const bf16 *dY, float beta, bf16 *dW) { grouped_gemm_wgrad_impl(E, offsets, transW, N, K, X, dY, beta, dW); }
