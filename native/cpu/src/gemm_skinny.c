/* gemm_skinny.c: C[M, N] = alpha * A[M, K] @ B[N, K]^T + beta * C for a few rows (M <= FS_SKINNY_M): decode.
 *
 * Why: a decode step multiplies a few token rows by every weight matrix (nn.Linear's x @ W^T, W stored
 * [out, in]), and each weight element is used M times only: the time is reading W. The small and packed paths
 * transpose W into a panel buffer first (read W, write the panel, read it again); here W is read once, in place.
 * Effect, in packages/models/bench (moe-train, decode step profile, same run as PyTorch): the decode step of the
 * reference MoE went from 12.0 to ~6-7 ms on 1 thread, most of it in the expert GEMMs this path now serves.
 *
 * Order: one W row after another (dot-product form), so memory sees one sequential stream; per 16 k of a W row,
 * 1 W load, MR A loads (L1) and MR FMAs into that row's accumulators. A tile is 4 rows of C x 4 W rows; a hadd tree
 * turns the 16 accumulators into the 16 sums. M > 4 runs the next 4 A rows against the same 4 W rows while they
 * are in L1. Software prefetch runs SK_PF W rows ahead. Threads split N (contiguous W row ranges). */
#include "gemm.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define SK_NB 4 /* columns of C (rows of W) per tile */
#define SK_MB 4 /* rows of C per tile */
#define SK_PF 4 /* prefetch distance in W rows */

/* dot products of rows a[0..mr) (stride lda) with rows b[0..nr) (stride ldb), length K, into s[i][j] */
#if defined(__AVX512F__)
/* MR: rows of A (compile-time, so no FMA runs on a missing row); nr < SK_NB rows of W are zero-loaded */
static inline __attribute__((always_inline)) void dots_mr(const int MR, int nr, int64_t K, const float *a,
                                                          int64_t lda, const float *b, int64_t ldb,
                                                          float s[SK_MB][SK_NB]) {
  __m512 acc[SK_MB][SK_NB];
#pragma GCC unroll 4
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < SK_NB; j++) acc[i][j] = _mm512_setzero_ps();
  /* the W rows that follow these ones in memory (W is [N, K] row-major), one line per 16 k */
  const float *pf = b + SK_PF * ldb;
#pragma GCC unroll 4
  for (int j = 0; j < SK_NB; j++) {
    if (j >= nr) break;
    for (int64_t k = 0; k < K; k += 16) {
      __mmask16 m = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
      _mm_prefetch((const char *)(pf + j * ldb + k), _MM_HINT_T0);
      __m512 bv = _mm512_maskz_loadu_ps(m, b + j * ldb + k);
#pragma GCC unroll 4
      for (int i = 0; i < MR; i++) acc[i][j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i * lda + k), bv, acc[i][j]);
    }
  }
  /* 4 accumulators of a row -> 4 sums: fold 512 -> 256 bits, then two rounds of hadd and a 128-bit fold */
#pragma GCC unroll 4
  for (int i = 0; i < MR; i++) {
    __m256 h[SK_NB];
#pragma GCC unroll 4
    for (int j = 0; j < SK_NB; j++)
      h[j] = _mm256_add_ps(_mm512_castps512_ps256(acc[i][j]),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i][j]), 1)));
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    _mm_storeu_ps(s[i], r);
  }
}

static void dots(int mr, int nr, int64_t K, const float *a, int64_t lda, const float *b, int64_t ldb,
                 float s[SK_MB][SK_NB]) {
  switch (mr) {
    case 1: dots_mr(1, nr, K, a, lda, b, ldb, s); break;
    case 2: dots_mr(2, nr, K, a, lda, b, ldb, s); break;
    case 3: dots_mr(3, nr, K, a, lda, b, ldb, s); break;
    default: dots_mr(4, nr, K, a, lda, b, ldb, s); break;
  }
}
#else
/* portable form: partial sums across a vector-width of k, which GCC vectorises in the AVX2 / scalar variants */
#define SK_L 8
static inline void dots(int mr, int nr, int64_t K, const float *a, int64_t lda, const float *b, int64_t ldb,
                        float s[SK_MB][SK_NB]) {
  for (int i = 0; i < SK_MB; i++)
    for (int j = 0; j < SK_NB; j++) {
      if (i >= mr || j >= nr) { s[i][j] = 0.0f; continue; }
      const float *ai = a + i * lda, *bj = b + j * ldb;
      float p[SK_L] = {0};
      int64_t k = 0;
      for (; k + SK_L <= K; k += SK_L)
        for (int t = 0; t < SK_L; t++) p[t] += ai[k + t] * bj[k + t];
      float x = 0.0f;
      for (; k < K; k++) x += ai[k] * bj[k];
      for (int t = 0; t < SK_L; t++) x += p[t];
      s[i][j] = x;
    }
}
#endif

typedef struct {
  int64_t M, N, K;
  float alpha, beta;
  const float *A, *B;
  int64_t lda, ldb, ldc;
  float *C;
} skinny_job;

/* columns [n0, n1) of C, all M rows */
static void skinny_body(void *p, int64_t n0, int64_t n1) {
  const skinny_job *g = (const skinny_job *)p;
  float s[SK_MB][SK_NB];
  for (int64_t n = n0; n < n1; n += SK_NB) {
    int nr = (int)FS_MIN(SK_NB, n1 - n);
    for (int64_t m = 0; m < g->M; m += SK_MB) {
      int mr = (int)FS_MIN(SK_MB, g->M - m);
      dots(mr, nr, g->K, g->A + m * g->lda, g->lda, g->B + n * g->ldb, g->ldb, s);
      for (int i = 0; i < mr; i++) {
        float *c = g->C + (m + i) * g->ldc + n;
        for (int j = 0; j < nr; j++) c[j] = g->beta == 0.0f ? g->alpha * s[i][j] : g->alpha * s[i][j] + g->beta * c[j];
      }
    }
  }
}

static void skinny_tiles(void *p, int64_t t0, int64_t t1) {
  skinny_body(p, t0 * SK_NB, FS_MIN(t1 * SK_NB, ((const skinny_job *)p)->N));
}

void FS_FN(sgemm_skinny)(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                         int64_t ldb, float beta, float *C, int64_t ldc) {
  skinny_job g = {M, N, K, alpha, beta, A, B, lda, ldb, ldc, C};
  /* memory bound: a thread pays off from ~128 KiB of W (fork/join ~1 us hot, ~10-50 us cold); chunks are whole
   * 4-row tiles so threads never split one */
  int64_t tiles = (N + SK_NB - 1) / SK_NB;
  int64_t grain = FS_MAX(1, (32768 / FS_MAX(K, 1) + SK_NB - 1) / SK_NB);
  if (fs_in_parallel() || tiles < 2 * grain || (!fs_pool_hot() && (double)N * (double)K < 262144.0)) {
    skinny_body(&g, 0, N);
    return;
  }
  fs_parallel_for(tiles, grain, skinny_tiles, &g);
}
