// attention.cu: fused causal attention (online softmax, flash style) forward, slot-cache forward (decode) and
// backward. Semantics: packages/kernels/src/backend/ts/attention.ts.
//
// q [B, Tq, Hq, D]; k [B, Tk, Hkv, D]; v [B, Tk, Hkv, Dv]; o [B, Tq, Hq, Dv]; lse, delta [B, Hq, Tq] (f32).
// GQA: query head h reads kv head h / group, group = Hq / Hkv (Hq % Hkv == 0). s_j = scale * q.k_j.
// causal != 0: query i sees keys j <= i + (Tk - Tq) (aligned to the end). lse = log(sum_j exp(s_j)) over the
// visible keys; a row with no visible key gets o = 0, lse = -inf, and contributes no gradient.
// kBatchStride / vBatchStride (i64): elements between batches of k / v in the forward (0 = packed Tk*Hkv*D), so a
// cache [B, maxT, Hkv, D] is read up to Tk <= maxT. The backward takes packed k / v; dq, dk, dv are overwritten.
// Cached forward: batch row b reads slot slots[b] of k [slots, maxT, Hkv, D] (kSlotStride elements per slot) over
// keys [0, lens[b]); causal aligns its Tq queries to the end of lens[b].
// D, Dv <= FS_ATTN_MAX_D (256). Math and accumulation f32; bf16 variants take bf16 q, k, v, o, dout, dq, dk, dv.
//
// Launch (WARP = FS_WARP = 32 on CUDA, W = 4 warps per block, block [WARP, 4] for every kernel here):
//   fs_attention_fwd_*, fs_attention_fwd_cached_*, fs_attention_bwd_dq_*:
//       grid [cdiv(Tq * group, 4), Hkv, B]; warp w of block x handles query row rr = 4x + w, i.e. position
//       i = rr / group, head h = kvh * group + rr % group (the 4 rows share the kv head and its K/V tiles).
//       sharedBytes fwd:  4 * (WARP * (D + 1) + WARP * Dv + 4 * D)
//       sharedBytes dq:   4 * (WARP * (D + 1) + WARP * (Dv + 1) + 4 * D + 4 * Dv)
//   fs_attention_bwd_delta_*: grid [cdiv(B * Tq * Hq, 4)], sharedBytes 0; delta[b,h,i] = dout_i . o_i.
//   fs_attention_bwd_dkdv_*: grid [cdiv(Tk, 4), Hkv, B]; warp w handles key j = 4x + w of kv head y.
//       sharedBytes: 4 * (WARP * (D + 1) + WARP * (Dv + 1) + 2 * WARP + 4 * D + 4 * Dv)
//   Above 48 KiB (e.g. D = Dv = 256) the host must raise CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES first.
// Backward order: delta, then dq and dkdv (independent of each other). Deterministic: every output element is
// summed by one warp in a fixed order, no atomics.
#include "fs_cuda.cuh"

#define FS_ATTN_MAX_D 256
#define FS_ATTN_ACC (FS_ATTN_MAX_D / FS_WARP)
#define FS_ATTN_W 4

__device__ __forceinline__ int fs_attn_last(int causal, int i, int Tq, int Tk) {
  return causal ? min(Tk - 1, i + Tk - Tq) : Tk - 1;
}

// Copy rows [j0, j0 + WARP) of a [*, H, dim] tensor at head hh into a float tile [WARP][ld]; rows >= n become 0.
template <typename T>
__device__ void fs_load_tile(float *tile, int ld, const T *base, int j0, int n, int H, int hh, int dim) {
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, nt = blockDim.x * blockDim.y;
  for (int e = tid; e < FS_WARP * dim; e += nt) {
    const int jj = e / dim, d = e - jj * dim, j = j0 + jj;
    tile[jj * ld + d] = j < n ? fs_ld(base + ((long long)j * H + hh) * dim + d) : 0.f;
  }
}

