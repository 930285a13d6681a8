// @farskip/collectives: communicators with asynchronous Work handles over typed arrays (and device buffers),
// backends side by side (threads, mpi, nccl/rccl), a launcher. Depends on no other @farskip package except
// @farskip/device (the CUDA driver / HIP bindings the nccl/rccl backends drive their device with).
export type { CommBuffer, CommDType, Communicator, CommunicatorOptions, DeviceBuffer, HostBuffer, ReduceOp, Work } from './types.js';
export { CollectiveError, defaultTimeoutMs } from './errors.js';
export type { FailureKind } from './errors.js';
export { bytesPer, dtypeOf, isDeviceBuffer, lengthOf, REDUCE_OPS } from './buffers.js';
export * from './threads/index.js';
export * from './launch/index.js';
export * from './mpi/index.js';
export * from './nccl/index.js';
import './backends.js'; // registers mpi / nccl / rccl with initCommunicator()
