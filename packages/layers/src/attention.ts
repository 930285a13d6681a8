// Multi-head / grouped-query self-attention with RoPE, shardable by heads over a tensor-parallel group, split
// into the two parts the overlapped schedules need:
//   partA: QKV projections and RoPE (what runs while the previous layer's combine is in flight)
//   partB: causal attention and the output projection (what runs while this layer's dispatch is in flight)
// With tp > 1 each rank holds heads [r·H/tp, (r+1)·H/tp) and kv heads likewise; partB's output is then the
// rank's partial sum of the output projection (row-parallel), to be all-reduced by the caller — which is what
// lets the inference schedule fuse it with the shared experts' partial sum into one all-reduce.
import type { Communicator } from '@farskip/collectives';
import { attention, KVCache, linear, mul, rmsNorm, rope } from '@farskip/kernels';
import { cat, indexSelect, Tensor } from '@farskip/tensor';
import { copyToGroup } from './comm.js';
import type { CommEnv } from './comm.js';
import { ParallelContext, solo } from './context.js';
import { leaf, shardLeaf } from './shard.js';

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
  /** false: no positional rotation in this layer (Llama-4 NoPE layers); default true */
  rope?: boolean;
  /** RoPE pairs: 'half' = (i, i + d/2) (Llama, Qwen, Mixtral); 'interleaved' = (2i, 2i + 1) (Llama-4's complex
   *  rotation). Interleaved runs as half on de-interleaved q and k: q·k is unchanged by a permutation of both. */
  ropeStyle?: 'half' | 'interleaved';
  /** normalisation of q and k: 'head' RMSNorm over head_dim with weights (Qwen3-MoE), 'full' RMSNorm over the whole
   *  projection with weights (OLMoE; not with tensor parallelism), 'l2' weightless RMS over head_dim after RoPE
   *  (Llama-4 use_qk_norm); default none */
  qkNorm?: 'none' | 'head' | 'full' | 'l2';
  /** eps of the q/k norms, default 1e-6 */
  normEps?: number;
  /** attention score scale, default 1/sqrt(headDim) */
  scale?: number;
  /** chunked causal attention (Llama-4 chunked_attention): query i sees key j iff j <= i and both lie in the
   *  same block of chunkSize positions */
  chunkSize?: number;
  /** Llama-4 attention temperature tuning (its NoPE layers): q *= log1p(floor((pos + 1) / floorScale)) * attnScale + 1 */
  temperatureTuning?: { floorScale: number; attnScale: number };
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
  /** biases of q, k, v (Qwen2-MoE) */
  qBias?: Tensor;
  kBias?: Tensor;
  vBias?: Tensor;
  /** q/k norm weights: [headDim] ('head') or [heads·headDim] / [kvHeads·headDim] ('full') */
  qNorm?: Tensor;
  kNorm?: Tensor;
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
  /**
   * The state with only the last query position kept (keys and values stay whole: the KV cache still takes every
   * position): partB then computes the output of the last position only. Optional; the stack's `outputs: 'last'`
   * uses it on the last layer (inference: only the last position's logits are sampled).
   */
  lastQueries?(state: AttentionState): AttentionState;
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
  readonly bq: Tensor | null;
  readonly bk: Tensor | null;
  readonly bv: Tensor | null;
  readonly qNorm: Tensor | null;
  readonly kNorm: Tensor | null;
  /** set for incremental decoding (inference): partB appends k, v and attends over everything cached */
  cache: KVCache | null = null;

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
    this.wq = shardLeaf(weights.q, 0, h0 * D, h1 * D, reduceGroup);
    this.wk = shardLeaf(weights.k, 0, k0 * D, k1 * D, reduceGroup);
    this.wv = shardLeaf(weights.v, 0, k0 * D, k1 * D, reduceGroup);
    this.wo = shardLeaf(weights.o, 1, h0 * D, h1 * D, reduceGroup);
    const bias = (name: string, t: Tensor | undefined, n: number, a: number, b: number): Tensor | null => {
      if (!t) return null;
      expectShape(name, t, [n * D]);
      return shardLeaf(t, 0, a * D, b * D, reduceGroup);
    };
    this.bq = bias('qBias', weights.qBias, this.heads, h0, h1);
    this.bk = bias('kBias', weights.kBias, this.kvHeads, k0, k1);
    this.bv = bias('vBias', weights.vBias, this.kvHeads, k0, k1);
    const norm = config.qkNorm ?? 'none';
    if (norm === 'head' || norm === 'full') {
      if (!weights.qNorm || !weights.kNorm) throw new Error(`Attention: qkNorm '${norm}' needs qNorm and kNorm weights`);
      if (norm === 'full' && reduceGroup.size > 1) throw new Error("Attention: qkNorm 'full' normalises across all heads and cannot be split by tensor parallelism; use tp = 1");
      expectShape('qNorm', weights.qNorm, [norm === 'head' ? D : this.heads * D]);
      expectShape('kNorm', weights.kNorm, [norm === 'head' ? D : this.kvHeads * D]);
      this.qNorm = leaf(weights.qNorm);
      this.kNorm = leaf(weights.kNorm);
    } else {
      this.qNorm = null;
      this.kNorm = null;
    }
  }

  partA(xNorm: Tensor, positions: Tensor, env: CommEnv): AttentionState {
    const [B, T] = xNorm.shape as [number, number, number];
    const x = copyToGroup(xNorm, this.reduceGroup, env, 'attention.copyToTP');
    const D = this.headDim;
    const c = this.config;
    const eps = c.normEps ?? 1e-6;
    const norm = c.qkNorm ?? 'none';
    let q = linear(x, this.wq, this.bq);
    let k = linear(x, this.wk, this.bk);
    const v = linear(x, this.wv, this.bv).reshape(B, T, this.localKvHeads, D);
    if (norm === 'full') { q = rmsNorm(q, this.qNorm!, eps); k = rmsNorm(k, this.kNorm!, eps); }
    q = q.reshape(B, T, this.localHeads, D);
    k = k.reshape(B, T, this.localKvHeads, D);
    if (norm === 'head') {
      // one [D] weight for every head, but this rank normalises only its heads: its gradient is a partial sum,
      // completed over the tensor-parallel group in backward (copyToGroup: identity forward, all-reduce backward)
      const qn = this.reduceGroup.size > 1 ? copyToGroup(this.qNorm!, this.reduceGroup, env, 'attention.qNorm.copyToTP') : this.qNorm!;
      const kn = this.reduceGroup.size > 1 ? copyToGroup(this.kNorm!, this.reduceGroup, env, 'attention.kNorm.copyToTP') : this.kNorm!;
      q = rmsNorm(q, qn, eps);
      k = rmsNorm(k, kn, eps);
    }
    if (c.rope ?? true) {
      const opts = { theta: c.ropeTheta ?? 10000, rotaryDim: c.rotaryDim ?? D };
      if (c.ropeStyle === 'interleaved') { q = deinterleave(q, opts.rotaryDim); k = deinterleave(k, opts.rotaryDim); }
      q = rope(q, positions, opts);
      k = rope(k, positions, opts);
    }
    if (norm === 'l2') { q = rmsNorm(q, ones(D), eps); k = rmsNorm(k, ones(D), eps); }
    if (c.temperatureTuning) q = temperatureScaled(q, positions, c.temperatureTuning);
    return { q, k, v };
  }

  lastQueries(s: AttentionState): AttentionState {
    const T = s.q.shape[1]!;
    return { ...s, q: s.q.slice(1, T - 1, T) };
  }

  partB(s: AttentionState): Tensor {
    const [B, T] = s.q.shape as [number, number, number, number];
    const scale = this.config.scale;
    let o: Tensor;
    if (this.config.chunkSize) {
      o = this.chunked(s, this.config.chunkSize, scale);
    } else if (this.cache) {
      this.cache.append(s.k, s.v);
      o = this.cache.attend(s.q, { causal: true, scale });
    } else {
      o = attention(s.q, s.k, s.v, { causal: true, scale });
    }
    return linear(o.reshape(B, T, this.localHeads * this.headDim), this.wo);
  }

  /** Chunked causal attention: every run of queries inside one chunk attends to that chunk's keys up to it. With
   *  a cache each batch row continues its own slot (rows may hold different numbers of tokens). */
  private chunked(s: AttentionState, chunk: number, scale: number | undefined): Tensor {
    const Tq = s.q.shape[1]!;
    if (!this.cache) return chunkedRows(s.q, s.k, s.v, 0, chunk, scale);
    const cache = this.cache;
    cache.append(s.k, s.v);
    const rows = Array.from(cache.selected, (slot, b) => {
      const { keys, values } = cache.slot(slot);
      return chunkedRows(s.q.slice(0, b, b + 1), keys, values, cache.lengths[slot]! - Tq, chunk, scale);
    });
    return rows.length === 1 ? rows[0]! : cat(rows, 0);
  }

  parameters(): [string, Tensor][] {
    const p: [string, Tensor][] = [['q_proj.weight', this.wq], ['k_proj.weight', this.wk], ['v_proj.weight', this.wv], ['o_proj.weight', this.wo]];
    if (this.bq) p.push(['q_proj.bias', this.bq]);
    if (this.bk) p.push(['k_proj.bias', this.bk]);
    if (this.bv) p.push(['v_proj.bias', this.bv]);
    if (this.qNorm) p.push(['q_norm.weight', this.qNorm]);
    if (this.kNorm) p.push(['k_norm.weight', this.kNorm]);
    return p;
  }
}

