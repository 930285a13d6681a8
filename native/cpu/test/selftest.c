/* selftest.c: checks every libfarskip_cpu function on every ISA path (fs_set_isa) against naive
 * double-precision loops, on odd sizes. Build + run: node tooling/build-native.mjs --test */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "farskip_cpu.h"

static int g_fail = 0, g_checks = 0;
static const char *g_isa_name[] = {"scalar", "avx2", "avx512", "avx512bf16"};
static unsigned long long g_rng = 88172645463325252ULL;
static double urand(void) { g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17; return (double)(g_rng >> 11) / 9007199254740992.0; }
static float frand(void) { return (float)(urand() * 2.0 - 1.0); }
static float *fvec(int64_t n) { float *p = malloc((size_t)(n > 0 ? n : 1) * 4); for (int64_t i = 0; i < n; i++) p[i] = frand(); return p; }
static double *dvec(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), 8); }

/* |got - ref| <= atol + rtol * |scale| elementwise; scale defaults to |ref| */
static void check(const char *what, int64_t n, const float *got, const double *ref, const double *scale, double rtol, double atol) {
  g_checks++;
  double worst = 0; int64_t wi = -1;
  for (int64_t i = 0; i < n; i++) {
    double r = ref[i], g = got[i], s = scale ? scale[i] : fabs(r);
    if (isnan(r) && isnan(g)) continue;
    if (isinf(r) && g == r) continue;
    double e = fabs(g - r), lim = atol + rtol * s;
    if (!(e <= lim)) { double q = isnan(e) ? 1e300 : e / lim; if (q > worst || wi < 0) { worst = q; wi = i; } }
  }
  if (wi >= 0) {
    g_fail++;
    if (g_fail < 60) printf("FAIL [%s] %s: n=%lld first bad i=%lld got %.9g ref %.9g (err/lim %.3g)\n", g_isa_name[fs_isa()], what, (long long)n, (long long)wi, got[wi], ref[wi], worst);
  }
}

static uint16_t f2b(float f) { uint32_t u; memcpy(&u, &f, 4); if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0; return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16); }
static float b2f(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; memcpy(&f, &u, 4); return f; }

