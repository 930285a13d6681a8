// fs_cuda.cuh: helpers shared by every farskip CUDA kernel file (warp / block reductions, bf16 load/store,
// grid-stride loops). Written for hipify-perl: no inline PTX, no cooperative groups, warp size as FS_WARP.
//
// Storage types: float (f32) and __nv_bfloat16 (bf16). Math and accumulation are always f32 (sumAxis and the
// rmsnorm weight-gradient finalisation accumulate in f64). bf16 stores round to nearest even with every NaN
// written as the canonical quiet NaN 0x7FC0, bit for bit the rule of the CPU reference (backend/ts/bf16.ts);
// loads are exact (bits << 16). Integer index buffers are int32; element counts of flat ops are int64.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#if defined(__HIP_PLATFORM_AMD__) || defined(__HIPCC__)
// HIP (CDNA wave64; RDNA runs wave32 and would need FS_WARP 32 and a wave32 build: see README)
#define FS_WARP 64
#define FS_SHFL_XOR(v, m) __shfl_xor((v), (m))
#define FS_SHFL(v, src) __shfl((v), (src))
#else
#define FS_WARP 32
#define FS_SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m))
#define FS_SHFL(v, src) __shfl_sync(0xffffffffu, (v), (src))
#endif

// dynamic shared memory (sharedBytes of the launch) as a float array; the CPU emulation (native/cuda/emu) hands
// out a per-block buffer instead
#ifdef FS_EMU
#define FS_DYN_SMEM(name) float *name = fs_emu_dyn_smem()
#else
#define FS_DYN_SMEM(name) extern __shared__ float name[]
#endif

// max warps per block (blocks are at most 1024 threads)
#define FS_MAX_WARPS (1024 / FS_WARP)

typedef __nv_bfloat16 bf16;

// ---- bf16 <-> f32 (bit-exact with backend/ts/bf16.ts) ------------------------------------------------------

__device__ __forceinline__ float fs_bf16_bits_to_f32(unsigned short b) {
  return __uint_as_float(((unsigned int)b) << 16);
}

__device__ __forceinline__ unsigned short fs_f32_to_bf16_bits(float f) {
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)0x7fc0u;  // NaN -> canonical quiet NaN
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);       // round to nearest, ties to even
}

__device__ __forceinline__ float fs_ld(const float *p) { return *p; }
__device__ __forceinline__ float fs_ld(const bf16 *p) { return fs_bf16_bits_to_f32(__bfloat16_as_ushort(*p)); }
__device__ __forceinline__ void fs_st(float *p, float v) { *p = v; }
__device__ __forceinline__ void fs_st(bf16 *p, float v) { *p = __ushort_as_bfloat16(fs_f32_to_bf16_bits(v)); }

// ---- NaN-propagating max (the CPU reference: `if (v > mx || v !== v) mx = v`) -----------------------------

__device__ __forceinline__ float fs_nanmax(float a, float b) { return (a != a || a > b) ? a : b; }

// ---- warp reductions (every lane gets the result) ---------------------------------------------------------

__device__ __forceinline__ float fs_warp_sum(float v) {
#pragma unroll
  for (int m = FS_WARP / 2; m > 0; m >>= 1) v += FS_SHFL_XOR(v, m);
  return v;
}

__device__ __forceinline__ float fs_warp_max(float v) {
#pragma unroll
  for (int m = FS_WARP / 2; m > 0; m >>= 1) v = fs_nanmax(v, FS_SHFL_XOR(v, m));
  return v;
}

// ---- block reductions over a 1-D block (blockDim.x a multiple of FS_WARP, <= 1024; every thread gets the
// result). `scratch` is FS_MAX_WARPS floats of shared memory; the call starts with a barrier, so back-to-back
// reductions may share one scratch. Every thread of the block must call it. --------------------------------

__device__ __forceinline__ float fs_block_sum(float v, float *scratch) {
  const int lane = threadIdx.x % FS_WARP, warp = threadIdx.x / FS_WARP, nw = blockDim.x / FS_WARP;
  v = fs_warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nw ? scratch[lane] : 0.f;
  r = fs_warp_sum(r);
  return r;
}

__device__ __forceinline__ float fs_block_max(float v, float *scratch) {
  const int lane = threadIdx.x % FS_WARP, warp = threadIdx.x / FS_WARP, nw = blockDim.x / FS_WARP;
  v = fs_warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nw ? scratch[lane] : -INFINITY;
  r = fs_warp_max(r);
  return r;
}

// ---- grid-stride loop over [0, n) for flat kernels (grid: any size; block: any size) ----------------------

#define FS_GRID_STRIDE(i, n)                                                                  \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (long long)(n); \
       i += (long long)blockDim.x * gridDim.x)

__device__ __forceinline__ float fs_sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
