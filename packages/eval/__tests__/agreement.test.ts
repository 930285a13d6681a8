// Teacher–student KL and top-1 agreement against a float64 reference written here (the textbook formulas, no
// max-shift: the stub logits are small), with stubs whose argmax disagreements sit at known positions.
import { describe, expect, it } from 'vitest';
import type { Tensor } from '@farskip/tensor';
import { agreement, klDivergence, tokenWindows } from '../src/index.js';
import { stubModel } from './stubs.js';

const V = 4;
const BASE = [1, 0.5, 0, -0.5];
// teacher: argmax = the last token; student: at even context lengths (positions 1, 3, …) argmax = last token + 1
const teacherLogits = (c: number[]): number[] => BASE.map((_, v) => BASE[(v - c[c.length - 1]! + 4) % 4]! + 0.01 * c.length * v);
const studentLogits = (c: number[]): number[] => {
  const shift = c.length % 2 === 0 ? 1 : 0;
  return BASE.map((_, v) => BASE[(v - c[c.length - 1]! - shift + 8) % 4]! * 1.3 + 0.02 * v);
};

function referenceKl(t: number[], s: number[], T: number): number {
  const zt = t.reduce((a, x) => a + Math.exp(x / T), 0), zs = s.reduce((a, x) => a + Math.exp(x / T), 0);
  return t.reduce((a, x, v) => {
    const p = Math.exp(x / T) / zt, q = Math.exp(s[v]! / T) / zs;
    return a + p * Math.log(p / q);
  }, 0);
}

const WINDOWS = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 2, 1]];

describe('agreement', () => {
  for (const T of [1, 2]) {
    it(`mean KL(teacher‖student) at temperature ${T} and top-1 agreement over every position`, async () => {
      const r = await agreement(stubModel(V, teacherLogits), stubModel(V, studentLogits), WINDOWS, { temperature: T });
      let sum = 0, n = 0;
      for (const w of WINDOWS) for (let t = 0; t < w.length; t++) {
        sum += referenceKl(teacherLogits(w.slice(0, t + 1)), studentLogits(w.slice(0, t + 1)), T);
        n++;
      }
      expect(r.positions).toBe(11);
      expect(r.windows).toBe(3);
      expect(r.kl).toBeCloseTo(sum / n, 12);
      // mismatches at positions 1 and 3 of the 4-token windows and position 1 of the 3-token one
      expect(r.top1).toBe(6 / 11);
      expect(r.klMax).toBeGreaterThan(r.kl);
    });
  }

  it('a model against itself: KL exactly 0, top-1 exactly 1', async () => {
    const m = stubModel(V, teacherLogits);
    const r = await agreement(m, m, WINDOWS);
    expect(r.kl).toBe(0);
    expect(r.klMax).toBe(0);
    expect(r.top1).toBe(1);
  });

  it('passes each side its forward options, batches equal-length windows, runs without autograd', async () => {
    const t = stubModel(V, teacherLogits), s = stubModel(V, studentLogits);
    const seen: unknown[] = [];
    const spy = (m: typeof t) => ({ forward: (ids: Tensor, o?: { farskip?: unknown }) => { seen.push(o?.farskip); return m.forward(ids); } });
    await agreement(spy(t), spy(s), WINDOWS, { batchSize: 1, teacherForward: { farskip: null }, studentForward: { farskip: {} } });
    expect(seen).toEqual([null, {}, null, {}, null, {}]);
    const t2 = stubModel(V, teacherLogits);
    await agreement(t2, stubModel(V, studentLogits), WINDOWS);
    expect(t2.calls.map((c) => c.length)).toEqual([2, 1]);
    expect(t2.gradDuringForward).toEqual([false, false]);
  });

  it('rejects bad input', async () => {
    const m = stubModel(V, teacherLogits);
    await expect(agreement(m, m, [])).rejects.toThrow(/no windows given/);
    await expect(agreement(m, m, WINDOWS, { temperature: 0 })).rejects.toThrow(/temperature must be > 0, got 0/);
    await expect(agreement(m, stubModel(5, () => [0, 0, 0, 0, 0]), WINDOWS)).rejects.toThrow(/teacher vocabulary 4 and student vocabulary 5 differ/);
  });
});

describe('klDivergence and tokenWindows', () => {
  it('klDivergence matches the textbook formula, also for large logits (max-shifted)', () => {
    const t = [2, -1, 0.5, 3], s = [1, 1, 0, 2.5];
    expect(klDivergence(Float64Array.from(t), Float64Array.from(s), 1)).toBeCloseTo(referenceKl(t, s, 1), 14);
    expect(klDivergence(Float64Array.from(t.map((x) => x + 1000)), Float64Array.from(s.map((x) => x - 500)), 1)).toBeCloseTo(referenceKl(t, s, 1), 10);
  });

  it('tokenWindows cuts a stream into windows', () => {
    const toks = Array.from({ length: 10 }, (_, i) => i);
    expect(tokenWindows(toks, 4)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(tokenWindows(toks, 4, { dropLast: true })).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
    expect(tokenWindows(Int32Array.from(toks), 4, { stride: 3 })).toEqual([[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]);
    expect(() => tokenWindows(toks, 0)).toThrow(/length must be a positive integer/);
  });
});
