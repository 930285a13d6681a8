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

export const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'avg', 'max', 'min'];
