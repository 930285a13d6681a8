/* softmax.c: softmax / log-softmax over the last dim of [rows, cols], forward and backward.
 * Row max subtracted first; exp sums are pairwise (fs_sum_pairwise over the stored exps). Parallel over rows.
 * A NaN anywhere in a row makes that row NaN (as in PyTorch). */
#include <math.h>
#include "fs_internal.h"

typedef struct {
  int64_t cols;
  const float *x, *dy;
  float *y;
  int log;
} sm_job;

static void sm_fwd_body(void *p, int64_t s, int64_t e) {
  const sm_job *j = (const sm_job *)p;
  int64_t C = j->cols;
  for (int64_t r = s; r < e; r++) {
    const float *x = j->x + r * C;
    float *y = j->y + r * C;
    float m = fs_row_max(x, C);
    if (m == -__builtin_inff()) m = 0.0f; /* all -inf: exp gives 0s, sum 0 -> NaN like PyTorch */
    for (int64_t c = 0; c < C; c++) y[c] = fs_expf(x[c] - m);
    float sum = fs_sum_pairwise(y, C);
    if (j->log) {
      float l = m + logf(sum);
      for (int64_t c = 0; c < C; c++) y[c] = x[c] - l;
    } else {
      float inv = 1.0f / sum;
      for (int64_t c = 0; c < C; c++) y[c] *= inv;
    }
  }
}

/* softmax: dx = y * (dy - sum(dy*y));  log-softmax: dx = dy - exp(y) * sum(dy) */
static void sm_bwd_body(void *p, int64_t s, int64_t e) {
  const sm_job *j = (const sm_job *)p;
  int64_t C = j->cols;
  float tmp[256];
  for (int64_t r = s; r < e; r++) {
    const float *y = j->x + r * C, *dy = j->dy + r * C;
    float *dx = j->y + r * C;
    float tot = 0.0f;
    if (j->log) {
      tot = fs_sum_pairwise(dy, C);
      for (int64_t c = 0; c < C; c++) dx[c] = dy[c] - fs_expf(y[c]) * tot;
    } else {
      for (int64_t c0 = 0; c0 < C; c0 += 256) {
        int64_t w = FS_MIN(256, C - c0);
        for (int64_t c = 0; c < w; c++) tmp[c] = dy[c0 + c] * y[c0 + c];
        tot += fs_sum_block(tmp, w);
      }
      for (int64_t c = 0; c < C; c++) dx[c] = y[c] * (dy[c] - tot);
    }
  }
}

#define SM_GRAIN(cols) ((1 << 14) / (cols) + 1)
void FS_FN(softmax_fwd)(int64_t rows, int64_t cols, const float *x, float *y) {
  sm_job j = {cols, x, 0, y, 0};
  if (cols > 0) fs_parallel_for(rows, SM_GRAIN(cols), sm_fwd_body, &j);
}
void FS_FN(log_softmax_fwd)(int64_t rows, int64_t cols, const float *x, float *y) {
  sm_job j = {cols, x, 0, y, 1};
  if (cols > 0) fs_parallel_for(rows, SM_GRAIN(cols), sm_fwd_body, &j);
}
void FS_FN(softmax_bwd)(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx) {
  sm_job j = {cols, y, dy, dx, 0};
  if (cols > 0) fs_parallel_for(rows, SM_GRAIN(cols), sm_bwd_body, &j);
}
void FS_FN(log_softmax_bwd)(int64_t rows, int64_t cols, const float *y, const float *dy, float *dx) {
  sm_job j = {cols, y, dy, dx, 1};
  if (cols > 0) fs_parallel_for(rows, SM_GRAIN(cols), sm_bwd_body, &j);
}
