// Index-based data movement (torch semantics): indexSelect, indexAdd, gather, scatterAdd. Indices are i32
// tensors and are range-checked with an error that names the offending index. Accumulation (indexAdd,
// scatterAdd, the backward of indexSelect/gather) runs in the tensor's own dtype for f32/f64, as torch does,
// and in float64 rounded once for bf16. indexSelect/indexAdd move whole slices (rows for dim 0: MoE
// permute/unpermute), so they cost a copy per slice, not index arithmetic per element.
import { recordOp } from './autograd.js';
import { type DType, type TypedArray, allocateUninitialized, bf16BitsToF32, convertArray } from './dtype.js';
import { formatShape, normDim, numelOf } from './shape.js';
import { Tensor } from './tensor.js';

function checkIndex(index: Tensor, what: string): Int32Array {
  if (index.dtype !== 'i32') throw new Error(`${what}: index must be an i32 tensor, got ${index.dtype}; convert with .to('i32')`);
  return index.data as Int32Array;
}

function checkRange(idx: Int32Array, size: number, what: string): void {
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i]!;
    if (v < 0 || v >= size) throw new Error(`${what}: index ${v} at position ${i} is out of range for a dimension of size ${size}`);
  }
}

function toF64(t: Tensor): Float64Array {
  const src = t.data as TypedArray;
  if (t.dtype === 'bf16') { const o = new Float64Array(src.length); for (let i = 0; i < o.length; i++) o[i] = bf16BitsToF32(src[i]!); return o; }
  return Float64Array.from(src as ArrayLike<number>);
}

/** out = x.indexSelect(dim, index): picks whole slices of `dim`. index: i32 [n]. */
export function indexSelect<D extends DType>(x: Tensor<D>, dim: number, index: Tensor): Tensor<D> {
  const d = normDim(dim, x.ndim, 'indexSelect');
  const idx = checkIndex(index, 'indexSelect');
  if (index.ndim !== 1) throw new Error(`indexSelect: index must be 1-D, got shape ${formatShape(index.shape)}`);
  const size = x.shape[d]!;
  checkRange(idx, size, 'indexSelect');
  const outer = numelOf(x.shape.slice(0, d)), inner = numelOf(x.shape.slice(d + 1));
  const n = idx.length;
  const shape = [...x.shape]; shape[d] = n;
  const src = x.data as TypedArray;
  const out = allocateUninitialized(x.dtype, outer * n * inner) as TypedArray;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < n; j++) {
      const from = (o * size + idx[j]!) * inner;
      out.set(src.subarray(from, from + inner) as never, (o * n + j) * inner);
    }
  }
  const result = new Tensor(out as never, shape, { dtype: x.dtype, device: x.device }) as Tensor<D>;
  return recordOp(result, 'indexSelect', [x], (g) => [addSlices(Tensor.zeros(x.shape, { dtype: g.dtype, device: g.device }), d, idx, g)]);
}

/** In place: target[..., idx[j], ...] += src[..., j, ...] along dim d (slices of `inner` elements). */
function addSlices<D extends DType>(target: Tensor<D>, d: number, idx: Int32Array, src: Tensor): Tensor<D> {
  const outer = numelOf(target.shape.slice(0, d)), size = target.shape[d]!, inner = numelOf(target.shape.slice(d + 1));
  const n = idx.length;
  if (target.dtype === 'bf16') {
    const acc = toF64(target), s = toF64(src);
    for (let o = 0; o < outer; o++) for (let j = 0; j < n; j++) {
      const to = (o * size + idx[j]!) * inner, from = (o * n + j) * inner;
      for (let i = 0; i < inner; i++) acc[to + i] += s[from + i]!;
    }
    (target.data as Uint16Array).set(convertArray(acc, 'f64', 'bf16'));
    return target;
  }
  const t = target.data as Float32Array | Float64Array, s = src.data as Float32Array | Float64Array;
  for (let o = 0; o < outer; o++) for (let j = 0; j < n; j++) {
    const to = (o * size + idx[j]!) * inner, from = (o * n + j) * inner;
    for (let i = 0; i < inner; i++) t[to + i] += s[from + i]!;
  }
  return target;
}

/**
 * torch.index_add: out = x + (src's slices j added at x's slices index[j] along `dim`). index i32 [n]; src has
 * x's shape with size n at `dim`. The MoE combine: x [tokens, hidden], src [tokens*k, hidden], index = token.
 */
export function indexAdd<D extends DType>(x: Tensor<D>, dim: number, index: Tensor, src: Tensor<D>): Tensor<D> {
  const d = normDim(dim, x.ndim, 'indexAdd');
  const idx = checkIndex(index, 'indexAdd');
  if (index.ndim !== 1) throw new Error(`indexAdd: index must be 1-D, got shape ${formatShape(index.shape)}`);
  if (src.dtype !== x.dtype) throw new Error(`indexAdd: src dtype ${src.dtype} differs from self dtype ${x.dtype}`);
  if (src.ndim !== x.ndim || src.shape.some((s, k) => (k === d ? s !== idx.length : s !== x.shape[k]))) {
    throw new Error(`indexAdd: src shape ${formatShape(src.shape)} must equal self shape ${formatShape(x.shape)} except dim ${d} = ${idx.length} (the index length)`);
  }
  checkRange(idx, x.shape[d]!, 'indexAdd');
  const out = new Tensor((x.data as TypedArray).slice() as never, x.shape, { dtype: x.dtype, device: x.device }) as Tensor<D>;
  addSlices(out, d, idx, src);
  return recordOp(out, 'indexAdd', [x, src], (g) => [g, src.requiresGrad ? indexSelect(g, d, index) : null]);
}

