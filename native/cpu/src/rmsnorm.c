/* rmsnorm.c: RMSNorm (HF Llama): y = (x * rstd) * w, rstd = 1/sqrt(mean(x^2) + eps); sums are pairwise.
 * bwd: g = dy*w;  dx = rstd * (g - x * rstd^2 * mean(g*x));  dw = sum_rows dy * x * rstd.
 * dw: each thread owns a contiguous block of rows and reduces them in blocks of 32 rows (blocked summation),
 * then the per-thread partials are added in thread order (deterministic for a given thread count). */
#include <math.h>
#include <stdlib.h>
#include "fs_internal.h"

typedef struct {
  int64_t rows, cols;
  const float *x, *w, *rstd, *dy;
  float *y, *out_rstd, *dx, *dwpart;
  float eps;
  int nchunks;
} rms_job;

static void rms_fwd_body(void *p, int64_t s, int64_t e) {
  const rms_job *j = (const rms_job *)p;
  int64_t C = j->cols;
  float sq[256];
  for (int64_t r = s; r < e; r++) {
    const float *x = j->x + r * C;
    float *y = j->y + r * C;
    /* pairwise sum of squares, 256-element blocks */
    float tot = 0.0f, parts[64];
    int np = 0;
    for (int64_t c0 = 0; c0 < C; c0 += 256) {
      int64_t w = FS_MIN(256, C - c0);
      for (int64_t c = 0; c < w; c++) sq[c] = x[c0 + c] * x[c0 + c];
      float bs = fs_sum_block(sq, w);
      if (np < 64) parts[np++] = bs; else tot += bs;
    }
    tot += fs_sum_block(parts, np);
    float rs = 1.0f / sqrtf(tot / (float)C + j->eps);
    if (j->out_rstd) j->out_rstd[r] = rs;
    for (int64_t c = 0; c < C; c++) y[c] = (x[c] * rs) * j->w[c];
  }
}

void FS_FN(rmsnorm_fwd)(int64_t rows, int64_t cols, const float *x, const float *w, float eps, float *y, float *rstd) {
  rms_job j = {rows, cols, x, w, 0, 0, y, rstd, 0, 0, eps, 0};
  if (cols > 0) fs_parallel_for(rows, (1 << 15) / cols + 1, rms_fwd_body, &j);
}

static void rms_bwd_rows(const rms_job *j, int64_t s, int64_t e, float *dw) {
  int64_t C = j->cols;
  float tmp[256];
  for (int64_t r = s; r < e; r++) {
    const float *x = j->x + r * C, *dy = j->dy + r * C;
    float *dx = j->dx + r * C;
    float rs = j->rstd[r];
    float tot = 0.0f;
    for (int64_t c0 = 0; c0 < C; c0 += 256) {
      int64_t w = FS_MIN(256, C - c0);
      for (int64_t c = 0; c < w; c++) tmp[c] = dy[c0 + c] * j->w[c0 + c] * x[c0 + c];
      tot += fs_sum_block(tmp, w);
    }
    float k = rs * rs * (tot / (float)C);
    for (int64_t c = 0; c < C; c++) dx[c] = rs * (dy[c] * j->w[c] - x[c] * k);
    for (int64_t c = 0; c < C; c++) dw[c] += dy[c] * (x[c] * rs);
  }
}

static void rms_bwd_team(void *p, int tid, int nth) {
  const rms_job *j = (const rms_job *)p;
  int64_t s = j->rows * tid / nth, e = j->rows * (tid + 1) / nth, C = j->cols;
  float *acc = j->dwpart + (int64_t)tid * 2 * C, *blk = acc + C;
  for (int64_t c = 0; c < C; c++) acc[c] = 0.0f;
  for (int64_t r0 = s; r0 < e; r0 += 32) {
    for (int64_t c = 0; c < C; c++) blk[c] = 0.0f;
    rms_bwd_rows(j, r0, FS_MIN(e, r0 + 32), blk);
    for (int64_t c = 0; c < C; c++) acc[c] += blk[c];
  }
}

void FS_FN(rmsnorm_bwd)(int64_t rows, int64_t cols, const float *x, const float *w, const float *rstd,
                        const float *dy, float *dx, float *dw) {
  if (cols <= 0) return;
  int nth = fs_pool_size();
  if (rows * cols < (1 << 16)) nth = 1;
  if (nth > rows) nth = rows > 0 ? (int)rows : 1;
  float *part = (float *)calloc((size_t)nth * 2 * cols, sizeof(float)); /* zeroed: the pool may run fewer threads */
  if (!part) return;
  rms_job j = {rows, cols, x, w, rstd, dy, 0, 0, dx, part, 0, nth};
  if (nth > 1) fs_parallel_team(nth, rms_bwd_team, &j); else rms_bwd_team(&j, 0, 1);
  for (int64_t c = 0; c < cols; c++) {
    float s = 0.0f;
    for (int t = 0; t < nth; t++) s += part[(int64_t)t * 2 * cols + c];
    dw[c] = s;
  }
  free(part);
}
