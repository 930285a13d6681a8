// Top-k over the last dim (router expert selection): values descending, ties keep the lower index first.
import { Tensor, recordOp } from '@farskip/tensor';
import { cpuBackend } from '../backend/select.js';
import { arr, describe, empty, lastDim, requireFloat, withF32 } from './util.js';

export interface TopK { values: Tensor; indices: Tensor }

/** x [..., n] -> values [..., k] (differentiable) and indices i32 [..., k]. */
export function topk(x: Tensor, k: number): TopK {
  requireFloat('topk', 'x', x);
  const n = lastDim('topk', 'x', x);
  if (!Number.isInteger(k) || k < 0 || k > n) throw new Error(`topk: k=${k} must be an integer in [0, ${n}] for x ${describe(x)}`);
  if (x.dtype === 'bf16') {
    let indices: Tensor | null = null;
    const values = withF32([x], (t) => { const r = topk(t, k); indices = r.indices; return r.values; });
    return { values, indices: indices! };
  }
  const rows = n === 0 ? 0 : x.numel / n;
  const shape = [...x.shape.slice(0, -1), k];
  const values = empty(shape, x.dtype);
  const indices = Tensor.empty(shape, { dtype: 'i32' });
  cpuBackend(x.dtype).topk(rows, n, k, arr(x), arr(values), indices.data as Int32Array);
  recordOp(values, 'topk', [x], (g) => {
    // scatter each selected value's gradient back to its position
    const gx = Tensor.zeros(x.shape, { dtype: g.dtype });
    const gd = gx.data as Float32Array, gs = g.data as Float32Array, idx = indices.data as Int32Array;
    for (let r = 0; r < rows; r++) for (let j = 0; j < k; j++) gd[r * n + idx[r * k + j]!] = gs[r * k + j]!;
    return [gx];
  });
  return { values, indices };
}
