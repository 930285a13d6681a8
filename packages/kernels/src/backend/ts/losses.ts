// Cross-entropy and distillation KL, plain TypeScript (per-row log-sum-exp, f64 sums).

import type { FloatArray } from '../types.js';
import { logSumExp } from './softmax.js';

/**
 * logits [rows, V], targets [rows]; loss [rows], lse [rows].
 * loss[r] = lse[r] - logits[r, t]; target == ignoreIndex gives loss 0 (lse is still written).
 */
export function crossEntropyFwd(rows: number, V: number, logits: FloatArray, targets: Int32Array,
  ignoreIndex: number, loss: FloatArray, lse: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * V;
    const l = logSumExp(logits, base, V);
    lse[r] = l;
    const t = targets[r]!;
    loss[r] = t === ignoreIndex ? 0 : l - logits[base + t]!;
  }
}

/** dlogits[r, :] = (softmax(logits[r]) - onehot(t)) * dloss[r];  zero for ignored rows. */
export function crossEntropyBwd(rows: number, V: number, logits: FloatArray, targets: Int32Array,
  ignoreIndex: number, lse: FloatArray, dloss: FloatArray, dlogits: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * V;
    const t = targets[r]!;
    if (t === ignoreIndex) {
      for (let c = 0; c < V; c++) dlogits[base + c] = 0;
      continue;
    }
    const l = lse[r]!, g = dloss[r]!;
    for (let c = 0; c < V; c++) dlogits[base + c] = Math.exp(logits[base + c]! - l) * g;
    dlogits[base + t] = (Math.exp(logits[base + t]! - l) - 1) * g;
  }
}

/**
 * Forward KL(P_teacher || Q_student) per row at temperature T; student, teacher [rows, V], kl [rows]:
 *   log p = teacher/T - lse(teacher/T),  log q = student/T - lse(student/T)
 *   kl[r] = sum_c p (log p - log q)      (terms with p == 0 contribute 0)
 */
export function klDivFwd(rows: number, V: number, student: FloatArray, teacher: FloatArray, temperature: number,
  kl: FloatArray): void {
  const invT = 1 / temperature;
  for (let r = 0; r < rows; r++) {
    const base = r * V;
    const lseP = logSumExp(teacher, base, V, invT);
    const lseQ = logSumExp(student, base, V, invT);
    let sum = 0;
    for (let c = 0; c < V; c++) {
      const logp = teacher[base + c]! * invT - lseP;
      const p = Math.exp(logp);
      if (p === 0) continue;
      sum += p * (logp - (student[base + c]! * invT - lseQ));
    }
    kl[r] = sum;
  }
}

/** dstudent[r, :] = (q - p) / T * dkl[r] */
export function klDivBwd(rows: number, V: number, student: FloatArray, teacher: FloatArray, temperature: number,
  dkl: FloatArray, dstudent: FloatArray): void {
  const invT = 1 / temperature;
  for (let r = 0; r < rows; r++) {
    const base = r * V;
    const lseP = logSumExp(teacher, base, V, invT);
    const lseQ = logSumExp(student, base, V, invT);
    const g = dkl[r]! * invT;
    for (let c = 0; c < V; c++) {
      const p = Math.exp(teacher[base + c]! * invT - lseP);
      const q = Math.exp(student[base + c]! * invT - lseQ);
      dstudent[base + c] = (q - p) * g;
    }
  }
}
