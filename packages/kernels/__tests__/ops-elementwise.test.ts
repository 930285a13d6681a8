// add / sub / mul (NumPy broadcasting), scale / neg / addScalar, sum / mean: f32 forward against the float64
// reference on both backends, f64 gradcheck, f32 backward against f64 gradients, bf16.
import { describe, expect, it } from 'vitest';
import type { Tensor } from '@farskip/tensor';
import { add, addScalar, mean, mul, neg, scale, sub, sum, useBackend } from '@farskip/kernels';
import {
  Rng, assertClose, binaryRef, expectF32GradsMatchF64, expectGradcheck, gradsOf, maxAbs, prod, roundAllBf16, roundAllF32, sumRef, t,
} from './reference64.js';
import { BACKENDS, forBackends } from './for-backends.js';


type BinOp = (a: Tensor, b: Tensor) => Tensor;
const OPS: [string, BinOp, (x: number, y: number) => number][] = [
  ['add', add, (x, y) => x + y],
  ['sub', sub, (x, y) => x - y],
  ['mul', mul, (x, y) => x * y],
];
// (a shape, b shape): equal, trailing-suffix row (both orders), column [rows, 1] (both orders), multi-dim
// suffix, general broadcast, scalar tensor
const PAIRS: [number[], number[]][] = [
  [[17, 31], [17, 31]],
  [[33, 17], [33, 1]],
  [[33, 1], [33, 17]],
  [[2, 5, 9], [2, 5, 1]],
  [[1], [1]],
  [[3, 65], [65]],
  [[65], [3, 65]],
  [[2, 3, 17], [3, 17]],
  [[3, 17], [2, 3, 17]],
  [[3, 1, 5], [4, 1]],
  [[31, 1], [1, 17]],
  [[3, 5], []],
  [[], [7]],
  [[2, 1, 33], [2, 5, 1]],
];
const EW = { atol: 1e-6, rtol: 1e-6 }; // one f32 rounding of an exact op on f32 inputs

