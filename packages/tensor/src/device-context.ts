// Per-device state behind `cuda:N` / `hip:N` tensors: the GPU runtime (@farskip/device: CUDA driver or HIP through
// koffi, so nothing compiles against a toolkit at install time), a caching allocator, a compute stream and a
// high-priority communication stream. Created on the first use of a device and cached; a failed open (no library,
// no device, index out of range) throws the @farskip/device error and caches nothing, so the next use retries.
//
// Stream discipline: every tensor allocation belongs to the compute stream, and every kernel, copy and memset this
// package (and @farskip/kernels) issues for tensors runs on it. The caching allocator hands a freed block out again
// only to later work on that same stream, which runs after everything queued before the free: a free never has to
// wait for the GPU. Work on another stream (a collective on `commStream`) must mark the block with
// `storage.recordStream(stream)` first; the allocator then holds the block back until that stream passed the free.
import { CachingAllocator, openGpu, runtimeAllocatorDriver, type DeviceBlock, type GpuKind, type GpuRuntime } from '@farskip/device';
import type { DType } from './dtype.js';
import { bytesPerElement } from './dtype.js';
import type { Device } from './device.js';

export class DeviceContext {
  readonly kind: GpuKind;
  readonly index: number;
  readonly allocator: CachingAllocator;
  /** Where tensor kernels and copies run (the least priority). */
  readonly computeStream: bigint;
  /** Highest-priority stream, for collectives that should overtake queued compute. */
  readonly commStream: bigint;
  private readonly extensions = new Map<unknown, { value: unknown; dispose?: (v: unknown) => void }>();
  private released = false;

  constructor(readonly device: Device, readonly runtime: GpuRuntime) {
    this.kind = runtime.kind;
    this.index = runtime.device;
    runtime.makeCurrent();
    const { least, greatest } = runtime.priorityRange();
    this.computeStream = runtime.createStream(least);
    this.commStream = runtime.createStream(greatest);
    this.allocator = new CachingAllocator(runtimeAllocatorDriver(runtime));
  }

  get isReleased(): boolean { return this.released; }

  /**
   * Makes this device current on the calling thread. Only needed when several devices are in use: with one, its
   * context stays current from creation on (the driver's current context is per thread).
   */
  activate(): void {
    if (this.released) throw new Error(`${this.device}: device context used after releaseDeviceContexts()`);
    if (contexts.size > 1) this.runtime.makeCurrent();
  }

  /** Device memory for `bytes` on the compute stream, freed when the storage is garbage collected or disposed. */
  allocate(bytes: number): DeviceStorage {
    this.activate();
    return new DeviceStorage(this, this.allocator.allocate(bytes, this.computeStream), bytes);
  }

  /** Waits for all work queued on both streams. */
  synchronize(): void {
    this.activate();
    this.runtime.syncStream(this.computeStream);
    this.runtime.syncStream(this.commStream);
  }

  /**
   * A value other packages keep per device (the kernels module, a cuBLAS handle): created by `create` on first use,
   * disposed with the context.
   */
  extension<T>(key: unknown, create: (ctx: DeviceContext) => T, dispose?: (value: T) => void): T {
    const hit = this.extensions.get(key);
    if (hit) return hit.value as T;
    const value = create(this);
    this.extensions.set(key, { value, dispose: dispose as ((v: unknown) => void) | undefined });
    return value;
  }

  /** Synchronizes, disposes the extensions, returns the cached memory, destroys the streams and releases the runtime. */
  release(): void {
    if (this.released) return;
    this.runtime.makeCurrent();
    this.runtime.syncStream(this.computeStream);
    this.runtime.syncStream(this.commStream);
    for (const { value, dispose } of this.extensions.values()) dispose?.(value);
    this.extensions.clear();
    this.allocator.emptyCache();
    this.runtime.destroyStream(this.computeStream);
    this.runtime.destroyStream(this.commStream);
    this.runtime.release();
    this.released = true;
  }
}

// Blocks of collected tensors go back to the allocator. The held value must not reference the storage itself (it
// would never be collected), so it carries the context and the block.
const finalizer = new FinalizationRegistry<{ ctx: DeviceContext; block: DeviceBlock }>(({ ctx, block }) => {
  if (!ctx.isReleased) ctx.allocator.free(block);
});

