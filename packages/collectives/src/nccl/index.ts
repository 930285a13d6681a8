// nccl / rccl backends: NCCL (libnccl.so.2) + CUDA driver, RCCL (librccl.so) + HIP runtime, bound with koffi.
export { NcclCommunicator } from './communicator.js';
export { initNccl, initRccl, ncclAvailable, rcclAvailable, ncclUniqueId, uniqueIdStoreFrom } from './init.js';
export type { NcclInitOptions, StringRendezvous, UniqueIdStore } from './init.js';
export { openGpu, gpuDeviceCount, GpuError } from './gpu.js';
export type { GpuKind, GpuRuntime } from './gpu.js';
export { versionString as ncclVersionString } from './lib.js';
export type { NcclFlavor } from './lib.js';
