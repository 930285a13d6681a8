/* bgemm.c: bf16-input GEMM for the builds without AVX-512-BF16 (scalar, AVX2, AVX-512F): widen the operands to
 * f32 (exact: bf16 is the top half of an f32) and run the f32 GEMM. The result therefore equals the f32 GEMM
 * of the widened inputs. The AVX-512-BF16 build uses bgemm_avx512bf16.c instead. */
#include <stdlib.h>
#include "fs_internal.h"

FS_HIDDEN void FS_FN(sgemm)(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                            const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* widen rows x cols (row stride ld) into a packed rows x cols f32 matrix */
static void widen(int64_t rows, int64_t cols, const uint16_t *x, int64_t ld, float *y) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) y[r * cols + c] = fs_u2f((uint32_t)x[r * ld + c] << 16);
}

void FS_FN(bgemm)(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A, int64_t lda,
                  const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  int64_t ar = tA ? K : M, ac = tA ? M : K, br = tB ? N : K, bc = tB ? K : N;
  float *Af = (float *)malloc((size_t)(ar * ac + br * bc + 1) * sizeof(float));
  if (!Af) return;
  float *Bf = Af + ar * ac;
  widen(ar, ac, A, lda, Af);
  widen(br, bc, B, ldb, Bf);
  FS_FN(sgemm)(tA, tB, M, N, K, alpha, Af, ac, Bf, bc, beta, C, ldc);
  free(Af);
}
