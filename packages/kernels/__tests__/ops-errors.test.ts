// Argument validation of the public ops: mismatched shapes / dtypes name BOTH operands, i32 where a float is
// needed, out-of-range ids / targets, bad k, frozen-teacher rule, GQA head mismatch, cache overflow.
import { describe, expect, it } from 'vitest';
import { Tensor } from '@farskip/tensor';
import {
  AdamW, KVCache, add, adamwStep, attention, crossEntropy, embedding, groupedMatmul, klDiv, linear, logSoftmax, matmul, mean, mm, mul, rmsNorm,
  rope, silu, softmax, sub, sum, swiglu, topk,
} from '@farskip/kernels';

const z = (shape: number[], dtype: 'f32' | 'f64' | 'bf16' | 'i32' = 'f32', requiresGrad = false): Tensor =>
  Tensor.zeros(shape, { dtype, requiresGrad });

/** Runs fn, expects it to throw, and that the message contains every fragment. */
function expectThrowMentioning(fn: () => unknown, ...fragments: string[]): void {
  let msg: string | null = null;
  try { fn(); } catch (e) { msg = (e as Error).message; }
  expect(msg, 'expected an error').not.toBeNull();
  for (const f of fragments) expect(msg, `error message should mention ${JSON.stringify(f)}`).toContain(f);
}

describe('mismatched shapes name both operands', () => {
  it('add / sub / mul with non-broadcastable shapes', () => {
    for (const op of [add, sub, mul]) expectThrowMentioning(() => op(z([2, 3]), z([4, 5])), '[2, 3]', '[4, 5]');
    expectThrowMentioning(() => add(z([3, 2]), z([2, 3, 3])), '[3, 2]', '[2, 3, 3]');
  });

  it('mm / matmul inner dimension, rank and batch mismatches', () => {
    expectThrowMentioning(() => mm(z([2, 3]), z([4, 5])), 'f32[2, 3]', 'f32[4, 5]');
    expectThrowMentioning(() => mm(z([2, 3]), z([2, 5]), false, true), 'f32[2, 3]', 'f32[2, 5]');
    expectThrowMentioning(() => mm(z([2, 3]), z([1, 3, 4])), 'f32[2, 3]', 'f32[1, 3, 4]');
    expectThrowMentioning(() => mm(z([2, 2, 3]), z([3, 3, 4])), 'f32[2, 2, 3]', 'f32[3, 3, 4]');
    expectThrowMentioning(() => matmul(z([2, 3, 4]), z([3, 4, 5])), 'f32[2, 3, 4]', 'f32[3, 4, 5]');
    expectThrowMentioning(() => matmul(z([5, 3]), z([4])), 'f32[5, 3]', 'f32[4');
  });

  it('linear and groupedMatmul', () => {
    expectThrowMentioning(() => linear(z([2, 3]), z([4, 5])), 'f32[2, 3]', 'f32[4, 5]');
    expectThrowMentioning(() => groupedMatmul(z([4, 3]), z([2, 5, 6]), Tensor.fromArray([1, 3], [2], { dtype: 'i32' })), 'f32[4, 3]', 'f32[2, 5, 6]');
    // group sizes must sum to the rows and have one entry per expert
    expectThrowMentioning(() => groupedMatmul(z([4, 3]), z([2, 3, 6]), Tensor.fromArray([1, 2], [2], { dtype: 'i32' })), 'groupSizes', '4');
    expectThrowMentioning(() => groupedMatmul(z([4, 3]), z([2, 3, 6]), Tensor.fromArray([4], [1], { dtype: 'i32' })), 'groupSizes');
    expectThrowMentioning(() => groupedMatmul(z([4, 3]), z([2, 3, 6]), Tensor.fromArray([5, -1], [2], { dtype: 'i32' })), 'groupSizes');
  });

  it('swiglu, rmsNorm weight, klDiv, crossEntropy targets', () => {
    expectThrowMentioning(() => swiglu(z([2, 3]), z([3, 2])), 'f32[2, 3]', 'f32[3, 2]');
    expectThrowMentioning(() => rmsNorm(z([2, 3]), z([4])), 'f32[2, 3]', 'f32[4]');
    expectThrowMentioning(() => klDiv(z([2, 3]), z([2, 4])), 'f32[2, 3]', 'f32[2, 4]');
    expectThrowMentioning(() => crossEntropy(z([2, 3]), z([3], 'i32')), 'f32[2, 3]', 'i32[3]');
  });

  it('attention batch / head_dim / kv mismatches', () => {
    expectThrowMentioning(() => attention(z([1, 2, 2, 4]), z([1, 3, 2, 5]), z([1, 3, 2, 4])), 'f32[1, 2, 2, 4]', 'f32[1, 3, 2, 5]');
    expectThrowMentioning(() => attention(z([1, 2, 2, 4]), z([2, 3, 2, 4]), z([2, 3, 2, 4])), 'f32[1, 2, 2, 4]', 'f32[2, 3, 2, 4]');
    expectThrowMentioning(() => attention(z([1, 2, 2, 4]), z([1, 3, 2, 4]), z([1, 4, 2, 4])), 'f32[1, 3, 2, 4]', 'f32[1, 4, 2, 4]');
    expectThrowMentioning(() => attention(z([1, 2, 2, 4]), z([1, 3, 2, 4]), z([1, 3, 1, 4])), 'f32[1, 3, 2, 4]', 'f32[1, 3, 1, 4]');
  });

  it('GQA: query heads not a multiple of key/value heads', () => {
    expectThrowMentioning(() => attention(z([1, 2, 3, 4]), z([1, 2, 2, 4]), z([1, 2, 2, 4])), '3', '2', 'heads');
    const cache = new KVCache(1, 4, 2, 4);
    cache.append(z([1, 1, 2, 4]), z([1, 1, 2, 4]));
    expectThrowMentioning(() => cache.attend(z([1, 1, 3, 4])), '3', '2', 'heads');
  });
});

