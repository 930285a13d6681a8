/* elementwise.c: axpby, mul, scale, row / column broadcasts, sum over an axis, embedding gather/scatter-add.
 * Plain loops the per-ISA builds auto-vectorise; parallel over chunks once the arrays are large
 * (grain 64 Ki elements: below that, a fork/join costs more than the memory traffic it splits). */
#include "fs_internal.h"

#define EW_GRAIN (1 << 16)

typedef struct {
  const float *a, *b;
  float *out;
  float alpha, beta;
  int64_t cols;
  int op;
} ew_job;

enum { OP_AXPBY, OP_MUL, OP_SCALE, OP_ADDROW, OP_MULROW, OP_ADDCOL, OP_MULCOL };

static void ew_body(void *p, int64_t s, int64_t e) {
  const ew_job *j = (const ew_job *)p;
  const float *a = j->a, *b = j->b;
  float *out = j->out;
  switch (j->op) {
    case OP_AXPBY: {
      float al = j->alpha, be = j->beta;
      for (int64_t i = s; i < e; i++) out[i] = al * a[i] + be * b[i];
      break;
    }
    case OP_MUL:
      for (int64_t i = s; i < e; i++) out[i] = a[i] * b[i];
      break;
    case OP_SCALE: {
      float al = j->alpha;
      for (int64_t i = s; i < e; i++) out[i] = a[i] * al;
      break;
    }
    case OP_ADDROW:
    case OP_MULROW: { /* s, e are rows */
      int64_t c = j->cols;
      for (int64_t r = s; r < e; r++) {
        const float *ar = a + r * c;
        float *o = out + r * c;
        if (j->op == OP_ADDROW)
          for (int64_t i = 0; i < c; i++) o[i] = ar[i] + b[i];
        else
          for (int64_t i = 0; i < c; i++) o[i] = ar[i] * b[i];
      }
      break;
    }
    case OP_ADDCOL:
    case OP_MULCOL: { /* s, e are rows; b[r] is broadcast along the row */
      int64_t c = j->cols;
      for (int64_t r = s; r < e; r++) {
        const float *ar = a + r * c;
        float *o = out + r * c;
        const float br = b[r];
        if (j->op == OP_ADDCOL)
          for (int64_t i = 0; i < c; i++) o[i] = ar[i] + br;
        else
          for (int64_t i = 0; i < c; i++) o[i] = ar[i] * br;
      }
      break;
    }
  }
}

void FS_FN(axpby)(int64_t n, float alpha, const float *a, float beta, const float *b, float *out) {
  ew_job j = {a, b, out, alpha, beta, 0, OP_AXPBY};
  fs_parallel_for(n, EW_GRAIN, ew_body, &j);
}
void FS_FN(mul)(int64_t n, const float *a, const float *b, float *out) {
  ew_job j = {a, b, out, 0, 0, 0, OP_MUL};
  fs_parallel_for(n, EW_GRAIN, ew_body, &j);
}
void FS_FN(scale)(int64_t n, const float *a, float s, float *out) {
  ew_job j = {a, NULL, out, s, 0, 0, OP_SCALE};
  fs_parallel_for(n, EW_GRAIN, ew_body, &j);
}
void FS_FN(add_row)(int64_t rows, int64_t cols, const float *a, const float *b, float *out) {
  ew_job j = {a, b, out, 0, 0, cols, OP_ADDROW};
  if (cols > 0) fs_parallel_for(rows, EW_GRAIN / cols + 1, ew_body, &j);
}
void FS_FN(mul_row)(int64_t rows, int64_t cols, const float *a, const float *b, float *out) {
  ew_job j = {a, b, out, 0, 0, cols, OP_MULROW};
  if (cols > 0) fs_parallel_for(rows, EW_GRAIN / cols + 1, ew_body, &j);
}
void FS_FN(add_col)(int64_t rows, int64_t cols, const float *a, const float *b, float *out) {
  ew_job j = {a, b, out, 0, 0, cols, OP_ADDCOL};
  if (cols > 0) fs_parallel_for(rows, EW_GRAIN / cols + 1, ew_body, &j);
}
void FS_FN(mul_col)(int64_t rows, int64_t cols, const float *a, const float *b, float *out) {
  ew_job j = {a, b, out, 0, 0, cols, OP_MULCOL};
  if (cols > 0) fs_parallel_for(rows, EW_GRAIN / cols + 1, ew_body, &j);
}