// One block: up to 4 query rows of batch b sharing kv head kvh; kb / vb point at this batch's keys / values.
template <typename T>
__device__ void attn_fwd_block(int b, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal,
                               const T *q, const T *kb, const T *vb, T *o, float *lse) {
  FS_DYN_SMEM(fs_smem);
  float *Ks = fs_smem, *Vs = Ks + FS_WARP * (D + 1), *qs = Vs + FS_WARP * Dv;
  const int group = Hq / Hkv, kvh = blockIdx.y, lane = threadIdx.x, w = threadIdx.y;
  const int rows = Tq * group, rr = blockIdx.x * FS_ATTN_W + w;
  const bool valid = rr < rows;
  const int i = rr / group, h = kvh * group + rr % group;
  const int last = valid ? fs_attn_last(causal, i, Tq, Tk) : -1;
  const int rrMax = min(rows - 1, (int)blockIdx.x * FS_ATTN_W + FS_ATTN_W - 1);
  const int blockLast = fs_attn_last(causal, rrMax / group, Tq, Tk);  // rows are position-major
  const long long qRow = ((long long)(b * Tq + i) * Hq + h);
  if (valid)
    for (int d = lane; d < D; d += FS_WARP) qs[w * D + d] = fs_ld(q + qRow * D + d);
  float m = -INFINITY, l = 0.f, acc[FS_ATTN_ACC];
#pragma unroll
  for (int t = 0; t < FS_ATTN_ACC; t++) acc[t] = 0.f;
  for (int j0 = 0; j0 <= blockLast; j0 += FS_WARP) {
    __syncthreads();
    fs_load_tile(Ks, D + 1, kb, j0, Tk, Hkv, kvh, D);
    fs_load_tile(Vs, Dv, vb, j0, Tk, Hkv, kvh, Dv);
    __syncthreads();
    if (!valid || j0 > last) continue;  // uniform per warp
    const int j = j0 + lane;
    float s = -INFINITY;
    if (j <= last) {
      float dot = 0.f;
      for (int d = 0; d < D; d++) dot += qs[w * D + d] * Ks[lane * (D + 1) + d];
      s = scale * dot;
    }
    const float mt = fs_warp_max(s);
    if (mt == -INFINITY) continue;
    const float mNew = fs_nanmax(m, mt), corr = expf(m - mNew), p = expf(s - mNew);
    l = l * corr + fs_warp_sum(p);
    const int nj = min(FS_WARP, last - j0 + 1);
#pragma unroll
    for (int t = 0; t < FS_ATTN_ACC; t++) acc[t] *= corr;
    for (int jj = 0; jj < nj; jj++) {
      const float pj = FS_SHFL(p, jj);
#pragma unroll
      for (int t = 0; t < FS_ATTN_ACC; t++) {
        const int d = lane + t * FS_WARP;
        if (d < Dv) acc[t] += pj * Vs[jj * Dv + d];
      }
    }
    m = mNew;
  }
  if (!valid) return;
  const bool any = last >= 0 && l > 0.f;
  const float inv = any ? 1.f / l : 0.f;
#pragma unroll
  for (int t = 0; t < FS_ATTN_ACC; t++) {
    const int d = lane + t * FS_WARP;
    if (d < Dv) fs_st(o + qRow * Dv + d, any ? acc[t] * inv : 0.f);
  }
  if (lane == 0) lse[((long long)b * Hq + h) * Tq + i] = any ? m + logf(l) : -INFINITY;
}

template <typename T>
__device__ void attn_fwd_impl(int B, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal,
                              const T *q, const T *k, long long kBatchStride, const T *v, long long vBatchStride,
                              T *o, float *lse) {
  const int b = blockIdx.z;
  if (b >= B) return;
  const long long kbs = kBatchStride ? kBatchStride : (long long)Tk * Hkv * D;
  const long long vbs = vBatchStride ? vBatchStride : (long long)Tk * Hkv * Dv;
  attn_fwd_block(b, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k + b * kbs, v + b * vbs, o, lse);
}

template <typename T>
__device__ void attn_fwd_cached_impl(int B, int Tq, int Hq, int Hkv, int D, int Dv, float scale, int causal,
                                     const T *q, const T *k, long long kSlotStride, const T *v,
                                     long long vSlotStride, const int *slots, const int *lens, T *o, float *lse) {
  const int b = blockIdx.z;
  if (b >= B) return;
  const long long s = slots[b];
  attn_fwd_block(b, Tq, lens[b], Hq, Hkv, D, Dv, scale, causal, q, k + s * kSlotStride, v + s * vSlotStride, o, lse);
}

