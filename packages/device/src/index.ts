// @farskip/device: GPU runtime bindings for @farskip/tensor and @farskip/collectives (collectives' nccl/rccl
// backends use them today): the CUDA driver API and the HIP runtime through koffi, a caching device allocator and
// cuBLAS GEMM. Depends on no other @farskip package.
export type { DeviceProperties, Dim3, GpuKind, GpuRuntime, HostMemory, LaunchConfig, PinnedBuffer } from './runtime.js';
export { GpuError } from './errors.js';
export { CudaRuntime, cudaDeviceCount } from './cuda.js';
export { HipRuntime, hipDeviceCount } from './hip.js';
export { gpuDeviceCount, openGpu, parseDevice } from './open.js';
export { kernelParamBlock, packKernelParams } from './params.js';
export type { KernelParamType, PackedParams } from './params.js';
export { candidateFiles, LIBRARIES, LibraryNotFoundError, LazyBindings, loadLib, loadLibrary, optionalFunc, sitePackagesDirs } from './lookup.js';
export type { Fn, Lib, LibKind, LibrarySpec, LoadedLib } from './lookup.js';
export { CachingAllocator, OutOfMemoryError, roundSize, runtimeAllocatorDriver, segmentSize } from './allocator.js';
export type { AllocatorDriver, AllocatorStats, DeviceBlock } from './allocator.js';
export { Cublas, loadCublas } from './cublas/cublas.js';
export { rowMajorToCublas } from './cublas/mapping.js';
export type { ColumnMajorGemm, GemmDTypes, RowMajorGemm, Trans } from './cublas/mapping.js';
export { CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT, CUBLAS_MATH, CUBLAS_OP_N, CUBLAS_OP_T, CUDA_DTYPE, CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F } from './cublas/enums.js';
export type { CublasMathMode, GemmDType } from './cublas/enums.js';
