// The continuous-batching engine against independent references: every sequence of a batch whose members join
// and leave at different steps produces what @farskip/models' generate() (one prompt alone, uniform KV cache)
// produces for it, with logprobs equal to a float64 log-softmax of generate()'s logits; cancellation frees slots;
// the queue is bounded; two ranks in lockstep (tp = 2, experts split, all-reduce form) equal one rank.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createThreadsWorld } from '@farskip/collectives';
import { ParallelContext } from '@farskip/layers';
import { generate, loadModel } from '@farskip/models';
import type { GenerateResult } from '@farskip/models';
import { decodePlan, encodePlan, Engine, loadForInference, QueueFullError } from '../src/index.js';
import type { Sequence, SequenceParams, TokenLogprobs } from '../src/index.js';
import { writeTinyModel } from './fixture.js';

const dir = await writeTinyModel(join(mkdtempSync(join(tmpdir(), 'farskip-infer-engine-')), 'model'));
const PROMPTS = [[5, 17, 42, 8], [9], [33, 2, 71, 100, 12, 6, 44, 90, 13, 27, 61], [250, 251], [7, 7, 7, 7, 7, 7]];

function logSoftmax64(row: Float32Array): Float64Array {
  let mx = -Infinity;
  for (const v of row) mx = Math.max(mx, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - mx);
  const lse = mx + Math.log(s);
  return Float64Array.from(row, (v) => v - lse);
}

/** Submits each prompt after `delays[i]` engine steps have passed (sequences join a running batch). */
async function runStaggered(engine: Engine, prompts: number[][], params: Omit<SequenceParams, 'prompt'>, joinAfterTokens: number[],
  onToken?: (i: number, lp: number | undefined) => void): Promise<Sequence[]> {
  const run = engine.start();
  const seqs: Promise<Sequence>[] = [];
  let produced = 0;
  const waiters: { at: number; go: () => void }[] = [];
  const tick = (): void => { produced++; for (const w of waiters.filter((x) => x.at <= produced)) { waiters.splice(waiters.indexOf(w), 1); w.go(); } };
  prompts.forEach((prompt, i) => {
    seqs.push(new Promise<void>((go) => { if (joinAfterTokens[i]! <= 0) go(); else waiters.push({ at: joinAfterTokens[i]!, go }); })
      .then(() => engine.complete({ ...params, prompt }, { onToken: (_t, info) => { onToken?.(i, info.logprobs?.logprob); tick(); } })));
  });
  const out = await Promise.all(seqs);
  await engine.stop();
  await run;
  return out;
}

