// Views and data movement, all differentiable. Storage stays contiguous: reshape and leading-dimension
// slices share storage; transpose/permute/other slices/expand copy (the kernels only ever see contiguous data).
import { recordOp } from './autograd.js';
import { type DType, type TypedArray, allocateUninitialized, bf16BitsToF32, bytesPerElement, convertArray, isFloatDType } from './dtype.js';
import { engineCast } from './registry.js';
import { type Shape, formatShape, normDim, numelOf, stridesOf } from './shape.js';
import { Tensor } from './tensor.js';

function make<D extends DType>(like: Tensor<D>, data: TypedArray, shape: Shape): Tensor<D> {
  return new Tensor(data as never, shape, { dtype: like.dtype, device: like.device });
}

export function clone<D extends DType>(x: Tensor<D>): Tensor<D> {
  const out = x.storage
    ? new Tensor(x.storage.clone(x.numel * bytesPerElement(x.dtype)), x.shape, { dtype: x.dtype, device: x.device })
    : make(x, (x.data as TypedArray).slice(), x.shape);
  return recordOp(out, 'clone', [x], (g) => [g]);
}

export function cast<D extends DType, E extends DType>(x: Tensor<D>, dtype: E): Tensor<E> {
  if ((x.dtype as DType) === dtype) return x as unknown as Tensor<E>;
  const out = x.storage
    ? engineCast(x, dtype)
    : new Tensor(convertArray(x.data as TypedArray, x.dtype, dtype), x.shape, { dtype, device: x.device });
  if (!isFloatDType(dtype)) return out;
  return recordOp(out, `to(${dtype})`, [x], (g) => [cast(g, x.dtype)]);
}

