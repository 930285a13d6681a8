// Moving tensors between the host and a GPU, and creating tensors directly in device memory. Every copy and memset
// runs on the device's compute stream (device-context.ts), so it is ordered with the kernels that use the tensor;
// a download waits for that stream.
import { recordOp } from './autograd.js';
import { type DType, type DTypeArrays, type TypedArray, allocate, f32ToBf16Bits } from './dtype.js';
import type { Device } from './device.js';
import { type DeviceStorage, deviceContext, storageBytes } from './device-context.js';
import { type Shape, numelOf } from './shape.js';
import { Tensor } from './tensor.js';

/** A device copy of host elements (`data` is left untouched and may be reused at once). */
export function uploadArray(data: TypedArray, dtype: DType, device: Device): DeviceStorage {
  const storage = deviceContext(device).allocate(storageBytes(dtype, data.length));
  storage.upload(data);
  return storage;
}

/** The elements of a device tensor as a new host typed array (synchronizes the compute stream). */
export function downloadArray<D extends DType>(t: Tensor<D>): DTypeArrays[D] {
  const out = allocate(t.dtype, t.numel);
  t.storage!.download(out);
  return out;
}

/**
 * `x` on `device` (a copy; `x` itself when already there). Differentiable: the gradient moves back. GPU to another
 * GPU goes through the host (peer copies are not bound yet).
 */
export function toDevice<D extends DType>(x: Tensor<D>, device: Device): Tensor<D> {
  if (x.device === device) return x;
  const host = x.storage ? downloadArray(x) : (x.data as DTypeArrays[D]);
  const out = device === 'cpu'
    ? new Tensor(host, x.shape, { dtype: x.dtype })
    : new Tensor(uploadArray(host as TypedArray, x.dtype, device), x.shape, { dtype: x.dtype, device });
  return recordOp(out, `to(${device})`, [x], (g) => [toDevice(g, x.device)]);
}

/** Uninitialised device memory (torch.empty): for outputs a kernel writes completely. */
export function deviceEmpty<D extends DType>(shape: Shape, dtype: D, device: Device): Tensor<D> {
  const storage = deviceContext(device).allocate(storageBytes(dtype, numelOf(shape)));
  return new Tensor(storage, shape, { dtype, device });
}

/**
 * A device tensor filled with `value`: zeros and 32-bit patterns (f32, i32) by a memset on the device; bf16 and f64
 * patterns that a byte or 32-bit memset cannot write are filled on the host and uploaded.
 */
export function deviceFull<D extends DType>(shape: Shape, value: number, dtype: D, device: Device): Tensor<D> {
  const t = deviceEmpty(shape, dtype, device);
  const n = t.numel;
  if (n === 0) return t;
  const s = t.storage!, rt = s.ctx.runtime, stream = s.ctx.computeStream;
  s.ctx.activate();
  if (value === 0 && !Object.is(value, -0)) rt.memsetD8Async(s.addr, 0, s.bytes, stream);
  else if (dtype === 'f32') rt.memsetD32Async(s.addr, new Uint32Array(Float32Array.of(value).buffer)[0]!, n, stream);
  else if (dtype === 'i32') rt.memsetD32Async(s.addr, Math.trunc(value) >>> 0, n, stream);
  else {
    const host = allocate(dtype, n) as TypedArray;
    host.fill(dtype === 'bf16' ? f32ToBf16Bits(value) : value);
    s.upload(host);
  }
  return t;
}
