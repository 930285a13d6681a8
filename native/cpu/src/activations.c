/* activations.c: SiLU and SwiGLU forward/backward. sigmoid(x) = 1 / (1 + exp(-x)) with the branch-free
 * fs_expf, so the loops vectorise in every ISA build. silu(x) = x * sigmoid(x). */
#include "fs_internal.h"

#define ACT_GRAIN (1 << 15)
typedef struct {
  const float *x, *u, *dy;
  float *y, *d1, *d2;
} act_job;

static inline float sigm(float x) { return 1.0f / (1.0f + fs_expf(-x)); }

static void silu_fwd_body(void *p, int64_t s, int64_t e) {
  const act_job *j = (const act_job *)p;
  for (int64_t i = s; i < e; i++) j->y[i] = j->x[i] * sigm(j->x[i]);
}
/* d silu / dx = s * (1 + x * (1 - s)) */
static void silu_bwd_body(void *p, int64_t s, int64_t e) {
  const act_job *j = (const act_job *)p;
  for (int64_t i = s; i < e; i++) {
    float x = j->x[i], sg = sigm(x);
    j->d1[i] = j->dy[i] * (sg * (1.0f + x * (1.0f - sg)));
  }
}
static void swiglu_fwd_body(void *p, int64_t s, int64_t e) {
  const act_job *j = (const act_job *)p;
  for (int64_t i = s; i < e; i++) j->y[i] = j->x[i] * sigm(j->x[i]) * j->u[i];
}
/* dgate = dy * up * silu'(gate), dup = dy * silu(gate) */
static void swiglu_bwd_body(void *p, int64_t s, int64_t e) {
  const act_job *j = (const act_job *)p;
  for (int64_t i = s; i < e; i++) {
    float g = j->x[i], sg = sigm(g), dy = j->dy[i];
    float dgi = dy * j->u[i] * (sg * (1.0f + g * (1.0f - sg)));
    float dui = dy * (g * sg);
    j->d1[i] = dgi;
    j->d2[i] = dui;
  }
}

void FS_FN(silu_fwd)(int64_t n, const float *x, float *y) {
  act_job j = {x, 0, 0, y, 0, 0};
  fs_parallel_for(n, ACT_GRAIN, silu_fwd_body, &j);
}
void FS_FN(silu_bwd)(int64_t n, const float *x, const float *dy, float *dx) {
  act_job j = {x, 0, dy, 0, dx, 0};
  fs_parallel_for(n, ACT_GRAIN, silu_bwd_body, &j);
}
void FS_FN(swiglu_fwd)(int64_t n, const float *gate, const float *up, float *y) {
  act_job j = {gate, up, 0, y, 0, 0};
  fs_parallel_for(n, ACT_GRAIN, swiglu_fwd_body, &j);
}
void FS_FN(swiglu_bwd)(int64_t n, const float *gate, const float *up, const float *dy, float *dgate, float *dup) {
  act_job j = {gate, up, dy, 0, dgate, dup};
  fs_parallel_for(n, ACT_GRAIN, swiglu_bwd_body, &j);
}
