// Reduction kernels the comm workers run over shared memory. One rank computes each slice of the result (in rank
// order 0..n-1) and writes it to everyone, so every rank ends with bit-identical values. bf16 (Uint16Array bit
// patterns) accumulates in f32 and rounds to nearest-even after every step, as NCCL's ring does when it stores a
// partial sum in bf16 between hops.
import { bf16ToF32, f32ToBf16 } from '../buffers.js';
import type { CommDType, ReduceOp } from '../types.js';

export type View = Float32Array | Float64Array | Int32Array | Uint16Array | Uint8Array;

export function viewOf(dtype: CommDType, sab: SharedArrayBuffer, off: number, len: number): View {
  switch (dtype) {
    case 'f32': return new Float32Array(sab, off, len);
    case 'f64': return new Float64Array(sab, off, len);
    case 'i32': return new Int32Array(sab, off, len);
    case 'bf16': return new Uint16Array(sab, off, len);
    case 'u8': return new Uint8Array(sab, off, len);
  }
}


/**
 * Chunk of elements reduced at a time: the sources' chunks and the accumulator stay in L2 (1 MiB/core here) while
 * the result is copied to every rank's buffer. 32 K measured best with the wasm kernel (2 ranks, 16–64 MiB: ~1.5x
 * the bus bandwidth of 16 K, ~10–20 % above 64 K).
 */
export const CHUNK = 1 << 15;
let scratchF32 = new Float32Array(CHUNK);
let scratchU32 = new Uint32Array(scratchF32.buffer);

/**
 * The reduced values of srcs[p][lo..hi) (p in order), hi - lo <= CHUNK: a view, valid until the next call, of
 * either the WebAssembly accumulator (sum/avg of f32, f64, i32) or `scratch` (every other case, via reduceRange).
 */
export function reduceChunk(dtype: CommDType, op: ReduceOp, scratch: View, srcs: View[], lo: number, hi: number): View {
  const w = (op === 'sum' || op === 'avg') && dtype !== 'bf16' && dtype !== 'u8' ? simd() : null;
  if (!w) {
    reduceRange(dtype, op, scratch, srcs, lo, hi);
    return scratch.subarray(0, hi - lo);
  }
  const dt = dtype as 'f32' | 'f64' | 'i32';
  const acc = w.views[dt], add = w.add[dt], bytes = (hi - lo) * acc.BYTES_PER_ELEMENT;
  acc.set(srcs[0]!.subarray(lo, hi) as never, 0);
  for (let p = 1; p < srcs.length; p++) {
    acc.set(srcs[p]!.subarray(lo, hi) as never, B_OFF / acc.BYTES_PER_ELEMENT);
    add(0, 0, B_OFF, bytes);
  }
  const out = acc.subarray(0, hi - lo);
  if (op === 'avg') KERNELS[dt].div(out, srcs.length, hi - lo);
  return out;
}

// --- WebAssembly SIMD add kernels -------------------------------------------------------------------------------
// A JS loop adds ~1 element/ns; the f32x4 loop below runs at memory speed, so all-reduce is bound by the copies
// (TypedArray set = memcpy) into and out of the wasm memory. The module is assembled here byte by byte (no
// toolchain): memory `mem` (16 pages = 1 MiB, exported) and add_{f32,f64,i32}(dst, a, b, nBytes) computing
// dst = a + b lane-wise, 64 bytes per iteration (nBytes rounds up to 64: the accumulator regions are padded).
// IEEE f32/f64 adds and wrapping i32 adds give exactly what the JS loops give (an f64 sum of two f32 values
// rounded to f32 is the f32 sum; Int32Array stores wrap).
const B_OFF = CHUNK * 8; // second operand region (bytes); the accumulator is at 0
const uleb = (n: number): number[] => { const o: number[] = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return o; };
const str = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];
const section = (id: number, bytes: number[]): number[] => [id, ...uleb(bytes.length), ...bytes];
function addBody(simdAdd: number[]): number[] {
  const get = (i: number) => [0x20, i], set = (i: number) => [0x21, i];
  const load = (p: number, off: number) => [...get(p), 0xfd, 0x00, 0x04, ...uleb(off)]; // v128.load align=16
  // block; loop; if (n <= 0) break
  const code = [0x02, 0x40, 0x03, 0x40, ...get(3), 0x41, 0x00, 0x4c, 0x0d, 0x01];
  for (let off = 0; off < 64; off += 16) code.push(...get(0), ...load(1, off), ...load(2, off), 0xfd, ...simdAdd, 0xfd, 0x0b, 0x04, ...uleb(off));
  for (const p of [0, 1, 2]) code.push(...get(p), 0x41, 0xc0, 0x00, 0x6a, ...set(p)); // p += 64
  code.push(...get(3), 0x41, 0xc0, 0x00, 0x6b, ...set(3), 0x0c, 0x00, 0x0b, 0x0b, 0x0b); // n -= 64; continue
  const f = [0x00, ...code]; // no locals
  return [...uleb(f.length), ...f];
}
function simdModuleBytes(): Uint8Array {
  const names = ['add_f32', 'add_f64', 'add_i32'];
  const ops = [[0xe4, 0x01], [0xf0, 0x01], [0xae, 0x01]]; // f32x4.add, f64x2.add, i32x4.add
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x00]), // type (i32 i32 i32 i32) -> ()
    ...section(3, [0x03, 0x00, 0x00, 0x00]),
    ...section(5, [0x01, 0x00, ...uleb((2 * B_OFF) >> 16)]), // memory: min pages
    ...section(7, [0x04, ...str('mem'), 0x02, 0x00, ...names.flatMap((n, i) => [...str(n), 0x00, i])]),
    ...section(10, [0x03, ...ops.flatMap(addBody)]),
  ]);
}
// the package's lib settings carry no WebAssembly typings: the little used here (module-local, erased at build)
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
};
type AddFn = (dst: number, a: number, b: number, nBytes: number) => void;
interface Simd { views: { f32: Float32Array; f64: Float64Array; i32: Int32Array }; add: Record<'f32' | 'f64' | 'i32', AddFn> }
let simdState: Simd | null | undefined;
/** The instantiated kernels, or null where WebAssembly SIMD is missing (or FARSKIP_NO_WASM_SIMD=1): JS loops then. */
export function simd(): Simd | null {
  if (simdState !== undefined) return simdState;
  simdState = null;
  try {
    if (typeof process !== 'undefined' && process.env?.FARSKIP_NO_WASM_SIMD === '1') return null;
    const e = new WebAssembly.Instance(new WebAssembly.Module(simdModuleBytes())).exports;
    const buf = (e.mem as { buffer: ArrayBuffer }).buffer;
    simdState = {
      views: { f32: new Float32Array(buf), f64: new Float64Array(buf), i32: new Int32Array(buf) },
      add: { f32: e.add_f32 as AddFn, f64: e.add_f64 as AddFn, i32: e.add_i32 as AddFn },
    };
  } catch { /* no SIMD: JS loops */ }
  return simdState;
}


