// The training loop on the tiny Mixtral golden checkpoint (vocab 64, hidden 32): FCSD distillation of the
// FarSkip-converted model towards the original, exact resumption from checkpoints, checkpoint retention and
// crash safety, divergence handling, early stopping, gradient accumulation, frozen embeddings, config errors.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { convertToFarSkip, loadModel } from '@farskip/models';
import type { CausalLM } from '@farskip/models';
import { noGrad, Tensor } from '@farskip/tensor';
import { AdamW } from '@farskip/kernels';
import { forwardKl, listCheckpoints, loadCheckpoint, Trainer, TrainingDivergedError } from '../src/index.js';
import type { BatchSource, StepMetrics, TrainConfig, TrainerOptions } from '../src/index.js';

const FIXTURE = fileURLToPath(new URL('../../models/__tests__/fixtures/golden/mixtral', import.meta.url));
const VOCAB = 64;

/** Seeded token ids in [0, 64) (LCG, top 6 bits). */
function tokens(n: number, seed: number): Int32Array {
  let s = seed >>> 0;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 26;
  }
  return out;
}

/** A list of seq+1 token windows served `batch` at a time in order (wrapping), with a resumable cursor. */
class WindowSource implements BatchSource {
  cursor = 0;
  calls = 0;
  constructor(readonly windows: Int32Array[], readonly batch: number, readonly seq: number) {}
  next(): { inputs: Int32Array; targets: Int32Array } {
    this.calls++;
    const inputs = new Int32Array(this.batch * this.seq), targets = new Int32Array(this.batch * this.seq);
    for (let b = 0; b < this.batch; b++) {
      const w = this.windows[(this.cursor + b) % this.windows.length]!;
      inputs.set(w.subarray(0, this.seq), b * this.seq);
      targets.set(w.subarray(1, this.seq + 1), b * this.seq);
    }
    this.cursor += this.batch;
    return { inputs, targets };
  }
  state(): unknown { return { cursor: this.cursor }; }
  restore(state: unknown): void { this.cursor = (state as { cursor: number }).cursor; }
}

const windows = (count: number, seq: number, seed: number): Int32Array[] => Array.from({ length: count }, (_, i) => tokens(seq + 1, seed + i));
const student = (): CausalLM => convertToFarSkip(loadModel(FIXTURE), { mode: 'full' });
const snapshot = (m: CausalLM): Map<string, Float32Array> => new Map(m.parameters().map(([n, t]) => [n, Float32Array.from(t.data as Float32Array)]));
const bitEqual = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'distill-trainer-'));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const FCSD: TrainConfig = { objective: 'fcsd', steps: 10, batch: 2, seq: 8, lr: 3e-3, minLr: 3e-4, warmupSteps: 2, clip: 1, weightDecay: 0.01 };