static void test_gemm(void) {
  static const int64_t S[][3] = {{1, 1, 1}, {3, 17, 33}, {17, 3, 1}, {63, 65, 127}, {65, 63, 3}, {1, 127, 65}, {127, 1, 63},
                                 {33, 33, 33}, {64, 64, 64}, {129, 97, 300}, {200, 513, 130}, {2, 700, 400}, {700, 2, 33}, {301, 257, 517},
                                 /* M == 1 / N == 1 GEMV paths: K past the 128-wide dot loop, N past a 4096-column axpy block,
                                  * odd K, splits over 2 threads that are not multiples of 32 */
                                 {1, 300, 1000}, {1, 4200, 70}, {1, 37, 2051}, {1000, 1, 517}, {4200, 1, 9},
                                 /* skinny path (M <= 8, B stored [N, K]): odd N and K, a 2-thread split */
                                 {2, 9, 17}, {5, 37, 19}, {8, 1030, 300}, {3, 4101, 70}, {7, 513, 257}, {4, 6, 16}};
  for (size_t si = 0; si < sizeof S / sizeof S[0]; si++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int bc = 0; bc < 2; bc++) {
          int64_t M = S[si][0], N = S[si][1], K = S[si][2];
          int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 5;
          float *A = fvec((ta ? K : M) * lda), *B = fvec((tb ? N : K) * ldb), *C = fvec(M * ldc), *C0 = malloc((size_t)(M * ldc) * 4);
          float alpha = 0.75f, beta = bc ? -0.5f : 0.0f;
          if (!bc) for (int64_t i = 0; i < M * ldc; i++) C[i] = NAN;
          memcpy(C0, C, (size_t)(M * ldc) * 4);
          double *ref = dvec(M * N), *sc = dvec(M * N);
          float *got = malloc((size_t)(M * N) * 4);
          for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
              double s = 0, a = 0;
              for (int64_t k = 0; k < K; k++) {
                double x = ta ? A[k * lda + i] : A[i * lda + k], y = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += x * y; a += fabs(x * y);
              }
              ref[i * N + j] = alpha * s + (bc ? beta * C0[i * ldc + j] : 0);
              sc[i * N + j] = fabs(alpha) * a + (bc ? fabs(beta * C0[i * ldc + j]) : 0);
            }
          fs_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
          for (int64_t i = 0; i < M; i++) memcpy(got + i * N, C + i * ldc, (size_t)N * 4);
          char nm[96]; snprintf(nm, sizeof nm, "sgemm tA=%d tB=%d %lldx%lldx%lld beta=%g", ta, tb, (long long)M, (long long)N, (long long)K, beta);
          check(nm, M * N, got, ref, sc, 1e-5, 1e-30);
          /* padding columns of C untouched */
          int pad_ok = 1;
          for (int64_t i = 0; i < M; i++) for (int64_t j = N; j < ldc; j++) if (memcmp(&C[i * ldc + j], &C0[i * ldc + j], 4)) pad_ok = 0;
          if (!pad_ok) { g_fail++; printf("FAIL [%s] %s: wrote outside N\n", g_isa_name[fs_isa()], nm); }
          /* bf16 gemm on the same shapes (inputs rounded to bf16) */
          uint16_t *Ab = malloc((size_t)((ta ? K : M) * lda) * 2), *Bb = malloc((size_t)((tb ? N : K) * ldb) * 2);
          for (int64_t i = 0; i < (ta ? K : M) * lda; i++) Ab[i] = f2b(A[i]);
          for (int64_t i = 0; i < (tb ? N : K) * ldb; i++) Bb[i] = f2b(B[i]);
          memcpy(C, C0, (size_t)(M * ldc) * 4);
          for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
              double s = 0;
              for (int64_t k = 0; k < K; k++) s += (double)b2f(ta ? Ab[k * lda + i] : Ab[i * lda + k]) * b2f(tb ? Bb[j * ldb + k] : Bb[k * ldb + j]);
              ref[i * N + j] = alpha * s + (bc ? beta * C0[i * ldc + j] : 0);
            }
          fs_bgemm(ta, tb, M, N, K, alpha, Ab, lda, Bb, ldb, beta, C, ldc);
          for (int64_t i = 0; i < M; i++) memcpy(got + i * N, C + i * ldc, (size_t)N * 4);
          nm[0] = 'b';
          check(nm, M * N, got, ref, sc, 2e-5, 1e-30);
          free(A); free(B); free(C); free(C0); free(ref); free(sc); free(got); free(Ab); free(Bb);
        }
  /* batched, strideB = 0 broadcast */
  {
    int64_t bt = 5, M = 7, N = 19, K = 9;
    float *A = fvec(bt * M * K), *B = fvec(K * N), *C = fvec(bt * M * N);
    double *ref = dvec(bt * M * N);
    for (int64_t b = 0; b < bt; b++) for (int64_t i = 0; i < M; i++) for (int64_t j = 0; j < N; j++) {
      double s = 0; for (int64_t k = 0; k < K; k++) s += (double)A[b * M * K + i * K + k] * B[k * N + j];
      ref[b * M * N + i * N + j] = s;
    }
    fs_sgemm_batched(bt, 0, 0, M, N, K, 1.0f, A, K, M * K, B, N, 0, 0.0f, C, N, M * N);
    check("sgemm_batched", bt * M * N, C, ref, NULL, 1e-5, 1e-5);
    free(A); free(B); free(C); free(ref);
  }
}

static void test_grouped(void) {
  int32_t off[6] = {0, 5, 5, 22, 23, 40};
  int64_t E = 5, N = 19, K = 13, rows = 40;
  for (int tw = 0; tw < 2; tw++) for (int bc = 0; bc < 2; bc++) {
    float beta = bc ? 1.0f : 0.0f;
    float *X = fvec(rows * K), *W = fvec(E * K * N), *Y = fvec(rows * N), *dY = fvec(rows * N), *dW = fvec(E * K * N);
    double *ref = dvec(rows * N), *refw = dvec(E * K * N);
    for (int64_t e = 0; e < E; e++) for (int64_t r = off[e]; r < off[e + 1]; r++) for (int64_t n = 0; n < N; n++) {
      double s = 0; for (int64_t k = 0; k < K; k++) s += (double)X[r * K + k] * (tw ? W[e * K * N + n * K + k] : W[e * K * N + k * N + n]);
      ref[r * N + n] = s + beta * Y[r * N + n];
    }
    for (int64_t e = 0; e < E; e++) for (int64_t k = 0; k < K; k++) for (int64_t n = 0; n < N; n++) {
      double s = 0; for (int64_t r = off[e]; r < off[e + 1]; r++) s += (double)X[r * K + k] * dY[r * N + n];
      int64_t idx = tw ? e * K * N + n * K + k : e * K * N + k * N + n;
      refw[idx] = s + beta * dW[idx];
    }
    fs_grouped_sgemm(E, off, tw, N, K, X, W, beta, Y);
    check(tw ? "grouped fwd transW" : "grouped fwd", rows * N, Y, ref, NULL, 1e-5, 1e-5);
    fs_grouped_sgemm_wgrad(E, off, tw, N, K, X, dY, beta, dW);
    check(tw ? "grouped wgrad transW" : "grouped wgrad", E * K * N, dW, refw, NULL, 1e-5, 1e-5);
    free(X); free(W); free(Y); free(dY); free(dW); free(ref); free(refw);
  }
}

