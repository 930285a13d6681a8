/* attention.c: fused attention forward/backward, flash-attention style (per ISA variant).
 *
 * A task is (batch b, kv head hk, block of query positions). Its tile stacks the G = Hq/Hkv query heads that share
 * the kv head: tile row r = (query i0 + r / G, head hk*G + r % G), R = QI*G rows (~64), so K/V blocks are read
 * once for the whole GQA group (decode: Tq = 1 still gives G rows). Keys are processed in blocks of KB:
 *   S = scale * Qt @ K_blk^T  (f32 GEMM, sgemm_serial)      -> masked (causal) -> online softmax (m, l per row)
 *   acc = acc * exp(m_old - m_new) + P @ V_blk (GEMM, beta = 1)
 * and o = acc / l, lse = m + log(l) at the end. Rows with no visible key: o = 0, lse = -inf.
 * Backward, task = (b, hk) owning dK/dV of that kv head (no write races), for each query tile and key block:
 *   P = exp(S - lse) ; dV += P^T dO ; dP = dO V^T ; dS = P * (dP - rowsum(dO*O)) ; dQ += scale dS K ;
 *   dK += scale dS^T Q.  Rows with lse = -inf give P = 0, hence zero gradients. */
#include <math.h>
#include <stdlib.h>
#include "gemm.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define ATT_KB 128
#define ATT_ROWS 64

typedef struct {
  int64_t B, Tq, Tk, Hq, Hkv, D, Dv, kbs, vbs, G, QI, nqb;
  float scale;
  int causal;
  /* cached (ragged) forward: batch row b reads cache slot slots[b] holding lens[b] keys; NULL = slot b, Tk keys */
  const int32_t *slots, *lens;
  const float *q, *k, *v, *o, *lse, *dout;
  float *out, *lse_out, *dq, *dk, *dv;
} att_job;

static inline int64_t att_tk(const att_job *j, int64_t b) { return j->lens ? j->lens[b] : j->Tk; }
static inline int64_t att_slot(const att_job *j, int64_t b) { return j->slots ? j->slots[b] : b; }

/* last visible key (inclusive) of query i of batch row b; < 0 means none */
static inline int64_t att_limit(const att_job *j, int64_t b, int64_t i) {
  int64_t Tk = att_tk(j, b);
  return j->causal ? FS_MIN(Tk - 1, i + (Tk - j->Tq)) : Tk - 1;
}

/* Decode tiles (MHA: one query row per (batch, head)) are too thin for the packed GEMM, whose packing of the key
 * block costs more than the R x nk x D products: below ATT_DIRECT_ROWS rows the scores come from the no-pack
 * skinny GEMM (dot products straight from the cache rows) and P @ V runs as axpy loops. */
#define ATT_DIRECT_ROWS 4
#define FS_DECODE_MAX_HEADS 1024
/* acc[r, :] += sum_c P[r, c] * V[c, :], 16 columns at a time held in a register across the keys (an axpy per key
 * into acc would chain every key through a store and a reload of the same line) */
static void att_pv_direct(int64_t R, int64_t nk, int64_t Dv, const float *P, const float *V, int64_t vst,
                          float *acc) {
  for (int64_t r = 0; r < R; r++) {
    float *a = acc + r * Dv;
    const float *p = P + r * ATT_KB;
    int64_t d0 = 0;
#if defined(__AVX512F__)
    for (; d0 + 16 <= Dv; d0 += 16) {
      /* 4 independent chains: the keys' V rows are 1 KiB+ apart, so each FMA waits on its own load */
      __m512 t0 = _mm512_loadu_ps(a + d0), t1 = _mm512_setzero_ps(), t2 = t1, t3 = t1;
      int64_t c = 0;
      for (; c + 4 <= nk; c += 4) {
        const float *v = V + c * vst + d0;
        t0 = _mm512_fmadd_ps(_mm512_set1_ps(p[c]), _mm512_loadu_ps(v), t0);
        t1 = _mm512_fmadd_ps(_mm512_set1_ps(p[c + 1]), _mm512_loadu_ps(v + vst), t1);
        t2 = _mm512_fmadd_ps(_mm512_set1_ps(p[c + 2]), _mm512_loadu_ps(v + 2 * vst), t2);
        t3 = _mm512_fmadd_ps(_mm512_set1_ps(p[c + 3]), _mm512_loadu_ps(v + 3 * vst), t3);
      }
      for (; c < nk; c++) t0 = _mm512_fmadd_ps(_mm512_set1_ps(p[c]), _mm512_loadu_ps(V + c * vst + d0), t0);
      _mm512_storeu_ps(a + d0, _mm512_add_ps(_mm512_add_ps(t0, t1), _mm512_add_ps(t2, t3)));
    }
#endif
    for (; d0 + 16 <= Dv; d0 += 16) {
      float t[16];
      for (int x = 0; x < 16; x++) t[x] = a[d0 + x];
      for (int64_t c = 0; c < nk; c++) {
        const float w = p[c], *v = V + c * vst + d0;
        for (int x = 0; x < 16; x++) t[x] += w * v[x];
      }
      for (int x = 0; x < 16; x++) a[d0 + x] = t[x];
    }
    for (int64_t c = 0; c < nk && d0 < Dv; c++)
      for (int64_t d = d0; d < Dv; d++) a[d] += p[c] * V[c * vst + d];
  }
}

