// Multi-head / grouped-query self-attention with RoPE, shardable by heads over a tensor-parallel group, split
// into the two parts the overlapped schedules need:
//   partA: QKV projections and RoPE (what runs while the previous layer's combine is in flight)
//   partB: causal attention and the output projection (what runs while this layer's dispatch is in flight)
// With tp > 1 each rank holds heads [r·H/tp, (r+1)·H/tp) and kv heads likewise; partB's output is then the
// rank's partial sum of the output projection (row-parallel), to be all-reduced by the caller — which is what
// lets the inference schedule fuse it with the shared experts' partial sum into one all-reduce.
import type { Communicator } from '@farskip/collectives';
import { attention, linear, rope } from '@farskip/kernels';
import type { Tensor } from '@farskip/tensor';
import { copyToGroup } from './comm.js';
import type { CommEnv } from './comm.js';
import { ParallelContext, solo } from './context.js';

export interface AttentionConfig {
  hidden: number;
  heads: number;
  /** key/value heads (grouped-query attention); default heads */
  kvHeads?: number;
  /** default hidden / heads */
  headDim?: number;
  /** RoPE base (HF rope_theta), default 10000 */
  ropeTheta?: number;
  /** rotated dims per head (partial rotary), default headDim */
  rotaryDim?: number;
}

/** Full (unsharded) weights in Hugging Face nn.Linear layout [out, in]. */
export interface AttentionWeights {
  /** [heads·headDim, hidden] */
  q: Tensor;
  /** [kvHeads·headDim, hidden] */
  k: Tensor;
  /** [kvHeads·headDim, hidden] */
  v: Tensor;
  /** [hidden, heads·headDim] */
  o: Tensor;
}

/** What partA hands to partB: q [B, T, h, D], k and v [B, T, hkv, D] (this rank's heads, RoPE applied). */
export interface AttentionState {
  q: Tensor;
  k: Tensor;
  v: Tensor;
}

/** The interface a FarSkip block needs from any attention implementation. */
export interface AttentionLike {
  partA(xNorm: Tensor, positions: Tensor, env: CommEnv): AttentionState;
  /** [B, T, hidden]; a partial sum when `reduceGroup` has more than one rank */
  partB(state: AttentionState): Tensor;
  /** the group over which partB's output must be summed (size 1: it is complete) */
  readonly reduceGroup: Communicator;
  parameters(): [string, Tensor][];
}

export class Attention implements AttentionLike {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly localHeads: number;
  readonly localKvHeads: number;
  readonly wq: Tensor;
  readonly wk: Tensor;
  readonly wv: Tensor;
  readonly wo: Tensor;

  /** Takes this rank's shard of `weights` (copies; the shards are trainable leaves). */
  constructor(readonly config: AttentionConfig, weights: AttentionWeights, readonly reduceGroup: Communicator = solo()) {
    this.heads = config.heads;
    this.kvHeads = config.kvHeads ?? config.heads;
    this.headDim = config.headDim ?? config.hidden / config.heads;
    const { hidden } = config;
    const D = this.headDim;
    if (!Number.isInteger(D)) throw new Error(`Attention: hidden ${hidden} is not divisible by heads ${config.heads}; give headDim explicitly`);
    if (this.heads % this.kvHeads !== 0) throw new Error(`Attention: heads ${this.heads} must be a multiple of kvHeads ${this.kvHeads}`);
    expectShape('q', weights.q, [this.heads * D, hidden]);
    expectShape('k', weights.k, [this.kvHeads * D, hidden]);
    expectShape('v', weights.v, [this.kvHeads * D, hidden]);
    expectShape('o', weights.o, [hidden, this.heads * D]);
    const [h0, h1] = ParallelContext.shard(this.heads, reduceGroup, 'Attention heads');
    const [k0, k1] = ParallelContext.shard(this.kvHeads, reduceGroup, 'Attention kvHeads');
    this.localHeads = h1 - h0;
    this.localKvHeads = k1 - k0;
    this.wq = leaf(weights.q.slice(0, h0 * D, h1 * D));
    this.wk = leaf(weights.k.slice(0, k0 * D, k1 * D));
    this.wv = leaf(weights.v.slice(0, k0 * D, k1 * D));
    this.wo = leaf(weights.o.slice(1, h0 * D, h1 * D));
  }

  partA(xNorm: Tensor, positions: Tensor, env: CommEnv): AttentionState {
    const [B, T] = xNorm.shape as [number, number, number];
    const x = copyToGroup(xNorm, this.reduceGroup, env, 'attention.copyToTP');
    const D = this.headDim;
    const opts = { theta: this.config.ropeTheta ?? 10000, rotaryDim: this.config.rotaryDim ?? D };
    const q = rope(linear(x, this.wq).reshape(B, T, this.localHeads, D), positions, opts);
    const k = rope(linear(x, this.wk).reshape(B, T, this.localKvHeads, D), positions, opts);
    const v = linear(x, this.wv).reshape(B, T, this.localKvHeads, D);
    return { q, k, v };
  }

  partB(s: AttentionState): Tensor {
    const [B, T] = s.q.shape as [number, number, number, number];
    const o = attention(s.q, s.k, s.v, { causal: true });
    return linear(o.reshape(B, T, this.localHeads * this.headDim), this.wo);
  }

  parameters(): [string, Tensor][] {
    return [['q_proj.weight', this.wq], ['k_proj.weight', this.wk], ['v_proj.weight', this.wv], ['o_proj.weight', this.wo]];
  }
}

/** A trainable copy of `t` (its own storage, a leaf). */
export function leaf(t: Tensor): Tensor {
  return t.detach().clone().requiresGrad_();
}

export function expectShape(name: string, t: Tensor, shape: number[]): void {
  if (t.ndim !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`weight '${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
}