static void test_elementwise(void) {
  static const int64_t NS[] = {1, 3, 17, 33, 63, 65, 127, 1000, 70001};
  for (size_t t = 0; t < sizeof NS / sizeof NS[0]; t++) {
    int64_t n = NS[t];
    float *a = fvec(n), *b = fvec(n), *o = fvec(n), *o2 = fvec(n), *dy = fvec(n);
    double *r = dvec(n), *r2 = dvec(n);
    for (int64_t i = 0; i < n; i++) { a[i] *= 8; r[i] = 0.5 * a[i] - 2.0 * b[i]; }
    fs_axpby(n, 0.5f, a, -2.0f, b, o); check("axpby", n, o, r, NULL, 1e-6, 1e-7);
    for (int64_t i = 0; i < n; i++) r[i] = (double)a[i] * b[i];
    fs_mul(n, a, b, o); check("mul", n, o, r, NULL, 1e-6, 0);
    for (int64_t i = 0; i < n; i++) r[i] = (double)a[i] * 1.5;
    fs_scale(n, a, 1.5f, o); check("scale", n, o, r, NULL, 1e-6, 0);
    for (int64_t i = 0; i < n; i++) { double x = a[i], s = 1 / (1 + exp(-x)); r[i] = x * s; r2[i] = dy[i] * s * (1 + x * (1 - s)); }
    fs_silu_fwd(n, a, o); check("silu_fwd", n, o, r, NULL, 1e-5, 1e-6);
    fs_silu_bwd(n, a, dy, o); check("silu_bwd", n, o, r2, NULL, 1e-5, 1e-6);
    for (int64_t i = 0; i < n; i++) { double x = a[i], s = 1 / (1 + exp(-x)); r[i] = x * s * b[i]; r2[i] = dy[i] * x * s; }
    fs_swiglu_fwd(n, a, b, o); check("swiglu_fwd", n, o, r, NULL, 1e-5, 1e-6);
    fs_swiglu_bwd(n, a, b, dy, o, o2); check("swiglu_bwd dup", n, o2, r2, NULL, 1e-5, 1e-6);
    for (int64_t i = 0; i < n; i++) { double x = a[i], s = 1 / (1 + exp(-x)); r[i] = dy[i] * b[i] * s * (1 + x * (1 - s)); }
    check("swiglu_bwd dgate", n, o, r, NULL, 1e-5, 1e-6);
    free(a); free(b); free(o); free(o2); free(dy); free(r); free(r2);
  }
  /* row broadcast + sum_axis */
  static const int64_t RC[][3] = {{1, 1, 1}, {3, 17, 1}, {17, 33, 5}, {2, 1000, 63}, {65, 127, 3}, {1, 5000, 1}, {4, 3, 70}, {300, 700, 1}, {5000, 17, 1}};
  for (size_t t = 0; t < sizeof RC / sizeof RC[0]; t++) {
    int64_t R = RC[t][0], C = RC[t][1], In = RC[t][2];
    float *a = fvec(R * C), *b = fvec(C), *o = fvec(R * C);
    double *r = dvec(R * C);
    for (int64_t i = 0; i < R * C; i++) r[i] = (double)a[i] + b[i % C];
    fs_add_row(R, C, a, b, o); check("add_row", R * C, o, r, NULL, 1e-6, 1e-7);
    for (int64_t i = 0; i < R * C; i++) r[i] = (double)a[i] * b[i % C];
    fs_mul_row(R, C, a, b, o); check("mul_row", R * C, o, r, NULL, 1e-6, 0);
    float *bc = fvec(R);
    for (int64_t i = 0; i < R * C; i++) r[i] = (double)a[i] + bc[i / C];
    fs_add_col(R, C, a, bc, o); check("add_col", R * C, o, r, NULL, 1e-6, 1e-7);
    for (int64_t i = 0; i < R * C; i++) r[i] = (double)a[i] * bc[i / C];
    fs_mul_col(R, C, a, bc, o); check("mul_col", R * C, o, r, NULL, 1e-6, 0);
    memcpy(o, a, (size_t)(R * C) * 4); /* in place (out == a) */
    fs_mul_col(R, C, o, bc, o); check("mul_col in place", R * C, o, r, NULL, 1e-6, 0);
    free(bc);
    float *x = fvec(R * C * In), *s = fvec(R * In);
    double *rs = dvec(R * In), *sc = dvec(R * In);
    for (int64_t i = 0; i < R; i++) for (int64_t d = 0; d < C; d++) for (int64_t j = 0; j < In; j++) {
      rs[i * In + j] += x[(i * C + d) * In + j]; sc[i * In + j] += fabs(x[(i * C + d) * In + j]);
    }
    fs_sum_axis(R, C, In, x, s); check("sum_axis", R * In, s, rs, sc, 2e-6, 1e-7);
    free(a); free(b); free(o); free(r); free(x); free(s); free(rs); free(sc);
  }
}

