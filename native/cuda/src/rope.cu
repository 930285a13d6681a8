// rope.cu: rotary position embedding, rotate-half (HF Llama) convention. Semantics:
// packages/kernels/src/backend/ts/rope.ts.
//
// x, y [batch, seq, heads, headDim]; positions [batch * seq] int32; invFreq [rotDim / 2] (always f32, also in
// the bf16 variant). With h = rotDim / 2 and angle = pos * invFreq[i] (i < h):
//   y[i]   = x[i]   * cos - x[i+h] * sin
//   y[i+h] = x[i+h] * cos + x[i]   * sin
// Dims >= rotDim are copied. inverse != 0 rotates by -angle (the backward pass). x == y (in place) is allowed.
// The angle is formed in f64 and reduced to [-pi, pi] before an f32 sincos (the reference forms it in f64; a
// plain f32 product would be off by ~pos * 2^-24 rad).
// Launch: grid [batch * seq] (one block per token; <= 2^31 - 1), block [128] (any size), sharedBytes 0.
#include "fs_cuda.cuh"

template <typename T>
__device__ void rope_impl(int batch, int seq, int heads, int headDim, int rotDim, const int *positions,
                          const float *invFreq, int inverse, const T *x, T *y) {
  const long long bt = blockIdx.x;
  if (bt >= (long long)batch * seq) return;
  const int h = rotDim >> 1;
  const double pos = (double)positions[bt];
  const long long tokBase = bt * heads * headDim;
  // pairs (head, i) for i < h: one thread reads both elements of a pair before writing them (in-place safe)
  for (int j = threadIdx.x; j < heads * h; j += blockDim.x) {
    const int hd = j / h, i = j - hd * h;
    double a = pos * (double)invFreq[i];
    a -= 6.283185307179586 * rint(a * 0.15915494309189535);
    float s, c;
    sincosf((float)a, &s, &c);
    if (inverse) s = -s;
    const long long base = tokBase + (long long)hd * headDim;
    const float x0 = fs_ld(x + base + i), x1 = fs_ld(x + base + i + h);
    fs_st(y + base + i, x0 * c - x1 * s);
    fs_st(y + base + i + h, x1 * c + x0 * s);
  }
  const int pass = headDim - rotDim;
  if (pass > 0 && (const void *)x != (const void *)y) {
    for (int j = threadIdx.x; j < heads * pass; j += blockDim.x) {
      const int hd = j / pass, d = rotDim + (j - hd * pass);
      const long long idx = tokBase + (long long)hd * headDim + d;
      y[idx] = x[idx];
    }
  }
}

extern "C" __global__ void fs_rope_f32(int batch, int seq, int heads, int headDim, int rotDim, const int *positions, const float *invFreq, int inverse, const float *x, float *y) { rope_impl(batch, seq, heads, headDim, rotDim, positions, invFreq, inverse, x, y); }
extern "C" __global__ void fs_rope_bf16(int batch, int seq, int heads, int headDim, int rotDim, const int *positions, const float *invFreq, int inverse, const bf16 *x, bf16 *y) { rope_impl(batch, seq, heads, headDim, rotDim, positions, invFreq, inverse, x, y); }