describe('continuous batching equals one sequence at a time', () => {
  it('greedy: sequences joining a running batch (ragged lengths, reused slots) match generate() token for token, logprobs to 1e-4', async () => {
    const model = loadModel(dir);
    const reference: GenerateResult[] = [];
    for (const p of PROMPTS) reference.push(await generate(model, [p], { maxNewTokens: 9, returnLogits: true }));
    // 3 slots for 5 prompts, each joining after the batch produced some tokens: the last ones wait for a slot
    // and take one a finished sequence freed
    const engine = new Engine(model, { maxBatch: 3, maxModelLen: 64 });
    const lps: number[][] = PROMPTS.map(() => []);
    const seqs = await runStaggered(engine, PROMPTS, { maxNewTokens: 9, temperature: 0, logprobs: 2 }, [0, 2, 3, 5, 8], (i, lp) => lps[i]!.push(lp!));
    expect(engine.counters.maxDecodeBatch).toBe(3);
    expect(engine.counters.raggedDecodeSteps).toBeGreaterThan(3);
    PROMPTS.forEach((_, i) => {
      expect(seqs[i]!.generated, `prompt ${i}`).toEqual(reference[i]!.tokens[0]);
      expect(seqs[i]!.finished).toBe('length');
      const want = reference[i]!.logits![0]!.map((row, t) => logSoftmax64(row)[reference[i]!.tokens[0]![t]!]!);
      lps[i]!.forEach((v, t) => expect(Math.abs(v - want[t]!), `prompt ${i} token ${t}`).toBeLessThan(1e-4));
    });
    expect(engine.counters.decodeTokens).toBe(PROMPTS.length * 8);
  });

  it('prompt logprobs (echo) equal a float64 log-softmax of the full forward; top alternatives are the most likely tokens', async () => {
    const model = loadModel(dir);
    const prompt = PROMPTS[2]!;
    const { Tensor } = await import('@farskip/tensor');
    const logits = (await model.forward(new Tensor(Int32Array.from(prompt), [1, prompt.length], { dtype: 'i32' }))).data as Float32Array;
    const V = model.spec.vocabSize;
    const engine = new Engine(model, { maxBatch: 2, maxModelLen: 32 });
    const run = engine.start();
    let got: (TokenLogprobs | null)[] = [];
    await engine.complete({ prompt, maxNewTokens: 0, logprobs: 3, promptLogprobs: true }, { onPrompt: (lp) => { got = lp; } });
    await engine.stop();
    await run;
    expect(got[0]).toBeNull();
    for (let t = 1; t < prompt.length; t++) {
      const ref = logSoftmax64(logits.subarray((t - 1) * V, t * V));
      const e = got[t]!;
      expect(Math.abs(e.logprob - ref[prompt[t]!]!)).toBeLessThan(1e-4);
      const order = Array.from(ref.keys()).sort((a, b) => ref[b]! - ref[a]!).slice(0, 3);
      expect(e.top.map((x) => x.token)).toEqual(order);
    }
  });

  it('seeded sampling is the same whatever else shares the batch', async () => {
    const params = { maxNewTokens: 8, temperature: 0.9, topP: 0.95, topK: 50, seed: 1234 };
    const alone = await runStaggered(new Engine(loadModel(dir), { maxBatch: 4, maxModelLen: 64 }), [PROMPTS[0]!], params, [0]);
    const crowded = await runStaggered(new Engine(loadModel(dir), { maxBatch: 4, maxModelLen: 64 }), [PROMPTS[3]!, PROMPTS[0]!, PROMPTS[4]!], params, [0, 3, 1]);
    expect(crowded[1]!.generated).toEqual(alone[0]!.generated);
  });

  it('stop tokens end a sequence with reason stop; the model length ends it with length', async () => {
    const model = loadModel(dir);
    const ref = await generate(model, [PROMPTS[1]!], { maxNewTokens: 6 });
    const stopAt = ref.tokens[0]![3]!;
    const first = ref.tokens[0]!.indexOf(stopAt);
    const engine = new Engine(model, { maxBatch: 2, maxModelLen: 5 });
    const run = engine.start();
    const s = await engine.complete({ prompt: PROMPTS[1]!, maxNewTokens: 3, temperature: 0, stopTokens: [stopAt] });
    expect(s.finished).toBe(first < 3 ? 'stop' : 'length');
    const long = await engine.complete({ prompt: [1, 2, 3], maxNewTokens: 2, temperature: 0 });
    expect(long.generated.length).toBe(2); // 3 + 2 = maxModelLen
    expect(() => engine.submit({ prompt: [1, 2, 3, 4], maxNewTokens: 2 })).toThrow(/exceed the model length 5/);
    await engine.stop();
    await run;
  });
});