static void test_norms(void) {
  static const int64_t RC[][2] = {{1, 1}, {3, 17}, {17, 33}, {5, 63}, {2, 65}, {7, 127}, {3, 1000}, {300, 300}, {2, 5000}};
  for (size_t t = 0; t < sizeof RC / sizeof RC[0]; t++) {
    int64_t R = RC[t][0], C = RC[t][1];
    float *x = fvec(R * C), *w = fvec(C), *y = fvec(R * C), *rstd = fvec(R), *dy = fvec(R * C), *dx = fvec(R * C), *dw = fvec(C);
    double *ry = dvec(R * C), *rr = dvec(R), *rdx = dvec(R * C), *rdw = dvec(C), *sdw = dvec(C);
    for (int64_t i = 0; i < R * C; i++) x[i] *= 3;
    float eps = 1e-5f;
    for (int64_t i = 0; i < R; i++) {
      double ss = 0; for (int64_t c = 0; c < C; c++) ss += (double)x[i * C + c] * x[i * C + c];
      double rs = 1 / sqrt(ss / C + eps); rr[i] = rs;
      double g = 0; for (int64_t c = 0; c < C; c++) { ry[i * C + c] = x[i * C + c] * rs * w[c]; g += (double)dy[i * C + c] * w[c] * x[i * C + c]; }
      for (int64_t c = 0; c < C; c++) {
        rdx[i * C + c] = rs * (dy[i * C + c] * w[c] - x[i * C + c] * rs * rs * g / C);
        rdw[c] += dy[i * C + c] * x[i * C + c] * rs; sdw[c] += fabs(dy[i * C + c] * x[i * C + c] * rs);
      }
    }
    fs_rmsnorm_fwd(R, C, x, w, eps, y, rstd);
    check("rmsnorm_fwd y", R * C, y, ry, NULL, 1e-5, 1e-6); check("rmsnorm_fwd rstd", R, rstd, rr, NULL, 1e-5, 0);
    fs_rmsnorm_bwd(R, C, x, w, rstd, dy, dx, dw);
    check("rmsnorm_bwd dx", R * C, dx, rdx, NULL, 1e-4, 1e-5); check("rmsnorm_bwd dw", C, dw, rdw, sdw, 1e-5, 1e-6);
    /* softmax family */
    for (int64_t i = 0; i < R; i++) {
      double m = -INFINITY, s = 0, sdy = 0, sdyy = 0;
      for (int64_t c = 0; c < C; c++) m = fmax(m, x[i * C + c]);
      for (int64_t c = 0; c < C; c++) s += exp(x[i * C + c] - m);
      for (int64_t c = 0; c < C; c++) { ry[i * C + c] = exp(x[i * C + c] - m) / s; sdy += dy[i * C + c]; sdyy += dy[i * C + c] * ry[i * C + c]; }
      for (int64_t c = 0; c < C; c++) rdx[i * C + c] = ry[i * C + c] * (dy[i * C + c] - sdyy);
    }
    fs_softmax_fwd(R, C, x, y); check("softmax_fwd", R * C, y, ry, NULL, 1e-5, 1e-7);
    fs_softmax_bwd(R, C, y, dy, dx); check("softmax_bwd", R * C, dx, rdx, NULL, 1e-4, 1e-6);
    for (int64_t i = 0; i < R; i++) {
      double m = -INFINITY, s = 0, sdy = 0;
      for (int64_t c = 0; c < C; c++) m = fmax(m, x[i * C + c]);
      for (int64_t c = 0; c < C; c++) { s += exp(x[i * C + c] - m); sdy += dy[i * C + c]; }
      for (int64_t c = 0; c < C; c++) { ry[i * C + c] = x[i * C + c] - m - log(s); }
      for (int64_t c = 0; c < C; c++) rdx[i * C + c] = dy[i * C + c] - exp(ry[i * C + c]) * sdy;
    }
    fs_log_softmax_fwd(R, C, x, y); check("log_softmax_fwd", R * C, y, ry, NULL, 1e-5, 1e-5);
    fs_log_softmax_bwd(R, C, y, dy, dx); check("log_softmax_bwd", R * C, dx, rdx, NULL, 1e-4, 1e-5);
    free(x); free(w); free(y); free(rstd); free(dy); free(dx); free(dw); free(ry); free(rr); free(rdx); free(rdw); free(sdw);
  }
}

