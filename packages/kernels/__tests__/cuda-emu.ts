// Test harness for the CUDA kernels of native/cuda under their CPU emulation (native/cuda/emu): builds
// libfs_cuda_emu.so with `node tooling/build-cuda.mjs --emu` (cached), loads it with koffi, and launches kernels by
// name with the grid / block / sharedBytes that native/cuda/kernels.json prescribes, so the manifest's launch rules
// are exercised together with the kernels. Buffers live in "device" memory (malloc'd by the library) and move with
// explicit copies, as they will through the CUDA driver. bf16 tensors are uploaded as raw patterns.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { tsBackend as ts } from '../src/backend/ts/index.js';

export type DType = 'f32' | 'bf16';
export interface Buf { addr: bigint; bytes: number }
interface Param { name: string; type: 'ptr' | 'int' | 'float' | 'i64' }
interface Kernel { name: string; params: Param[]; launch: { grid: (number | string)[]; block: (number | string)[]; sharedBytes: number | string } }

const root = fileURLToPath(new URL('../../../', import.meta.url));
const WARP = 32;

export function bf16Round(x: Float32Array): Float32Array {
  const u = new Uint16Array(x.length), y = new Float32Array(x.length);
  ts.f32ToBf16(x.length, x, u);
  ts.bf16ToF32(x.length, u, y);
  return y;
}

/** Evaluates one launch-rule entry of kernels.json: a number or an expression over the kernel's scalar arguments. */
function evalDim(e: number | string, scope: Record<string, number>): number {
  if (typeof e === 'number') return e;
  const keys = Object.keys(scope);
  const cdiv = (a: number, b: number) => Math.ceil(a / b);
  const f = new Function('cdiv', 'min', 'WARP', ...keys, `return (${e});`) as (...a: unknown[]) => number;
  const v = f(cdiv, Math.min, WARP, ...keys.map((k) => scope[k]));
  if (!Number.isInteger(v) || v < 0) throw new Error(`launch rule '${e}' gave ${v}`);
  return v;
}

export class Emu {
  private readonly kernels = new Map<string, Kernel>();
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
    const manifest = JSON.parse(readFileSync(`${root}native/cuda/kernels.json`, 'utf8')) as { kernels: Kernel[] };
    for (const k of manifest.kernels) this.kernels.set(k.name, k);
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
    const slots = new BigUint64Array(k.params.length);
    const scope: Record<string, number> = { ...extra };
    k.params.forEach((p, i) => {
      const v = args[p.name];
      if (v === undefined) throw new Error(`${name}: argument ${p.name} missing`);
      if (p.type === 'ptr') {
        if (v !== null && typeof v !== 'object') throw new Error(`${name}: ${p.name} must be a buffer`);
        slots[i] = v === null ? 0n : v.addr;
        return;
      }
      if (typeof v !== 'number') throw new Error(`${name}: ${p.name} must be a number`);
      scope[p.name] = v;
      if (p.type === 'float') slots[i] = BigInt(new Uint32Array(new Float32Array([v]).buffer)[0]!);
      else slots[i] = BigInt.asUintN(64, BigInt(v));
    });
    const dims = (d: (number | string)[]) => [0, 1, 2].map((i) => (i < d.length ? evalDim(d[i]!, scope) : 1));
    const g = dims(k.launch.grid), bl = dims(k.launch.block);
    const shared = evalDim(k.launch.sharedBytes, scope);
    if (g.some((x) => x === 0)) return; // an empty launch
    const rc = this.fn.launch!(name, g[0], g[1], g[2], bl[0], bl[1], bl[2], shared, slots) as number;
    if (rc !== 0) throw new Error(`${name}: fs_emu_launch returned ${rc} (grid ${g}, block ${bl}, shared ${shared})`);
  }

  freeAll(): void {
    for (const b of this.live.splice(0)) this.fn.free!(b.addr);
  }
}
