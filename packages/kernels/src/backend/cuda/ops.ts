// The first GPU ops: the same forward and backward as the CPU ops of src/ops (same autograd nodes, same shapes,
// same gradient rules), running the CUDA kernels of native/cuda and cuBLAS on the device's compute stream. bf16
// tensors run the bf16 kernels directly (bf16 loads, f32 maths, bf16 stores with round-to-nearest-even), where the
// CPU path casts to f32 around an f32 kernel: the same values up to f32 rounding. Outputs are uninitialised device
// tensors that the kernels write completely. Backward closures call the public ops, which dispatch here again
// because the gradients are device tensors too.
import { type DType, type DeviceStorage, Tensor, broadcastShapes, recordOp, sameShape } from '@farskip/tensor';
import { kernelName, notOnDevice, sameDevice } from '../../ops/device.js';
import { mul, scale } from '../../ops/elementwise.js';
import { describe } from '../../ops/util.js';
import { cublas, launch } from './state.js';

type Kind = 'add' | 'sub' | 'mul';

/** The device memory of an operand; a CPU tensor here (e.g. a gradient computed on the host) is an error, never a null pointer. */
function dev(t: Tensor): DeviceStorage {
  if (t.storage === null) throw new Error(`a ${describe(t)} CPU tensor reached a GPU kernel (a gradient or operand on the wrong device): move it with .to(device)`);
  return t.storage;
}

function empty(like: Tensor, shape: readonly number[] = like.shape, dtype: DType = like.dtype): Tensor {
  return Tensor.empty(shape, { dtype, device: like.device });
}

/** Both operands in one dtype (the public ops' commonDtype checked it; engine ops and GEMM come here directly). */
function requireSameDtype(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) throw new Error(`${op}: a is ${describe(a)} but b is ${describe(b)}; convert one with .to('${a.dtype}')`);
}

// ---- elementwise ---------------------------------------------------------------------------------------------

/** a (op) b for equal shapes, a trailing row ([H] against [T, H]) or a column ([T, 1] against [T, H]). */
export function gpuBinary(kind: Kind, a: Tensor, b: Tensor, isSuffix: (x: readonly number[], y: readonly number[]) => boolean,
  isColumn: (full: readonly number[], col: readonly number[]) => boolean): Tensor {
  sameDevice(kind, { a, b });
  requireSameDtype(kind, a, b);
  if (sameShape(a.shape, b.shape)) return same(kind, a, b);
  const shape = broadcastShapes(a.shape, b.shape, kind);
  if (sameShape(shape, a.shape) && isSuffix(a.shape, b.shape)) return broadcastOp(kind, a, b, false, 'row');
  if (sameShape(shape, b.shape) && isSuffix(b.shape, a.shape) && kind !== 'sub') return broadcastOp(kind, b, a, true, 'row');
  if (isColumn(a.shape, b.shape)) return broadcastOp(kind, a, b, false, 'col');
  if (isColumn(b.shape, a.shape) && kind !== 'sub') return broadcastOp(kind, b, a, true, 'col');
  throw notOnDevice(kind, a, `broadcasting ${describe(a)} with ${describe(b)}: only equal shapes, a trailing row or a column run on the GPU`);
}

function same(kind: Kind, a: Tensor, b: Tensor): Tensor {
  const ctx = dev(a).ctx, out = empty(a);
  if (kind === 'mul') launch(ctx, kernelName(kind, 'mul', a), { n: a.numel, a: dev(a), b: dev(b), out: dev(out) });
  else launch(ctx, kernelName(kind, 'axpby', a), { n: a.numel, alpha: 1, a: dev(a), beta: kind === 'add' ? 1 : -1, b: dev(b), out: dev(out) });
  return recordOp(out, kind, [a, b], (g) => {
    if (kind === 'add') return [g, g];
    if (kind === 'sub') return [g, b.requiresGrad ? scale(g, -1) : null];
    return [a.requiresGrad ? mul(g, b) : null, b.requiresGrad ? mul(g, a) : null];
  });
}