static void test_rope_emb(void) {
  int64_t B = 2, T = 5, H = 3, HD = 10, RD = 6;
  int32_t pos[10] = {0, 1, 2, 3, 4, 7, 100, 4095, 3, 1};
  float invf[3] = {1.0f, 0.1f, 0.01f};
  for (int inv = 0; inv < 2; inv++) {
    float *x = fvec(B * T * H * HD), *y = fvec(B * T * H * HD);
    double *r = dvec(B * T * H * HD);
    for (int64_t t = 0; t < B * T; t++) for (int64_t h = 0; h < H; h++) {
      const float *xs = x + (t * H + h) * HD; double *rs = r + (t * H + h) * HD;
      for (int64_t i = 0; i < HD; i++) rs[i] = xs[i];
      for (int64_t i = 0; i < RD / 2; i++) {
        double a = (double)pos[t] * invf[i] * (inv ? -1 : 1), c = cos(a), s = sin(a);
        rs[i] = xs[i] * c - xs[i + RD / 2] * s; rs[i + RD / 2] = xs[i + RD / 2] * c + xs[i] * s;
      }
    }
    fs_rope(B, T, H, HD, RD, pos, invf, inv, x, y); check("rope", B * T * H * HD, y, r, NULL, 1e-5, 1e-6);
    fs_rope(B, T, H, HD, RD, pos, invf, inv, x, x); check("rope in place", B * T * H * HD, x, r, NULL, 1e-5, 1e-6);
    free(x); free(y); free(r);
  }
  int64_t n = 7, dim = 33, V = 5;
  int32_t ids[7] = {4, 0, 4, 2, 1, 4, 0};
  float *tab = fvec(V * dim), *out = fvec(n * dim), *dt = fvec(V * dim);
  double *r = dvec(n * dim), *rt = dvec(V * dim);
  for (int64_t i = 0; i < n; i++) for (int64_t c = 0; c < dim; c++) r[i * dim + c] = tab[ids[i] * dim + c];
  fs_embedding_fwd(n, dim, ids, tab, out); check("embedding_fwd", n * dim, out, r, NULL, 0, 0);
  for (int64_t i = 0; i < V * dim; i++) rt[i] = dt[i];
  for (int64_t i = 0; i < n; i++) for (int64_t c = 0; c < dim; c++) rt[ids[i] * dim + c] += out[i * dim + c];
  fs_embedding_bwd(n, dim, ids, out, dt); check("embedding_bwd", V * dim, dt, rt, NULL, 1e-6, 1e-7);
  free(tab); free(out); free(dt); free(r); free(rt);
}

