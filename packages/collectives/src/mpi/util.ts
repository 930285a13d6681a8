// bf16 <-> f32 conversion (bf16 reduces as f32 under MPI: MPI-3 has no bf16 datatype, and a user-defined
// MPI_Op would run a JS callback on MPI's thread) and small helpers for the mpi backend.
import { roundBitsToBf16 } from '../buffers.js';
import type { HostBuffer } from '../types.js';

/** bf16 bit patterns -> f32 (exact). */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return dst;
}

/** f32 -> bf16 with round-to-nearest-even; NaN stays a (quiet) NaN. `scale` multiplies first (avg). */
export function f32ToBf16(src: Float32Array, dst: Uint16Array, scale = 1): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  if (scale !== 1) for (let i = 0; i < src.length; i++) src[i] = src[i]! * scale;
  for (let i = 0; i < src.length; i++) dst[i] = roundBitsToBf16(bits[i]!);
}

/** avg = sum / size, in place (integers truncate toward zero). */
export function divideInPlace(buf: HostBuffer, size: number): void {
  if (size === 1) return;
  if (buf instanceof Int32Array) {
    for (let i = 0; i < buf.length; i++) buf[i] = Math.trunc(buf[i]! / size);
  } else if (buf instanceof Float32Array || buf instanceof Float64Array) {
    for (let i = 0; i < buf.length; i++) buf[i] = buf[i]! / size;
  }
}

export const INT_MAX = 0x7fffffff;

export function isCountArray(c: readonly number[] | undefined, size: number): boolean {
  return c !== undefined && c.length === size && c.every((v) => Number.isInteger(v) && v >= 0 && v <= INT_MAX);
}

export function prefix(counts: Int32Array): Int32Array {
  const d = new Int32Array(counts.length);
  for (let i = 1; i < counts.length; i++) d[i] = d[i - 1]! + counts[i - 1]!;
  return d;
}

export function sum(c: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < c.length; i++) s += c[i]!;
  return s;
}
