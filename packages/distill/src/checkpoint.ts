// Training checkpoints: a directory per step (`step-00000100/`) holding the model parameters and the optimizer
// moments as safetensors plus `trainer.json` (step, data cursor, early-stopping state, the config). Written into a
// temporary directory that is renamed into place when complete, so a crash never leaves a checkpoint that looks
// whole; the newest `keepLast` are kept.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AdamW } from '@farskip/kernels';
import { SafetensorsFile, writeSafetensors } from '@farskip/models';
import { Tensor } from '@farskip/tensor';

export interface TrainerState {
  step: number;
  data: unknown;
  earlyStopping?: { best: number | null; bad: number };
  config?: unknown;
  [key: string]: unknown;
}

const STEP_DIR = /^step-(\d{8})$/;

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** Writes checkpoint `step` under `root`; returns its directory. */
export function saveCheckpoint(root: string, params: [string, Tensor][], optimizer: AdamW, state: TrainerState, keepLast = 3): string {
  mkdirSync(root, { recursive: true });
  const final = join(root, checkpointName(state.step));
  const tmp = join(root, `.${checkpointName(state.step)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    writeSafetensors(join(tmp, 'model.safetensors'), new Map(params.map(([n, t]) => [n, t.detach()])));
    const sd = optimizer.stateDict();
    const moments = new Map<string, Tensor>();
    sd.params.forEach((st, i) => {
      if (!st) return;
      const [name, p] = params[i]!;
      moments.set(`m.${name}`, new Tensor(Float32Array.from(st.m), p.shape.slice()));
      moments.set(`v.${name}`, new Tensor(Float32Array.from(st.v), p.shape.slice()));
      // bf16 parameters: the f32 master weights the updates accumulate in (the bf16 copy alone would lose them)
      if (st.master) moments.set(`master.${name}`, new Tensor(Float32Array.from(st.master), p.shape.slice()));
    });
    writeSafetensors(join(tmp, 'optimizer.safetensors'), moments, { metadata: { stepCount: String(sd.stepCount), lr: String(sd.lr) } });
    writeFileSync(join(tmp, 'trainer.json'), JSON.stringify(state, null, 2) + '\n');
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const steps = listCheckpoints(root);
  for (const s of steps.slice(0, Math.max(0, steps.length - keepLast))) rmSync(join(root, checkpointName(s)), { recursive: true, force: true });
  return final;
}

/** Complete checkpoints under `root`, oldest first. */
export function listCheckpoints(root: string): number[] {
  if (!existsSync(root)) return [];
  return readdirSync(root).map((n) => STEP_DIR.exec(n)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1])).sort((a, b) => a - b);
}

/** Restores parameters (in place) and the optimizer from checkpoint `dir`; returns its trainer state. */
export function loadCheckpoint(dir: string, params: [string, Tensor][], optimizer: AdamW): TrainerState {
  const model = SafetensorsFile.open(join(dir, 'model.safetensors'));
  const opt = SafetensorsFile.open(join(dir, 'optimizer.safetensors'));
  try {
    for (const [name, p] of params) {
      if (!model.has(name)) throw new Error(`${dir}: checkpoint lacks parameter '${name}' (was it written by another model or mesh?)`);
      const t = model.read(name, { as: p.dtype === 'bf16' ? 'bf16' : 'f32' });
      if (t.numel !== p.numel) throw new Error(`${dir}: parameter '${name}' has ${t.numel} elements, the model's has ${p.numel}`);
      (p.data as Float32Array | Uint16Array).set(t.data as Float32Array | Uint16Array);
    }
    const stepCount = Number(opt.metadata.stepCount);
    const lr = Number(opt.metadata.lr);
    optimizer.loadStateDict({
      stepCount, lr,
      params: params.map(([name]) => (opt.has(`m.${name}`)
        ? { m: opt.read(`m.${name}`).data as Float32Array, v: opt.read(`v.${name}`).data as Float32Array,
          master: opt.has(`master.${name}`) ? opt.read(`master.${name}`).data as Float32Array : null } : null)),
    });
  } finally {
    model.close();
    opt.close();
  }
  return JSON.parse(readFileSync(join(dir, 'trainer.json'), 'utf8')) as TrainerState;
}
