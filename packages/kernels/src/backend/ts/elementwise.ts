// Elementwise ops, row / column broadcasts, axis reduction and activations (SiLU / SwiGLU), plain TypeScript.
// Every output may alias an input of the same shape (each element is read before it is written).

import type { FloatArray } from '../types.js';

/** out[i] = alpha * a[i] + beta * b[i];  a, b, out [n] */
export function axpby(n: number, alpha: number, a: FloatArray, beta: number, b: FloatArray, out: FloatArray): void {
  for (let i = 0; i < n; i++) out[i] = alpha * a[i]! + beta * b[i]!;
}

/** out[i] = a[i] * b[i];  [n] */
export function mul(n: number, a: FloatArray, b: FloatArray, out: FloatArray): void {
  for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
}

/** out[i] = a[i] * s;  [n] */
export function scale(n: number, a: FloatArray, s: number, out: FloatArray): void {
  for (let i = 0; i < n; i++) out[i] = a[i]! * s;
}

/** out[r,c] = a[r,c] + b[c];  a, out [rows, cols], b [cols] */
export function addRow(rows: number, cols: number, a: FloatArray, b: FloatArray, out: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[base + c] = a[base + c]! + b[c]!;
  }
}

/** out[r,c] = a[r,c] * b[c];  a, out [rows, cols], b [cols] */
export function mulRow(rows: number, cols: number, a: FloatArray, b: FloatArray, out: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[base + c] = a[base + c]! * b[c]!;
  }
}

/** out[r,c] = a[r,c] + b[r];  a, out [rows, cols], b [rows] */
export function addCol(rows: number, cols: number, a: FloatArray, b: FloatArray, out: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols, v = b[r]!;
    for (let c = 0; c < cols; c++) out[base + c] = a[base + c]! + v;
  }
}

/** out[r,c] = a[r,c] * b[r];  a, out [rows, cols], b [rows] */
export function mulCol(rows: number, cols: number, a: FloatArray, b: FloatArray, out: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols, v = b[r]!;
    for (let c = 0; c < cols; c++) out[base + c] = a[base + c]! * v;
  }
}

/** x [outer, dim, inner] -> out [outer, inner] = sum over dim (f64 accumulation, so exact up to one rounding). */
export function sumAxis(outer: number, dim: number, inner: number, x: FloatArray, out: FloatArray): void {
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    acc.fill(0);
    const xBase = o * dim * inner;
    for (let d = 0; d < dim; d++) {
      const row = xBase + d * inner;
      for (let i = 0; i < inner; i++) acc[i] += x[row + i]!;
    }
    const oBase = o * inner;
    for (let i = 0; i < inner; i++) out[oBase + i] = acc[i]!;
  }
}

// ---- activations: silu(x) = x * sigmoid(x); swiglu(gate, up) = silu(gate) * up ----------------------------

/** y = x * sigmoid(x);  [n] */
export function siluFwd(n: number, x: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    y[i] = v / (1 + Math.exp(-v));
  }
}

/** dx = dy * silu'(x),  silu'(x) = s * (1 + x * (1 - s)),  s = sigmoid(x);  [n] */
export function siluBwd(n: number, x: FloatArray, dy: FloatArray, dx: FloatArray): void {
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    const s = 1 / (1 + Math.exp(-v));
    dx[i] = dy[i]! * s * (1 + v * (1 - s));
  }
}

/** y = silu(gate) * up;  [n] */
export function swigluFwd(n: number, gate: FloatArray, up: FloatArray, y: FloatArray): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    y[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

/** dgate = dy * up * silu'(gate);  dup = dy * silu(gate);  [n] */
export function swigluBwd(n: number, gate: FloatArray, up: FloatArray, dy: FloatArray,
  dgate: FloatArray, dup: FloatArray): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!, u = up[i]!, d = dy[i]!;
    const s = 1 / (1 + Math.exp(-g));
    dgate[i] = d * u * s * (1 + g * (1 - s));
    dup[i] = d * g * s;
  }
}

// ---- embedding ------------------------------------------------------------------------------------------

/** out[i, :] = table[ids[i], :];  ids [n], table [vocab, dim], out [n, dim] */
export function embeddingFwd(n: number, dim: number, ids: Int32Array, table: FloatArray, out: FloatArray): void {
  for (let i = 0; i < n; i++) {
    const src = ids[i]! * dim, dst = i * dim;
    for (let d = 0; d < dim; d++) out[dst + d] = table[src + d]!;
  }
}

/** dtable[ids[i], :] += dout[i, :]  (scatter-add; repeated ids accumulate) */
export function embeddingBwd(n: number, dim: number, ids: Int32Array, dout: FloatArray, dtable: FloatArray): void {
  for (let i = 0; i < n; i++) {
    const dst = ids[i]! * dim, src = i * dim;
    for (let d = 0; d < dim; d++) dtable[dst + d] += dout[src + d]!;
  }
}