forBackends(() => {
  describe('binary forward f32 with broadcasting', () => {
    it.each(PAIRS)('%j op %j', (as, bs) => {
      const rng = new Rng(prod(as) * 7 + prod(bs));
      const a = roundAllF32(rng.randn(prod(as))), b = roundAllF32(rng.randn(prod(bs)));
      for (const [name, op, f] of OPS) {
        const ref = binaryRef(a, as, b, bs, f);
        const y = op(t(a, as), t(b, bs));
        expect(y.shape, name).toEqual(ref.shape);
        expect(y.dtype).toBe('f32');
        assertClose(y.data as Float32Array, ref.data, EW, `${name} ${JSON.stringify(as)} ${JSON.stringify(bs)}`);
      }
    });
  });

  describe('scalar ops forward f32', () => {
    it.each([[1], [17], [3, 31], [2, 65]])('shape %j', (...shape) => {
      const rng = new Rng(shape.length * 100 + shape[0]!);
      const a = roundAllF32(rng.randn(prod(shape)));
      const cases: [string, Tensor, (x: number) => number][] = [
        ['scale 2.5', scale(t(a, shape), 2.5), (x) => x * 2.5],
        ['neg', neg(t(a, shape)), (x) => -x],
        ['addScalar -0.75', addScalar(t(a, shape), -0.75), (x) => x - 0.75],
        ['add(a, 3)', add(t(a, shape), 3), (x) => x + 3],
        ['sub(a, 3)', sub(t(a, shape), 3), (x) => x - 3],
        ['mul(a, -0.5)', mul(t(a, shape), -0.5), (x) => x * -0.5],
      ];
      for (const [name, y, f] of cases) {
        expect(y.shape).toEqual(shape);
        assertClose(y.data as Float32Array, Float64Array.from(a, f), EW, name);
      }
    });
  });

  describe('sum / mean forward f32', () => {
    it.each([[[3, 17, 5]], [[65]], [[1, 31]], [[4, 33]]])('shape %j over every dim and all', (shape) => {
      const rng = new Rng(prod(shape));
      const x = roundAllF32(rng.randn(prod(shape)));
      const tol = { atol: 1e-6 * Math.sqrt(prod(shape)), rtol: 1e-5 };
      const all = sum(t(x, shape));
      expect(all.shape).toEqual([]);
      assertClose(all.data as Float32Array, sumRef(x, shape), tol, 'sum all');
      const m = mean(t(x, shape));
      assertClose(m.data as Float32Array, sumRef(x, shape).map((v) => v / prod(shape)), tol, 'mean all');
      const keep = sum(t(x, shape), undefined, true);
      expect(keep.shape).toEqual(shape.map(() => 1));
      for (let d = -shape.length; d < shape.length; d++) {
        const dd = d < 0 ? d + shape.length : d;
        const outShape = shape.filter((_, i) => i !== dd);
        const ref = sumRef(x, shape, d);
        const s = sum(t(x, shape), d);
        expect(s.shape).toEqual(outShape);
        assertClose(s.data as Float32Array, ref, tol, `sum dim ${d}`);
        const sk = sum(t(x, shape), d, true);
        expect(sk.shape).toEqual(shape.map((v, i) => (i === dd ? 1 : v)));
        assertClose(sk.data as Float32Array, ref, tol, `sum dim ${d} keepdim`);
        const md = mean(t(x, shape), d);
        assertClose(md.data as Float32Array, ref.map((v) => v / shape[dd]!), tol, `mean dim ${d}`);
      }
    });
  });

  describe('f32 backward against f64 gradients', () => {
    it('add / sub / mul with row and general broadcasting', async () => {
      const rng = new Rng(51);
      for (const [as, bs] of [[[3, 65], [65]], [[65], [3, 65]], [[33, 17], [33, 1]], [[33, 1], [33, 17]], [[3, 1, 5], [4, 1]], [[17, 31], [17, 31]]] as [number[], number[]][]) {
        for (const [name, op] of OPS) {
          await expectF32GradsMatchF64((a, b) => op(a!, b!), [rng.randn(prod(as)), rng.randn(prod(bs))], [as, bs], `${name} ${JSON.stringify(as)} ${JSON.stringify(bs)}`);
        }
      }
    });

    it('gradient accumulation into a leaf used twice: mul(x, x), add(x, x)', async () => {
      const rng = new Rng(53);
      await expectF32GradsMatchF64((a) => mul(a!, a!), [rng.randn(65 * 3)], [[3, 65]], 'mul(x,x)');
      await expectF32GradsMatchF64((a) => add(mul(a!, 2), a!), [rng.randn(1000)], [[1000]], 'add(2x,x)');
    });

    it('sum / mean / scale / addScalar', async () => {
      const rng = new Rng(52);
      const x = rng.randn(3 * 17 * 5);
      await expectF32GradsMatchF64((a) => sum(a!, 1), [x], [[3, 17, 5]], 'sum dim 1');
      await expectF32GradsMatchF64((a) => mean(a!, -1, true), [x], [[3, 17, 5]], 'mean dim -1 keepdim');
      await expectF32GradsMatchF64((a) => mean(a!), [x], [[3, 17, 5]], 'mean all');
      await expectF32GradsMatchF64((a) => addScalar(scale(a!, -1.5), 2), [x], [[3, 17, 5]], 'scale+addScalar');
    });
  });
});

