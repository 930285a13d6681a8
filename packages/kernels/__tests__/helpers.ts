// Test helpers: a seeded PRNG (mulberry32) so failures reproduce, random arrays, closeness assertions,
// and a central-difference gradient for float64 gradchecks.

import { expect } from 'vitest';

export type Rng = () => number;
type FloatCtor = Float32ArrayConstructor | Float64ArrayConstructor;

/** mulberry32: tiny 32-bit-state PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box-Muller) times `scale`. */
export function randn(rng: Rng, n: number, Ctor: FloatCtor = Float64Array, scale = 1): Float32Array | Float64Array {
  const out = new Ctor(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rng(), 1e-300), v = rng();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** Uniform samples in [lo, hi). */
export function randu(rng: Rng, n: number, lo: number, hi: number, Ctor: FloatCtor = Float64Array) {
  const out = new Ctor(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng();
  return out;
}

export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo));
}

export function randInts(rng: Rng, n: number, lo: number, hi: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = randInt(rng, lo, hi);
  return out;
}

export function toF32(x: ArrayLike<number>): Float32Array { return Float32Array.from(x); }
export function toF64(x: ArrayLike<number>): Float64Array { return Float64Array.from(x); }

export interface Tol { rtol: number; atol: number }

/**
 * Assert |actual - expected| <= atol + rtol * |expected| elementwise (NaN matches NaN, infinities must match
 * exactly). On failure the message names the label, the first bad index, the values and the max abs error.
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, label = ''): void {
  if (actual.length !== expected.length) throw new Error(`${label}: length ${actual.length} != ${expected.length}`);
  let firstBad = -1, maxErr = 0, maxIdx = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (!(Number.isNaN(e) && Number.isNaN(a)) && firstBad < 0) firstBad = i;
      continue;
    }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a !== e && firstBad < 0) firstBad = i;
      continue;
    }
    const err = Math.abs(a - e);
    if (err > maxErr) { maxErr = err; maxIdx = i; }
    if (err > tol.atol + tol.rtol * Math.abs(e) && firstBad < 0) firstBad = i;
  }
  if (firstBad >= 0) {
    throw new Error(`${label}: mismatch at [${firstBad}] actual=${actual[firstBad]} expected=${expected[firstBad]} ` +
      `(rtol=${tol.rtol}, atol=${tol.atol}); max |err|=${maxErr.toExponential(3)} at [${maxIdx}], n=${actual.length}`);
  }
}

export function expectEqualInts(actual: ArrayLike<number>, expected: ArrayLike<number>, label = ''): void {
  if (actual.length !== expected.length) throw new Error(`${label}: length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      throw new Error(`${label}: mismatch at [${i}] actual=${actual[i]} expected=${expected[i]}`);
    }
  }
}

/** Max |a - b| over finite entries (for reporting). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > m) m = d;
  }
  return m;
}

/**
 * Central-difference gradient of the scalar f() with respect to every entry of x (mutated and restored).
 * Float64 only; h = 1e-6 gives ~1e-9 relative accuracy for smooth f.
 */
export function numericGrad(x: Float64Array, f: () => number, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!;
    x[i] = x0 + h; const fp = f();
    x[i] = x0 - h; const fm = f();
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * `expect(actual).toAllBeClose(expected, tol, label)`: expectClose as a vitest matcher, so the assertion reads as one
 * at the call site and a failure carries expectClose's message (first bad index, values, max error).
 */
expect.extend({
  toAllBeClose(received: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, label = '') {
    try {
      expectClose(received, expected, tol, label);
      return { pass: true, message: () => `${label}: every element is within rtol=${tol.rtol}, atol=${tol.atol}` };
    } catch (e) {
      return { pass: false, message: () => (e as Error).message };
    }
  },
});

declare module 'vitest' {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  interface Assertion<T> { toAllBeClose(expected: ArrayLike<number>, tol: Tol, label?: string): void }
}
