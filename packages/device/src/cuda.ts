// GpuRuntime over the CUDA driver API (libcuda.so.1), bound with koffi.
//
// Why the driver API and not cudart: libcuda ships with the driver (no toolkit or wheel needed), loads fatbins
// directly (cuModuleLoadData), and its primary context is the one cudart (and so NCCL, cuBLAS, PyTorch) uses for
// the device, so handles interoperate. The versioned entry points are bound by their exported names
// (cuMemAlloc_v2, cuStreamDestroy_v2, ...): the unsuffixed symbols are legacy ABIs kept for old binaries. Symbols
// are bound on first use (LazyBindings), so a driver lacking one fails only at that call.
//
// Enum values are cuda.h's: CUresult CUDA_ERROR_NO_DEVICE = 100, CUDA_ERROR_NOT_READY = 600; CUdevice_attribute
// MAX_THREADS_PER_BLOCK = 1, MAX_SHARED_MEMORY_PER_BLOCK = 8, WARP_SIZE = 10, MULTIPROCESSOR_COUNT = 16,
// COMPUTE_CAPABILITY_MAJOR = 75, COMPUTE_CAPABILITY_MINOR = 76; CU_STREAM_NON_BLOCKING = 1;
// CU_EVENT_DEFAULT = 0, CU_EVENT_DISABLE_TIMING = 2; CU_MEMHOSTALLOC_PORTABLE = 1.
import { big, DriverRuntime, type DriverSymbols } from './driver-runtime.js';
import { GpuError } from './errors.js';
import { LazyBindings, loadLib, optionalFunc } from './lookup.js';
import type { DeviceProperties, GpuRuntime } from './runtime.js';

const NO_DEVICE = 100;
const ATTR = { maxThreadsPerBlock: 1, maxSharedMemoryPerBlock: 8, warpSize: 10, multiprocessors: 16, ccMajor: 75, ccMinor: 76 } as const;

const DECLS = [
  'int cuInit(unsigned int flags)',
  'int cuDriverGetVersion(_Out_ int *version)',
  'int cuDeviceGetCount(_Out_ int *count)',
  'int cuDeviceGet(_Out_ int *device, int ordinal)',
  'int cuDeviceGetName(void *name, int len, int dev)',
  'int cuDeviceTotalMem_v2(_Out_ size_t *bytes, int dev)',
  'int cuDeviceGetAttribute(_Out_ int *value, int attrib, int dev)',
  'int cuDevicePrimaryCtxRetain(_Out_ uintptr_t *ctx, int device)',
  'int cuDevicePrimaryCtxRelease_v2(int device)',
  'int cuCtxSetCurrent(uintptr_t ctx)',
  'int cuCtxGetStreamPriorityRange(_Out_ int *leastPriority, _Out_ int *greatestPriority)',
  'int cuMemGetInfo_v2(_Out_ size_t *free, _Out_ size_t *total)',
  'int cuStreamCreateWithPriority(_Out_ uintptr_t *stream, unsigned int flags, int priority)',
  'int cuStreamDestroy_v2(uintptr_t stream)',
  'int cuStreamSynchronize(uintptr_t stream)',
  'int cuEventCreate(_Out_ uintptr_t *event, unsigned int flags)',
  'int cuEventDestroy_v2(uintptr_t event)',
  'int cuEventRecord(uintptr_t event, uintptr_t stream)',
  'int cuStreamWaitEvent(uintptr_t stream, uintptr_t event, unsigned int flags)',
  'int cuEventQuery(uintptr_t event)',
  'int cuEventSynchronize(uintptr_t event)',
  'int cuEventElapsedTime(_Out_ float *ms, uintptr_t start, uintptr_t end)',
  'int cuMemAlloc_v2(_Out_ uint64_t *dptr, size_t bytes)',
  'int cuMemFree_v2(uint64_t dptr)',
  'int cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t bytes)',
  'int cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t bytes)',
  'int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t bytes, uintptr_t stream)',
  'int cuMemcpyDtoHAsync_v2(void *dst, uint64_t src, size_t bytes, uintptr_t stream)',
  'int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t bytes, uintptr_t stream)',
  'int cuMemsetD8Async(uint64_t dst, uint8_t value, size_t count, uintptr_t stream)',
  'int cuMemsetD32Async(uint64_t dst, uint32_t value, size_t count, uintptr_t stream)',
  'int cuMemHostAlloc(_Out_ uintptr_t *ptr, size_t bytes, unsigned int flags)',
  'int cuMemFreeHost(uintptr_t ptr)',
  'int cuModuleLoadData(_Out_ uintptr_t *module, const void *image)',
  'int cuModuleGetFunction(_Out_ uintptr_t *fn, uintptr_t module, const char *name)',
  'int cuModuleUnload(uintptr_t module)',
  'int cuFuncSetAttribute(uintptr_t hfunc, int attrib, int value)',
  'int cuLaunchKernel(uintptr_t f, unsigned int gridX, unsigned int gridY, unsigned int gridZ, unsigned int blockX, unsigned int blockY, unsigned int blockZ, unsigned int sharedMemBytes, uintptr_t stream, uintptr_t kernelParams, uintptr_t extra)',
];