/** full [rows, cols] (op) a row [cols] or a column [rows, 1]; `swapped`: the caller's operands were (small, full). */
function broadcastOp(kind: Kind, full: Tensor, small: Tensor, swapped: boolean, axis: 'row' | 'col'): Tensor {
  const ctx = dev(full).ctx;
  const rows = axis === 'row' ? (small.numel === 0 ? 0 : full.numel / small.numel) : small.numel;
  const cols = full.numel === 0 ? 0 : full.numel / Math.max(rows, 1);
  const operand = kind === 'sub' ? scaled(small, -1) : small;
  const out = empty(full);
  launch(ctx, kernelName(kind, `${kind === 'mul' ? 'mul' : 'add'}_${axis}`, full), { rows, cols, a: dev(full), b: dev(operand), out: dev(out) });
  const inputs = swapped ? [small, full] : [full, small];
  return recordOp(out, kind, inputs, (g) => {
    let gFull: Tensor | null, gSmall: Tensor | null;
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

/** Sums g [rows, cols] over the rows (to [cols]) or over the columns (to [rows, 1]): fs_sum_axis [outer, dim, inner]. */
function reduceTo(g: Tensor, shape: readonly number[], rows: number, cols: number, axis: 'row' | 'col'): Tensor {
  const out = empty(g, shape);
  const [outer, dim, inner] = axis === 'row' ? [1, rows, cols] : [rows, cols, 1];
  launch(dev(g).ctx, kernelName('sum', 'sum_axis', g), { outer, dim, inner, x: dev(g), out: dev(out) });
  return out;
}

/** a * s without recording autograd. */
function scaled(a: Tensor, s: number): Tensor {
  const out = empty(a);
  launch(dev(a).ctx, kernelName('scale', 'scale', a), { n: a.numel, a: dev(a), s, out: dev(out) });
  return out;
}

export function gpuScale(a: Tensor, s: number): Tensor {
  return recordOp(scaled(a, s), 'scale', [a], (g) => [scale(g, s)]);
}

/** a + s: a row broadcast of a one-element device tensor (s written by a memset for f32, uploaded for bf16). */
export function gpuAddScalar(a: Tensor, s: number): Tensor {
  const c = Tensor.full([1], s, { dtype: a.dtype, device: a.device });
  const out = empty(a);
  launch(dev(a).ctx, kernelName('add', 'add_row', a), { rows: a.numel, cols: 1, a: dev(a), b: dev(c), out: dev(out) });
  return recordOp(out, 'addScalar', [a], (g) => [g]);
}

// ---- activations and norms -----------------------------------------------------------------------------------

export function gpuSilu(x: Tensor): Tensor {
  const y = empty(x), ctx = dev(x).ctx;
  launch(ctx, kernelName('silu', 'silu_fwd', x), { n: x.numel, x: dev(x), y: dev(y) });
  return recordOp(y, 'silu', [x], (g) => {
    const dx = empty(x);
    launch(ctx, kernelName('silu', 'silu_bwd', x), { n: x.numel, x: dev(x), dy: dev(g), dx: dev(dx) });
    return [dx];
  });
}

export function gpuSwiglu(gate: Tensor, up: Tensor): Tensor {
  const ctx = sameDevice('swiglu', { gate, up });
  const y = empty(gate);
  launch(ctx, kernelName('swiglu', 'swiglu_fwd', gate), { n: gate.numel, gate: dev(gate), up: dev(up), y: dev(y) });
  return recordOp(y, 'swiglu', [gate, up], (g) => {
    const dg = empty(gate), du = empty(up);
    launch(ctx, kernelName('swiglu', 'swiglu_bwd', gate), { n: gate.numel, gate: dev(gate), up: dev(up), dy: dev(g), dgate: dev(dg), dup: dev(du) });
    return [dg, du];
  });
}

/**
 * x [rows, cols] (any leading shape), weight [cols]. rstd [rows] stays f32 for bf16 too (the kernels' convention).
 * The weight gradient is two deterministic kernels through an f32 workspace [P, cols] (partial sums, then their sum).
 */
export function gpuRmsNorm(x: Tensor, weight: Tensor, eps: number, rows: number, cols: number): Tensor {
  const ctx = sameDevice('rmsNorm', { x, weight });
  const y = empty(x), rstd = empty(x, [rows], 'f32');
  launch(ctx, kernelName('rmsNorm', 'rmsnorm_fwd', x), { rows, cols, x: dev(x), w: dev(weight), eps, y: dev(y), rstd: dev(rstd) });
  return recordOp(y, 'rmsNorm', [x, weight], (g) => {
    let dx: Tensor | null = null, dw: Tensor | null = null;
    if (x.requiresGrad) {
      dx = empty(x);
      launch(ctx, kernelName('rmsNorm', 'rmsnorm_bwd_dx', x), { rows, cols, x: dev(x), w: dev(weight), rstd: dev(rstd), dy: dev(g), dx: dev(dx) });
    }
    if (weight.requiresGrad) {
      dw = empty(weight);
      const P = Math.max(1, Math.min(Math.ceil(rows / 64), 1024));
      const partial = empty(x, [P, cols], 'f32');
      launch(ctx, kernelName('rmsNorm', 'rmsnorm_bwd_dw_partial', x), { rows, cols, x: dev(x), rstd: dev(rstd), dy: dev(g), partial: dev(partial) }, { P });
      launch(ctx, kernelName('rmsNorm', 'rmsnorm_bwd_dw_finalize', x), { P, cols, partial: dev(partial), dw: dev(dw) });
      partial.dispose(); // stream-ordered: the finalize kernel queued before still reads it
    }
    return [dx, dw];
  });
}

/** Softmax / log-softmax over the last dim of x [rows, cols]. */
export function gpuRowwise(name: string, x: Tensor, log: boolean, rows: number, cols: number): Tensor {
  const base = log ? 'log_softmax' : 'softmax';
  const y = empty(x), ctx = dev(x).ctx;
  launch(ctx, kernelName(name, `${base}_fwd`, x), { rows, cols, x: dev(x), y: dev(y) });
  return recordOp(y, name, [x], (g) => {
    const dx = empty(x);
    launch(ctx, kernelName(name, `${base}_bwd`, x), { rows, cols, y: dev(y), dy: dev(g), dx: dev(dx) });
    return [dx];
  });
}

// ---- matmul (cuBLAS) -----------------------------------------------------------------------------------------

/**
 * op(a) @ op(b) on the GPU: [M,K]x[K,N] or batched [B,M,K]x[B,K,N] (shapes already checked by mm), row-major with
 * the row strides of the stored operands, through cuBLAS on the compute stream (f32, or bf16 in / bf16 out with f32
 * accumulation). Returns the output unrecorded: mm records the same node for both paths.
 */
export function gpuGemm(a: Tensor, b: Tensor, transA: boolean, transB: boolean, dims: { batch: number; M: number; N: number; K: number },
  shape: readonly number[]): Tensor {
  const ctx = sameDevice('matmul', { a, b });
  requireSameDtype('matmul', a, b);
  if (a.dtype !== 'f32' && a.dtype !== 'bf16') throw notOnDevice('matmul', a, `${a.dtype}: cuBLAS GEMM here takes f32 and bf16`);
  const { batch, M, N, K } = dims;
  const nd = a.ndim, ar = a.shape[nd - 2]!, ac = a.shape[nd - 1]!, br = b.shape[nd - 2]!, bc = b.shape[nd - 1]!;
  const out = empty(a, shape);
  if (out.numel === 0) return out;
  ctx.activate();
  const blas = cublas(ctx);
  const dt = { a: a.dtype, b: a.dtype, c: a.dtype } as const;
  const tA = transA ? 'T' : 'N', tB = transB ? 'T' : 'N';
  if (batch === 1) blas.gemm(tA, tB, M, N, K, 1, dev(a).addr, ac, dev(b).addr, bc, 0, dev(out).addr, N, dt);
  else blas.gemmStridedBatched(tA, tB, M, N, K, 1, dev(a).addr, ac, ar * ac, dev(b).addr, bc, br * bc, 0, dev(out).addr, N, M * N, batch, dt);
  return out;
}

// ---- engine ops (gradient accumulation, casts) ----------------------------------------------------------------

/** dst += src in place (fs_axpby with out = a; each element is read before it is written by the same thread). */
export function gpuAddInPlace(dst: Tensor, src: Tensor): void {
  const ctx = sameDevice('gradient accumulation', { dst, src });
  requireSameDtype('gradient accumulation', dst, src);
  launch(ctx, kernelName('gradient accumulation', 'axpby', dst), { n: dst.numel, alpha: 1, a: dev(dst), beta: 1, b: dev(src), out: dev(dst) });
}

/** f32 <-> bf16 on the device (fs_f32_to_bf16 / fs_bf16_to_f32); other pairs through the host. Unrecorded. */
export function gpuCast(x: Tensor, dtype: DType): Tensor {
  const kernel = x.dtype === 'f32' && dtype === 'bf16' ? 'fs_f32_to_bf16' : x.dtype === 'bf16' && dtype === 'f32' ? 'fs_bf16_to_f32' : null;
  if (!kernel) return x.detach().cpu().to(dtype).to(x.device);
  const y = empty(x, x.shape, dtype);
  launch(dev(x).ctx, kernel, { n: x.numel, x: dev(x), y: dev(y) });
  return y;
}
