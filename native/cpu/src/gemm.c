/* gemm.c: f32 GEMM driver (per ISA variant): packing, Goto loop nest, thread split, GEMV path, batched.
 * See gemm.h for the blocking scheme. Transposes are absorbed by the packing routines (gemm_pack.c), so the
 * microkernel and hence the speed are the same for all four (transA, transB) combinations. Small problems take
 * the no-pack path of gemm_small.c (AVX-512 build). */
#include <stdlib.h>
#include "gemm.h"

#define pack_a FS_FN(pack_a)
#define pack_b FS_FN(pack_b)

/* KC step for depth K: ceil(K / blocks) rounded up to 16, so K = 2048 runs as 6 x 352 - 64 instead of
 * 5 x 384 + 128 (a thin last block pays the C load/store of every tile for little work) */
static int64_t kc_step(int64_t K) {
  int64_t nblk = (K + FS_KC - 1) / FS_KC;
  return FS_MIN(FS_KC, ((K + nblk - 1) / nblk + 15) & ~(int64_t)15);
}

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++) {
    float *c = C + i * ldc;
    if (beta == 0.0f)
      for (int64_t j = 0; j < N; j++) c[j] = 0.0f;
    else
      for (int64_t j = 0; j < N; j++) c[j] *= beta;
  }
}

/* Goto loop nest on the C block rows [0,M) cols [0,N); A, B, C already offset to the block. */
void FS_FN(sgemm_serial)(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) { scale_c(M, N, beta, C, ldc); return; }
#ifdef FS_SMALL_GEMM
  if (FS_SMALL_OK(M, N, K)) { FS_FN(sgemm_small)(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); return; }
#endif
  int64_t kcmax = FS_MIN(K, FS_KC);
  int64_t mcmax = FS_MIN((M + FS_MR - 1) / FS_MR * FS_MR, FS_MC);
  int64_t ncmax = FS_MIN((N + FS_NR - 1) / FS_NR * FS_NR, FS_NC);
  float *Ap = (float *)fs_scratch(0, (size_t)(mcmax * kcmax) * sizeof(float));
  float *Bp = (float *)fs_scratch(1, (size_t)(ncmax * kcmax) * sizeof(float));
  if (!Ap || !Bp) return;
  int64_t kstep = kc_step(K);
  for (int64_t jc = 0; jc < N; jc += FS_NC) {
    int64_t nc = FS_MIN(FS_NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += kstep) {
      int64_t kc = FS_MIN(kstep, K - pc);
      float be = pc == 0 ? beta : 1.0f;
      const float *Bsrc = tB ? B + jc * ldb : B + jc;
      pack_b(tB, Bsrc, ldb, pc, kc, 0, nc, Bp);
      for (int64_t ic = 0; ic < M; ic += FS_MC) {
        int64_t mc = FS_MIN(FS_MC, M - ic);
        const float *Asrc = tA ? A + ic : A + ic * lda;
        pack_a(tA, Asrc, lda, 0, mc, pc, kc, Ap);
        for (int64_t jr = 0; jr < nc; jr += FS_NR) {
          int nr = (int)FS_MIN(FS_NR, nc - jr);
          for (int64_t ir = 0; ir < mc; ir += FS_MR) {
            int mr = (int)FS_MIN(FS_MR, mc - ir);
            FS_FN(sgemm_ukr)(kc, Ap + ir * kc, Bp + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc, mr, nr, alpha, be);
          }
        }
      }
    }
  }
}

/* ---- GEMV: y[j] = alpha * sum_k x[k] * Mat(k, j) + beta * y[j*incy], j < n --------------------------------
 * kmajor: Mat(k, j) = Mt[k*ld + j] (axpy form, stream rows); else Mat(k, j) = Mt[j*ld + k] (dot form). */
typedef struct {
  int kmajor;
  int64_t n, K, ld, incy;
  float alpha, beta;
  const float *x, *Mt;
  float *y;
} gemv_job;

