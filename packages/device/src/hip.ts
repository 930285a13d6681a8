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
import koffi from 'koffi';
import { GpuError } from './errors.js';
import { LazyBindings, loadLib, optionalFunc, type Fn } from './lookup.js';
import type { KernelParamType } from './params.js';
import { dim3, hostBytes, moduleImage, type DeviceProperties, type GpuRuntime, type HostMemory, type LaunchConfig, type PinnedBuffer } from './runtime.js';
import { ParamScratch } from './scratch.js';

const NO_DEVICE = 100;
const NOT_READY = 600;
const STREAM_NON_BLOCKING = 1;
const EVENT_DEFAULT = 0;
const EVENT_DISABLE_TIMING = 2;
const HOST_MALLOC_PORTABLE = 1;
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

const big = (v: number | bigint): bigint => BigInt(v);

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

export class HipRuntime implements GpuRuntime {
  readonly kind = 'hip' as const;
  readonly libPath: string;
  private readonly f: LazyBindings;
  private readonly errorText: (code: number) => string;
  // one symbol, two prototypes: which side is the device pointer (an integer for us) differs by direction
  private readonly memcpyHtoD: Fn;
  private readonly memcpyDtoH: Fn;
  private readonly scratch = new ParamScratch();

  constructor(readonly device: number) {
    const { lib, path } = loadLib('hip');
    this.libPath = path;
    this.f = new LazyBindings(lib, path, DECLS);
    this.memcpyHtoD = lib.func('hipMemcpy', 'int', ['uintptr_t', 'void *', 'size_t', 'int']);
    this.memcpyDtoH = lib.func('hipMemcpy', 'int', ['void *', 'uintptr_t', 'size_t', 'int']);
    const getString = optionalFunc(lib, 'const char *hipGetErrorString(int error)');
    this.errorText = (code) => (getString ? String(getString(code)) : `hipError_t ${code}`);
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

  private fn(name: string): Fn { return this.f.get(name); }
  private ck(call: string, code: number): void {
    if (code !== 0) throw new GpuError(call, code, this.errorText(code));
  }
  private call(name: string, ...args: unknown[]): void { this.ck(name, this.fn(name)(...args) as number); }
  private out(name: string, ...args: unknown[]): bigint {
    const o: (number | bigint)[] = [0];
    this.call(name, o, ...args);
    return big(o[0]!);
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

  memInfo(): { free: number; total: number } {
    this.makeCurrent();
    const free = [0], total = [0];
    this.call('hipMemGetInfo', free, total);
    return { free: Number(free[0]), total: Number(total[0]) };
  }

  priorityRange(): { least: number; greatest: number } {
    const least = [0], greatest = [0];
    this.call('hipDeviceGetStreamPriorityRange', least, greatest);
    return { least: least[0]!, greatest: greatest[0]! };
  }
  createStream(priority = 0): bigint { return this.out('hipStreamCreateWithPriority', STREAM_NON_BLOCKING, priority); }
  destroyStream(stream: bigint): void { this.call('hipStreamDestroy', stream); }
  syncStream(stream: bigint): void { this.call('hipStreamSynchronize', stream); }

  createEvent(options: { timing?: boolean } = {}): bigint {
    return this.out('hipEventCreateWithFlags', options.timing ? EVENT_DEFAULT : EVENT_DISABLE_TIMING);
  }
  destroyEvent(event: bigint): void { this.call('hipEventDestroy', event); }
  record(event: bigint, stream: bigint): void { this.call('hipEventRecord', event, stream); }
  streamWait(stream: bigint, event: bigint): void { this.call('hipStreamWaitEvent', stream, event, 0); }
  query(event: bigint): boolean {
    const r = this.fn('hipEventQuery')(event) as number;
    if (r === NOT_READY) return false;
    this.ck('hipEventQuery', r);
    return true;
  }
  syncEvent(event: bigint): void { this.call('hipEventSynchronize', event); }
  elapsedMs(start: bigint, end: bigint): number { const ms = [0]; this.call('hipEventElapsedTime', ms, start, end); return ms[0]!; }

  alloc(bytes: number): bigint { return this.out('hipMalloc', bytes); }
  free(ptr: bigint): void { this.call('hipFree', ptr); }
  upload(dst: bigint, src: ArrayBufferView): void { this.ck('hipMemcpy', this.memcpyHtoD(dst, src, src.byteLength, H2D) as number); }
  download(dst: ArrayBufferView, src: bigint): void { this.ck('hipMemcpy', this.memcpyDtoH(dst, src, dst.byteLength, D2H) as number); }
  uploadAsync(dst: bigint, src: HostMemory, stream: bigint, bytes?: number): void {
    const h = hostBytes(src, bytes, 'uploadAsync');
    this.call('hipMemcpyHtoDAsync', dst, h, h.byteLength, stream);
  }
  downloadAsync(dst: HostMemory, src: bigint, stream: bigint, bytes?: number): void {
    const h = hostBytes(dst, bytes, 'downloadAsync');
    this.call('hipMemcpyDtoHAsync', h, src, h.byteLength, stream);
  }
  copyAsync(dst: bigint, src: bigint, bytes: number, stream: bigint): void { this.call('hipMemcpyDtoDAsync', dst, src, bytes, stream); }
  memsetD8Async(ptr: bigint, value: number, count: number, stream: bigint): void { this.call('hipMemsetD8Async', ptr, value & 0xff, count, stream); }
  memsetD32Async(ptr: bigint, value: number, count: number, stream: bigint): void { this.call('hipMemsetD32Async', ptr, value | 0, count, stream); }

  allocHost(bytes: number): PinnedBuffer {
    if (!(Number.isInteger(bytes) && bytes > 0)) throw new RangeError(`allocHost(${bytes}): expected a positive integer byte count`);
    const ptr = this.out('hipHostMalloc', bytes, HOST_MALLOC_PORTABLE);
    return { ptr, bytes, buffer: koffi.view(ptr, bytes) };
  }
  freeHost(buffer: PinnedBuffer): void { this.call('hipHostFree', buffer.ptr); }

  loadModule(image: Uint8Array): bigint { this.makeCurrent(); return this.out('hipModuleLoadData', moduleImage(image)); }
  getFunction(module: bigint, name: string): bigint { return this.out('hipModuleGetFunction', module, name); }
  unloadModule(module: bigint): void { this.call('hipModuleUnload', module); }
  launch(fn: bigint, config: LaunchConfig, manifest: readonly KernelParamType[], args: readonly (number | bigint)[]): void {
    const [gx, gy, gz] = dim3(config.grid, 'grid');
    const [bx, by, bz] = dim3(config.block, 'block');
    const params = this.scratch.write(manifest, args);
    this.call('hipModuleLaunchKernel', fn, gx, gy, gz, bx, by, bz, config.sharedBytes ?? 0, config.stream ?? 0n, params, 0n);
  }
  setMaxDynamicSharedMemory(fn: bigint, bytes: number): void {
    // AMD GPUs have a fixed 64 KiB of LDS per workgroup and no opt-in attribute for module functions
    if (bytes > 65536) throw new GpuError('setMaxDynamicSharedMemory', 1, `${bytes} bytes of dynamic shared memory exceed the 64 KiB LDS of AMD GPUs (function 0x${fn.toString(16)})`);
  }


  /** HIP has no retained context; frees the launch scratch. */
  release(): void { this.scratch.dispose(); }
}
