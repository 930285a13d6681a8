// Fused causal attention with online softmax (never materialises [Tq, Tk] scores), grouped-query heads, and
// a KV cache for decoding. Layout is token-major, as projections produce it: [batch, seq, heads, head_dim].
import { Tensor, isGradEnabled, recordOp } from '@farskip/tensor';
import { cpuBackend } from '../backend/select.js';
import { arr, commonDtype, describe, empty, withF32 } from './util.js';

export interface AttentionOptions {
  /** Causal mask aligned to the end: query i sees keys j <= i + (Tk - Tq). Default true. */
  causal?: boolean;
  /** Score scale; default 1/sqrt(head_dim). */
  scale?: number;
}

type Like = Pick<Tensor, 'shape' | 'dtype' | 'ndim'>;

interface Dims { B: number; Tq: number; Tk: number; Hq: number; Hkv: number; D: number; Dv: number }

function checkDims(q: Like, k: Like, v: Like, Tk: number): Dims {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) {
    throw new Error(`attention: q, k, v must be [batch, seq, heads, head_dim]; got q ${describe(q)}, k ${describe(k)}, v ${describe(v)}`);
  }
  const [B, Tq, Hq, D] = q.shape as [number, number, number, number];
  const [Bk, , Hkv, Dk] = k.shape as [number, number, number, number];
  const [Bv, , Hv, Dv] = v.shape as [number, number, number, number];
  if (Bk !== B || Bv !== B) throw new Error(`attention: batch differs: q ${describe(q)}, k ${describe(k)}, v ${describe(v)}`);
  if (Dk !== D) throw new Error(`attention: q ${describe(q)} and k ${describe(k)} must share head_dim (${D} vs ${Dk})`);
  if (Hv !== Hkv) throw new Error(`attention: k ${describe(k)} and v ${describe(v)} must have the same number of heads`);
  if (Hkv === 0 || Hq % Hkv !== 0) throw new Error(`attention: query heads (${Hq}) must be a multiple of key/value heads (${Hkv}) for grouped-query attention`);
  return { B, Tq, Tk, Hq, Hkv, D, Dv };
}

/** q [B, Tq, Hq, D], k [B, Tk, Hkv, D], v [B, Tk, Hkv, Dv] -> [B, Tq, Hq, Dv]. Differentiable in q, k, v. */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const dtype = commonDtype('attention', { q, k, v });
  if (dtype === 'bf16') return withF32([q, k, v], (a, b, c) => attention(a, b, c, options));
  const d = checkDims(q, k, v, k.shape[1]!);
  if (v.shape[1] !== d.Tk) throw new Error(`attention: k ${describe(k)} and v ${describe(v)} must have the same sequence length`);
  const causal = options.causal ?? true;
  const scale = options.scale ?? 1 / Math.sqrt(d.D);
  const be = cpuBackend(dtype);
  const o = empty([d.B, d.Tq, d.Hq, d.Dv], dtype);
  const lse = empty([d.B, d.Hq, d.Tq], dtype);
  be.attentionFwd(d.B, d.Tq, d.Tk, d.Hq, d.Hkv, d.D, d.Dv, scale, causal, arr(q), arr(k), 0, arr(v), 0, arr(o), arr(lse));
  return recordOp(o, 'attention', [q, k, v], (g) => {
    const dq = empty(q.shape, dtype), dk = empty(k.shape, dtype), dv = empty(v.shape, dtype);
    cpuBackend(dtype).attentionBwd(d.B, d.Tq, d.Tk, d.Hq, d.Hkv, d.D, d.Dv, scale, causal, arr(q), arr(k), arr(v), arr(o), arr(lse), arr(g),
      arr(dq), arr(dk), arr(dv));
    return [dq, dk, dv];
  });
}

/**
 * Preallocated key/value cache [slots, maxSeq, kvHeads, headDim] for decoding, with a length per slot so that
 * sequences of different lengths share one batch (continuous batching). The batch rows of the next `append` /
 * `attend` map to the slots given to `select` (default: row b = slot b, every slot). `append` copies each row's
 * new keys and values in place after that slot's tokens; `attend` runs attention of each row over its own slot
 * without copying the cache.
 */
export class KVCache {
  readonly keys: Tensor;
  readonly values: Tensor;
  /** tokens cached per slot */
  readonly lengths: Int32Array;
  private rows: Int32Array;

  constructor(readonly batch: number, readonly maxSeq: number, readonly kvHeads: number, readonly headDim: number,
    readonly valueDim = headDim, readonly dtype: 'f32' | 'f64' = 'f32') {
    this.keys = Tensor.zeros([batch, maxSeq, kvHeads, headDim], { dtype });
    this.values = Tensor.zeros([batch, maxSeq, kvHeads, valueDim], { dtype });
    this.lengths = new Int32Array(batch);
    this.rows = Int32Array.from({ length: batch }, (_, i) => i);
  }

