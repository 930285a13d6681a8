/* bgemm_avx512bf16.c: bf16 GEMM with AVX-512-BF16 (compiled once, -mavx512bf16 on top of the AVX-512 flags).
 *
 * vdpbf16ps acc, a, b: acc[i] += a[2i]*b[2i] + a[2i+1]*b[2i+1] (f32 accumulate), i.e. one instruction does two k
 * steps of 16 columns. So both operands are packed as k-PAIRS in 32-bit lanes:
 *   A micro-panel (MR=14 rows): a32[kp*14 + r] = {A[r][2kp], A[r][2kp+1]}    (broadcast per row)
 *   B micro-panel (NR=32 cols): b32[kp*32 + c] = {B[2kp][c], B[2kp+1][c]}    (2 zmm per k-pair)
 * An odd K is padded with a zero bf16. Same 14x32 register tile, blocking and shared-B threading as the f32 GEMM
 * (gemm.c); KC counts k (even). M or N < 4 (GEMV-like, memory bound) falls back to widen + f32 GEMM. */
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

void fsk_bgemm_avx512bf16(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                          int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
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
