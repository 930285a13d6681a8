/* bgemm_avx512bf16.c: placeholder until the vdpbf16ps kernel lands: widen and use the AVX-512 f32 GEMM. */
#include "fs_kernels.h"
void fsk_bgemm_avx512bf16(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                          int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  fsk_bgemm_avx512(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
