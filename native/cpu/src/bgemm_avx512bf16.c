/* bgemm_avx512bf16.c: bf16 GEMM with AVX-512-BF16 (compiled once, -mavx512bf16 on top of the AVX-512 flags).
 *
 * vdpbf16ps acc, a, b: acc[i] += a[2i]*b[2i] + a[2i+1]*b[2i+1] (f32 accumulate), i.e. one instruction does two k
 * steps of 16 columns. So both operands are packed as k-PAIRS in 32-bit lanes:
 *   A micro-panel (MR=14 rows): a32[kp*14 + r] = {A[r][2kp], A[r][2kp+1]}    (broadcast per row)
 *   B micro-panel (NR=32 cols): b32[kp*32 + c] = {B[2kp][c], B[2kp+1][c]}    (2 zmm per k-pair)
 * An odd K is padded with a zero bf16. Same 14x32 register tile, blocking and shared-B threading as the f32 GEMM
 * (gemm.c); KC counts k (even). M == 1 / N == 1 (decode, memory bound) take the GEMV path below, which streams the
 * matrix once without packing; other M or N < 4 fall back to the AVX-512 bgemm (bgemm.c: widen + f32 GEMM). */
#include <immintrin.h>
#include "fs_kernels.h"

#define BMR 14
#define BNR 32
#define BKC 512 /* k per block: 14 x 256 pairs x 4 B = 14 KiB A micro-panel, 32 KiB B micro-panel */
#define BMC 140
#define BNC 2048

static inline uint32_t pair(uint16_t lo, uint16_t hi) { return (uint32_t)lo | ((uint32_t)hi << 16); }

/* op(A)[i0.., k0..k0+kc) -> k-pair panels; A is [M,K] (tA=0) or [K,M] (tA=1) */
static void pack_a(int tA, const uint16_t *A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc, uint32_t *Ap) {
  int64_t kp = (kc + 1) / 2;
  for (int64_t p = 0; p < mc; p += BMR) {
    int64_t rows = FS_MIN(BMR, mc - p);
    uint32_t *dst = Ap + p * kp;
    for (int64_t q = 0; q < kp; q++) {
      int64_t k = k0 + 2 * q;
      int hasHi = 2 * q + 1 < kc;
      for (int r = 0; r < BMR; r++) {
        uint32_t v = 0;
        if (r < rows) {
          int64_t i = i0 + p + r;
          if (tA) v = pair(A[k * lda + i], hasHi ? A[(k + 1) * lda + i] : 0);
          else v = pair(A[i * lda + k], hasHi ? A[i * lda + k + 1] : 0);
        }
        dst[q * BMR + r] = v;
      }
    }
  }
}

/* op(B)[k0..k0+kc), j0..] -> k-pair panels; B is [K,N] (tB=0) or [N,K] (tB=1) */
static void pack_b(int tB, const uint16_t *B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc, uint32_t *Bp) {
  int64_t kp = (kc + 1) / 2;
  for (int64_t q0 = 0; q0 < nc; q0 += BNR) {
    int64_t cols = FS_MIN(BNR, nc - q0);
    uint32_t *dst = Bp + q0 * kp;
    if (!tB) {
      for (int64_t q = 0; q < kp; q++) {
        const uint16_t *r0 = B + (k0 + 2 * q) * ldb + j0 + q0;
        const uint16_t *r1 = 2 * q + 1 < kc ? r0 + ldb : NULL;
        if (cols == BNR && r1)
          for (int c = 0; c < BNR; c++) dst[q * BNR + c] = pair(r0[c], r1[c]);
        else
          for (int c = 0; c < BNR; c++) dst[q * BNR + c] = c < cols ? pair(r0[c], r1 ? r1[c] : 0) : 0;
      }
    } else {
      for (int64_t qb = 0; qb < kp; qb += 16) /* 16-pair slabs keep the strided writes inside L1 */
        for (int c = 0; c < BNR; c++) {
          int64_t qe = FS_MIN(kp, qb + 16);
          if (c >= cols) { for (int64_t q = qb; q < qe; q++) dst[q * BNR + c] = 0; continue; }
          const uint16_t *s = B + (j0 + q0 + c) * ldb + k0;
          for (int64_t q = qb; q < qe; q++) dst[q * BNR + c] = pair(s[2 * q], 2 * q + 1 < kc ? s[2 * q + 1] : 0);
        }
    }
  }
}

static void ukr(int64_t kp, const uint32_t *a, const uint32_t *b, float *c, int64_t ldc, int mr, int nr, float alpha,
                float beta) {
  __m512 acc[BMR][2];
#pragma GCC unroll 14
  for (int r = 0; r < BMR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t q = 0; q < kp; q++) {
    __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)b), b1 = (__m512bh)_mm512_load_si512((const void *)(b + 16));