/** Element offsets for gather/scatter: for each position of `index` (shape of index), the offset into a tensor
 *  of shape `target` where dim `d` is replaced by the index value. */
function scatterOffsets(indexShape: readonly number[], target: readonly number[], d: number, idx: Int32Array): Int32Array {
  const outer = numelOf(indexShape.slice(0, d)), n = indexShape[d]!, inner = numelOf(indexShape.slice(d + 1));
  const tOuterStride = numelOf(target.slice(d)), tInner = numelOf(target.slice(d + 1));
  const offs = new Int32Array(idx.length);
  // index shape must fit inside target on every dim but d (torch requires index.size(k) <= target.size(k))
  const innerDims = indexShape.slice(d + 1), tInnerDims = target.slice(d + 1);
  const innerStrides = innerDims.map((_, k) => numelOf(innerDims.slice(k + 1)));
  const tInnerStrides = tInnerDims.map((_, k) => numelOf(tInnerDims.slice(k + 1)));
  const outerDims = indexShape.slice(0, d), tOuterDims = target.slice(0, d);
  const outerStrides = outerDims.map((_, k) => numelOf(outerDims.slice(k + 1)));
  const tOuterStrides = tOuterDims.map((_, k) => numelOf(tOuterDims.slice(k + 1)));
  for (let o = 0; o < outer; o++) {
    let tOuter = 0, rem = o;
    for (let k = 0; k < outerDims.length; k++) { const q = Math.floor(rem / outerStrides[k]!); rem -= q * outerStrides[k]!; tOuter += q * tOuterStrides[k]!; }
    for (let i = 0; i < inner; i++) {
      let tIn = 0, r = i;
      for (let k = 0; k < innerDims.length; k++) { const q = Math.floor(r / innerStrides[k]!); r -= q * innerStrides[k]!; tIn += q * tInnerStrides[k]!; }
      for (let j = 0; j < n; j++) {
        const p = (o * n + j) * inner + i;
        offs[p] = tOuter * tOuterStride + idx[p]! * tInner + tIn;
      }
    }
  }
  return offs;
}

function checkGatherShapes(what: string, x: Tensor, d: number, index: Tensor): void {
  if (index.ndim !== x.ndim || index.shape.some((s, k) => k !== d && s > x.shape[k]!)) {
    throw new Error(`${what}: index shape ${formatShape(index.shape)} must have ${x.ndim} dims and be no larger than ${formatShape(x.shape)} outside dim ${d}`);
  }
}

/** out[..., j, ...] = x[..., index[..., j, ...], ...] along `dim`; out has index's shape. */
export function gather<D extends DType>(x: Tensor<D>, dim: number, index: Tensor): Tensor<D> {
  const d = normDim(dim, x.ndim, 'gather');
  const idx = checkIndex(index, 'gather');
  checkGatherShapes('gather', x, d, index);
  checkRange(idx, x.shape[d]!, 'gather');
  const offs = scatterOffsets(index.shape, x.shape, d, idx);
  const src = x.data as TypedArray;
  const out = allocateUninitialized(x.dtype, idx.length) as TypedArray;
  for (let p = 0; p < offs.length; p++) out[p] = src[offs[p]!]!;
  const result = new Tensor(out as never, index.shape, { dtype: x.dtype, device: x.device }) as Tensor<D>;
  return recordOp(result, 'gather', [x], (g) => [scatterInto(Tensor.zeros(x.shape, { dtype: g.dtype, device: g.device }), offs, g)]);
}

/** In place: target.flat[offs[p]] += src.flat[p]. */
function scatterInto<D extends DType>(target: Tensor<D>, offs: Int32Array, src: Tensor): Tensor<D> {
  if (target.dtype === 'bf16') {
    const acc = toF64(target), s = toF64(src);
    for (let p = 0; p < offs.length; p++) acc[offs[p]!] += s[p]!;
    (target.data as Uint16Array).set(convertArray(acc, 'f64', 'bf16'));
    return target;
  }
  const t = target.data as Float32Array | Float64Array, s = src.data as Float32Array | Float64Array;
  for (let p = 0; p < offs.length; p++) t[offs[p]!] += s[p]!;
  return target;
}

/** out = x.clone(); out[..., index[..., j, ...], ...] += src[..., j, ...] along `dim` (index and src same shape). */
export function scatterAdd<D extends DType>(x: Tensor<D>, dim: number, index: Tensor, src: Tensor<D>): Tensor<D> {
  const d = normDim(dim, x.ndim, 'scatterAdd');
  const idx = checkIndex(index, 'scatterAdd');
  if (src.dtype !== x.dtype) throw new Error(`scatterAdd: src dtype ${src.dtype} differs from self dtype ${x.dtype}`);
  if (index.shape.length !== src.shape.length || index.shape.some((s, k) => s !== src.shape[k])) {
    throw new Error(`scatterAdd: index shape ${formatShape(index.shape)} must equal src shape ${formatShape(src.shape)}`);
  }
  checkGatherShapes('scatterAdd', x, d, index);
  checkRange(idx, x.shape[d]!, 'scatterAdd');
  const offs = scatterOffsets(index.shape, x.shape, d, idx);
  const result = scatterInto(new Tensor((x.data as TypedArray).slice() as never, x.shape, { dtype: x.dtype, device: x.device }) as Tensor<D>, offs, src);
  return recordOp(result, 'scatterAdd', [x, src], (g) => {
    const gs = g.data as TypedArray;
    const gsrc = allocateUninitialized(g.dtype, offs.length) as TypedArray;
    for (let p = 0; p < offs.length; p++) gsrc[p] = gs[offs[p]!]!;
    return [g, new Tensor(gsrc as never, src.shape, { dtype: g.dtype, device: g.device })];
  });
}