/** q [B, Tq, ...] at positions qStart.. over keys/values [B, qStart + Tq, ...] from position 0, chunked causal. */
function chunkedRows(q: Tensor, kAll: Tensor, vAll: Tensor, qStart: number, chunk: number, scale: number | undefined): Tensor {
  const Tq = q.shape[1]!;
  const parts: Tensor[] = [];
  for (let p = qStart; p < qStart + Tq;) {
    const c0 = Math.floor(p / chunk) * chunk;
    const end = Math.min(c0 + chunk, qStart + Tq);
    parts.push(attention(q.slice(1, p - qStart, end - qStart), kAll.slice(1, c0, end), vAll.slice(1, c0, end), { causal: true, scale }));
    p = end;
  }
  return parts.length === 1 ? parts[0]! : cat(parts, 1);
}

export function expectShape(name: string, t: Tensor, shape: number[]): void {
  if (t.ndim !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`weight '${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
}

const onesCache = new Map<number, Tensor>();
function ones(n: number): Tensor {
  let t = onesCache.get(n);
  if (!t) onesCache.set(n, t = Tensor.ones([n]));
  return t;
}

/** [..., D] with pairs (2i, 2i+1) of the first `rot` dims -> pairs (i, i + rot/2): evens first, then odds. */
export function deinterleave(x: Tensor, rot: number): Tensor {
  const D = x.shape[x.ndim - 1]!;
  const perm = new Int32Array(D);
  for (let i = 0; i < rot / 2; i++) { perm[i] = 2 * i; perm[i + rot / 2] = 2 * i + 1; }
  for (let i = rot; i < D; i++) perm[i] = i;
  const lead = x.shape.slice(0, -1);
  return indexSelect(x.reshape(-1, D), 1, new Tensor(perm, [D], { dtype: 'i32' })).reshape(...lead, D);
}

/** q [B, T, H, D] scaled per position by log1p(floor((pos + 1) / floorScale)) * attnScale + 1. */
function temperatureScaled(q: Tensor, positions: Tensor, t: { floorScale: number; attnScale: number }): Tensor {
  const [B, T, H, D] = q.shape as [number, number, number, number];
  const pos = positions.data as Int32Array;
  const f = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      const p = pos.length === T ? pos[i]! : pos[b * T + i]!;
      f[b * T + i] = Math.log1p(Math.floor((p + 1) / t.floorScale)) * t.attnScale + 1;
    }
  }
  return mul(q.reshape(B * T, H * D), new Tensor(f, [B * T, 1])).reshape(B, T, H, D);
}
