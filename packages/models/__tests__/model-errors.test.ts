// Broken model directories and bad inputs fail with errors that name what is wrong: checkpoints built in a temp
// dir from a fixture (tensors rewritten with writeSafetensors, config.json edited).
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor } from '@farskip/tensor';
import { ARCHITECTURES, generate, loadModel, parseConfig } from '../src/index.js';
import { SafetensorsCheckpoint, writeSafetensors } from '../src/safetensors/index.js';

const dir = (f: string): string => fileURLToPath(new URL(`./fixtures/golden/${f}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'farskip-errors-'));
let n = 0;
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Json = Record<string, unknown>;
const readConfig = (family: string): Json => JSON.parse(readFileSync(join(dir(family), 'config.json'), 'utf8')) as Json;

/** The fixture's tensors, as stored. */
function fixtureTensors(family: string): Map<string, Tensor> {
  const c = SafetensorsCheckpoint.open(dir(family));
  try {
    return new Map(c.keys().map((k) => [k, c.read(k)]));
  } finally {
    c.close();
  }
}

/** A model directory from a fixture with its tensors and/or config edited. */
function broken(family: string, edit: { tensors?: (t: Map<string, Tensor>) => void; config?: (c: Json) => void; rawConfig?: string }): string {
  const out = join(tmp, `${family}-${n++}`);
  mkdirSync(out);
  if (edit.tensors) {
    const t = fixtureTensors(family);
    edit.tensors(t);
    writeSafetensors(join(out, 'model.safetensors'), t, { metadata: { format: 'pt' } });
  } else {
    copyFileSync(join(dir(family), 'model.safetensors'), join(out, 'model.safetensors'));
  }
  if (edit.rawConfig !== undefined) {
    writeFileSync(join(out, 'config.json'), edit.rawConfig);
  } else {
    const c = readConfig(family);
    edit.config?.(c);
    writeFileSync(join(out, 'config.json'), JSON.stringify(c));
  }
  return out;
}

describe('checkpoint tensors', () => {
  it('an unedited copy loads (the harness itself is sound)', () => {
    for (const family of ['mixtral', 'llama4']) {
      expect(loadModel(broken(family, { tensors: () => {} })).spec.family).toBe(family);
    }
  });

  const missing: [string, string, string][] = [
    ['mixtral', 'model.layers.1.block_sparse_moe.experts.5.w3.weight', '[16, 32]'],
    ['qwen2_moe', 'model.layers.0.self_attn.k_proj.bias', '[16]'],
    ['deepseek_v3', 'model.layers.1.mlp.gate.e_score_correction_bias', '[16]'],
    ['deepseek_v2_lite', 'model.layers.2.self_attn.kv_a_layernorm.weight', ''],
    ['llama4', 'model.layers.3.feed_forward.experts.gate_up_proj', '[4, 32, 32]'],
    ['olmoe', 'lm_head.weight', '[64, 32]'],
    ['qwen3_moe', 'model.norm.weight', '[32]'],
  ];
  for (const [family, name, shape] of missing) {
    it(`${family}: a missing tensor is named (${name})`, () => {
      const d = broken(family, { tensors: (t) => { expect(t.delete(name), `fixture has ${name}`).toBe(true); } });
      const msg = errorOf(() => loadModel(d));
      expect(msg).toContain(`missing tensor '${name}'`);
      expect(msg).toContain(d);
      if (shape) expect(msg).toContain(shape);
    });
  }

  it('an extra unknown tensor is named (and the architecture hint given)', () => {
    const d = broken('qwen3_moe', { tensors: (t) => t.set('model.layers.1.mlp.experts.8.up_proj.weight', Tensor.zeros([16, 32])) });
    const msg = errorOf(() => loadModel(d));
    expect(msg).toContain("'model.layers.1.mlp.experts.8.up_proj.weight'");
    expect(msg).toMatch(/1 unexpected tensor/);
    expect(msg).toMatch(/architectures/);
    // a tensor of another family's naming scheme
    const d2 = broken('mixtral', { tensors: (t) => t.set('model.layers.0.mlp.shared_expert_gate.weight', Tensor.zeros([1, 32])) });
    expect(errorOf(() => loadModel(d2))).toContain("'model.layers.0.mlp.shared_expert_gate.weight'");
  });

  it('rotary inv_freq buffers of older checkpoints are ignored; a tied model may carry an lm_head copy', () => {
    const d = broken('deepseek_v3', { tensors: (t) => t.set('model.layers.0.self_attn.rotary_emb.inv_freq', Tensor.zeros([4])) });
    expect(() => loadModel(d)).not.toThrow();
    const tied = broken('mixtral', { config: (c) => { c.tie_word_embeddings = true; } });
    expect(loadModel(tied).lmHead).toBeNull();
    const tiedNoHead = broken('mixtral', { config: (c) => { c.tie_word_embeddings = true; }, tensors: (t) => t.delete('lm_head.weight') });
    expect(loadModel(tiedNoHead).lmHead).toBeNull();
    const tiedBadHead = broken('mixtral', { config: (c) => { c.tie_word_embeddings = true; }, tensors: (t) => t.set('lm_head.weight', Tensor.zeros([32, 64])) });
    expect(errorOf(() => loadModel(tiedBadHead))).toContain("tensor 'lm_head.weight' has shape [32, 64], expected [64, 32]");
  });

  it('a tensor of the wrong shape is named with both shapes', () => {
    const name = 'model.layers.2.self_attn.o_proj.weight';
    const d = broken('mixtral', { tensors: (t) => t.set(name, Tensor.zeros([16, 32])) });
    const msg = errorOf(() => loadModel(d));
    expect(msg).toContain(`tensor '${name}' has shape [16, 32], expected [32, 32]`);
    // same element count, transposed
    const fused = 'model.layers.1.feed_forward.experts.down_proj';
    const d2 = broken('llama4', { tensors: (t) => t.set(fused, Tensor.zeros([4, 32, 16])) });
    expect(errorOf(() => loadModel(d2))).toContain(`tensor '${fused}' has shape [4, 32, 16], expected [4, 16, 32]`);
    // wrong rank
    const d3 = broken('olmoe', { tensors: (t) => t.set('model.layers.0.self_attn.q_norm.weight', Tensor.zeros([4, 8])) });
    expect(errorOf(() => loadModel(d3))).toContain("tensor 'model.layers.0.self_attn.q_norm.weight' has shape [4, 8], expected [32]");
  });

  it('non-f32 tensors on disk (bf16, f64) are converted, not rejected', () => {
    const d = broken('mixtral', { tensors: (t) => { const w = t.get('model.norm.weight')!; t.set('model.norm.weight', w.to('f64')); } });
    expect(() => loadModel(d)).not.toThrow();
  });

  it('a directory without weights or without config.json says what it expected', () => {
    const noWeights = join(tmp, `empty-${n++}`);
    mkdirSync(noWeights);
    copyFileSync(join(dir('mixtral'), 'config.json'), join(noWeights, 'config.json'));
    expect(errorOf(() => loadModel(noWeights))).toMatch(/expected model\.safetensors or model\.safetensors\.index\.json/);
    const noConfig = join(tmp, `nocfg-${n++}`);
    mkdirSync(noConfig);
    copyFileSync(join(dir('mixtral'), 'model.safetensors'), join(noConfig, 'model.safetensors'));
    expect(errorOf(() => loadModel(noConfig))).toMatch(/config\.json: cannot read the model config/);
    expect(errorOf(() => loadModel(broken('mixtral', { rawConfig: '{"architectures": [' })))).toMatch(/config\.json: cannot read the model config/);
  });
});

describe('config.json', () => {
  it('an unsupported architecture is named, with every supported one listed', () => {
    const d = broken('mixtral', { config: (c) => { c.architectures = ['GPT2LMHeadModel']; } });
    const msg = errorOf(() => loadModel(d));
    expect(msg).toContain("unsupported architecture 'GPT2LMHeadModel'");
    for (const a of Object.keys(ARCHITECTURES)) expect(msg).toContain(a);
    expect(msg).toContain(join(d, 'config.json'));
    for (const bad of [undefined, [], 'MixtralForCausalLM', [3]]) {
      const m = errorOf(() => parseConfig({ ...readConfig('mixtral'), architectures: bad }));
      expect(m, JSON.stringify(bad)).toMatch(/'architectures' must be a non-empty list/);
      expect(m).toContain('Llama4ForCausalLM');
    }
  });

  const missingKeys: [string, string][] = [
    ['mixtral', 'hidden_size'], ['mixtral', 'num_local_experts'], ['qwen2_moe', 'moe_intermediate_size'], ['olmoe', 'vocab_size'],
    ['deepseek_v3', 'kv_lora_rank'], ['deepseek_v3', 'n_group'], ['deepseek_v2_lite', 'qk_rope_head_dim'], ['llama4', 'num_attention_heads'],
  ];
  for (const [family, key] of missingKeys) {
    it(`${family}: a missing '${key}' is named`, () => {
      const d = broken(family, { config: (c) => { expect(key in c).toBe(true); delete c[key]; } });
      const msg = errorOf(() => loadModel(d));
      expect(msg).toContain(`missing '${key}'`);
      expect(msg).toContain(readConfig(family).architectures && (readConfig(family).architectures as string[])[0]!);
    });
  }

  it('a key of the wrong type is named with its value', () => {
    const d = broken('qwen3_moe', { config: (c) => { c.num_hidden_layers = '3'; } });
    expect(errorOf(() => loadModel(d))).toMatch(/'num_hidden_layers' = "3" has the wrong type/);
  });

  it('unsupported options are rejected, not ignored', () => {
    expect(errorOf(() => parseConfig({ ...readConfig('olmoe'), clip_qkv: 8 }))).toMatch(/clip_qkv = 8 is not supported/);
    expect(errorOf(() => parseConfig({ ...readConfig('deepseek_v3'), scoring_func: 'tanh' }))).toMatch(/scoring_func 'tanh'/);
    expect(errorOf(() => parseConfig({ ...readConfig('deepseek_v2_lite'), topk_method: 'random' }))).toMatch(/topk_method 'random'/);
    expect(errorOf(() => parseConfig({ ...readConfig('mixtral'), hidden_size: 30 }))).toMatch(/not divisible by num_attention_heads 4/);
  });

  it("an invalid recorded FarSkip conversion ('farskip') fails at load, with the reason", () => {
    const cases: [unknown, RegExp][] = [
      [{ mode: 'bogus' }, /'farskip' = \{"mode":"bogus"\} is invalid: FarSkip mode 'bogus' is not one of/],
      [{ layers: [0, 9] }, /'farskip' .* is invalid: FarSkip layers \[0, 9\) must satisfy 0 <= start <= end <= 3/],
      ['full', /'farskip' = "full" is invalid: must be an object/],
      [[0, 1], /'farskip' = \[0,1\] is invalid: must be an object/],
    ];
    for (const [farskip, msg] of cases) {
      const d = broken('mixtral', { config: (c) => { c.farskip = farskip; } });
      const e = errorOf(() => loadModel(d));
      expect(e).toMatch(msg);
      expect(e).toContain(join(d, 'config.json'));
    }
    expect(loadModel(broken('mixtral', { config: (c) => { c.farskip = { mode: 'mlp-only', lastFraction: 1 }; } })).farskip).toEqual({ mode: 'mlp-only', lastFraction: 1 });
    expect(loadModel(broken('mixtral', { config: (c) => { c.farskip = null; } })).farskip).toBeNull();
  });

  it('a config whose layer count disagrees with the weights names the first missing (or extra) tensor', () => {
    const more = broken('mixtral', { config: (c) => { c.num_hidden_layers = 4; } });
    expect(errorOf(() => loadModel(more))).toContain("missing tensor 'model.layers.3.self_attn.q_proj.weight'");
    const fewer = broken('mixtral', { config: (c) => { c.num_hidden_layers = 2; } });
    expect(errorOf(() => loadModel(fewer))).toMatch(/unexpected tensor\(s\).*'model\.layers\.2\./);
  });
});

describe('forward inputs', () => {
  const m = loadModel(dir('qwen2_moe'));

  it('token ids outside [0, vocab) are rejected with the id and its position', async () => {
    await expect(m.forward(new Tensor(Int32Array.from([1, 2, 64, 3]), [2, 2], { dtype: 'i32' }))).rejects.toThrow(/token id 64 at position 2 is outside the vocabulary \[0, 64\)/);
    await expect(m.forward(new Tensor(Int32Array.from([-1, 2]), [1, 2], { dtype: 'i32' }))).rejects.toThrow(/token id -1 at position 0/);
  });

  it('ids must be i32 [batch, seq]', async () => {
    await expect(m.forward(new Tensor(Float32Array.from([1, 2, 3]), [1, 3]))).rejects.toThrow(/ids must be i32 \[batch, seq\], got f32 \[1, 3\]/);
    await expect(m.forward(new Tensor(Int32Array.from([1, 2, 3]), [3], { dtype: 'i32' }))).rejects.toThrow(/ids must be i32 \[batch, seq\], got i32 \[3\]/);
    await expect(m.forward(new Tensor(Float64Array.from([1, 2]), [1, 2], { dtype: 'f64' }))).rejects.toThrow(/got f64/);
  });

  it('generate rejects out-of-vocabulary prompt tokens', async () => {
    await expect(generate(m, [[5, 99]], { maxNewTokens: 2 })).rejects.toThrow(/token id 99/);
  });
});

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    return (e as Error).message;
  }
  throw new Error('expected an error, none was thrown');
}
