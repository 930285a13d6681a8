// The trainer's commands. Each reads a validated config (config.ts), prepares data (a tokenizer trained on the
// corpus and a tokenized dataset, both cached under `out`), runs the Trainer of @farskip/distill with a progress
// display and a metrics JSONL, writes curves (plots.ts) and the final model in Hugging Face layout.
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDataset, forwardKl, jsonlDocuments, PackedLoader, sftLoss, sotuDocuments, textFileDocuments, TokenDataset, Trainer } from '@farskip/distill';
import type { DocumentSource, StepMetrics } from '@farskip/distill';
import { sotuHeldOut } from '@farskip/eval';
import { CausalLM, configWithFarSkip, convertToFarSkip, loadModel, parseConfig, saveModelFromRanks, saveTokenizer, trainByteLevelBpe } from '@farskip/models';
import type { ParallelContext } from '@farskip/layers';
import { noGrad, Tensor } from '@farskip/tensor';
import type { TrainerConfig } from './config.js';
import { renderCurves } from './plots.js';
import { Progress } from './progress.js';

export type Command = 'pretrain' | 'distill' | 'sft' | 'eval';

function documents(cfg: TrainerConfig): DocumentSource {
  if (cfg.corpus === 'sotu') return sotuDocuments();
  if (/\.jsonl$/i.test(cfg.corpus)) return jsonlDocuments([cfg.corpus], { textField: cfg.textField });
  return textFileDocuments([cfg.corpus]);
}

/** The dataset directory: cfg.data, or `out/data` built (once) from the corpus with a trained BPE tokenizer. */
export async function prepareData(cfg: TrainerConfig, log: (s: string) => void): Promise<string> {
  if (cfg.data) return cfg.data;
  const dir = join(cfg.out, 'data');
  if (existsSync(join(dir, 'index.json'))) return dir;
  log(`training a byte-level BPE tokenizer (vocab ${cfg.vocabSize}) on ${cfg.corpus} ...`);
  const texts: string[] = [];
  for await (const d of documents(cfg)) if ('text' in d) texts.push(d.text);
  const tokenizer = trainByteLevelBpe(texts, { vocabSize: cfg.vocabSize, specialTokens: ['<|endoftext|>'] });
  const tokDir = join(cfg.out, 'tokenizer');
  await saveTokenizer(tokDir, tokenizer, { eos_token: '<|endoftext|>', bos_token: null, model_max_length: 1 << 20 });
  log(`tokenizing ${cfg.corpus} into ${dir} ...`);
  // the addresses @farskip/eval builds its shipped tasks from never reach the training split
  const evalDocs = cfg.corpus === 'sotu' ? new Set(sotuHeldOut().map((a) => `${a.year}-${a.name}`)) : null;
  const r = await buildDataset({ documents: documents(cfg), tokenizer: tokDir, outDir: dir, heldOutFraction: cfg.heldOutFraction, seed: cfg.seed,
    forceHeldOut: evalDocs ? (id) => evalDocs.has(id) : undefined });
  log(`dataset: ${r.index.splits.train.tokens} train / ${r.index.splits.heldout.tokens} held-out tokens (${Math.round(r.tokensPerSecond)} tokens/s)`);
  return dir;
}

/** config.json of a new model of cfg.arch for `vocab` tokens. */
export function newModelConfig(cfg: TrainerConfig, vocab: number): Record<string, unknown> {
  const a = cfg.arch;
  const common = { vocab_size: vocab, hidden_size: a.hidden, num_hidden_layers: a.layers, num_attention_heads: a.heads, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: cfg.seq * 4 };
  if (a.family === 'deepseek_v2') {
    const hd = a.hidden / a.heads;
    return { architectures: ['DeepseekV2ForCausalLM'], model_type: 'deepseek_v2', ...common, num_key_value_heads: a.heads, intermediate_size: 4 * a.hidden,
      moe_intermediate_size: a.expertHidden, n_routed_experts: a.experts, num_experts_per_tok: a.topK, n_shared_experts: a.sharedExperts,
      first_k_dense_replace: a.denseLayers, moe_layer_freq: 1, topk_method: 'greedy', scoring_func: 'softmax', norm_topk_prob: false, routed_scaling_factor: 1,
      q_lora_rank: null, kv_lora_rank: a.hidden / 2, qk_nope_head_dim: hd / 2, qk_rope_head_dim: hd / 2, v_head_dim: hd, n_group: 1, topk_group: 1 };
  }
  if (a.family === 'qwen3_moe') {
    return { architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', ...common, num_key_value_heads: a.heads, head_dim: a.hidden / a.heads,
      intermediate_size: 4 * a.hidden, moe_intermediate_size: a.expertHidden, num_experts: a.experts, num_experts_per_tok: a.topK, norm_topk_prob: true,
      mlp_only_layers: Array.from({ length: a.denseLayers }, (_, i) => i), decoder_sparse_step: 1 };
  }
  return { architectures: ['MixtralForCausalLM'], model_type: 'mixtral', ...common, num_key_value_heads: a.heads, intermediate_size: a.expertHidden,
    num_local_experts: a.experts, num_experts_per_tok: a.topK };
}

