// generate(): KV-cache decoding against an independent reference — one full forward (no cache) over the prompt
// plus the generated tokens — for every family (MLA's cache of expanded k/v, Llama-4's chunked attention across
// chunk boundaries of 4 both in the prefill and while decoding, its temperature-tuned NoPE layer); batching;
// prompts of different lengths; sampling (seeds, top-k, top-p, temperature) checked against the softmax
// probabilities; stop tokens; argument errors.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isGradEnabled, noGrad, Random, Tensor } from '@farskip/tensor';
import { generate, loadModel, sample } from '../src/index.js';
import type { CausalLM } from '../src/index.js';

const FAMILIES = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v2_lite', 'deepseek_v2_grouped', 'deepseek_v3', 'llama4'];
const dir = (f: string): string => fileURLToPath(new URL(`./fixtures/golden/${f}`, import.meta.url));
const goldenIds = (f: string): number[][] => (JSON.parse(readFileSync(`${dir(f)}/golden.json`, 'utf8')) as { input_ids: number[][] }).input_ids;

const models = new Map<string, CausalLM>();
function model(f: string): CausalLM {
  let m = models.get(f);
  if (!m) models.set(f, m = loadModel(dir(f)));
  return m;
}

/** Logits [T][V] of one sequence, full forward without cache, positions 0..T-1. */
async function fullLogits(m: CausalLM, ids: number[]): Promise<Float32Array[]> {
  const V = m.spec.vocabSize;
  const out = await noGrad(() => m.forward(new Tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'i32' })));
  const d = out.data as Float32Array;
  return Array.from({ length: ids.length }, (_, t) => d.slice(t * V, (t + 1) * V));
}

const maxAbs = (a: Float32Array, b: Float32Array): number => {
  expect(a.length).toBe(b.length);
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i]! - b[i]!));
  return w;
};
const argmax = (r: Float32Array): number => r.reduce((best, v, i) => (v > r[best]! ? i : best), 0);

const N = 6;

describe('KV-cache decoding == one full forward without cache (every family)', () => {
  for (const family of FAMILIES) {
    it(`${family}: cached logits and greedy tokens match the uncached forward over prompt + generated`, async () => {
      const m = model(family);
      const [r0, r1] = goldenIds(family) as [number[], number[]];
      // prompt 3: decoding runs positions 3..7 and crosses the chunk boundary at 4;
      // prompt 5: the prefill spans 0..4 (two chunks), decoding 5..9 crosses 8. Different lengths in one call.
      const prompts = [r0.slice(0, 3), r1.slice(0, 5)];
      const res = await generate(m, prompts, { maxNewTokens: N, returnLogits: true });
      expect(res.finishReason).toEqual(['length', 'length']);
      for (let p = 0; p < prompts.length; p++) {
        const prompt = prompts[p]!;
        const toks = res.tokens[p]!;
        const cached = res.logits![p]!;
        expect(toks).toHaveLength(N);
        expect(cached).toHaveLength(N);
        toks.forEach((t) => expect(Number.isInteger(t) && t >= 0 && t < m.spec.vocabSize).toBe(true));
        const full = await fullLogits(m, [...prompt, ...toks]);
        for (let i = 0; i < N; i++) {
          const ref = full[prompt.length - 1 + i]!;
          expect(maxAbs(cached[i]!, ref), `prompt ${p}, new token ${i}`).toBeLessThan(1e-4);
          expect(toks[i], `prompt ${p}, greedy token ${i}`).toBe(argmax(ref));
        }
      }
      // each prompt alone gives the same tokens and logits as in the mixed-length call
      for (let p = 0; p < prompts.length; p++) {
        const alone = await generate(m, [prompts[p]!], { maxNewTokens: N, returnLogits: true });
        expect(alone.tokens[0]).toEqual(res.tokens[p]);
        alone.logits![0]!.forEach((row, i) => expect(maxAbs(row, res.logits![p]![i]!)).toBeLessThan(1e-5));
      }
      // the caches are detached afterwards: a plain forward is unaffected by the generation
      expect(m.stack.blocks.every((b) => (b.attention as { cache?: unknown }).cache === null)).toBe(true);
    });
  }

  for (const family of ['mixtral', 'deepseek_v3', 'llama4']) {
    it(`${family}: a batch of equal-length prompts == each prompt alone`, async () => {
      const m = model(family);
      const [r0, r1] = goldenIds(family) as [number[], number[]];
      const prompts = [r0.slice(0, 4), r1.slice(0, 4), r1.slice(2, 6)];
      const batched = await generate(m, prompts, { maxNewTokens: 5, returnLogits: true });
      for (let p = 0; p < prompts.length; p++) {
        const alone = await generate(m, [prompts[p]!], { maxNewTokens: 5, returnLogits: true });
        expect(batched.tokens[p]).toEqual(alone.tokens[0]);
        batched.logits![p]!.forEach((row, i) => expect(maxAbs(row, alone.logits![0]![i]!)).toBeLessThan(1e-5));
      }
    });
  }
});