static void test_attention(void) {
  /* B, Tq, Tk, Hq, Hkv, D, Dv, causal, maxT (cache length for kBatchStride) */
  static const int64_t CS[][9] = {{1, 1, 1, 1, 1, 1, 1, 0, 1}, {2, 3, 17, 4, 2, 5, 7, 1, 20}, {1, 17, 17, 2, 2, 16, 16, 1, 17},
                                  {2, 33, 33, 3, 1, 8, 6, 0, 33}, {1, 9, 5, 2, 1, 4, 4, 1, 5}, {1, 1, 130, 8, 2, 32, 32, 1, 200},
                                  /* decode: one query row per (b, head) -> the no-pack score / PV loops */
                                  {3, 1, 75, 4, 4, 32, 20, 1, 90}, {2, 2, 140, 4, 2, 24, 48, 1, 150},
                                  {1, 130, 200, 2, 1, 16, 8, 1, 200}, {2, 65, 65, 4, 4, 64, 64, 1, 65}};
  for (size_t t = 0; t < sizeof CS / sizeof CS[0]; t++) {
    int64_t B = CS[t][0], Tq = CS[t][1], Tk = CS[t][2], Hq = CS[t][3], Hkv = CS[t][4], D = CS[t][5], Dv = CS[t][6], maxT = CS[t][8];
    int causal = (int)CS[t][7];
    float scale = 1.0f / sqrtf((float)D) * 2.0f;
    float *q = fvec(B * Tq * Hq * D), *kc = fvec(B * maxT * Hkv * D), *vc = fvec(B * maxT * Hkv * Dv);
    float *k = malloc((size_t)(B * Tk * Hkv * D) * 4), *v = malloc((size_t)(B * Tk * Hkv * Dv) * 4);
    for (int64_t b = 0; b < B; b++) {
      memcpy(k + b * Tk * Hkv * D, kc + b * maxT * Hkv * D, (size_t)(Tk * Hkv * D) * 4);
      memcpy(v + b * Tk * Hkv * Dv, vc + b * maxT * Hkv * Dv, (size_t)(Tk * Hkv * Dv) * 4);
    }
    float *o = fvec(B * Tq * Hq * Dv), *lse = fvec(B * Hq * Tq), *dout = fvec(B * Tq * Hq * Dv);
    float *dq = fvec(B * Tq * Hq * D), *dk = fvec(B * Tk * Hkv * D), *dv = fvec(B * Tk * Hkv * Dv);
    double *ro = dvec(B * Tq * Hq * Dv), *rl = dvec(B * Hq * Tq), *rdq = dvec(B * Tq * Hq * D), *rdk = dvec(B * Tk * Hkv * D), *rdv = dvec(B * Tk * Hkv * Dv);
    double *p = dvec(Tk), *dp = dvec(Tk);
    int64_t G = Hq / Hkv;
    for (int64_t b = 0; b < B; b++) for (int64_t h = 0; h < Hq; h++) for (int64_t i = 0; i < Tq; i++) {
      int64_t hk = h / G, lim = causal ? i + (Tk - Tq) : Tk - 1;
      if (lim > Tk - 1) lim = Tk - 1;
      const float *qi = q + ((b * Tq + i) * Hq + h) * D;
      double m = -INFINITY, s = 0;
      for (int64_t j = 0; j <= lim; j++) {
        double d = 0; for (int64_t c = 0; c < D; c++) d += (double)qi[c] * k[((b * Tk + j) * Hkv + hk) * D + c];
        p[j] = d * scale; m = fmax(m, p[j]);
      }
      for (int64_t j = 0; j <= lim; j++) { p[j] = exp(p[j] - m); s += p[j]; }
      double *oi = ro + ((b * Tq + i) * Hq + h) * Dv;
      rl[(b * Hq + h) * Tq + i] = lim < 0 ? -INFINITY : m + log(s);
      for (int64_t j = 0; j <= lim; j++) { p[j] /= s; for (int64_t c = 0; c < Dv; c++) oi[c] += p[j] * v[((b * Tk + j) * Hkv + hk) * Dv + c]; }
      /* backward */
      const float *doi = dout + ((b * Tq + i) * Hq + h) * Dv;
      double Di = 0; for (int64_t c = 0; c < Dv; c++) Di += doi[c] * oi[c];
      for (int64_t j = 0; j <= lim; j++) {
        double d = 0; for (int64_t c = 0; c < Dv; c++) d += doi[c] * (double)v[((b * Tk + j) * Hkv + hk) * Dv + c];
        double ds = p[j] * (d - Di) * scale;
        for (int64_t c = 0; c < Dv; c++) rdv[((b * Tk + j) * Hkv + hk) * Dv + c] += p[j] * doi[c];
        for (int64_t c = 0; c < D; c++) {
          rdq[((b * Tq + i) * Hq + h) * D + c] += ds * k[((b * Tk + j) * Hkv + hk) * D + c];
          rdk[((b * Tk + j) * Hkv + hk) * D + c] += ds * qi[c];
        }
      }
    }
    char nm[64];
    snprintf(nm, sizeof nm, "attention case %zu", t);
    fs_attention_fwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, kc, maxT * Hkv * D, vc, maxT * Hkv * Dv, o, lse);
    check(nm, B * Tq * Hq * Dv, o, ro, NULL, 1e-4, 1e-5); check("attention lse", B * Hq * Tq, lse, rl, NULL, 1e-5, 1e-5);
    fs_attention_fwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, 0, v, 0, o, lse);
    check("attention fwd packed", B * Tq * Hq * Dv, o, ro, NULL, 1e-4, 1e-5);
    fs_attention_bwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, v, o, lse, dout, dq, dk, dv);
    check("attention bwd dq", B * Tq * Hq * D, dq, rdq, NULL, 1e-3, 1e-4);
    check("attention bwd dk", B * Tk * Hkv * D, dk, rdk, NULL, 1e-3, 1e-4);
    check("attention bwd dv", B * Tk * Hkv * Dv, dv, rdv, NULL, 1e-3, 1e-4);
    free(q); free(kc); free(vc); free(k); free(v); free(o); free(lse); free(dout); free(dq); free(dk); free(dv);
    free(ro); free(rl); free(rdq); free(rdk); free(rdv); free(p); free(dp);
  }
}