export interface RunResult { metrics: StepMetrics[]; modelDir: string; stoppedEarly: boolean }

/**
 * pretrain / distill / sft. `report`, when given, receives every step's metrics instead of the progress display
 * (the repro pipeline forwards them from its child processes to one display of all running stages).
 */
export async function runTraining(command: Exclude<Command, 'eval'>, cfg: TrainerConfig, log: (s: string) => void = console.log,
  ctx?: ParallelContext, report?: (m: StepMetrics) => void): Promise<RunResult> {
  const rank = ctx?.world.rank ?? 0;
  const ranks = ctx?.world.size ?? 1;
  const lead = rank === 0;
  mkdirSync(cfg.out, { recursive: true });
  const dataDir = await prepareData(cfg, log);
  const ds = TokenDataset.open(dataDir);
  const vocab = ds.index.vocabSize;
  const dtype = cfg.bf16 ? 'bf16' : 'f32';
  let student: CausalLM;
  let teacher: CausalLM | null = null;
  if (command === 'pretrain' && !cfg.model) {
    student = CausalLM.random(parseConfig(newModelConfig(cfg, vocab), 'new model'), cfg.seed, { ctx, dtype });
  } else {
    if (!cfg.model) throw new Error(`${command} needs --model <dir> (a Hugging Face model directory, e.g. the output of pretrain)`);
    student = loadModel(cfg.model, { ctx, dtype });
    if (student.spec.vocabSize < vocab) throw new Error(`${cfg.model}: vocab ${student.spec.vocabSize} is smaller than the dataset's ${vocab}; use the tokenizer the model was trained with`);
    if (command === 'distill') {
      teacher = loadModel(cfg.model, { dtype });
      convertToFarSkip(teacher, null);
      convertToFarSkip(student, cfg.farskip);
    } else if (command === 'sft') {
      // the distillation baseline (the paper's SFT): the converted model trained on next-token cross-entropy;
      // --farskip.mode original fine-tunes the original connectivity instead
      convertToFarSkip(student, cfg.farskip);
    }
  }
  if (lead) writeCheckpointModelConfig(join(cfg.out, 'checkpoints'), configWithFarSkip(student.spec.raw, student.farskip));
  // tensor-parallel ranks share their tokens: the data is split over the dense group (ep × dp)
  const loader = new PackedLoader(ds.split('train'), { batchSize: cfg.batch, seqLen: cfg.seq, seed: cfg.seed,
    rank: ctx?.dense.rank ?? 0, worldSize: ctx?.dense.size ?? 1 });
  const heldout = heldOutBatch(ds, cfg);
  const evaluate = async (): Promise<number> => noGrad(async () => {
    const ids = new Tensor(heldout.inputs, [heldout.batch, cfg.seq], { dtype: 'i32' });
    if (command === 'distill') {
      return forwardKl(await student.forward(ids), await teacher!.forward(ids, { farskip: null })).item();
    }
    return sftLoss(await student.forward(ids), heldout.targets).item();
  });
  const metricsFile = join(cfg.out, 'metrics.jsonl');
  const progress = lead && !report ? new Progress(cfg.steps) : null;
  const trainer = new Trainer({
    student, teacher, data: loader, checkpointDir: join(cfg.out, 'checkpoints'), evaluate, ctx,
    config: {
      objective: command === 'distill' ? 'fcsd' : command === 'sft' ? 'sft' : 'pretrain',
      steps: cfg.steps, batch: cfg.batch, seq: cfg.seq, accumulation: cfg.accumulation, lr: cfg.lr, minLr: cfg.minLr, warmupSteps: cfg.warmupSteps,
      weightDecay: cfg.weightDecay, clip: cfg.clip, temperature: cfg.temperature, hiddenL2: cfg.hiddenL2 || undefined, freezeEmbeddings: cfg.freezeEmbeddings,
      checkpointEvery: cfg.checkpointEvery, keepLast: cfg.keepLast, evalEvery: cfg.evalEvery,
      earlyStopping: cfg.patience ? { patience: cfg.patience, minDelta: cfg.minDelta, mode: 'min' } : undefined,
    },
    onStep: (m) => {
      if (!lead) return;
      // loss and tokens are already over all ranks (the Trainer averages / sums them over the dense group)
      appendFileSync(metricsFile, JSON.stringify({ command, ranks, tp: cfg.tp, ep: cfg.ep, ...m }) + '\n');
      if (report) report(m);
      else progress!.update(m);
    },
  });
  if (cfg.resume) {
    const from = trainer.resume();
    if (from && lead) log(`resumed from step ${from}`);
  } else if (lead && existsSync(metricsFile)) {
    writeFileSync(metricsFile, ''); // a fresh run starts a fresh metrics file
  }
  let result;
  try {
    result = await trainer.train();
  } finally {
    progress?.stop();
    ds.close();
  }
  const modelDir = join(cfg.out, 'model');
  // tp / ep shards are gathered into one checkpoint (every rank takes part), which rank 0 writes
  await saveModelFromRanks(student, modelDir, { bf16: cfg.bf16 });
  if (lead) await plotMetrics(cfg.out, command);
  return { metrics: result.metrics, modelDir, stoppedEarly: result.stoppedEarly };
}

