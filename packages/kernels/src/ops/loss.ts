// Losses: token cross-entropy (pretraining / SFT) and forward KL from a frozen teacher (self-distillation).
import { Tensor, recordOp } from '@farskip/tensor';
import { cpuBackend } from '../backend/select.js';
import { arr, commonDtype, describe, empty, lastDim, requireIndex, withF32 } from './util.js';

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (loss 0, no gradient, not counted by 'mean'). Default -100. */
  ignoreIndex?: number;
  reduction?: Reduction;
}

/** Reduces per-row losses [rows] to a scalar (mean over `count` counted rows, or sum); "none" keeps them. */
function reduce(perRow: Tensor, reduction: Reduction, count: number): Tensor {
  if (reduction === 'none') return perRow;
  const data = perRow.data as Float32Array;
  let s = 0;
  for (let i = 0; i < data.length; i++) s += data[i]!;
  const k = reduction === 'mean' ? (count === 0 ? NaN : 1 / count) : 1; // torch: mean over zero targets is NaN
  const out = Tensor.fromArray([s * k], [], { dtype: perRow.dtype as 'f32' | 'f64' });
  return recordOp(out, `${reduction}Reduce`, [perRow], (g) => [Tensor.full(perRow.shape, g.item() * k, { dtype: perRow.dtype })]);
}

/** logits [..., V], targets i32 [...] -> mean / sum / per-token loss. */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const ignoreIndex = options.ignoreIndex ?? -100;
  const reduction = options.reduction ?? 'mean';
  const tgt = requireIndex('crossEntropy', 'targets', targets);
  commonDtype('crossEntropy', { logits });
  if (logits.dtype === 'bf16') return withF32([logits], (l) => crossEntropy(l, targets, options));
  const V = lastDim('crossEntropy', 'logits', logits);
  const rows = V === 0 ? 0 : logits.numel / V;
  if (targets.numel !== rows) throw new Error(`crossEntropy: targets ${describe(targets)} must have one entry per row of logits ${describe(logits)} (${rows})`);
  let count = 0;
  for (let i = 0; i < rows; i++) {
    const t = tgt[i]!;
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= V) throw new Error(`crossEntropy: target ${t} at row ${i} is outside [0, ${V}) and is not ignoreIndex ${ignoreIndex}`);
    count++;
  }
  const dtype = logits.dtype;
  const loss = empty([rows], dtype), lse = empty([rows], dtype);
  cpuBackend(dtype).crossEntropyFwd(rows, V, arr(logits), tgt, ignoreIndex, arr(loss), arr(lse));
  recordOp(loss, 'crossEntropy', [logits], (g) => {
    const d = empty(logits.shape, dtype);
    cpuBackend(dtype).crossEntropyBwd(rows, V, arr(logits), tgt, ignoreIndex, arr(lse), arr(g), arr(d));
    return [d];
  });
  return reduce(reduction === 'none' ? loss.reshape(...targets.shape) : loss, reduction, count);
}

export interface KlDivOptions {
  /** Softmax temperature T for both distributions. Default 1. (Multiply the loss by T^2 to keep gradient scale.) */
  temperature?: number;
  /** 'mean' averages over tokens (rows). Default 'mean'. */
  reduction?: Reduction;
}

/**
 * Token-level forward KL(P_teacher || Q_student) over logits [..., V]: sum p (log p - log q) per row.
 * Only the student is differentiated; the teacher must not require grad (it is frozen).
 */
export function klDiv(studentLogits: Tensor, teacherLogits: Tensor, options: KlDivOptions = {}): Tensor {
  const dtype = commonDtype('klDiv', { studentLogits, teacherLogits });
  if (teacherLogits.requiresGrad) {
    throw new Error('klDiv: teacherLogits require grad; the teacher is frozen in self-distillation, pass teacherLogits.detach() or compute it under noGrad()');
  }
  if (dtype === 'bf16') return withF32([studentLogits, teacherLogits], (s, t) => klDiv(s, t, options));
  if (studentLogits.shape.length !== teacherLogits.shape.length || studentLogits.shape.some((d, i) => d !== teacherLogits.shape[i])) {
    throw new Error(`klDiv: studentLogits ${describe(studentLogits)} and teacherLogits ${describe(teacherLogits)} must have the same shape`);
  }
  const T = options.temperature ?? 1;
  if (!(T > 0)) throw new Error(`klDiv: temperature must be > 0, got ${T}`);
  const V = lastDim('klDiv', 'studentLogits', studentLogits);
  const rows = V === 0 ? 0 : studentLogits.numel / V;
  const kl = empty([rows], dtype);
  cpuBackend(dtype).klDivFwd(rows, V, arr(studentLogits), arr(teacherLogits), T, arr(kl));
  recordOp(kl, 'klDiv', [studentLogits], (g) => {
    const d = empty(studentLogits.shape, dtype);
    cpuBackend(dtype).klDivBwd(rows, V, arr(studentLogits), arr(teacherLogits), T, arr(g), arr(d));
    return [d];
  });
  const reduction = options.reduction ?? 'mean';
  return reduce(reduction === 'none' ? kl.reshape(...studentLogits.shape.slice(0, -1)) : kl, reduction, rows);
}
