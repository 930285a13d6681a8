// nccl / rccl backends: NCCL (libnccl.so.2) + CUDA driver, RCCL (librccl.so) + HIP runtime, bound with koffi.
export { NcclCommunicator } from './communicator.js';
export { initNccl, initRccl, ncclAvailable, rcclAvailable, ncclUniqueId, uniqueIdStoreFrom } from './init.js';
export type { NcclInitOptions, StringRendezvous, UniqueIdStore } from './init.js';
// the GPU runtime bindings live in @farskip/device; re-exported so this package's public API is unchanged
export { openGpu, gpuDeviceCount, GpuError } from '@farskip/device';
export type { GpuKind, GpuRuntime } from '@farskip/device';
export { versionString as ncclVersionString } from './lib.js';
export type { NcclFlavor } from './lib.js';
