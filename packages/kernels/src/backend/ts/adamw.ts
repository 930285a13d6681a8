// Fused AdamW step (PyTorch torch.optim.AdamW semantics, decoupled weight decay), plain TypeScript.
// param, grad, m, v [n]; updated in place. step >= 1 (bias corrections use it).

import type { FloatArray } from '../types.js';

export function adamwStep(n: number, param: FloatArray, grad: FloatArray, m: FloatArray, v: FloatArray, lr: number,
  beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
  const decay = 1 - lr * weightDecay;
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
  const stepSize = lr / bc1;
  for (let i = 0; i < n; i++) {
    const g = grad[i]!;
    const mi = beta1 * m[i]! + (1 - beta1) * g;
    const vi = beta2 * v[i]! + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    // p = p * (1 - lr*wd) - lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
    param[i] = param[i]! * decay - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}
