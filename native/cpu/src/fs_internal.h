/* fs_internal.h: private helpers shared by every source file of libfarskip_cpu.
 *
 * Per-ISA build: every "kernel" source is compiled once per ISA variant with -DFS_VARIANT=<tag> and that
 * variant's -m flags (tags: scalar, avx2, avx512). FS_FN(name) suffixes the symbol so the three copies can
 * live in one .so; dispatch.c picks a table of function pointers at load time. Generic files (dispatch.c,
 * threadpool.c) are compiled once without ISA flags. */
#ifndef FS_INTERNAL_H
#define FS_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../include/farskip_cpu.h"

#define FS_HIDDEN __attribute__((visibility("hidden")))
#define FS_CAT2(a, b) a##_##b
#define FS_CAT(a, b) FS_CAT2(a, b)
#ifdef FS_VARIANT
#define FS_FN(name) FS_CAT(fsk_##name, FS_VARIANT)
#endif
#define FS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FS_LIKELY(x) __builtin_expect(!!(x), 1)
#define FS_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- thread pool (threadpool.c, ISA independent) ---------------------------------------------------
 * fs_parallel_for: split [0,n) into contiguous chunks of at least `grain` items, one per thread, and run
 * fn(ctx, begin, end) on each (the calling thread takes the first chunk). Runs inline when one chunk.
 * fs_parallel_dyn: same, but threads grab chunks of `grain` items from an atomic counter (uneven work).
 * fs_parallel_team: run fn(ctx, tid, nth) on nth threads (nth clipped to the pool size). */
typedef void (*fs_range_fn)(void *ctx, int64_t begin, int64_t end);
typedef void (*fs_team_fn)(void *ctx, int tid, int nth);
FS_HIDDEN int fs_pool_size(void);
FS_HIDDEN int fs_pool_hot(void);      /* 1 when the workers are spinning (fork/join costs < 1 us) */
FS_HIDDEN int fs_in_parallel(void);   /* 1 inside a parallel region: nested calls run serially */
FS_HIDDEN void fs_parallel_team(int nth, fs_team_fn fn, void *ctx);
FS_HIDDEN void fs_parallel_for(int64_t n, int64_t grain, fs_range_fn fn, void *ctx);
FS_HIDDEN void fs_parallel_dyn(int64_t n, int64_t grain, fs_range_fn fn, void *ctx);
/* spin barrier for the threads of one fs_parallel_team job (nth = the team size passed to the job) */
typedef struct {
  volatile int count;
  volatile int gen;
} fs_barrier;
FS_HIDDEN void fs_barrier_wait(fs_barrier *b, int nth);
/* thread-local, 64-byte aligned scratch that only grows (slot 0..3); never freed. NULL on OOM. */
FS_HIDDEN void *fs_scratch(int slot, size_t bytes);

/* ---- numerics helpers (plain C, auto-vectorised by each ISA build) ------------------------------------ */
static inline uint32_t fs_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float fs_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Branch-free expf (Cephes polynomial, ~1-2 ulp on the normal range) written so loops calling it vectorise.
 * exp(-inf) = 0, exp(+inf) = inf, NaN propagates, results below FLT_MIN flush to 0. */
static inline float fs_expf(float x) {
  float xc = x < -87.3f ? -87.3f : x;
  xc = xc > 88.7f ? 88.7f : xc;
  float t = xc * 1.44269504088896341f + 12582912.0f; /* round to nearest via 1.5*2^23 */
  float n = t - 12582912.0f;
  int32_t ni = (int32_t)n;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  /* 2^n split in two factors so n = 128 (x just below the overflow bound) stays finite */
  float s1 = fs_u2f((uint32_t)(ni + 126) << 23);
  float res = p * s1 * 2.0f;
  res = x > 88.72283935546875f ? __builtin_inff() : res;
  res = x < -87.33654475f ? 0.0f : res;
  res = x != x ? x : res;
  return res;
}

/* pairwise sum: 16 running partials over blocks of <= 256, halves combined recursively (error ~ log n) */
static inline float fs_sum_block(const float *x, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] += x[i + j];
  float tail = 0.0f;
  for (; i < n; i++) tail += x[i];
  for (int w = 8; w >= 1; w >>= 1)
    for (int j = 0; j < w; j++) acc[j] += acc[j + w];
  return acc[0] + tail;
}
static inline float fs_sum_pairwise(const float *x, int64_t n) {
  if (n <= 256) return fs_sum_block(x, n);
  int64_t h = (n / 2 + 15) & ~(int64_t)15;
  return fs_sum_pairwise(x, h) + fs_sum_pairwise(x + h, n - h);
}
static inline float fs_max_block(const float *x, int64_t n) {
  float acc[16];
  for (int j = 0; j < 16; j++) acc[j] = -__builtin_inff();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  float m = -__builtin_inff();
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  for (int j = 0; j < 16; j++) m = acc[j] > m ? acc[j] : m;
  return m;
}
/* row max that propagates NaN (a NaN anywhere makes the whole softmax row NaN, like PyTorch) */
static inline float fs_row_max(const float *x, int64_t n) {
  float m = fs_max_block(x, n);
  if (m != m) return m;
  int nan = 0;
  for (int64_t i = 0; i < n; i++) nan |= x[i] != x[i];
  return nan ? __builtin_nanf("") : m;
}
#endif
