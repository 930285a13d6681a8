/* bgemm.c: bf16-input GEMM for the builds without AVX-512-BF16 (scalar, AVX2, AVX-512F): widen the operands to
 * f32 (exact: bf16 is the top half of an f32) and run the f32 GEMM. The result therefore equals the f32 GEMM
 * of the widened inputs. The AVX-512-BF16 build uses bgemm_avx512bf16.c instead (which falls back to this file's
 * AVX-512 variant for the cases it does not handle itself).
 *
 * M == 1 (decode: x[1,K] @ op(W)) and N == 1 take a GEMV path that streams the matrix once, widening each
 * element in registers (shift + FMA, f32 accumulation), instead of widening all of B into a temporary; memory
 * bound, parallel over outputs. Dot form (W stored [N,K], nn.Linear) or axpy form (W stored [K,N]). */
#include <stdlib.h>
#include "fs_internal.h"

FS_HIDDEN void FS_FN(sgemm)(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                            const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

static inline float bf(uint16_t v) { return fs_u2f((uint32_t)v << 16); }

/* widen rows x cols (row stride ld) into a packed rows x cols f32 matrix */
static void widen(int64_t rows, int64_t cols, const uint16_t *x, int64_t ld, float *y) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) y[r * cols + c] = bf(x[r * ld + c]);
}

/* ---- GEMV: y[j] = alpha * sum_k x[k] * Mat(k, j) + beta * y[j*incy], j < n ----------------------------------
 * x is the widened f32 vector (K floats). kmajor: Mat(k, j) = Mt[k*ld + j] (axpy form, stream rows of a [K,N]
 * matrix over a block of columns); else Mat(k, j) = Mt[j*ld + k] (dot form over rows of an [N,K] matrix). */
typedef struct {
  int kmajor;
  int64_t n, K, ld, incy;
  float alpha, beta;
  const float *x;
  const uint16_t *Mt;
  float *y;
} bgemv_job;

#define BGEMV_W 4096 /* axpy form: columns per block (8 KiB of bf16 per row, 16 KiB of f32 accumulators) */
static void bgemv_body(void *p, int64_t b, int64_t e) {
  const bgemv_job *g = (const bgemv_job *)p;
  const float *x = g->x;
  if (g->kmajor) {
    for (int64_t j0 = b; j0 < e; j0 += BGEMV_W) {
      int64_t w = FS_MIN(BGEMV_W, e - j0);
      float acc[BGEMV_W];
      for (int64_t j = 0; j < w; j++) acc[j] = 0.0f;
      int64_t k = 0;
      for (; k + 4 <= g->K; k += 4) {
        const uint16_t *r0 = g->Mt + k * g->ld + j0, *r1 = r0 + g->ld, *r2 = r1 + g->ld, *r3 = r2 + g->ld;
        float x0 = x[k], x1 = x[k + 1], x2 = x[k + 2], x3 = x[k + 3];
        for (int64_t j = 0; j < w; j++) acc[j] += x0 * bf(r0[j]) + x1 * bf(r1[j]) + x2 * bf(r2[j]) + x3 * bf(r3[j]);
      }
      for (; k < g->K; k++) {
        const uint16_t *r0 = g->Mt + k * g->ld + j0;
        float x0 = x[k];
        for (int64_t j = 0; j < w; j++) acc[j] += x0 * bf(r0[j]);
      }
      for (int64_t j = 0; j < w; j++) {
        float *yj = g->y + (j0 + j) * g->incy;
        *yj = g->beta == 0.0f ? g->alpha * acc[j] : g->alpha * acc[j] + g->beta * *yj;
      }
    }
  } else {
    for (int64_t j = b; j < e; j++) {
      const uint16_t *r = g->Mt + j * g->ld;
      float acc[64] = {0}; /* 64 partial sums: 4 independent FMA chains in the AVX-512 build */
      int64_t k = 0;
      for (; k + 64 <= g->K; k += 64)
        for (int t = 0; t < 64; t++) acc[t] += x[k + t] * bf(r[k + t]);
      for (; k + 16 <= g->K; k += 16)
        for (int t = 0; t < 16; t++) acc[t] += x[k + t] * bf(r[k + t]);
      float s = 0.0f;
      for (; k < g->K; k++) s += x[k] * bf(r[k]);
      for (int w = 32; w >= 1; w >>= 1)
        for (int t = 0; t < w; t++) acc[t] += acc[t + w];
      s += acc[0];
      float *yj = g->y + j * g->incy;
      *yj = g->beta == 0.0f ? g->alpha * s : g->alpha * s + g->beta * *yj;
    }
  }
}

static void bgemv(int kmajor, int64_t n, int64_t K, float alpha, const uint16_t *x, int64_t incx, const uint16_t *Mt,
                  int64_t ld, float beta, float *y, int64_t incy) {
  float *xf = (float *)fs_scratch(2, (size_t)K * sizeof(float)); /* read by the workers during the job only */
  if (!xf) return;
  for (int64_t k = 0; k < K; k++) xf[k] = bf(x[k * incx]);
  bgemv_job g = {kmajor, n, K, ld, incy, alpha, beta, xf, Mt, y};
  /* memory bound: split outputs across threads once there is >= ~256 KiB of matrix per thread */
  int64_t grain = kmajor ? FS_MAX(64, (131072 / FS_MAX(K, 1) + 63) & ~(int64_t)63) : FS_MAX(1, 131072 / FS_MAX(K, 1));
  fs_parallel_for(n, grain, bgemv_body, &g);
}

void FS_FN(bgemm)(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A, int64_t lda,
                  const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc) {
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
  int64_t ar = tA ? K : M, ac = tA ? M : K, br = tB ? N : K, bc = tB ? K : N;
  float *Af = (float *)malloc((size_t)(ar * ac + br * bc + 1) * sizeof(float));
  if (!Af) return;
  float *Bf = Af + ar * ac;
  widen(ar, ac, A, lda, Af);
  widen(br, bc, B, ldb, Bf);
  FS_FN(sgemm)(tA, tB, M, N, K, alpha, Af, ac, Bf, bc, beta, C, ldc);
  free(Af);
}