/* ---- sum over the middle axis of [outer, dim, inner] ----
 * inner == 1: pairwise sum of each contiguous row. inner > 1: column chunks of 64, rows summed in blocks of 16
 * and the block sums merged like a binary counter (= pairwise over blocks), error ~ 16 + log2(dim/16). */
typedef struct {
  int64_t outer, dim, inner;
  const float *x;
  float *out;
} sum_job;

#define SUM_W 64
static void sum_cols(const float *x, int64_t dim, int64_t inner, int64_t w, float *out) {
  float lev[48][SUM_W];
  int used[48] = {0};
  float cur[SUM_W];
  for (int64_t d0 = 0; d0 < dim; d0 += 16) {
    for (int64_t c = 0; c < w; c++) cur[c] = 0.0f;
    int64_t d1 = FS_MIN(dim, d0 + 16);
    for (int64_t d = d0; d < d1; d++)
      for (int64_t c = 0; c < w; c++) cur[c] += x[d * inner + c];
    int l = 0;
    while (used[l]) {
      for (int64_t c = 0; c < w; c++) cur[c] += lev[l][c];
      used[l++] = 0;
    }
    for (int64_t c = 0; c < w; c++) lev[l][c] = cur[c];
    used[l] = 1;
  }
  for (int64_t c = 0; c < w; c++) cur[c] = 0.0f;
  for (int l = 0; l < 48; l++)
    if (used[l])
      for (int64_t c = 0; c < w; c++) cur[c] += lev[l][c];
  for (int64_t c = 0; c < w; c++) out[c] = cur[c];
}

static void sum_body(void *p, int64_t s, int64_t e) {
  const sum_job *j = (const sum_job *)p;
  if (j->inner == 1) {
    for (int64_t o = s; o < e; o++) j->out[o] = fs_sum_pairwise(j->x + o * j->dim, j->dim);
    return;
  }
  int64_t nchunk = (j->inner + SUM_W - 1) / SUM_W;
  for (int64_t t = s; t < e; t++) {
    int64_t o = t / nchunk, c0 = (t % nchunk) * SUM_W;
    int64_t w = FS_MIN(SUM_W, j->inner - c0);
    sum_cols(j->x + o * j->dim * j->inner + c0, j->dim, j->inner, w, j->out + o * j->inner + c0);
  }
}

void FS_FN(sum_axis)(int64_t outer, int64_t dim, int64_t inner, const float *x, float *out) {
  if (outer <= 0 || inner <= 0) return;
  sum_job j = {outer, dim, inner, x, out};
  if (dim <= 0) {
    for (int64_t i = 0; i < outer * inner; i++) out[i] = 0.0f;
    return;
  }
  int64_t tasks = inner == 1 ? outer : outer * ((inner + SUM_W - 1) / SUM_W);
  int64_t per = inner == 1 ? dim : dim * FS_MIN(inner, SUM_W);
  fs_parallel_for(tasks, EW_GRAIN / per + 1, sum_body, &j);
}

/* ---- embedding ---- */
typedef struct {
  int64_t n, dim;
  const int32_t *ids;
  const float *src;
  float *dst;
} emb_job;

static void emb_fwd_body(void *p, int64_t s, int64_t e) {
  const emb_job *j = (const emb_job *)p;
  for (int64_t i = s; i < e; i++) memcpy(j->dst + i * j->dim, j->src + (int64_t)j->ids[i] * j->dim, (size_t)j->dim * 4);
}
/* backward splits the embedding dim (columns) across threads: no two threads touch the same element, and the
 * accumulation order per element is the token order, so results are deterministic */
static void emb_bwd_body(void *p, int64_t s, int64_t e) {
  const emb_job *j = (const emb_job *)p;
  for (int64_t i = 0; i < j->n; i++) {
    float *d = j->dst + (int64_t)j->ids[i] * j->dim;
    const float *g = j->src + i * j->dim;
    for (int64_t c = s; c < e; c++) d[c] += g[c];
  }
}

void FS_FN(embedding_fwd)(int64_t n, int64_t dim, const int32_t *ids, const float *table, float *out) {
  emb_job j = {n, dim, ids, table, out};
  if (dim > 0) fs_parallel_for(n, EW_GRAIN / dim + 1, emb_fwd_body, &j);
}
void FS_FN(embedding_bwd)(int64_t n, int64_t dim, const int32_t *ids, const float *dout, float *dtable) {
  emb_job j = {n, dim, ids, dout, dtable};
  if (n <= 0 || dim <= 0) return;
  int64_t grain = n * dim >= EW_GRAIN ? 64 : dim;
  fs_parallel_for(dim, grain, emb_bwd_body, &j);
}