#define FS_GEMV_W 2048
static void gemv_body(void *p, int64_t b, int64_t e) {
  const gemv_job *g = (const gemv_job *)p;
  if (g->kmajor) {
    for (int64_t j0 = b; j0 < e; j0 += FS_GEMV_W) {
      int64_t w = FS_MIN(FS_GEMV_W, e - j0);
      float acc[FS_GEMV_W];
      for (int64_t j = 0; j < w; j++) acc[j] = 0.0f;
      int64_t k = 0;
      for (; k + 4 <= g->K; k += 4) {
        const float *r0 = g->Mt + k * g->ld + j0, *r1 = r0 + g->ld, *r2 = r1 + g->ld, *r3 = r2 + g->ld;
        float x0 = g->x[k], x1 = g->x[k + 1], x2 = g->x[k + 2], x3 = g->x[k + 3];
        for (int64_t j = 0; j < w; j++) acc[j] += x0 * r0[j] + x1 * r1[j] + x2 * r2[j] + x3 * r3[j];
      }
      for (; k < g->K; k++) {
        const float *r0 = g->Mt + k * g->ld + j0;
        float x0 = g->x[k];
        for (int64_t j = 0; j < w; j++) acc[j] += x0 * r0[j];
      }
      for (int64_t j = 0; j < w; j++) {
        float *yj = g->y + (j0 + j) * g->incy;
        *yj = g->beta == 0.0f ? g->alpha * acc[j] : g->alpha * acc[j] + g->beta * *yj;
      }
    }
  } else {
    for (int64_t j = b; j < e; j++) {
      const float *r = g->Mt + j * g->ld;
      float acc[16] = {0};
      int64_t k = 0;
      for (; k + 16 <= g->K; k += 16)
        for (int t = 0; t < 16; t++) acc[t] += g->x[k + t] * r[k + t];
      float s = 0.0f;
      for (; k < g->K; k++) s += g->x[k] * r[k];
      for (int t = 0; t < 16; t++) s += acc[t];
      float *yj = g->y + j * g->incy;
      *yj = g->beta == 0.0f ? g->alpha * s : g->alpha * s + g->beta * *yj;
    }
  }
}

static void gemv(int kmajor, int64_t n, int64_t K, float alpha, const float *x, int64_t incx, const float *Mt,
                 int64_t ld, float beta, float *y, int64_t incy) {
  float *xc = NULL;
  if (incx != 1) { /* strided vector: gather once (K floats) */
    xc = (float *)fs_scratch(2, (size_t)K * sizeof(float));
    if (!xc) return;
    for (int64_t k = 0; k < K; k++) xc[k] = x[k * incx];
    x = xc;
  }
  gemv_job g = {kmajor, n, K, ld, incy, alpha, beta, x, Mt, y};
  /* memory bound: split columns across threads once there is >= ~256 KiB of matrix per thread */
  int64_t grain = kmajor ? FS_MAX(64, (65536 / FS_MAX(K, 1) + 63) & ~(int64_t)63) : FS_MAX(1, 65536 / FS_MAX(K, 1));
  fs_parallel_for(n, grain, gemv_body, &g);
}

/* ---- threaded driver: 2-D split of C into per-thread blocks (each thread packs its own panels; the duplicated
 * packing of the shared operand costs O(1/NC) of the flops and avoids barriers) ---- */
typedef struct {
  int tA, tB;
  int64_t M, N, K;
  float alpha, beta;
  const float *A, *B;
  float *C;
  int64_t lda, ldb, ldc;
  int tm, tn;
} gemm_job;

static void gemm_team(void *p, int tid, int nth) {
  const gemm_job *g = (const gemm_job *)p;
  (void)nth;
  int ti = tid / g->tn, tj = tid % g->tn;
  int64_t mb = (g->M + FS_MR - 1) / FS_MR, nb = (g->N + FS_NR - 1) / FS_NR;
  int64_t m0 = FS_MIN(g->M, mb * ti / g->tm * FS_MR), m1 = FS_MIN(g->M, mb * (ti + 1) / g->tm * FS_MR);
  int64_t n0 = FS_MIN(g->N, nb * tj / g->tn * FS_NR), n1 = FS_MIN(g->N, nb * (tj + 1) / g->tn * FS_NR);
  if (m1 <= m0 || n1 <= n0) return;
  const float *A = g->tA ? g->A + m0 : g->A + m0 * g->lda;
  const float *B = g->tB ? g->B + n0 * g->ldb : g->B + n0;
  FS_FN(sgemm_serial)(g->tA, g->tB, m1 - m0, n1 - n0, g->K, g->alpha, A, g->lda, B, g->ldb, g->beta,
                      g->C + m0 * g->ldc + n0, g->ldc);
}

/* Shared-B split (BLIS "ic loop" parallelism): every thread owns a contiguous range of MR-row panels of C and
 * packs its own A blocks, while the KC x NC block of B is packed cooperatively (each thread packs 1/nth of the
 * NR panels) between two barriers and then read by all threads. The B working set is that of one thread, which
 * matters when the "cores" are SMT siblings sharing L1/L2 (as on the 2-vCPU Zen 4 VMs this was tuned on) and
 * halves the B packing traffic on real cores. */
typedef struct {
  gemm_job g;
  float *Bp;
  fs_barrier bar;
} shared_job;