describe('FCSD distillation of the converted Mixtral towards the original', () => {
  it('lowers the KL on a fixed batch (smoothly) and on a held-out batch', async () => {
    const teacher = loadModel(FIXTURE);
    expect(teacher.farskip).toBeNull();
    const s = student();
    const held = new Tensor(Int32Array.from([...tokens(8, 901), ...tokens(8, 902)]), [2, 8], { dtype: 'i32' });
    const heldKl = async (): Promise<number> => noGrad(async () => forwardKl(await s.forward(held), await teacher.forward(held, { farskip: null })).item());
    const held0 = await heldKl();
    expect(held0).toBeGreaterThan(0.1); // the conversion changed the function
    const trainer = new Trainer({ student: s, teacher, data: new WindowSource(windows(2, 8, 1), 2, 8), config: { ...FCSD, steps: 30 } });
    const { metrics, stoppedEarly } = await trainer.train();
    const held1 = await heldKl();
    const kl = metrics.map((m) => m.loss);
    expect(stoppedEarly).toBe(false);
    expect(metrics.map((m) => m.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(kl.every(Number.isFinite)).toBe(true);
    expect(kl[29]!).toBeLessThan(0.5 * kl[0]!);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(kl.slice(-5))).toBeLessThan(mean(kl.slice(0, 5)));
    expect(kl.slice(1).filter((v, i) => v > kl[i]!).length).toBeLessThanOrEqual(3);
    expect(held1).toBeLessThan(held0);
    // the teacher is frozen: no gradients reached it
    expect(teacher.parameters().every(([, t]) => t.grad === null)).toBe(true);
    // warm-up then cosine: lr rises to 3e-3 at step 2 and decays towards minLr
    expect(metrics[1]!.lr).toBeCloseTo(3e-3, 12);
    expect(metrics[29]!.lr).toBeLessThan(metrics[10]!.lr);
    expect(metrics[29]!.lr).toBeGreaterThanOrEqual(3e-4);
  });
});

describe('checkpoints', () => {
  const fcsdTrainer = (dir: string, extra: Partial<TrainerOptions> = {}): Trainer => new Trainer({
    student: student(), teacher: loadModel(FIXTURE), data: new WindowSource(windows(7, 8, 100), 2, 8),
    config: { ...FCSD, checkpointEvery: 4 }, checkpointDir: dir, ...extra,
  });

  it('a fresh trainer resumed after a crash reproduces the uninterrupted run bit for bit', async () => {
    const dirA = tempDir(), dirB = tempDir();
    const a = fcsdTrainer(dirA);
    const full = await a.train();
    expect(full.metrics).toHaveLength(10);
    expect(listCheckpoints(dirA)).toEqual([4, 8, 10]);
    const st = JSON.parse(readFileSync(join(dirA, 'step-00000010', 'trainer.json'), 'utf8')) as { step: number; data: unknown };
    expect(st).toMatchObject({ step: 10, data: { cursor: 20 } });

    // the same run, killed during step 9 (after the checkpoint of step 8)
    const b = fcsdTrainer(dirB, { onStep: (m) => { if (m.step === 9) throw new Error('simulated crash'); } });
    await expect(b.train()).rejects.toThrow('simulated crash');
    expect(listCheckpoints(dirB)).toEqual([4, 8]);

    const fresh = fcsdTrainer(dirB);
    const resumed = await fresh.train({ resume: true });
    expect(resumed.metrics.map((m) => m.step)).toEqual([9, 10]);
    for (const [i, m] of resumed.metrics.entries()) {
      const want = full.metrics[8 + i]!;
      expect(Object.is(m.loss, want.loss)).toBe(true);
      expect(Object.is(m.gradNorm, want.gradNorm)).toBe(true);
      expect(m.lr).toBe(want.lr);
    }
    expect(fresh.optimizer.stepCount).toBe(10);
    const pa = snapshot(a.o.student), pf = snapshot(fresh.o.student);
    expect([...pf.keys()]).toEqual([...pa.keys()]);
    for (const [name, v] of pa) expect(bitEqual(pf.get(name)!, v), name).toBe(true);
    expect(fresh.o.data.state()).toEqual(a.o.data.state());
    expect(fresh.optimizer.stateDict()).toEqual(a.optimizer.stateDict());
  });

  const sftTrainer = (dir: string, config: Partial<TrainConfig>, extra: Partial<TrainerOptions> = {}): Trainer => new Trainer({
    student: loadModel(FIXTURE), data: new WindowSource(windows(5, 8, 300), 2, 8),
    config: { objective: 'sft', steps: 5, batch: 2, seq: 8, lr: 1e-3, ...config }, checkpointDir: dir, ...extra,
  });

  it('keepLast keeps only the newest K checkpoint directories', async () => {
    const dir = tempDir();
    await sftTrainer(dir, { checkpointEvery: 1, keepLast: 2 }).train();
    expect(readdirSync(dir).sort()).toEqual(['step-00000004', 'step-00000005']);
  });

  it('a save that fails midway leaves no temporary directory and the previous checkpoint intact', async () => {
    const dir = tempDir();
    let atStep2: Map<string, Float32Array> | null = null;
    const t = sftTrainer(dir, { steps: 4, checkpointEvery: 2 }, { onStep: (m) => { if (m.step === 2) atStep2 = snapshot(t.o.student); } });
    const orig = t.optimizer.stateDict.bind(t.optimizer);
    t.optimizer.stateDict = () => {
      if (t.optimizer.stepCount === 4) throw new Error('disk full (simulated)');
      return orig();
    };
    await expect(t.train()).rejects.toThrow('disk full (simulated)');
    expect(readdirSync(dir)).toEqual(['step-00000002']);
    const m = loadModel(FIXTURE);
    const params = m.parameters();
    const opt = new AdamW(params.map(([, p]) => p));
    const state = loadCheckpoint(join(dir, 'step-00000002'), params, opt);
    expect(state).toMatchObject({ step: 2, data: { cursor: 4 } });
    expect(opt.stepCount).toBe(2);
    for (const [name, v] of atStep2!) expect(bitEqual(snapshot(m).get(name)!, v), name).toBe(true);
  });
});

describe('divergence', () => {
  it('a NaN weight: TrainingDivergedError, weights untouched by the step, last checkpoint still loadable', async () => {
    const dir = tempDir();
    const s = student();
    let before: Map<string, Float32Array> | null = null;
    const t = new Trainer({
      student: s, teacher: loadModel(FIXTURE), data: new WindowSource(windows(4, 8, 500), 2, 8),
      config: { ...FCSD, checkpointEvery: 2 }, checkpointDir: dir,
      onStep: (m) => {
        if (m.step !== 3) return;
        (s.stack.parameters().find(([n]) => n === 'norm.weight')![1].data as Float32Array)[5] = NaN;
        before = snapshot(s);
      },
    });
    const err = await t.train().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingDivergedError);
    expect((err as Error).name).toBe('TrainingDivergedError');
    expect((err as Error).message).toMatch(/training diverged: the loss is NaN at step 4 \(micro-batch 1\); the weights were not updated/);
    expect((err as Error).message).toContain(dir);
    expect(t.step).toBe(3);
    expect(t.optimizer.stepCount).toBe(3);
    const after = snapshot(s);
    for (const [name, v] of before!) expect(bitEqual(after.get(name)!, v), name).toBe(true);
    expect(s.parameters().every(([, p]) => p.grad === null)).toBe(true);
    expect(listCheckpoints(dir)).toEqual([2]);
    // the checkpoint of step 2 is clean and a fresh trainer resumes from it
    const again = new Trainer({
      student: student(), teacher: loadModel(FIXTURE), data: new WindowSource(windows(4, 8, 500), 2, 8),
      config: { ...FCSD, checkpointEvery: 2 }, checkpointDir: dir,
    });
    expect(again.resume()).toBe(2);
    expect(again.params.every(([, p]) => (p.data as Float32Array).every(Number.isFinite))).toBe(true);
    const m = await again.trainStep();
    expect(Number.isFinite(m.loss)).toBe(true);
  });

  it('a NaN in the 2nd micro-batch of an accumulated step leaves no gradients of the 1st behind', async () => {
    const s = loadModel(FIXTURE);
    const src = new WindowSource(windows(4, 8, 550), 1, 8);
    const norm = s.parameters().find(([n]) => n === 'model.norm.weight')![1].data as Float32Array;
    const good = norm[3]!;
    const data: BatchSource = { next: () => { if (src.calls === 1) norm[3] = NaN; return src.next(); }, state: () => src.state(), restore: (x) => src.restore(x) };
    const t = new Trainer({ student: s, data, config: { objective: 'sft', steps: 2, batch: 1, seq: 8, accumulation: 2, lr: 1e-3 } });
    const before = snapshot(s);
    await expect(t.trainStep()).rejects.toThrow(/the loss is NaN at step 1 \(micro-batch 2\)/);
    expect(t.optimizer.stepCount).toBe(0);
    expect(s.parameters().every(([, p]) => p.grad === null)).toBe(true);
    const after = snapshot(s);
    for (const [name, v] of before) if (name !== 'model.norm.weight') expect(bitEqual(after.get(name)!, v), name).toBe(true);
    norm[3] = good;
  });

  it('a finite loss with a non-finite gradient also stops before the optimizer step', async () => {
    const s = loadModel(FIXTURE);
    const t = new Trainer({ student: s, data: new WindowSource(windows(2, 8, 600), 2, 8), config: { objective: 'sft', steps: 3, batch: 2, seq: 8, lr: 1e-3 } });
    const [, w] = t.params.find(([n]) => n === 'model.norm.weight')!;
    const hook = w.registerPostAccumulateGradHook((p) => { (p.grad!.data as Float32Array)[0] = Infinity; });
    const before = snapshot(s);
    await expect(t.trainStep()).rejects.toThrow(/training diverged: the gradient norm is Infinity at step 1 \(loss \d/);
    const after = snapshot(s);
    for (const [name, v] of before) expect(bitEqual(after.get(name)!, v), name).toBe(true);
    expect(t.optimizer.stepCount).toBe(0);
    hook.remove();
    expect(Number.isFinite((await t.trainStep()).gradNorm)).toBe(true);
  });
});

describe('early stopping, accumulation, frozen embeddings, config', () => {
  it('stops after `patience` evaluations without improvement and reports stoppedEarly', async () => {
    const dir = tempDir();
    const values = [5, 4, 4.5, 4.6, 4.7];
    let calls = 0;
    const t = new Trainer({
      student: loadModel(FIXTURE), data: new WindowSource(windows(3, 8, 700), 2, 8), checkpointDir: dir,
      config: { objective: 'sft', steps: 20, batch: 2, seq: 8, lr: 1e-3, evalEvery: 2, earlyStopping: { patience: 2 }, checkpointEvery: 3 },
      evaluate: async () => values[calls++]!,
    });
    const { metrics, stoppedEarly } = await t.train();
    // evaluations at steps 2 (5, best), 4 (4, best), 6 (4.5), 8 (4.6): two without improvement -> stop at 8
    expect(stoppedEarly).toBe(true);
    expect(calls).toBe(4);
    expect(t.step).toBe(8);
    expect(metrics.map((m: StepMetrics) => m.eval)).toEqual([undefined, 5, undefined, 4, undefined, 4.5, undefined, 4.6]);
    expect(t.early!.state()).toEqual({ best: 4, bad: 2 });
    expect(listCheckpoints(dir)).toEqual([3, 6, 8]); // the stopping step is checkpointed too
    const st = JSON.parse(readFileSync(join(dir, 'step-00000008', 'trainer.json'), 'utf8')) as { earlyStopping: unknown };
    expect(st.earlyStopping).toEqual({ best: 4, bad: 2 });
  });

  it("accumulating 2 micro-batches of 1 == one batch of 2 (objective 'sft')", async () => {
    const ws = windows(2, 8, 800);
    const run = async (batch: number, accumulation: number) => {
      const s = loadModel(FIXTURE);
      const t = new Trainer({ student: s, data: new WindowSource(ws, batch, 8), config: { objective: 'sft', steps: 4, batch, seq: 8, accumulation, lr: 1e-3 } });
      const before = snapshot(s);
      let grads: Float32Array[] = [];
      const step = t.optimizer.step.bind(t.optimizer);
      t.optimizer.step = () => { grads = t.params.map(([, p]) => Float32Array.from(p.grad!.data as Float32Array)); step(); };
      const m = await t.trainStep();
      const after = snapshot(s);
      const update = [...before].map(([n, v]) => v.map((x, i) => after.get(n)![i]! - x));
      return { m, grads, update, calls: (t.o.data as WindowSource).calls };
    };
    const one = await run(2, 1), acc = await run(1, 2);
    expect(acc.calls).toBe(2);
    expect(acc.m.tokens).toBe(one.m.tokens);
    expect(Math.abs(acc.m.loss - one.m.loss)).toBeLessThan(1e-6 * one.m.loss);
    expect(Math.abs(acc.m.gradNorm - one.m.gradNorm)).toBeLessThan(1e-6 * one.m.gradNorm);
    // gradients (what accumulation is responsible for): 1e-6 relative in norm over all parameters, 2e-6 per tensor
    let num = 0, den = 0;
    one.grads.forEach((g, k) => {
      let n = 0, d = 0;
      for (let i = 0; i < g.length; i++) { n += (g[i]! - acc.grads[k]![i]!) ** 2; d += g[i]! ** 2; }
      if (d > 0) expect(Math.sqrt(n / d), `grad of ${k}`).toBeLessThan(2e-6);
      num += n; den += d;
    });
    expect(Math.sqrt(num / den)).toBeLessThan(1e-6);
    // the updates: AdamW's first step is lr·g/(|g| + eps), so wherever |g| ≫ eps (1e-8) they agree to float32 rounding
    // of the weights (≈ 3e-5·lr); entries with |g| near eps amplify the gradients' rounding and are only bounded by lr
    let worst = 0, compared = 0;
    one.update.forEach((u, k) => u.forEach((x, i) => {
      const d = Math.abs(x - acc.update[k]![i]!);
      expect(d).toBeLessThanOrEqual(2.01e-3);
      if (Math.abs(one.grads[k]![i]!) < 1e-6) return;
      compared++;
      worst = Math.max(worst, d);
    }));
    expect(compared).toBeGreaterThan(40_000);
    expect(worst).toBeLessThan(1e-4 * 1e-3);
  });

  it('freezeEmbeddings leaves embed_tokens and lm_head unchanged while the other parameters train', async () => {
    const s = loadModel(FIXTURE);
    const before = snapshot(s);
    const t = new Trainer({ student: s, data: new WindowSource(windows(4, 8, 900), 2, 8), config: { objective: 'sft', steps: 2, batch: 2, seq: 8, lr: 1e-3, freezeEmbeddings: true } });
    const frozen = ['model.embed_tokens.weight', 'lm_head.weight'];
    expect(t.params.map(([n]) => n).filter((n) => frozen.includes(n))).toEqual([]);
    await t.train();
    const after = snapshot(s);
    for (const n of frozen) expect(bitEqual(after.get(n)!, before.get(n)!), n).toBe(true);
    for (const [n, v] of before) if (!frozen.includes(n)) expect(bitEqual(after.get(n)!, v), `${n} should have changed`).toBe(false);
  });

  it('rejects bad configurations with clear messages', () => {
    const data = new WindowSource(windows(1, 8, 1), 1, 8);
    const s = loadModel(FIXTURE);
    const base: TrainConfig = { objective: 'sft', steps: 2, batch: 1, seq: 8, lr: 1e-3 };
    expect(() => new Trainer({ student: s, data, config: { ...base, objective: 'fcsd' } })).toThrow("Trainer: objective 'fcsd' needs a teacher (the original model, frozen)");
    expect(() => new Trainer({ student: s, teacher: null, data, config: { ...base, objective: 'fcsd' } })).toThrow(/needs a teacher/);
    expect(() => new Trainer({ student: s, data, config: { ...base, steps: 2.5 } })).toThrow('Trainer: config.steps = 2.5 must be a positive integer');
    expect(() => new Trainer({ student: s, data, config: { ...base, batch: 0 } })).toThrow('config.batch = 0 must be a positive integer');
    expect(() => new Trainer({ student: s, data, config: { ...base, accumulation: -1 } })).toThrow('config.accumulation = -1 must be a positive integer');
    expect(() => new Trainer({ student: s, data, config: { ...base, earlyStopping: { patience: 0 } } })).toThrow(/patience 0 must be a positive integer/);
    expect(() => new Trainer({ student: s, data, config: base }).save()).toThrow('Trainer.save: no checkpointDir configured');
    expect(VOCAB).toBe(s.spec.vocabSize);
  });
});