describe('gradcheck (f64)', () => {
  it.each([
    [[2, 3], [2, 3]],
    [[2, 3], [3]],
    [[3], [2, 3]],
    [[3, 4], [3, 1]],
    [[3, 1], [3, 4]],
    [[2, 1, 3], [2, 1]],
    [[3, 1], [1, 2]],
    [[2, 3], []],
  ])('add / sub / mul %j op %j', async (as, bs) => {
    const rng = new Rng(prod(as) + 10 * prod(bs));
    for (const [name, op] of OPS) {
      await expectGradcheck((a, b) => op(a!, b!), [rng.randn(prod(as)), rng.randn(prod(bs))], [as, bs], name);
    }
  });

  it('same tensor on both sides (grads accumulate): mul(x, x), add(x, x)', async () => {
    const rng = new Rng(60);
    await expectGradcheck((x) => mul(x!, x!), [rng.randn(6)], [[2, 3]], 'mul(x,x)');
    await expectGradcheck((x) => add(x!, x!), [rng.randn(6)], [[2, 3]], 'add(x,x)');
  });

  it('scale / neg / addScalar / scalar add-sub-mul', async () => {
    const rng = new Rng(61);
    await expectGradcheck((x) => scale(x!, 1.7), [rng.randn(6)], [[2, 3]], 'scale');
    await expectGradcheck((x) => neg(x!), [rng.randn(6)], [[2, 3]], 'neg');
    await expectGradcheck((x) => addScalar(x!, 0.3), [rng.randn(6)], [[2, 3]], 'addScalar');
    await expectGradcheck((x) => mul(sub(add(x!, 2), 1), 3), [rng.randn(6)], [[2, 3]], 'scalar chain');
  });

  it('sum / mean over a dim, keepdim, and all', async () => {
    const rng = new Rng(62);
    const x = rng.randn(24), s = [2, 3, 4];
    for (const d of [0, 1, 2, -1]) {
      await expectGradcheck((a) => sum(a!, d), [x], [s], `sum ${d}`);
      await expectGradcheck((a) => mean(a!, d, true), [x], [s], `mean ${d} keepdim`);
    }
    await expectGradcheck((a) => sum(a!), [x], [s], 'sum all');
    await expectGradcheck((a) => mean(a!), [x], [s], 'mean all');
  });
});

describe('bf16', () => {
  for (const label of BACKENDS) {
    it(`add / mul bf16 (${label}) vs f64 of the rounded inputs, incl. row broadcast`, () => {
      useBackend(label === 'ts' ? 'ts' : 'auto');
      try {
        const rng = new Rng(71);
        for (const [as, bs] of [[[17, 31], [17, 31]], [[3, 65], [65]], [[3, 1, 5], [4, 1]]] as [number[], number[]][]) {
          const a = roundAllBf16(rng.randn(prod(as))), b = roundAllBf16(rng.randn(prod(bs)));
          for (const [name, op, f] of OPS) {
            const y = op(t(a, as, 'bf16'), t(b, bs, 'bf16'));
            expect(y.dtype).toBe('bf16');
            const ref = binaryRef(a, as, b, bs, f);
            // one rounding to bf16: half an ulp = 2^-9 relative
            assertClose(y.toArray(), ref.data, { atol: 1e-30, rtol: 2 ** -8 }, `bf16 ${name}`);
          }
        }
      } finally { useBackend('auto'); }
    });
  }

  it('sum / mean bf16 forward', () => {
    const rng = new Rng(73);
    const x = roundAllBf16(rng.randn(3 * 17));
    const s = sum(t(x, [3, 17], 'bf16'), 1);
    expect(s.dtype).toBe('bf16');
    assertClose(s.toArray(), sumRef(x, [3, 17], 1), { atol: 1e-5, rtol: 2 ** -8 }, 'bf16 sum');
    assertClose(mean(t(x, [3, 17], 'bf16')).toArray(), [sumRef(x, [3, 17])[0]! / 51], { atol: 1e-5, rtol: 2 ** -8 }, 'bf16 mean');
  });

  it('bf16 backward of mul gives bf16 grads close to f64', async () => {
    const rng = new Rng(72);
    const a = roundAllBf16(rng.randn(3 * 17)), b = roundAllBf16(rng.randn(17));
    const g64 = await gradsOf((x, y) => mul(x!, y!), [a, b], [[3, 17], [17]], 'f64');
    const gbf = await gradsOf((x, y) => mul(x!, y!), [a, b], [[3, 17], [17]], 'bf16');
    g64.forEach((g, i) => assertClose(gbf[i]!, g, { atol: 2 ** -7 * maxAbs(g), rtol: 2 ** -7 }, `bf16 mul grad[${i}]`));
  });
});
