/* gemm_small.c: no-pack f32 GEMM for small problems (AVX-512 variant only; other variants use the packed path).
 *
 * Why: at 64^3 the packed Goto path spends ~1/3 of its ~7 us packing A and B and padding 64 rows to 14-row
 * panels. Here A is read in place (broadcast loads of A(i,k) straight from the caller's rows, either layout)
 * and B is read in place when stored [K, N] (row k of B = 32 contiguous columns of the tile); only a B stored
 * [N, K] (tB = 1, nn.Linear's x @ W^T) is packed once per call into a thread-local buffer of 32-column panels
 * (pack_b, 16x16 in-register transposes). Tile: 8 rows x 32 columns (16 zmm accumulators; per k 2 B loads and
 * 8 broadcast-FMA pairs), so 64 = 8 x 8 rows wastes nothing (the packed path's 14-row panels pad 64 to 70).
 * Loop order: 32-column chunk outer (its K x 32 B slab stays in L1 for K <= 256), 8-row tiles inner.
 * Eligibility (gemm.h, FS_SMALL_OK): K <= 512 and K * N <= 128 Ki floats (B in L2), M <= 256. */
#include "gemm.h"
#if defined(FS_SMALL_GEMM)
#include "gemm_tr.h"

#define SM_MR 8

/* C[mr x (16*nv masked by m0/m1)] = alpha * op(A)[mr x K] @ B[K x cols] + beta * C (beta == 0: C not read).
 * ta = 0: A(i,k) = a[i*lda + k]; ta = 1: A(i,k) = a[k*lda + i]. B(k,j) = b[k*ldb + j]. */
static inline __attribute__((always_inline)) void tile(const int mr, const int nv, const int ta, int64_t K,
                                                       const float *a, int64_t lda, const float *b, int64_t ldb,
                                                       float *c, int64_t ldc, __mmask16 m0, __mmask16 m1,
                                                       float alpha, float beta) {
  __m512 acc[SM_MR][2];
#pragma GCC unroll 8
  for (int r = 0; r < SM_MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k++) {
    const float *bk = b + k * ldb;
    __m512 b0 = _mm512_maskz_loadu_ps(m0, bk), b1 = _mm512_setzero_ps();
    if (nv == 2) b1 = _mm512_maskz_loadu_ps(m1, bk + 16);
#pragma GCC unroll 8
    for (int r = 0; r < SM_MR; r++) {
      if (r >= mr) break;
      __m512 ar = _mm512_set1_ps(ta ? a[k * lda + r] : a[r * lda + k]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      if (nv == 2) acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
  }
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < SM_MR; r++) {
    if (r >= mr) break;
    float *cr = c + r * ldc;
    __m512 x0 = _mm512_mul_ps(acc[r][0], va);
    if (beta != 0.0f) x0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, cr), vb, x0);
    _mm512_mask_storeu_ps(cr, m0, x0);
    if (nv == 2) {
      __m512 x1 = _mm512_mul_ps(acc[r][1], va);
      if (beta != 0.0f) x1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, cr + 16), vb, x1);
      _mm512_mask_storeu_ps(cr + 16, m1, x1);
    }
  }
}

#define SM_CASE(R, NV, TA) case R: tile(R, NV, TA, K, a, lda, b, ldb, c, ldc, m0, m1, alpha, beta); break;
#define SM_SWITCH(NV, TA)                                                                                        \
  switch (mr) {                                                                                                 \
    SM_CASE(1, NV, TA) SM_CASE(2, NV, TA) SM_CASE(3, NV, TA) SM_CASE(4, NV, TA) SM_CASE(5, NV, TA)              \
    SM_CASE(6, NV, TA) SM_CASE(7, NV, TA) default: tile(8, NV, TA, K, a, lda, b, ldb, c, ldc, m0, m1, alpha, beta); \
  }

static void tile_any(int mr, int nv, int ta, int64_t K, const float *a, int64_t lda, const float *b, int64_t ldb,
                     float *c, int64_t ldc, __mmask16 m0, __mmask16 m1, float alpha, float beta) {
  if (ta) {
    if (nv == 2) { SM_SWITCH(2, 1) } else { SM_SWITCH(1, 1) }
  } else {
    if (nv == 2) { SM_SWITCH(2, 0) } else { SM_SWITCH(1, 0) }
  }
}

void FS_FN(sgemm_small)(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  /* B stored [N, K]: pack it into the packed path's NR = 32-column panels ([K][32] each, zero padded, 16x16
   * in-register transposes): the tile then reads 128 contiguous bytes per k, whatever N is (a [K, N]-strided
   * copy with N = 2048 would put every k row of a chunk in the same L1 set) */
  const float *Bt = NULL;
  if (tB) {
    int64_t np = (N + 31) & ~(int64_t)31;
    float *buf = (float *)fs_scratch(1, (size_t)(K * np) * sizeof(float));
    if (!buf) return;
    FS_FN(pack_b)(1, B, ldb, 0, K, 0, N, buf);
    Bt = buf;
  }
  for (int64_t j0 = 0; j0 < N; j0 += 32) {
    int64_t nc = FS_MIN(32, N - j0);
    int nv = nc > 16 ? 2 : 1;
    __mmask16 m0 = fs_mask16(nc), m1 = nc > 16 ? fs_mask16(nc - 16) : 0;
    const float *b = tB ? Bt + j0 * K : B + j0;
    int64_t ldbb = tB ? 32 : ldb;
    for (int64_t i0 = 0; i0 < M; i0 += SM_MR) {
      int mr = (int)FS_MIN(SM_MR, M - i0);
      const float *a = tA ? A + i0 : A + i0 * lda;
      tile_any(mr, nv, tA, K, a, lda, b, ldbb, C + i0 * ldc + j0, ldc, m0, m1, alpha, beta);
    }
  }
}
#endif
