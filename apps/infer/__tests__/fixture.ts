// A small model directory in the exact Hugging Face layout the server loads: config.json (Qwen2-MoE: GQA with
// q/k/v biases, routed experts top-2, a gated shared expert, one dense layer), model.safetensors with random
// weights, and a byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json with a ChatML chat template)
// trained on a few sentences.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CausalLM, parseConfig, saveModel, saveTokenizer, Tokenizer, trainByteLevelBpe } from '@farskip/models';

const CORPUS = [
  'The quick brown fox jumps over the lazy dog. Mixture-of-experts models route every token to a few experts.',
  'Communication overlaps computation when skip connections read an earlier residual stream.',
  'Self-distillation recovers the accuracy of the converted model: the original is the teacher.',
  'Hello, world! Servers stream tokens as server-sent events; clients cancel by closing the connection.',
  'Ünïcödé text — with accents, em dashes and emoji 🙂 — splits into several byte-level tokens.',
];

export const CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

export interface FixtureOptions {
  /** FarSkip connectivity recorded in config.json (a converted checkpoint) */
  farskip?: boolean;
  seed?: number;
}

/** Writes the model directory `dir`; returns it. */
export async function writeTinyModel(dir: string, o: FixtureOptions = {}): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const tokenizer = trainByteLevelBpe(CORPUS.flatMap((s) => [s, s.toLowerCase()]), { vocabSize: 400, specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] });
  await saveTokenizer(dir, tokenizer, { eos_token: '<|im_end|>', bos_token: null, pad_token: '<|endoftext|>', chat_template: CHAT_TEMPLATE, model_max_length: 512 });
  const tok = Tokenizer.fromObjects(tokenizer);
  const raw = {
    architectures: ['Qwen2MoeForCausalLM'], model_type: 'qwen2_moe', vocab_size: tok.vocabSize, hidden_size: 64, max_position_embeddings: 512,
    tie_word_embeddings: false, intermediate_size: 96, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-6,
    rope_theta: 10000, decoder_sparse_step: 1, moe_intermediate_size: 32, shared_expert_intermediate_size: 48, num_experts_per_tok: 2, num_experts: 8,
    norm_topk_prob: false, mlp_only_layers: [0], qkv_bias: true, torch_dtype: 'float32',
  };
  const model = CausalLM.random(parseConfig(raw, 'fixture'), o.seed ?? 3);
  // larger logits than N(0, 0.02) weights give, so greedy choices are far from ties (stable across schedules)
  const head = model.lmHead!.data as Float32Array;
  for (let i = 0; i < head.length; i++) head[i]! *= 40;
  if (o.farskip) model.farskip = { mode: 'full' };
  saveModel(model, dir);
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [tok.tokenToId('<|im_end|>'), tok.tokenToId('<|endoftext|>')] }) + '\n');
  return dir;
}
