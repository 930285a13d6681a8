// Tensor: shape, dtype, device and a contiguous row-major storage: a typed array (possibly a view into a larger
// buffer) on the CPU, device memory (DeviceStorage) on `cuda:N` / `hip:N`. Views that keep contiguity (reshape,
// leading-dim slices) share storage; anything else copies.
import { type BackwardOptions, Node, runBackward } from './autograd.js';
import { type DType, type DTypeArrays, type TypedArray, DTYPES, allocate, allocateUninitialized, bf16BitsToF32, bytesPerElement, convertArray, dtypeOfArray, f32ToBf16Bits } from './dtype.js';
import { type Device, parseDevice } from './device.js';
import type { DeviceStorage } from './device-context.js';
import { deviceDataGuard } from './device-data.js';
import { registerEngineOps } from './registry.js';
import { type Shape, checkShape, formatShape, numelOf } from './shape.js';
import { Random } from './random.js';
import * as transfer from './transfer.js';
import * as views from './views.js';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

/** Nested number arrays accepted by `tensor()`. */
export type NestedArray = number | readonly NestedArray[];

export class Tensor<D extends DType = DType> {
  readonly shape!: readonly number[];
  readonly dtype!: D;
  readonly device!: Device;
  /**
   * Contiguous row-major elements; bf16 holds raw 16-bit patterns. On a GPU device this is a guard that throws a
   * clear error on element access (device-data.ts explains why it is not a getter): use `.cpu()` or `.toArray()`.
   */
  readonly data!: DTypeArrays[D];
  /** The device memory of a `cuda:N` / `hip:N` tensor; null on the CPU. */
  readonly storage!: DeviceStorage | null;
  requiresGrad!: boolean;
  grad: Tensor | null = null;
  gradFn: Node | null = null;
  /** Keep `.grad` on this non-leaf tensor after backward (see retainGrad()). */
  retainsGrad = false;

  /**
   * `data` is a typed array on the host, or a DeviceStorage (with `device` and `dtype`). Host data with a GPU
   * `device` is uploaded there (as torch.tensor(data, device=...)).
   */
  constructor(data: DTypeArrays[D] | DeviceStorage, shape: Shape, options: { dtype?: D; device?: Device; requiresGrad?: boolean } = {}) {
    checkShape(shape);
    const device = options.device ?? 'cpu';
    // The CPU path pays one string comparison for device support; the device path lives outside the constructor
    // so that the constructor stays small enough for V8 to inline it into the ops that allocate outputs. (Hence
    // the definite-assignment `!` on the fields: initDeviceTensor assigns them, in the same order.)
    if (device !== 'cpu') { initDeviceTensor(this as never, data, shape, options, device); return; }
    // (a DeviceStorage here fails dtypeOfArray's check below: device storage needs its device option)
    data = data as DTypeArrays[D];
    const dtype = options.dtype ?? (dtypeOfArray(data) as D);
    const expectArray = dtypeOfArray(data);
    if (expectArray !== dtype) {
      throw new Error(`Tensor data is a ${data.constructor.name} but dtype is '${dtype}': pass the matching typed array ` +
        '(f32: Float32Array, f64: Float64Array, bf16: Uint16Array, i32: Int32Array)');
    }
    const n = numelOf(shape);
    if (data.length !== n) {
      throw new Error(`Tensor data has ${data.length} elements but shape ${formatShape(shape)} needs ${n}`);
    }
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = device;
    this.data = data;
    this.storage = null;
    this.requiresGrad = options.requiresGrad ?? false;
    if (this.requiresGrad && dtype === 'i32') throw new Error('an i32 tensor cannot require grad: only float dtypes are differentiable');
  }

  // ---- construction ----------------------------------------------------------------------------------
  static zeros<D extends DType = 'f32'>(shape: Shape, options: TensorOptions & { dtype?: D } = {}): Tensor<D> {
    checkShape(shape);
    const dtype = (options.dtype ?? 'f32') as D;
    if (options.device !== undefined && options.device !== 'cpu') return onDevice(shape, 0, dtype, options);
    return new Tensor(allocate(dtype, numelOf(shape)), shape, { ...options, dtype });
  }

  /** A tensor whose contents are unspecified (torch.empty); for outputs that are written completely. */
  static empty<D extends DType = 'f32'>(shape: Shape, options: TensorOptions & { dtype?: D } = {}): Tensor<D> {
    const dtype = (options.dtype ?? 'f32') as D;
    if (options.device !== undefined && options.device !== 'cpu') return onDevice(shape, null, dtype, options);
    return new Tensor(allocateUninitialized(dtype, numelOf(shape)), shape, { ...options, dtype });
  }

