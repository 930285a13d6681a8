// moe.cu: row data movement: embedding forward / backward and the MoE permute / unpermute (token copies sorted
// by expert and back). Semantics of embedding: packages/kernels/src/backend/ts/elementwise.ts; the permute ops
// are torch indexSelect / indexAdd over dim 0 (packages/tensor/src/indexing.ts), which layers/moe.ts uses.
//
//   fs_embedding_fwd_*:      out[i, :] = table[ids[i], :]             ids [n], table [vocab, dim], out [n, dim]
//   fs_embedding_bwd_*:      dtable[ids[i], :] += dout[i, :]          dout [n, dim] (f32 / bf16), dtable f32
//                            ATOMIC (atomicAdd on f32): repeated ids accumulate in a nondeterministic order.
//   fs_gather_rows_*:        out[i, :] = x[index[i], :]               permute: x [rows, dim], out [n, dim]
//   fs_scatter_add_rows_*:   out[index[i], :] += w[i] * x[i, :]       x [n, dim] (f32 / bf16), out f32 [rows, dim];
//                            w [n] f32 or NULL (= 1). ATOMIC, nondeterministic order like embedding_bwd.
//   fs_moe_combine_*:        out[t, :] = sum_{j<k, src>=0} w[t*k+j] * x[src, :],  src = inv[t*k + j]
//                            the deterministic unpermute: inv [tokens*k] int32 gives, for copy (token t, slot j),
//                            the row of x (expert-sorted outputs) holding it, -1 for a dropped copy; w [tokens*k]
//                            f32 or NULL (= 1). out [tokens, dim] overwritten; fixed slot order, no atomics.
//   fs_moe_combine_bwd_*:    for every copy c = t*k + j with src = inv[c] >= 0:
//                            dx[src, :] = w[c] * dout[t, :];  dw[c] = dout[t, :] . x[src, :]  (dw may be NULL)
//                            dw[c] = 0 for a dropped copy. Rows of dx no copy points at are NOT written (zero them
//                            first if any can exist). Deterministic (each dx row has one writer).
// In the _bf16 variants table / x / out / dout / dx are bf16 except where f32 is stated above; ids, index, inv
// are int32 and not range-checked.
// Launch: every kernel here: grid [rows of the loop: n, or tokens for combine, tokens*k for combine_bwd]
//         (<= 2^31 - 1), block [128] (any multiple of FS_WARP <= 1024), sharedBytes 0. One block per row.
#include "fs_cuda.cuh"

template <typename T>
__device__ void gather_rows_impl(int n, int dim, const int *index, const T *x, T *out) {
  const int i = blockIdx.x;
  if (i >= n) return;
  const T *src = x + (long long)index[i] * dim;
  T *dst = out + (long long)i * dim;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = src[d];
}

template <typename T>
__device__ void scatter_add_rows_impl(int n, int dim, const int *index, const float *w, const T *x, float *out) {
  const int i = blockIdx.x;
  if (i >= n) return;
  const float wi = w ? w[i] : 1.f;
  const T *src = x + (long long)i * dim;
  float *dst = out + (long long)index[i] * dim;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) atomicAdd(dst + d, wi * fs_ld(src + d));
}

template <typename T>
__device__ void combine_impl(int tokens, int k, int dim, const int *inv, const float *w, const T *x, T *out) {
  const int t = blockIdx.x;
  if (t >= tokens) return;
  T *dst = out + (long long)t * dim;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < k; j++) {
      const int c = t * k + j, src = inv[c];
      if (src < 0) continue;
      acc += (w ? w[c] : 1.f) * fs_ld(x + (long long)src * dim + d);
    }
    fs_st(dst + d, acc);
  }
}

template <typename T>
__device__ void combine_bwd_impl(int tokens, int k, int dim, const int *inv, const float *w, const T *x,
                                 const T *dout, T *dx, float *dw) {
  __shared__ float scratch[FS_MAX_WARPS];
  const int c = blockIdx.x;
  if (c >= tokens * k) return;
  const int t = c / k, src = inv[c];
  if (src < 0) {
    if (dw && threadIdx.x == 0) dw[c] = 0.f;
    return;
  }
  const float wc = w ? w[c] : 1.f;
  const T *g = dout + (long long)t * dim;
  const T *xs = x + (long long)src * dim;
  T *dst = dx + (long long)src * dim;
  float dot = 0.f;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    const float gd = fs_ld(g + d);
    dot += gd * fs_ld(xs + d);
    fs_st(dst + d, wc * gd);
  }
  if (dw) {  // uniform over the block
    dot = fs_block_sum(dot, scratch);
    if (threadIdx.x == 0) dw[c] = dot;
  }
}

extern "C" __global__ void fs_embedding_fwd_f32(int n, int dim, const int *ids, const float *table, float *out) { gather_rows_impl(n, dim, ids, table, out); }
extern "C" __global__ void fs_embedding_fwd_bf16(int n, int dim, const int *ids, const bf16 *table, bf16 *out) { gather_rows_impl(n, dim, ids, table, out); }
extern "C" __global__ void fs_embedding_bwd_f32(int n, int dim, const int *ids, const float *dout, float *dtable) { scatter_add_rows_impl(n, dim, ids, (const float *)0, dout, dtable); }
extern "C" __global__ void fs_embedding_bwd_bf16(int n, int dim, const int *ids, const bf16 *dout, float *dtable) { scatter_add_rows_impl(n, dim, ids, (const float *)0, dout, dtable); }

extern "C" __global__ void fs_gather_rows_f32(int n, int dim, const int *index, const float *x, float *out) { gather_rows_impl(n, dim, index, x, out); }
extern "C" __global__ void fs_gather_rows_bf16(int n, int dim, const int *index, const bf16 *x, bf16 *out) { gather_rows_impl(n, dim, index, x, out); }
extern "C" __global__ void fs_scatter_add_rows_f32(int n, int dim, const int *index, const float *w, const float *x, float *out) { scatter_add_rows_impl(n, dim, index, w, x, out); }
extern "C" __global__ void fs_scatter_add_rows_bf16(int n, int dim, const int *index, const float *w, const bf16 *x, float *out) { scatter_add_rows_impl(n, dim, index, w, x, out); }

extern "C" __global__ void fs_moe_combine_f32(int tokens, int k, int dim, const int *inv, const float *w, const float *x, float *out) { combine_impl(tokens, k, dim, inv, w, x, out); }
extern "C" __global__ void fs_moe_combine_bf16(int tokens, int k, int dim, const int *inv, const float *w, const bf16 *x, bf16 *out) { combine_impl(tokens, k, dim, inv, w, x, out); }
extern "C" __global__ void fs_moe_combine_bwd_f32(int tokens, int k, int dim, const int *inv, const float *w, const float *x, const float *dout, float *dx, float *dw) { combine_bwd_impl(tokens, k, dim, inv, w, x, dout, dx, dw); }
extern "C" __global__ void fs_moe_combine_bwd_bf16(int tokens, int k, int dim, const int *inv, const float *w, const bf16 *x, const bf16 *dout, bf16 *dx, float *dw) { combine_bwd_impl(tokens, k, dim, inv, w, x, dout, dx, dw); }
