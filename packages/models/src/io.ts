// Loading and saving Hugging Face model directories: config.json + model.safetensors (or sharded with
// model.safetensors.index.json). Saving is atomic per file (temp + rename) and records FarSkip options.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from './config.js';
import { configWithFarSkip } from './convert.js';
import { CausalLM } from './model.js';
import type { LoadOptions } from './model.js';
import { SafetensorsCheckpoint, writeShardedCheckpoint } from './safetensors/index.js';

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

/** Writes config.json (with the model's FarSkip options) and its weights (sharded above maxShardBytes). */
export function saveModel(model: CausalLM, dir: string, options: { maxShardBytes?: number; bf16?: boolean } = {}): void {
  mkdirSync(dir, { recursive: true });
  writeShardedCheckpoint(dir, model.stateDict(), { maxShardBytes: options.maxShardBytes, f32As: options.bf16 ? 'BF16' : 'F32', metadata: { format: 'pt' } });
  const cfg = configWithFarSkip(model.spec.raw, model.farskip);
  const tmp = join(dir, `.config.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n');
  renameSync(tmp, join(dir, 'config.json'));
}
