// The training loop shared by FCSD distillation, the SFT baseline and pretraining:
//   per optimizer step, `accumulation` micro-batches: [teacher forward, frozen, no grad] -> student forward
//   (FarSkip connectivity, overlapped schedule) -> loss / accumulation -> backward (collectives overlapped by the
//   engine) -> data-parallel gradient buckets; then global-norm clipping, cosine LR with warm-up, AdamW (fused).
// Checkpoints every N steps (atomic, last K kept) carry parameters, optimizer moments and the data cursor, so a
// resumed run reproduces the uninterrupted run's losses exactly. A non-finite loss or gradient norm stops training
// with an error before the optimizer touches the weights; the last checkpoint stays as it was.
import { join } from 'node:path';
import { AdamW, add, scale } from '@farskip/kernels';
import { dataParallel, tracedBackward } from '@farskip/layers';
import type { DataParallel, ParallelContext, Tracer } from '@farskip/layers';
import type { CausalLM } from '@farskip/models';
import { noGrad, Tensor } from '@farskip/tensor';
import { listCheckpoints, loadCheckpoint, saveCheckpoint, checkpointName } from './checkpoint.js';
import { clipGradNorm } from './clip.js';
import { EarlyStopping } from './early-stopping.js';
import type { EarlyStoppingOptions } from './early-stopping.js';
import { forwardKl, hiddenL2, sftLoss } from './losses.js';
import { cosineLr } from './schedule.js';

/** A stream of packed batches with a resumable cursor (the data loader). */
export interface BatchSource {
  next(): { inputs: Int32Array; targets: Int32Array; mask?: Float32Array };
  state(): unknown;
  restore(state: unknown): void;
}

export interface TrainConfig {
  /** 'fcsd': KL to the frozen teacher; 'sft' / 'pretrain': cross-entropy on the data */
  objective: 'fcsd' | 'sft' | 'pretrain';
  steps: number;
  batch: number;
  seq: number;
  accumulation?: number;
  lr: number;
  minLr?: number;
  warmupSteps?: number;
  weightDecay?: number;
  betas?: [number, number];
  clip?: number;
  temperature?: number;
  /** FCSD ablation: + coef · hidden-state L2 */
  hiddenL2?: number;
  /** keep embeddings and LM head frozen */
  freezeEmbeddings?: boolean;
  checkpointEvery?: number;
  keepLast?: number;
  evalEvery?: number;
  earlyStopping?: EarlyStoppingOptions;
  schedule?: 'overlapped' | 'reference';
}

export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  ms: number;
  eval?: number;
}

export class TrainingDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

export interface TrainerOptions {
  student: CausalLM;
  teacher?: CausalLM | null;
  data: BatchSource;
  config: TrainConfig;
  ctx?: ParallelContext;
  tracer?: Tracer;
  checkpointDir?: string;
  /** returns the early-stopping metric (e.g. held-out KL or perplexity) */
  evaluate?: () => Promise<number>;
  onStep?: (m: StepMetrics) => void;
}

export class Trainer {
  readonly optimizer: AdamW;
  readonly params: [string, Tensor][];
  step = 0;
  readonly early: EarlyStopping | null;
  private readonly dataParallel: DataParallel;

