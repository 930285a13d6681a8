// RMSNorm (HF Llama): y = x * rsqrt(mean(x^2) + eps) * w, plain TypeScript.
// x, y, dy, dx [rows, cols]; w, dw [cols]; rstd [rows].

import type { FloatArray } from '../types.js';

export function rmsnormFwd(rows: number, cols: number, x: FloatArray, w: FloatArray, eps: number,
  y: FloatArray, rstd: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) { const v = x[base + c]!; ss += v * v; }
    const rs = 1 / Math.sqrt(ss / cols + eps);
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) y[base + c] = x[base + c]! * rs * w[c]!;
  }
}

/**
 * With xhat = x * rstd and g = dy * w:
 *   dx = rstd * (g - xhat * mean(g * xhat))
 *   dw = sum over rows of dy * xhat          (overwritten)
 * rstd is the value the forward pass stored (read back, not recomputed).
 */
export function rmsnormBwd(rows: number, cols: number, x: FloatArray, w: FloatArray, rstd: FloatArray,
  dy: FloatArray, dx: FloatArray, dw: FloatArray): void {
  const dwAcc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const rs = rstd[r]!;
    let dot = 0; // sum_c (dy*w)[c] * xhat[c]
    for (let c = 0; c < cols; c++) {
      const xhat = x[base + c]! * rs, g = dy[base + c]!;
      dot += g * w[c]! * xhat;
      dwAcc[c] += g * xhat;
    }
    const meanDot = dot / cols;
    for (let c = 0; c < cols; c++) {
      const xhat = x[base + c]! * rs;
      dx[base + c] = rs * (dy[base + c]! * w[c]! - xhat * meanDot);
    }
  }
  for (let c = 0; c < cols; c++) dw[c] = dwAcc[c]!;
}
