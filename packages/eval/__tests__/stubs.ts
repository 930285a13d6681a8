// Stub models for the scoring tests: causal "models" whose logits at position t are a fixed float64 function of
// the tokens 0..t of their row, so a test can compute every expected number by hand, independently of src/.
import { isGradEnabled, Tensor } from '@farskip/tensor';

export type LogitsFn = (context: number[]) => number[];

export interface StubModel {
  /** every forward's ids, row by row */
  calls: number[][][];
  /** grad mode seen inside each forward */
  gradDuringForward: boolean[];
  forward(ids: Tensor): Promise<Tensor>;
}

/** A model whose logits at position t are fn(row[0..t]), returned as f64 [B, T, V]. */
export function stubModel(vocab: number, fn: LogitsFn): StubModel {
  const calls: number[][][] = [];
  const gradDuringForward: boolean[] = [];
  return {
    calls,
    gradDuringForward,
    async forward(ids: Tensor): Promise<Tensor> {
      const [B, T] = ids.shape as [number, number];
      const d = ids.data as Int32Array;
      const rows = Array.from({ length: B }, (_, b) => Array.from(d.subarray(b * T, (b + 1) * T)));
      calls.push(rows);
      gradDuringForward.push(isGradEnabled());
      const out = new Float64Array(B * T * vocab);
      rows.forEach((row, b) => {
        for (let t = 0; t < T; t++) {
          const l = fn(row.slice(0, t + 1));
          if (l.length !== vocab) throw new Error('stub: logits function returned the wrong vocabulary size');
          out.set(l, (b * T + t) * vocab);
        }
      });
      return new Tensor(out, [B, T, vocab], { dtype: 'f64' });
    },
  };
}

/** log softmax(x)[k], the plain way (max-shifted) in float64. */
export function logSoftmaxAt(x: number[], k: number): number {
  const m = Math.max(...x);
  return x[k]! - m - Math.log(x.reduce((a, v) => a + Math.exp(v - m), 0));
}

/**
 * A word-level codec: a text is split into tokens "word" / " word" (a space joins the word after it, as in
 * byte-level BPE); ids come from a fixed vocabulary list.
 */
export function wordCodec(vocab: string[]): { encode(text: string): number[]; decode(ids: ArrayLike<number>): string } {
  const ids = new Map(vocab.map((w, i) => [w, i]));
  return {
    encode(text: string): number[] {
      return (text.match(/ ?[^ ]+| +/g) ?? []).map((piece) => {
        const id = ids.get(piece);
        if (id === undefined) throw new Error(`wordCodec: "${piece}" is not in the vocabulary`);
        return id;
      });
    },
    decode: (toks) => Array.from(toks, (t) => vocab[t]!).join(''),
  };
}