  /** On a GPU: a device memset for zeros and f32 / i32 values; bf16 / f64 values are filled on the host and uploaded. */
  static full<D extends DType = 'f32'>(shape: Shape, value: number, options: TensorOptions & { dtype?: D } = {}): Tensor<D> {
    if (options.device !== undefined && options.device !== 'cpu') return onDevice(shape, value, (options.dtype ?? 'f32') as D, options);
    const t = Tensor.zeros(shape, options);
    (t.data as TypedArray).fill(t.dtype === 'bf16' ? f32ToBf16Bits(value) : value);
    return t;
  }

  static ones<D extends DType = 'f32'>(shape: Shape, options: TensorOptions & { dtype?: D } = {}): Tensor<D> {
    return Tensor.full(shape, 1, options);
  }

  /** From a flat array of numbers (converted to `dtype`, default f32) and a shape. */
  static fromArray<D extends DType = 'f32'>(values: ArrayLike<number>, shape: Shape, options: TensorOptions & { dtype?: D } = {}): Tensor<D> {
    checkShape(shape);
    const dtype = (options.dtype ?? 'f32') as D;
    const n = numelOf(shape);
    if (values.length !== n) throw new Error(`fromArray: ${values.length} values do not fill shape ${formatShape(shape)} (${n} elements)`);
    const src = Float64Array.from(values as ArrayLike<number>);
    return new Tensor(convertArray(src, 'f64', dtype), shape, { ...options, dtype });
  }

  /** Standard normal samples from a seeded generator (scaled by `std`); generated on the host, then uploaded to `device`. */
  static randn<D extends DType = 'f32'>(shape: Shape, options: TensorOptions & { dtype?: D; seed?: number; std?: number } = {}): Tensor<D> {
    const rng = new Random(options.seed ?? 0);
    const std = options.std ?? 1;
    const vals = new Float64Array(numelOf(shape));
    for (let i = 0; i < vals.length; i++) vals[i] = rng.normal() * std;
    return Tensor.fromArray(vals, shape, options);
  }

  /** Uniform samples in [low, high) from a seeded generator. */
  static rand<D extends DType = 'f32'>(shape: Shape, options: TensorOptions & { dtype?: D; seed?: number; low?: number; high?: number } = {}): Tensor<D> {
    const rng = new Random(options.seed ?? 0);
    const lo = options.low ?? 0, hi = options.high ?? 1;
    const vals = new Float64Array(numelOf(shape));
    for (let i = 0; i < vals.length; i++) vals[i] = lo + (hi - lo) * rng.uniform();
    return Tensor.fromArray(vals, shape, options);
  }

  // ---- properties ----------------------------------------------------------------------------------------
  get ndim(): number { return this.shape.length; }
  get numel(): number { return this.data.length; }
  get isLeaf(): boolean { return this.gradFn === null; }

  size(dim: number): number {
    const d = dim < 0 ? dim + this.ndim : dim;
    const s = this.shape[d];
    if (s === undefined) throw new Error(`size(${dim}): tensor of shape ${formatShape(this.shape)} has ${this.ndim} dimensions`);
    return s;
  }

  /** The elements as plain numbers (bf16 decoded), row-major; a device tensor is downloaded (synchronizing its compute stream). */
  toArray(): number[] {
    const out = new Array<number>(this.numel);
    const d = (this.storage ? transfer.downloadArray(this) : this.data) as TypedArray;
    if (this.dtype === 'bf16') for (let i = 0; i < out.length; i++) out[i] = bf16BitsToF32(d[i]!);
    else for (let i = 0; i < out.length; i++) out[i] = d[i]!;
    return out;
  }

  item(): number {
    if (this.numel !== 1) throw new Error(`item() needs a tensor with one element, got shape ${formatShape(this.shape)}`);
    return this.toArray()[0]!;
  }

