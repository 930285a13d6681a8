// Elementwise arithmetic with NumPy broadcasting, and reductions. Fast paths: equal shapes (one fused
// kernel) and a trailing-suffix operand such as a bias [hidden] against [tokens, hidden] (row kernels);
// other broadcasts expand the smaller operand first. Backward reduces gradients back to each input's shape.
import { type Tensor, broadcastShapes, normDim, numelOf, recordOp, sameShape } from '@farskip/tensor';
import { cpuBackend } from '../backend/select.js';
import { arr, commonDtype, describe, empty, requireFloat, withF32 } from './util.js';

/** True when `b`'s shape equals the trailing dims of `a`'s (e.g. [H] against [T, H]). */
function isSuffix(a: readonly number[], b: readonly number[]): boolean {
  if (b.length > a.length) return false;
  for (let i = 1; i <= b.length; i++) if (a[a.length - i] !== b[b.length - i]) return false;
  return true;
}

type Kind = 'add' | 'sub' | 'mul';

function binary(kind: Kind, a: Tensor, b: Tensor): Tensor {
  const dtype = commonDtype(kind, { a, b });
  if (dtype === 'bf16') return withF32([a, b], (x, y) => binary(kind, x, y));
  if (sameShape(a.shape, b.shape)) return same(kind, a, b);
  let shape: number[];
  try {
    shape = broadcastShapes(a.shape, b.shape, kind);
  } catch {
    throw new Error(`${kind}: a ${describe(a)} and b ${describe(b)} do not broadcast (trailing dimensions must be equal or 1)`);
  }
  if (sameShape(shape, a.shape) && isSuffix(a.shape, b.shape)) return rowOp(kind, a, b, false);
  if (sameShape(shape, b.shape) && isSuffix(b.shape, a.shape) && kind !== 'sub') return rowOp(kind, b, a, true);
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

/** full [.., cols] (op) row [cols]; `swapped` records that the caller's operands were (row, full). */
function rowOp(kind: 'add' | 'sub' | 'mul', full: Tensor, row: Tensor, swapped: boolean): Tensor {
  const be = cpuBackend(full.dtype);
  const cols = row.numel, rows = cols === 0 ? 0 : full.numel / cols;
  const out = empty(full.shape, full.dtype);
  if (kind === 'mul') be.mulRow(rows, cols, arr(full), arr(row), arr(out));
  else if (kind === 'add') be.addRow(rows, cols, arr(full), arr(row), arr(out));
  else {
    const neg = empty(row.shape, row.dtype);
    be.scale(cols, arr(row), -1, arr(neg));
    be.addRow(rows, cols, arr(full), arr(neg), arr(out));
  }
  const inputs = swapped ? [row, full] : [full, row];
  return recordOp(out, kind, inputs, (g) => {
    let gFull: Tensor | null = null, gRow: Tensor | null = null;
    if (kind === 'mul') {
      gFull = full.requiresGrad ? mul(g, row) : null;
      gRow = row.requiresGrad ? sumRows(mul(g, full), row.shape) : null;
    } else {
      gFull = g;
      gRow = row.requiresGrad ? sumRows(kind === 'sub' ? scale(g, -1) : g, row.shape) : null;
    }
    return swapped ? [gRow, gFull] : [gFull, gRow];
  });
}

/** Sums [rows, cols] down to [cols] and reshapes to `shape`. */
function sumRows(g: Tensor, shape: readonly number[]): Tensor {
  const cols = numelOf(shape);
  const out = empty(shape, g.dtype);
  cpuBackend(g.dtype).sumAxis(1, cols === 0 ? 0 : g.numel / cols, cols, arr(g), arr(out));
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
  if (a.dtype === 'bf16') return withF32([a], (x) => addScalar(x, s));
  const out = empty(a.shape, a.dtype);
  const c = a.dtype === 'f64' ? Float64Array.of(s) : Float32Array.of(s);
  cpuBackend(a.dtype).addRow(a.numel, 1, arr(a), c, arr(out));
  return recordOp(out, 'addScalar', [a], (g) => [g]);
}

/** a * s for a number s. */
export function scale(a: Tensor, s: number): Tensor {
  requireFloat('scale', 'a', a);
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