describe('sampling', () => {
  const fam = 'qwen2_moe';
  const prompts = (): number[][] => [goldenIds(fam)[0]!.slice(0, 3), goldenIds(fam)[1]!.slice(0, 4)];

  it('same seed -> same tokens; different seeds -> different tokens', async () => {
    const m = model(fam);
    const opts = { maxNewTokens: 8, temperature: 1.5 };
    const a = await generate(m, prompts(), { ...opts, seed: 7 });
    const b = await generate(m, prompts(), { ...opts, seed: 7 });
    expect(b.tokens).toEqual(a.tokens);
    // one generation at a time: the KV caches are attached to the model itself
    const others: number[][][] = [];
    for (const seed of [8, 9, 10]) others.push((await generate(m, prompts(), { ...opts, seed })).tokens);
    // P(8 tokens of two sequences all agree) is tiny at temperature 1.5 over 64 tokens; require all three to differ
    for (const o of others) expect(o).not.toEqual(a.tokens);
  });

  it('topK 1 and a tiny topP are greedy whatever the temperature and seed', async () => {
    const m = model(fam);
    const greedy = await generate(m, prompts(), { maxNewTokens: N });
    for (const seed of [1, 2, 3]) {
      expect((await generate(m, prompts(), { maxNewTokens: N, temperature: 2, topK: 1, seed })).tokens).toEqual(greedy.tokens);
      expect((await generate(m, prompts(), { maxNewTokens: N, temperature: 2, topP: 1e-6, seed })).tokens).toEqual(greedy.tokens);
    }
    // temperature 0 is greedy too, with any topK / topP
    expect((await generate(m, prompts(), { maxNewTokens: N, temperature: 0, topK: 5, topP: 0.5, seed: 4 })).tokens).toEqual(greedy.tokens);
  });

  // a hand-made logits row: top three tokens 5, 2, 8 (in that order), ties and far-away tokens elsewhere
  const row = Float32Array.from([0.1, -1, 2.2, 0.3, -3, 2.9, 0.0, 0.25, 1.7, -0.5]);
  const softmax = (ids: number[], t: number): number[] => {
    const e = ids.map((i) => Math.exp(row[i]! / t));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / z);
  };
  function counts(draws: number, o: Parameters<typeof sample>[1], seed: number): Map<number, number> {
    const rng = new Random(seed);
    const c = new Map<number, number>();
    for (let i = 0; i < draws; i++) { const t = sample(row, o, rng); c.set(t, (c.get(t) ?? 0) + 1); }
    return c;
  }
  /** Pearson's chi-square of observed counts against expected probabilities. */
  const chi2 = (c: Map<number, number>, ids: number[], p: number[], n: number): number =>
    ids.reduce((s, id, j) => s + ((c.get(id) ?? 0) - n * p[j]!) ** 2 / (n * p[j]!), 0);

  it('temperature + topK 3: only the top-3 tokens, with frequencies of the renormalised softmax', () => {
    const n = 30_000;
    for (const t of [0.7, 1, 2.5]) {
      const c = counts(n, { temperature: t, topK: 3 }, 11);
      const top = [5, 2, 8];
      expect([...c.keys()].sort()).toEqual([...top].sort());
      // 2 degrees of freedom: chi2 > 18.4 has probability 1e-4
      expect(chi2(c, top, softmax(top, t), n), `temperature ${t}`).toBeLessThan(18.4);
    }
    // without topK every token can come out, with its softmax probability (9 dof: 1e-4 quantile 33.7)
    const all = Array.from(row.keys());
    const c = counts(n, { temperature: 3 }, 12);
    expect(chi2(c, all, softmax(all, 3), n)).toBeLessThan(33.7);
  });

  it('topP keeps the smallest prefix of the sorted distribution reaching topP', () => {
    const n = 20_000;
    const all = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]!);
    const p = softmax(all, 1);
    // the first two reach 0.6 + a bit: with topP between p0 and p0 + p1 exactly tokens 5 and 2 remain
    const topP = (p[0]! + p[0]! + p[1]!) / 2;
    const c = counts(n, { temperature: 1, topP }, 13);
    expect([...c.keys()].sort()).toEqual([2, 5]);
    expect(chi2(c, [5, 2], [p[0]! / (p[0]! + p[1]!), p[1]! / (p[0]! + p[1]!)], n)).toBeLessThan(15.1); // 1 dof, 1e-4
    // topK and topP together: topK first, then the nucleus of the renormalised top-k
    const c2 = counts(2000, { temperature: 1, topK: 3, topP: 0.999 }, 14);
    expect([...c2.keys()].every((k) => [5, 2, 8].includes(k))).toBe(true);
  });

  it('greedy sample() takes the first maximum', () => {
    expect(sample(row, {}, new Random(0))).toBe(5);
    expect(sample(Float32Array.from([1, 3, 3, 0]), { temperature: 0 }, new Random(0))).toBe(1);
  });
});

