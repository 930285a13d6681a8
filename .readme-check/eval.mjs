import { CausalLM, parseConfig, Tokenizer, trainByteLevelBpe } from '@farskip/models';
import { agreement, evaluateMultipleChoice, evaluationReport, loadShippedTask, perplexity, tokenWindows } from '@farskip/eval';

// 20 examples of the shipped cloze task (held-out State of the Union sentences, 4 choices each).
const task = loadShippedTask('sotu-cloze').slice(0, 20);
console.log('example:', JSON.stringify(task[0].context.slice(-60)), '->', task[0].choices, 'gold', task[0].gold);

// A tokenizer trained on those sentences and a tiny random Mixtral: every metric takes anything with
// forward(ids i32 [B, T]) -> logits [B, T, V]; a CausalLM fits as it is.
const text = task.map((e) => e.context).join(' ');
const tok = Tokenizer.fromObjects(trainByteLevelBpe([text, ...task.flatMap((e) => e.choices)], { vocabSize: 512 }));
const model = CausalLM.random(parseConfig({
  architectures: ['MixtralForCausalLM'], vocab_size: tok.vocabSize, hidden_size: 32, intermediate_size: 32, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4, num_experts_per_tok: 2, rope_theta: 10000,
}), 1);

const ids = tok.encode(text);
const ppl = await perplexity(model, ids, { window: 128, stride: 64, bytes: new TextEncoder().encode(text).length });
console.log(`perplexity ${ppl.ppl.toFixed(1)} over ${ppl.tokens} tokens (vocabulary ${tok.vocabSize}: an untrained model is near it)`);

const cloze = await evaluateMultipleChoice(model, tok, task, { task: 'sotu-cloze' });
console.log(`sotu-cloze acc ${cloze.acc} ± ${cloze.stderr.acc.toFixed(2)}, acc_norm ${cloze.acc_norm} (chance 0.25)`);

// original vs FarSkip connectivity of the same weights: teacher–student KL and top-1 agreement (small for random
// weights; on a converted trained model this is the gap FCSD distillation closes)
const kl = await agreement(model, model, tokenWindows(ids, 64), { teacherForward: { farskip: null }, studentForward: { farskip: {} } });
console.log(`FarSkip vs original: KL ${kl.kl.toExponential(2)}, top-1 agreement ${(100 * kl.top1).toFixed(1)} %`);

console.log(evaluationReport([
  { name: 'original', perplexity: ppl.ppl, bitsPerByte: ppl.bitsPerByte, tasks: [{ task: 'sotu-cloze', acc: cloze.acc, acc_norm: cloze.acc_norm }] },
]).markdown);
