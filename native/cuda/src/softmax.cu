// softmax.cu: softmax and log-softmax over the last dim, forward and backward.
// Semantics: packages/kernels/src/backend/ts/softmax.ts (max-subtracted; a NaN in a row propagates to the row).
//
//   softmax:     y = exp(x - max) / sum(exp(x - max))         backward: dx = y * (dy - sum(dy * y))
//   logSoftmax:  y = x - max - log(sum(exp(x - max)))         backward: dx = dy - exp(y) * sum(dy)
//
// Shapes: x, y, dy, dx [rows, cols]; outputs overwritten (y may alias x, dx may alias dy).
// Launch (all): grid [rows], block [256] (any multiple of FS_WARP <= 1024), sharedBytes 0. One block per row;
// the row is read from global memory once per pass (2-3 passes; rows are L2-resident at vocab sizes).
#include "fs_cuda.cuh"

// max and sum(exp(x - max)) of one row; every thread gets both
template <typename T>
__device__ void row_max_sum(const T *xr, int cols, float *scratch, float &mx, float &sum) {
  float m = -INFINITY;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fs_nanmax(m, fs_ld(xr + c));
  mx = fs_block_max(m, scratch);
  float s = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) s += expf(fs_ld(xr + c) - mx);
  sum = fs_block_sum(s, scratch);
}

template <typename T>
__device__ void softmax_fwd_impl(int rows, int cols, const T *x, T *y) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const T *xr = x + (long long)r * cols;
  T *yr = y + (long long)r * cols;
  float mx, sum;
  row_max_sum(xr, cols, scratch, mx, sum);
  const float inv = 1.f / sum;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) fs_st(yr + c, expf(fs_ld(xr + c) - mx) * inv);
}

template <typename T>
__device__ void softmax_bwd_impl(int rows, int cols, const T *y, const T *dy, T *dx) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const long long base = (long long)r * cols;
  float dot = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) dot += fs_ld(dy + base + c) * fs_ld(y + base + c);
  dot = fs_block_sum(dot, scratch);
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    fs_st(dx + base + c, fs_ld(y + base + c) * (fs_ld(dy + base + c) - dot));
}

template <typename T>
__device__ void log_softmax_fwd_impl(int rows, int cols, const T *x, T *y) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const T *xr = x + (long long)r * cols;
  T *yr = y + (long long)r * cols;
  float mx, sum;
  row_max_sum(xr, cols, scratch, mx, sum);
  const float shift = mx + logf(sum);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) fs_st(yr + c, fs_ld(xr + c) - shift);
}

template <typename T>
__device__ void log_softmax_bwd_impl(int rows, int cols, const T *y, const T *dy, T *dx) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const long long base = (long long)r * cols;
  float sum = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += fs_ld(dy + base + c);
  sum = fs_block_sum(sum, scratch);
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    fs_st(dx + base + c, fs_ld(dy + base + c) - expf(fs_ld(y + base + c)) * sum);
}

extern "C" __global__ void fs_softmax_fwd_f32(int rows, int cols, const float *x, float *y) { softmax_fwd_impl(rows, cols, x, y); }
extern "C" __global__ void fs_softmax_fwd_bf16(int rows, int cols, const bf16 *x, bf16 *y) { softmax_fwd_impl(rows, cols, x, y); }
extern "C" __global__ void fs_softmax_bwd_f32(int rows, int cols, const float *y, const float *dy, float *dx) { softmax_bwd_impl(rows, cols, y, dy, dx); }
extern "C" __global__ void fs_softmax_bwd_bf16(int rows, int cols, const bf16 *y, const bf16 *dy, bf16 *dx) { softmax_bwd_impl(rows, cols, y, dy, dx); }
extern "C" __global__ void fs_log_softmax_fwd_f32(int rows, int cols, const float *x, float *y) { log_softmax_fwd_impl(rows, cols, x, y); }
extern "C" __global__ void fs_log_softmax_fwd_bf16(int rows, int cols, const bf16 *x, bf16 *y) { log_softmax_fwd_impl(rows, cols, x, y); }
extern "C" __global__ void fs_log_softmax_bwd_f32(int rows, int cols, const float *y, const float *dy, float *dx) { log_softmax_bwd_impl(rows, cols, y, dy, dx); }
extern "C" __global__ void fs_log_softmax_bwd_bf16(int rows, int cols, const bf16 *y, const bf16 *dy, bf16 *dx) { log_softmax_bwd_impl(rows, cols, y, dy, dx); }
