/* sgemm_ukr_scalar.c: portable C microkernel (MR=4, NR=8) for the scalar build; other ISAs use intrinsics. */
#include "gemm.h"
#if !defined(__AVX512F__) && !defined(__AVX2__)
void FS_FN(sgemm_ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, int nr,
                      float alpha, float beta) {
  float acc[FS_MR][FS_NR] = {{0}};
  for (int64_t k = 0; k < kc; k++) {
    for (int r = 0; r < FS_MR; r++)
      for (int j = 0; j < FS_NR; j++) acc[r][j] += a[r] * b[j];
    a += FS_MR;
    b += FS_NR;
  }
  for (int r = 0; r < mr; r++) {
    float *cr = c + r * ldc;
    if (beta == 0.0f)
      for (int j = 0; j < nr; j++) cr[j] = alpha * acc[r][j];
    else
      for (int j = 0; j < nr; j++) cr[j] = alpha * acc[r][j] + beta * cr[j];
  }
}
#endif
