// The threads backend's WebAssembly SIMD sum/avg kernel (hand-assembled in src/threads/reduce.ts) against the JS
// loops it replaces: bit-identical for f32, f64 and i32 (wrapping), over lengths that exercise the 64-byte tail.
import { describe, expect, it } from 'vitest';
import { CHUNK, reduceChunk, reduceRange, simd, viewOf } from '../src/threads/reduce.js';
import type { View } from '../src/threads/reduce.js';

describe('threads reduce kernels', () => {
  it('WebAssembly SIMD is available on this runtime', () => {
    expect(simd()).not.toBeNull();
  });

  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (const dt of ['f32', 'f64', 'i32'] as const) {
    for (const op of ['sum', 'avg'] as const) {
      it(`${dt} ${op}: wasm result equals the JS loops`, () => {
        const bytes = dt === 'f64' ? 8 : 4;
        for (const ranks of [1, 2, 3, 5]) {
          for (const len of [1, 15, 16, 17, 1000, CHUNK - 1, CHUNK]) {
            const lo = 3, hi = lo + len;
            const srcs: View[] = Array.from({ length: ranks }, () => {
              const v = viewOf(dt, new SharedArrayBuffer((hi + 5) * bytes), 0, hi + 5);
              for (let i = 0; i < v.length; i++) v[i] = dt === 'i32' ? (rnd() * 2 ** 32) | 0 : (rnd() - 0.5) * 1e6;
              if (dt !== 'i32') { v[lo] = NaN; v[lo + 1] = Infinity; }
              return v;
            });
            const ref = viewOf(dt, new SharedArrayBuffer(CHUNK * bytes), 0, CHUNK);
            reduceRange(dt, op, ref, srcs, lo, hi);
            const got = reduceChunk(dt, op, viewOf(dt, new SharedArrayBuffer(CHUNK * bytes), 0, CHUNK), srcs, lo, hi);
            expect(got.length).toBe(len);
            expect(Array.from(got)).toEqual(Array.from(ref.subarray(0, len)));
          }
        }
      });
    }
  }
});
