// What the GPU ops need per device, kept on @farskip/tensor's DeviceContext (so it lives and dies with the device's
// streams): the CUDA kernel module (fatbin loaded on first use) and a cuBLAS handle bound to the compute stream.
// Every launch goes to the compute stream, where the tensors' allocations, copies and memsets are ordered too.
import { Cublas } from '@farskip/device';
import type { DeviceContext } from '@farskip/tensor';
import type { KernelArg } from './manifest.js';
import { CudaKernelModule } from './module.js';

const MODULE = Symbol('farskip.kernels.cudaModule');
const BLAS = Symbol('farskip.kernels.cublas');

export function kernelModule(ctx: DeviceContext): CudaKernelModule {
  return ctx.extension(MODULE, (c) => new CudaKernelModule(c.runtime), (m) => m.dispose());
}

export function cublas(ctx: DeviceContext): Cublas {
  return ctx.extension(BLAS, (c) => new Cublas(c.runtime, { stream: c.computeStream }), (b) => b.destroy());
}

/** Launches kernel `name` (from kernels.json) on the compute stream of `ctx`. */
export function launch(ctx: DeviceContext, name: string, args: Record<string, KernelArg>, extra?: Record<string, number>): void {
  ctx.activate();
  kernelModule(ctx).launch(name, args, { stream: ctx.computeStream, ...(extra ? { extra } : {}) });
}
