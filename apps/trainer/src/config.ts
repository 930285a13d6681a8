// Trainer configuration: a JSON or YAML file, then command-line flags (--key value, dotted keys for nested
// fields) on top, validated with zod — an unknown key or a wrong type is an error that names it.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const farskip = z.object({
  mode: z.enum(['full', 'attn-only', 'mlp-only', 'original']).optional(),
  layers: z.tuple([z.number().int(), z.number().int()]).optional(),
  lastFraction: z.number().gt(0).lte(1).optional(),
}).strict();

export const ConfigSchema = z.object({
  /** model directory (HF layout) to start from; pretrain creates one when absent */
  model: z.string().optional(),
  /** where checkpoints, metrics, plots and the final model go */
  out: z.string().default('runs/farskip'),
  /** dataset directory (built by the trainer from `corpus` when absent) */
  data: z.string().optional(),
  /** 'sotu' (embedded default), a directory of .txt files, or a .jsonl file */
  corpus: z.string().default('sotu'),
  textField: z.string().default('text'),
  vocabSize: z.number().int().min(300).default(4096),
  heldOutFraction: z.number().gt(0).lt(1).default(0.05),
  seed: z.number().int().default(0),
  /** architecture of a model pretrained from scratch */
  arch: z.object({
    family: z.enum(['deepseek_v2', 'qwen3_moe', 'mixtral']).default('deepseek_v2'),
    hidden: z.number().int().positive().default(128),
    layers: z.number().int().positive().default(4),
    heads: z.number().int().positive().default(4),
    experts: z.number().int().positive().default(8),
    topK: z.number().int().positive().default(2),
    expertHidden: z.number().int().positive().default(128),
    sharedExperts: z.number().int().min(0).default(1),
    denseLayers: z.number().int().min(0).default(1),
  }).strict().prefault({}),
  steps: z.number().int().positive().default(200),
  batch: z.number().int().positive().default(8),
  /** batch size in tokens per optimizer step (sets batch = batchTokens / (seq · accumulation)) */
  batchTokens: z.number().int().positive().optional(),
  seq: z.number().int().positive().default(128),
  accumulation: z.number().int().positive().default(1),
  lr: z.number().positive().default(1e-3),
  minLr: z.number().min(0).default(1e-4),
  warmupSteps: z.number().int().min(0).default(20),
  weightDecay: z.number().min(0).default(0.01),
  clip: z.number().min(0).default(1),
  temperature: z.number().positive().default(1),
  hiddenL2: z.number().min(0).default(0),
  freezeEmbeddings: z.boolean().default(false),
  farskip: farskip.default({ mode: 'full' }),
  checkpointEvery: z.number().int().positive().default(50),
  keepLast: z.number().int().positive().default(3),
  evalEvery: z.number().int().positive().default(50),
  patience: z.number().int().positive().optional(),
  minDelta: z.number().min(0).default(0),
  resume: z.boolean().default(false),
  /** ranks in all (threads backend through the launcher; one core each): tp × ep × dp, dp taking the rest */
  ranks: z.number().int().positive().default(1),
  /** tensor-parallel size: attention heads and shared-expert / dense-MLP columns split across tp ranks */
  tp: z.number().int().positive().default(1),
  /** expert-parallel size: routed experts split across ep ranks, tokens exchanged by all-to-all */
  ep: z.number().int().positive().default(1),
  /** train in bf16: bf16 weights, activations and gradients (computed in f32), f32 master weights in AdamW */
  bf16: z.boolean().default(false),
}).strict();

export type TrainerConfig = z.infer<typeof ConfigSchema>;

/** File (optional) + flags -> validated config. */
export function loadConfig(file: string | undefined, flags: Record<string, unknown>): TrainerConfig {
  let base: Record<string, unknown> = {};
  if (file) {
    const text = readFileSync(file, 'utf8');
    try {
      base = (/\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text)) ?? {};
    } catch (e) {
      throw new Error(`${file}: cannot parse the config (${(e as Error).message})`);
    }
    if (typeof base !== 'object' || Array.isArray(base)) throw new Error(`${file}: the config must be an object of settings`);
  }
  const merged = structuredClone(base);
  for (const [k, v] of Object.entries(flags)) setPath(merged, k, v);
  const r = ConfigSchema.safeParse(merged);
  if (r.success && r.data.batchTokens !== undefined) {
    const per = r.data.seq * r.data.accumulation;
    if (r.data.batchTokens % per !== 0) {
      throw new Error(`invalid trainer config: 'batchTokens' ${r.data.batchTokens} is not a multiple of seq × accumulation = ${per}`);
    }
    r.data.batch = r.data.batchTokens / per;
  }
  if (r.success && r.data.ranks % (r.data.tp * r.data.ep) !== 0) {
    throw new Error(`invalid trainer config: 'ranks' ${r.data.ranks} is not a multiple of tp × ep = ${r.data.tp * r.data.ep}; ` +
      'the mesh is tp × ep × dp ranks (e.g. --ranks 4 --tp 2 --ep 2, or --ranks 4 --ep 2 for dp 2)');
  }
  if (!r.success) {
    const msgs = r.error.issues.map((i) => {
      const path = i.path.join('.') || '(root)';
      return i.code === 'unrecognized_keys' ? `unknown key(s) ${(i as { keys: string[] }).keys.map((k) => `'${[...i.path, k].join('.')}'`).join(', ')}` : `'${path}': ${i.message}`;
    });
    throw new Error(`invalid trainer config${file ? ` (${file} + flags)` : ''}: ${msgs.join('; ')}`);
  }
  return r.data;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]!] = value;
}

/** `--key value` / `--flag` / `--no-flag` pairs -> values (numbers, booleans and JSON parsed). */
export function parseFlags(argv: string[]): { positional: string[]; flags: Record<string, unknown> } {
  const positional: string[] = [];
  const flags: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) { positional.push(a); continue; }
    const eq = a.indexOf('=');
    let key = eq > 0 ? a.slice(2, eq) : a.slice(2);
    let raw: string | undefined = eq > 0 ? a.slice(eq + 1) : undefined;
    if (raw === undefined) {
      if (key.startsWith('no-')) { flags[key.slice(3)] = false; continue; }
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) { flags[key] = true; continue; }
      raw = next;
      i++;
    }
    key = key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    flags[key] = coerce(raw);
  }
  return { positional, flags };
}

function coerce(raw: string): unknown {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  if (/^-?\d+(\.\d+)?(e-?\d+)?$/i.test(raw)) return Number(raw);
  if (/^[[{]/.test(raw)) { try { return JSON.parse(raw); } catch { /* a plain string */ } }
  return raw;
}