// delta[b,h,i] = dout_i . o_i; one warp per (b, i, h) row in o's order
template <typename T>
__device__ void attn_bwd_delta_impl(int B, int Tq, int Hq, int Dv, const T *o, const T *dout, float *delta) {
  const long long rid = (long long)blockIdx.x * FS_ATTN_W + threadIdx.y;
  if (rid >= (long long)B * Tq * Hq) return;
  float s = 0.f;
  for (int d = threadIdx.x; d < Dv; d += FS_WARP) s += fs_ld(dout + rid * Dv + d) * fs_ld(o + rid * Dv + d);
  s = fs_warp_sum(s);
  const int h = (int)(rid % Hq);
  const long long bi = rid / Hq;
  const int i = (int)(bi % Tq), b = (int)(bi / Tq);
  if (threadIdx.x == 0) delta[((long long)b * Hq + h) * Tq + i] = s;
}

// dq_i = scale * sum_j P_j (dP_j - delta_i) k_j,  P_j = exp(s_j - lse_i),  dP_j = dout_i . v_j
template <typename T>
__device__ void attn_bwd_dq_impl(int B, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal,
                                 const T *q, const T *k, const T *v, const float *lse, const float *delta,
                                 const T *dout, T *dq) {
  FS_DYN_SMEM(fs_smem);
  float *Ks = fs_smem, *Vs = Ks + FS_WARP * (D + 1), *qs = Vs + FS_WARP * (Dv + 1), *dos = qs + FS_ATTN_W * D;
  const int b = blockIdx.z;
  if (b >= B) return;
  const int group = Hq / Hkv, kvh = blockIdx.y, lane = threadIdx.x, w = threadIdx.y;
  const int rows = Tq * group, rr = blockIdx.x * FS_ATTN_W + w;
  const bool valid = rr < rows;
  const int i = rr / group, h = kvh * group + rr % group;
  const long long qRow = ((long long)(b * Tq + i) * Hq + h), lIdx = ((long long)b * Hq + h) * Tq + i;
  const float lrow = valid ? lse[lIdx] : -INFINITY, drow = valid ? delta[lIdx] : 0.f;
  const int last = (valid && lrow != -INFINITY) ? fs_attn_last(causal, i, Tq, Tk) : -1;
  const int rrMax = min(rows - 1, (int)blockIdx.x * FS_ATTN_W + FS_ATTN_W - 1);
  const int blockLast = fs_attn_last(causal, rrMax / group, Tq, Tk);
  const T *kb = k + (long long)b * Tk * Hkv * D, *vb = v + (long long)b * Tk * Hkv * Dv;
  if (valid) {
    for (int d = lane; d < D; d += FS_WARP) qs[w * D + d] = fs_ld(q + qRow * D + d);
    for (int d = lane; d < Dv; d += FS_WARP) dos[w * Dv + d] = fs_ld(dout + qRow * Dv + d);
  }
  float acc[FS_ATTN_ACC];
#pragma unroll
  for (int t = 0; t < FS_ATTN_ACC; t++) acc[t] = 0.f;
  for (int j0 = 0; j0 <= blockLast; j0 += FS_WARP) {
    __syncthreads();
    fs_load_tile(Ks, D + 1, kb, j0, Tk, Hkv, kvh, D);
    fs_load_tile(Vs, Dv + 1, vb, j0, Tk, Hkv, kvh, Dv);
    __syncthreads();
    if (j0 > last) continue;  // uniform per warp (last = -1 for invalid rows)
    const int j = j0 + lane;
    float ds = 0.f;
    if (j <= last) {
      float dot = 0.f, dp = 0.f;
      for (int d = 0; d < D; d++) dot += qs[w * D + d] * Ks[lane * (D + 1) + d];
      for (int d = 0; d < Dv; d++) dp += dos[w * Dv + d] * Vs[lane * (Dv + 1) + d];
      const float p = expf(scale * dot - lrow);
      ds = scale * p * (dp - drow);
    }
    const int nj = min(FS_WARP, last - j0 + 1);
    for (int jj = 0; jj < nj; jj++) {
      const float dj = FS_SHFL(ds, jj);
#pragma unroll
      for (int t = 0; t < FS_ATTN_ACC; t++) {
        const int d = lane + t * FS_WARP;
        if (d < D) acc[t] += dj * Ks[jj * (D + 1) + d];
      }
    }
  }
  if (!valid) return;
#pragma unroll
  for (int t = 0; t < FS_ATTN_ACC; t++) {
    const int d = lane + t * FS_WARP;
    if (d < D) fs_st(dq + qRow * D + d, acc[t]);
  }
}