describe('mismatched dtypes name both operands', () => {
  it('binary ops, mm, linear, swiglu, rmsNorm, attention, klDiv, groupedMatmul', () => {
    expectThrowMentioning(() => add(z([2, 3]), z([2, 3], 'f64')), 'f32[2, 3]', 'f64[2, 3]');
    expectThrowMentioning(() => mul(z([2, 3], 'bf16'), z([3])), 'bf16[2, 3]', 'f32[3]');
    expectThrowMentioning(() => mm(z([2, 3]), z([3, 4], 'f64')), 'f32[2, 3]', 'f64[3, 4]');
    expectThrowMentioning(() => mm(z([2, 3], 'bf16'), z([3, 4])), 'bf16[2, 3]', 'f32[3, 4]');
    expectThrowMentioning(() => linear(z([2, 3]), z([4, 3], 'bf16')), 'f32[2, 3]', 'bf16[4, 3]');
    expectThrowMentioning(() => swiglu(z([2, 3], 'f64'), z([2, 3])), 'f64[2, 3]', 'f32[2, 3]');
    expectThrowMentioning(() => rmsNorm(z([2, 3]), z([3], 'f64')), 'f32[2, 3]', 'f64[3]');
    expectThrowMentioning(() => attention(z([1, 2, 2, 4]), z([1, 2, 2, 4], 'f64'), z([1, 2, 2, 4])), 'f32[1, 2, 2, 4]', 'f64[1, 2, 2, 4]');
    expectThrowMentioning(() => klDiv(z([2, 3]), z([2, 3], 'bf16')), 'f32[2, 3]', 'bf16[2, 3]');
    expectThrowMentioning(() => groupedMatmul(z([4, 3]), z([2, 3, 6], 'f64'), Tensor.fromArray([1, 3], [2], { dtype: 'i32' })), 'f32[4, 3]', 'f64[2, 3, 6]');
  });

  it('KVCache and adamwStep', () => {
    const cache = new KVCache(1, 4, 1, 2);
    expectThrowMentioning(() => cache.append(z([1, 1, 1, 2], 'f64'), z([1, 1, 1, 2], 'f64')), 'f64[1, 1, 1, 2]', 'f32');
    expectThrowMentioning(() => adamwStep(z([3]), z([3], 'f64'), z([3]), z([3]), 1), 'f64[3]', 'f32[3]');
    expectThrowMentioning(() => adamwStep(z([3]), z([4]), z([3]), z([3]), 1), 'f32[4]', 'f32[3]');
  });
});

