// The engine, tested with tiny f64 ops defined here through recordOp, so the expected gradients are
// hand-derived maths independent of @farskip/kernels.
import { describe, expect, it } from 'vitest';
import { Tensor, noGrad, recordOp, isGradEnabled, gradcheck } from '@farskip/tensor';

const f64 = (vals: number[], shape = [vals.length], requiresGrad = false): Tensor =>
  Tensor.fromArray(vals, shape, { dtype: 'f64', requiresGrad });

function mul(a: Tensor, b: Tensor): Tensor {
  const x = a.data as Float64Array, y = b.data as Float64Array;
  const out = f64(Array.from(x, (v, i) => v * y[i]!), [...a.shape]);
  return recordOp(out, 'mul', [a, b], (g) => [mul(g, b), mul(g, a)]);
}
function add(a: Tensor, b: Tensor): Tensor {
  const x = a.data as Float64Array, y = b.data as Float64Array;
  return recordOp(f64(Array.from(x, (v, i) => v + y[i]!), [...a.shape]), 'add', [a, b], (g) => [g, g]);
}
function sum(a: Tensor): Tensor {
  const s = (a.data as Float64Array).reduce((p, v) => p + v, 0);
  return recordOp(f64([s], [1]), 'sum', [a], (g) => [f64(new Array(a.numel).fill(g.item()), [...a.shape])]);
}
/** Identity whose backward resolves later (as a collective would), logging when it ran. */
function asyncIdentity(a: Tensor, log: string[], delayMs: number, name: string): Tensor {
  const out = f64(Array.from(a.data as Float64Array), [...a.shape]);
  return recordOp(out, name, [a], (g) => {
    log.push(`${name}:start`);
    return new Promise((resolve) => setTimeout(() => { log.push(`${name}:done`); resolve([g]); }, delayMs));
  });
}

describe('autograd engine', () => {
  it('accumulates through shared subexpressions (d/dx of (x*x + x)*x = 3x^2 + 2x)', async () => {
    const x = f64([1.5, -2, 0.25], [3], true);
    const y = sum(mul(add(mul(x, x), x), x));
    await y.backward();
    const expected = [1.5, -2, 0.25].map((v) => 3 * v * v + 2 * v);
    expect(x.grad!.toArray()).toEqual(expected.map((e, i) => expect.closeTo(e, 12)) as never);
    expect(y.item()).toBeCloseTo([1.5, -2, 0.25].reduce((s, v) => s + v ** 3 + v ** 2, 0), 12);
  });

  it('ignores unused branches and leaves grads of unreached leaves null', async () => {
    const x = f64([1, 2], [2], true), unused = f64([3, 4], [2], true);
    const _branch = mul(x, unused); // built but not part of the loss
    void _branch;
    await sum(mul(x, x)).backward();
    expect(x.grad!.toArray()).toEqual([2, 4]);
    expect(unused.grad).toBeNull();
  });

  it('accumulates into leaves across backward calls and releases saved tensors', async () => {
    const x = f64([2], [1], true);
    const y = mul(x, x);
    expect(y.gradFn!.released).toBe(false);
    await y.backward();
    expect(y.gradFn!.released).toBe(true); // its closure (and the saved x, x) is dropped
    await expect(y.backward()).rejects.toThrow(/a second time.*retainGraph/);
    const z = mul(x, x);
    await z.backward(undefined, { retainGraph: true });
    await z.backward();
    expect(x.grad!.item()).toBe(12);
  });

  it('runs other ready nodes while an async node is pending and awaits it only for its consumers', async () => {
    const log: string[] = [];
    const x = f64([1, 2], [2], true), w = f64([3, 4], [2], true);
    // branch A: slow async node feeding x; branch B: plain nodes feeding w (created later, so run first)
    const a = asyncIdentity(x, log, 30, 'commA');
    const b = recordOp(mul(w, w), 'logB', [w], (g) => { log.push('B'); return [mul(g, mul(f64([2, 2]), w))]; });
    const c = recordOp(add(a, x), 'logC', [a, x], (g) => { log.push('C'); return [g, g]; });
    await sum(add(c, b)).backward();
    // the async node started before B ran and finished after: B did not wait for it
    expect(log.indexOf('commA:start')).toBeLessThan(log.indexOf('commA:done'));
    expect(log.indexOf('B')).toBeLessThan(log.indexOf('commA:done'));
    expect(x.grad!.toArray()).toEqual([2, 2]);
    expect(w.grad!.toArray()).toEqual([6, 8]);
  });

  it('propagates an async backward failure', async () => {
    const x = f64([1], [1], true);
    const y = recordOp(f64([1], [1]), 'failing', [x], () => Promise.reject(new Error('peer died')));
    await expect(y.backward()).rejects.toThrow('peer died');
  });

  it('noGrad records nothing and restores the mode', () => {
    const x = f64([1], [1], true);
    const y = noGrad(() => mul(x, x));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    expect(isGradEnabled()).toBe(true);
  });

  it('rejects a wrong seed shape and backward on a tensor without grad', async () => {
    const x = f64([1, 2], [2], true);
    expect(() => mul(x, x).backward(f64([1, 2, 3]))).toThrow(/\[3\].*\[2\]/);
    await expect(f64([1]).backward()).rejects.toThrow(/does not require grad/);
  });

  it('gradcheck passes a correct backward and catches a wrong one', async () => {
    const x = f64([0.3, -1.2, 2.5], [3], true);
    expect((await gradcheck((a) => mul(a, mul(a, a)), [x])).ok).toBe(true);
    const wrong = (a: Tensor): Tensor => {
      const out = f64(Array.from(a.data as Float64Array, (v) => v * v), [3]);
      return recordOp(out, 'badsquare', [a], (g) => [mul(g, a)]); // missing factor 2
    };
    const r = await gradcheck(wrong, [x]);
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/analytic/);
  });
});
