// topk.cu: top-k over the last dim. Semantics: packages/kernels/src/backend/ts/topk.ts (torch.topk sorted=True):
// values descending, ties keep the lower index first, NaN ranks above everything (NaNs first, lower index first).
//
// x [rows, cols]; values [rows, k] (same dtype as x); indices [rows, k] int32. Outputs overwritten.
// Limit: 1 <= k <= FS_TOPK_MAX (16) and k <= cols (the router's top-k; a larger k is not supported here: the
// host must fall back). With k > cols the slots past cols get value -inf and index -1 (the CPU reference leaves
// them unspecified).
// Launch: block [FS_WARP, 4] (= [32, 4] on CUDA), grid [cdiv(rows, 4)], sharedBytes 0. One warp per row: each lane
// keeps a sorted top-k of the columns c = lane (mod FS_WARP), then k rounds of a warp arg-best merge.
#include "fs_cuda.cuh"

#define FS_TOPK_MAX 16

// true when value a (at a higher index) must be placed before b (the reference's `beats`)
__device__ __forceinline__ bool fs_beats(float a, float b) {
  if (a != a) return b == b;
  return a > b;
}

// strict total order on (value, index) candidates; invalid candidates rank last
__device__ __forceinline__ bool fs_better(float av, int ai, float bv, int bi) {
  if (bi < 0) return ai >= 0;
  if (ai < 0) return false;
  if (fs_beats(av, bv)) return true;
  if (fs_beats(bv, av)) return false;
  return ai < bi;
}

template <typename T>
__device__ void topk_impl(int rows, int cols, int k, const T *x, T *values, int *indices) {
  const int r = blockIdx.x * blockDim.y + threadIdx.y, lane = threadIdx.x;
  if (r >= rows || k <= 0 || k > FS_TOPK_MAX) return;  // uniform per warp
  const T *xr = x + (long long)r * cols;
  float vals[FS_TOPK_MAX];
  int idx[FS_TOPK_MAX];
  int n = 0;
  for (int c = lane; c < cols; c += FS_WARP) {
    const float val = fs_ld(xr + c);
    if (n == k && !fs_beats(val, vals[k - 1])) continue;
    int p = n < k ? n : k - 1;
    while (p > 0 && fs_beats(val, vals[p - 1])) { vals[p] = vals[p - 1]; idx[p] = idx[p - 1]; p--; }
    vals[p] = val;
    idx[p] = c;
    if (n < k) n++;
  }
  int head = 0;
  for (int round = 0; round < k; round++) {
    float bv = head < n ? vals[head] : 0.f;
    int bi = head < n ? idx[head] : -1;
#pragma unroll
    for (int m = FS_WARP / 2; m > 0; m >>= 1) {
      const float ov = FS_SHFL_XOR(bv, m);
      const int oi = FS_SHFL_XOR(bi, m);
      if (fs_better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
    }
    if (bi >= 0 && head < n && idx[head] == bi) head++;  // the owning lane pops its head
    if (lane == 0) {
      fs_st(values + (long long)r * k + round, bi >= 0 ? bv : -INFINITY);
      indices[(long long)r * k + round] = bi;
    }
  }
}

extern "C" __global__ void fs_topk_f32(int rows, int cols, int k, const float *x, float *values, int *indices) { topk_impl(rows, cols, k, x, values, indices); }
extern "C" __global__ void fs_topk_bf16(int rows, int cols, int k, const bf16 *x, bf16 *values, int *indices) { topk_impl(rows, cols, k, x, values, indices); }
