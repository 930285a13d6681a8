// The slice of the CUDA driver API (libcuda.so.1) and of the HIP runtime (libamdhip64.so) the nccl/rccl backends
// need: a context made current, a high-priority non-blocking stream, events, and plain device memory for tests and
// staging. DESIGN.md puts GPU runtime bindings in a shared `@farskip/device` package; until it exists this is the
// minimal private copy, shaped so it can move there unchanged.
//
// Every handle (context, stream, event, device pointer) crosses koffi as uintptr_t / uint64_t: the ABI is the
// same as a pointer on every 64-bit target, and JS holds it as a bigint we can compare and log. The driver API's
// versioned entry points are bound by their exported names (cuMemAlloc_v2, cuStreamDestroy_v2, ...): the
// unsuffixed symbols are legacy ABIs (32-bit CUdeviceptr) kept only for old binaries.
import { loadLib, optionalFunc, type Fn } from './lookup.js';

export type GpuKind = 'cuda' | 'hip';

export interface GpuRuntime {
  readonly kind: GpuKind;
  readonly device: number;
  readonly libPath: string;
  /** Makes this device's context current on the calling thread (every entry point calls it first). */
  makeCurrent(): void;
  /** Stream priorities: `greatest` is the highest priority and numerically the LOWEST (e.g. least 0, greatest -5). */
  priorityRange(): { least: number; greatest: number };
  createStream(priority: number): bigint;
  destroyStream(stream: bigint): void;
  syncStream(stream: bigint): void;
  createEvent(): bigint;
  destroyEvent(event: bigint): void;
  record(event: bigint, stream: bigint): void;
  /** Work enqueued on `stream` after this call waits until `event` (as last recorded) completes. */
  streamWait(stream: bigint, event: bigint): void;
  /** true when everything captured by the event's last record has completed (never blocks). */
  query(event: bigint): boolean;
  syncEvent(event: bigint): void;
  alloc(bytes: number): bigint;
  free(ptr: bigint): void;
  upload(dst: bigint, src: ArrayBufferView): void;
  download(dst: ArrayBufferView, src: bigint): void;
  /** Releases the retained context (CUDA); the runtime must not be used afterwards. */
  release(): void;
}

const NOT_READY = 600; // CUDA_ERROR_NOT_READY and hipErrorNotReady share the value
const STREAM_NON_BLOCKING = 1; // CU_STREAM_NON_BLOCKING / hipStreamNonBlocking: no implicit sync with stream 0
const EVENT_DISABLE_TIMING = 2; // CU_EVENT_DISABLE_TIMING / hipEventDisableTiming: cheapest record and query

export class GpuError extends Error {
  override readonly name = 'GpuError';
  constructor(readonly call: string, readonly code: number, detail: string) {
    super(`${call} failed with ${code}: ${detail}`);
  }
}

const big = (v: number | bigint): bigint => BigInt(v);

