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
const MEMHOSTALLOC_PORTABLE = 1; // pinned for every context, not only the current one
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

const big = (v: number | bigint): bigint => BigInt(v);

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

export class CudaRuntime implements GpuRuntime {
  readonly kind = 'cuda' as const;
  readonly libPath: string;
  private readonly f: LazyBindings;
  private readonly errorText: (code: number) => string;
  private readonly ctx: bigint;
  private readonly dev: number;
  private readonly scratch = new ParamScratch();
  private released = false;

  /** Opens CUDA device `device` (an ordinal after CUDA_VISIBLE_DEVICES); throws naming the search or the reason. */
  constructor(readonly device: number) {
    const { lib, path } = loadLib('cuda');
    this.libPath = path;
    this.f = new LazyBindings(lib, path, DECLS);
    const getString = optionalFunc(lib, 'int cuGetErrorString(int error, _Out_ const char **str)');
    this.errorText = (code) => {
      const out: (string | null)[] = [null];
      return getString && getString(code, out) === 0 && out[0] ? out[0] : `CUresult ${code}`;
    };
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

  memInfo(): { free: number; total: number } {
    this.makeCurrent();
    const free = [0], total = [0];
    this.call('cuMemGetInfo_v2', free, total);
    return { free: Number(free[0]), total: Number(total[0]) };
  }

  priorityRange(): { least: number; greatest: number } {
    const least = [0], greatest = [0];
    this.call('cuCtxGetStreamPriorityRange', least, greatest);
    return { least: least[0]!, greatest: greatest[0]! };
  }
  createStream(priority = 0): bigint { return this.out('cuStreamCreateWithPriority', STREAM_NON_BLOCKING, priority); }
  destroyStream(stream: bigint): void { this.call('cuStreamDestroy_v2', stream); }
  syncStream(stream: bigint): void { this.call('cuStreamSynchronize', stream); }

  createEvent(options: { timing?: boolean } = {}): bigint {
    return this.out('cuEventCreate', options.timing ? EVENT_DEFAULT : EVENT_DISABLE_TIMING);
  }
  destroyEvent(event: bigint): void { this.call('cuEventDestroy_v2', event); }
  record(event: bigint, stream: bigint): void { this.call('cuEventRecord', event, stream); }
  streamWait(stream: bigint, event: bigint): void { this.call('cuStreamWaitEvent', stream, event, 0); }
  query(event: bigint): boolean {
    const r = this.fn('cuEventQuery')(event) as number;
    if (r === NOT_READY) return false;
    this.ck('cuEventQuery', r);
    return true;
  }
  syncEvent(event: bigint): void { this.call('cuEventSynchronize', event); }
  elapsedMs(start: bigint, end: bigint): number { const ms = [0]; this.call('cuEventElapsedTime', ms, start, end); return ms[0]!; }

  alloc(bytes: number): bigint { return this.out('cuMemAlloc_v2', bytes); }
  free(ptr: bigint): void { this.call('cuMemFree_v2', ptr); }
  upload(dst: bigint, src: ArrayBufferView): void { this.call('cuMemcpyHtoD_v2', dst, src, src.byteLength); }
  download(dst: ArrayBufferView, src: bigint): void { this.call('cuMemcpyDtoH_v2', dst, src, dst.byteLength); }
  uploadAsync(dst: bigint, src: HostMemory, stream: bigint, bytes?: number): void {
    const h = hostBytes(src, bytes, 'uploadAsync');
    this.call('cuMemcpyHtoDAsync_v2', dst, h, h.byteLength, stream);
  }
  downloadAsync(dst: HostMemory, src: bigint, stream: bigint, bytes?: number): void {
    const h = hostBytes(dst, bytes, 'downloadAsync');
    this.call('cuMemcpyDtoHAsync_v2', h, src, h.byteLength, stream);
  }
  copyAsync(dst: bigint, src: bigint, bytes: number, stream: bigint): void { this.call('cuMemcpyDtoDAsync_v2', dst, src, bytes, stream); }
  memsetD8Async(ptr: bigint, value: number, count: number, stream: bigint): void { this.call('cuMemsetD8Async', ptr, value & 0xff, count, stream); }
  memsetD32Async(ptr: bigint, value: number, count: number, stream: bigint): void { this.call('cuMemsetD32Async', ptr, value >>> 0, count, stream); }

  allocHost(bytes: number): PinnedBuffer {
    if (!(Number.isInteger(bytes) && bytes > 0)) throw new RangeError(`allocHost(${bytes}): expected a positive integer byte count`);
    const ptr = this.out('cuMemHostAlloc', bytes, MEMHOSTALLOC_PORTABLE);
    return { ptr, bytes, buffer: koffi.view(ptr, bytes) };
  }
  freeHost(buffer: PinnedBuffer): void { this.call('cuMemFreeHost', buffer.ptr); }

  loadModule(image: Uint8Array): bigint { this.makeCurrent(); return this.out('cuModuleLoadData', moduleImage(image)); }
  getFunction(module: bigint, name: string): bigint { return this.out('cuModuleGetFunction', module, name); }
  unloadModule(module: bigint): void { this.call('cuModuleUnload', module); }
  launch(fn: bigint, config: LaunchConfig, manifest: readonly KernelParamType[], args: readonly (number | bigint)[]): void {
    const [gx, gy, gz] = dim3(config.grid, 'grid');
    const [bx, by, bz] = dim3(config.block, 'block');
    const params = this.scratch.write(manifest, args);
    this.call('cuLaunchKernel', fn, gx, gy, gz, bx, by, bz, config.sharedBytes ?? 0, config.stream ?? 0n, params, 0n);
  }

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