describe('slots, cancellation, limits', () => {
  it('cancelling a running sequence frees its slot for a waiting one, which still matches generate()', async () => {
    const model = loadModel(dir);
    const ref = await generate(model, [PROMPTS[4]!], { maxNewTokens: 5 });
    const engine = new Engine(model, { maxBatch: 1, maxModelLen: 64, maxQueue: 1 });
    const run = engine.start();
    const finished: string[] = [];
    let first!: Sequence;
    first = engine.submit({ prompt: PROMPTS[0]!, maxNewTokens: 40, temperature: 0 }, {
      onToken: () => { if (first.generated.length === 3) first.cancel(); },
      onFinish: (r) => finished.push(`first:${r}`),
    });
    const second = engine.complete({ prompt: PROMPTS[4]!, maxNewTokens: 5, temperature: 0 }, { onFinish: (r) => finished.push(`second:${r}`) });
    // one slot busy, one waiting: a third request is refused
    expect(() => engine.submit({ prompt: [1], maxNewTokens: 1 })).toThrow(QueueFullError);
    const s2 = await second;
    expect(first.generated.length).toBe(3);
    expect(finished).toEqual(['first:cancelled', 'second:length']);
    expect(s2.generated).toEqual(ref.tokens[0]);
    expect(engine.runningCount + engine.waitingCount).toBe(0);
    await engine.stop();
    await run;
  });

  it('stop() ends waiting and running sequences as cancelled; submit after stop is an error', async () => {
    const engine = new Engine(loadModel(dir), { maxBatch: 1, maxModelLen: 64 });
    const run = engine.start();
    const reasons: string[] = [];
    engine.submit({ prompt: [1, 2], maxNewTokens: 50 }, { onToken: () => { if (reasons.length === 0) void engine.stop(); }, onFinish: (r) => reasons.push(r) });
    engine.submit({ prompt: [3], maxNewTokens: 50 }, { onFinish: (r) => reasons.push(r) });
    await run;
    expect(reasons).toEqual(['cancelled', 'cancelled']);
    expect(() => engine.submit({ prompt: [1], maxNewTokens: 1 })).toThrow(/shutting down/);
  });

  it('plans survive encoding', () => {
    const p = { kind: 'step' as const, prefills: [{ slot: 2, tokens: [5, 6, 7], allLogits: true }, { slot: 0, tokens: [1], allLogits: false }], decodes: [{ slot: 1, token: 9 }, { slot: 3, token: 0 }] };
    expect(decodePlan(0, encodePlan(p))).toEqual(p);
    expect(() => decodePlan(7, new Int32Array([0, 0]))).toThrow(/unknown kind/);
  });
});

describe('a dead peer', () => {
  it('a rank that never follows makes the engine fail with the collective\'s error, and its requests end in error (no hang)', async () => {
    const worlds = createThreadsWorld(2, { timeoutMs: 1500 });
    try {
      const ctxs = worlds.map((w) => ParallelContext.create(w, { tp: 2 }));
      const model = loadForInference(dir, { ctx: ctxs[0] }).model;
      const engine = new Engine(model, { maxBatch: 2, maxModelLen: 32, world: worlds[0]! });
      const run = engine.start();
      const s = await engine.complete({ prompt: [1, 2, 3], maxNewTokens: 4 });
      expect(s.finished).toBe('error');
      expect(engine.failure?.message).toMatch(/timed out|peer/);
      expect(() => engine.submit({ prompt: [1], maxNewTokens: 1 })).toThrow(engine.failure!.message);
      await run;
    } finally {
      for (const w of worlds) w.destroy();
    }
  });
});

describe('two ranks in lockstep (tp = 2: heads and experts split, all-reduce form) equal one rank', () => {
  it('staggered greedy sequences, original and FarSkip connectivity', async () => {
    for (const farskip of [null, { mode: 'full' as const }]) {
      const single = await runStaggered(new Engine(loadModel(dir), { maxBatch: 2, maxModelLen: 64, farskip }), PROMPTS.slice(0, 3), { maxNewTokens: 6, temperature: 0 }, [0, 2, 4]);
      const worlds = createThreadsWorld(2);
      try {
        const ctxs = worlds.map((w) => ParallelContext.create(w, { tp: 2 }));
        const models = ctxs.map((ctx) => loadForInference(dir, { ctx }).model);
        const follower = Engine.follow(models[1]!, worlds[1]!, { maxBatch: 2, maxModelLen: 64, farskip });
        const lead = runStaggered(new Engine(models[0]!, { maxBatch: 2, maxModelLen: 64, farskip, world: worlds[0]! }), PROMPTS.slice(0, 3), { maxNewTokens: 6, temperature: 0 }, [0, 2, 4]);
        const [multi] = await Promise.all([lead, follower]);
        multi.forEach((s, i) => expect(s.generated, `farskip ${!!farskip} prompt ${i}`).toEqual(single[i]!.generated));
      } finally {
        for (const w of worlds) w.destroy();
      }
    }
  });
});
