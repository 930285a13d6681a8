// Integration with a real tiny CausalLM (the Mixtral golden fixture of @farskip/models: vocab 64, 3 layers): the
// metrics against references computed here from plain forward passes (float64 log-softmax of the logits),
// and teacher–student agreement between the original and the FarSkip connectivity of the same weights.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { klDiv } from '@farskip/kernels';
import { loadModel } from '@farskip/models';
import type { CausalLM, Tokenizer } from '@farskip/models';
import { Tensor } from '@farskip/tensor';
import { agreement, evaluateGeneration, evaluateMultipleChoice, perplexity, tokenWindows } from '../src/index.js';
import type { ScoringModel, TextCodec } from '../src/index.js';

// compile-time: a CausalLM scores and a Tokenizer encodes without adapters
export const asScoringModel = (m: CausalLM): ScoringModel => m;
export const asCodec = (t: Tokenizer): TextCodec => t;

const model = loadModel(fileURLToPath(new URL('../../models/__tests__/fixtures/golden/mixtral', import.meta.url)));
const V = 64;
const TOKENS = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % V);

/** logits [T, V] of one sequence, as plain numbers */
async function logitsOf(ids: number[], farskip: object | null = null): Promise<Float32Array> {
  const out = await model.forward(new Tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'i32' }), { farskip: farskip as never });
  return out.data as Float32Array;
}
function logProb(row: Float32Array, k: number): number {
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  return row[k]! - m - Math.log(s);
}

// 64 distinct characters, one per token id
const CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n';
const charCodec = {
  encode: (text: string): number[] => [...text].map((c) => CHARS.indexOf(c)),
  decode: (ids: ArrayLike<number>): string => Array.from(ids, (i) => CHARS[i]!).join(''),
};

describe('with the Mixtral golden model', () => {
  it('perplexity: each token\'s nll equals a forward pass over exactly its context (window 16, stride 8)', async () => {
    const r = await perplexity(model, TOKENS, { window: 16, stride: 8, batchSize: 2, returnTokenNll: true, forward: { farskip: null } });
    // window ends 16, 24, 32, 40; token j is scored by the first window ending after it, with context from end-16
    let nll = 0;
    for (let j = 1; j < TOKENS.length; j++) {
      const end = j < 16 ? 16 : 16 + 8 * Math.ceil((j + 1 - 16) / 8);
      const begin = Math.max(0, end - 16);
      const context = TOKENS.slice(begin, j);
      const last = (await logitsOf(context)).subarray((context.length - 1) * V, context.length * V);
      const want = -logProb(last, TOKENS[j]!);
      expect(Math.abs(r.tokenNll![j - 1]! - want)).toBeLessThan(2e-5);
      nll += want;
    }
    expect(r.tokens).toBe(39);
    expect(r.nll / nll).toBeCloseTo(1, 5);
    const single = await perplexity(model, TOKENS, { window: 16, stride: 8, batchSize: 1 });
    expect(single.nll).toBeCloseTo(r.nll, 4);
  });

  it('agreement: KL(original ‖ FarSkip) > 0, top-1 < 1, equal to the kernels\' klDiv; KL(model ‖ model) == 0', async () => {
    const windows = tokenWindows(TOKENS, 8);
    const r = await agreement(model, model, windows, { teacherForward: { farskip: null }, studentForward: { farskip: {} }, batchSize: 3 });
    expect(r.positions).toBe(40);
    expect(r.kl).toBeGreaterThan(1e-4);
    expect(r.top1).toBeLessThan(1);
    expect(r.top1).toBeGreaterThan(0);
    const ids = new Tensor(Int32Array.from(windows.flat()), [5, 8], { dtype: 'i32' });
    const t = await model.forward(ids, { farskip: null }), s = await model.forward(ids, { farskip: {} });
    const ref = klDiv(s, t.detach()).item();
    expect(r.kl).toBeCloseTo(ref, 5);
    let matches = 0;
    const td = t.data as Float32Array, sd = s.data as Float32Array;
    for (let p = 0; p < 40; p++) {
      const am = (d: Float32Array): number => { let b = 0; for (let v = 1; v < V; v++) if (d[p * V + v]! > d[p * V + b]!) b = v; return b; };
      if (am(td) === am(sd)) matches++;
    }
    expect(r.top1).toBe(matches / 40);
    const same = await agreement(model, model, windows, { teacherForward: { farskip: null }, studentForward: { farskip: null } });
    expect(same.kl).toBe(0);
    expect(same.top1).toBe(1);
  });

  it('multiple choice: log-likelihoods equal sums of per-token log-probs of one forward pass', async () => {
    const ex = { context: 'the cat', choices: ['sat', 'ran far'], gold: 0 };
    const r = await evaluateMultipleChoice(model, charCodec, [ex], { prefixTokens: [1] });
    for (const [k, choice] of ex.choices.entries()) {
      const seq = [1, ...charCodec.encode(`${ex.context} ${choice}`)];
      const logits = await logitsOf(seq);
      const C = choice.length + 1; // the space and the choice, one token per character
      let want = 0;
      for (let i = seq.length - C; i < seq.length; i++) want += logProb(logits.subarray((i - 1) * V, i * V), seq[i]!);
      expect(r.examples[0]!.logliks[k]).toBeCloseTo(want, 4);
    }
  });

  it('generation: greedy continuation cut at the first newline equals a full-forward greedy loop', async () => {
    const prompts = ['abc', 'hello', 'xyz'];
    const want: string[] = [];
    for (const p of prompts) {
      const seq = charCodec.encode(p);
      for (let step = 0; step < 6; step++) {
        const l = await logitsOf(seq, {});
        const row = l.subarray((seq.length - 1) * V);
        let best = 0;
        for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
        seq.push(best);
      }
      want.push(charCodec.decode(seq.slice(p.length)).split('\n')[0]!);
    }
    // the fixture's greedy text: '1vvvvo', 'PPPPPP', '\nelbx5' (cut to '' at the newline)
    const swapCase = (t: string): string => [...t].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('');
    const answers = [want[0]!, ` ${swapCase(want[1]!)} `, ''];
    const examples = prompts.map((prompt, i) => ({ prompt, answer: answers[i]! }));
    const strict = await evaluateGeneration(model, charCodec, examples, { maxNewTokens: 6, forward: { farskip: {} }, batchSize: 2 });
    expect(strict.examples.map((e) => e.prediction)).toEqual(want);
    const caseSensitive = swapCase(want[1]!) !== want[1]! ? 0 : 1;
    expect(strict.examples.map((e) => e.exact_match)).toEqual([1, caseSensitive, want[2] === '' ? 1 : 0]);
    const normalized = await evaluateGeneration(model, charCodec, examples, { maxNewTokens: 6, forward: { farskip: {} }, normalize: true });
    expect(normalized.examples[1]!.exact_match).toBe(1);
    expect(strict.n).toBe(3);
  });
});