describe('concurrent generations (one JS thread, as the ranks of a threads mesh run)', () => {
  it('two models interleaved give what each gives alone; grad mode is restored afterwards', async () => {
    const a = loadModel(dir('mixtral')), b = loadModel(dir('mixtral'));
    const pa = [[1, 2, 3]], pb = [[1, 2, 3, 4], [5, 6]]; // different lengths and step counts: the runs interleave unevenly
    const alone = [await generate(a, pa, { maxNewTokens: 4 }), await generate(b, pb, { maxNewTokens: 7 })];
    expect(isGradEnabled()).toBe(true);
    const both = await Promise.all([generate(a, pa, { maxNewTokens: 4 }), generate(b, pb, { maxNewTokens: 7 })]);
    expect(both.map((r) => r.tokens)).toEqual(alone.map((r) => r.tokens));
    expect(isGradEnabled()).toBe(true);
    // inside noGrad it stays off
    await noGrad(async () => {
      await Promise.all([generate(a, pa, { maxNewTokens: 2 }), generate(b, pb, { maxNewTokens: 3 })]);
      expect(isGradEnabled()).toBe(false);
    });
    expect(isGradEnabled()).toBe(true);
  });

  it('a second generation on a model that is generating is refused; the first is unaffected', async () => {
    const m = loadModel(dir('qwen3_moe'));
    const want = await generate(m, [[3, 4, 5]], { maxNewTokens: 6 });
    const first = generate(m, [[3, 4, 5]], { maxNewTokens: 6 });
    const second = generate(m, [[7, 8]], { maxNewTokens: 6 });
    await expect(second).rejects.toThrow(/this model is already generating/);
    expect((await first).tokens).toEqual(want.tokens);
    expect((await generate(m, [[3, 4, 5]], { maxNewTokens: 6 })).tokens).toEqual(want.tokens);
    expect(isGradEnabled()).toBe(true);
  });
});

describe('stop tokens, maxNewTokens 0, errors', () => {
  const fam = 'deepseek_v2_lite';

  it('a stop token ends its sequence (included, finishReason stop); the other runs to the length', async () => {
    const m = model(fam);
    const [r0, r1] = goldenIds(fam) as [number[], number[]];
    const prompts = [r0.slice(0, 4), r1.slice(0, 4)];
    const free = await generate(m, prompts, { maxNewTokens: 8 });
    // a token of sequence 0 at step 2 that sequence 1 never produces
    const stopAt = free.tokens[0]!.findIndex((t, i) => i >= 1 && !free.tokens[1]!.includes(t));
    expect(stopAt, 'need a token only sequence 0 produces').toBeGreaterThanOrEqual(1);
    const stop = free.tokens[0]![stopAt]!;
    const first = free.tokens[0]!.indexOf(stop);
    const res = await generate(m, prompts, { maxNewTokens: 8, stopTokens: [stop] });
    expect(res.tokens[0]).toEqual(free.tokens[0]!.slice(0, first + 1));
    expect(res.finishReason).toEqual(['stop', 'length']);
    expect(res.tokens[1]).toEqual(free.tokens[1]);
    // both stop: the generation ends early
    const both = await generate(m, prompts, { maxNewTokens: 8, stopTokens: [free.tokens[0]![0]!, free.tokens[1]![0]!] });
    expect(both.tokens).toEqual([[free.tokens[0]![0]], [free.tokens[1]![0]]]);
    expect(both.finishReason).toEqual(['stop', 'stop']);
    // a stop token on the last allowed step still reports 'stop'
    const last = await generate(m, [prompts[0]!], { maxNewTokens: first + 1, stopTokens: [stop] });
    expect(last.finishReason).toEqual(['stop']);
  });

  it('maxNewTokens 0 returns no tokens (and no logits)', async () => {
    const m = model(fam);
    const res = await generate(m, [[1, 2, 3], [4]], { maxNewTokens: 0, returnLogits: true });
    expect(res.tokens).toEqual([[], []]);
    expect(res.finishReason).toEqual(['length', 'length']);
    expect(res.logits).toEqual([[], []]);
    expect((await generate(m, [], { maxNewTokens: 3 })).tokens).toEqual([]);
  });

  it('rejects an empty prompt, a negative or fractional maxNewTokens, out-of-vocabulary prompt tokens', async () => {
    const m = model(fam);
    await expect(generate(m, [[1, 2], []], { maxNewTokens: 2 })).rejects.toThrow(/prompt 1 is empty/);
    await expect(generate(m, [[1, 2]], { maxNewTokens: -1 })).rejects.toThrow(/maxNewTokens -1 must be a non-negative integer/);
    await expect(generate(m, [[1, 2]], { maxNewTokens: 1.5 })).rejects.toThrow(/maxNewTokens 1.5/);
    await expect(generate(m, [[1, 64]], { maxNewTokens: 1 })).rejects.toThrow(/token id 64 .*outside the vocabulary/);
    // a failed generation leaves no cache attached
    expect(m.stack.blocks.every((b) => (b.attention as { cache?: unknown }).cache === null)).toBe(true);
    const ok = await generate(m, [[1, 2]], { maxNewTokens: 1 });
    expect(ok.tokens[0]).toHaveLength(1);
  });
});
