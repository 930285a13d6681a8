// The interface every GPU backend of this package implements (CUDA driver API, HIP runtime), and the plain data
// types it speaks. Handles (context, stream, event, module, function, device pointer) are bigints: they cross
// koffi as uintptr_t / uint64_t, which has a pointer's ABI on every 64-bit target, and JS can compare and log them.
// Stream 0n is the legacy default stream.
import type { KernelParamType } from './params.js';

export type GpuKind = 'cuda' | 'hip';

export interface DeviceProperties {
  name: string;
  /** Bytes of device memory (cuDeviceTotalMem / hipDeviceTotalMem). */
  totalMemory: number;
  /** Streaming multiprocessors (CUDA) or compute units (HIP). */
  multiprocessors: number;
  /** [major, minor]: 9.0 for H100/H200; on HIP what hipDeviceComputeCapability reports (e.g. 9.4 for MI300). */
  computeCapability: [number, number];
  warpSize: number;
  maxThreadsPerBlock: number;
  /** Shared memory per block without opting in to more (48 KiB on NVIDIA). */
  maxSharedMemoryPerBlock: number;
}

/**
 * Page-locked host memory. `buffer` is a zero-copy view of it (koffi.view), so typed arrays over it are what the
 * DMA engine reads; only copies from/to pinned memory are truly asynchronous. Valid until freeHost().
 */
export interface PinnedBuffer {
  readonly ptr: bigint;
  readonly bytes: number;
  readonly buffer: ArrayBuffer;
}

/** Host side of a copy: any typed array / DataView (pageable: the driver stages it before returning) or pinned. */
export type HostMemory = ArrayBufferView | PinnedBuffer;

export type Dim3 = number | readonly [number, number?, number?];

export interface LaunchConfig {
  grid: Dim3;
  block: Dim3;
  /** Dynamic shared memory in bytes (default 0). */
  sharedBytes?: number;
  /** Default 0n (the legacy default stream). */
  stream?: bigint;
}

export interface GpuRuntime {
  readonly kind: GpuKind;
  readonly device: number;
  readonly libPath: string;
  /**
   * Makes this device's context current on the calling thread. Driver calls act on the current context, so call it
   * before work on a thread that may have another device current (the constructor, loadModule and memInfo do).
   */
  makeCurrent(): void;
  properties(): DeviceProperties;
  /** Free and total device memory in bytes, as the driver sees them now. */
  memInfo(): { free: number; total: number };

  /** Stream priorities: `greatest` is the highest priority and numerically the LOWEST (e.g. least 0, greatest -5). */
  priorityRange(): { least: number; greatest: number };
  /** A non-blocking stream (no implicit sync with stream 0) at `priority` (default: least, i.e. 0). */
  createStream(priority?: number): bigint;
  destroyStream(stream: bigint): void;
  syncStream(stream: bigint): void;

  /** Events are created without timing (cheapest record/query) unless `timing` is set; elapsedMs needs timing. */
  createEvent(options?: { timing?: boolean }): bigint;
  destroyEvent(event: bigint): void;
  record(event: bigint, stream: bigint): void;
  /** Work enqueued on `stream` after this call waits until `event` (as last recorded) completes. */
  streamWait(stream: bigint, event: bigint): void;
  /** true when everything captured by the event's last record has completed (never blocks). */
  query(event: bigint): boolean;
  syncEvent(event: bigint): void;
  /** Milliseconds between two completed timing events (resolution about 0.5 us). */
  elapsedMs(start: bigint, end: bigint): number;

