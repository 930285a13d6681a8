/* adamw.c: fused AdamW step, PyTorch torch.optim.AdamW (foreach=False) semantics:
 *   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
 *   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc1 = 1 - b1^step, bc2 = 1 - b2^step (computed in f64)
 * Elementwise and memory bound; parallel over chunks of the parameter vector. */
#include <math.h>
#include "fs_internal.h"

typedef struct {
  float *p, *m, *v;
  const float *g;
  float decay, b1, omb1, b2, omb2, step_size, bc2_sqrt, eps;
} adam_job;

static void adam_body(void *ctx, int64_t b, int64_t e) {
  const adam_job *j = (const adam_job *)ctx;
  float *restrict p = j->p, *restrict m = j->m, *restrict v = j->v;
  const float *restrict g = j->g;
  for (int64_t i = b; i < e; i++) {
    float gi = g[i];
    float pi = p[i] * j->decay;
    float mi = j->b1 * m[i] + j->omb1 * gi;
    float vi = j->b2 * v[i] + j->omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / j->bc2_sqrt + j->eps;
    p[i] = pi - j->step_size * (mi / denom);
  }
}

void FS_FN(adamw_step)(int64_t n, float *param, const float *grad, float *m, float *v, float lr, float beta1,
                       float beta2, float eps, float weightDecay, int64_t step) {
  if (step < 1) step = 1;
  double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
  adam_job j = {param, m, v, grad, (float)(1.0 - (double)lr * (double)weightDecay), beta1, 1.0f - beta1, beta2,
                1.0f - beta2, (float)((double)lr / bc1), (float)sqrt(bc2), eps};
  fs_parallel_for(n, 1 << 15, adam_body, &j);
}
