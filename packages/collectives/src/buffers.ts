// Buffer classification shared by every backend: dtype from the typed array (bf16 = Uint16Array), and argument
// checks that produce an error naming the operation, the argument and the fix.
import type { CommBuffer, CommDType, DeviceBuffer, HostBuffer, ReduceOp } from './types.js';

export function isDeviceBuffer(b: CommBuffer): b is DeviceBuffer {
  return typeof (b as DeviceBuffer).ptr === 'bigint';
}

export function dtypeOf(b: CommBuffer): CommDType {
  if (isDeviceBuffer(b)) return b.dtype;
  if (b instanceof Float32Array) return 'f32';
  if (b instanceof Float64Array) return 'f64';
  if (b instanceof Uint16Array) return 'bf16';
  if (b instanceof Int32Array) return 'i32';
  if (b instanceof Uint8Array) return 'u8';
  throw new TypeError(`unsupported buffer ${Object.prototype.toString.call(b)}: expected Float32Array, Float64Array, Uint16Array (bf16), Int32Array or Uint8Array`);
}

export function bytesPer(d: CommDType): number {
  return d === 'f64' ? 8 : d === 'f32' || d === 'i32' ? 4 : d === 'bf16' ? 2 : 1;
}

export function lengthOf(b: CommBuffer): number {
  return isDeviceBuffer(b) ? b.length : (b as HostBuffer).length;
}

// bf16 <-> f32 for the backends that reduce bf16 in f32 (threads, mpi): round to nearest even, NaN stays a quiet
// NaN — the same rounding as PyTorch, NCCL and @farskip/tensor (not imported: this package stands alone).
const f32Cell = new Float32Array(1);
const u32Cell = new Uint32Array(f32Cell.buffer);

export function bf16ToF32(bits: number): number {
  u32Cell[0] = bits << 16;
  return f32Cell[0]!;
}

/** The raw bits `b` of an f32, rounded to a bf16 bit pattern. */
export function roundBitsToBf16(b: number): number {
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f32ToBf16(x: number): number {
  f32Cell[0] = x;
  return roundBitsToBf16(u32Cell[0]!);
}

export const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'avg', 'max', 'min'];
