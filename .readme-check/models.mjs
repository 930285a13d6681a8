import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CausalLM, parseConfig, generate, convertToFarSkip, saveModel, loadModel, Tokenizer, trainByteLevelBpe } from '@farskip/models';
import { Tensor } from '@farskip/tensor';

// A tokenizer trained in memory (byte-level BPE) and a tiny Mixtral with random weights, from an HF config.json.
const corpus = ['Mixture-of-experts models route every token to a few experts.', 'Skip connections let collectives overlap computation.'];
const tok = Tokenizer.fromObjects(trainByteLevelBpe(corpus, { vocabSize: 300, specialTokens: ['<eos>'] }));
const config = {
  architectures: ['MixtralForCausalLM'], vocab_size: tok.vocabSize, hidden_size: 32, intermediate_size: 16,
  num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4, num_experts_per_tok: 2,
  max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
};
const model = CausalLM.random(parseConfig(config), 1);
console.log(`${model.spec.family}: ${model.parameters().reduce((n, [, t]) => n + t.numel, 0)} parameters, vocab ${tok.vocabSize}`);

// Generation with a KV cache (random weights: the text is noise, the mechanics are real).
const prompt = tok.encode('Mixture-of-experts', { addSpecialTokens: false });
const out = await generate(model, [prompt], { maxNewTokens: 8, temperature: 0.8, topK: 20, seed: 1 });
console.log(`generated ${JSON.stringify(out.tokens[0])} = ${JSON.stringify(tok.decode(out.tokens[0]))}`);

// FarSkip conversion keeps the weights and changes which residual stream each sub-block reads.
const ids = new Tensor(Int32Array.from(prompt), [1, prompt.length], { dtype: 'i32' });
const before = (await model.forward(ids)).toArray();
convertToFarSkip(model, { mode: 'full' });
const after = (await model.forward(ids)).toArray();
console.log('logits change after conversion, max |diff| =', Math.max(...after.map((v, i) => Math.abs(v - before[i]))).toExponential(2));

// An HF-layout checkpoint (config.json + model.safetensors) round trip; config.json records the conversion.
const dir = mkdtempSync(join(tmpdir(), 'farskip-model-'));
saveModel(model, dir);
const reloaded = loadModel(dir);
const again = (await reloaded.forward(ids)).toArray();
console.log('reloaded from', dir, '-> farskip', JSON.stringify(reloaded.farskip), ', same logits:', again.every((v, i) => v === after[i]));
rmSync(dir, { recursive: true });