static void gemm_team_shared(void *p, int tid, int nth) {
  shared_job *sj = (shared_job *)p;
  const gemm_job *g = &sj->g;
  int64_t mb = (g->M + FS_MR - 1) / FS_MR;
  int64_t m0 = FS_MIN(g->M, mb * tid / nth * FS_MR), m1 = FS_MIN(g->M, mb * (tid + 1) / nth * FS_MR);
  int64_t kcmax = FS_MIN(g->K, FS_KC);
  float *Ap = (float *)fs_scratch(0, (size_t)(FS_MC_SHARED * kcmax) * sizeof(float));
  float *Bp = sj->Bp;
  int64_t kstep = kc_step(g->K);
  for (int64_t jc = 0; jc < g->N; jc += FS_NC) {
    int64_t nc = FS_MIN(FS_NC, g->N - jc), nq = (nc + FS_NR - 1) / FS_NR;
    for (int64_t pc = 0; pc < g->K; pc += kstep) {
      int64_t kc = FS_MIN(kstep, g->K - pc);
      float be = pc == 0 ? g->beta : 1.0f;
      int64_t q0 = nq * tid / nth * FS_NR, q1 = FS_MIN(nc, nq * (tid + 1) / nth * FS_NR);
      fs_barrier_wait(&sj->bar, nth); /* everyone is done reading the previous B block */
      if (q1 > q0) {
        const float *Bsrc = g->tB ? g->B + (jc + q0) * g->ldb : g->B + jc + q0;
        pack_b(g->tB, Bsrc, g->ldb, pc, kc, 0, q1 - q0, Bp + q0 * kc);
      }
      fs_barrier_wait(&sj->bar, nth); /* B block complete */
      if (!Ap) continue;
      for (int64_t ic = m0; ic < m1; ic += FS_MC_SHARED) {
        int64_t mc = FS_MIN(FS_MC_SHARED, m1 - ic);
        const float *Asrc = g->tA ? g->A + ic : g->A + ic * g->lda;
        pack_a(g->tA, Asrc, g->lda, 0, mc, pc, kc, Ap);
        for (int64_t jr = 0; jr < nc; jr += FS_NR) {
          int nr = (int)FS_MIN(FS_NR, nc - jr);
          for (int64_t ir = 0; ir < mc; ir += FS_MR) {
            int mr = (int)FS_MIN(FS_MR, mc - ir);
            FS_FN(sgemm_ukr)(kc, Ap + ir * kc, Bp + jr * kc, g->C + (ic + ir) * g->ldc + jc + jr, g->ldc, mr, nr,
                             g->alpha, be);
          }
        }
      }
    }
  }
}

#ifdef FS_SMALL_GEMM
/* small path on 2+ threads: each thread runs the no-pack kernel on a block of whole 16-column groups or of
 * whole 8-row strips of C (whichever split pads less); an NT thread transposes only its own columns of B. */
typedef struct {
  gemm_job g;
  int split_n;
} small_job;

static void small_team(void *p, int tid, int nth) {
  const small_job *sj = (const small_job *)p;
  const gemm_job *g = &sj->g;
  if (sj->split_n) {
    int64_t nb = (g->N + 15) / 16;
    int64_t n0 = FS_MIN(g->N, nb * tid / nth * 16), n1 = FS_MIN(g->N, nb * (tid + 1) / nth * 16);
    if (n1 <= n0) return;
    const float *B = g->tB ? g->B + n0 * g->ldb : g->B + n0;
    FS_FN(sgemm_small)(g->tA, g->tB, g->M, n1 - n0, g->K, g->alpha, g->A, g->lda, B, g->ldb, g->beta, g->C + n0,
                       g->ldc);
  } else {
    int64_t mb = (g->M + 7) / 8;
    int64_t m0 = FS_MIN(g->M, mb * tid / nth * 8), m1 = FS_MIN(g->M, mb * (tid + 1) / nth * 8);
    if (m1 <= m0) return;
    const float *A = g->tA ? g->A + m0 : g->A + m0 * g->lda;
    FS_FN(sgemm_small)(g->tA, g->tB, m1 - m0, g->N, g->K, g->alpha, A, g->lda, g->B, g->ldb, g->beta,
                       g->C + m0 * g->ldc, g->ldc);
  }
}
#endif

