// A GpuRuntime whose "device" is the CPU emulation of the CUDA kernels (native/cuda/emu, see cuda-emu.ts): device
// memory is host memory from fs_emu_alloc, copies are memcpy, streams and events are bookkeeping (everything runs
// at once, in order), and a launch runs the named kernel of the emulation with the manifest's grid / block / shared
// memory. With it, cuda:0 tensors of @farskip/tensor run the GPU ops of @farskip/kernels end to end on a machine
// without a GPU: dispatch, argument packing, launch rules, autograd and the kernels' logic. It cannot show real
// asynchrony, the driver's behaviour or GPU rounding (tooling/device/check.sh runs cuda-ops-gpu.test.ts for that).
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeviceProperties, Dim3, GpuRuntime, HostMemory, LaunchConfig, PinnedBuffer } from '@farskip/device';

const root = fileURLToPath(new URL('../../../', import.meta.url));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...a: any[]) => any;

const host = (m: HostMemory, bytes?: number): Uint8Array => {
  const u8 = ArrayBuffer.isView(m) ? new Uint8Array(m.buffer, m.byteOffset, m.byteLength) : new Uint8Array(m.buffer, 0, m.bytes);
  return u8.subarray(0, bytes ?? u8.byteLength);
};
const dims = (d: Dim3): [number, number, number] => (typeof d === 'number' ? [d, 1, 1] : [d[0], d[1] ?? 1, d[2] ?? 1]);

export class EmuRuntime implements GpuRuntime {
  readonly kind = 'cuda' as const;
  readonly device = 0;
  readonly launches: string[] = [];
  private readonly f: Record<'alloc' | 'free' | 'htod' | 'dtoh' | 'launch', Fn>;
  private readonly names = new Map<bigint, string>();
  private next = 1n;

  constructor(readonly libPath: string) {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load(libPath);
    this.f = {
      alloc: lib.func('uint64_t fs_emu_alloc(uint64_t bytes)'),
      free: lib.func('void fs_emu_free(uint64_t p)'),
      htod: lib.func('void fs_emu_htod(uint64_t dst, const void *src, uint64_t bytes)'),
      dtoh: lib.func('void fs_emu_dtoh(_Out_ void *dst, uint64_t src, uint64_t bytes)'),
      launch: lib.func('int fs_emu_launch(const char *name, int gx, int gy, int gz, int bx, int by, int bz, int shared, const uint64_t *args)'),
    };
  }

  /** Builds (if stale) and loads the emulation library; a string says why it is unavailable. */
  static open(): EmuRuntime | string {
    const r = spawnSync(process.execPath, [`${root}tooling/build-cuda.mjs`, '--emu'], { encoding: 'utf8' });
    if (r.status !== 0) return `emulation library not built: ${(r.stdout + r.stderr).trim().split('\n').pop()}`;
    return new EmuRuntime(`${root}native/cuda/build/emu/libfs_cuda_emu.so`);
  }

  makeCurrent(): void {}
  properties(): DeviceProperties {
    return { name: 'CUDA emulation', totalMemory: 2 ** 34, multiprocessors: 1, computeCapability: [9, 0], warpSize: 32, maxThreadsPerBlock: 1024, maxSharedMemoryPerBlock: 49152 };
  }
  memInfo(): { free: number; total: number } { return { free: 2 ** 34, total: 2 ** 34 }; }
  priorityRange(): { least: number; greatest: number } { return { least: 0, greatest: -5 }; }
  createStream(): bigint { return this.next++; }
  destroyStream(): void {}
  syncStream(): void {}
  createEvent(): bigint { return this.next++; }
  destroyEvent(): void {}
  record(): void {}
  streamWait(): void {}
  query(): boolean { return true; }
  syncEvent(): void {}
  elapsedMs(): number { return 0; }

  alloc(bytes: number): bigint { return BigInt(this.f.alloc(bytes) as number | bigint); }
  free(ptr: bigint): void { this.f.free(ptr); }
  upload(dst: bigint, src: ArrayBufferView): void { this.uploadAsync(dst, src); }
  download(dst: ArrayBufferView, src: bigint): void { this.downloadAsync(dst, src); }
  uploadAsync(dst: bigint, src: HostMemory, _stream?: bigint, bytes?: number): void {
    const h = host(src, bytes);
    if (h.byteLength) this.f.htod(dst, h, h.byteLength);
  }
  downloadAsync(dst: HostMemory, src: bigint, _stream?: bigint, bytes?: number): void {
    const h = host(dst, bytes);
    if (h.byteLength) this.f.dtoh(h, src, h.byteLength);
  }
  copyAsync(dst: bigint, src: bigint, bytes: number): void {
    const tmp = new Uint8Array(bytes);
    this.downloadAsync(tmp, src);
    this.uploadAsync(dst, tmp);
  }
  memsetD8Async(ptr: bigint, value: number, count: number): void { this.uploadAsync(ptr, new Uint8Array(count).fill(value)); }
  memsetD32Async(ptr: bigint, value: number, count: number): void { this.uploadAsync(ptr, new Uint32Array(count).fill(value >>> 0)); }
  allocHost(bytes: number): PinnedBuffer { return { ptr: 0n, bytes, buffer: new ArrayBuffer(bytes) }; }
  freeHost(): void {}

  loadModule(): bigint { return 0xabcn; }
  getFunction(_module: bigint, name: string): bigint {
    const id = this.next++;
    this.names.set(id, name);
    return id;
  }
  unloadModule(): void {}
  /** Packs the arguments into 8-byte slots as manifest.ts does (ptr / i64: 64 bits, int sign-extended, float's bits). */
  launch(fn: bigint, config: LaunchConfig, manifest: readonly ('ptr' | 'int' | 'float' | 'i64')[], args: readonly (number | bigint)[]): void {
    const name = this.names.get(fn)!;
    const slots = new BigUint64Array(args.length);
    manifest.forEach((t, i) => {
      const v = args[i]!;
      slots[i] = t === 'float' ? BigInt(new Uint32Array(Float32Array.of(Number(v)).buffer)[0]!) : BigInt.asUintN(64, BigInt(v));
    });
    this.launches.push(name);
    const rc = this.f.launch(name, ...dims(config.grid), ...dims(config.block), config.sharedBytes ?? 0, slots) as number;
    if (rc !== 0) throw new Error(`${name}: fs_emu_launch returned ${rc}`);
  }
  setMaxDynamicSharedMemory(): void {}
  release(): void {}
}

/** Compiles packages/device's fake libcuda + cuBLAS (naive column-major f32 GEMM over host pointers); null without cc. */
export function fakeCublasLib(): string | null {
  try { execFileSync('cc', ['--version'], { stdio: 'ignore' }); } catch { return null; }
  const out = join(mkdtempSync(join(tmpdir(), 'farskip-fake-cublas-')), 'libfake_cuda.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', out, `${root}packages/device/__tests__/fixtures/fake_cuda.c`]);
  return out;
}
