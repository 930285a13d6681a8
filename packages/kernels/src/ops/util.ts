// Shared plumbing for the differentiable ops: dtype checks that name both operands, output allocation, and
// the bf16 rule (bf16 tensors compute in f32: cast in, run the f32 kernel, cast out; the casts are
// differentiable so gradients come back in bf16 too).
import { type DType, type FloatDType, Tensor, deviceDataError, formatShape } from '@farskip/tensor';
import type { FloatArray } from '../backend/types.js';

export function describe(t: Pick<Tensor, 'dtype' | 'shape'>): string {
  return `${t.dtype}${formatShape(t.shape)}`;
}

export function requireFloat(op: string, name: string, t: Tensor): void {
  if (t.dtype === 'i32') throw new Error(`${op}: ${name} must be a float tensor (f32, bf16 or f64), got ${describe(t)}`);
}

export function requireIndex(op: string, name: string, t: Tensor): Int32Array {
  if (t.dtype !== 'i32') throw new Error(`${op}: ${name} must be an i32 tensor, got ${describe(t)}; convert with .to('i32')`);
  return t.data as Int32Array;
}

/** All float operands must share one dtype; the error names each operand. (Hot path: no allocation.) */
export function commonDtype(op: string, operands: Record<string, Tensor>): FloatDType {
  let dtype: DType | null = null;
  let firstName = '';
  for (const name in operands) {
    const t = operands[name]!;
    if (dtype === null) {
      requireFloat(op, name, t);
      dtype = t.dtype;
      firstName = name;
    } else if (t.dtype !== dtype) {
      requireFloat(op, name, t);
      const first = operands[firstName]!;
      throw new Error(`${op}: ${firstName} is ${describe(first)} but ${name} is ${describe(t)}; convert one with .to('${first.dtype}')`);
    }
  }
  return dtype as FloatDType;
}

export function lastDim(op: string, name: string, t: Tensor): number {
  if (t.ndim === 0) throw new Error(`${op}: ${name} must have at least one dimension, got a scalar`);
  return t.shape[t.ndim - 1]!;
}

/** A fresh output tensor of `dtype` with unspecified contents: every kernel output is written completely. */
export function empty(shape: readonly number[], dtype: DType): Tensor {
  return Tensor.empty(shape, { dtype });
}

/**
 * The elements a CPU kernel reads or writes. Every CPU op takes its operands' arrays here, so this is the one place
 * that turns "a device tensor reached a CPU-only op" into a clear error (one field load for CPU tensors).
 */
export function arr(t: Tensor): FloatArray {
  if (t.storage !== null) throw deviceDataError(t, 'a CPU kernel');
  return t.data as FloatArray;
}

/** Runs `fn` in f32 when any input is bf16, casting the result back; otherwise runs it as is. */
export function withF32<T extends Tensor[]>(inputs: T, fn: (...xs: T) => Tensor): Tensor {
  if (!inputs.some((t) => t.dtype === 'bf16')) return fn(...inputs);
  const cast = inputs.map((t) => (t.dtype === 'bf16' ? t.to('f32') : t)) as T;
  return fn(...cast).to('bf16');
}
