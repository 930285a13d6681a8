// The repro pipeline's training and evaluation stages, each run in a child process of its own so that two of them
// run side by side on a 2-core machine. Why processes: a training step of these small models is mostly single-
// threaded JS (layout ops, autograd bookkeeping, GC) around GEMMs too small for the native pool to speed up, so one
// run keeps about one core busy; measured on the 2-core VM, one DeepSeek-style pretraining run alone does ~4100
// tok/s (2 kernel threads or 1 alike) and two side by side with one kernel thread each ~2950 tok/s apiece: 1.45×
// the throughput. Results do not depend on the thread count (the kernels split rows, never a reduction), so a
// stage computes the same numbers alone or beside another.
//
//   runInChild(job)  forks repro-stage.js, sends it the job, forwards its steps and log lines, resolves with its
//                    result; rejects with the child's stderr if it exits without one (never hangs on a dead child)
//   runJob(job)      what the child does: runTraining, or scoring the family's six rows
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { StepMetrics } from '@farskip/distill';
import type { ReportRow } from '@farskip/eval';
import type { FarSkipOptions } from '@farskip/layers';
import { loadModel } from '@farskip/models';
import { runTraining } from './commands.js';
import type { TrainerConfig } from './config.js';
import { scoreModels } from './evaluate.js';
import type { StepReport } from './progress.js';

export interface TrainResult { modelDir: string; curve: { step: number; loss: number }[] }

export type StageJob =
  | { kind: 'train'; command: 'pretrain' | 'distill' | 'sft'; cfg: TrainerConfig }
  | { kind: 'eval'; cfg: TrainerConfig; models: { base: string; fcsd: string; sft: string; last50: string }; taskLimit: number; maxTokens: number };

/** child → parent */
export type StageMessage =
  | { type: 'step'; m: StepReport }
  | { type: 'log'; line: string }
  | { type: 'done'; result: unknown }
  | { type: 'error'; message: string; stack?: string };

/** Runs `job` in this process (the child's side). */
export async function runJob(job: StageJob, onStep: (m: StepReport) => void, log: (s: string) => void): Promise<unknown> {
  if (job.kind === 'train') {
    const r = await runTraining(job.command, job.cfg, log, undefined, (m: StepMetrics) => onStep(m));
    return { modelDir: r.modelDir, curve: r.metrics.map((m) => ({ step: m.step, loss: m.loss })) } satisfies TrainResult;
  }
  return scoreFamily(job);
}

/** The family's rows of Tables 1 and 2: the original, its untrained conversions and the three students. */
async function scoreFamily(job: Extract<StageJob, { kind: 'eval' }>): Promise<ReportRow[]> {
  const full: FarSkipOptions = { mode: 'full' };
  const last50: FarSkipOptions = { mode: 'full', lastFraction: 0.5 };
  const original = loadModel(job.models.base);
  const m1 = loadModel(job.models.fcsd), m2 = loadModel(job.models.sft), m3 = loadModel(job.models.last50);
  return scoreModels(job.cfg, original, [
    { name: 'original', model: original, farskip: null },
    { name: 'converted (100 %), untrained', model: original, farskip: full },
    { name: 'converted (last 50 %), untrained', model: original, farskip: last50 },
    { name: 'FCSD (100 %)', model: m1, farskip: m1.farskip },
    { name: 'SFT (100 %)', model: m2, farskip: m2.farskip },
    { name: 'FCSD (last 50 %)', model: m3, farskip: m3.farskip },
  ], { taskLimit: job.taskLimit, maxTokens: job.maxTokens });
}

/** dist/repro-stage.js: beside this module once built, or the built one when this module runs from src (tests). */
function stageScript(): string {
  for (const rel of ['./repro-stage.js', '../dist/repro-stage.js']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('repro-stage.js not found beside the trainer\'s modules: build the trainer first (npm run build)');
}

/**
 * Runs `job` in a child process with `threads` native kernel threads. `signal` kills the child (a sibling stage
 * failed). The child's stdout lines go to `log`; its stderr is kept for the error message.
 */
export function runInChild<T>(job: StageJob, o: { threads: number; onStep: (m: StepReport) => void; log: (s: string) => void; signal?: AbortSignal }): Promise<T> {
  const script = stageScript();
  return new Promise<T>((resolve, reject) => {
    const child = fork(script, [], {
      env: { ...process.env, FARSKIP_NUM_THREADS: String(o.threads) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: [],
    });
    let stderr = '';
    let settled = false;
    const finish = (err: Error | null, value?: T): void => {
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener('abort', abort);
      if (err) reject(err); else resolve(value as T);
    };
    const abort = (): void => { child.kill('SIGKILL'); finish(new Error('stopped: another stage failed')); };
    o.signal?.addEventListener('abort', abort, { once: true });
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { for (const l of s.split('\n')) if (l.trim()) o.log(l); });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-8000); });
    child.on('message', (msg: StageMessage) => {
      if (msg.type === 'step') o.onStep(msg.m);
      else if (msg.type === 'log') o.log(msg.line);
      else if (msg.type === 'done') finish(null, msg.result as T);
      else finish(new Error(`${msg.message}${msg.stack ? `\n${msg.stack}` : ''}`));
    });
    child.on('error', (e) => finish(new Error(`could not start the stage process ${script}: ${e.message}`)));
    // 'close' (not 'exit'): it comes after the IPC channel has delivered everything the child sent
    child.on('close', (code, sig) => finish(new Error(`the stage process exited (${sig ?? `code ${code}`}) before reporting a result${stderr ? `; its stderr:\n${stderr}` : ''}`)));
    child.send(job);
  });
}
