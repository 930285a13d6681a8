// Element types. bf16 is stored as raw 16-bit patterns (Uint16Array) and computed in f32; f64 exists for
// references and gradcheck (the plain-TS kernels run it), not as a training dtype.

export type DType = 'f32' | 'f64' | 'bf16' | 'i32';
export type FloatDType = 'f32' | 'f64' | 'bf16';

export interface DTypeArrays {
  f32: Float32Array;
  f64: Float64Array;
  bf16: Uint16Array;
  i32: Int32Array;
}
export type TypedArray = DTypeArrays[DType];

export const DTYPES: readonly DType[] = ['f32', 'f64', 'bf16', 'i32'];

export function isFloatDType(d: DType): d is FloatDType {
  return d !== 'i32';
}

export function bytesPerElement(d: DType): number {
  return d === 'f64' ? 8 : d === 'bf16' ? 2 : 4;
}

export function allocate<D extends DType>(dtype: D, n: number): DTypeArrays[D] {
  switch (dtype) {
    case 'f32': return new Float32Array(n) as DTypeArrays[D];
    case 'f64': return new Float64Array(n) as DTypeArrays[D];
    case 'bf16': return new Uint16Array(n) as DTypeArrays[D];
    case 'i32': return new Int32Array(n) as DTypeArrays[D];
    default: throw new Error(`unknown dtype '${String(dtype)}': expected one of ${DTYPES.join(', ')}`);
  }
}

/**
 * Like `allocate` but the contents are unspecified (torch.empty): for outputs a kernel overwrites completely.
 * Uses the runtime's uninitialised allocation when it has one (Node and Bun: Buffer.allocUnsafe, which skips
 * zero-filling and V8's slower ArrayBuffer path: ~1 µs instead of ~6 µs for 64 KiB); plain `allocate` elsewhere.
 */
export function allocateUninitialized<D extends DType>(dtype: D, n: number): DTypeArrays[D] {
  const unsafe = bufferAllocUnsafe;
  if (!unsafe || n < 64) return allocate(dtype, n);
  const bytes = bytesPerElement(dtype);
  const b = unsafe(n * bytes); // Node aligns pooled slices to 8 bytes, enough for every dtype here
  switch (dtype) {
    case 'f32': return new Float32Array(b.buffer, b.byteOffset, n) as DTypeArrays[D];
    case 'f64': return new Float64Array(b.buffer, b.byteOffset, n) as DTypeArrays[D];
    case 'bf16': return new Uint16Array(b.buffer, b.byteOffset, n) as DTypeArrays[D];
    case 'i32': return new Int32Array(b.buffer, b.byteOffset, n) as DTypeArrays[D];
    default: return allocate(dtype, n);
  }
}

type AllocUnsafe = (size: number) => { buffer: ArrayBuffer; byteOffset: number };
// Feature-detected, not imported, so the package still runs where there is no Buffer (browsers, Deno without
// node compat).
const bufferAllocUnsafe: AllocUnsafe | undefined = (globalThis as { Buffer?: { allocUnsafe?: AllocUnsafe } }).Buffer?.allocUnsafe;

export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Float64Array) return 'f64';
  if (a instanceof Uint16Array) return 'bf16';
  if (a instanceof Int32Array) return 'i32';
  throw new Error(`unsupported array type ${Object.prototype.toString.call(a)}: expected Float32Array, Float64Array, Uint16Array (bf16) or Int32Array`);
}

// --- bf16 <-> f32 (round to nearest even; NaN stays a quiet NaN), as PyTorch does ---------------------------
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff; // NaN -> quiet NaN
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0]!;
}

/** Converts `src` (any dtype) into a new array of `dtype`. Float -> i32 truncates toward zero. */
export function convertArray<D extends DType>(src: TypedArray, from: DType, dtype: D): DTypeArrays[D] {
  const n = src.length;
  const out = allocate(dtype, n);
  if (from === dtype) { out.set(src as never); return out; }
  if (from === 'bf16') {
    for (let i = 0; i < n; i++) {
      const v = bf16BitsToF32(src[i]!);
      out[i] = dtype === 'i32' ? Math.trunc(v) : v;
    }
  } else if (dtype === 'bf16') {
    for (let i = 0; i < n; i++) out[i] = f32ToBf16Bits(src[i]!);
  } else if (dtype === 'i32') {
    for (let i = 0; i < n; i++) out[i] = Math.trunc(src[i]!);
  } else {
    out.set(src as never);
  }
  return out;
}
