// Loading and saving Hugging Face model directories: config.json + model.safetensors (or sharded with
// model.safetensors.index.json). Saving is atomic per file (temp + rename) and records FarSkip options.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from './config.js';
import { configWithFarSkip } from './convert.js';
import { CausalLM } from './model.js';
import type { LoadOptions } from './model.js';
import { SafetensorsCheckpoint, writeShardedCheckpoint } from './safetensors/index.js';
import type { Tensor } from '@farskip/tensor';

/** Reads `dir`/config.json and the safetensors weights; every tensor is read once, lazily, as f32. */
export function loadModel(dir: string, options: LoadOptions = {}): CausalLM {
  const cfgPath = join(dir, 'config.json');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${cfgPath}: cannot read the model config (${(e as Error).message}); a Hugging Face model directory has config.json next to its *.safetensors`);
  }
  const spec = parseConfig(raw, cfgPath);
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    return CausalLM.fromSource(spec, { keys: () => ckpt.keys(), get: (n) => ckpt.read(n, { as: 'f32' }) }, options, dir);
  } finally {
    ckpt.close();
  }
}

export interface SaveOptions {
  /** split the weights into files of at most this many bytes (model.safetensors.index.json) */
  maxShardBytes?: number;
  /** store f32 weights as BF16 (half the size; what most published checkpoints use) */
  bf16?: boolean;
}

/** Writes config.json (with the model's FarSkip options) and its weights (sharded above maxShardBytes). */
export function saveModel(model: CausalLM, dir: string, options: SaveOptions = {}): void {
  writeModel(model, model.stateDict(), dir, options);
}

/**
 * saveModel for a model trained on several ranks: every rank of the model's world calls it; tensor- and
 * expert-parallel shards are gathered (CausalLM.gatherStateDict) and world rank 0 writes the one checkpoint
 * a single-rank model of the same weights would write. Replicas (data parallel) are identical: rank 0's is kept.
 */
export async function saveModelFromRanks(model: CausalLM, dir: string, options: SaveOptions = {}): Promise<void> {
  const state = model.sharded ? await model.gatherStateDict() : null;
  if (model.ctx.world.rank !== 0) return;
  writeModel(model, state ?? model.stateDict(), dir, options);
}

function writeModel(model: CausalLM, state: Map<string, Tensor>, dir: string, options: SaveOptions): void {
  mkdirSync(dir, { recursive: true });
  writeShardedCheckpoint(dir, state, { maxShardBytes: options.maxShardBytes, f32As: options.bf16 ? 'BF16' : 'F32', metadata: { format: 'pt' } });
  const cfg = configWithFarSkip(model.spec.raw, model.farskip);
  const tmp = join(dir, `.config.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n');
  renameSync(tmp, join(dir, 'config.json'));
}
