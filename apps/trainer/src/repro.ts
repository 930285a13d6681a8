// `farskip-train repro [--quick] [--out runs/repro]`: the paper's accuracy tables in miniature on the embedded
// corpus. Stages, each cached in <out>/stages.json once complete (a rerun continues where the last one stopped; a
// stage whose settings changed runs again, with what depends on it — stage-cache.ts):
//   data                  byte-level BPE tokenizer + tokenized dataset of the State of the Union addresses
//   unigram               the held-out perplexity of a unigram model of the training split (the bar to clear)
//   for each family (a DeepSeek-style MoE: dense first layer, shared expert; a Qwen3-style one: no shared expert)
//     pretrain            a new model of the family
//     fcsd                FarSkip self-distillation of its full conversion (KL to the frozen original)
//     sft                 the baseline: the same conversion trained on cross-entropy, same token budget
//     fcsd-last50         self-distillation with only the last 50 % of the layers converted
//     eval                original, converted-untrained (full and last 50 %), and the three trained students
//     systems             training step and prefill at EP = 2, standard-blocking vs FarSkip-overlapped, with and
//                         without link emulation, overlap fractions (systems.ts)
//     systems-scale       the same measurement on a larger model of the family (random weights, profile.systemsScale)
//   report                results.md (+ results.json): Table 1 (perplexity, multiple choice), Table 2 (KL,
//                         top-1 agreement, the ablations) and Table 3 (systems) per family, and the curves
// Training and evaluation stages run `lanes` at a time (default: 2 on a machine with 2 or more cores), each in a
// child process (repro-jobs.ts says why); the systems stages run after them, alone, on a quiet machine.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { TokenDataset } from '@farskip/distill';
import type { ReportRow } from '@farskip/eval';
import type { FarSkipOptions } from '@farskip/layers';
import { CausalLM, parseConfig, saveModel } from '@farskip/models';
import { newModelConfig, prepareData, writeFileAtomic } from './commands.js';
import { loadConfig } from './config.js';
import type { TrainerConfig } from './config.js';
import { StageBars } from './progress.js';
import { runInChild } from './repro-jobs.js';
import type { StageJob, TrainResult } from './repro-jobs.js';
import { writeResults } from './repro-report.js';
import { StageCache } from './stage-cache.js';
import type { FamilyResult, RunTiming } from './repro-report.js';
import { measureSystems } from './systems.js';
import type { SystemsResult } from './systems.js';

export { claims } from './repro-report.js';

export interface ReproProfile {
  name: 'quick' | 'full';
  vocabSize: number;
  seq: number;
  batch: number;
  pretrainSteps: number;
  pretrainLr: number;
  distillSteps: number;
  distillLr: number;
  arch: { hidden: number; layers: number; heads: number; experts: number; topK: number; expertHidden: number };
  /** multiple-choice examples per shipped task, held-out tokens scored */
  taskLimit: number;
  evalTokens: number;
  /** steps between held-out evaluations during training (the curves; the tables score the final models) */
  evalEvery: number;
  /** Table 3 again on a larger model of each family with random weights (null: none) */
  systemsScale: SystemsScale | null;
}

/** A model of the family for the systems measurements only, and the tokens per rank it runs. */
export interface SystemsScale { hidden: number; layers: number; heads: number; experts: number; topK: number; expertHidden: number; batch: number; seq: number; reps: number }

export const PROFILES: Record<'quick' | 'full', ReproProfile> = {
  quick: {
    name: 'quick', vocabSize: 512, seq: 64, batch: 8, pretrainSteps: 600, pretrainLr: 3e-3, distillSteps: 120, distillLr: 2e-3,
    arch: { hidden: 64, layers: 4, heads: 4, experts: 4, topK: 2, expertHidden: 64 }, taskLimit: 24, evalTokens: 16 * 64 + 1, evalEvery: 100,
    systemsScale: { hidden: 128, layers: 2, heads: 4, experts: 8, topK: 2, expertHidden: 128, batch: 2, seq: 64, reps: 1 },
  },
  full: {
    name: 'full', vocabSize: 4096, seq: 128, batch: 16, pretrainSteps: 1200, pretrainLr: 2e-3, distillSteps: 900, distillLr: 1.5e-3,
    arch: { hidden: 128, layers: 4, heads: 4, experts: 8, topK: 2, expertHidden: 128 }, taskLimit: 100, evalTokens: 64 * 128 + 1, evalEvery: 100,
    // as packages/layers/bench/moe-stack.mjs: where a token's attention and shared expert outweigh its all-to-all share
    systemsScale: { hidden: 512, layers: 8, heads: 8, experts: 16, topK: 2, expertHidden: 256, batch: 4, seq: 256, reps: 3 },
  },
};

