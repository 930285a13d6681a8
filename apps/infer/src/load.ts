// What `--model` may name, and how it becomes a model and a tokenizer:
//   a Hugging Face directory          config.json + *.safetensors (F32 / BF16 / F16 weights, read as f32)
//   a trainer run directory           runs/x: its final model (runs/x/model) and tokenizer (runs/x/tokenizer)
//   a trainer step checkpoint         runs/x/checkpoints/step-N: the parameters trained so far, with the model
//                                     config the trainer wrote next to the checkpoints (checkpoints/config.json)
// The tokenizer is --tokenizer, else the model directory's tokenizer.json, else the run's tokenizer/ directory.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { MoEForm, ParallelContext } from '@farskip/layers';
import { CausalLM, loadModel, parseConfig, SafetensorsFile, Tokenizer } from '@farskip/models';
import type { Tensor } from '@farskip/tensor';

export interface ModelSource {
  /** what the user gave, resolved */
  path: string;
  kind: 'huggingface' | 'trainer-run' | 'trainer-checkpoint';
  /** the directory holding config.json and the weights (the step directory for a checkpoint) */
  modelDir: string;
  /** config.json to use */
  configFile: string;
  tokenizerDir: string | null;
}

/** Works out what `path` is (see the header); errors name the path and what would have been accepted. */
export function resolveModelSource(path: string, tokenizer?: string): ModelSource {
  const p = resolve(path);
  if (!existsSync(p)) throw new Error(`--model ${path}: no such directory; give a Hugging Face model directory (config.json + *.safetensors), a trainer run directory or one of its checkpoints/step-N`);
  let src: ModelSource;
  if (existsSync(join(p, 'config.json')) && hasWeights(p)) {
    src = { path: p, kind: 'huggingface', modelDir: p, configFile: join(p, 'config.json'), tokenizerDir: null };
  } else if (existsSync(join(p, 'model', 'config.json'))) {
    src = { path: p, kind: 'trainer-run', modelDir: join(p, 'model'), configFile: join(p, 'model', 'config.json'), tokenizerDir: null };
  } else if (existsSync(join(p, 'trainer.json')) && existsSync(join(p, 'model.safetensors'))) {
    const cfg = join(dirname(p), 'config.json');
    if (!existsSync(cfg)) throw new Error(`--model ${path}: a trainer checkpoint without ${cfg} (written by trainers since the inference runner); load the run's final model directory instead`);
    src = { path: p, kind: 'trainer-checkpoint', modelDir: p, configFile: cfg, tokenizerDir: null };
  } else if (existsSync(p) && readdirSync(p).some((n) => /^rank-\d+$/.test(n))) {
    throw new Error(`--model ${path}: checkpoints of a multi-rank training run hold each rank's shards; load the run's final model (${join(dirname(p), 'model')}), which the trainer gathers into one checkpoint`);
  } else {
    throw new Error(`--model ${path}: neither a Hugging Face directory (config.json + *.safetensors), a trainer run (model/config.json) nor a trainer checkpoint (trainer.json + model.safetensors)`);
  }
  src.tokenizerDir = findTokenizer(src, tokenizer);
  return src;
}

function hasWeights(dir: string): boolean {
  return readdirSync(dir).some((n) => n.endsWith('.safetensors') || n === 'model.safetensors.index.json');
}

function findTokenizer(src: ModelSource, given?: string): string | null {
  if (given) {
    if (!existsSync(join(given, 'tokenizer.json'))) throw new Error(`--tokenizer ${given}: no tokenizer.json there`);
    return resolve(given);
  }
  const run = src.kind === 'trainer-run' ? src.path : src.kind === 'trainer-checkpoint' ? dirname(dirname(src.path)) : dirname(src.path);
  for (const d of [src.modelDir, join(run, 'tokenizer')]) if (existsSync(join(d, 'tokenizer.json'))) return d;
  return null;
}

export interface LoadedModel {
  model: CausalLM;
  tokenizer: Tokenizer | null;
  source: ModelSource;
  /** token ids that end a completion: the tokenizer's eos and generation_config.json's eos_token_id */
  stopTokens: number[];
  /** the id clients use (`model` in requests): the path given */
  id: string;
}

/** Loads the model (this rank's shards when ctx splits it) and its tokenizer. */
export function loadForInference(path: string, options: { tokenizer?: string; ctx?: ParallelContext; id?: string } = {}): LoadedModel {
  const source = resolveModelSource(path, options.tokenizer);
  const ctx = options.ctx;
  // replicated tokens on every rank: attention heads and experts split over the tensor-parallel group
  const form: MoEForm | undefined = ctx && ctx.mesh.tp > 1 ? 'all-reduce' : undefined;
  let model: CausalLM;
  if (source.kind === 'trainer-checkpoint') {
    model = fromTrainerCheckpoint(source, ctx, form);
  } else {
    model = loadModel(source.modelDir, { ctx, form });
  }
  const tokenizer = source.tokenizerDir ? Tokenizer.fromDirSync(source.tokenizerDir) : null;
  const stop = new Set<number>();
  if (tokenizer?.eosId !== null && tokenizer?.eosId !== undefined) stop.add(tokenizer.eosId);
  const gen = join(source.kind === 'trainer-checkpoint' ? dirname(source.configFile) : source.modelDir, 'generation_config.json');
  if (existsSync(gen)) {
    const eos = (JSON.parse(readFileSync(gen, 'utf8')) as { eos_token_id?: number | number[] }).eos_token_id;
    for (const t of Array.isArray(eos) ? eos : eos === undefined ? [] : [eos]) stop.add(t);
  }
  return { model, tokenizer, source, stopTokens: [...stop], id: options.id ?? path };
}

/**
 * A trainer step checkpoint holds the parameters under the model's own names (stacked experts): they fill a
 * single-rank model of the config, whose checkpoint tensors (stateDict, Hugging Face names) then build the model
 * on this rank's mesh the usual way, so sharding goes through the one loader.
 */
function fromTrainerCheckpoint(source: ModelSource, ctx: ParallelContext | undefined, form: MoEForm | undefined): CausalLM {
  const spec = parseConfig(JSON.parse(readFileSync(source.configFile, 'utf8')) as Record<string, unknown>, source.configFile);
  const whole = CausalLM.random(spec, 0);
  const file = SafetensorsFile.open(join(source.modelDir, 'model.safetensors'));
  try {
    for (const [name, p] of whole.parameters()) {
      if (!file.has(name)) throw new Error(`${source.modelDir}: the checkpoint lacks parameter '${name}' of the model in ${source.configFile}`);
      const t = file.read(name, { as: 'f32' });
      if (t.numel !== p.numel) throw new Error(`${source.modelDir}: parameter '${name}' has ${t.numel} elements; the model in ${source.configFile} has ${p.numel}`);
      (p.data as Float32Array).set(t.data as Float32Array);
    }
  } finally {
    file.close();
  }
  const state = whole.stateDict();
  const model = CausalLM.fromSource(spec, { keys: () => [...state.keys()], get: (n: string): Tensor => state.get(n)! }, { ctx, form }, source.modelDir);
  return model;
}