static void att_fwd_task(const att_job *j, int64_t b, int64_t hk, int64_t qb) {
  int64_t G = j->G, D = j->D, Dv = j->Dv;
  int64_t i0 = qb * j->QI, i1 = FS_MIN(j->Tq, i0 + j->QI), R = (i1 - i0) * G;
  size_t need = (size_t)(R * D + R * ATT_KB + R * Dv + 3 * R) * sizeof(float);
  float *Qt = (float *)fs_scratch(3, need);
  if (!Qt) return;
  float *S = Qt + R * D, *acc = S + R * ATT_KB, *m = acc + R * Dv, *l = m + R, *limf = l + R;
  int64_t maxlim = -1;
  for (int64_t r = 0; r < R; r++) {
    int64_t i = i0 + r / G, h = hk * G + r % G;
    memcpy(Qt + r * D, j->q + ((b * j->Tq + i) * j->Hq + h) * D, (size_t)D * 4);
    m[r] = -__builtin_inff();
    l[r] = 0.0f;
    int64_t lim = att_limit(j, b, i);
    limf[r] = (float)lim;
    maxlim = FS_MAX(maxlim, lim);
  }
  for (int64_t t = 0; t < R * Dv; t++) acc[t] = 0.0f;
  const float *kb = j->k + att_slot(j, b) * j->kbs + hk * D, *vb = j->v + att_slot(j, b) * j->vbs + hk * Dv;
  int64_t kst = j->Hkv * D, vst = j->Hkv * Dv;
  for (int64_t j0 = 0; j0 <= maxlim; j0 += ATT_KB) {
    int64_t nk = FS_MIN(ATT_KB, maxlim + 1 - j0);
    if (R <= ATT_DIRECT_ROWS) FS_FN(sgemm_skinny)(R, nk, D, j->scale, Qt, D, kb + j0 * kst, kst, 0.0f, S, ATT_KB);
    else FS_FN(sgemm_serial)(0, 1, R, nk, D, j->scale, Qt, D, kb + j0 * kst, kst, 0.0f, S, ATT_KB);
    for (int64_t r = 0; r < R; r++) {
      float *s = S + r * ATT_KB;
      int64_t vis = FS_MIN(nk, (int64_t)limf[r] - j0 + 1); /* keys [0, vis) of this block are visible */
      if (vis <= 0) { for (int64_t c = 0; c < nk; c++) s[c] = 0.0f; continue; }
      float mx = fs_max_block(s, vis);
      float mn = FS_MAX(m[r], mx);
      float alpha = fs_expf(m[r] - mn);
      for (int64_t c = 0; c < vis; c++) s[c] = fs_expf(s[c] - mn);
      for (int64_t c = vis; c < nk; c++) s[c] = 0.0f;
      l[r] = l[r] * alpha + fs_sum_block(s, vis);
      m[r] = mn;
      if (alpha != 1.0f)
        for (int64_t d = 0; d < Dv; d++) acc[r * Dv + d] *= alpha;
    }
    if (R <= ATT_DIRECT_ROWS) att_pv_direct(R, nk, Dv, S, vb + j0 * vst, vst, acc);
    else FS_FN(sgemm_serial)(0, 0, R, Dv, nk, 1.0f, S, ATT_KB, vb + j0 * vst, vst, 1.0f, acc, Dv);
  }
  for (int64_t r = 0; r < R; r++) {
    int64_t i = i0 + r / G, h = hk * G + r % G;
    float *o = j->out + ((b * j->Tq + i) * j->Hq + h) * Dv;
    float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    for (int64_t d = 0; d < Dv; d++) o[d] = acc[r * Dv + d] * inv;
    j->lse_out[(b * j->Hq + h) * j->Tq + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -__builtin_inff();
  }
}

/* Decode (one query per sequence, Tq = 1): a task is a whole sequence b, every head. The cache row of key t,
 * K[b, t, :, :], is Hkv·D contiguous floats, so the task streams the cache in order; the per-(b, kv head) tiles
 * above read a 128-byte head slice out of every 1 KiB row instead, which after the expert weights have flushed
 * the caches is a strided walk through DRAM (moe-train decode profile, 1 thread: attn.B 1.21 -> 0.87 ms per
 * step over 4 layers, o_proj included). All keys are visible (causal with Tq = 1 sees the whole cache). */
static inline float att_dot(const float *a, const float *b, int64_t n) {
  float p[16] = {0}, x = 0.0f;
  int64_t d = 0;
  for (; d + 16 <= n; d += 16)
    for (int t = 0; t < 16; t++) p[t] += a[d + t] * b[d + t];
  for (; d < n; d++) x += a[d] * b[d];
  for (int t = 0; t < 16; t++) x += p[t];
  return x;
}

static void att_decode_task(const att_job *j, int64_t b) {
  int64_t Hq = j->Hq, G = j->G, D = j->D, Dv = j->Dv, nk = att_tk(j, b);
  float *S = (float *)fs_scratch(3, (size_t)(Hq * FS_MAX(nk, 1) + Hq * Dv) * sizeof(float));
  if (!S) return;
  float *acc = S + Hq * FS_MAX(nk, 1);
  const float *q = j->q + b * Hq * D, *kb = j->k + att_slot(j, b) * j->kbs, *vb = j->v + att_slot(j, b) * j->vbs;
  int64_t kst = j->Hkv * D, vst = j->Hkv * Dv;
  for (int64_t t = 0; t < nk; t++) {
    const float *kr = kb + t * kst;
    for (int64_t h = 0; h < Hq; h++) S[h * nk + t] = j->scale * att_dot(q + h * D, kr + (h / G) * D, D);
  }
  float m[FS_DECODE_MAX_HEADS], l[FS_DECODE_MAX_HEADS];
  for (int64_t h = 0; h < Hq; h++) {
    float *s = S + h * nk;
    m[h] = nk > 0 ? fs_max_block(s, nk) : -__builtin_inff();
    for (int64_t t = 0; t < nk; t++) s[t] = fs_expf(s[t] - m[h]);
    l[h] = nk > 0 ? fs_sum_block(s, nk) : 0.0f;
  }
  for (int64_t x = 0; x < Hq * Dv; x++) acc[x] = 0.0f;
  for (int64_t t = 0; t < nk; t++) {
    const float *vr = vb + t * vst;
    for (int64_t h = 0; h < Hq; h++) {
      float w = S[h * nk + t], *a = acc + h * Dv;
      const float *v = vr + (h / G) * Dv;
      for (int64_t d = 0; d < Dv; d++) a[d] += w * v[d];
    }
  }
  for (int64_t h = 0; h < Hq; h++) {
    float *o = j->out + (b * Hq + h) * Dv, inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
    for (int64_t d = 0; d < Dv; d++) o[d] = acc[h * Dv + d] * inv;
    j->lse_out[b * Hq + h] = l[h] > 0.0f ? m[h] + logf(l[h]) : -__builtin_inff();
  }
}

static void att_decode_body(void *p, int64_t s, int64_t e) {
  for (int64_t b = s; b < e; b++) att_decode_task((const att_job *)p, b);
}

static void att_fwd_body(void *p, int64_t s, int64_t e) {
  const att_job *j = (const att_job *)p;
  for (int64_t t = s; t < e; t++) {
    int64_t qb = t % j->nqb, bh = t / j->nqb;
    att_fwd_task(j, bh / j->Hkv, bh % j->Hkv, qb);
  }
}

static void att_setup(att_job *j) {
  j->G = j->Hq / j->Hkv;
  j->QI = FS_MAX(1, ATT_ROWS / j->G);
  j->nqb = (j->Tq + j->QI - 1) / j->QI;
}

static void att_fwd_run(att_job *j) {
  att_setup(j);
  if (j->Tq == 1 && j->Hq <= FS_DECODE_MAX_HEADS && j->B >= fs_pool_size()) { /* decode: one sequence per task */
    fs_parallel_dyn(j->B, 1, att_decode_body, j);
    return;
  }
  /* causal tiles near the end cost more: dynamic scheduling, one tile per grab */
  fs_parallel_dyn(j->B * j->Hkv * j->nqb, 1, att_fwd_body, j);
}

void FS_FN(attention_fwd)(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv,
                          float scale, int causal, const float *q, const float *k, int64_t kBatchStride,
                          const float *v, int64_t vBatchStride, float *o, float *lse) {
  if (B <= 0 || Tq <= 0 || Hq <= 0 || Hkv <= 0) return;
  att_job j = {B, Tq, Tk, Hq, Hkv, D, Dv, kBatchStride ? kBatchStride : Tk * Hkv * D,
               vBatchStride ? vBatchStride : Tk * Hkv * Dv, 0, 0, 0, scale, causal, NULL, NULL,
               q, k, v, 0, 0, 0, o, lse};
  att_fwd_run(&j);
}

/* Attention over a slot cache with a length per sequence (continuous batching): batch row b's Tq queries (the
 * last Tq of its sequence when causal) attend to keys [0, lens[b]) of slot slots[b] of k [slots, maxT, Hkv, D]
 * (slotStride = maxT·Hkv·D elements) and v likewise. */
void FS_FN(attention_fwd_cached)(int64_t B, int64_t Tq, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv, float scale,
                                 int causal, const float *q, const float *k, int64_t kSlotStride, const float *v,
                                 int64_t vSlotStride, const int32_t *slots, const int32_t *lens, float *o,
                                 float *lse) {
  if (B <= 0 || Tq <= 0 || Hq <= 0 || Hkv <= 0) return;
  att_job j = {B, Tq, 0, Hq, Hkv, D, Dv, kSlotStride, vSlotStride, 0, 0, 0, scale, causal, slots, lens,
               q, k, v, 0, 0, 0, o, lse};
  att_fwd_run(&j);
}

/* ---- backward ---- */
static void att_bwd_task(const att_job *j, int64_t b, int64_t hk) {
  int64_t G = j->G, D = j->D, Dv = j->Dv, Rmax = j->QI * G;
  size_t need = (size_t)(2 * Rmax * D + Rmax * Dv + 2 * Rmax * ATT_KB + 3 * Rmax) * sizeof(float);
  float *Qt = (float *)fs_scratch(3, need);
  if (!Qt) return;
  float *dQt = Qt + Rmax * D, *dOt = dQt + Rmax * D, *P = dOt + Rmax * Dv, *dP = P + Rmax * ATT_KB;
  float *lr = dP + Rmax * ATT_KB, *Dr = lr + Rmax, *limf = Dr + Rmax;
  const float *kb = j->k + b * j->Tk * j->Hkv * D + hk * D, *vb = j->v + b * j->Tk * j->Hkv * Dv + hk * Dv;
  float *dkb = j->dk + b * j->Tk * j->Hkv * D + hk * D, *dvb = j->dv + b * j->Tk * j->Hkv * Dv + hk * Dv;
  int64_t kst = j->Hkv * D, vst = j->Hkv * Dv;
  for (int64_t t = 0; t < j->Tk; t++) {
    memset(dkb + t * kst, 0, (size_t)D * 4);
    memset(dvb + t * vst, 0, (size_t)Dv * 4);
  }
  for (int64_t i0 = 0; i0 < j->Tq; i0 += j->QI) {
    int64_t i1 = FS_MIN(j->Tq, i0 + j->QI), R = (i1 - i0) * G, maxlim = -1;
    for (int64_t r = 0; r < R; r++) {
      int64_t i = i0 + r / G, h = hk * G + r % G, row = (b * j->Tq + i) * j->Hq + h;
      memcpy(Qt + r * D, j->q + row * D, (size_t)D * 4);
      memcpy(dOt + r * Dv, j->dout + row * Dv, (size_t)Dv * 4);
      memset(dQt + r * D, 0, (size_t)D * 4);
      float l = j->lse[(b * j->Hq + h) * j->Tq + i];
      const float *orow = j->o + row * Dv;
      float dsum = 0.0f;
      for (int64_t d = 0; d < Dv; d++) dsum += orow[d] * dOt[r * Dv + d];
      Dr[r] = dsum;
      int64_t lim = l == -__builtin_inff() ? -1 : att_limit(j, b, i);
      lr[r] = l;
      limf[r] = (float)lim;
      maxlim = FS_MAX(maxlim, lim);
    }
    for (int64_t j0 = 0; j0 <= maxlim; j0 += ATT_KB) {
      int64_t nk = FS_MIN(ATT_KB, maxlim + 1 - j0);
      FS_FN(sgemm_serial)(0, 1, R, nk, D, j->scale, Qt, D, kb + j0 * kst, kst, 0.0f, P, ATT_KB);
      FS_FN(sgemm_serial)(0, 1, R, nk, Dv, 1.0f, dOt, Dv, vb + j0 * vst, vst, 0.0f, dP, ATT_KB);
      for (int64_t r = 0; r < R; r++) {
        float *p = P + r * ATT_KB, *dp = dP + r * ATT_KB;
        int64_t vis = FS_MIN(nk, (int64_t)limf[r] - j0 + 1);
        if (vis < 0) vis = 0;
        for (int64_t c = 0; c < vis; c++) p[c] = fs_expf(p[c] - lr[r]);
        for (int64_t c = vis; c < nk; c++) p[c] = 0.0f;
        for (int64_t c = 0; c < nk; c++) dp[c] = p[c] * (dp[c] - Dr[r]) * j->scale; /* dS * scale */
      }
      FS_FN(sgemm_serial)(1, 0, nk, Dv, R, 1.0f, P, ATT_KB, dOt, Dv, 1.0f, dvb + j0 * vst, vst);
      FS_FN(sgemm_serial)(0, 0, R, D, nk, 1.0f, dP, ATT_KB, kb + j0 * kst, kst, 1.0f, dQt, D);
      FS_FN(sgemm_serial)(1, 0, nk, D, R, 1.0f, dP, ATT_KB, Qt, D, 1.0f, dkb + j0 * kst, kst);
    }
    for (int64_t r = 0; r < R; r++) {
      int64_t i = i0 + r / G, h = hk * G + r % G;
      memcpy(j->dq + ((b * j->Tq + i) * j->Hq + h) * D, dQt + r * D, (size_t)D * 4);
    }
  }
}

static void att_bwd_body(void *p, int64_t s, int64_t e) {
  const att_job *j = (const att_job *)p;
  for (int64_t t = s; t < e; t++) att_bwd_task(j, t / j->Hkv, t % j->Hkv);
}

void FS_FN(attention_bwd)(int64_t B, int64_t Tq, int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, int64_t Dv,
                          float scale, int causal, const float *q, const float *k, const float *v, const float *o,
                          const float *lse, const float *dout, float *dq, float *dk, float *dv) {
  if (B <= 0 || Hq <= 0 || Hkv <= 0) return;
  att_job j = {B, Tq, Tk, Hq, Hkv, D, Dv, 0, 0, 0, 0, 0, scale, causal, NULL, NULL, q, k, v, o, lse, dout, 0, 0, dq, dk, dv};
  att_setup(&j);
  if (Tq <= 0) { /* nothing attends: zero grads */
    memset(dk, 0, (size_t)(B * Tk * Hkv * D) * 4);
    memset(dv, 0, (size_t)(B * Tk * Hkv * Dv) * 4);
    return;
  }
  fs_parallel_dyn(B * Hkv, 1, att_bwd_body, &j);
}
