// Test harness for the CUDA kernels of native/cuda, on one of two runners with one interface (KernelRunner):
//   Emu        their CPU emulation (native/cuda/emu): builds libfs_cuda_emu.so with `node tooling/build-cuda.mjs
//              --emu` (cached), loads it with koffi; buffers are malloc'd "device" memory moved by explicit copies
//   GpuRunner  a real GPU: the fatbin loaded through @farskip/device (src/backend/cuda/module.ts), cudaMalloc'd
//              buffers, every launch synchronized so a fault names its kernel
// Both launch kernels by name with the grid / block / sharedBytes that native/cuda/kernels.json prescribes, through
// the same src/backend/cuda/manifest.ts the GPU ops use, so the manifest's launch rules are exercised together with
// the kernels. bf16 tensors are uploaded as raw patterns. openRunner() picks the runner: FARSKIP_CUDA_RUNNER=gpu
// (what tooling/device/check.sh sets) or the emulation (default).

import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { tsBackend as ts } from '../src/backend/ts/index.js';
import { loadManifest, prepareLaunch } from '../src/backend/cuda/manifest.js';
import { CudaKernelModule } from '../src/backend/cuda/module.js';

export type DType = 'f32' | 'bf16';
export interface Buf { addr: bigint; bytes: number }

const root = fileURLToPath(new URL('../../../', import.meta.url));
const WARP = 32;

export function bf16Round(x: Float32Array): Float32Array {
  const u = new Uint16Array(x.length), y = new Float32Array(x.length);
  ts.f32ToBf16(x.length, x, u);
  ts.bf16ToF32(x.length, u, y);
  return y;
}

/** What the op tests need from a place to run the kernels. */
export interface KernelRunner {
  readonly label: string;
  in(x: Float32Array, dt?: DType): Buf;
  i32(x: Int32Array): Buf;
  out(n: number, dt?: DType): Buf;
  get(b: Buf, n: number, dt?: DType): Float32Array;
  getBits(b: Buf, n: number): Uint16Array;
  getI32(b: Buf, n: number): Int32Array;
  run(name: string, args: Record<string, number | Buf | null>, extra?: Record<string, number>): void;
  freeAll(): void;
}

/** The runner FARSKIP_CUDA_RUNNER asks for (gpu, or the emulation by default), or why it is unavailable. */
export function openRunner(): KernelRunner | string {
  if (process.env.FARSKIP_CUDA_RUNNER === 'gpu') return GpuRunner.open();
  return Emu.open();
}

export class Emu implements KernelRunner {
  readonly label = 'CPU emulation';
  private readonly kernels = loadManifest(`${root}native/cuda/kernels.json`);
  private readonly live: Buf[] = [];
  private readonly fn: Record<string, (...a: unknown[]) => unknown>;

  constructor(libPath: string) {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load(libPath);
    this.fn = {
      alloc: lib.func('uint64_t fs_emu_alloc(uint64_t bytes)'),
      free: lib.func('void fs_emu_free(uint64_t p)'),
      htod: lib.func('void fs_emu_htod(uint64_t dst, const void *src, uint64_t bytes)'),
      dtoh: lib.func('void fs_emu_dtoh(_Out_ void *dst, uint64_t src, uint64_t bytes)'),
      launch: lib.func('int fs_emu_launch(const char *name, int gx, int gy, int gz, int bx, int by, int bz, int shared, const uint64_t *args)'),
    };
  }

  /** Builds (if stale) and loads the emulation library; a string says why it is unavailable. */
  static open(): Emu | string {
    const r = spawnSync(process.execPath, [`${root}tooling/build-cuda.mjs`, '--emu'], { encoding: 'utf8' });
    if (r.status !== 0) return `emulation library not built: ${(r.stdout + r.stderr).trim().split('\n').pop()}`;
    return new Emu(`${root}native/cuda/build/emu/libfs_cuda_emu.so`);
  }

  private alloc(bytes: number): Buf {
    const b = { addr: BigInt(this.fn.alloc!(bytes) as number | bigint), bytes };
    this.live.push(b);
    return b;
  }

