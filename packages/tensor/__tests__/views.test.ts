// Views and indexing against index arithmetic written out here; backward by gradcheck in f64.
import { describe, expect, it } from 'vitest';
import { Tensor, cat, split, indexSelect, indexAdd, gather, scatterAdd, gradcheck, tensor } from '@farskip/tensor';

const rnd = (shape: number[], seed: number): Tensor => Tensor.randn(shape, { dtype: 'f64', seed, requiresGrad: true });
const ids = (vals: number[], shape = [vals.length]): Tensor => Tensor.fromArray(vals, shape, { dtype: 'i32' });

describe('views', () => {
  it('reshape shares storage; transpose/permute copy with the right layout', () => {
    const x = Tensor.fromArray([0, 1, 2, 3, 4, 5], [2, 3]);
    expect(x.reshape(3, 2).data.buffer).toBe(x.data.buffer);
    expect(x.reshape(-1, 2).shape).toEqual([3, 2]);
    expect(x.transpose(0, 1).toArray()).toEqual([0, 3, 1, 4, 2, 5]);
    const y = Tensor.fromArray(Array.from({ length: 24 }, (_, i) => i), [2, 3, 4]);
    const p = y.permute(2, 0, 1); // p[k][i][j] = y[i][j][k] = 12i + 4j + k
    expect(p.shape).toEqual([4, 2, 3]);
    for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) {
      expect(p.data[k * 6 + i * 3 + j]).toBe(12 * i + 4 * j + k);
    }
    expect(() => x.reshape(4, 2)).toThrow(/\[4, 2\].*8.*\[2, 3\].*6/);
  });

  it('slice, cat, split, expand', () => {
    const x = Tensor.fromArray(Array.from({ length: 12 }, (_, i) => i), [3, 4]);
    expect(x.slice(1, 1, 3).toArray()).toEqual([1, 2, 5, 6, 9, 10]);
    expect(x.slice(0, -1).toArray()).toEqual([8, 9, 10, 11]);
    const [a, b] = split(x, [1, 3], 1);
    expect(a!.toArray()).toEqual([0, 4, 8]);
    expect(cat([a!, b!], 1).toArray()).toEqual(x.toArray());
    expect(split(x, 2, 0).map((t) => t.shape[0])).toEqual([2, 1]);
    expect(Tensor.fromArray([1, 2], [2, 1]).expand(2, 3).toArray()).toEqual([1, 1, 1, 2, 2, 2]);
    expect(() => cat([x, Tensor.zeros([2, 3])], 0)).toThrow(/tensor 1 has shape \[2, 3\].*\[3, 4\]/);
  });

  it('indexSelect, gather, scatterAdd follow torch semantics', () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(indexSelect(x, 1, ids([2, 0, 2])).toArray()).toEqual([3, 1, 3, 6, 4, 6]);
    expect(gather(x, 1, ids([0, 0, 2, 1], [2, 2])).toArray()).toEqual([1, 1, 6, 5]);
    const s = scatterAdd(Tensor.zeros([2, 3]), 1, ids([0, 0, 2, 1], [2, 2]), tensor([[1, 2], [3, 4]]));
    expect(s.toArray()).toEqual([3, 0, 0, 0, 4, 3]);
    expect(() => indexSelect(x, 0, ids([2]))).toThrow(/index 2 .* size 2/);
    // index_add along dim 0 with a repeated row (the MoE combine), and along dim 1
    const base = tensor([[1, 1], [2, 2], [3, 3]]);
    expect(indexAdd(base, 0, ids([2, 0, 2]), tensor([[10, 20], [30, 40], [50, 60]])).toArray()).toEqual([31, 41, 2, 2, 63, 83]);
    expect(indexAdd(base, 1, ids([1]), tensor([[5], [6], [7]])).toArray()).toEqual([1, 6, 2, 8, 3, 10]);
    expect(() => indexAdd(base, 0, ids([0]), tensor([[1, 2, 3]]))).toThrow(/src shape \[1, 3\].*\[3, 2\]/);
    expect(() => gather(x, 1, tensor([[0]]))).toThrow(/i32/);
  });

  it('bf16 round-trips with round-to-nearest-even', () => {
    const t = Tensor.fromArray([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -0.15625, NaN], [5]).to('bf16');
    const back = t.to('f32').toArray();
    expect(back.slice(0, 4)).toEqual([1, 1, 1 + 2 ** -6, -0.15625]);
    expect(Number.isNaN(back[4])).toBe(true);
  });

  it('gradients of every view op pass gradcheck', async () => {
    const checks: [string, (x: Tensor) => Tensor, number[]][] = [
      ['permute', (x) => x.permute(2, 0, 1), [2, 3, 4]],
      ['slice', (x) => x.slice(1, 1, 3), [3, 4]],
      ['expand', (x) => x.expand(3, 2, 4), [2, 1]],
      ['cat', (x) => cat([x, x.slice(0, 1)], 0), [3, 2]],
      ['split', (x) => split(x, [1, 2], 1)[1]!, [2, 3]],
      ['indexSelect', (x) => indexSelect(x, 0, ids([2, 0, 2])), [3, 2]],
      ['gather', (x) => gather(x, 1, ids([0, 0, 2, 1, 1, 1], [2, 3])), [2, 3]],
      ['clone/reshape', (x) => x.clone().reshape(6), [2, 3]],
    ];
    for (const [name, fn, shape] of checks) {
      const r = await gradcheck(fn, [rnd(shape, 7)]);
      expect(r.ok, `${name}: ${r.message}`).toBe(true);
    }
    const base = rnd([3, 2], 3), rows = rnd([4, 2], 4);
    const ia = await gradcheck((a, b) => indexAdd(a, 0, ids([2, 0, 2, 1]), b), [base, rows]);
    expect(ia.ok, ia.message).toBe(true);
    // bf16 accumulates in f64 and rounds once: 1 + 2^-8 four times = 1 + 2^-6 exactly representable
    const acc = indexAdd(Tensor.ones([1, 1], { dtype: 'bf16' }), 0, ids([0, 0, 0, 0]), Tensor.full([4, 1], 2 ** -8, { dtype: 'bf16' }));
    expect(acc.toArray()).toEqual([1 + 2 ** -6]);
    const self = rnd([2, 3], 1), src = rnd([2, 2], 2);
    const r = await gradcheck((a, b) => scatterAdd(a, 1, ids([0, 0, 2, 1], [2, 2]), b), [self, src]);
    expect(r.ok, r.message).toBe(true);
  });
});