export const FAMILIES = [
  { key: 'deepseek', family: 'deepseek_v2', label: 'DeepSeek-style (dense first layer, shared expert, top-k softmax)', sharedExperts: 1, denseLayers: 1 },
  { key: 'qwen3', family: 'qwen3_moe', label: 'Qwen3-style (no shared expert)', sharedExperts: 0, denseLayers: 0 },
] as const;


export interface ReproResult {
  profile: ReproProfile;
  unigramPerplexity: number;
  families: FamilyResult[];
  resultsFile: string;
}

export interface ReproOptions {
  quick?: boolean;
  out?: string;
  docs?: string;
  /** training / evaluation stages run at once (default: 2 with 2 or more cores, else 1) */
  lanes?: number;
  log?: (s: string) => void;
}

/** A stage of the concurrent part: its name, the stages it needs, and how to run it (in a child process). */
interface LaneStage { name: string; needs: string[]; job: (done: Map<string, unknown>) => StageJob; steps: number | null }

/** Runs (or continues) the pipeline under `out`; `log` gets one line per stage. */
export async function runRepro(options: ReproOptions = {}): Promise<ReproResult> {
  const profile = PROFILES[options.quick ? 'quick' : 'full'];
  const out = options.out ?? join('runs', `repro-${profile.name}`);
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const lanes = Math.max(1, Math.floor(options.lanes ?? Math.min(2, cores)));
  const threads = Math.max(1, Math.floor(cores / lanes));
  const bars = new StageBars(options.log ?? console.log);
  const log = (s: string): void => bars.log(s);
  mkdirSync(out, { recursive: true });
  const cache = new StageCache(join(out, 'stages.json'));
  const wallFile = join(out, 'wall.json');
  const wallSeconds: number[] = existsSync(wallFile) ? (JSON.parse(readFileSync(wallFile, 'utf8')) as number[]) : [];
  const perFamily = 6 + (profile.systemsScale ? 1 : 0);
  const total = 3 + FAMILIES.length * perFamily; // data, unigram, per family, report
  let index = 0, ran = 0;
  const t0 = performance.now();
  const stage = async <T>(name: string, fn: () => Promise<T>, settings: unknown = null): Promise<T> => {
    const at = ++index;
    const key = StageCache.key(settings);
    const cached = cache.lookup(name, key);
    if (cached && cached !== 'stale') { log(`[${at}/${total}] ${name}: done earlier (${cached.seconds.toFixed(0)} s), skipped`); return cached.result as T; }
    log(`[${at}/${total}] ${name}${cached === 'stale' ? ': cached under other settings, running again' : ''} ...`);
    const start = performance.now();
    const result = await fn();
    const seconds = (performance.now() - start) / 1000;
    cache.put(name, key, seconds, result);
    ran++;
    log(`${name}: done in ${seconds.toFixed(0)} s`);
    return result;
  };

  const config = (extra: Record<string, unknown>): TrainerConfig => loadConfig(undefined, {
    vocabSize: profile.vocabSize, seq: profile.seq, batch: profile.batch, seed: 0, heldOutFraction: 0.05, out: join(out, 'data-run'), ...extra,
  });
  const dataDir = await stage('data', () => prepareData(config({}), log), { vocabSize: profile.vocabSize, seq: profile.seq });
  const unigram = await stage('unigram', async () => unigramPerplexity(dataDir, profile.evalTokens), profile.evalTokens);

  // training and evaluation: a stage graph, `lanes` stages at a time
  const lane: LaneStage[] = [];
  const full: FarSkipOptions = { mode: 'full' };
  const last50: FarSkipOptions = { mode: 'full', lastFraction: 0.5 };
  for (const f of FAMILIES) {
    const arch = familyArch(f, profile.arch);
    const cfg = (dir: string, extra: Record<string, unknown>): TrainerConfig =>
      config({ ...arch, data: dataDir, out: join(out, f.key, dir), warmupSteps: 10, evalEvery: profile.evalEvery, checkpointEvery: 1000, ...extra });
    const base = `${f.key}: pretrain`;
    const student = (done: Map<string, unknown>) => ({ model: (done.get(base) as TrainResult).modelDir, steps: profile.distillSteps, lr: profile.distillLr });
    lane.push(
      { name: base, needs: [], steps: profile.pretrainSteps, job: () => ({ kind: 'train', command: 'pretrain', cfg: cfg('base', { steps: profile.pretrainSteps, lr: profile.pretrainLr }) }) },
      { name: `${f.key}: fcsd`, needs: [base], steps: profile.distillSteps, job: (d) => ({ kind: 'train', command: 'distill', cfg: cfg('fcsd', { ...student(d), farskip: full }) }) },
      { name: `${f.key}: sft`, needs: [base], steps: profile.distillSteps, job: (d) => ({ kind: 'train', command: 'sft', cfg: cfg('sft', { ...student(d), farskip: full }) }) },
      { name: `${f.key}: fcsd-last50`, needs: [base], steps: profile.distillSteps, job: (d) => ({ kind: 'train', command: 'distill', cfg: cfg('fcsd-last50', { ...student(d), farskip: last50 }) }) },
    );
    const trained = ['fcsd', 'sft', 'fcsd-last50'].map((k) => `${f.key}: ${k}`);
    lane.push({ name: `${f.key}: eval`, needs: [base, ...trained], steps: null, job: (d) => {
      const dir = (n: string): string => (d.get(n) as TrainResult).modelDir;
      return { kind: 'eval', cfg: config({ data: dataDir }), models: { base: dir(base), fcsd: dir(trained[0]!), sft: dir(trained[1]!), last50: dir(trained[2]!) },
        taskLimit: profile.taskLimit, maxTokens: profile.evalTokens };
    } });
  }
  // longest first among the ready ones: pretraining, then the family's students (FCSD-last50 converts fewer layers
  // but costs as much), then the evaluations
  const done = await runLanes(lane, lanes, (s, signal, sofar) => {
    const job = s.job(sofar);
    return stage(s.name, () => {
      const bar = s.steps ? bars.start(s.name, s.steps) : null;
      return runInChild(job, { threads, signal, log, onStep: (m) => bar?.update(m) }).finally(() => bar?.stop());
    }, { job, after: s.needs.map((n) => cache.keyOf(n)) }); // a rerun upstream stage invalidates this one
  }, log).finally(() => bars.stop());

  // the systems stages: alone, so that nothing else competes for the two cores they time
  const families: FamilyResult[] = [];
  for (const f of FAMILIES) {
    const base = done.get(`${f.key}: pretrain`) as TrainResult;
    const systems = await stage(`${f.key}: systems`, () => measureSystems(base.modelDir, { batch: profile.batch, seq: profile.seq }),
      [base.modelDir, profile.batch, profile.seq, cache.keyOf(`${f.key}: pretrain`)]);
    const sc = profile.systemsScale;
    const systemsScale = sc ? await stage(`${f.key}: systems-scale`, async () => {
      const dir = join(out, f.key, 'systems-model');
      const cfg = config({ ...familyArch(f, sc), seq: sc.seq });
      const vocab = TokenDataset.open(dataDir);
      const V = vocab.index.vocabSize;
      vocab.close();
      saveModel(CausalLM.random(parseConfig(newModelConfig(cfg, V), `${f.key} systems-scale model`), 1), dir);
      return { ...(await measureSystems(dir, { batch: sc.batch, seq: sc.seq, reps: sc.reps })), arch: sc };
    }, sc) : null;
    const c = (k: string): TrainResult['curve'] => (done.get(`${f.key}: ${k}`) as TrainResult).curve;
    families.push({ key: f.key, label: f.label, rows: done.get(`${f.key}: eval`) as ReportRow[], systems, systemsScale,
      curves: { pretrain: c('pretrain'), fcsd: c('fcsd'), sft: c('sft'), 'fcsd-last50': c('fcsd-last50') } });
  }
  if (ran > 0) {
    wallSeconds.push((performance.now() - t0) / 1000);
    writeFileAtomic(wallFile, JSON.stringify(wallSeconds) + '\n');
  }
  index++;
  log(`[${index}/${total}] report ...`);
  const timing: RunTiming = { stages: Object.fromEntries(Object.entries(cache.records).map(([k, v]) => [k, { seconds: v.seconds }])), wallSeconds, lanes };
  const resultsFile = await writeResults(options.docs ?? out, profile, unigram, families, timing);
  return { profile, unigramPerplexity: unigram, families, resultsFile };
}

