// Softmax and log-softmax over the last dim of [rows, cols], plain TypeScript (max-subtracted, f64 sums).

import type { FloatArray } from '../types.js';

/** y[r,:] = exp(x[r,:] - max) / sum(exp(x[r,:] - max)) */
export function softmaxFwd(rows: number, cols: number, x: FloatArray, y: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) { const v = x[base + c]!; if (v > mx || v !== v) mx = v; }
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[base + c]! - mx);
    const inv = 1 / sum;
    for (let c = 0; c < cols; c++) y[base + c] = Math.exp(x[base + c]! - mx) * inv;
  }
}

/** dx = y * (dy - sum(dy * y)) */
export function softmaxBwd(rows: number, cols: number, y: FloatArray, dy: FloatArray, dx: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += dy[base + c]! * y[base + c]!;
    for (let c = 0; c < cols; c++) dx[base + c] = y[base + c]! * (dy[base + c]! - dot);
  }
}

/** y[r,:] = x[r,:] - max - log(sum(exp(x[r,:] - max))) */
export function logSoftmaxFwd(rows: number, cols: number, x: FloatArray, y: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) { const v = x[base + c]!; if (v > mx || v !== v) mx = v; }
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[base + c]! - mx);
    const shift = mx + Math.log(sum);
    for (let c = 0; c < cols; c++) y[base + c] = x[base + c]! - shift;
  }
}

/** dx = dy - exp(y) * sum(dy) */
export function logSoftmaxBwd(rows: number, cols: number, y: FloatArray, dy: FloatArray, dx: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += dy[base + c]!;
    for (let c = 0; c < cols; c++) dx[base + c] = dy[base + c]! - Math.exp(y[base + c]!) * sum;
  }
}

/** log(sum(exp(x[off .. off+n)))) with max subtraction; -Infinity for an all -Infinity (or empty) row. */
export function logSumExp(x: FloatArray, off: number, n: number, invT = 1): number {
  let mx = -Infinity;
  for (let c = 0; c < n; c++) { const v = x[off + c]! * invT; if (v > mx || v !== v) mx = v; }
  if (mx === -Infinity) return -Infinity;
  let sum = 0;
  for (let c = 0; c < n; c++) sum += Math.exp(x[off + c]! * invT - mx);
  return mx + Math.log(sum);
}
