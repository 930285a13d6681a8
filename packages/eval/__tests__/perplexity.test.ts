// Rolling-window perplexity against hand-derived windows: which tokens each forward pass sees, which tokens it
// scores, and with which context; the numbers against float64 log-softmax of a stub model's known logits.
import { describe, expect, it } from 'vitest';
import { perplexity, perplexityWindows } from '../src/index.js';
import { logSoftmaxAt, stubModel } from './stubs.js';

const V = 6;
// depends on every context token and on the context length, so a wrong context changes the score
const logitsOf = (c: number[]): number[] => Array.from({ length: V }, (_, v) =>
  Math.sin(0.37 * v * (1 + c.length) + 0.11 * c.reduce((a, x, i) => a + x * (i + 1), 0)) + 0.05 * v);
const TOKENS = [3, 1, 4, 1, 5, 2, 0, 5, 3, 5, 2];

/** -log p(tokens[j] | tokens[begin..j-1]) */
const nllOf = (tokens: number[], j: number, begin: number): number => -logSoftmaxAt(logitsOf(tokens.slice(begin, j)), tokens[j]!);

describe('perplexityWindows', () => {
  it('window 4, stride 2 over 10 tokens: HF begin = k·stride, scoring from the previous end', () => {
    expect(perplexityWindows(10, 4, 2)).toEqual([
      { begin: 0, end: 4, firstScored: 1 },
      { begin: 2, end: 6, firstScored: 4 },
      { begin: 4, end: 8, firstScored: 6 },
      { begin: 6, end: 10, firstScored: 8 },
    ]);
  });

  it('the last window is extended left to a full window; default stride = window-1', () => {
    const w = [
      { begin: 0, end: 4, firstScored: 1 },
      { begin: 3, end: 7, firstScored: 4 },
      { begin: 6, end: 10, firstScored: 7 },
      { begin: 7, end: 11, firstScored: 10 },
    ];
    expect(perplexityWindows(11, 4, 3)).toEqual(w);
    expect(perplexityWindows(11, 4)).toEqual(w);
    expect(perplexityWindows(3, 8)).toEqual([{ begin: 0, end: 3, firstScored: 1 }]);
  });

  it('rejects windows that would drop tokens or have no context', () => {
    expect(() => perplexityWindows(10, 4, 4)).toThrow(/stride 4 must be at most window-1 = 3/);
    expect(() => perplexityWindows(10, 1)).toThrow(/window 1 must be at least 2/);
    expect(() => perplexityWindows(1, 4)).toThrow(/at least 2 tokens/);
    expect(() => perplexityWindows(10, 4, 0)).toThrow(/stride must be a positive integer/);
  });
});

describe('perplexity', () => {
  it('scores every token after the first once, with the hand-derived context (window 4, stride 2)', async () => {
    const tokens = TOKENS.slice(0, 10);
    const model = stubModel(V, logitsOf);
    const r = await perplexity(model, tokens, { window: 4, stride: 2, returnTokenNll: true });
    expect(model.calls).toEqual([[tokens.slice(0, 4)], [tokens.slice(2, 6)], [tokens.slice(4, 8)], [tokens.slice(6, 10)]]);
    expect(model.gradDuringForward).toEqual([false, false, false, false]);
    // token j: first context token
    const begin: Record<number, number> = { 1: 0, 2: 0, 3: 0, 4: 2, 5: 2, 6: 4, 7: 4, 8: 6, 9: 6 };
    const want = Object.entries(begin).map(([j, b]) => nllOf(tokens, Number(j), b));
    expect(r.tokens).toBe(9);
    expect(r.windows).toBe(4);
    want.forEach((w, i) => expect(r.tokenNll![i]).toBeCloseTo(w, 12));
    const nll = want.reduce((a, b) => a + b, 0);
    expect(r.nll).toBeCloseTo(nll, 12);
    expect(r.ppl).toBeCloseTo(Math.exp(nll / 9), 12);
    expect(r.tokenPerplexity).toBe(r.ppl);
    expect(r.bitsPerByte).toBeUndefined();
  });

  it('non-overlapping default stride over 11 tokens: the last window keeps a full context; bits per byte', async () => {
    const model = stubModel(V, logitsOf);
    const r = await perplexity(model, Int32Array.from(TOKENS), { window: 4, bytes: 37 });
    const begin: Record<number, number> = { 1: 0, 2: 0, 3: 0, 4: 3, 5: 3, 6: 3, 7: 6, 8: 6, 9: 6, 10: 7 };
    const nll = Object.entries(begin).reduce((a, [j, b]) => a + nllOf(TOKENS, Number(j), b), 0);
    expect(model.calls.map((c) => c[0])).toEqual([TOKENS.slice(0, 4), TOKENS.slice(3, 7), TOKENS.slice(6, 10), TOKENS.slice(7, 11)]);
    expect(r.tokens).toBe(10);
    expect(r.nll).toBeCloseTo(nll, 12);
    expect(r.bitsPerByte).toBeCloseTo(nll / Math.LN2 / 37, 12);
    expect(r.bytePerplexity).toBeCloseTo(Math.exp(nll / 37), 12);
  });

  it('a window longer than the text is one forward pass scoring tokens 1..n-1 with all tokens before them', async () => {
    const model = stubModel(V, logitsOf);
    const r = await perplexity(model, TOKENS, { window: 64 });
    expect(model.calls).toEqual([[TOKENS]]);
    let nll = 0;
    for (let j = 1; j < TOKENS.length; j++) nll += nllOf(TOKENS, j, 0);
    expect(r.nll).toBeCloseTo(nll, 12);
  });

  it('batching windows changes nothing but the number of forward passes', async () => {
    const one = stubModel(V, logitsOf), three = stubModel(V, logitsOf);
    const a = await perplexity(one, TOKENS, { window: 4, stride: 1 });
    const b = await perplexity(three, TOKENS, { window: 4, stride: 1, batchSize: 3 });
    expect(a.windows).toBe(8); // 1 + (11 - 4) windows
    expect(one.calls.length).toBe(8);
    expect(three.calls.map((c) => c.length)).toEqual([3, 3, 2]);
    expect(b.nll).toBe(a.nll);
    // stride 1: every token after the first window has the full window-1 = 3 tokens of context
    let nll = 0;
    for (let j = 1; j < TOKENS.length; j++) nll += nllOf(TOKENS, j, Math.max(0, j - 3));
    expect(a.nll).toBeCloseTo(nll, 12);
  });

  it('rejects bad options and out-of-vocabulary tokens with a clear message', async () => {
    const model = stubModel(V, logitsOf);
    await expect(perplexity(model, TOKENS, { window: 4, batchSize: 0 })).rejects.toThrow(/batchSize must be a positive integer/);
    await expect(perplexity(model, TOKENS, { window: 4, bytes: 0 })).rejects.toThrow(/bytes 0 must be positive/);
    await expect(perplexity(model, [1, 9], { window: 4 })).rejects.toThrow(/token id 9 is outside the vocabulary \[0, 6\)/);
  });
});