  alloc(bytes: number): bigint;
  free(ptr: bigint): void;
  /** Synchronous copies (the whole view). */
  upload(dst: bigint, src: ArrayBufferView): void;
  download(dst: ArrayBufferView, src: bigint): void;
  /** Stream-ordered copies; `bytes` defaults to the host side's whole length. */
  uploadAsync(dst: bigint, src: HostMemory, stream: bigint, bytes?: number): void;
  downloadAsync(dst: HostMemory, src: bigint, stream: bigint, bytes?: number): void;
  copyAsync(dst: bigint, src: bigint, bytes: number, stream: bigint): void;
  /** Sets `count` bytes to `value` (0..255). */
  memsetD8Async(ptr: bigint, value: number, count: number, stream: bigint): void;
  /** Sets `count` 32-bit words to `value` (a bit pattern: pass new Uint32Array(new Float32Array([x]).buffer)[0] for floats). */
  memsetD32Async(ptr: bigint, value: number, count: number, stream: bigint): void;
  allocHost(bytes: number): PinnedBuffer;
  freeHost(buffer: PinnedBuffer): void;

  /** Loads a cubin / fatbin / hsaco image (or NUL-terminated PTX) into the current context. */
  loadModule(image: Uint8Array): bigint;
  getFunction(module: bigint, name: string): bigint;
  unloadModule(module: bigint): void;
  /** Launches `fn` with arguments described by `manifest` (see params.ts for the packing). */
  launch(fn: bigint, config: LaunchConfig, manifest: readonly KernelParamType[], args: readonly (number | bigint)[]): void;
  /**
   * Lets `fn` launch with up to `bytes` of dynamic shared memory. CUDA needs this above 48 KiB (opt-in up to the
   * device's sharedMemPerBlockOptin, 227 KiB on Hopper); HIP's limit is the fixed LDS size (64 KiB), above which it throws.
   */
  setMaxDynamicSharedMemory(fn: bigint, bytes: number): void;

  /** Releases the retained context (CUDA); the runtime must not be used afterwards. */
  release(): void;
}

export function dim3(d: Dim3, what: string): [number, number, number] {
  const v = typeof d === 'number' ? [d, 1, 1] : [d[0], d[1] ?? 1, d[2] ?? 1];
  if (!v.every((x) => Number.isInteger(x) && x! >= 1 && x! <= 0xffffffff)) {
    throw new RangeError(`launch ${what} ${JSON.stringify(d)}: expected 1..3 positive integers (x, y, z)`);
  }
  return v as [number, number, number];
}

export function isPinned(m: HostMemory): m is PinnedBuffer {
  return typeof (m as PinnedBuffer).ptr === 'bigint' && (m as PinnedBuffer).buffer instanceof ArrayBuffer && !ArrayBuffer.isView(m);
}

/** The bytes of a host operand as a Uint8Array over the same memory (no copy), checked against `bytes`. */
export function hostBytes(m: HostMemory, bytes: number | undefined, call: string): Uint8Array {
  const u8 = isPinned(m) ? new Uint8Array(m.buffer, 0, m.bytes) : new Uint8Array(m.buffer, m.byteOffset, m.byteLength);
  const n = bytes ?? u8.byteLength;
  if (!(Number.isInteger(n) && n >= 0 && n <= u8.byteLength)) {
    throw new RangeError(`${call}: ${n} bytes requested but the host buffer holds ${u8.byteLength}`);
  }
  return u8.subarray(0, n);
}

/**
 * cuModuleLoadData takes PTX as a NUL-terminated string and binary images (ELF cubin, fatbin) as they are: append a
 * NUL to anything that is neither and does not end with one.
 */
export function moduleImage(image: Uint8Array): Uint8Array {
  const elf = image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46;
  const fatbin = image[0] === 0x50 && image[1] === 0xed && image[2] === 0x55 && image[3] === 0xba; // 0xBA55ED50 LE
  const bundle = new TextDecoder().decode(image.subarray(0, 24)) === '__CLANG_OFFLOAD_BUNDLE__'; // HIP fat binary
  if (elf || fatbin || bundle || image[image.length - 1] === 0) return image;
  const out = new Uint8Array(image.length + 1);
  out.set(image);
  return out;
}
