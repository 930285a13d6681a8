// GpuRuntime over the HIP runtime (libamdhip64.so), bound with koffi. HIP has no context to retain: a device is
// made current per thread with hipSetDevice. Module loading and launch are the hipModule* calls, which take the same
// `void **kernelParams` layout as CUDA (params.ts).
//
// UNVERIFIED on hardware: no AMD GPU or ROCm install was available while writing this. The declarations are checked
// only against a fake library written from the header (__tests__/hip-fake.test.ts), which proves consistency with
// our reading of hip_runtime_api.h, not with a real libamdhip64.
// Signatures follow hip_runtime_api.h (ROCm 6): hipMemcpyKind hipMemcpyHostToDevice = 1, hipMemcpyDeviceToHost = 2;
// hipErrorNoDevice = 100, hipErrorNotReady = 600; hipStreamNonBlocking = 1; hipEventDisableTiming = 2;
// hipHostMallocPortable = 1. hipDeviceAttribute_t was renumbered in ROCm 5 (CUDA-compatible block first); the values
// used, MaxThreadsPerBlock = 56, MaxSharedMemoryPerBlock = 74, MultiprocessorCount = 63, WarpSize = 87, are the
// ROCm 5/6 header's as listed by generated bindings of it (hip-python, hipfort); a ROCm 4 runtime would differ.
import { DriverRuntime, type DriverSymbols } from './driver-runtime.js';
import { GpuError } from './errors.js';
import { LazyBindings, loadLib, optionalFunc, type Fn } from './lookup.js';
import type { DeviceProperties, GpuRuntime } from './runtime.js';

const NO_DEVICE = 100;
const H2D = 1, D2H = 2;
const ATTR = { maxThreadsPerBlock: 56, maxSharedMemoryPerBlock: 74, multiprocessors: 63, warpSize: 87 } as const;

const DECLS = [
  'int hipInit(unsigned int flags)',
  'int hipGetDeviceCount(_Out_ int *count)',
  'int hipSetDevice(int device)',
  'int hipDeviceGetName(void *name, int len, int device)',
  'int hipDeviceTotalMem(_Out_ size_t *bytes, int device)',
  'int hipDeviceGetAttribute(_Out_ int *value, int attr, int device)',
  'int hipDeviceComputeCapability(_Out_ int *major, _Out_ int *minor, int device)',
  'int hipMemGetInfo(_Out_ size_t *free, _Out_ size_t *total)',
  'int hipDeviceGetStreamPriorityRange(_Out_ int *leastPriority, _Out_ int *greatestPriority)',
  'int hipStreamCreateWithPriority(_Out_ uintptr_t *stream, unsigned int flags, int priority)',
  'int hipStreamDestroy(uintptr_t stream)',
  'int hipStreamSynchronize(uintptr_t stream)',
  'int hipEventCreateWithFlags(_Out_ uintptr_t *event, unsigned int flags)',
  'int hipEventDestroy(uintptr_t event)',
  'int hipEventRecord(uintptr_t event, uintptr_t stream)',
  'int hipStreamWaitEvent(uintptr_t stream, uintptr_t event, unsigned int flags)',
  'int hipEventQuery(uintptr_t event)',
  'int hipEventSynchronize(uintptr_t event)',
  'int hipEventElapsedTime(_Out_ float *ms, uintptr_t start, uintptr_t stop)',
  'int hipMalloc(_Out_ uintptr_t *ptr, size_t bytes)',
  'int hipFree(uintptr_t ptr)',
  'int hipMemcpyHtoDAsync(uintptr_t dst, const void *src, size_t bytes, uintptr_t stream)',
  'int hipMemcpyDtoHAsync(void *dst, uintptr_t src, size_t bytes, uintptr_t stream)',
  'int hipMemcpyDtoDAsync(uintptr_t dst, uintptr_t src, size_t bytes, uintptr_t stream)',
  'int hipMemsetD8Async(uintptr_t dst, uint8_t value, size_t count, uintptr_t stream)',
  'int hipMemsetD32Async(uintptr_t dst, int value, size_t count, uintptr_t stream)',
  'int hipHostMalloc(_Out_ uintptr_t *ptr, size_t bytes, unsigned int flags)',
  'int hipHostFree(uintptr_t ptr)',
  'int hipModuleLoadData(_Out_ uintptr_t *module, const void *image)',
  'int hipModuleGetFunction(_Out_ uintptr_t *fn, uintptr_t module, const char *name)',
  'int hipModuleUnload(uintptr_t module)',
  'int hipModuleLaunchKernel(uintptr_t f, unsigned int gridX, unsigned int gridY, unsigned int gridZ, unsigned int blockX, unsigned int blockY, unsigned int blockZ, unsigned int sharedMemBytes, uintptr_t stream, uintptr_t kernelParams, uintptr_t extra)',
];