void FS_FN(sgemm)(int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) { scale_c(M, N, beta, C, ldc); return; }
  if (M <= FS_SKINNY_M && tB && !tA && K >= 16) { /* decode rows against nn.Linear weights [out, in] */
    FS_FN(sgemm_skinny)(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M == 1) { /* decode: y[1,N] = x[1,K] @ op(B) */
    gemv(!tB, N, K, alpha, A, tA ? lda : 1, B, ldb, beta, C, 1);
    return;
  }
  if (N == 1) { /* C[:,0] = op(A) @ b */
    gemv(tA, M, K, alpha, B, tB ? 1 : ldb, A, lda, beta, C, ldc);
    return;
  }
  double work = (double)M * (double)N * (double)K;
  int nth = fs_pool_size();
#ifdef FS_SMALL_GEMM
  /* small path: worth two threads from ~48^3 when the workers are spinning (fork/join < 1 us); below 160^3 with
   * the workers asleep, run serially and wake them in the background so the next call of a loop finds them hot */
  if (FS_SMALL_OK(M, N, K)) {
    if (nth > 1 && !fs_in_parallel() && work >= FS_SMALL_PAR_WORK) {
      if (work >= 160.0 * 160 * 160 || fs_pool_hot()) { /* big enough to pay a cold wake-up (~10-50 us) */
        int64_t nb = (N + 15) / 16, mb = (M + 7) / 8;
        double cn = (double)((nb + nth - 1) / nth) * 16 * (double)(mb * 8);
        double cm = (double)((mb + nth - 1) / nth) * 8 * (double)(nb * 16) * (tB ? 1.1 : 1.0); /* NT: dup transpose */
        small_job sj = {{tA, tB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, 1, 1}, cn <= cm};
        fs_parallel_team(nth, small_team, &sj);
        return;
      }
      fs_pool_warm();
    }
    FS_FN(sgemm_small)(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#endif
  if (fs_in_parallel() || work < 96.0 * 96 * 96 || (work < 160.0 * 160 * 160 && !fs_pool_hot())) nth = 1;
  int64_t mb = (M + FS_MR - 1) / FS_MR, nb = (N + FS_NR - 1) / FS_NR;
  if (nth > mb * nb) nth = (int)(mb * nb);
  if (nth <= 1) {
    FS_FN(sgemm_serial)(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (mb >= 4 * nth) {
    int64_t kcmax = FS_MIN(K, FS_KC), ncmax = FS_MIN(nb * FS_NR, FS_NC);
    float *Bp = (float *)fs_scratch(1, (size_t)(kcmax * ncmax) * sizeof(float));
    if (Bp) {
      shared_job sj = {{tA, tB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, nth, 1}, Bp, {0, 0}};
      fs_parallel_team(nth, gemm_team_shared, &sj);
      return;
    }
  }
  /* small M: pick tm x tn = nth minimising the largest (padded) per-thread block */
  int best_tm = 1, best_tn = nth;
  double best = 1e300;
  for (int tm = 1; tm <= nth; tm++) {
    if (nth % tm) continue;
    int tn = nth / tm;
    double cost = (double)((mb + tm - 1) / tm) * FS_MR * (double)((nb + tn - 1) / tn) * FS_NR;
    cost *= 1.0 + 0.02 * (tm > 1) ; /* mild preference for splitting N: A panels stay private per thread */
    if (cost < best) { best = cost; best_tm = tm; best_tn = tn; }
  }
  gemm_job g = {tA, tB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, best_tm, best_tn};
  fs_parallel_team(nth, gemm_team, &g);
}

/* ---- batched: parallel across the batch when each GEMM is small, else parallel inside each GEMM ---- */
typedef struct {
  int tA, tB;
  int64_t M, N, K, lda, ldb, ldc, sA, sB, sC;
  float alpha, beta;
  const float *A, *B;
  float *C;
} batch_job;

static void batch_body(void *p, int64_t b, int64_t e) {
  const batch_job *g = (const batch_job *)p;
  for (int64_t i = b; i < e; i++)
    FS_FN(sgemm)(g->tA, g->tB, g->M, g->N, g->K, g->alpha, g->A + i * g->sA, g->lda, g->B + i * g->sB, g->ldb,
                 g->beta, g->C + i * g->sC, g->ldc);
}

void FS_FN(sgemm_batched)(int64_t batch, int tA, int tB, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB,
                          float beta, float *C, int64_t ldc, int64_t sC) {
  if (batch <= 0) return;
  batch_job g = {tA, tB, M, N, K, lda, ldb, ldc, sA, sB, sC, alpha, beta, A, B, C};
  double work = (double)M * (double)N * (double)K;
  if (work >= 256.0 * 256 * 256 || batch == 1) {
    batch_body(&g, 0, batch);
  } else {
    int64_t grain = (int64_t)(96.0 * 96 * 96 / (work + 1.0)) + 1; /* >= ~1 MFLOP per task */
    fs_parallel_for(batch, grain, batch_body, &g);
  }
}
