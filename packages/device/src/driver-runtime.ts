// What CudaRuntime (cuda.ts) and HipRuntime (hip.ts) share: HIP's runtime mirrors CUDA's driver API call for call
// for streams, events, memory, pinned host memory, modules and launches — same argument order, same flag values
// (non-blocking stream 1, event default 0 / disable-timing 2, portable host memory 1, not-ready 600) — so one
// implementation serves both with a table of symbol names. Each subclass binds its library, initialises its device
// (context retain vs hipSetDevice), and implements what genuinely differs (properties, synchronous copies,
// dynamic shared memory opt-in, release).
import koffi from 'koffi';
import { GpuError } from './errors.js';
import type { Fn, LazyBindings } from './lookup.js';
import type { KernelParamType } from './params.js';
import { dim3, hostBytes, moduleImage, type HostMemory, type LaunchConfig, type PinnedBuffer } from './runtime.js';
import { ParamScratch } from './scratch.js';

const NOT_READY = 600; // CUDA_ERROR_NOT_READY, hipErrorNotReady
const STREAM_NON_BLOCKING = 1; // CU_STREAM_NON_BLOCKING, hipStreamNonBlocking: no implicit sync with stream 0
const EVENT_DEFAULT = 0;
const EVENT_DISABLE_TIMING = 2; // cheapest record and query
const HOST_ALLOC_PORTABLE = 1; // CU_MEMHOSTALLOC_PORTABLE, hipHostMallocPortable: pinned for every context

/** The library's name for each shared call (each bound with the DECLS of its subclass). */
export interface DriverSymbols {
  memGetInfo: string; priorityRange: string;
  streamCreate: string; streamDestroy: string; streamSync: string;
  eventCreate: string; eventDestroy: string; eventRecord: string; streamWaitEvent: string; eventQuery: string; eventSync: string; eventElapsed: string;
  malloc: string; free: string; htodAsync: string; dtohAsync: string; dtodAsync: string; memsetD8Async: string; memsetD32Async: string;
  hostAlloc: string; hostFree: string;
  moduleLoad: string; moduleGetFunction: string; moduleUnload: string; launchKernel: string;
}

export const big = (v: number | bigint): bigint => BigInt(v);

export abstract class DriverRuntime {
  protected readonly scratch = new ParamScratch();

  protected constructor(protected readonly f: LazyBindings, private readonly errorText: (code: number) => string,
    private readonly sym: DriverSymbols, private readonly memset32: (value: number) => number) {}

  abstract makeCurrent(): void;

  protected fn(name: string): Fn { return this.f.get(name); }
  protected ck(call: string, code: number): void {
    if (code !== 0) throw new GpuError(call, code, this.errorText(code));
  }
  protected call(name: string, ...args: unknown[]): void { this.ck(name, this.fn(name)(...args) as number); }
  /** Calls `name` with a leading out-parameter and returns it. */
  protected out(name: string, ...args: unknown[]): bigint {
    const o: (number | bigint)[] = [0];
    this.call(name, o, ...args);
    return big(o[0]!);
  }

  memInfo(): { free: number; total: number } {
    this.makeCurrent();
    const free = [0], total = [0];
    this.call(this.sym.memGetInfo, free, total);
    return { free: Number(free[0]), total: Number(total[0]) };
  }

  priorityRange(): { least: number; greatest: number } {
    const least = [0], greatest = [0];
    this.call(this.sym.priorityRange, least, greatest);
    return { least: least[0]!, greatest: greatest[0]! };
  }
  createStream(priority = 0): bigint { return this.out(this.sym.streamCreate, STREAM_NON_BLOCKING, priority); }
  destroyStream(stream: bigint): void { this.call(this.sym.streamDestroy, stream); }
  syncStream(stream: bigint): void { this.call(this.sym.streamSync, stream); }

  createEvent(options: { timing?: boolean } = {}): bigint {
    return this.out(this.sym.eventCreate, options.timing ? EVENT_DEFAULT : EVENT_DISABLE_TIMING);
  }
  destroyEvent(event: bigint): void { this.call(this.sym.eventDestroy, event); }
  record(event: bigint, stream: bigint): void { this.call(this.sym.eventRecord, event, stream); }
  streamWait(stream: bigint, event: bigint): void { this.call(this.sym.streamWaitEvent, stream, event, 0); }
  query(event: bigint): boolean {
    const r = this.fn(this.sym.eventQuery)(event) as number;
    if (r === NOT_READY) return false;
    this.ck(this.sym.eventQuery, r);
    return true;
  }
  syncEvent(event: bigint): void { this.call(this.sym.eventSync, event); }
  elapsedMs(start: bigint, end: bigint): number { const ms = [0]; this.call(this.sym.eventElapsed, ms, start, end); return ms[0]!; }

  alloc(bytes: number): bigint { return this.out(this.sym.malloc, bytes); }
  free(ptr: bigint): void { this.call(this.sym.free, ptr); }
  uploadAsync(dst: bigint, src: HostMemory, stream: bigint, bytes?: number): void {
    const h = hostBytes(src, bytes, 'uploadAsync');
    this.call(this.sym.htodAsync, dst, h, h.byteLength, stream);
  }
  downloadAsync(dst: HostMemory, src: bigint, stream: bigint, bytes?: number): void {
    const h = hostBytes(dst, bytes, 'downloadAsync');
    this.call(this.sym.dtohAsync, h, src, h.byteLength, stream);
  }
  copyAsync(dst: bigint, src: bigint, bytes: number, stream: bigint): void { this.call(this.sym.dtodAsync, dst, src, bytes, stream); }
  memsetD8Async(ptr: bigint, value: number, count: number, stream: bigint): void { this.call(this.sym.memsetD8Async, ptr, value & 0xff, count, stream); }
  /** 32-bit pattern fill; the value's C type is unsigned on CUDA and int on HIP (`memset32` converts). */
  memsetD32Async(ptr: bigint, value: number, count: number, stream: bigint): void { this.call(this.sym.memsetD32Async, ptr, this.memset32(value), count, stream); }

  allocHost(bytes: number): PinnedBuffer {
    if (!(Number.isInteger(bytes) && bytes > 0)) throw new RangeError(`allocHost(${bytes}): expected a positive integer byte count`);
    const ptr = this.out(this.sym.hostAlloc, bytes, HOST_ALLOC_PORTABLE);
    return { ptr, bytes, buffer: koffi.view(ptr, bytes) };
  }
  freeHost(buffer: PinnedBuffer): void { this.call(this.sym.hostFree, buffer.ptr); }

  loadModule(image: Uint8Array): bigint { this.makeCurrent(); return this.out(this.sym.moduleLoad, moduleImage(image)); }
  getFunction(module: bigint, name: string): bigint { return this.out(this.sym.moduleGetFunction, module, name); }
  unloadModule(module: bigint): void { this.call(this.sym.moduleUnload, module); }
  launch(fn: bigint, config: LaunchConfig, manifest: readonly KernelParamType[], args: readonly (number | bigint)[]): void {
    const [gx, gy, gz] = dim3(config.grid, 'grid');
    const [bx, by, bz] = dim3(config.block, 'block');
    const params = this.scratch.write(manifest, args);
    this.call(this.sym.launchKernel, fn, gx, gy, gz, bx, by, bz, config.sharedBytes ?? 0, config.stream ?? 0n, params, 0n);
  }
}