static void test_topk(void) {
  static const int64_t RK[][3] = {{1, 1, 1}, {3, 17, 5}, {2, 33, 33}, {4, 127, 64}, {2, 200, 65}, {1, 1000, 100}};
  for (size_t t = 0; t < sizeof RK / sizeof RK[0]; t++) {
    int64_t R = RK[t][0], C = RK[t][1], K = RK[t][2];
    float *x = fvec(R * C), *vals = fvec(R * K);
    int32_t *idx = malloc((size_t)(R * K) * 4);
    for (int64_t i = 0; i < R * C; i++) x[i] = (float)(int)(x[i] * 8); /* many ties */
    if (C > 10) { x[3] = NAN; x[7] = NAN; x[5] = INFINITY; }
    fs_topk(R, C, K, x, vals, idx);
    int ok = 1;
    for (int64_t r = 0; r < R && ok; r++) {
      char *used = calloc((size_t)C, 1);
      for (int64_t i = 0; i < K; i++) {
        /* expected i-th: the best not-yet-used element */
        int64_t best = -1;
        for (int64_t c = 0; c < C; c++) {
          if (used[c]) continue;
          float a = x[r * C + c];
          if (best < 0) { best = c; continue; }
          float bv = x[r * C + best];
          int an = isnan(a), bn = isnan(bv);
          if ((an && !bn) || (!an && !bn && a > bv)) best = c;
        }
        used[best] = 1;
        float gv = vals[r * K + i];
        if (idx[r * K + i] != best || !(gv == x[r * C + best] || (isnan(gv) && isnan(x[r * C + best])))) ok = 0;
      }
      free(used);
    }
    g_checks++;
    if (!ok) { g_fail++; printf("FAIL [%s] topk rows=%lld cols=%lld k=%lld\n", g_isa_name[fs_isa()], (long long)R, (long long)C, (long long)K); }
    free(x); free(vals); free(idx);
  }
}

static void test_losses(void) {
  static const int64_t RV[][2] = {{1, 1}, {3, 17}, {5, 63}, {4, 1000}, {2, 5001}};
  for (size_t t = 0; t < sizeof RV / sizeof RV[0]; t++) {
    int64_t R = RV[t][0], V = RV[t][1];
    float *lg = fvec(R * V), *te = fvec(R * V), *loss = fvec(R), *lse = fvec(R), *dl = fvec(R), *d = fvec(R * V);
    int32_t *tg = malloc((size_t)R * 4);
    double *rl = dvec(R), *rlse = dvec(R), *rd = dvec(R * V), *rkl = dvec(R), *rdk = dvec(R * V);
    for (int64_t i = 0; i < R * V; i++) { lg[i] *= 10; te[i] *= 6; }
    float T = 1.7f;
    for (int64_t r = 0; r < R; r++) {
      tg[r] = (r == 1) ? -100 : (int32_t)((r * 7919) % V);
      double m = -INFINITY, s = 0;
      for (int64_t c = 0; c < V; c++) m = fmax(m, lg[r * V + c]);
      for (int64_t c = 0; c < V; c++) s += exp(lg[r * V + c] - m);
      rlse[r] = m + log(s);
      rl[r] = tg[r] == -100 ? 0 : rlse[r] - lg[r * V + tg[r]];
      for (int64_t c = 0; c < V; c++) rd[r * V + c] = tg[r] == -100 ? 0 : (exp(lg[r * V + c] - rlse[r]) - (c == tg[r])) * dl[r];
      double ms = -INFINITY, mt = -INFINITY, ss = 0, st = 0, kl = 0;
      for (int64_t c = 0; c < V; c++) { ms = fmax(ms, lg[r * V + c] / T); mt = fmax(mt, te[r * V + c] / T); }
      for (int64_t c = 0; c < V; c++) { ss += exp(lg[r * V + c] / T - ms); st += exp(te[r * V + c] / T - mt); }
      for (int64_t c = 0; c < V; c++) {
        double lq = lg[r * V + c] / T - ms - log(ss), lp = te[r * V + c] / T - mt - log(st);
        kl += exp(lp) * (lp - lq);
        rdk[r * V + c] = (exp(lq) - exp(lp)) / T * dl[r];
      }
      rkl[r] = kl;
    }
    fs_cross_entropy_fwd(R, V, lg, tg, -100, loss, lse);
    check("ce_fwd loss", R, loss, rl, NULL, 1e-5, 1e-5); check("ce_fwd lse", R, lse, rlse, NULL, 1e-6, 1e-6);
    fs_cross_entropy_bwd(R, V, lg, tg, -100, lse, dl, d); check("ce_bwd", R * V, d, rd, NULL, 1e-4, 1e-7);
    fs_kl_div_fwd(R, V, lg, te, T, loss); check("kl_fwd", R, loss, rkl, NULL, 1e-4, 1e-6);
    fs_kl_div_bwd(R, V, lg, te, T, dl, d); check("kl_bwd", R * V, d, rdk, NULL, 1e-4, 1e-7);
    free(lg); free(te); free(loss); free(lse); free(dl); free(d); free(tg); free(rl); free(rlse); free(rd); free(rkl); free(rdk);
  }
}