function bindCuda(): { path: string; f: Record<string, Fn>; errorText: (code: number) => string } {
  const { lib, path } = loadLib('cuda');
  const decls = [
    'int cuInit(unsigned int flags)',
    'int cuDeviceGetCount(_Out_ int *count)',
    'int cuDeviceGet(_Out_ int *device, int ordinal)',
    'int cuDevicePrimaryCtxRetain(_Out_ uintptr_t *ctx, int device)',
    'int cuDevicePrimaryCtxRelease_v2(int device)',
    'int cuCtxSetCurrent(uintptr_t ctx)',
    'int cuCtxGetStreamPriorityRange(_Out_ int *leastPriority, _Out_ int *greatestPriority)',
    'int cuStreamCreateWithPriority(_Out_ uintptr_t *stream, unsigned int flags, int priority)',
    'int cuStreamDestroy_v2(uintptr_t stream)',
    'int cuStreamSynchronize(uintptr_t stream)',
    'int cuEventCreate(_Out_ uintptr_t *event, unsigned int flags)',
    'int cuEventDestroy_v2(uintptr_t event)',
    'int cuEventRecord(uintptr_t event, uintptr_t stream)',
    'int cuStreamWaitEvent(uintptr_t stream, uintptr_t event, unsigned int flags)',
    'int cuEventQuery(uintptr_t event)',
    'int cuEventSynchronize(uintptr_t event)',
    'int cuMemAlloc_v2(_Out_ uint64_t *dptr, size_t bytes)',
    'int cuMemFree_v2(uint64_t dptr)',
    'int cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t bytes)',
    'int cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t bytes)',
  ];
  const f: Record<string, Fn> = {};
  for (const d of decls) f[/ (\w+)\(/.exec(d)![1]!] = lib.func(d);
  const getString = optionalFunc(lib, 'int cuGetErrorString(int error, _Out_ const char **str)');
  const errorText = (code: number): string => {
    const out: (string | null)[] = [null];
    return getString && getString(code, out) === 0 && out[0] ? out[0] : `CUresult ${code}`;
  };
  return { path, f, errorText };
}

function bindHip(): { path: string; f: Record<string, Fn>; errorText: (code: number) => string } {
  const { lib, path } = loadLib('hip');
  const decls = [
    'int hipInit(unsigned int flags)',
    'int hipGetDeviceCount(_Out_ int *count)',
    'int hipSetDevice(int device)',
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
    'int hipMalloc(_Out_ uintptr_t *ptr, size_t bytes)',
    'int hipFree(uintptr_t ptr)',
  ];
  const f: Record<string, Fn> = {};
  for (const d of decls) f[/ (\w+)\(/.exec(d)![1]!] = lib.func(d);
  // one symbol, two prototypes: which side is the device pointer (an integer for us) differs by direction
  f.hipMemcpyHtoD = lib.func('hipMemcpy', 'int', ['uintptr_t', 'void *', 'size_t', 'int']);
  f.hipMemcpyDtoH = lib.func('hipMemcpy', 'int', ['void *', 'uintptr_t', 'size_t', 'int']);
  const getString = optionalFunc(lib, 'const char *hipGetErrorString(int error)');
  return { path, f, errorText: (code) => (getString ? String(getString(code)) : `hipError_t ${code}`) };
}

/** Number of visible devices of this kind; 0 when the library is missing or initialisation fails. */
export function gpuDeviceCount(kind: GpuKind): number {
  try {
    const { f } = kind === 'cuda' ? bindCuda() : bindHip();
    if ((kind === 'cuda' ? f.cuInit! : f.hipInit!)(0) !== 0) return 0;
    const n = [0];
    return (kind === 'cuda' ? f.cuDeviceGetCount! : f.hipGetDeviceCount!)(n) === 0 ? n[0]! : 0;
  } catch {
    return 0;
  }
}

/** Opens device `device` through the CUDA driver or HIP runtime; throws (naming the search) when absent. */
export function openGpu(kind: GpuKind, device: number): GpuRuntime {
  const { path, f, errorText } = kind === 'cuda' ? bindCuda() : bindHip();
  const ck = (call: string, code: number): void => {
    if (code !== 0) throw new GpuError(call, code, errorText(code));
  };
  const p = kind === 'cuda' ? 'cu' : 'hip';
  const fn = (name: string): Fn => f[name]!;
  ck(`${p}Init`, fn(`${p}Init`)(0));
  const count = [0];
  ck(kind === 'cuda' ? 'cuDeviceGetCount' : 'hipGetDeviceCount', fn(kind === 'cuda' ? 'cuDeviceGetCount' : 'hipGetDeviceCount')(count));
  if (!(device >= 0 && device < count[0]!)) throw new GpuError(`${p}DeviceGet`, 101, `device ${device} out of range: ${count[0]} visible device(s)`);
  let makeCurrent: () => void;
  let release: () => void = () => {};
  if (kind === 'cuda') {
    // The primary context is the one the CUDA runtime (and so NCCL, which links cudart) uses for this device:
    // making it current here means NCCL's cudaGetDevice() sees our device.
    const dev = [0];
    ck('cuDeviceGet', fn('cuDeviceGet')(dev, device));
    const ctx = [0];
    ck('cuDevicePrimaryCtxRetain', fn('cuDevicePrimaryCtxRetain')(ctx, dev[0]));
    const handle = big(ctx[0]!);
    makeCurrent = () => ck('cuCtxSetCurrent', fn('cuCtxSetCurrent')(handle));
    release = () => ck('cuDevicePrimaryCtxRelease_v2', fn('cuDevicePrimaryCtxRelease_v2')(dev[0]));
  } else {
    makeCurrent = () => ck('hipSetDevice', fn('hipSetDevice')(device));
  }
  makeCurrent();
  const n = (s: string): string => (kind === 'cuda' ? s : s.replace(/^cu/, 'hip').replace(/_v2$/, ''));
  const call = (name: string, ...args: unknown[]): void => ck(n(name), fn(n(name))(...args));
  const out1 = (name: string, ...args: unknown[]): bigint => {
    const o: (number | bigint)[] = [0];
    call(name, o, ...args);
    return big(o[0]!);
  };
  return {
    kind, device, libPath: path, makeCurrent,
    priorityRange() {
      const least = [0], greatest = [0];
      call(kind === 'cuda' ? 'cuCtxGetStreamPriorityRange' : 'cuDeviceGetStreamPriorityRange', least, greatest);
      return { least: least[0]!, greatest: greatest[0]! };
    },
    createStream: (priority) => out1('cuStreamCreateWithPriority', STREAM_NON_BLOCKING, priority),
    destroyStream: (s) => call('cuStreamDestroy_v2', s),
    syncStream: (s) => call('cuStreamSynchronize', s),
    createEvent: () => (kind === 'cuda' ? out1('cuEventCreate', EVENT_DISABLE_TIMING) : out1('cuEventCreateWithFlags', EVENT_DISABLE_TIMING)),
    destroyEvent: (e) => call('cuEventDestroy_v2', e),
    record: (e, s) => call('cuEventRecord', e, s),
    streamWait: (s, e) => call('cuStreamWaitEvent', s, e, 0),
    query(e) {
      const r = fn(n('cuEventQuery'))(e) as number;
      if (r === NOT_READY) return false;
      ck(n('cuEventQuery'), r);
      return true;
    },
    syncEvent: (e) => call('cuEventSynchronize', e),
    alloc: (bytes) => (kind === 'cuda' ? out1('cuMemAlloc_v2', bytes) : out1('cuMalloc', bytes)),
    free: (ptr) => (kind === 'cuda' ? call('cuMemFree_v2', ptr) : call('cuFree', ptr)),
    upload(dst, src) {
      if (kind === 'cuda') call('cuMemcpyHtoD_v2', dst, src, src.byteLength);
      else ck('hipMemcpy', fn('hipMemcpyHtoD')(dst, src, src.byteLength, 1));
    },
    download(dst, src) {
      if (kind === 'cuda') call('cuMemcpyDtoH_v2', dst, src, dst.byteLength);
      else ck('hipMemcpy', fn('hipMemcpyDtoH')(dst, src, dst.byteLength, 2));
    },
    release,
  };
}