#pragma GCC unroll 14
    for (int r = 0; r < BMR; r++) {
      __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
    }
    a += BMR;
    b += BNR;
  }
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
  __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
#pragma GCC unroll 14
  for (int r = 0; r < BMR; r++) {
    if (r >= mr) break;
    float *cr = c + r * ldc;
    __m512 x0 = _mm512_mul_ps(acc[r][0], va), x1 = _mm512_mul_ps(acc[r][1], va);
    if (beta != 0.0f) {
      x0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, cr), vb, x0);
      x1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, cr + 16), vb, x1);
    }
    _mm512_mask_storeu_ps(cr, m0, x0);
    _mm512_mask_storeu_ps(cr + 16, m1, x1);
  }
}

typedef struct {
  int tA, tB;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  const uint16_t *A, *B;
  float *C;
  uint32_t *Bp;
  fs_barrier bar;
} bjob;

/* rows split across the team, B block packed cooperatively (see gemm.c gemm_team_shared) */
static void bteam(void *p, int tid, int nth) {
  bjob *g = (bjob *)p;
  int64_t mb = (g->M + BMR - 1) / BMR;
  int64_t m0 = FS_MIN(g->M, mb * tid / nth * BMR), m1 = FS_MIN(g->M, mb * (tid + 1) / nth * BMR);
  int64_t kpmax = (FS_MIN(g->K, BKC) + 1) / 2;
  uint32_t *Ap = (uint32_t *)fs_scratch(0, (size_t)(BMC * kpmax) * 4);
  for (int64_t jc = 0; jc < g->N; jc += BNC) {
    int64_t nc = FS_MIN(BNC, g->N - jc), nq = (nc + BNR - 1) / BNR;
    for (int64_t pc = 0; pc < g->K; pc += BKC) {
      int64_t kc = FS_MIN(BKC, g->K - pc), kp = (kc + 1) / 2;
      float be = pc == 0 ? g->beta : 1.0f;
      int64_t q0 = nq * tid / nth * BNR, q1 = FS_MIN(nc, nq * (tid + 1) / nth * BNR);
      fs_barrier_wait(&g->bar, nth);
      if (q1 > q0) pack_b(g->tB, g->B, g->ldb, pc, kc, jc + q0, q1 - q0, g->Bp + q0 * kp);
      fs_barrier_wait(&g->bar, nth);
      if (!Ap) continue;
      for (int64_t ic = m0; ic < m1; ic += BMC) {
        int64_t mc = FS_MIN(BMC, m1 - ic);
        pack_a(g->tA, g->A, g->lda, ic, mc, pc, kc, Ap);
        for (int64_t jr = 0; jr < nc; jr += BNR) {
          int nr = (int)FS_MIN(BNR, nc - jr);
          for (int64_t ir = 0; ir < mc; ir += BMR)
            ukr(kp, Ap + ir * kp, g->Bp + jr * kp, g->C + (ic + ir) * g->ldc + jc + jr, g->ldc,
                (int)FS_MIN(BMR, mc - ir), nr, g->alpha, be);
        }
      }
    }
  }
}

/* ---- GEMV (M == 1 or N == 1): y[j] = alpha * sum_k x[k] * Mat(k, j) + beta * y[j*incy], j < n ----------------
 * Dot form (Mat(k, j) = Mt[j*ld + k]: W stored [N,K], nn.Linear): x and a row of W are both contiguous bf16, so
 * 32 elements of each are one zmm of k-pairs and one vdpbf16ps does 32 multiply-adds; 4 accumulators per row,
 * masked loads for the tail (any K, odd included). Axpy form (Mat(k, j) = Mt[k*ld + j]: W stored [K,N]): two rows
 * k, k+1 are interleaved into k-pairs with vpunpckl/hwd and multiplied by the broadcast pair {x[k], x[k+1]}; the
 * unpack leaves columns permuted within each 32-column group (lo: 0-3, 8-11, 16-19, 24-27; hi: the other 16),
 * the f32 accumulators of a column block stay in that order in L1 and are put back in order once at the end.
 * Rows are swept 8 at a time over a block of up to GV_CB = 4096 columns, so each pass reads 8 long contiguous
 * row segments (measured 1x4096x4096, 1 thread: blocks of 512 / 1024 / 2048 / 4096 columns 2.6 / 2.3 / 1.9 /
 * 1.6 ms; 4 / 8 / 16 rows per pass 1.8 / 1.6 / 1.8 ms). */
