// Elementwise arithmetic with NumPy broadcasting, and reductions. Fast paths: equal shapes (one fused
// kernel), a trailing-suffix operand such as a bias [hidden] against [tokens, hidden] (row kernels), and a
// column such as a routing weight [tokens, 1] against [tokens, hidden] (column kernels);
// other broadcasts expand the smaller operand first. Backward reduces gradients back to each input's shape.
import { type Tensor, broadcastShapes, normDim, numelOf, recordOp, sameShape } from '@farskip/tensor';
import { gpuAddScalar, gpuBinary, gpuScale } from '../backend/cuda/ops.js';
import { cpuBackend } from '../backend/select.js';
import { arr, commonDtype, describe, empty, requireFloat, withF32 } from './util.js';

/** True when `b`'s shape equals the trailing dims of `a`'s (e.g. [H] against [T, H]). */
export function isSuffix(a: readonly number[], b: readonly number[]): boolean {
  if (b.length > a.length) return false;
  for (let i = 1; i <= b.length; i++) if (a[a.length - i] !== b[b.length - i]) return false;
  return true;
}

type Kind = 'add' | 'sub' | 'mul';

function binary(kind: Kind, a: Tensor, b: Tensor): Tensor {
  const dtype = commonDtype(kind, { a, b });
  if (a.storage !== null || b.storage !== null) return gpuBinary(kind, a, b, isSuffix, isColumn);
  if (dtype === 'bf16') return withF32([a, b], (x, y) => binary(kind, x, y));
  if (sameShape(a.shape, b.shape)) return same(kind, a, b);
  let shape: number[];
  try {
    shape = broadcastShapes(a.shape, b.shape, kind);
  } catch {
    throw new Error(`${kind}: a ${describe(a)} and b ${describe(b)} do not broadcast (trailing dimensions must be equal or 1)`);
  }
  if (sameShape(shape, a.shape) && isSuffix(a.shape, b.shape)) return broadcastOp(kind, a, b, false, 'row');
  if (sameShape(shape, b.shape) && isSuffix(b.shape, a.shape) && kind !== 'sub') return broadcastOp(kind, b, a, true, 'row');
  if (isColumn(a.shape, b.shape)) return broadcastOp(kind, a, b, false, 'col');
  if (isColumn(b.shape, a.shape) && kind !== 'sub') return broadcastOp(kind, b, a, true, 'col');
  return same(kind, sameShape(a.shape, shape) ? a : a.expand(...shape), sameShape(b.shape, shape) ? b : b.expand(...shape));
}

function same(kind: Kind, a: Tensor, b: Tensor): Tensor {
  const be = cpuBackend(a.dtype);
  const out = empty(a.shape, a.dtype);
  if (kind === 'mul') be.mul(a.numel, arr(a), arr(b), arr(out));
  else be.axpby(a.numel, 1, arr(a), kind === 'add' ? 1 : -1, arr(b), arr(out));
  return recordOp(out, kind, [a, b], (g) => {
    if (kind === 'add') return [g, g];
    if (kind === 'sub') return [g, b.requiresGrad ? scale(g, -1) : null];
    return [a.requiresGrad ? mul(g, b) : null, b.requiresGrad ? mul(g, a) : null];
  });
}

/** True when `col` is `full`'s shape with the last dim 1 (e.g. a routing weight [T, 1] against [T, H]). */
export function isColumn(full: readonly number[], col: readonly number[]): boolean {
  const n = full.length;
  if (col.length !== n || n === 0 || col[n - 1] !== 1 || full[n - 1] === 1) return false;
  for (let i = 0; i < n - 1; i++) if (full[i] !== col[i]) return false;
  return true;
}

/**
 * full [rows, cols] (op) a broadcast operand: a row [cols] repeated down the rows, or a column [rows, 1]
 * repeated across the columns (`axis`). `swapped`: the caller's operands were (small, full).
 */
