/* grouped.c: grouped (MoE expert) GEMM forward and weight gradient, built on the f32 GEMM driver.
 * Big groups: one group after another, each GEMM parallel inside. Many small groups: groups spread over the
 * pool (dynamic, one group per grab) with each GEMM single-threaded on its worker. */
#include "fs_internal.h"

FS_HIDDEN void FS_FN(sgemm)(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                            const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

typedef struct {
  const int32_t *off;
  int transW, wgrad;
  int64_t N, K;
  const float *X, *W;
  float beta;
  float *Y;
} grp_job;

static void grp_one(const grp_job *g, int64_t e) {
  int64_t r0 = g->off[e], n = (int64_t)g->off[e + 1] - r0;
  int64_t N = g->N, K = g->K;
  if (!g->wgrad) {
    if (n <= 0) return;
    const float *We = g->W + e * K * N;
    FS_FN(sgemm)(0, g->transW, n, N, K, 1.0f, g->X + r0 * K, K, We, g->transW ? K : N, g->beta, g->Y + r0 * N, N);
  } else { /* W = dY here, Y = dW */
    float *dWe = g->Y + e * K * N;
    if (!g->transW) /* dW_e[K,N] = X_e^T dY_e */
      FS_FN(sgemm)(1, 0, K, N, n, 1.0f, g->X + r0 * K, K, g->W + r0 * N, N, g->beta, dWe, N);
    else /* dW_e[N,K] = dY_e^T X_e */
      FS_FN(sgemm)(1, 0, N, K, n, 1.0f, g->W + r0 * N, N, g->X + r0 * K, K, g->beta, dWe, K);
  }
}

static void grp_body(void *p, int64_t s, int64_t e) {
  for (int64_t i = s; i < e; i++) grp_one((const grp_job *)p, i);
}

static void grp_run(int64_t E, grp_job *g) {
  if (E <= 0) return;
  double maxw = 0;
  for (int64_t e = 0; e < E; e++) {
    double w = (double)(g->off[e + 1] - g->off[e]) * (double)g->N * (double)g->K;
    if (w > maxw) maxw = w;
  }
  if (maxw >= 256.0 * 256 * 256 || E == 1)
    grp_body(g, 0, E);
  else
    fs_parallel_dyn(E, 1, grp_body, g);
}

void FS_FN(grouped_sgemm)(int64_t E, const int32_t *offsets, int transW, int64_t N, int64_t K, const float *X,
                          const float *W, float beta, float *Y) {
  grp_job g = {offsets, transW, 0, N, K, X, W, beta, Y};
  grp_run(E, &g);
}
void FS_FN(grouped_sgemm_wgrad)(int64_t E, const int32_t *offsets, int transW, int64_t N, int64_t K, const float *X,
                                const float *dY, float beta, float *dW) {
  grp_job g = {offsets, transW, 1, N, K, X, dY, beta, dW};
  grp_run(E, &g);
}
