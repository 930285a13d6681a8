// What --model may name: a Hugging Face directory (F32 or BF16 safetensors), a trainer run directory, a trainer
// step checkpoint (parameters under the model's own names + the config the trainer writes next to them); and
// the errors for everything else. Each loads to the logits of the original checkpoint.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel, saveModel, writeSafetensors } from '@farskip/models';
import type { CausalLM } from '@farskip/models';
import { noGrad, Tensor } from '@farskip/tensor';
import { loadForInference, resolveModelSource } from '../src/index.js';
import { writeTinyModel } from './fixture.js';

const root = mkdtempSync(join(tmpdir(), 'farskip-infer-load-'));
const hf = await writeTinyModel(join(root, 'hf'));
const ids = new Tensor(Int32Array.from([5, 17, 42, 8, 99, 3]), [1, 6], { dtype: 'i32' });
const logits = (m: CausalLM): Promise<Float32Array> => noGrad(async () => Float32Array.from((await m.forward(ids)).data as Float32Array));
const maxAbs = (a: Float32Array, b: Float32Array): number => a.reduce((w, v, i) => Math.max(w, Math.abs(v - b[i]!)), 0);

describe('model sources', () => {
  it('Hugging Face directory: model, tokenizer, stop tokens from the tokenizer and generation_config.json', async () => {
    const l = loadForInference(hf);
    expect(l.source.kind).toBe('huggingface');
    expect(l.tokenizer).not.toBeNull();
    expect(new Set(l.stopTokens)).toEqual(new Set([l.tokenizer!.tokenToId('<|im_end|>'), l.tokenizer!.tokenToId('<|endoftext|>')]));
    expect(maxAbs(await logits(l.model), await logits(loadModel(hf)))).toBe(0);
  });

  it('BF16 weights load (as f32) to the BF16-rounded model', async () => {
    const dirBf16 = join(root, 'bf16');
    cpSync(hf, dirBf16, { recursive: true });
    rmSync(join(dirBf16, 'model.safetensors'));
    saveModel(loadModel(hf), dirBf16, { bf16: true });
    const l = loadForInference(dirBf16);
    const d = maxAbs(await logits(l.model), await logits(loadModel(hf)));
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(0.5);
  });

  it('a trainer run directory (model/ + tokenizer/) and a step checkpoint of it', async () => {
    const runDir = join(root, 'run');
    mkdirSync(runDir);
    cpSync(hf, join(runDir, 'model'), { recursive: true });
    mkdirSync(join(runDir, 'tokenizer'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) { cpSync(join(hf, f), join(runDir, 'tokenizer', f)); rmSync(join(runDir, 'model', f)); }
    const run = loadForInference(runDir);
    expect(run.source.kind).toBe('trainer-run');
    expect(run.source.tokenizerDir).toBe(join(runDir, 'tokenizer'));
    const want = await logits(loadModel(hf));
    expect(maxAbs(await logits(run.model), want)).toBe(0);
    // checkpoints/step-N as @farskip/distill writes it: model.safetensors under the model's parameter names
    const model = loadModel(hf);
    const step = join(runDir, 'checkpoints', 'step-00000010');
    mkdirSync(step, { recursive: true });
    writeSafetensors(join(step, 'model.safetensors'), new Map(model.parameters().map(([n, t]) => [n, t.detach()])));
    writeFileSync(join(step, 'trainer.json'), JSON.stringify({ step: 10, data: null }));
    expect(() => resolveModelSource(step)).toThrow(/without .*config\.json/);
    cpSync(join(hf, 'config.json'), join(runDir, 'checkpoints', 'config.json'));
    const ck = loadForInference(step);
    expect(ck.source.kind).toBe('trainer-checkpoint');
    expect(ck.tokenizer).not.toBeNull();
    expect(maxAbs(await logits(ck.model), want)).toBe(0);
  });

  it('errors name the path and what would load', () => {
    expect(() => resolveModelSource(join(root, 'missing'))).toThrow(/no such directory/);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    expect(() => resolveModelSource(empty)).toThrow(/neither a Hugging Face directory/);
    const sharded = join(root, 'sharded-ckpts');
    mkdirSync(join(sharded, 'rank-0'), { recursive: true });
    expect(() => resolveModelSource(sharded)).toThrow(/each rank's shards/);
    expect(() => resolveModelSource(hf, join(root, 'empty'))).toThrow(/--tokenizer .*no tokenizer.json/);
  });
});