const SYMBOLS: DriverSymbols = {
  memGetInfo: 'hipMemGetInfo', priorityRange: 'hipDeviceGetStreamPriorityRange',
  streamCreate: 'hipStreamCreateWithPriority', streamDestroy: 'hipStreamDestroy', streamSync: 'hipStreamSynchronize',
  eventCreate: 'hipEventCreateWithFlags', eventDestroy: 'hipEventDestroy', eventRecord: 'hipEventRecord', streamWaitEvent: 'hipStreamWaitEvent',
  eventQuery: 'hipEventQuery', eventSync: 'hipEventSynchronize', eventElapsed: 'hipEventElapsedTime',
  malloc: 'hipMalloc', free: 'hipFree', htodAsync: 'hipMemcpyHtoDAsync', dtohAsync: 'hipMemcpyDtoHAsync', dtodAsync: 'hipMemcpyDtoDAsync',
  memsetD8Async: 'hipMemsetD8Async', memsetD32Async: 'hipMemsetD32Async', hostAlloc: 'hipHostMalloc', hostFree: 'hipHostFree',
  moduleLoad: 'hipModuleLoadData', moduleGetFunction: 'hipModuleGetFunction', moduleUnload: 'hipModuleUnload', launchKernel: 'hipModuleLaunchKernel',
};

/** Number of visible HIP devices; 0 when libamdhip64 is missing or hipInit fails. */
export function hipDeviceCount(): number {
  try {
    const { lib } = loadLib('hip');
    if (lib.func('int hipInit(unsigned int flags)')(0) !== 0) return 0;
    const n = [0];
    return lib.func('int hipGetDeviceCount(_Out_ int *count)')(n) === 0 ? n[0]! : 0;
  } catch {
    return 0;
  }
}

export class HipRuntime extends DriverRuntime implements GpuRuntime {
  readonly kind = 'hip' as const;
  readonly libPath: string;
  // one symbol, two prototypes: which side is the device pointer (an integer for us) differs by direction
  private readonly memcpyHtoD: Fn;
  private readonly memcpyDtoH: Fn;

  constructor(readonly device: number) {
    const { lib, path } = loadLib('hip');
    const getString = optionalFunc(lib, 'const char *hipGetErrorString(int error)');
    super(new LazyBindings(lib, path, DECLS), (code) => (getString ? String(getString(code)) : `hipError_t ${code}`), SYMBOLS, (v) => v | 0);
    this.libPath = path;
    this.memcpyHtoD = lib.func('hipMemcpy', 'int', ['uintptr_t', 'void *', 'size_t', 'int']);
    this.memcpyDtoH = lib.func('hipMemcpy', 'int', ['void *', 'uintptr_t', 'size_t', 'int']);
    const init = this.fn('hipInit')(0) as number;
    if (init === NO_DEVICE) {
      throw new GpuError('hipInit', init, `no HIP device visible to ${path} (check rocm-smi, HIP_VISIBLE_DEVICES, and /dev/kfd access)`);
    }
    this.ck('hipInit', init);
    const count = [0];
    this.call('hipGetDeviceCount', count);
    if (!(Number.isInteger(device) && device >= 0 && device < count[0]!)) {
      throw new GpuError('hipSetDevice', 101, `device ${device} out of range: ${count[0]} visible HIP device(s)`);
    }
    this.makeCurrent();
  }

  makeCurrent(): void { this.call('hipSetDevice', this.device); }

  properties(): DeviceProperties {
    const name = new Uint8Array(256);
    this.call('hipDeviceGetName', name, name.length, this.device);
    const attr = (a: number): number => { const v = [0]; this.call('hipDeviceGetAttribute', v, a, this.device); return v[0]!; };
    const total = [0], major = [0], minor = [0];
    this.call('hipDeviceTotalMem', total, this.device);
    this.call('hipDeviceComputeCapability', major, minor, this.device);
    return {
      name: new TextDecoder().decode(name.subarray(0, Math.max(0, name.indexOf(0)))),
      totalMemory: Number(total[0]),
      multiprocessors: attr(ATTR.multiprocessors),
      computeCapability: [major[0]!, minor[0]!],
      warpSize: attr(ATTR.warpSize),
      maxThreadsPerBlock: attr(ATTR.maxThreadsPerBlock),
      maxSharedMemoryPerBlock: attr(ATTR.maxSharedMemoryPerBlock),
    };
  }

  upload(dst: bigint, src: ArrayBufferView): void { this.ck('hipMemcpy', this.memcpyHtoD(dst, src, src.byteLength, H2D) as number); }
  download(dst: ArrayBufferView, src: bigint): void { this.ck('hipMemcpy', this.memcpyDtoH(dst, src, dst.byteLength, D2H) as number); }

  setMaxDynamicSharedMemory(fn: bigint, bytes: number): void {
    // AMD GPUs have a fixed 64 KiB of LDS per workgroup and no opt-in attribute for module functions
    if (bytes > 65536) throw new GpuError('setMaxDynamicSharedMemory', 1, `${bytes} bytes of dynamic shared memory exceed the 64 KiB LDS of AMD GPUs (function 0x${fn.toString(16)})`);
  }

  /** HIP has no retained context; frees the launch scratch. */
  release(): void { this.scratch.dispose(); }
}
