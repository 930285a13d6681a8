// optim.cu: fused AdamW step (torch.optim.AdamW semantics, decoupled weight decay). Semantics:
// packages/kernels/src/backend/ts/adamw.ts.
//
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p = p * (1 - lr wd) - lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
//
// param, m, v [n] f32 (master weights and moments, updated in place); grad [n] f32 (fs_adamw_step_f32) or bf16
// (fs_adamw_step_bf16grad). step >= 1. The bias corrections are formed in f64 once per thread.
// Launch: grid-stride: block [256], grid [min(cdiv(n, 256), 65535)] (any grid >= 1), sharedBytes 0.
#include "fs_cuda.cuh"

template <typename G>
__device__ void adamw_impl(long long n, float *param, const G *grad, float *m, float *v, float lr, float beta1,
                           float beta2, float eps, float weightDecay, int step) {
  const float decay = (float)(1.0 - (double)lr * (double)weightDecay);
  const float stepSize = (float)((double)lr / (1.0 - pow((double)beta1, (double)step)));
  const float bc2Sqrt = (float)sqrt(1.0 - pow((double)beta2, (double)step));
  FS_GRID_STRIDE(i, n) {
    const float g = fs_ld(grad + i);
    const float mi = beta1 * m[i] + (1.f - beta1) * g;
    const float vi = beta2 * v[i] + (1.f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - stepSize * mi / (sqrtf(vi) / bc2Sqrt + eps);
  }
}

extern "C" __global__ void fs_adamw_step_f32(long long n, float *param, const float *grad, float *m, float *v, float lr, float beta1, float beta2, float eps, float weightDecay, int step) { adamw_impl(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step); }
extern "C" __global__ void fs_adamw_step_bf16grad(long long n, float *param, const bf16 *grad, float *m, float *v, float lr, float beta1, float beta2, float eps, float weightDecay, int step) { adamw_impl(n, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step); }
