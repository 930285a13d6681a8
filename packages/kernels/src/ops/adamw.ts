// AdamW (torch.optim.AdamW semantics: decoupled weight decay, bias-corrected moments) as one fused kernel
// per parameter. bf16 parameters keep an f32 master copy in the optimizer state, so small updates are not
// lost to bf16 rounding; the bf16 tensor is rewritten from the master after each step.
import { Tensor, convertArray, formatShape } from '@farskip/tensor';
import { cpuBackend } from '../backend/select.js';
import type { FloatArray } from '../backend/types.js';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

interface ParamState { m: FloatArray; v: FloatArray; master: Float32Array | null }

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of step() calls so far (bias correction uses it). */
  stepCount = 0;
  private readonly state = new Map<Tensor, ParamState>();

  constructor(readonly params: readonly Tensor[], options: AdamWOptions = {}) {
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    params.forEach((p, i) => {
      if (!p.requiresGrad) throw new Error(`AdamW: parameter ${i} ${formatShape(p.shape)} does not require grad; pass only trainable tensors`);
      if (p.dtype === 'i32') throw new Error(`AdamW: parameter ${i} is i32; only float parameters can be optimised`);
    });
  }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    const [b1, b2] = this.betas;
    for (const p of this.params) {
      if (!p.grad) continue;
      const st = this.stateFor(p);
      const be = cpuBackend(p.dtype === 'f64' ? 'f64' : 'f32');
      const grad = p.grad.dtype === 'bf16' ? convertArray(p.grad.data, 'bf16', 'f32') : (p.grad.data as FloatArray);
      const param = st.master ?? (p.data as FloatArray);
      be.adamwStep(p.numel, param, grad, st.m, st.v, this.lr, b1, b2, this.eps, this.weightDecay, this.stepCount);
      if (st.master) (p.data as Uint16Array).set(convertArray(st.master, 'f32', 'bf16'));
    }
  }

  /**
   * The optimizer state for checkpoints: step count, lr and, per parameter index, its moments (and bf16 master).
   * Arrays are copies; loadStateDict restores them exactly, so a resumed run continues bit for bit.
   */
  stateDict(): { stepCount: number; lr: number; params: ({ m: FloatArray; v: FloatArray; master: Float32Array | null } | null)[] } {
    return {
      stepCount: this.stepCount,
      lr: this.lr,
      params: this.params.map((p) => {
        const st = this.state.get(p);
        return st ? { m: st.m.slice(), v: st.v.slice(), master: st.master ? st.master.slice() : null } : null;
      }),
    };
  }

  loadStateDict(sd: ReturnType<AdamW['stateDict']>): void {
    if (sd.params.length !== this.params.length) {
      throw new Error(`AdamW.loadStateDict: the state has ${sd.params.length} parameters but the optimizer has ${this.params.length}`);
    }
    this.stepCount = sd.stepCount;
    this.lr = sd.lr;
    this.state.clear();
    sd.params.forEach((st, i) => {
      if (!st) return;
      const p = this.params[i]!;
      if (st.m.length !== p.numel || st.v.length !== p.numel) {
        throw new Error(`AdamW.loadStateDict: parameter ${i} ${formatShape(p.shape)} has ${p.numel} elements but its saved moments have ${st.m.length}`);
      }
      this.state.set(p, { m: st.m.slice(), v: st.v.slice(), master: st.master ? st.master.slice() : null });
    });
  }

  /** Sets every parameter's grad to null (the PyTorch default, set_to_none=True). */
  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  private stateFor(p: Tensor): ParamState {
    let st = this.state.get(p);
    if (!st) {
      const make = (): FloatArray => (p.dtype === 'f64' ? new Float64Array(p.numel) : new Float32Array(p.numel));
      st = { m: make(), v: make(), master: p.dtype === 'bf16' ? convertArray(p.data, 'bf16', 'f32') : null };
      this.state.set(p, st);
    }
    return st;
  }
}

/** One fused AdamW update of `param` in place (f32/f64), with caller-held moments m and v. */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, step: number, options: AdamWOptions = {}): void {
  for (const [name, t] of [['grad', grad], ['m', m], ['v', v]] as const) {
    if (t.numel !== param.numel || t.dtype !== param.dtype) {
      throw new Error(`adamwStep: ${name} ${t.dtype}${formatShape(t.shape)} must match param ${param.dtype}${formatShape(param.shape)}`);
    }
  }
  if (param.dtype !== 'f32' && param.dtype !== 'f64') throw new Error(`adamwStep: param must be f32 or f64, got ${param.dtype}; use the AdamW class for bf16 (it keeps an f32 master copy)`);
  const [b1, b2] = options.betas ?? [0.9, 0.999];
  cpuBackend(param.dtype).adamwStep(param.numel, param.data as FloatArray, grad.data as FloatArray, m.data as FloatArray, v.data as FloatArray,
    options.lr ?? 1e-3, b1, b2, options.eps ?? 1e-8, options.weightDecay ?? 0.01, step);
}