const SYMBOLS: DriverSymbols = {
  memGetInfo: 'cuMemGetInfo_v2', priorityRange: 'cuCtxGetStreamPriorityRange',
  streamCreate: 'cuStreamCreateWithPriority', streamDestroy: 'cuStreamDestroy_v2', streamSync: 'cuStreamSynchronize',
  eventCreate: 'cuEventCreate', eventDestroy: 'cuEventDestroy_v2', eventRecord: 'cuEventRecord', streamWaitEvent: 'cuStreamWaitEvent',
  eventQuery: 'cuEventQuery', eventSync: 'cuEventSynchronize', eventElapsed: 'cuEventElapsedTime',
  malloc: 'cuMemAlloc_v2', free: 'cuMemFree_v2', htodAsync: 'cuMemcpyHtoDAsync_v2', dtohAsync: 'cuMemcpyDtoHAsync_v2', dtodAsync: 'cuMemcpyDtoDAsync_v2',
  memsetD8Async: 'cuMemsetD8Async', memsetD32Async: 'cuMemsetD32Async', hostAlloc: 'cuMemHostAlloc', hostFree: 'cuMemFreeHost',
  moduleLoad: 'cuModuleLoadData', moduleGetFunction: 'cuModuleGetFunction', moduleUnload: 'cuModuleUnload', launchKernel: 'cuLaunchKernel',
};

/** Number of visible CUDA devices; 0 when libcuda is missing or cuInit fails (no device, driver mismatch). */
export function cudaDeviceCount(): number {
  try {
    const { lib } = loadLib('cuda');
    if (lib.func('int cuInit(unsigned int flags)')(0) !== 0) return 0;
    const n = [0];
    return lib.func('int cuDeviceGetCount(_Out_ int *count)')(n) === 0 ? n[0]! : 0;
  } catch {
    return 0;
  }
}

export class CudaRuntime extends DriverRuntime implements GpuRuntime {
  readonly kind = 'cuda' as const;
  readonly libPath: string;
  private readonly ctx: bigint;
  private readonly dev: number;
  private released = false;

  /** Opens CUDA device `device` (an ordinal after CUDA_VISIBLE_DEVICES); throws naming the search or the reason. */
  constructor(readonly device: number) {
    const { lib, path } = loadLib('cuda');
    const getString = optionalFunc(lib, 'int cuGetErrorString(int error, _Out_ const char **str)');
    super(new LazyBindings(lib, path, DECLS), (code) => {
      const out: (string | null)[] = [null];
      return getString && getString(code, out) === 0 && out[0] ? out[0] : `CUresult ${code}`;
    }, SYMBOLS, (v) => v >>> 0);
    this.libPath = path;
    const init = this.fn('cuInit')(0) as number;
    if (init === NO_DEVICE) {
      throw new GpuError('cuInit', init, `no CUDA device visible to the driver ${path} (check nvidia-smi, CUDA_VISIBLE_DEVICES, and run containers with --gpus)`);
    }
    this.ck('cuInit', init);
    const count = [0];
    this.call('cuDeviceGetCount', count);
    if (!(Number.isInteger(device) && device >= 0 && device < count[0]!)) {
      throw new GpuError('cuDeviceGet', 101, `device ${device} out of range: ${count[0]} visible CUDA device(s)`);
    }
    const dev = [0];
    this.call('cuDeviceGet', dev, device);
    this.dev = dev[0]!;
    const ctx: (number | bigint)[] = [0];
    // The primary context is the one the CUDA runtime (NCCL, cuBLAS) uses for this device: making it current
    // here means their cudaGetDevice() sees our device and their handles are valid in ours.
    this.call('cuDevicePrimaryCtxRetain', ctx, this.dev);
    this.ctx = big(ctx[0]!);
    this.makeCurrent();
  }

  makeCurrent(): void {
    if (this.released) throw new Error(`cuda:${this.device}: runtime used after release()`);
    this.call('cuCtxSetCurrent', this.ctx);
  }

  driverVersion(): number { const v = [0]; this.call('cuDriverGetVersion', v); return v[0]!; }

  properties(): DeviceProperties {
    const name = new Uint8Array(256);
    this.call('cuDeviceGetName', name, name.length, this.dev);
    const attr = (a: number): number => { const v = [0]; this.call('cuDeviceGetAttribute', v, a, this.dev); return v[0]!; };
    const total = [0];
    this.call('cuDeviceTotalMem_v2', total, this.dev);
    return {
      name: new TextDecoder().decode(name.subarray(0, Math.max(0, name.indexOf(0)))),
      totalMemory: Number(total[0]),
      multiprocessors: attr(ATTR.multiprocessors),
      computeCapability: [attr(ATTR.ccMajor), attr(ATTR.ccMinor)],
      warpSize: attr(ATTR.warpSize),
      maxThreadsPerBlock: attr(ATTR.maxThreadsPerBlock),
      maxSharedMemoryPerBlock: attr(ATTR.maxSharedMemoryPerBlock),
    };
  }

  upload(dst: bigint, src: ArrayBufferView): void { this.call('cuMemcpyHtoD_v2', dst, src, src.byteLength); }
  download(dst: ArrayBufferView, src: bigint): void { this.call('cuMemcpyDtoH_v2', dst, src, dst.byteLength); }

  setMaxDynamicSharedMemory(fn: bigint, bytes: number): void {
    // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8 (cuda.h, CUfunction_attribute)
    this.call('cuFuncSetAttribute', fn, 8, bytes);
  }

  release(): void {
    if (this.released) return;
    this.scratch.dispose();
    this.call('cuDevicePrimaryCtxRelease_v2', this.dev);
    this.released = true;
  }
}
