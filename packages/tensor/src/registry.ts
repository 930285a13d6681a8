// Per-device operations the engine itself needs (gradient accumulation). Kernel packages register faster
// implementations for their device; the CPU default is a plain loop so @farskip/tensor stands alone.
import type { Device } from './device.js';
import type { Tensor } from './tensor.js';

export interface EngineOps {
  /** Returns a + b (same shape and dtype) as a new tensor, without recording autograd. */
  add(a: Tensor, b: Tensor): Tensor;
  /** dst += src in place (same shape and dtype). */
  addInPlace(dst: Tensor, src: Tensor): void;
}

const registry = new Map<string, EngineOps>();

export function registerEngineOps(device: Device, ops: EngineOps): void {
  registry.set(device, ops);
}

function opsFor(t: Tensor): EngineOps {
  const ops = registry.get(t.device);
  if (!ops) throw new Error(`no engine ops registered for device '${t.device}': load the kernels package for that device`);
  return ops;
}

export function addGrads(a: Tensor, b: Tensor): Tensor {
  return opsFor(a).add(a, b);
}

/** Accumulates `g` into `t.grad`; the first gradient is copied so later in-place updates never alias. */
export function accumulateGrad(t: Tensor, g: Tensor): void {
  if (g.dtype !== t.dtype) g = g.to(t.dtype);
  if (t.grad === null) t.grad = g.detach().clone();
  else opsFor(t).addInPlace(t.grad, g);
  if (t.postAccumulateGradHooks) for (const h of t.postAccumulateGradHooks) h(t);
}