describe('i32 where a float is needed, float where an index is needed', () => {
  it('float ops reject i32 operands', () => {
    const i = z([2, 3], 'i32');
    const cases: [string, () => unknown][] = [
      ['add', () => add(i, i)], ['mul', () => mul(z([2, 3]), i)], ['mm', () => mm(i, z([3, 2], 'i32'))], ['matmul', () => matmul(z([2, 3]), z([3, 2], 'i32'))],
      ['softmax', () => softmax(i)], ['logSoftmax', () => logSoftmax(i)], ['silu', () => silu(i)], ['swiglu', () => swiglu(i, i)],
      ['sum', () => sum(i)], ['rmsNorm', () => rmsNorm(i, z([3], 'i32'))], ['topk', () => topk(i, 1)],
      ['crossEntropy', () => crossEntropy(i, z([2], 'i32'))], ['klDiv', () => klDiv(i, i)], ['embedding table', () => embedding(z([2], 'i32'), i)],
      ['rope', () => rope(z([1, 2, 1, 2], 'i32'), z([2], 'i32'))], ['attention', () => attention(z([1, 1, 1, 2], 'i32'), z([1, 1, 1, 2], 'i32'), z([1, 1, 1, 2], 'i32'))],
    ];
    for (const [name, fn] of cases) {
      let msg = '';
      try { fn(); } catch (e) { msg = (e as Error).message; }
      expect(msg, `${name} should reject i32`).toMatch(/i32/);
    }
  });

  it('index operands must be i32', () => {
    expectThrowMentioning(() => embedding(z([2]), z([5, 3])), 'ids', 'i32');
    expectThrowMentioning(() => crossEntropy(z([2, 3]), z([2])), 'targets', 'i32');
    expectThrowMentioning(() => rope(z([1, 2, 1, 2]), z([2])), 'positions', 'i32');
    expectThrowMentioning(() => groupedMatmul(z([4, 3]), z([2, 3, 6]), Tensor.fromArray([1, 3], [2])), 'groupSizes', 'i32');
  });
});

describe('out-of-range ids and targets', () => {
  it('embedding token ids outside [0, vocab)', () => {
    for (const bad of [7, -1, 100]) {
      expectThrowMentioning(() => embedding(Tensor.fromArray([0, bad, 2], [3], { dtype: 'i32' }), z([7, 4])), String(bad), '7');
    }
  });

  it('crossEntropy targets outside [0, V) that are not ignoreIndex', () => {
    for (const bad of [5, -1, -100]) {
      const fn = () => crossEntropy(z([3, 5]), Tensor.fromArray([0, bad, 1], [3], { dtype: 'i32' }), { ignoreIndex: -7 });
      expectThrowMentioning(fn, String(bad), '5');
    }
    // -100 is fine with the default ignoreIndex
    expect(() => crossEntropy(z([3, 5]), Tensor.fromArray([0, -100, 1], [3], { dtype: 'i32' }))).not.toThrow();
  });

  it('rope positions of the wrong length and bad rotaryDim', () => {
    expectThrowMentioning(() => rope(z([2, 3, 1, 4]), z([4], 'i32')), 'positions');
    expectThrowMentioning(() => rope(z([2, 3, 1, 4]), z([3], 'i32'), { rotaryDim: 3 }), 'rotaryDim');
    expectThrowMentioning(() => rope(z([2, 3, 1, 4]), z([3], 'i32'), { rotaryDim: 6 }), 'rotaryDim');
    expectThrowMentioning(() => rope(z([2, 3, 1, 4]), z([3], 'i32'), { invFreq: new Float64Array(3) }), 'invFreq');
  });
});

describe('topk k validation', () => {
  it('k > n, negative, or not an integer', () => {
    for (const k of [6, -1, 1.5, Number.NaN]) expectThrowMentioning(() => topk(z([2, 5]), k), 'k', '5');
    expect(topk(z([2, 5]), 5).values.shape).toEqual([2, 5]);
  });
});

describe('klDiv teacher must not require grad', () => {
  it('throws naming the teacher, and accepts a detached teacher', () => {
    const s = z([2, 3], 'f32', true), te = z([2, 3], 'f32', true);
    expectThrowMentioning(() => klDiv(s, te), 'teacher');
    expect(() => klDiv(s, te.detach())).not.toThrow();
  });

  it('temperature must be positive', () => {
    expectThrowMentioning(() => klDiv(z([2, 3]), z([2, 3]), { temperature: 0 }), 'temperature');
  });
});

describe('misc', () => {
  it('KVCache overflow and attend with a grad-requiring q', () => {
    const cache = new KVCache(1, 2, 1, 2);
    cache.append(z([1, 2, 1, 2]), z([1, 2, 1, 2]));
    expectThrowMentioning(() => cache.append(z([1, 1, 1, 2]), z([1, 1, 1, 2])), 'maxSeq');
    expectThrowMentioning(() => cache.attend(z([1, 1, 1, 2], 'f32', true)), 'noGrad');
  });

  it('AdamW rejects parameters that do not require grad', () => {
    expectThrowMentioning(() => new AdamW([z([3])]), 'require');
  });

  it('mean over an empty dimension', () => {
    expectThrowMentioning(() => mean(z([2, 0]), 1), 'f32[2, 0]');
  });
});
