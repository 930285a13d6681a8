// What the metrics need from a model and a tokenizer, and the float64 row maths they share. A CausalLM of
// @farskip/models is a ScoringModel and its Tokenizer a TextCodec; tests pass stubs with the same shape.
import type { ForwardOptions } from '@farskip/models';
import { bf16BitsToF32, noGrad, Tensor } from '@farskip/tensor';

/** ids i32 [B, T] -> logits [B, T, V] (f32, f64 or bf16): CausalLM.forward, or anything shaped like it. */
export interface ScoringModel {
  forward(ids: Tensor, options?: ForwardOptions): Promise<Tensor>;
}

/** The tokenizer surface the tasks use (a @farskip/models Tokenizer fits). */
export interface TextCodec {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): string;
}

/** The forward options passed through to the model (e.g. `{ farskip: null }` for the original connectivity). */
export type EvalForwardOptions = Pick<ForwardOptions, 'farskip' | 'schedule'>;

/** Runs the model on equal-length rows ([B, T] i32) without recording autograd; returns logits [B, T, V]. */
export async function forwardRows(model: ScoringModel, rows: ArrayLike<number>[], forward: EvalForwardOptions | undefined, who: string): Promise<Logits> {
  const B = rows.length, T = rows[0]!.length;
  const ids = new Int32Array(B * T);
  rows.forEach((r, b) => {
    if (r.length !== T) throw new Error(`${who}: rows of one batch must have equal length, got ${T} and ${r.length}`);
    for (let t = 0; t < T; t++) ids[b * T + t] = r[t]!;
  });
  const input = new Tensor(ids, [B, T], { dtype: 'i32' });
  const logits = await noGrad(() => model.forward(input, forward ?? {}));
  const [b, t, V] = logits.shape as [number, number, number];
  if (logits.ndim !== 3 || b !== B || t !== T) {
    throw new Error(`${who}: the model returned logits [${logits.shape.join(', ')}] for ids [${B}, ${T}]; expected [${B}, ${T}, vocab]`);
  }
  return new Logits(logits, V);
}

/** Read access to rows of a [B, T, V] logits tensor, each as float64. */
export class Logits {
  constructor(readonly tensor: Tensor, readonly vocab: number) {}

  /** The logits at batch row b, position t, as float64 [V]. */
  row(b: number, t: number): Float64Array {
    const T = this.tensor.shape[1]!, V = this.vocab;
    const off = (b * T + t) * V;
    const out = new Float64Array(V);
    const d = this.tensor.data;
    if (this.tensor.dtype === 'bf16') for (let v = 0; v < V; v++) out[v] = bf16BitsToF32(d[off + v]!);
    else for (let v = 0; v < V; v++) out[v] = d[off + v]!;
    return out;
  }
}

/** log sum_v exp(x[v] / temperature), computed stably in float64. */
export function logSumExp(x: Float64Array, temperature = 1): number {
  let m = -Infinity;
  for (let v = 0; v < x.length; v++) m = Math.max(m, x[v]! / temperature);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let v = 0; v < x.length; v++) s += Math.exp(x[v]! / temperature - m);
  return m + Math.log(s);
}

/** Index of the largest entry (the first one on ties, like numpy/torch argmax). */
export function argmax(x: Float64Array): number {
  let best = 0;
  for (let v = 1; v < x.length; v++) if (x[v]! > x[best]!) best = v;
  return best;
}

/** log p(token) under softmax(x), and whether token is the argmax. */
export function tokenLogProb(x: Float64Array, token: number): { logprob: number; greedy: boolean } {
  if (!Number.isInteger(token) || token < 0 || token >= x.length) throw new Error(`token id ${token} is outside the vocabulary [0, ${x.length})`);
  return { logprob: x[token]! - logSumExp(x), greedy: argmax(x) === token };
}

/** Splits items into consecutive chunks of at most `size`. */
export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function checkPositiveInt(value: number, name: string, who: string): void {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${who}: ${name} must be a positive integer, got ${value}`);
}
