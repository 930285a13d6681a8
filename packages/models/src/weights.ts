// Hugging Face weight names of each family, read strictly: every tensor the family needs must be present with
// its exact shape, and every tensor on disk must be used (an unknown key is an error naming it — a checkpoint of
// another architecture or a typo must not load silently).
import { cat } from '@farskip/tensor';
import type { Tensor } from '@farskip/tensor';
import type { ModelSpec } from './config.js';

/** Where tensors come from (a safetensors checkpoint, a Map in tests). */
export interface TensorSource {
  keys(): string[];
  get(name: string): Tensor;
}

/** Makes a tensor the source lacks (random initialisation of a new model). */
export type Initializer = (name: string, shape: number[]) => Tensor;

export class WeightReader {
  private readonly used = new Set<string>();
  private readonly keySet: Set<string>;
  /** `dtype`: what every tensor is returned as (the parameters' dtype: f32, or bf16 for bf16 training) */
  constructor(private readonly src: TensorSource, private readonly where: string, private readonly init?: Initializer,
    private readonly dtype: 'f32' | 'bf16' = 'f32') {
    this.keySet = new Set(src.keys());
  }

  has(name: string): boolean {
    return this.keySet.has(name);
  }

  take(name: string, shape?: number[]): Tensor {
    if (!this.has(name) && this.init && shape) return this.as(this.init(name, shape));
    if (!this.has(name)) throw new Error(`${this.where}: missing tensor '${name}'${shape ? ` [${shape.join(', ')}]` : ''}`);
    const t = this.src.get(name);
    if (shape && (t.ndim !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new Error(`${this.where}: tensor '${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    this.used.add(name);
    return this.as(t);
  }

  private as(t: Tensor): Tensor {
    return t.dtype === this.dtype ? t : t.to(this.dtype);
  }

  /** Errors on tensors never taken (optionally ignoring some patterns, e.g. rotary inv_freq buffers). */
  finish(ignore: RegExp[] = [/\.rotary_emb\.inv_freq$/]): void {
    const extra = this.src.keys().filter((k) => !this.used.has(k) && !ignore.some((r) => r.test(k)));
    if (extra.length) {
      throw new Error(`${this.where}: ${extra.length} unexpected tensor(s) for this architecture: ${extra.slice(0, 8).map((k) => `'${k}'`).join(', ')}` +
        `${extra.length > 8 ? ', …' : ''} (is config.json's 'architectures' right for these weights?)`);
    }
  }
}

/** The MoE block's module name and naming scheme per family. */
export function moeNames(spec: ModelSpec, i: number): {
  block: string; router: string; bias: string; expert: (e: number, which: 'gate' | 'up' | 'down') => string; shared: string | null; sharedGate: string | null;
  fused: { gateUp: string; down: string } | null; dense: string;
} {
  const L = `model.layers.${i}`;
  const f = spec.family;
  if (f === 'mixtral') {
    const b = `${L}.block_sparse_moe`;
    const w = { gate: 'w1', up: 'w3', down: 'w2' } as const;
    return { block: b, router: `${b}.gate.weight`, bias: '', expert: (e, x) => `${b}.experts.${e}.${w[x]}.weight`, shared: null, sharedGate: null, fused: null, dense: `${L}.mlp` };
  }
  if (f === 'llama4') {
    const b = `${L}.feed_forward`;
    return { block: b, router: `${b}.router.weight`, bias: '', expert: () => '', shared: `${b}.shared_expert`, sharedGate: null,
      fused: { gateUp: `${b}.experts.gate_up_proj`, down: `${b}.experts.down_proj` }, dense: b };
  }
  const b = `${L}.mlp`;
  const shared = f === 'qwen2_moe' ? `${b}.shared_expert` : f.startsWith('deepseek') ? `${b}.shared_experts` : null;
  return {
    block: b, router: `${b}.gate.weight`, bias: `${b}.gate.e_score_correction_bias`,
    expert: (e, x) => `${b}.experts.${e}.${x}_proj.weight`, shared, sharedGate: f === 'qwen2_moe' ? `${b}.shared_expert_gate.weight` : null, fused: null, dense: b,
  };
}

/** Stacks per-expert [out, in] matrices into [E, out, in]. */
export function stackExperts(mats: Tensor[]): Tensor {
  return cat(mats.map((m) => m.reshape(1, ...m.shape)), 0);
}
