// fs_emu.h: a CPU emulation of the part of the CUDA execution model the farskip kernels use, so their logic
// (indexing, masking, reductions, launch geometry) can be tested against the CPU reference on a machine without a
// GPU. Force-included (g++ -include) before the kernel sources; a fake <cuda_bf16.h> beside it maps to this file.
//
// Model: blocks run one after another; the threads of a block are fibers on one OS thread (fs_emu.cpp), switched
// at barriers, so __syncthreads is a real barrier and __shared__ (mapped to `static`) is shared by the block. Warp
// shuffles exchange through per-thread slots between two warp barriers, so they must be reached by every live lane
// of the warp (the kernels only shuffle warp-uniformly). A thread that returns leaves every barrier (as on Volta+).
// A barrier that can never open (a deadlock in the kernel's control flow) is reported, then abort().
// What it cannot show: most races between threads that do not meet at a barrier (there are only two fixed fiber
// orders: forward in even blocks, reverse in odd ones), GPU float rounding of expf / logf / sincosf (glibc's are used), register / shared-memory limits, speed.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct fs_emu_dim3 { unsigned int x, y, z; };
extern fs_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;  // set by the scheduler for the running thread

// ---- runtime (fs_emu.cpp) -------------------------------------------------------------------------------------
void fs_emu_syncthreads();
// exchange 8 bytes with lane `src` of this warp (every live lane of the warp must call it)
uint64_t fs_emu_shfl(uint64_t v, int src, bool isXor);
float *fs_emu_dyn_smem();
void fs_emu_atomic_add(float *p, float v);

#define __syncthreads() fs_emu_syncthreads()

template <typename T>
inline T fs_emu_shfl_t(T v, int m, bool isXor) {
  static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
  uint64_t u = 0;
  memcpy(&u, &v, sizeof(T));
  u = fs_emu_shfl(u, m, isXor);
  T r;
  memcpy(&r, &u, sizeof(T));
  return r;
}
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int m) { return fs_emu_shfl_t(v, m, true); }
template <typename T> inline T __shfl_sync(unsigned, T v, int src) { return fs_emu_shfl_t(v, src, false); }

inline float atomicAdd(float *p, float v) { fs_emu_atomic_add(p, v); return 0.f; }

template <typename A, typename B> inline auto min(A a, B b) -> decltype(a + b) { return a < b ? a : b; }
template <typename A, typename B> inline auto max(A a, B b) -> decltype(a + b) { return a > b ? a : b; }

inline float __uint_as_float(unsigned int u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int u; memcpy(&u, &f, 4); return u; }

// ---- bf16 storage type (the subset of cuda_bf16.h the kernels use) -----------------------------------------
struct __nv_bfloat16 { unsigned short x; };
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 b; b.x = u; return b; }
