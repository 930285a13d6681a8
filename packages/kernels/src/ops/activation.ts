// Softmax / log-softmax over a dimension, SiLU, and SwiGLU (silu(gate) * up, the MoE expert activation).
import { type Tensor, normDim, recordOp } from '@farskip/tensor';
import { gpuRowwise, gpuSilu, gpuSwiglu } from '../backend/cuda/ops.js';
import { cpuBackend } from '../backend/select.js';
import { notOnDevice } from './device.js';
import { arr, commonDtype, describe, empty, lastDim, requireFloat, withF32 } from './util.js';

function overLastDim(name: string, x: Tensor, dim: number, fn: (x: Tensor) => Tensor): Tensor {
  const d = normDim(dim, x.ndim, name);
  if (d === x.ndim - 1) return fn(x);
  if (x.storage !== null) throw notOnDevice(name, x, `over dim ${dim}: only the last dim runs on the GPU (no transposes there yet)`);
  return fn(x.transpose(d, -1)).transpose(d, -1);
}

export function softmax(x: Tensor, dim = -1): Tensor {
  requireFloat('softmax', 'x', x);
  return overLastDim('softmax', x, dim, (t) => rowwise('softmax', t, false));
}

export function logSoftmax(x: Tensor, dim = -1): Tensor {
  requireFloat('logSoftmax', 'x', x);
  return overLastDim('logSoftmax', x, dim, (t) => rowwise('logSoftmax', t, true));
}

function rowwise(name: string, x: Tensor, log: boolean): Tensor {
  if (x.storage !== null) { const cols = lastDim(name, 'x', x); return gpuRowwise(name, x, log, cols === 0 ? 0 : x.numel / cols, cols); }
  if (x.dtype === 'bf16') return withF32([x], (t) => rowwise(name, t, log));
  const cols = lastDim(name, 'x', x), rows = cols === 0 ? 0 : x.numel / cols;
  const y = empty(x.shape, x.dtype);
  const be = cpuBackend(x.dtype);
  (log ? be.logSoftmaxFwd : be.softmaxFwd).call(be, rows, cols, arr(x), arr(y));
  return recordOp(y, name, [x], (g) => {
    const dx = empty(x.shape, x.dtype);
    const b = cpuBackend(x.dtype);
    (log ? b.logSoftmaxBwd : b.softmaxBwd).call(b, rows, cols, arr(y), arr(g), arr(dx));
    return [dx];
  });
}

export function silu(x: Tensor): Tensor {
  requireFloat('silu', 'x', x);
  if (x.storage !== null) return gpuSilu(x);
  if (x.dtype === 'bf16') return withF32([x], silu);
  const y = empty(x.shape, x.dtype);
  cpuBackend(x.dtype).siluFwd(x.numel, arr(x), arr(y));
  return recordOp(y, 'silu', [x], (g) => {
    const dx = empty(x.shape, x.dtype);
    cpuBackend(x.dtype).siluBwd(x.numel, arr(x), arr(g), arr(dx));
    return [dx];
  });
}

/** silu(gate) * up, elementwise; gate and up have the same shape. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  const dtype = commonDtype('swiglu', { gate, up });
  const onGpu = gate.storage !== null || up.storage !== null;
  if (dtype === 'bf16' && !onGpu) return withF32([gate, up], swiglu);
  if (gate.shape.length !== up.shape.length || gate.shape.some((d, i) => d !== up.shape[i])) {
    throw new Error(`swiglu: gate ${describe(gate)} and up ${describe(up)} must have the same shape`);
  }
  if (onGpu) return gpuSwiglu(gate, up);
  const y = empty(gate.shape, dtype);
  cpuBackend(dtype).swigluFwd(gate.numel, arr(gate), arr(up), arr(y));
  return recordOp(y, 'swiglu', [gate, up], (g) => {
    const dg = empty(gate.shape, dtype), du = empty(up.shape, dtype);
    cpuBackend(dtype).swigluBwd(gate.numel, arr(gate), arr(up), arr(g), arr(dg), arr(du));
    return [dg, du];
  });
}

/**
 * 1 / (1 + e^(−x)), elementwise (sigmoid router scores, gates). Plain TS on every backend: it runs on
 * router-sized tensors ([tokens, experts]), where a native call would cost more than the loop.
 */
export function sigmoid(x: Tensor): Tensor {
  requireFloat('sigmoid', 'x', x);
  if (x.dtype === 'bf16') return withF32([x], sigmoid);
  const y = empty(x.shape, x.dtype);
  const xs = arr(x), ys = arr(y);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i]!;
    // two forms so that e^(·) never overflows
    if (v >= 0) ys[i] = 1 / (1 + Math.exp(-v));
    else { const e = Math.exp(v); ys[i] = e / (1 + e); }
  }
  return recordOp(y, 'sigmoid', [x], (g) => {
    const dx = empty(x.shape, x.dtype);
    const gs = arr(g), ds = arr(dx);
    for (let i = 0; i < ys.length; i++) ds[i] = gs[i]! * ys[i]! * (1 - ys[i]!);
    return [dx];
  });
}
