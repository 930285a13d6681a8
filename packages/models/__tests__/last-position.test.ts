// forward(ids, { outputs: 'last' }): the last layer pruned to each sequence's last position (what a prefill whose
// logits are sampled at its end needs) equals the last position of the whole forward — every family (MLA,
// Llama-4 chunked / NoPE layers included), original and FarSkip connectivity, on one rank and on a 2-rank
// tensor-parallel mesh in the all-reduce form; and a pruned prefill leaves the KV cache as the whole one does.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createThreadsWorld } from '@farskip/collectives';
import { ParallelContext } from '@farskip/layers';
import { noGrad, Tensor } from '@farskip/tensor';
import { attachKVCaches, loadModel } from '../src/index.js';
import type { CausalLM } from '../src/index.js';

const dir = (f: string): string => fileURLToPath(new URL(`./fixtures/golden/${f}`, import.meta.url));
const golden = (f: string): number[][] => (JSON.parse(readFileSync(`${dir(f)}/golden.json`, 'utf8')) as { input_ids: number[][] }).input_ids;
const FAMILIES = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v2_lite', 'deepseek_v2_grouped', 'deepseek_v3', 'llama4'];

function ids(rows: number[][]): Tensor {
  return new Tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length], { dtype: 'i32' });
}
/** [B, T, V] -> [B, 1, V] of the last positions */
function lastRows(all: Float32Array, B: number, T: number, V: number): Float32Array {
  const out = new Float32Array(B * V);
  for (let b = 0; b < B; b++) out.set(all.subarray(((b + 1) * T - 1) * V, (b + 1) * T * V), b * V);
  return out;
}
const maxAbs = (a: Float32Array, b: Float32Array): number => {
  expect(a.length).toBe(b.length);
  return a.reduce((w, v, i) => Math.max(w, Math.abs(v - b[i]!)), 0);
};

async function compare(m: CausalLM, rows: number[][], farskip: {} | null): Promise<number> {
  const B = rows.length, T = rows[0]!.length, V = m.spec.vocabSize;
  const whole = (await m.forward(ids(rows), { farskip })).data as Float32Array;
  const last = await m.forward(ids(rows), { farskip, outputs: 'last' });
  expect(last.shape).toEqual([B, 1, V]);
  return maxAbs(last.data as Float32Array, lastRows(whole, B, T, V));
}

describe("outputs: 'last' equals the last position of the whole forward", () => {
  for (const family of FAMILIES) {
    it(family, async () => {
      const m = loadModel(dir(family));
      for (const farskip of [null, {}]) expect(await noGrad(() => compare(m, golden(family), farskip)), `farskip ${!!farskip}`).toBeLessThan(2e-5);
    });
  }

  it('tp = 2, all-reduce form (heads and experts split), original and FarSkip', async () => {
    const worlds = createThreadsWorld(2);
    try {
      const ctxs = worlds.map((w) => ParallelContext.create(w, { tp: 2 }));
      const errs = await noGrad(() => Promise.all(ctxs.map(async (ctx) => {
        const m = loadModel(dir('qwen2_moe'), { ctx, form: 'all-reduce' });
        return [await compare(m, golden('qwen2_moe'), null), await compare(m, golden('qwen2_moe'), {})];
      })));
      for (const e of errs.flat()) expect(e).toBeLessThan(2e-5);
    } finally {
      for (const w of worlds) w.destroy();
    }
  });

  it('a pruned prefill fills the KV cache as the whole one does: the next decode step agrees', async () => {
    for (const family of ['qwen3_moe', 'deepseek_v2_lite', 'llama4']) {
      const rows = golden(family);
      const B = rows.length, T = rows[0]!.length;
      const next = ids(rows.map((r) => [r[0]!]));
      const pos = new Tensor(Int32Array.from({ length: B }, () => T), [B, 1], { dtype: 'i32' });
      const run = (outputs: 'all' | 'last') => noGrad(async () => {
        const m = loadModel(dir(family));
        attachKVCaches(m, B, T + 1);
        await m.forward(ids(rows), { outputs });
        return Float32Array.from((await m.forward(next, { positions: pos })).data as Float32Array);
      });
      expect(maxAbs(await run('last'), await run('all')), family).toBeLessThan(2e-5);
    }
  });
});
