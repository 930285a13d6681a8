// top-k over the last dim of [rows, cols], plain TypeScript. Matches torch.topk(sorted=True):
// values descending, ties keep the lower index first, NaN counts as larger than everything (NaNs come first).
// values [rows, k] (same dtype as x), indices [rows, k] int32.

import type { FloatArray } from '../types.js';

/** True when value a (seen later, so at a higher index) must be placed before b. */
function beats(a: number, b: number): boolean {
  if (a !== a) return b === b; // NaN beats every non-NaN; NaN vs NaN: the lower index stays first
  return a > b;                // b NaN -> false
}

export function topk(rows: number, cols: number, k: number, x: FloatArray, values: FloatArray,
  indices: Int32Array): void {
  if (k <= 0) return;
  if (k <= 32) {
    // insertion into a sorted list of length <= k: O(cols * k), no allocation besides the k-lists
    const vals = new Float64Array(k), idx = new Int32Array(k);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let n = 0;
      for (let c = 0; c < cols; c++) {
        const val = x[base + c]!;
        if (n === k && !beats(val, vals[k - 1]!)) continue;
        // position: after every kept element that val does not strictly beat
        let p = n < k ? n : k - 1;
        while (p > 0 && beats(val, vals[p - 1]!)) { vals[p] = vals[p - 1]!; idx[p] = idx[p - 1]!; p--; }
        vals[p] = val; idx[p] = c;
        if (n < k) n++;
      }
      const out = r * k;
      for (let i = 0; i < k; i++) { values[out + i] = vals[i]!; indices[out + i] = idx[i]!; }
    }
    return;
  }
  // large k: full sort of the index permutation per row
  const order = new Int32Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) order[c] = c;
    order.sort((i, j) => {
      const a = x[base + i]!, b = x[base + j]!;
      if (beats(a, b)) return -1;
      if (beats(b, a)) return 1;
      return i - j;
    });
    const out = r * k;
    for (let i = 0; i < k; i++) { const c = order[i]!; values[out + i] = x[base + c]!; indices[out + i] = c; }
  }
}