  constructor(readonly o: TrainerOptions) {
    const c = o.config;
    if (c.objective === 'fcsd' && !o.teacher) throw new Error("Trainer: objective 'fcsd' needs a teacher (the original model, frozen)");
    for (const [k, v] of Object.entries({ steps: c.steps, batch: c.batch, seq: c.seq, accumulation: c.accumulation ?? 1 })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`Trainer: config.${k} = ${v} must be a positive integer`);
    }
    if (c.freezeEmbeddings) {
      o.student.embed.requiresGrad_(false);
      o.student.lmHead?.requiresGrad_(false);
    }
    this.params = o.student.parameters().filter(([, t]) => t.requiresGrad);
    this.optimizer = new AdamW(this.params.map(([, t]) => t), { lr: c.lr, weightDecay: c.weightDecay ?? 0, betas: c.betas });
    const ctx = o.ctx ?? o.student.ctx;
    this.dataParallel = dataParallel(o.student.stack, ctx, { tracer: o.tracer, params: this.params.map(([, t]) => t) });
    this.early = c.earlyStopping ? new EarlyStopping(c.earlyStopping) : null;
  }

  /** One optimizer step over `accumulation` micro-batches. */
  async trainStep(): Promise<StepMetrics> {
    const c = this.o.config;
    const t0 = performance.now();
    const accum = c.accumulation ?? 1;
    const forward = { schedule: c.schedule ?? 'overlapped', tracer: this.o.tracer } as const;
    let lossSum = 0;
    for (let a = 0; a < accum; a++) {
      const b = this.o.data.next();
      const ids = new Tensor(b.inputs, [c.batch, c.seq], { dtype: 'i32' });
      let loss: Tensor;
      if (c.objective === 'fcsd') {
        const teacher = this.o.teacher!;
        const th = await noGrad(() => teacher.hidden(ids, { farskip: null }));
        const tLogits = noGrad(() => teacher.logitsOf(th));
        const sh = await this.o.student.hidden(ids, forward);
        loss = forwardKl(this.o.student.logitsOf(sh), tLogits, { temperature: c.temperature, mask: b.mask });
        if (c.hiddenL2) loss = add(loss, hiddenL2(sh, th, c.hiddenL2));
      } else {
        loss = sftLoss(await this.o.student.forward(ids, forward), b.targets);
      }
      const value = loss.item();
      if (!Number.isFinite(value)) {
        this.optimizer.zeroGrad(); // earlier micro-batches' gradients must not leak into a retried step
        throw new TrainingDivergedError(`training diverged: the loss is ${value} at step ${this.step + 1} (micro-batch ${a + 1}); ` +
          `the weights were not updated; the last good checkpoint${this.o.checkpointDir ? ` in ${this.o.checkpointDir}` : ''} is intact — lower lr or enable clipping`);
      }
      lossSum += value;
      await tracedBackward(accum > 1 ? scale(loss, 1 / accum) : loss, this.o.tracer);
    }
    await this.dataParallel.finish();
    const gradNorm = await clipGradNorm(this.params.map(([, t]) => t), c.clip ?? 0);
    if (!Number.isFinite(gradNorm)) {
      // a finite loss can still back-propagate inf/NaN (overflow); AdamW would write it into every weight and moment
      this.optimizer.zeroGrad();
      throw new TrainingDivergedError(`training diverged: the gradient norm is ${gradNorm} at step ${this.step + 1} (loss ${lossSum / accum}); ` +
        `the weights were not updated; the last good checkpoint${this.o.checkpointDir ? ` in ${this.o.checkpointDir}` : ''} is intact — lower lr or enable clipping`);
    }
    const lr = cosineLr(this.step, { lr: c.lr, minLr: c.minLr, warmupSteps: c.warmupSteps ?? 0, totalSteps: c.steps });
    this.optimizer.lr = lr;
    this.optimizer.step();
    this.optimizer.zeroGrad();
    this.step++;
    // every rank of the dense group (ep × dp) trained on its own tokens: report their mean loss and their total
    // tokens, the numbers a single-process run of the global batch would show (tp ranks share their tokens)
    const dense = (this.o.ctx ?? this.o.student.ctx).dense;
    const loss = new Float64Array([lossSum / accum]);
    if (dense.size > 1) await dense.allReduce(loss, 'avg').wait();
    return { step: this.step, loss: loss[0]!, lr, gradNorm, tokens: c.batch * c.seq * accum * dense.size, ms: performance.now() - t0 };
  }

  /** Trains to config.steps (or an early stop); resumes from the newest checkpoint when `resume`. */
  async train(options: { resume?: boolean } = {}): Promise<{ metrics: StepMetrics[]; stoppedEarly: boolean }> {
    const c = this.o.config;
    if (options.resume) this.resume();
    const metrics: StepMetrics[] = [];
    let stoppedEarly = false;
    while (this.step < c.steps) {
      const m = await this.trainStep();
      if (c.evalEvery && this.o.evaluate && this.step % c.evalEvery === 0) {
        m.eval = await this.o.evaluate();
        if (this.early && this.early.update(m.eval).stop) stoppedEarly = true;
      }
      metrics.push(m);
      this.o.onStep?.(m);
      if (this.o.checkpointDir && c.checkpointEvery && (this.step % c.checkpointEvery === 0 || this.step === c.steps || stoppedEarly)) this.save();
      if (stoppedEarly) break;
    }
    return { metrics, stoppedEarly };
  }

  /** Writes a checkpoint of the current step (rank-local file names when several ranks train). */
  save(): string {
    if (!this.o.checkpointDir) throw new Error('Trainer.save: no checkpointDir configured');
    const state = { step: this.step, data: this.o.data.state(), earlyStopping: this.early?.state(), config: this.o.config };
    return saveCheckpoint(this.rankDir(), this.params, this.optimizer, state, this.o.config.keepLast ?? 3);
  }

  /** Restores the newest checkpoint, if any; returns its step (0 when starting fresh). */
  resume(): number {
    const dir = this.rankDir();
    const steps = listCheckpoints(dir);
    if (!steps.length) return 0;
    const st = loadCheckpoint(join(dir, checkpointName(steps[steps.length - 1]!)), this.params, this.optimizer);
    this.step = st.step;
    this.o.data.restore(st.data);
    if (this.early && st.earlyStopping) this.early.restore(st.earlyStopping);
    return this.step;
  }

  private rankDir(): string {
    const world = (this.o.ctx ?? this.o.student.ctx).world;
    return world.size > 1 ? join(this.o.checkpointDir!, `rank-${world.rank}`) : this.o.checkpointDir!;
  }
}