function broadcastOp(kind: Kind, full: Tensor, small: Tensor, swapped: boolean, axis: 'row' | 'col'): Tensor {
  const be = cpuBackend(full.dtype);
  const rows = axis === 'row' ? (small.numel === 0 ? 0 : full.numel / small.numel) : small.numel;
  const cols = full.numel === 0 ? 0 : full.numel / Math.max(rows, 1);
  const out = empty(full.shape, full.dtype);
  const fn = kind === 'mul' ? (axis === 'row' ? be.mulRow : be.mulCol) : (axis === 'row' ? be.addRow : be.addCol);
  let operand = small;
  if (kind === 'sub') {
    operand = empty(small.shape, small.dtype);
    be.scale(small.numel, arr(small), -1, arr(operand));
  }
  fn.call(be, rows, cols, arr(full), arr(operand), arr(out));
  const inputs = swapped ? [small, full] : [full, small];
  return recordOp(out, kind, inputs, (g) => {
    let gFull: Tensor | null = null, gSmall: Tensor | null = null;
    if (kind === 'mul') {
      gFull = full.requiresGrad ? mul(g, small) : null;
      gSmall = small.requiresGrad ? reduceTo(mul(g, full), small.shape, rows, cols, axis) : null;
    } else {
      gFull = g;
      gSmall = small.requiresGrad ? reduceTo(kind === 'sub' ? scale(g, -1) : g, small.shape, rows, cols, axis) : null;
    }
    return swapped ? [gSmall, gFull] : [gFull, gSmall];
  });
}

/** Sums g [rows, cols] over the rows (to a row [cols]) or over the columns (to a column [rows, 1]). */
function reduceTo(g: Tensor, shape: readonly number[], rows: number, cols: number, axis: 'row' | 'col'): Tensor {
  const out = empty(shape, g.dtype);
  if (axis === 'row') cpuBackend(g.dtype).sumAxis(1, rows, cols, arr(g), arr(out));
  else cpuBackend(g.dtype).sumAxis(rows, cols, 1, arr(g), arr(out));
  return out;
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === 'number' ? addScalar(a, b) : binary('add', a, b);
}
export function sub(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === 'number' ? addScalar(a, -b) : binary('sub', a, b);
}
export function mul(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === 'number' ? scale(a, b) : binary('mul', a, b);
}

export function addScalar(a: Tensor, s: number): Tensor {
  requireFloat('add', 'a', a);
  if (a.storage !== null) return gpuAddScalar(a, s);
  if (a.dtype === 'bf16') return withF32([a], (x) => addScalar(x, s));
  const out = empty(a.shape, a.dtype);
  const c = a.dtype === 'f64' ? Float64Array.of(s) : Float32Array.of(s);
  cpuBackend(a.dtype).addRow(a.numel, 1, arr(a), c, arr(out));
  return recordOp(out, 'addScalar', [a], (g) => [g]);
}

/** a * s for a number s. */
export function scale(a: Tensor, s: number): Tensor {
  requireFloat('scale', 'a', a);
  if (a.storage !== null) return gpuScale(a, s);
  if (a.dtype === 'bf16') return withF32([a], (x) => scale(x, s));
  const out = empty(a.shape, a.dtype);
  cpuBackend(a.dtype).scale(a.numel, arr(a), s, arr(out));
  return recordOp(out, 'scale', [a], (g) => [scale(g, s)]);
}

export function neg(a: Tensor): Tensor { return scale(a, -1); }

/** Sum over `dim` (all elements when omitted). */
export function sum(x: Tensor, dim?: number, keepdim = false): Tensor {
  requireFloat('sum', 'x', x);
  if (x.dtype === 'bf16') return withF32([x], (t) => sum(t, dim, keepdim));
  let outer = 1, n = x.numel, inner = 1, keptShape: number[] = x.shape.map(() => 1), shape: number[] = [];
  if (dim !== undefined) {
    const d = normDim(dim, x.ndim, 'sum');
    outer = numelOf(x.shape.slice(0, d)); n = x.shape[d]!; inner = numelOf(x.shape.slice(d + 1));
    keptShape = [...x.shape]; keptShape[d] = 1;
    shape = keepdim ? keptShape : keptShape.filter((_, i) => i !== d);
  } else if (keepdim) shape = keptShape;
  const out = empty(shape, x.dtype);
  cpuBackend(x.dtype).sumAxis(outer, n, inner, arr(x), arr(out));
  return recordOp(out, 'sum', [x], (g) => [g.reshape(...keptShape).expand(...x.shape)]);
}

export function mean(x: Tensor, dim?: number, keepdim = false): Tensor {
  const count = dim === undefined ? x.numel : x.shape[normDim(dim, x.ndim, 'mean')]!;
  if (count === 0) throw new Error(`mean: reducing an empty dimension of ${describe(x)}`);
  return scale(sum(x, dim, keepdim), 1 / count);
}
