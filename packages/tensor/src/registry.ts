// Per-device operations the engine itself needs (gradient accumulation, dtype casts of device tensors). Kernel
// packages register faster implementations for their device; the CPU default is a plain loop so @farskip/tensor
// stands alone. A registration under a device kind ('cuda', 'hip') covers every device of that kind ('cuda:N');
// one under an exact device ('cuda:1') takes precedence.
import type { DType } from './dtype.js';
import type { Device } from './device.js';
import type { Tensor } from './tensor.js';

export interface EngineOps {
  /** Returns a + b (same shape, dtype and device) as a new tensor, without recording autograd. */
  add(a: Tensor, b: Tensor): Tensor;
  /** dst += src in place (same shape, dtype and device). */
  addInPlace(dst: Tensor, src: Tensor): void;
  /**
   * `x` converted to `dtype` on its device, without recording autograd. Optional: device tensors without it convert
   * through the host (download, convert, upload).
   */
  cast?(x: Tensor, dtype: DType): Tensor;
}

const registry = new Map<string, EngineOps>();

export function registerEngineOps(device: Device | 'cuda' | 'hip', ops: EngineOps): void {
  registry.set(device, ops);
}

function lookup(device: Device): EngineOps | undefined {
  // the exact device first (the CPU hits here); the kind only for accelerator devices
  return registry.get(device) ?? registry.get(device.slice(0, Math.max(0, device.indexOf(':'))));
}

function opsFor(t: Tensor): EngineOps {
  const ops = lookup(t.device);
  if (!ops) {
    throw new Error(`no engine ops registered for device '${t.device}' (gradient accumulation): import @farskip/kernels, ` +
      'which registers them for the CPU and for cuda devices');
  }
  return ops;
}

export function addGrads(a: Tensor, b: Tensor): Tensor {
  if (a.device !== b.device) throw new Error(`gradient accumulation: contributions on ${a.device} and ${b.device}; an op returned a gradient on the wrong device`);
  return opsFor(a).add(a, b);
}

/** Accumulates `g` into `t.grad`; the first gradient is copied so later in-place updates never alias. */
export function accumulateGrad(t: Tensor, g: Tensor): void {
  if (g.device !== t.device) {
    throw new Error(`gradient for a tensor on ${t.device} arrived on ${g.device}: an op's backward returned it on the wrong device`);
  }
  if (g.dtype !== t.dtype) g = g.to(t.dtype);
  if (t.grad === null) t.grad = g.detach().clone();
  else opsFor(t).addInPlace(t.grad, g);
  if (t.postAccumulateGradHooks) for (const h of t.postAccumulateGradHooks) h(t);
}

/** A device tensor converted to `dtype` without autograd: the device's cast, else through the host. */
export function engineCast<E extends DType>(x: Tensor, dtype: E): Tensor<E> {
  const cast = lookup(x.device)?.cast;
  if (cast) return cast(x, dtype) as Tensor<E>;
  return x.detach().cpu().to(dtype).to(x.device) as Tensor<E>;
}