/**
 * dst[0..hi-lo) = op over srcs[p][lo..hi) (p in order). dst has the element type of srcs (Uint16Array for bf16);
 * `avgDiv` divides after the sum (avg). hi - lo must be <= CHUNK for bf16.
 */
export function reduceRange(dtype: CommDType, op: ReduceOp, dst: View, srcs: View[], lo: number, hi: number): void {
  const len = hi - lo;
  if (dtype === 'bf16') return reduceBf16(op, dst as Uint16Array, srcs as Uint16Array[], lo, hi, srcs.length);
  if (dtype === 'u8') throw new Error('u8 buffers carry raw bytes and cannot be reduced');
  const k = KERNELS[dtype];
  (dst as Float32Array).set((srcs[0] as Float32Array).subarray(lo, hi));
  for (let p = 1; p < srcs.length; p++) k[op === 'avg' ? 'sum' : op](dst, srcs[p]!, lo, len);
  if (op === 'avg') k.div(dst, srcs.length, len);
}

type Kernel = (d: View, s: View, lo: number, len: number) => void;
interface Kernels { sum: Kernel; max: Kernel; min: Kernel; div: (d: View, n: number, len: number) => void }

/**
 * One copy of each loop per element type, so every loop sees a single typed-array class and V8 compiles it to a
 * tight machine loop; one shared loop over Float32/Float64/Int32 views goes megamorphic and runs several times
 * slower. The stores into the typed array round (f32) or wrap (i32) exactly as the dtype's arithmetic does.
 */
function kernels(): Kernels {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function(`return {
    sum(d, s, lo, len) {
      const x = s.subarray(lo, lo + len), m = len & ~3; // 4-way unrolled: ~1.5x faster in V8
      for (let i = 0; i < m; i += 4) { d[i] += x[i]; d[i + 1] += x[i + 1]; d[i + 2] += x[i + 2]; d[i + 3] += x[i + 3]; }
      for (let i = m; i < len; i++) d[i] += x[i];
    },
    max(d, s, lo, len) { for (let i = 0; i < len; i++) { const v = s[lo + i]; if (v > d[i] || v !== v) d[i] = v; } },
    min(d, s, lo, len) { for (let i = 0; i < len; i++) { const v = s[lo + i]; if (v < d[i] || v !== v) d[i] = v; } },
    div(d, n, len) { for (let i = 0; i < len; i++) d[i] = d[i] / n; },
  };`)() as Kernels;
}
const KERNELS: Record<'f32' | 'f64' | 'i32', Kernels> = { f32: kernels(), f64: kernels(), i32: kernels() };
// Int32Array stores truncate toward zero, which is the integer average wanted

function reduceBf16(op: ReduceOp, dst: Uint16Array, srcs: Uint16Array[], lo: number, hi: number, n: number): void {
  const len = hi - lo;
  if (scratchF32.length < len) { scratchF32 = new Float32Array(len); scratchU32 = new Uint32Array(scratchF32.buffer); }
  const acc = scratchF32, accBits = scratchU32;
  const s0 = srcs[0]!;
  for (let i = 0; i < len; i++) accBits[i] = s0[lo + i]! << 16;
  for (let p = 1; p < n; p++) {
    const s = srcs[p]!;
    for (let i = 0; i < len; i++) {
      const x = bf16ToF32(s[lo + i]!);
      const a = acc[i]!;
      const r = op === 'sum' || op === 'avg' ? a + x : op === 'max' ? (x > a || x !== x ? x : a) : (x < a || x !== x ? x : a);
      accBits[i] = f32ToBf16(r) << 16; // round after every step, as a bf16 ring hop does
    }
  }
  if (op === 'avg') for (let i = 0; i < len; i++) accBits[i] = f32ToBf16(acc[i]! / n) << 16;
  for (let i = 0; i < len; i++) dst[i] = accBits[i]! >>> 16;
}
