// Rotary position embedding, rotate-half (HF Llama) convention, plain TypeScript.
//
// x, y [batch, seq, heads, head_dim]; positions [batch*seq] (int32); invFreq [rotDim/2].
// With h = rotDim/2 and angle = pos * invFreq[i] (i < h):
//   y[i]   = x[i]   * cos - x[i+h] * sin
//   y[i+h] = x[i+h] * cos + x[i]   * sin
// Dims >= rotDim are copied. inverse rotates by -angle (the backward pass). x === y (in place) is allowed.
// The angle is formed in f64 (HF forms it in f32; the difference is ~pos * 2^-24 rad).

import type { FloatArray } from '../types.js';

export function rope(batch: number, seq: number, heads: number, headDim: number, rotDim: number,
  positions: Int32Array, invFreq: FloatArray, inverse: boolean, x: FloatArray, y: FloatArray): void {
  const h = rotDim >> 1;
  const cos = new Float64Array(h), sin = new Float64Array(h);
  const sign = inverse ? -1 : 1;
  for (let bt = 0; bt < batch * seq; bt++) {
    // cos/sin for this token, shared by all heads
    const pos = positions[bt]!;
    for (let i = 0; i < h; i++) {
      const angle = pos * invFreq[i]!;
      cos[i] = Math.cos(angle);
      sin[i] = sign * Math.sin(angle);
    }
    for (let hd = 0; hd < heads; hd++) {
      const base = (bt * heads + hd) * headDim;
      for (let i = 0; i < h; i++) {
        const a = x[base + i]!, b = x[base + i + h]!;
        y[base + i] = a * cos[i]! - b * sin[i]!;
        y[base + i + h] = b * cos[i]! + a * sin[i]!;
      }
      if (x !== y) for (let d = rotDim; d < headDim; d++) y[base + d] = x[base + d]!;
    }
  }
}