/**
 * checkpoints/config.json: the Hugging Face config of the model the step checkpoints hold (FarSkip options
 * included), so a checkpoint taken mid-run loads for inference (farskip-infer --model runs/x/checkpoints/step-N).
 */
function writeCheckpointModelConfig(dir: string, config: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}

/** Writes `file` through a temporary file renamed into place: a crash never leaves it half-written. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** A fixed held-out batch (the first windows of the held-out split) for evaluation during training. */
function heldOutBatch(ds: TokenDataset, cfg: TrainerConfig): { inputs: Int32Array; targets: Int32Array; batch: number } {
  const split = ds.split('heldout');
  const total = ds.index.splits.heldout.tokens;
  const batch = Math.max(1, Math.min(cfg.batch, Math.floor((total - 1) / cfg.seq)));
  if (total < cfg.seq + 1) throw new Error(`the held-out split has ${total} tokens, fewer than one sequence of ${cfg.seq}; raise heldOutFraction or lower seq`);
  const raw = split.read(0, batch * cfg.seq + 1);
  const inputs = new Int32Array(batch * cfg.seq), targets = new Int32Array(batch * cfg.seq);
  for (let b = 0; b < batch; b++) {
    inputs.set(raw.subarray(b * cfg.seq, (b + 1) * cfg.seq), b * cfg.seq);
    targets.set(raw.subarray(b * cfg.seq + 1, (b + 1) * cfg.seq + 1), b * cfg.seq);
  }
  return { inputs, targets, batch };
}

/** loss.svg/png (and eval.svg/png) from metrics.jsonl. */
export async function plotMetrics(out: string, command: string): Promise<string[]> {
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as StepMetrics);
  const files: string[] = [];
  const lossName = command === 'distill' ? 'KL(teacher ‖ student)' : 'cross-entropy';
  const r = await renderCurves(`${command}: training loss`, lossName, [{ name: 'train', points: rows.map((m) => ({ step: m.step, value: m.loss })) }], join(out, 'loss'));
  files.push(r.svg, r.png);
  const ev = rows.filter((m) => m.eval !== undefined);
  if (ev.length) {
    const e = await renderCurves(`${command}: held-out`, lossName, [{ name: 'held-out', points: ev.map((m) => ({ step: m.step, value: m.eval! })) }], join(out, 'eval'));
    files.push(e.svg, e.png);
  }
  return files;
}
