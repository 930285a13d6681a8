// norm.cu: RMSNorm (HF Llama) forward and backward. Semantics: packages/kernels/src/backend/ts/norm.ts.
//
//   y = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps)
//   backward, with xhat = x * rstd (rstd as stored by the forward) and g = dy * w:
//     dx = rstd * (g - xhat * mean(g * xhat))              (overwritten)
//     dw = sum over rows of dy * xhat                      (overwritten)
//
// Shapes: x, y, dy, dx [rows, cols]; w, dw [cols]; rstd [rows] (always f32); partial [P, cols] (f32 workspace).
// Launch:
//   fs_rmsnorm_fwd_*, fs_rmsnorm_bwd_dx_*:  grid [rows], block [256] (any multiple of FS_WARP <= 1024),
//                                           sharedBytes 0. One block per row.
//   fs_rmsnorm_bwd_dw_partial_*:            grid [cdiv(cols, 32), P], block [32, 8]; block (cx, p) sums rows
//                                           [p * chunk, min(rows, (p+1) * chunk)), chunk = cdiv(rows, P), into
//                                           partial[p, cols tile]. P <= 65535; P = min(cdiv(rows, 64), 1024) is
//                                           a good default.
//   fs_rmsnorm_bwd_dw_finalize_*:           grid [cdiv(cols, 256)], block [256]: dw[c] = sum_p partial[p, c]
//                                           in order p = 0..P-1 (f64).
// dw is deterministic (fixed summation order, no atomics); dx does not depend on dw (may run concurrently).
// The bf16 variants take bf16 x, w, y, dy, dx, dw; rstd and partial stay f32.
#include "fs_cuda.cuh"

template <typename T>
__device__ void rmsnorm_fwd_impl(int rows, int cols, const T *x, const T *w, float eps, T *y, float *rstd) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const T *xr = x + (long long)r * cols;
  T *yr = y + (long long)r * cols;
  float ss = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) { const float v = fs_ld(xr + c); ss += v * v; }
  ss = fs_block_sum(ss, scratch);
  const float rs = 1.f / sqrtf(ss / (float)cols + eps);
  if (threadIdx.x == 0) rstd[r] = rs;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) fs_st(yr + c, fs_ld(xr + c) * rs * fs_ld(w + c));
}

template <typename T>
__device__ void rmsnorm_bwd_dx_impl(int rows, int cols, const T *x, const T *w, const float *rstd, const T *dy,
                                    T *dx) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const long long base = (long long)r * cols;
  const float rs = rstd[r];
  float dot = 0.f;  // sum_c (dy * w)[c] * xhat[c]
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    dot += fs_ld(dy + base + c) * fs_ld(w + c) * (fs_ld(x + base + c) * rs);
  dot = fs_block_sum(dot, scratch);
  const float meanDot = dot / (float)cols;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float xhat = fs_ld(x + base + c) * rs;
    fs_st(dx + base + c, rs * (fs_ld(dy + base + c) * fs_ld(w + c) - xhat * meanDot));
  }
}

template <typename T>
__device__ void rmsnorm_bwd_dw_partial_impl(int rows, int cols, const T *x, const float *rstd, const T *dy,
                                            float *partial) {
  __shared__ float part[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x, p = blockIdx.y, P = gridDim.y;
  const int chunk = (rows + P - 1) / P, r0 = p * chunk, r1 = min(rows, r0 + chunk);
  float acc = 0.f;
  if (c < cols) {
    for (int r = r0 + (int)threadIdx.y; r < r1; r += blockDim.y) {
      const long long i = (long long)r * cols + c;
      acc += fs_ld(dy + i) * (fs_ld(x + i) * rstd[r]);
    }
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float s = 0.f;
    for (int y = 0; y < (int)blockDim.y; y++) s += part[y][threadIdx.x];
    partial[(long long)p * cols + c] = s;
  }
}

template <typename T>
__device__ void rmsnorm_bwd_dw_finalize_impl(int P, int cols, const float *partial, T *dw) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  double s = 0;
  for (int p = 0; p < P; p++) s += (double)partial[(long long)p * cols + c];
  fs_st(dw + c, (float)s);
}

extern "C" __global__ void fs_rmsnorm_fwd_f32(int rows, int cols, const float *x, const float *w, float eps, float *y, float *rstd) { rmsnorm_fwd_impl(rows, cols, x, w, eps, y, rstd); }
extern "C" __global__ void fs_rmsnorm_fwd_bf16(int rows, int cols, const bf16 *x, const bf16 *w, float eps, bf16 *y, float *rstd) { rmsnorm_fwd_impl(rows, cols, x, w, eps, y, rstd); }
extern "C" __global__ void fs_rmsnorm_bwd_dx_f32(int rows, int cols, const float *x, const float *w, const float *rstd, const float *dy, float *dx) { rmsnorm_bwd_dx_impl(rows, cols, x, w, rstd, dy, dx); }
extern "C" __global__ void fs_rmsnorm_bwd_dx_bf16(int rows, int cols, const bf16 *x, const bf16 *w, const float *rstd, const bf16 *dy, bf16 *dx) { rmsnorm_bwd_dx_impl(rows, cols, x, w, rstd, dy, dx); }
extern "C" __global__ void fs_rmsnorm_bwd_dw_partial_f32(int rows, int cols, const float *x, const float *rstd, const float *dy, float *partial) { rmsnorm_bwd_dw_partial_impl(rows, cols, x, rstd, dy, partial); }
extern "C" __global__ void fs_rmsnorm_bwd_dw_partial_bf16(int rows, int cols, const bf16 *x, const float *rstd, const bf16 *dy, float *partial) { rmsnorm_bwd_dw_partial_impl(rows, cols, x, rstd, dy, partial); }
extern "C" __global__ void fs_rmsnorm_bwd_dw_finalize_f32(int P, int cols, const float *partial, float *dw) { rmsnorm_bwd_dw_finalize_impl(P, cols, partial, dw); }
extern "C" __global__ void fs_rmsnorm_bwd_dw_finalize_bf16(int P, int cols, const float *partial, bf16 *dw) { rmsnorm_bwd_dw_finalize_impl(P, cols, partial, dw); }
