/* rope.c: rotary embedding, rotate-half (HF Llama) convention; see the header for the formula.
 * cos/sin are computed once per (batch, position) in double (angle = pos * inv_freq in f64, so long contexts
 * do not lose phase) and reused for every head. In-place (x == y) is safe: each pair is read before written. */
#include <math.h>
#include <stdlib.h>
#include "fs_internal.h"

typedef struct {
  int64_t heads, hd, rot;
  const int32_t *pos;
  const float *inv_freq, *x;
  float *y;
  int inverse;
} rope_job;

static void rope_body(void *p, int64_t s, int64_t e) {
  const rope_job *j = (const rope_job *)p;
  int64_t h = j->rot / 2;
  float cs[512], sn[512];
  float *cbuf = h <= 512 ? cs : (float *)malloc((size_t)h * 2 * sizeof(float));
  float *sbuf = h <= 512 ? sn : cbuf + h;
  if (!cbuf) return;
  for (int64_t t = s; t < e; t++) { /* t = b*seq + s */
    double pos = (double)j->pos[t];
    for (int64_t i = 0; i < h; i++) {
      double a = pos * (double)j->inv_freq[i];
      cbuf[i] = (float)cos(a);
      sbuf[i] = (float)(j->inverse ? -sin(a) : sin(a));
    }
    for (int64_t hh = 0; hh < j->heads; hh++) {
      const float *x = j->x + (t * j->heads + hh) * j->hd;
      float *y = j->y + (t * j->heads + hh) * j->hd;
      for (int64_t i = 0; i < h; i++) {
        float x0 = x[i], x1 = x[i + h];
        y[i] = x0 * cbuf[i] - x1 * sbuf[i];
        y[i + h] = x1 * cbuf[i] + x0 * sbuf[i];
      }
      if (x != y)
        for (int64_t i = j->rot; i < j->hd; i++) y[i] = x[i];
    }
  }
  if (cbuf != cs) free(cbuf);
}

void FS_FN(rope)(int64_t batch, int64_t seq, int64_t heads, int64_t head_dim, int64_t rot_dim,
                 const int32_t *positions, const float *inv_freq, int inverse, const float *x, float *y) {
  rope_job j = {heads, head_dim, rot_dim & ~(int64_t)1, positions, inv_freq, x, y, inverse};
  int64_t per = heads * head_dim + 1;
  fs_parallel_for(batch * seq, (1 << 14) / per + 1, rope_body, &j);
}