export function reshape<D extends DType>(x: Tensor<D>, shape: readonly number[]): Tensor<D> {
  const s = [...shape];
  const infer = s.indexOf(-1);
  if (infer >= 0) {
    const known = s.reduce((a, d, i) => (i === infer ? a : a * d), 1);
    if (known === 0 || x.numel % known !== 0) throw new Error(`reshape: cannot infer -1 in ${formatShape(shape)} for ${x.numel} elements (shape ${formatShape(x.shape)})`);
    s[infer] = x.numel / known;
  }
  if (numelOf(s) !== x.numel) {
    throw new Error(`reshape: shape ${formatShape(shape)} has ${numelOf(s)} elements but the tensor ${formatShape(x.shape)} has ${x.numel}`);
  }
  // a device tensor's view shares its DeviceStorage (x.data is only a guard there)
  const out = new Tensor((x.storage ?? x.data) as never, s, { dtype: x.dtype, device: x.device }) as Tensor<D>;
  return recordOp(out, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

export function flatten<D extends DType>(x: Tensor<D>, startDim: number, endDim: number): Tensor<D> {
  if (x.ndim === 0) return reshape(x, [1]);
  const a = normDim(startDim, x.ndim, 'flatten'), b = normDim(endDim, x.ndim, 'flatten');
  const shape = [...x.shape.slice(0, a), numelOf(x.shape.slice(a, b + 1)), ...x.shape.slice(b + 1)];
  return reshape(x, shape);
}

export function unsqueeze<D extends DType>(x: Tensor<D>, dim: number): Tensor<D> {
  const d = normDim(dim, x.ndim + 1, 'unsqueeze');
  return reshape(x, [...x.shape.slice(0, d), 1, ...x.shape.slice(d)]);
}

export function squeeze<D extends DType>(x: Tensor<D>, dim?: number): Tensor<D> {
  if (dim === undefined) return reshape(x, x.shape.filter((s) => s !== 1));
  const d = normDim(dim, x.ndim, 'squeeze');
  if (x.shape[d] !== 1) return x;
  return reshape(x, [...x.shape.slice(0, d), ...x.shape.slice(d + 1)]);
}

/** Copies `src` (shape `shape`) into a new array laid out as the permutation `perm` of its dimensions. */
function permuteData(src: TypedArray, shape: Shape, perm: readonly number[], dtype: DType): TypedArray {
  const n = numelOf(shape);
  const out = allocateUninitialized(dtype, n) as TypedArray;
  const inStrides = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]!);
  const ndim = shape.length;
  if (n === 0) return out;
  // Walk the output in order with an odometer; the innermost output dim is contiguous in `out`.
  const strideOfOut = perm.map((p) => inStrides[p]!);
  const idx = new Array<number>(ndim).fill(0);
  const inner = outShape[ndim - 1] ?? 1;
  const innerStride = strideOfOut[ndim - 1] ?? 1;
  let o = 0;
  let base = 0;
  while (o < n) {
    for (let i = 0; i < inner; i++) out[o++] = src[base + i * innerStride]!;
    let d = ndim - 2;
    while (d >= 0) {
      idx[d]!++;
      base += strideOfOut[d]!;
      if (idx[d]! < outShape[d]!) break;
      base -= strideOfOut[d]! * outShape[d]!;
      idx[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
  return out;
}

export function permute<D extends DType>(x: Tensor<D>, dims: readonly number[]): Tensor<D> {
  if (dims.length !== x.ndim) throw new Error(`permute: ${dims.length} dims given for a tensor of shape ${formatShape(x.shape)}`);
  const perm = dims.map((d) => normDim(d, x.ndim, 'permute'));
  if (new Set(perm).size !== perm.length) throw new Error(`permute: dims ${formatShape(dims)} repeat a dimension`);
  const out = make(x, permuteData(x.data as TypedArray, x.shape, perm, x.dtype), perm.map((p) => x.shape[p]!));
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => { inverse[p] = i; });
  return recordOp(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

export function transpose<D extends DType>(x: Tensor<D>, dim0: number, dim1: number): Tensor<D> {
  const a = normDim(dim0, x.ndim, 'transpose'), b = normDim(dim1, x.ndim, 'transpose');
  const perm = x.shape.map((_, i) => i);
  perm[a] = b; perm[b] = a;
  return permute(x, perm);
}

/** x viewed as [outer, dim, inner]. */
function split3(shape: Shape, d: number): [number, number, number] {
  return [numelOf(shape.slice(0, d)), shape[d]!, numelOf(shape.slice(d + 1))];
}

export function slice<D extends DType>(x: Tensor<D>, dim: number, start: number, end?: number): Tensor<D> {
  const d = normDim(dim, x.ndim, 'slice');
  const size = x.shape[d]!;
  let s = start < 0 ? start + size : start;
  let e = end === undefined ? size : end < 0 ? end + size : end;
  s = Math.max(0, Math.min(size, s)); e = Math.max(s, Math.min(size, e));
  const shape = [...x.shape]; shape[d] = e - s;
  const [outer, , inner] = split3(x.shape, d);
  const src = x.data as TypedArray;
  let data: TypedArray;
  if (outer === 1) data = src.subarray(s * inner, e * inner) as TypedArray; // contiguous: share storage
  else {
    data = allocateUninitialized(x.dtype, outer * (e - s) * inner) as TypedArray;
    for (let o = 0; o < outer; o++) data.set(src.subarray((o * size + s) * inner, (o * size + e) * inner) as never, o * (e - s) * inner);
  }
  const out = make(x, data, shape);
  return recordOp(out, 'slice', [x], (g) => {
    const gx = Tensor.zeros(x.shape, { dtype: g.dtype, device: g.device });
    const gd = gx.data as TypedArray, gs = g.data as TypedArray;
    for (let o = 0; o < outer; o++) gd.set(gs.subarray(o * (e - s) * inner, (o + 1) * (e - s) * inner) as never, (o * size + s) * inner);
    return [gx];
  });
}

export function cat<D extends DType>(tensors: readonly Tensor<D>[], dim = 0): Tensor<D> {
  if (tensors.length === 0) throw new Error('cat: expected at least one tensor');
  const first = tensors[0]!;
  const d = normDim(dim, first.ndim, 'cat');
  tensors.forEach((t, i) => {
    if (t.dtype !== first.dtype) throw new Error(`cat: tensor ${i} has dtype ${t.dtype} but tensor 0 has ${first.dtype}`);
    if (t.ndim !== first.ndim || t.shape.some((s, j) => j !== d && s !== first.shape[j])) {
      throw new Error(`cat along dim ${d}: tensor ${i} has shape ${formatShape(t.shape)}, incompatible with tensor 0's ${formatShape(first.shape)}`);
    }
  });
  const sizes = tensors.map((t) => t.shape[d]!);
  const total = sizes.reduce((a, b) => a + b, 0);
  const shape = [...first.shape]; shape[d] = total;
  const [outer, , inner] = split3(shape, d);
  const out = allocateUninitialized(first.dtype, numelOf(shape)) as TypedArray;
  let off = 0;
  for (const t of tensors) {
    const len = t.shape[d]! * inner;
    const src = t.data as TypedArray;
    for (let o = 0; o < outer; o++) out.set(src.subarray(o * len, (o + 1) * len) as never, o * total * inner + off);
    off += len;
  }
  const result = make(first, out, shape);
  return recordOp(result, 'cat', tensors, (g) => split(g, sizes, d));
}

/** Splits along `dim` into pieces of `sizes` (an array) or of equal size `sizes` (last may be smaller). */
export function split<D extends DType>(x: Tensor<D>, sizes: number | readonly number[], dim = 0): Tensor<D>[] {
  const d = normDim(dim, x.ndim, 'split');
  const total = x.shape[d]!;
  let parts: number[];
  if (typeof sizes === 'number') {
    if (!(sizes > 0)) throw new Error(`split: size ${sizes} must be positive`);
    parts = [];
    for (let s = 0; s < total; s += sizes) parts.push(Math.min(sizes, total - s));
  } else parts = [...sizes];
  if (parts.reduce((a, b) => a + b, 0) !== total) {
    throw new Error(`split: sizes ${formatShape(parts)} sum to ${parts.reduce((a, b) => a + b, 0)} but dim ${d} of ${formatShape(x.shape)} is ${total}`);
  }
  let start = 0;
  return parts.map((p) => { const t = slice(x, d, start, start + p); start += p; return t; });
}

export function expand<D extends DType>(x: Tensor<D>, shape: readonly number[]): Tensor<D> {
  const n = shape.length;
  if (n < x.ndim) throw new Error(`expand: target ${formatShape(shape)} has fewer dims than ${formatShape(x.shape)}`);
  const inShape = [...new Array<number>(n - x.ndim).fill(1), ...x.shape];
  const target = shape.map((s, i) => (s === -1 ? inShape[i]! : s));
  target.forEach((s, i) => {
    if (inShape[i] !== 1 && inShape[i] !== s) throw new Error(`expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)} (dim ${i}: ${inShape[i]} vs ${s})`);
  });
  const inStrides = stridesOf(inShape).map((st, i) => (inShape[i] === 1 ? 0 : st));
  const total = numelOf(target);
  const src = x.data as TypedArray;
  const out = allocateUninitialized(x.dtype, total) as TypedArray;
  const outStrides = stridesOf(target);
  for (let i = 0; i < total; i++) {
    let rem = i, off = 0;
    for (let k = 0; k < n; k++) { const q = Math.floor(rem / outStrides[k]!); rem -= q * outStrides[k]!; off += q * inStrides[k]!; }
    out[i] = src[off]!;
  }
  const result = make(x, out, target);
  return recordOp(result, 'expand', [x], (g) => [reshape(sumToShape(g, inShape), x.shape)]);
}

/** Sums `g` over the dims where `shape` is 1 (the reverse of broadcasting); same ndim. */
export function sumToShape<D extends DType>(g: Tensor<D>, shape: readonly number[]): Tensor<D> {
  const outStrides = stridesOf(shape);
  const gStrides = stridesOf(g.shape);
  const acc = new Float64Array(numelOf(shape));
  const src = g.data as TypedArray;
  const decode = g.dtype === 'bf16';
  for (let i = 0; i < src.length; i++) {
    let rem = i, off = 0;
    for (let k = 0; k < shape.length; k++) {
      const q = Math.floor(rem / gStrides[k]!); rem -= q * gStrides[k]!;
      if (shape[k] !== 1) off += q * outStrides[k]!;
    }
    acc[off] += decode ? bf16BitsToF32(src[i]!) : src[i]!;
  }
  return new Tensor(convertArray(acc, 'f64', g.dtype) as never, shape, { dtype: g.dtype, device: g.device });
}

export { indexSelect, indexAdd, gather, scatterAdd } from './indexing.js';