typedef struct {
  int kmajor;
  int64_t n, K, ld, incy;
  float alpha, beta;
  const uint16_t *x, *Mt;
  float *y;
} bgemv_job;

static inline void gv_store(const bgemv_job *g, int64_t j, float s) {
  float *yj = g->y + j * g->incy;
  *yj = g->beta == 0.0f ? g->alpha * s : g->alpha * s + g->beta * *yj;
}

static void gv_dot(const bgemv_job *g, int64_t b, int64_t e) {
  const int64_t K = g->K;
  const uint16_t *x = g->x;
  int64_t kfull = K & ~(int64_t)127;
  for (int64_t j = b; j < e; j++) {
    const uint16_t *r = g->Mt + j * g->ld;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < kfull; k += 128) {
      a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(x + k), (__m512bh)_mm512_loadu_si512(r + k));
      a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(x + k + 32), (__m512bh)_mm512_loadu_si512(r + k + 32));
      a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(x + k + 64), (__m512bh)_mm512_loadu_si512(r + k + 64));
      a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(x + k + 96), (__m512bh)_mm512_loadu_si512(r + k + 96));
    }
    for (int64_t k = kfull; k < K; k += 32) {
      int64_t c = FS_MIN(32, K - k);
      __mmask32 m = c == 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << c) - 1);
      a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_maskz_loadu_epi16(m, x + k), (__m512bh)_mm512_maskz_loadu_epi16(m, r + k));
    }
    gv_store(g, j, _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))));
  }
}

#define GV_CB 4096 /* axpy form: columns per block (16 KiB of f32 accumulators, 8 KiB of each row per pass) */
#define GV_ROWS 8    /* rows per pass over the block */
static void gv_axpy(const bgemv_job *g, int64_t b, int64_t e) {
  const int64_t K = g->K, ld = g->ld;
  const uint16_t *x = g->x;
  float acc[GV_CB] __attribute__((aligned(64)));
  for (int64_t j0 = b; j0 < e; j0 += GV_CB) {
    int64_t w = FS_MIN(GV_CB, e - j0);
    int64_t ng = (w + 31) / 32; /* 32-column groups; the last one masked */
    __mmask32 mlast = (w & 31) ? (__mmask32)((1u << (w & 31)) - 1) : (__mmask32)0xFFFFFFFFu;
    for (int64_t q = 0; q < ng * 32; q += 16) _mm512_store_ps(acc + q, _mm512_setzero_ps());
    int64_t k = 0;
    for (; k + GV_ROWS <= K; k += GV_ROWS) {
      const uint16_t *r = g->Mt + k * ld + j0;
      __m512bh xp[GV_ROWS / 2];
#pragma GCC unroll 4
      for (int p = 0; p < GV_ROWS / 2; p++)
        xp[p] = (__m512bh)_mm512_set1_epi32((int)((uint32_t)x[k + 2 * p] | ((uint32_t)x[k + 2 * p + 1] << 16)));
      for (int64_t q = 0; q < ng; q++) {
        __mmask32 m = q == ng - 1 ? mlast : (__mmask32)0xFFFFFFFFu;
        __m512 lo = _mm512_load_ps(acc + 32 * q), hi = _mm512_load_ps(acc + 32 * q + 16);
#pragma GCC unroll 4
        for (int p = 0; p < GV_ROWS / 2; p++) {
          __m512i r0 = _mm512_maskz_loadu_epi16(m, r + (2 * p) * ld + 32 * q);
          __m512i r1 = _mm512_maskz_loadu_epi16(m, r + (2 * p + 1) * ld + 32 * q);
          lo = _mm512_dpbf16_ps(lo, xp[p], (__m512bh)_mm512_unpacklo_epi16(r0, r1));
          hi = _mm512_dpbf16_ps(hi, xp[p], (__m512bh)_mm512_unpackhi_epi16(r0, r1));
        }
        _mm512_store_ps(acc + 32 * q, lo);
        _mm512_store_ps(acc + 32 * q + 16, hi);
      }
    }
    for (; k < K; k += 2) { /* 0..7 leftover rows, in pairs (a missing k+1 row pairs with a zero) */
      const uint16_t *r = g->Mt + k * ld + j0;
      int has1 = k + 1 < K;
      __m512bh xp = (__m512bh)_mm512_set1_epi32((int)((uint32_t)x[k] | (has1 ? (uint32_t)x[k + 1] << 16 : 0u)));
      for (int64_t q = 0; q < ng; q++) {
        __mmask32 m = q == ng - 1 ? mlast : (__mmask32)0xFFFFFFFFu;
        __m512i r0 = _mm512_maskz_loadu_epi16(m, r + 32 * q);
        __m512i r1 = has1 ? _mm512_maskz_loadu_epi16(m, r + ld + 32 * q) : _mm512_setzero_si512();
        __m512 lo = _mm512_load_ps(acc + 32 * q), hi = _mm512_load_ps(acc + 32 * q + 16);
        lo = _mm512_dpbf16_ps(lo, xp, (__m512bh)_mm512_unpacklo_epi16(r0, r1));
        hi = _mm512_dpbf16_ps(hi, xp, (__m512bh)_mm512_unpackhi_epi16(r0, r1));
        _mm512_store_ps(acc + 32 * q, lo);
        _mm512_store_ps(acc + 32 * q + 16, hi);
      }
    }
    /* un-permute: lo holds 128-bit chunks {0-3, 8-11, 16-19, 24-27}, hi {4-7, 12-15, 20-23, 28-31} */
    const __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i i1 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int64_t q = 0; q < ng; q++) {
      __m512 lo = _mm512_load_ps(acc + 32 * q), hi = _mm512_load_ps(acc + 32 * q + 16);
      __m512 c0 = _mm512_permutex2var_ps(lo, i0, hi), c1 = _mm512_permutex2var_ps(lo, i1, hi);
      int64_t jb = j0 + 32 * q, cnt = FS_MIN(32, e - jb);
      if (g->incy == 1 && cnt == 32 && g->beta == 0.0f) {
        __m512 va = _mm512_set1_ps(g->alpha);
        _mm512_storeu_ps(g->y + jb, _mm512_mul_ps(c0, va));
        _mm512_storeu_ps(g->y + jb + 16, _mm512_mul_ps(c1, va));
      } else {
        float t[32];
        _mm512_storeu_ps(t, c0);
        _mm512_storeu_ps(t + 16, c1);
        for (int64_t c = 0; c < cnt; c++) gv_store(g, jb + c, t[c]);
      }
    }
  }
}

