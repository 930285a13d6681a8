/* sgemm_ukr_avx512.c: AVX-512 microkernel, 14x32: 28 zmm accumulators, 2 B vectors per k, A broadcast from
 * memory (vfmadd231ps zmm, zmm, [a]{1to16}). Edges: full tile computed on zero-padded panels, store masked. */
#include "gemm.h"
#if defined(__AVX512F__)
#include <immintrin.h>
void FS_FN(sgemm_ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                      float alpha, float beta) {
  __m512 acc[14][2];
#pragma GCC unroll 14
  for (int r = 0; r < 14; r++) {
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    if (r < mr) _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
  }
  for (int64_t k = 0; k < kc; k++) {
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int r = 0; r < 14; r++) {
      __m512 ar = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += 14;
    b += 32;
  }
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
  __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
#pragma GCC unroll 14
  for (int r = 0; r < 14; r++) {
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
#endif