// For key j (kv head kvh): dv_j = sum_rows P dout_i;  dk_j = scale * sum_rows P (dP - delta_i) q_i, over the query
// rows (i, h in the group) that see key j.
template <typename T>
__device__ void attn_bwd_dkdv_impl(int B, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal,
                                   const T *q, const T *k, const T *v, const float *lse, const float *delta,
                                   const T *dout, T *dk, T *dv) {
  FS_DYN_SMEM(fs_smem);
  float *Qs = fs_smem, *dOs = Qs + FS_WARP * (D + 1), *ls = dOs + FS_WARP * (Dv + 1), *dls = ls + FS_WARP;
  float *ks = dls + FS_WARP, *vs = ks + FS_ATTN_W * D;
  const int b = blockIdx.z;
  if (b >= B) return;
  const int group = Hq / Hkv, kvh = blockIdx.y, lane = threadIdx.x, w = threadIdx.y;
  const int j = blockIdx.x * FS_ATTN_W + w, rows = Tq * group;
  const bool valid = j < Tk;
  const long long kRow = ((long long)b * Tk + j) * Hkv + kvh;
  if (valid) {
    for (int d = lane; d < D; d += FS_WARP) ks[w * D + d] = fs_ld(k + kRow * D + d);
    for (int d = lane; d < Dv; d += FS_WARP) vs[w * Dv + d] = fs_ld(v + kRow * Dv + d);
  }
  // first query position that sees the block's first key
  const int iMin = causal ? max(0, (int)blockIdx.x * FS_ATTN_W - (Tk - Tq)) : 0;
  float dkAcc[FS_ATTN_ACC], dvAcc[FS_ATTN_ACC];
#pragma unroll
  for (int t = 0; t < FS_ATTN_ACC; t++) { dkAcc[t] = 0.f; dvAcc[t] = 0.f; }
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, nt = blockDim.x * blockDim.y;
  for (int r0 = iMin * group; r0 < rows; r0 += FS_WARP) {
    __syncthreads();
    for (int e = tid; e < FS_WARP * D; e += nt) {
      const int rl = e / D, d = e - rl * D, rr = r0 + rl;
      const int i = rr / group, h = kvh * group + rr % group;
      Qs[rl * (D + 1) + d] = rr < rows ? fs_ld(q + ((long long)(b * Tq + i) * Hq + h) * D + d) : 0.f;
    }
    for (int e = tid; e < FS_WARP * Dv; e += nt) {
      const int rl = e / Dv, d = e - rl * Dv, rr = r0 + rl;
      const int i = rr / group, h = kvh * group + rr % group;
      dOs[rl * (Dv + 1) + d] = rr < rows ? fs_ld(dout + ((long long)(b * Tq + i) * Hq + h) * Dv + d) : 0.f;
    }
    for (int rl = tid; rl < FS_WARP; rl += nt) {
      const int rr = r0 + rl, i = rr / group, h = kvh * group + rr % group;
      const long long li = ((long long)b * Hq + h) * Tq + i;
      ls[rl] = rr < rows ? lse[li] : -INFINITY;
      dls[rl] = rr < rows ? delta[li] : 0.f;
    }
    __syncthreads();
    if (!valid) continue;
    const int rr = r0 + lane, i = rr / group;
    const bool sees = rr < rows && ls[lane] != -INFINITY && (!causal || j <= i + Tk - Tq);
    float p = 0.f, ds = 0.f;
    if (sees) {
      float dot = 0.f, dp = 0.f;
      for (int d = 0; d < D; d++) dot += Qs[lane * (D + 1) + d] * ks[w * D + d];
      for (int d = 0; d < Dv; d++) dp += dOs[lane * (Dv + 1) + d] * vs[w * Dv + d];
      p = expf(scale * dot - ls[lane]);
      ds = scale * p * (dp - dls[lane]);
    }
    for (int rl = 0; rl < FS_WARP; rl++) {
      const float pr = FS_SHFL(p, rl), dr = FS_SHFL(ds, rl);
#pragma unroll
      for (int t = 0; t < FS_ATTN_ACC; t++) {
        const int d = lane + t * FS_WARP;
        if (d < Dv) dvAcc[t] += pr * dOs[rl * (Dv + 1) + d];
        if (d < D) dkAcc[t] += dr * Qs[rl * (D + 1) + d];
      }
    }
  }
  if (!valid) return;
#pragma unroll
  for (int t = 0; t < FS_ATTN_ACC; t++) {
    const int d = lane + t * FS_WARP;
    if (d < D) fs_st(dk + kRow * D + d, dkAcc[t]);
    if (d < Dv) fs_st(dv + kRow * Dv + d, dvAcc[t]);
  }
}