static void gv_body(void *p, int64_t b, int64_t e) {
  const bgemv_job *g = (const bgemv_job *)p;
  if (g->kmajor) gv_axpy(g, b, e);
  else gv_dot(g, b, e);
}

static void bgemv(int kmajor, int64_t n, int64_t K, float alpha, const uint16_t *x, int64_t incx, const uint16_t *Mt,
                  int64_t ld, float beta, float *y, int64_t incy) {
  if (incx != 1) { /* strided vector: gather once (K bf16), read by the workers during the job only */
    uint16_t *xc = (uint16_t *)fs_scratch(2, (size_t)K * sizeof(uint16_t));
    if (!xc) return;
    for (int64_t k = 0; k < K; k++) xc[k] = x[k * incx];
    x = xc;
  }
  bgemv_job g = {kmajor, n, K, ld, incy, alpha, beta, x, Mt, y};
  /* memory bound: split outputs across threads once there is >= ~256 KiB of matrix per thread */
  int64_t grain = kmajor ? FS_MAX(64, (131072 / FS_MAX(K, 1) + 63) & ~(int64_t)63) : FS_MAX(1, 131072 / FS_MAX(K, 1));
  fs_parallel_for(n, grain, gv_body, &g);
}

void fsk_bgemm_avx512bf16(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                          int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K > 0 && alpha != 0.0f) {
    if (M == 1) { /* decode: y[1,N] = x[1,K] @ op(B) */
      bgemv(!tB, N, K, alpha, A, tA ? lda : 1, B, ldb, beta, C, 1);
      return;
    }
    if (N == 1) { /* C[:,0] = op(A) @ b */
      bgemv(tA, M, K, alpha, B, tB ? 1 : ldb, A, lda, beta, C, ldc);
      return;
    }
  }
  if (M < 4 || N < 4 || K <= 0 || alpha == 0.0f) {
    fsk_bgemm_avx512(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  int64_t kpmax = (FS_MIN(K, BKC) + 1) / 2, ncmax = FS_MIN((N + BNR - 1) / BNR * BNR, BNC);
  uint32_t *Bp = (uint32_t *)fs_scratch(1, (size_t)(kpmax * ncmax) * 4);
  if (!Bp) return;
  bjob g = {tA, tB, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C, Bp, {0, 0}};
  int nth = fs_pool_size();
  double work = (double)M * (double)N * (double)K;
  int64_t mb = (M + BMR - 1) / BMR;
  if (fs_in_parallel() || work < 128.0 * 128 * 128 || mb < 2 * nth) nth = 1;
  if (nth > 1) fs_parallel_team(nth, bteam, &g);
  else bteam(&g, 0, 1);
}
