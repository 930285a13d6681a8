/* gemm_pack.c: packing of the f32 GEMM operands into the microkernel's micro-panels (per ISA variant).
 *
 * A -> MR-row micro-panels, k-major (dst[k*MR + r]); B -> NR-column micro-panels, k-major (dst[k*NR + c]); the
 * last panel is zero padded. "Straight" copies (A stored [K, M], B stored [K, N]) move MR / NR contiguous
 * floats per k. "Transposed" copies (A stored [M, K], B stored [N, K], i.e. the common NN A and NT B) turn rows
 * into columns: the AVX-512 build does them in 16 x 16 blocks with in-register transposes (gemm_tr.h: 16 row
 * loads, 64 shuffles, 16 vector stores) instead of one scalar load/store per element, which made NT/TT ~10 %
 * slower than NN on 512x2048x1408 (the packing of the shared B block is on the critical path between barriers).
 * Other builds keep the portable loops. */
#include "gemm.h"
#if defined(__AVX512F__)
#include "gemm_tr.h"

void FS_FN(pack_a)(int tA, const float *A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float *Ap) {
  const __mmask16 m14 = (__mmask16)((1u << FS_MR) - 1);
  for (int64_t p = 0; p < mc; p += FS_MR) {
    int rows = (int)FS_MIN(FS_MR, mc - p);
    float *dst = Ap + p * kc;
    if (tA) { /* A stored [K, M]: MR contiguous values per k */
      const float *src = A + k0 * lda + i0 + p;
      __mmask16 mr = fs_mask16(rows);
      for (int64_t k = 0; k < kc; k++)
        _mm512_mask_storeu_ps(dst + k * FS_MR, m14, _mm512_maskz_loadu_ps(mr, src + k * lda));
    } else { /* A stored [M, K]: transpose 14 (16 with 2 zero) rows x 16 k at a time */
      const float *src = A + (i0 + p) * lda + k0;
      for (int64_t kb = 0; kb < kc; kb += 16) {
        int64_t kn = FS_MIN(16, kc - kb);
        __m512 r[16];
        if (rows == FS_MR && kn == 16) fs_load_tr16(src + kb, lda, FS_MR, 16, r);
        else fs_load_tr16(src + kb, lda, rows, kn, r);
        for (int64_t kk = 0; kk < kn; kk++) _mm512_mask_storeu_ps(dst + (kb + kk) * FS_MR, m14, r[kk]);
      }
    }
  }
}

void FS_FN(pack_b)(int tB, const float *B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float *Bp) {
  for (int64_t q = 0; q < nc; q += FS_NR) {
    int cols = (int)FS_MIN(FS_NR, nc - q);
    float *dst = Bp + q * kc; /* 64-byte aligned: Bp is, and q*kc*4 is a multiple of 128 */
    if (!tB) { /* B stored [K, N]: NR contiguous values per k */
      const float *src = B + k0 * ldb + j0 + q;
      __mmask16 m0 = fs_mask16(cols), m1 = cols > 16 ? fs_mask16(cols - 16) : 0;
      for (int64_t k = 0; k < kc; k++) {
        _mm512_store_ps(dst + k * FS_NR, _mm512_maskz_loadu_ps(m0, src + k * ldb));
        _mm512_store_ps(dst + k * FS_NR + 16, _mm512_maskz_loadu_ps(m1, src + k * ldb + 16));
      }
    } else { /* B stored [N, K]: 16 k x (two 16-column halves) per step, so each step writes whole 128-byte
              * rows of the panel (a half-by-half pass would re-fetch the 48 KB panel from L2 for the second half) */
      const float *src = B + (j0 + q) * ldb + k0;
      int rows0 = FS_MIN(16, cols), rows1 = FS_MAX(0, cols - 16);
      for (int64_t kb = 0; kb < kc; kb += 16) {
        int64_t kn = FS_MIN(16, kc - kb);
        __m512 r[16];
        if (rows0 == 16 && kn == 16) fs_load_tr16(src + kb, ldb, 16, 16, r);
        else fs_load_tr16(src + kb, ldb, rows0, kn, r);
        for (int64_t kk = 0; kk < kn; kk++) _mm512_store_ps(dst + (kb + kk) * FS_NR, r[kk]);
        if (rows1 == 16 && kn == 16) fs_load_tr16(src + 16 * ldb + kb, ldb, 16, 16, r);
        else if (rows1 > 0) fs_load_tr16(src + 16 * ldb + kb, ldb, rows1, kn, r);
        else for (int i = 0; i < 16; i++) r[i] = _mm512_setzero_ps();
        for (int64_t kk = 0; kk < kn; kk++) _mm512_store_ps(dst + (kb + kk) * FS_NR + 16, r[kk]);
      }
    }
  }
}
#else
void FS_FN(pack_a)(int tA, const float *A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float *Ap) {
  for (int64_t p = 0; p < mc; p += FS_MR) {
    int64_t rows = FS_MIN(FS_MR, mc - p);
    float *dst = Ap + p * kc;
    if (tA) { /* A stored [K, M]: each k gives MR contiguous values */
      const float *src = A + k0 * lda + i0 + p;
      for (int64_t k = 0; k < kc; k++)
        for (int r = 0; r < FS_MR; r++) dst[k * FS_MR + r] = r < rows ? src[k * lda + r] : 0.0f;
    } else { /* A stored [M, K]: gather MR rows */
      const float *src = A + (i0 + p) * lda + k0;
      int64_t r = 0;
      for (; r < rows; r++) {
        const float *s = src + r * lda;
        for (int64_t k = 0; k < kc; k++) dst[k * FS_MR + r] = s[k];
      }
      for (; r < FS_MR; r++)
        for (int64_t k = 0; k < kc; k++) dst[k * FS_MR + r] = 0.0f;
    }
  }
}

void FS_FN(pack_b)(int tB, const float *B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float *Bp) {
  for (int64_t q = 0; q < nc; q += FS_NR) {
    int64_t cols = FS_MIN(FS_NR, nc - q);
    float *dst = Bp + q * kc;
    if (!tB) { /* B stored [K, N]: NR contiguous values per k */
      const float *src = B + k0 * ldb + j0 + q;
      if (cols == FS_NR) {
        for (int64_t k = 0; k < kc; k++)
          for (int c = 0; c < FS_NR; c++) dst[k * FS_NR + c] = src[k * ldb + c];
      } else {
        for (int64_t k = 0; k < kc; k++)
          for (int c = 0; c < FS_NR; c++) dst[k * FS_NR + c] = c < cols ? src[k * ldb + c] : 0.0f;
      }
    } else { /* B stored [N, K]: transpose NR rows */
      const float *src = B + (j0 + q) * ldb + k0;
      int64_t c = 0;
      for (; c < cols; c++) {
        const float *s = src + c * ldb;
        for (int64_t k = 0; k < kc; k++) dst[k * FS_NR + c] = s[k];
      }
      for (; c < FS_NR; c++)
        for (int64_t k = 0; k < kc; k++) dst[k * FS_NR + c] = 0.0f;
    }
  }
}
#endif