  /** Batch row b of the following append/attend calls uses slot slots[b] (distinct slots in [0, batch)). */
  select(slots: ArrayLike<number>): void {
    const seen = new Set<number>();
    for (let b = 0; b < slots.length; b++) {
      const s = slots[b]!;
      if (!Number.isInteger(s) || s < 0 || s >= this.batch) throw new Error(`KVCache.select: slot ${s} (row ${b}) is outside [0, ${this.batch}); the cache has ${this.batch} slots`);
      if (seen.has(s)) throw new Error(`KVCache.select: slot ${s} is selected twice; every batch row needs its own slot`);
      seen.add(s);
    }
    this.rows = Int32Array.from(slots);
  }

  /** the slots the batch rows use */
  get selected(): Int32Array {
    return this.rows;
  }

  /** Forgets the tokens of `slot` (every slot when omitted), so a new sequence can use it. */
  reset(slot?: number): void {
    if (slot === undefined) this.lengths.fill(0);
    else this.lengths[slot] = 0;
  }

  /** Tokens cached in the selected slots: their common length (an error when the rows differ). */
  get length(): number {
    const n = this.rows.length ? this.lengths[this.rows[0]!]! : 0;
    for (const s of this.rows) if (this.lengths[s] !== n) throw new Error(`KVCache.length: the selected slots hold different numbers of tokens (${Array.from(this.rows, (r) => this.lengths[r]).join(', ')}); use lengths[slot]`);
    return n;
  }

  /** Appends k [rows, T, Hkv, D] and v [rows, T, Hkv, Dv] after each selected slot's tokens. */
  append(k: Tensor, v: Tensor): void {
    const T = k.shape[1]!;
    const R = this.rows.length;
    if (k.dtype !== this.dtype || v.dtype !== this.dtype) throw new Error(`KVCache.append: k ${describe(k)} and v ${describe(v)} must be ${this.dtype}`);
    const want = (dim: number): string => `[${R}, T, ${this.kvHeads}, ${dim}]`;
    if (k.ndim !== 4 || k.shape[0] !== R || k.shape[2] !== this.kvHeads || k.shape[3] !== this.headDim) throw new Error(`KVCache.append: k ${describe(k)} must be ${want(this.headDim)} (one row per selected slot)`);
    if (v.ndim !== 4 || v.shape[0] !== R || v.shape[1] !== T || v.shape[2] !== this.kvHeads || v.shape[3] !== this.valueDim) throw new Error(`KVCache.append: v ${describe(v)} must be ${want(this.valueDim)} with T=${T}`);
    for (const s of this.rows) {
      if (this.lengths[s]! + T > this.maxSeq) throw new Error(`KVCache.append: slot ${s} holds ${this.lengths[s]} tokens; ${T} more exceed maxSeq ${this.maxSeq}; allocate a larger cache`);
    }
    for (const [src, dst, dim] of [[k, this.keys, this.headDim], [v, this.values, this.valueDim]] as const) {
      const row = this.kvHeads * dim;
      const from = arr(src), to = arr(dst);
      this.rows.forEach((s, b) => to.set(from.subarray(b * T * row, (b + 1) * T * row), (s * this.maxSeq + this.lengths[s]!) * row));
    }
    for (const s of this.rows) this.lengths[s] += T;
  }

  /** keys [1, length, Hkv, D] and values of one slot (views into the cache). */
  slot(s: number): { keys: Tensor; values: Tensor } {
    const n = this.lengths[s]!;
    return { keys: this.keys.slice(0, s, s + 1).slice(1, 0, n), values: this.values.slice(0, s, s + 1).slice(1, 0, n) };
  }

  /** Attention of q [rows, Tq, Hq, D] over each selected slot's cached keys/values (inference only: not
   *  differentiable); causal aligns each row's queries to the end of its slot. */
  attend(q: Tensor, options: AttentionOptions = {}): Tensor {
    if (isGradEnabled() && q.requiresGrad) throw new Error('KVCache.attend is for inference: run it under noGrad() or pass a q that does not require grad');
    if (q.dtype !== this.dtype) throw new Error(`KVCache.attend: q ${describe(q)} must be ${this.dtype} like the cache`);
    const R = this.rows.length;
    const view = (dim: number): Like => ({ shape: [R, 1, this.kvHeads, dim], dtype: this.dtype, ndim: 4 });
    const d = checkDims(q, view(this.headDim), view(this.valueDim), 1);
    const lens = Int32Array.from(this.rows, (s) => this.lengths[s]!);
    const o = empty([d.B, d.Tq, d.Hq, d.Dv], q.dtype);
    const lse = empty([d.B, d.Hq, d.Tq], q.dtype);
    cpuBackend(q.dtype).attentionFwdCached(d.B, d.Tq, d.Hq, d.Hkv, d.D, d.Dv, options.scale ?? 1 / Math.sqrt(d.D), options.causal ?? true,
      arr(q), arr(this.keys), this.maxSeq * this.kvHeads * this.headDim, arr(this.values), this.maxSeq * this.kvHeads * this.valueDim,
      this.rows, lens, arr(o), arr(lse));
    return o;
  }
}