  toString(): string {
    const vals = this.toArray();
    const head = vals.slice(0, 8).map((v) => Number(v.toPrecision(5))).join(', ');
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.device}${this.requiresGrad ? ', requiresGrad' : ''}) [${head}${vals.length > 8 ? ', …' : ''}]`;
  }

  // ---- autograd ------------------------------------------------------------------------------------------
  /** Marks this tensor as a leaf that accumulates `.grad` (in place, returns this). */
  requiresGrad_(flag = true): this {
    if (flag && this.dtype === 'i32') throw new Error('an i32 tensor cannot require grad: only float dtypes are differentiable');
    if (!this.isLeaf && !flag) throw new Error('requiresGrad_(false) on a non-leaf tensor: use detach() instead');
    this.requiresGrad = flag;
    return this;
  }

  retainGrad(): this { this.retainsGrad = true; return this; }

  /** @internal hooks run after a gradient was accumulated into this leaf's `.grad` */
  postAccumulateGradHooks: ((t: Tensor) => void)[] | null = null;

  /**
   * Calls `hook(this)` each time backward accumulated a gradient into this leaf's `.grad` (as torch's
   * register_post_accumulate_grad_hook; data-parallel gradient buckets launch their all-reduce from it).
   */
  registerPostAccumulateGradHook(hook: (t: Tensor) => void): { remove(): void } {
    if (!this.isLeaf) throw new Error('registerPostAccumulateGradHook: only leaf tensors accumulate .grad; call it on a parameter');
    (this.postAccumulateGradHooks ??= []).push(hook);
    return { remove: () => { this.postAccumulateGradHooks = this.postAccumulateGradHooks?.filter((h) => h !== hook) ?? null; } };
  }

  /**
   * Backpropagates from this tensor. `gradient` defaults to 1 for a one-element tensor. Asynchronous
   * backward nodes (collectives) overlap the rest of the walk; the promise resolves when all grads are in.
   */
  backward(gradient?: Tensor, options?: BackwardOptions): Promise<void> {
    let seed = gradient;
    if (!seed) {
      if (this.numel !== 1) {
        throw new Error(`backward() without a gradient needs a one-element tensor, got shape ${formatShape(this.shape)}: pass the output gradient`);
      }
      seed = Tensor.ones(this.shape, { dtype: this.dtype, device: this.device });
    }
    if (seed.device !== this.device) {
      throw new Error(`backward(gradient): the gradient is on ${seed.device} but the tensor on ${this.device}; move it with .to('${this.device}')`);
    }
    if (seed.numel !== this.numel || seed.shape.length !== this.shape.length || seed.shape.some((d, i) => d !== this.shape[i])) {
      throw new Error(`backward(gradient): gradient shape ${formatShape(seed.shape)} does not match the tensor's ${formatShape(this.shape)}`);
    }
    return runBackward([this], [seed], options);
  }

  /** Same storage, cut from the graph. */
  detach(): Tensor<D> {
    return new Tensor(this.storage ?? this.data, this.shape, { dtype: this.dtype, device: this.device });
  }

  /** A copy with its own storage (differentiable). */
  clone(): Tensor<D> { return views.clone(this); }

  /**
   * `to(dtype)` converts the elements (differentiable between float dtypes; the gradient is converted back);
   * `to(device)` copies to 'cpu', 'cuda:N' or 'hip:N' (differentiable; itself when already there). The string
   * decides which: a dtype name ('f32', 'bf16', 'i32', 'f64') or a device.
   */
  to<E extends DType>(dtype: E): Tensor<E>;
  to(device: Device | 'cuda' | 'hip'): Tensor<D>;
  to(target: DType | Device | 'cuda' | 'hip'): Tensor {
    if ((DTYPES as readonly string[]).includes(target)) return views.cast(this, target as DType);
    return transfer.toDevice(this, target === 'cuda' || target === 'hip' ? `${target}:0` : parseDevice(target));
  }

  /** A copy on `cuda:index` (torch's .cuda()). */
  cuda(index = 0): Tensor<D> { return transfer.toDevice(this, `cuda:${index}`); }

  /** A copy on the CPU (this tensor when already there). */
  cpu(): Tensor<D> { return transfer.toDevice(this, 'cpu'); }

  /**
   * Returns a device tensor's memory to the caching allocator now instead of at garbage collection (views sharing
   * the storage, from reshape or detach, become unusable too). A no-op on the CPU.
   */
  dispose(): void { this.storage?.dispose(); }

  // ---- views and data movement (differentiable; see views.ts) ------------------------------------------
  reshape(...shape: number[]): Tensor<D> { return views.reshape(this, shape); }
  flatten(startDim = 0, endDim = -1): Tensor<D> { return views.flatten(this, startDim, endDim); }
  unsqueeze(dim: number): Tensor<D> { return views.unsqueeze(this, dim); }
  squeeze(dim?: number): Tensor<D> { return views.squeeze(this, dim); }
  transpose(dim0: number, dim1: number): Tensor<D> { return views.transpose(this, dim0, dim1); }
  permute(...dims: number[]): Tensor<D> { return views.permute(this, dims); }
  slice(dim: number, start: number, end?: number): Tensor<D> { return views.slice(this, dim, start, end); }
  expand(...shape: number[]): Tensor<D> { return views.expand(this, shape); }
}

