// RMSNorm (Hugging Face Llama/Qwen/DeepSeek): y = x * rsqrt(mean(x^2) + eps) * weight over the last dim.
import { type Tensor, recordOp } from '@farskip/tensor';
import { gpuRmsNorm } from '../backend/cuda/ops.js';
import { cpuBackend } from '../backend/select.js';
import { arr, commonDtype, describe, empty, lastDim, withF32 } from './util.js';

/** x [..., hidden], weight [hidden] -> [..., hidden]. */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  const dtype = commonDtype('rmsNorm', { x, weight });
  const onGpu = x.storage !== null || weight.storage !== null;
  if (dtype === 'bf16' && !onGpu) return withF32([x, weight], (a, w) => rmsNorm(a, w, eps));
  const cols = lastDim('rmsNorm', 'x', x);
  if (weight.ndim !== 1 || weight.shape[0] !== cols) {
    throw new Error(`rmsNorm: weight ${describe(weight)} must be [${cols}] to match x ${describe(x)}`);
  }
  const rows = cols === 0 ? 0 : x.numel / cols;
  if (onGpu) return gpuRmsNorm(x, weight, eps, rows, cols);
  const be = cpuBackend(dtype);
  const y = empty(x.shape, dtype);
  const rstd = empty([rows], dtype);
  be.rmsnormFwd(rows, cols, arr(x), arr(weight), eps, arr(y), arr(rstd));
  return recordOp(y, 'rmsNorm', [x, weight], (g) => {
    const dx = empty(x.shape, dtype), dw = empty(weight.shape, dtype);
    cpuBackend(dtype).rmsnormBwd(rows, cols, arr(x), arr(weight), arr(rstd), arr(g), arr(dx), arr(dw));
    return [dx, weight.requiresGrad ? dw : null];
  });
}