static void test_adamw_bf16(void) {
  int64_t n = 1037;
  float *p = fvec(n), *g = fvec(n), *m = fvec(n), *v = fvec(n);
  double *rp = dvec(n), *rm = dvec(n), *rv = dvec(n);
  for (int64_t i = 0; i < n; i++) v[i] = fabsf(v[i]) * 0.01f;
  float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
  int64_t step = 7;
  for (int64_t i = 0; i < n; i++) {
    double pp = p[i] * (1 - (double)lr * wd), mm = b1 * (double)m[i] + (1 - (double)b1) * g[i], vv = b2 * (double)v[i] + (1 - (double)b2) * g[i] * (double)g[i];
    double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
    rp[i] = pp - lr / bc1 * mm / (sqrt(vv) / sqrt(bc2) + eps); rm[i] = mm; rv[i] = vv;
  }
  fs_adamw_step(n, p, g, m, v, lr, b1, b2, eps, wd, step);
  check("adamw p", n, p, rp, NULL, 1e-5, 1e-7); check("adamw m", n, m, rm, NULL, 1e-5, 1e-8); check("adamw v", n, v, rv, NULL, 1e-5, 1e-10);
  float sp[] = {0.0f, -0.0f, 1.0f, 1.00390625f, 1.0078125f, 1.005859375f, 1.001953125f, 3.4e38f, -3.4e38f, INFINITY, -INFINITY, NAN, -NAN, 1e-40f, 1.17549435e-38f, 0.1f, -0.3f};
  int64_t ns = sizeof sp / sizeof sp[0];
  uint16_t out[32];
  float back[32];
  fs_f32_to_bf16(ns, sp, out);
  int ok = 1;
  for (int64_t i = 0; i < ns; i++) if (out[i] != f2b(sp[i])) { ok = 0; printf("  bf16 %g -> %04x want %04x\n", sp[i], out[i], f2b(sp[i])); }
  if (out[11] != 0x7fc0) ok = 0;
  fs_bf16_to_f32(ns, out, back);
  for (int64_t i = 0; i < ns; i++) if (!(back[i] == b2f(out[i]) || isnan(back[i]))) ok = 0;
  g_checks++;
  if (!ok) { g_fail++; printf("FAIL [%s] bf16 conversion\n", g_isa_name[fs_isa()]); }
  free(p); free(g); free(m); free(v); free(rp); free(rm); free(rv);
}

int main(void) {
  int best = fs_isa_supported();
  printf("farskip selftest: abi %d, best ISA %s, %d threads\n", fs_abi_version(), g_isa_name[best], fs_num_threads());
  for (int isa = best; isa >= 0; isa--) {
    for (int th = 0; th < 2; th++) {
      fs_set_num_threads(th ? 1 : 0);
      if (fs_set_isa(isa) != isa) { printf("FAIL fs_set_isa(%d)\n", isa); g_fail++; }
      int before = g_fail;
      test_gemm(); test_grouped(); test_elementwise(); test_norms(); test_rope_emb(); test_attention(); test_topk(); test_losses(); test_adamw_bf16();
      printf("  %-10s threads=%-2d %s\n", g_isa_name[isa], fs_num_threads(), g_fail == before ? "ok" : "FAILED");
    }
  }
  fs_set_num_threads(0);
  fs_set_isa(best);
  printf("%s: %d checks, %d failures\n", g_fail ? "FAILED" : "PASSED", g_checks, g_fail);
  return g_fail ? 1 : 0;
}