extern "C" __global__ void fs_attention_fwd_f32(int B, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal, const float *q, const float *k, long long kBatchStride, const float *v, long long vBatchStride, float *o, float *lse) { attn_fwd_impl(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, kBatchStride, v, vBatchStride, o, lse); }
extern "C" __global__ void fs_attention_fwd_bf16(int B, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal, const bf16 *q, const bf16 *k, long long kBatchStride, const bf16 *v, long long vBatchStride, bf16 *o, float *lse) { attn_fwd_impl(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, kBatchStride, v, vBatchStride, o, lse); }
extern "C" __global__ void fs_attention_fwd_cached_f32(int B, int Tq, int Hq, int Hkv, int D, int Dv, float scale, int causal, const float *q, const float *k, long long kSlotStride, const float *v, long long vSlotStride, const int *slots, const int *lens, float *o, float *lse) { attn_fwd_cached_impl(B, Tq, Hq, Hkv, D, Dv, scale, causal, q, k, kSlotStride, v, vSlotStride, slots, lens, o, lse); }
extern "C" __global__ void fs_attention_fwd_cached_bf16(int B, int Tq, int Hq, int Hkv, int D, int Dv, float scale, int causal, const bf16 *q, const bf16 *k, long long kSlotStride, const bf16 *v, long long vSlotStride, const int *slots, const int *lens, bf16 *o, float *lse) { attn_fwd_cached_impl(B, Tq, Hq, Hkv, D, Dv, scale, causal, q, k, kSlotStride, v, vSlotStride, slots, lens, o, lse); }
extern "C" __global__ void fs_attention_bwd_delta_f32(int B, int Tq, int Hq, int Dv, const float *o, const float *dout, float *delta) { attn_bwd_delta_impl(B, Tq, Hq, Dv, o, dout, delta); }
extern "C" __global__ void fs_attention_bwd_delta_bf16(int B, int Tq, int Hq, int Dv, const bf16 *o, const bf16 *dout, float *delta) { attn_bwd_delta_impl(B, Tq, Hq, Dv, o, dout, delta); }
extern "C" __global__ void fs_attention_bwd_dq_f32(int B, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal, const float *q, const float *k, const float *v, const float *lse, const float *delta, const float *dout, float *dq) { attn_bwd_dq_impl(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, v, lse, delta, dout, dq); }
extern "C" __global__ void fs_attention_bwd_dq_bf16(int B, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal, const bf16 *q, const bf16 *k, const bf16 *v, const float *lse, const float *delta, const bf16 *dout, bf16 *dq) { attn_bwd_dq_impl(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, v, lse, delta, dout, dq); }
extern "C" __global__ void fs_attention_bwd_dkdv_f32(int B, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal, const float *q, const float *k, const float *v, const float *lse, const float *delta, const float *dout, float *dk, float *dv) { attn_bwd_dkdv_impl(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, v, lse, delta, dout, dk, dv); }
extern "C" __global__ void fs_attention_bwd_dkdv_bf16(int B, int Tq, int Tk, int Hq, int Hkv, int D, int Dv, float scale, int causal, const bf16 *q, const bf16 *k, const bf16 *v, const float *lse, const float *delta, const bf16 *dout, bf16 *dk, bf16 *dv) { attn_bwd_dkdv_impl(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, v, lse, delta, dout, dk, dv); }