  /** Uploads f32 data as `dt` (bf16: rounded to nearest even). */
  in(x: Float32Array, dt: DType = 'f32'): Buf {
    let data: Float32Array | Uint16Array = x;
    if (dt === 'bf16') { data = new Uint16Array(x.length); ts.f32ToBf16(x.length, x, data); }
    const b = this.alloc(Math.max(1, data.byteLength));
    this.fn.htod!(b.addr, data, data.byteLength);
    return b;
  }
  i32(x: Int32Array): Buf {
    const b = this.alloc(Math.max(1, x.byteLength));
    this.fn.htod!(b.addr, x, x.byteLength);
    return b;
  }
  /** An output buffer of n elements, filled with NaN so that elements a kernel fails to write show up. */
  out(n: number, dt: DType = 'f32'): Buf { return this.in(new Float32Array(n).fill(NaN), dt); }
  get(b: Buf, n: number, dt: DType = 'f32'): Float32Array {
    const y = new Float32Array(n);
    if (dt === 'f32') { this.fn.dtoh!(y, b.addr, n * 4); return y; }
    const u = new Uint16Array(n);
    this.fn.dtoh!(u, b.addr, n * 2);
    ts.bf16ToF32(n, u, y);
    return y;
  }
  getBits(b: Buf, n: number): Uint16Array { const u = new Uint16Array(n); this.fn.dtoh!(u, b.addr, n * 2); return u; }
  getI32(b: Buf, n: number): Int32Array { const y = new Int32Array(n); this.fn.dtoh!(y, b.addr, n * 4); return y; }

  /** Launches kernel `name` with arguments by parameter name; `extra` feeds launch rules (e.g. totalRows, P). */
  run(name: string, args: Record<string, number | Buf | null>, extra: Record<string, number> = {}): void {
    const k = this.kernels.get(name);
    if (!k) throw new Error(`${name}: not in kernels.json`);
    const l = prepareLaunch(k, args, WARP, extra);
    if (l.grid.some((x) => x === 0)) return; // an empty launch
    const rc = this.fn.launch!(name, ...l.grid, ...l.block, l.sharedBytes, l.slots) as number;
    if (rc !== 0) throw new Error(`${name}: fs_emu_launch returned ${rc} (grid ${l.grid}, block ${l.block}, shared ${l.sharedBytes})`);
  }

  freeAll(): void {
    for (const b of this.live.splice(0)) this.fn.free!(b.addr);
  }
}

/** The kernels on a real CUDA GPU (device 0, or FARSKIP_CUDA_DEVICE). */
export class GpuRunner implements KernelRunner {
  readonly label: string;
  private readonly live: bigint[] = [];

  private constructor(private readonly m: CudaKernelModule) {
    this.label = `${m.rt.properties().name} (cuda:${m.rt.device})`;
  }

  static open(): GpuRunner | string {
    try {
      return new GpuRunner(CudaKernelModule.open(Number(process.env.FARSKIP_CUDA_DEVICE ?? '0')));
    } catch (e) {
      return `no CUDA GPU to run the kernels on: ${(e as Error).message.split('\n')[0]}`;
    }
  }

  private alloc(bytes: number): Buf {
    const addr = this.m.rt.alloc(Math.max(1, bytes));
    this.live.push(addr);
    return { addr, bytes };
  }
  in(x: Float32Array, dt: DType = 'f32'): Buf {
    let data: Float32Array | Uint16Array = x;
    if (dt === 'bf16') { data = new Uint16Array(x.length); ts.f32ToBf16(x.length, x, data); }
    const b = this.alloc(data.byteLength);
    if (data.byteLength) this.m.rt.upload(b.addr, data);
    return b;
  }
  i32(x: Int32Array): Buf {
    const b = this.alloc(x.byteLength);
    if (x.byteLength) this.m.rt.upload(b.addr, x);
    return b;
  }
  out(n: number, dt: DType = 'f32'): Buf { return this.in(new Float32Array(n).fill(NaN), dt); }
  get(b: Buf, n: number, dt: DType = 'f32'): Float32Array {
    const y = new Float32Array(n);
    if (dt === 'f32') { if (n) this.m.rt.download(y, b.addr); return y; }
    ts.bf16ToF32(n, this.getBits(b, n), y);
    return y;
  }
  getBits(b: Buf, n: number): Uint16Array { const u = new Uint16Array(n); if (n) this.m.rt.download(u, b.addr); return u; }
  getI32(b: Buf, n: number): Int32Array { const y = new Int32Array(n); if (n) this.m.rt.download(y, b.addr); return y; }
  run(name: string, args: Record<string, number | Buf | null>, extra: Record<string, number> = {}): void {
    this.m.launch(name, args, { extra });
    this.m.rt.syncStream(0n);
  }
  freeAll(): void {
    for (const a of this.live.splice(0)) this.m.rt.free(a);
  }
}