/** Creates a tensor from nested arrays (shape inferred) or a flat array plus `shape`. */
export function tensor<D extends DType = 'f32'>(values: NestedArray, options: TensorOptions & { dtype?: D; shape?: Shape } = {}): Tensor<D> {
  const shape: number[] = [];
  let probe: NestedArray = values;
  while (Array.isArray(probe)) { shape.push(probe.length); probe = (probe as NestedArray[])[0] ?? 0; }
  const flat: number[] = [];
  const walk = (v: NestedArray): void => { if (typeof v === 'number') flat.push(v); else for (const e of v) walk(e); };
  walk(values);
  if (flat.length !== numelOf(shape)) throw new Error(`tensor(): ragged nested array; expected ${numelOf(shape)} values for shape ${formatShape(shape)}, got ${flat.length}`);
  return Tensor.fromArray(flat, options.shape ?? shape, options);
}

/** The fields of a tensor on a GPU `device` (assigned in the same order as the CPU path: one hidden class for both). */
function initDeviceTensor(t: { -readonly [K in keyof Tensor]: Tensor[K] }, data: TypedArray | DeviceStorage, shape: Shape,
  options: { dtype?: DType; requiresGrad?: boolean }, device: Device): void {
  const dtype = options.dtype ?? (ArrayBuffer.isView(data) ? dtypeOfArray(data) : undefined);
  if (dtype === undefined) throw new Error(`Tensor on ${device}: device storage needs options.dtype`);
  const n = numelOf(shape);
  const storage = ArrayBuffer.isView(data) ? transfer.uploadArray(checkedData(data, dtype, n, shape), dtype, parseDevice(device)) : data;
  if (storage.bytes < n * bytesPerElement(dtype)) {
    throw new Error(`Tensor storage has ${storage.bytes} bytes but ${dtype}${formatShape(shape)} needs ${n * bytesPerElement(dtype)}`);
  }
  t.shape = Object.freeze([...shape]);
  t.dtype = dtype;
  t.device = device;
  t.data = deviceDataGuard({ device, dtype, shape: t.shape, numel: n });
  t.storage = storage;
  t.requiresGrad = options.requiresGrad ?? false;
  if (t.requiresGrad && dtype === 'i32') throw new Error('an i32 tensor cannot require grad: only float dtypes are differentiable');
}

/** zeros / full (`value`) / empty (`value` null) on a GPU device (out of line: the CPU creators stay small). */
function onDevice<D extends DType>(shape: Shape, value: number | null, dtype: D, options: TensorOptions): Tensor<D> {
  checkShape(shape);
  const device = parseDevice(options.device!);
  const t = value === null ? transfer.deviceEmpty(shape, dtype, device) : transfer.deviceFull(shape, value, dtype, device);
  if (options.requiresGrad) t.requiresGrad_(true);
  return t;
}

/** Host data checked against dtype and shape, as the CPU constructor checks it (before it is uploaded). */
function checkedData(data: TypedArray, dtype: DType, n: number, shape: Shape): TypedArray {
  if (dtypeOfArray(data) !== dtype) {
    throw new Error(`Tensor data is a ${data.constructor.name} but dtype is '${dtype}': pass the matching typed array ` +
      '(f32: Float32Array, f64: Float64Array, bf16: Uint16Array, i32: Int32Array)');
  }
  if (data.length !== n) throw new Error(`Tensor data has ${data.length} elements but shape ${formatShape(shape)} needs ${n}`);
  return data;
}

// Default CPU gradient accumulation (a kernels package may register a faster one).
function plainAdd(a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype || a.numel !== b.numel) {
    throw new Error(`gradient accumulation: ${a.dtype}${formatShape(a.shape)} + ${b.dtype}${formatShape(b.shape)} mismatch`);
  }
  const out = Tensor.zeros(a.shape, { dtype: a.dtype });
  const x = a.data as TypedArray, y = b.data as TypedArray, o = out.data as TypedArray;
  if (a.dtype === 'bf16') for (let i = 0; i < o.length; i++) o[i] = f32ToBf16Bits(bf16BitsToF32(x[i]!) + bf16BitsToF32(y[i]!));
  else for (let i = 0; i < o.length; i++) o[i] = x[i]! + y[i]!;
  return out;
}
registerEngineOps('cpu', {
  add: plainAdd,
  addInPlace(dst, src) {
    const sum = plainAdd(dst, src);
    (dst.data as TypedArray).set(sum.data as never);
  },
});
