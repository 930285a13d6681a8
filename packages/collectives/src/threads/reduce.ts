// Reduction kernels the comm workers run over shared memory. One rank computes each slice of the result (in rank
// order 0..n-1) and writes it to everyone, so every rank ends with bit-identical values. bf16 (Uint16Array bit
// patterns) accumulates in f32 and rounds to nearest-even after every step, as NCCL's ring does when it stores a
// partial sum in bf16 between hops.
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

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
export function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}
/** round-to-nearest-even of an f32 value to bf16 bits (NaN stays NaN) */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Chunk of elements reduced at a time: fits L2 with a few sources, so sources are read once. */
export const CHUNK = 1 << 14;
let scratchF32 = new Float32Array(CHUNK);
let scratchU32 = new Uint32Array(scratchF32.buffer);

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
