// bf16 training (the trainer's --bf16): bf16 weights, activations and gradients, f32 master weights in AdamW,
// losses on f32 logits. Held to the f32 run of the same recipe, and resumed bit for bit from its checkpoints.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { convertToFarSkip, loadModel } from '@farskip/models';
import type { CausalLM } from '@farskip/models';
import { checkpointName, listCheckpoints, Trainer } from '../src/index.js';
import type { BatchSource, TrainConfig } from '../src/index.js';

const FIXTURE = fileURLToPath(new URL('../../models/__tests__/fixtures/golden/mixtral', import.meta.url));

/** Fixed windows of seeded token ids in [0, 64), served in order with a resumable cursor. */
class Windows implements BatchSource {
  cursor = 0;
  constructor(readonly batch: number, readonly seq: number) {}
  next(): { inputs: Int32Array; targets: Int32Array } {
    const inputs = new Int32Array(this.batch * this.seq), targets = new Int32Array(this.batch * this.seq);
    for (let b = 0; b < this.batch; b++) {
      let s = (this.cursor + b) % 4 + 7;
      for (let t = 0; t <= this.seq; t++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        if (t < this.seq) inputs[b * this.seq + t] = s >>> 26;
        if (t > 0) targets[b * this.seq + t - 1] = s >>> 26;
      }
    }
    this.cursor += this.batch;
    return { inputs, targets };
  }
  state(): unknown { return { cursor: this.cursor }; }
  restore(state: unknown): void { this.cursor = (state as { cursor: number }).cursor; }
}

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const CFG: TrainConfig = { objective: 'fcsd', steps: 12, batch: 2, seq: 8, lr: 3e-3, minLr: 3e-4, warmupSteps: 2, clip: 1, weightDecay: 0.01 };
const models = (dtype: 'f32' | 'bf16'): { student: CausalLM; teacher: CausalLM } =>
  ({ student: convertToFarSkip(loadModel(FIXTURE, { dtype }), { mode: 'full' }), teacher: loadModel(FIXTURE, { dtype }) });

describe('bf16 training', () => {
  it('keeps bf16 weights (f32 masters in AdamW) and follows the f32 run of the same FCSD recipe', async () => {
    const f32 = models('f32'), bf16 = models('bf16');
    expect(bf16.student.parameters().every(([, t]) => t.dtype === 'bf16')).toBe(true);
    const a = await new Trainer({ ...f32, data: new Windows(2, 8), config: CFG }).train();
    const tb = new Trainer({ ...bf16, data: new Windows(2, 8), config: CFG });
    const b = await tb.train();
    expect(bf16.student.parameters().every(([, t]) => t.dtype === 'bf16' && t.grad === null)).toBe(true);
    // the optimizer updated f32 masters: the bf16 weights are their rounding, not a bf16-only accumulation
    const st = tb.optimizer.stateDict().params.filter((p) => p !== null);
    expect(st.length).toBeGreaterThan(0);
    expect(st.every((p) => p!.master instanceof Float32Array)).toBe(true);
    const la = a.metrics.map((m) => m.loss), lb = b.metrics.map((m) => m.loss);
    expect(lb.every(Number.isFinite)).toBe(true);
    expect(lb[lb.length - 1]!).toBeLessThan(lb[0]! * 0.7); // distillation works in bf16
    // bf16 rounds weights and activations (8 bits of mantissa): the first loss (same weights, before any update)
    // within a few percent of f32's, and the curve stays within 10 % of the starting loss of f32's
    expect(Math.abs(lb[0]! - la[0]!)).toBeLessThan(0.03 * la[0]!);
    for (let i = 0; i < la.length; i++) expect(Math.abs(lb[i]! - la[i]!)).toBeLessThan(0.1 * la[0]!);
    // and it is not the f32 run relabelled
    expect(lb.some((v, i) => v !== la[i])).toBe(true);
  });

  it('resumes from a checkpoint to the identical bf16 loss curve', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'distill-bf16-'));
    dirs.push(dir);
    const cfg = { ...CFG, steps: 6, checkpointEvery: 3 };
    const full = await new Trainer({ ...models('bf16'), data: new Windows(2, 8), config: cfg, checkpointDir: dir }).train();
    expect(listCheckpoints(dir)).toEqual([3, 6]);
    rmSync(join(dir, checkpointName(6)), { recursive: true }); // as if the run had died after step 5
    const resumed = new Trainer({ ...models('bf16'), data: new Windows(2, 8), config: cfg, checkpointDir: dir });
    expect(resumed.resume()).toBe(3);
    const rest = await resumed.train();
    expect(rest.metrics.map((m) => m.loss)).toEqual(full.metrics.slice(3).map((m) => m.loss));
  });
});
