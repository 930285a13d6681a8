/* sgemm_ukr_avx2.c: AVX2+FMA microkernel, 6x16 (12 ymm accumulators + 2 B vectors + 1 broadcast). */
#include "gemm.h"
#if defined(__AVX2__) && !defined(__AVX512F__)
#include <immintrin.h>
void FS_FN(sgemm_ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                      float alpha, float beta) {
  __m256 acc[6][2];
#pragma GCC unroll 6
  for (int r = 0; r < 6; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < 6; r++) {
      __m256 ar = _mm256_broadcast_ss(a + r);
      acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += 6;
    b += 16;
  }
  __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (nr == 16) {
#pragma GCC unroll 6
    for (int r = 0; r < 6; r++) {
      if (r >= mr) break;
      float *cr = c + r * ldc;
      __m256 x0 = _mm256_mul_ps(acc[r][0], va), x1 = _mm256_mul_ps(acc[r][1], va);
      if (beta != 0.0f) {
        x0 = _mm256_fmadd_ps(_mm256_loadu_ps(cr), vb, x0);
        x1 = _mm256_fmadd_ps(_mm256_loadu_ps(cr + 8), vb, x1);
      }
      _mm256_storeu_ps(cr, x0);
      _mm256_storeu_ps(cr + 8, x1);
    }
    return;
  }
  float tmp[16];
  for (int r = 0; r < 6; r++) {
    if (r >= mr) break;
    float *cr = c + r * ldc;
    _mm256_storeu_ps(tmp, _mm256_mul_ps(acc[r][0], va));
    _mm256_storeu_ps(tmp + 8, _mm256_mul_ps(acc[r][1], va));
    if (beta != 0.0f)
      for (int j = 0; j < nr; j++) cr[j] = tmp[j] + beta * cr[j];
    else
      for (int j = 0; j < nr; j++) cr[j] = tmp[j];
  }
}
#endif
