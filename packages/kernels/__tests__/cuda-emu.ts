// Test harness for the CUDA kernels of native/cuda: GpuRunner launches them through src/backend/cuda/module.ts (the
// code the GPU ops use) on one of two GpuRuntimes —
//   EmuRuntime   their CPU emulation (native/cuda/emu, emu-runtime.ts: libfs_cuda_emu.so built by `node
//                tooling/build-cuda.mjs --emu`, cached; "device" memory is host memory moved by explicit copies)
//   CudaRuntime  a real GPU: the fatbin loaded with cuModuleLoadData, every launch synchronized so a fault names its
//                kernel
// Kernels launch by name with the grid / block / sharedBytes that native/cuda/kernels.json prescribes, so the
// manifest's launch rules are exercised together with the kernels. bf16 tensors are uploaded as raw patterns.
// openRunner() picks the runtime: FARSKIP_CUDA_RUNNER=gpu (what tooling/device/check.sh sets) or the emulation.

import { fileURLToPath } from 'node:url';
import { tsBackend as ts } from '../src/backend/ts/index.js';
import { loadManifest } from '../src/backend/cuda/manifest.js';
import { CudaKernelModule } from '../src/backend/cuda/module.js';
import { EmuRuntime } from './emu-runtime.js';

export type DType = 'f32' | 'bf16';
export interface Buf { addr: bigint; bytes: number }

const root = fileURLToPath(new URL('../../../', import.meta.url));

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
  const rt = EmuRuntime.open();
  if (typeof rt === 'string') return rt;
  // the emulation runs kernels by name: no module image to load
  return new GpuRunner(new CudaKernelModule(rt, loadManifest(`${root}native/cuda/kernels.json`), new Uint8Array(0)));
}

/**
 * The kernels through CudaKernelModule on a GpuRuntime: a real CUDA GPU (device 0, or FARSKIP_CUDA_DEVICE), or the
 * CPU emulation's EmuRuntime (emu-runtime.ts).
 */
export class GpuRunner implements KernelRunner {
  readonly label: string;
  private readonly live: bigint[] = [];

  constructor(private readonly m: CudaKernelModule) {
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
