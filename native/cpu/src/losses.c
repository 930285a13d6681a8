/* losses.c: cross-entropy (with ignoreIndex) and forward KL at a temperature, forward and backward.
 * Rows are independent: parallel over rows; inside a row the max is subtracted and exp sums are pairwise
 * (blocks of 256 exps summed with 16 partials, block sums combined pairwise). */
#include <math.h>
#include "fs_internal.h"

/* log(sum(exp(scale*x - m))) + m with m = max(scale*x); scale > 0 */
static float row_lse(const float *x, int64_t V, float scale) {
  float m = fs_row_max(x, V) * scale;
  if (m == -__builtin_inff() || m != m) return m;
  if (m == __builtin_inff()) return m;
  float tmp[256], parts[64], tail = 0.0f;
  int np = 0;
  for (int64_t c0 = 0; c0 < V; c0 += 256) {
    int64_t w = FS_MIN(256, V - c0);
    for (int64_t c = 0; c < w; c++) tmp[c] = fs_expf(x[c0 + c] * scale - m);
    float bs = fs_sum_block(tmp, w);
    if (np < 64) parts[np++] = bs; else tail += bs;
  }
  return m + logf(fs_sum_block(parts, np) + tail);
}

typedef struct {
  int64_t V;
  const float *a, *b, *lse, *dl;
  const int32_t *t;
  int32_t ignore;
  float T;
  float *o1, *o2;
} loss_job;

static void ce_fwd_body(void *p, int64_t s, int64_t e) {
  const loss_job *j = (const loss_job *)p;
  for (int64_t r = s; r < e; r++) {
    const float *x = j->a + r * j->V;
    float l = row_lse(x, j->V, 1.0f);
    if (j->o2) j->o2[r] = l;
    int32_t t = j->t[r];
    j->o1[r] = (t == j->ignore || t < 0 || t >= j->V) ? 0.0f : l - x[t];
  }
}

static void ce_bwd_body(void *p, int64_t s, int64_t e) {
  const loss_job *j = (const loss_job *)p;
  for (int64_t r = s; r < e; r++) {
    const float *x = j->a + r * j->V;
    float *d = j->o1 + r * j->V;
    int32_t t = j->t[r];
    if (t == j->ignore || t < 0 || t >= j->V) {
      for (int64_t c = 0; c < j->V; c++) d[c] = 0.0f;
      continue;
    }
    float l = j->lse[r], g = j->dl[r];
    for (int64_t c = 0; c < j->V; c++) d[c] = fs_expf(x[c] - l) * g;
    d[t] = (fs_expf(x[t] - l) - 1.0f) * g;
  }
}

/* kl = sum p * (logp - logq), logp = t/T - lse_t, logq = s/T - lse_s; p == 0 terms are 0 (xlogy) */
static void kl_fwd_body(void *p, int64_t s, int64_t e) {
  const loss_job *j = (const loss_job *)p;
  float inv = 1.0f / j->T, tmp[256];
  for (int64_t r = s; r < e; r++) {
    const float *st = j->a + r * j->V, *te = j->b + r * j->V;
    float ls = row_lse(st, j->V, inv), lt = row_lse(te, j->V, inv);
    float tot = 0.0f;
    for (int64_t c0 = 0; c0 < j->V; c0 += 256) {
      int64_t w = FS_MIN(256, j->V - c0);
      for (int64_t c = 0; c < w; c++) {
        float lp = te[c0 + c] * inv - lt, lq = st[c0 + c] * inv - ls;
        float pr = fs_expf(lp);
        tmp[c] = pr == 0.0f ? 0.0f : pr * (lp - lq);
      }
      tot += fs_sum_block(tmp, w);
    }
    j->o1[r] = tot;
  }
}

static void kl_bwd_body(void *p, int64_t s, int64_t e) {
  const loss_job *j = (const loss_job *)p;
  float inv = 1.0f / j->T;
  for (int64_t r = s; r < e; r++) {
    const float *st = j->a + r * j->V, *te = j->b + r * j->V;
    float *d = j->o1 + r * j->V;
    float ls = row_lse(st, j->V, inv), lt = row_lse(te, j->V, inv);
    float g = j->dl[r] * inv;
    for (int64_t c = 0; c < j->V; c++) d[c] = (fs_expf(st[c] * inv - ls) - fs_expf(te[c] * inv - lt)) * g;
  }
}

#define LOSS_GRAIN(V) ((1 << 14) / ((V) + 1) + 1)
void FS_FN(cross_entropy_fwd)(int64_t rows, int64_t V, const float *logits, const int32_t *targets,
                              int32_t ignoreIndex, float *loss, float *lse) {
  loss_job j = {V, logits, 0, 0, 0, targets, ignoreIndex, 1.0f, loss, lse};
  fs_parallel_for(rows, LOSS_GRAIN(V), ce_fwd_body, &j);
}
void FS_FN(cross_entropy_bwd)(int64_t rows, int64_t V, const float *logits, const int32_t *targets,
                              int32_t ignoreIndex, const float *lse, const float *dloss, float *dlogits) {
  loss_job j = {V, logits, 0, lse, dloss, targets, ignoreIndex, 1.0f, dlogits, 0};
  fs_parallel_for(rows, LOSS_GRAIN(V), ce_bwd_body, &j);
}
void FS_FN(kl_div_fwd)(int64_t rows, int64_t V, const float *student, const float *teacher, float temperature,
                       float *kl) {
  loss_job j = {V, student, teacher, 0, 0, 0, 0, temperature, kl, 0};
  fs_parallel_for(rows, LOSS_GRAIN(V), kl_fwd_body, &j);
}
void FS_FN(kl_div_bwd)(int64_t rows, int64_t V, const float *student, const float *teacher, float temperature,
                       const float *dkl, float *dstudent) {
  loss_job j = {V, student, teacher, 0, dkl, 0, 0, temperature, dstudent, 0};
  fs_parallel_for(rows, LOSS_GRAIN(V), kl_bwd_body, &j);
}
