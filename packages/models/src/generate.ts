// Autoregressive generation with a KV cache: batched prefill of equal-length prompts (prompts of different
// lengths run as separate batches, since the fused attention has no padding mask), then one token per step for
// the whole batch. Sampling: greedy (temperature 0), temperature, top-k, top-p (nucleus), seeded; stop tokens.
import { KVCache } from '@farskip/kernels';
import { Attention } from '@farskip/layers';
import { Random, setGradEnabled, Tensor } from '@farskip/tensor';
import { MlaAttention } from './mla.js';
import type { CausalLM, ForwardOptions } from './model.js';

export interface SamplingOptions {
  /** 0 (default) = greedy */
  temperature?: number;
  /** keep the k most likely tokens (0 = all) */
  topK?: number;
  /** keep the smallest set of tokens whose probability reaches topP (1 = all) */
  topP?: number;
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** generation of a sequence ends after it produced one of these */
  stopTokens?: number[];
  /** connectivity and schedule to run with (default: the model's) */
  forward?: Pick<ForwardOptions, 'farskip' | 'schedule' | 'tracer'>;
}

export interface GenerateResult {
  /** the new tokens of each prompt (stop token included when one ended it) */
  tokens: number[][];
  finishReason: ('stop' | 'length')[];
  /** the logits of every generated position [new tokens][vocab] per prompt, when asked (tests, logprobs) */
  logits?: Float32Array[][];
}

/** Generates for each prompt (token ids); prompts of equal length share a batch. */
export async function generate(model: CausalLM, prompts: number[][], options: GenerateOptions & { returnLogits?: boolean }): Promise<GenerateResult> {
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0) throw new Error(`generate: maxNewTokens ${options.maxNewTokens} must be a non-negative integer`);
  prompts.forEach((p, i) => { if (p.length === 0) throw new Error(`generate: prompt ${i} is empty; give at least one token (e.g. BOS)`); });
  if (model.embed.dtype !== 'f32') throw new Error(`generate: the model's parameters are ${model.embed.dtype}; the KV cache is f32 — load the model for generation with dtype 'f32' (the default)`);
  const result: GenerateResult = { tokens: prompts.map(() => []), finishReason: prompts.map(() => 'length'), logits: options.returnLogits ? prompts.map(() => []) : undefined };
  const rng = new Random(options.seed ?? 0);
  const byLength = new Map<number, number[]>();
  prompts.forEach((p, i) => { const g = byLength.get(p.length); if (g) g.push(i); else byLength.set(p.length, [i]); });
  for (const [T, members] of byLength) {
    await withoutGrad(() => runBatch(model, members.map((i) => prompts[i]!), T, options, rng, (b, tok, logits) => {
      const i = members[b]!;
      result.tokens[i]!.push(tok);
      result.logits?.[i]!.push(logits);
      if (options.stopTokens?.includes(tok)) { result.finishReason[i] = 'stop'; return true; }
      return false;
    }));
  }
  return result;
}

// Grad mode is one global flag, and noGrad() around an async function restores the setting it found when that
// function settles: two generations interleaved in one thread (the ranks of a threads mesh, two models) would
// turn grad back on under each other, or leave it off after both. Grad stays off while any generation runs.
let generating = 0;
let gradBefore = true;
export async function withoutGrad<T>(fn: () => Promise<T>): Promise<T> {
  if (generating++ === 0) gradBefore = setGradEnabled(false);
  try {
    return await fn();
  } finally {
    if (--generating === 0) setGradEnabled(gradBefore);
  }
}

async function runBatch(model: CausalLM, prompts: number[][], T: number, options: GenerateOptions, rng: Random,
  emit: (b: number, token: number, logits: Float32Array) => boolean): Promise<void> {
  const B = prompts.length;
  const maxSeq = T + options.maxNewTokens;
  attachKVCaches(model, B, maxSeq);
  try {
    const V = model.spec.vocabSize;
    const done = new Array<boolean>(B).fill(false);
    let ids = new Tensor(Int32Array.from(prompts.flat()), [B, T], { dtype: 'i32' });
    let pos = 0;
    for (let step = 0; step < options.maxNewTokens; step++) {
      const n = ids.shape[1]!;
      const positions = new Tensor(Int32Array.from({ length: n }, (_, i) => pos + i), [n], { dtype: 'i32' });
      const logits = await model.forward(ids, { ...options.forward, positions });
      pos += n;
      const last = logits.data as Float32Array;
      const next = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        const row = last.slice(((b + 1) * n - 1) * V, (b + 1) * n * V);
        next[b] = sample(row, options, rng);
        if (!done[b]) done[b] = emit(b, next[b]!, row);
      }
      if (done.every(Boolean)) break;
      ids = new Tensor(next, [B, 1], { dtype: 'i32' });
    }
  } finally {
    attachKVCaches(model, 0, 0);
  }
}

/**
 * Gives every attention module a KV cache of `slots` sequences × `maxSeq` tokens (0: removes them) and returns
 * the caches, one per layer. Continuous batching selects which slots the batch rows of a forward use
 * (KVCache.select on every returned cache); generate() uses slot b for prompt b.
 */
export function attachKVCaches(model: CausalLM, slots: number, maxSeq: number): KVCache[] {
  if (slots && model.stack.blocks.some((b) => (b.attention as { cache?: unknown }).cache)) {
    // the caches live on the model's attention modules: a second generation would overwrite the first one's
    throw new Error('generate: this model is already generating; run one generate() or engine per model at a time (load another copy to generate concurrently)');
  }
  if (slots && model.embed.dtype !== 'f32') throw new Error(`generate: the model's parameters are ${model.embed.dtype}; the KV cache is f32 — load the model for generation with dtype 'f32' (the default)`);
  const caches: KVCache[] = [];
  for (const b of model.stack.blocks) {
    const a = b.attention;
    let cache: KVCache | null = null;
    if (a instanceof Attention) {
      a.cache = cache = slots ? new KVCache(slots, maxSeq, a.localKvHeads, a.headDim) : null;
    } else if (a instanceof MlaAttention) {
      // compressed: one shared kv head, keys [latent | rope part], values the latent
      a.cache = cache = slots ? new KVCache(slots, maxSeq, 1, a.m.kvLoraRank + a.m.qkRopeHeadDim, a.m.kvLoraRank) : null;
    } else if (slots) {
      throw new Error('generate: the model has an attention module without KV-cache support');
    }
    if (cache) caches.push(cache);
  }
  return caches;
}

/** One token from a row of logits. */
export function sample(logits: Float32Array, o: SamplingOptions, rng: Random): number {
  const temperature = o.temperature ?? 0;
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const idx = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const k = o.topK && o.topK > 0 ? Math.min(o.topK, idx.length) : idx.length;
  const kept = idx.slice(0, k);
  const m = logits[kept[0]!]!;
  let probs = kept.map((i) => Math.exp((logits[i]! - m) / temperature));
  let z = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / z);
  const topP = o.topP ?? 1;
  let cut = probs.length;
  if (topP < 1) {
    let c = 0;
    for (let j = 0; j < probs.length; j++) { c += probs[j]!; if (c >= topP) { cut = j + 1; break; } }
  }
  z = probs.slice(0, cut).reduce((a, b) => a + b, 0);
  let u = rng.uniform() * z;
  for (let j = 0; j < cut; j++) { u -= probs[j]!; if (u <= 0) return kept[j]!; }
  return kept[cut - 1]!;
}