/**
 * The device memory of a tensor (shared by the views that keep its layout: reshape, detach). `addr` makes it a
 * kernel pointer argument as it is ({ addr: bigint }, what @farskip/kernels' launcher takes).
 */
export class DeviceStorage {
  private live: DeviceBlock | null;

  constructor(readonly ctx: DeviceContext, block: DeviceBlock, readonly bytes: number) {
    this.live = block;
    finalizer.register(this, { ctx, block }, this);
  }

  get disposed(): boolean { return this.live === null; }

  get block(): DeviceBlock {
    if (this.live === null) {
      throw new Error(`${this.ctx.device} tensor storage used after dispose(): the memory went back to the allocator; ` +
        'do not use a tensor (or a view of it) after disposing it');
    }
    return this.live;
  }

  get addr(): bigint { return this.block.ptr; }

  /** Marks the memory as used by work on `stream` as well (see the stream discipline above). */
  recordStream(stream: bigint): void {
    if (stream !== this.ctx.computeStream) this.ctx.allocator.recordStream(this.block, stream);
  }

  /** Returns the memory to the caching allocator now (stream-ordered: queued work on the compute stream still sees it). */
  dispose(): void {
    if (this.live === null || this.ctx.isReleased) { this.live = null; return; }
    finalizer.unregister(this);
    this.ctx.allocator.free(this.live);
    this.live = null;
  }

  /** Host -> device on the compute stream. The driver stages pageable memory before returning, so `src` may be reused. */
  upload(src: ArrayBufferView): void {
    if (src.byteLength === 0) return;
    this.ctx.activate();
    this.ctx.runtime.uploadAsync(this.addr, src, this.ctx.computeStream);
  }

  /** Device -> host: queued behind the compute stream's work, then waited for. */
  download(dst: ArrayBufferView): void {
    if (dst.byteLength === 0) return;
    this.ctx.activate();
    this.ctx.runtime.downloadAsync(dst, this.addr, this.ctx.computeStream);
    this.ctx.runtime.syncStream(this.ctx.computeStream);
  }

  /** A new storage with a copy of the first `bytes` bytes (device to device, on the compute stream). */
  clone(bytes = this.bytes): DeviceStorage {
    const out = this.ctx.allocate(bytes);
    if (bytes > 0) this.ctx.runtime.copyAsync(out.addr, this.addr, bytes, this.ctx.computeStream);
    return out;
  }
}

const contexts = new Map<Device, DeviceContext>();

function gpuOf(device: Device): { kind: GpuKind; index: number } {
  const m = /^(cuda|hip):(\d+)$/.exec(device);
  if (!m) throw new Error(`device '${device}' has no GPU context: expected 'cuda:N' or 'hip:N'`);
  return { kind: m[1] as GpuKind, index: Number(m[2]) };
}

/** The context of `device`, opening it on first use (throws @farskip/device's error when the GPU is unavailable). */
export function deviceContext(device: Device): DeviceContext {
  const hit = contexts.get(device);
  if (hit) return hit;
  const { kind, index } = gpuOf(device);
  const runtime = openGpu(kind, index);
  let ctx: DeviceContext;
  try {
    ctx = new DeviceContext(device, runtime);
  } catch (e) {
    runtime.release(); // streams could not be created: give the context back before reporting
    throw e;
  }
  contexts.set(device, ctx);
  return ctx;
}

/**
 * Uses an already opened runtime for `device` instead of opening one (a runtime shared with another package, or a
 * stand-in for tests). Throws if the device already has a context.
 */
export function useDeviceRuntime(device: Device, runtime: GpuRuntime): DeviceContext {
  const { kind, index } = gpuOf(device);
  if (contexts.has(device)) throw new Error(`useDeviceRuntime: ${device} already has a context; call releaseDeviceContexts() first`);
  if (runtime.kind !== kind || runtime.device !== index) throw new Error(`useDeviceRuntime: runtime is ${runtime.kind}:${runtime.device}, not ${device}`);
  const ctx = new DeviceContext(device, runtime);
  contexts.set(device, ctx);
  return ctx;
}

/** Releases every device context (synchronizing first). Tensors still on those devices must not be used afterwards. */
export function releaseDeviceContexts(): void {
  const all = [...contexts.values()];
  contexts.clear();
  for (const c of all) c.release();
}

/** Bytes of `n` elements of `dtype` (what a device tensor allocates). */
export function storageBytes(dtype: DType, n: number): number {
  return n * bytesPerElement(dtype);
}
