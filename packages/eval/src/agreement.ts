// Teacher–student agreement over token windows: the token-level forward KL(teacher ‖ student) the FCSD student is
// trained on, and top-1 agreement (how often both models' most likely next token coincide). Typical pairs: one
// CausalLM run with `farskip: null` (original) and `farskip: {}` (converted), or two models.
import { argmax, checkPositiveInt, chunks, forwardRows, logSumExp } from './model.js';
import type { EvalForwardOptions, ScoringModel } from './model.js';

export interface AgreementOptions {
  /** softmax temperature of both distributions; default 1 */
  temperature?: number;
  /** windows per forward pass (equal-length windows batch); default 8 */
  batchSize?: number;
  teacherForward?: EvalForwardOptions;
  studentForward?: EvalForwardOptions;
}

export interface AgreementResult {
  windows: number;
  /** positions compared (every position of every window) */
  positions: number;
  /** mean over positions of KL(p_teacher ‖ q_student), nats (not multiplied by temperature²) */
  kl: number;
  /** the largest KL at one position */
  klMax: number;
  /** fraction of positions where argmax teacher logits == argmax student logits */
  top1: number;
}

/**
 * KL(p ‖ q) with p = softmax(teacher / T), q = softmax(student / T), in float64:
 *   sum_v p_v ((t_v - s_v) / T - lse(t / T) + lse(s / T)).
 */
export function klDivergence(teacher: Float64Array, student: Float64Array, temperature = 1): number {
  const lseT = logSumExp(teacher, temperature), lseS = logSumExp(student, temperature);
  let kl = 0;
  for (let v = 0; v < teacher.length; v++) {
    const logp = teacher[v]! / temperature - lseT;
    const p = Math.exp(logp);
    if (p > 0) kl += p * (logp - (student[v]! / temperature - lseS));
  }
  return Math.max(0, kl);
}

/** Windows of `length` tokens every `stride` tokens (default: length, no overlap); the shorter tail is kept unless dropLast. */
export function tokenWindows(tokens: ArrayLike<number>, length: number, options: { stride?: number; dropLast?: boolean } = {}): number[][] {
  checkPositiveInt(length, 'length', 'tokenWindows');
  const stride = options.stride ?? length;
  checkPositiveInt(stride, 'stride', 'tokenWindows');
  const out: number[][] = [];
  for (let begin = 0; begin < tokens.length; begin += stride) {
    const end = Math.min(begin + length, tokens.length);
    if (end - begin < length && options.dropLast) break;
    out.push(Array.from({ length: end - begin }, (_, i) => tokens[begin + i]!));
    if (end === tokens.length) break;
  }
  return out;
}

/** Compares teacher and student logits at every position of every window (no autograd). */
export async function agreement(teacher: ScoringModel, student: ScoringModel, windows: ArrayLike<number>[], options: AgreementOptions = {}): Promise<AgreementResult> {
  const temperature = options.temperature ?? 1;
  if (!(temperature > 0)) throw new Error(`agreement: temperature must be > 0, got ${temperature}`);
  const batchSize = options.batchSize ?? 8;
  checkPositiveInt(batchSize, 'batchSize', 'agreement');
  if (windows.length === 0) throw new Error('agreement: no windows given; pass at least one token window (see tokenWindows)');
  const byLength = new Map<number, ArrayLike<number>[]>();
  windows.forEach((w, i) => {
    if (w.length === 0) throw new Error(`agreement: window ${i} is empty`);
    const group = byLength.get(w.length);
    if (group) group.push(w); else byLength.set(w.length, [w]);
  });
  let positions = 0, klSum = 0, klMax = 0, matches = 0;
  for (const [T, group] of byLength) {
    for (const batch of chunks(group, batchSize)) {
      const t = await forwardRows(teacher, batch, options.teacherForward, 'agreement (teacher)');
      const s = await forwardRows(student, batch, options.studentForward, 'agreement (student)');
      if (t.vocab !== s.vocab) throw new Error(`agreement: teacher vocabulary ${t.vocab} and student vocabulary ${s.vocab} differ; compare models with one tokenizer`);
      for (let b = 0; b < batch.length; b++) {
        for (let p = 0; p < T; p++) {
          const tr = t.row(b, p), sr = s.row(b, p);
          const kl = klDivergence(tr, sr, temperature);
          klSum += kl;
          klMax = Math.max(klMax, kl);
          if (argmax(tr) === argmax(sr)) matches++;
          positions++;
        }
      }
    }
  }
  return { windows: windows.length, positions, kl: klSum / positions, klMax, top1: matches / positions };
}
