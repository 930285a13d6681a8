// Kind-generic entry points: what a caller that only knows "cuda" or "hip" (collectives' nccl/rccl backends, a
// device string 'cuda:N') uses.
import { CudaRuntime, cudaDeviceCount } from './cuda.js';
import { HipRuntime, hipDeviceCount } from './hip.js';
import type { GpuKind, GpuRuntime } from './runtime.js';

/** Number of visible devices of this kind; 0 when the library is missing or initialisation fails. */
export function gpuDeviceCount(kind: GpuKind): number {
  return kind === 'cuda' ? cudaDeviceCount() : hipDeviceCount();
}

/** Opens device `device` through the CUDA driver or HIP runtime; throws (naming the search or the reason) when absent. */
export function openGpu(kind: GpuKind, device: number): GpuRuntime {
  return kind === 'cuda' ? new CudaRuntime(device) : new HipRuntime(device);
}

/** Parses 'cuda:N' / 'hip:N' (N defaults to 0 for a bare 'cuda' / 'hip'). */
export function parseDevice(name: string): { kind: GpuKind; index: number } {
  const m = /^(cuda|hip)(?::(\d+))?$/.exec(name);
  if (!m) throw new Error(`device '${name}': expected 'cuda', 'cuda:N', 'hip' or 'hip:N'`);
  return { kind: m[1] as GpuKind, index: m[2] === undefined ? 0 : Number(m[2]) };
}