/** The trainer's arch.* flags for a model of family `f` with the sizes of `a`. */
function familyArch(f: (typeof FAMILIES)[number], a: ReproProfile['arch']): Record<string, unknown> {
  return { 'arch.family': f.family, 'arch.sharedExperts': f.sharedExperts, 'arch.denseLayers': f.denseLayers,
    ...Object.fromEntries(Object.entries(a).filter(([k]) => k in PROFILES.full.arch).map(([k, v]) => [`arch.${k}`, v])) };
}

/**
 * Runs the stage graph `lanes` at a time: whenever a lane is free, the first stage (in list order) whose needs are
 * done starts. Resolves with every stage's result by name; the first failure stops the others and rejects.
 */
async function runLanes(list: LaneStage[], lanes: number, run: (s: LaneStage, signal: AbortSignal, done: Map<string, unknown>) => Promise<unknown>,
  log: (s: string) => void): Promise<Map<string, unknown>> {
  const done = new Map<string, unknown>();
  const pending = [...list];
  const running = new Map<string, Promise<void>>();
  const abort = new AbortController();
  let failure: Error | null = null;
  while (pending.length || running.size) {
    while (!failure && running.size < lanes) {
      const i = pending.findIndex((s) => s.needs.every((n) => done.has(n)));
      if (i < 0) break;
      const s = pending.splice(i, 1)[0]!;
      running.set(s.name, run(s, abort.signal, done).then((r) => { done.set(s.name, r); }, (e: Error) => {
        if (!failure) { failure = new Error(`stage '${s.name}' failed: ${e.message}`); abort.abort(); }
      }).finally(() => { running.delete(s.name); }));
    }
    if (!running.size) {
      if (failure) break;
      throw new Error(`repro stage graph: ${pending.map((s) => s.name).join(', ')} wait on stages that never ran`);
    }
    await Promise.race(running.values());
  }
  if (failure) { log(`stopped: ${(failure as Error).message.split('\n')[0]}`); throw failure; }
  return done;
}
/**
 * Perplexity of the add-one-smoothed unigram distribution of the training split on the first `n` held-out
 * tokens: a model that ignores context entirely. A pretrained model must land clearly below it.
 */
export function unigramPerplexity(dataDir: string, n: number): number {
  const ds = TokenDataset.open(dataDir);
  try {
    const V = ds.index.vocabSize;
    const counts = new Float64Array(V).fill(1);
    const train = ds.split('train');
    const total = ds.index.splits.train.tokens;
    for (let at = 0; at < total; at += 1 << 20) {
      const chunk = train.read(at, Math.min(1 << 20, total - at));
      for (let i = 0; i < chunk.length; i++) counts[chunk[i]!]! += 1;
    }
    const sum = counts.reduce((a, b) => a + b, 0);
    const held = ds.split('heldout').read(0, Math.min(n, ds.index.splits.heldout.tokens));
    let nll = 0;
    // the first token has no prediction in the model's perplexity either
    for (let i = 1; i < held.length; i++) nll -= Math.log(counts[held[i]!]! / sum);
    return Math.exp(nll / (held.length - 1));
  } finally {
    ds.close();
  }
}
