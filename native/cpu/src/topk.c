/* topk.c: top-k over the last dim. Order: NaN first (treated as larger than +inf, like torch.topk), then values
 * descending; equal values (and NaNs among themselves) keep the lower index first.
 * k <= 64: one pass keeping a sorted list of the best k (most elements fail the compare against the current
 * k-th and cost one comparison). Larger k: stable merge sort of all indices. Parallel over rows. */
#include <stdlib.h>
#include "fs_internal.h"

/* a (index ia) ranks before b (index ib) */
static inline int before(float a, int32_t ia, float b, int32_t ib) {
  int na = a != a, nb = b != b;
  if (na || nb) return na && (!nb || ia < ib);
  return a > b || (a == b && ia < ib);
}

typedef struct {
  int64_t cols, k, ks; /* k used, ks = row stride of the outputs (the caller's k) */
  const float *x;
  float *vals;
  int32_t *idx;
} topk_job;

static void msort(const float *x, int32_t *a, int32_t *tmp, int64_t n) {
  if (n <= 16) { /* insertion sort (stable) */
    for (int64_t i = 1; i < n; i++) {
      int32_t v = a[i];
      int64_t j = i;
      while (j > 0 && before(x[v], v, x[a[j - 1]], a[j - 1])) { a[j] = a[j - 1]; j--; }
      a[j] = v;
    }
    return;
  }
  int64_t h = n / 2;
  msort(x, a, tmp, h);
  msort(x, a + h, tmp, n - h);
  int64_t i = 0, j = h, o = 0;
  while (i < h && j < n) tmp[o++] = before(x[a[j]], a[j], x[a[i]], a[i]) ? a[j++] : a[i++];
  while (i < h) tmp[o++] = a[i++];
  while (j < n) tmp[o++] = a[j++];
  memcpy(a, tmp, (size_t)n * sizeof(int32_t));
}

static void topk_body(void *p, int64_t s, int64_t e) {
  const topk_job *j = (const topk_job *)p;
  int64_t C = j->cols, K = j->k;
  int32_t *buf = NULL;
  if (K > 64) {
    buf = (int32_t *)malloc((size_t)C * 2 * sizeof(int32_t));
    if (!buf) return;
  }
  for (int64_t r = s; r < e; r++) {
    const float *x = j->x + r * C;
    float *ov = j->vals + r * j->ks;
    int32_t *oi = j->idx + r * j->ks;
    if (K <= 64) {
      int32_t best[64];
      int64_t n = 0;
      for (int64_t c = 0; c < C; c++) {
        float v = x[c];
        if (n == K && !before(v, (int32_t)c, x[best[K - 1]], best[K - 1])) continue;
        int64_t pos = n < K ? n++ : K - 1;
        while (pos > 0 && before(v, (int32_t)c, x[best[pos - 1]], best[pos - 1])) { best[pos] = best[pos - 1]; pos--; }
        best[pos] = (int32_t)c;
      }
      for (int64_t i = 0; i < K; i++) { oi[i] = best[i]; ov[i] = x[best[i]]; }
    } else {
      for (int64_t c = 0; c < C; c++) buf[c] = (int32_t)c;
      msort(x, buf, buf + C, C);
      for (int64_t i = 0; i < K; i++) { oi[i] = buf[i]; ov[i] = x[buf[i]]; }
    }
  }
  free(buf);
}

void FS_FN(topk)(int64_t rows, int64_t cols, int64_t k, const float *x, float *values, int32_t *indices) {
  if (k <= 0 || cols <= 0) return;
  topk_job j = {cols, k > cols ? cols : k, k, x, values, indices}; /* k > cols: only cols entries written */
  fs_parallel_for(rows, (1 << 13) / cols + 1, topk_body, &j);
}
