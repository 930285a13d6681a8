// Every family's tiny checkpoint (written in the exact Hugging Face layout by tooling/golden/make_golden.py, a
// PyTorch implementation that follows the upstream modeling code) loads through config.json + safetensors and
// reproduces PyTorch's logits. Also: the FarSkip code path with original connectivity changes nothing, and the
// converted (untrained) model computes something else.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Tensor } from '@farskip/tensor';
import { loadModel } from '../src/index.js';

const FAMILIES = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v2_lite', 'deepseek_v2_grouped', 'deepseek_v3', 'llama4'];
const dir = (f: string): string => fileURLToPath(new URL(`./fixtures/golden/${f}`, import.meta.url));

interface Golden { family: string; architecture: string; input_ids: number[][]; logits: number[][][] }

describe('golden logits from the PyTorch reference (tooling/golden)', () => {
  for (const family of FAMILIES) {
    it(`${family}: load + forward == PyTorch within 1e-4`, async () => {
      const g = JSON.parse(readFileSync(`${dir(family)}/golden.json`, 'utf8')) as Golden;
      const model = loadModel(dir(family));
      const [B, T] = [g.input_ids.length, g.input_ids[0]!.length];
      const ids = new Tensor(Int32Array.from(g.input_ids.flat()), [B, T], { dtype: 'i32' });
      const logits = await model.forward(ids);
      const want = g.logits.flat(2);
      expect(logits.shape).toEqual([B, T, model.spec.vocabSize]);
      let worst = 0;
      const got = logits.data as Float32Array;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      expect(worst).toBeLessThan(1e-4);
      // FarSkip conversion changes the function (untrained), the original connectivity through the FarSkip path does not
      const orig = (await model.forward(ids, { farskip: { mode: 'original' } })).data as Float32Array;
      expect(orig.every((v, i) => Object.is(v, got[i]))).toBe(true);
      const converted = (await model.forward(ids, { farskip: {} })).data as Float32Array;
      let diff = 0;
      for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(converted[i]! - got[i]!));
      expect(diff).toBeGreaterThan(1e-3);
    });
  }
});
