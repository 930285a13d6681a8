// bf16 <-> f32 conversion, plain TypeScript. bf16 values are raw 16-bit patterns (the upper half of an f32).
// f32 -> bf16 rounds to nearest even; every NaN becomes the canonical quiet NaN 0x7FC0 (as PyTorch's
// c10::BFloat16 round_to_nearest_even does). bf16 -> f32 is exact (bits << 16).

export const BF16_QNAN = 0x7fc0;

export function f32ToBf16(n: number, x: Float32Array, y: Uint16Array): void {
  const bits = new Uint32Array(x.buffer, x.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const u = bits[i]!;
    if ((u & 0x7fffffff) > 0x7f800000) { y[i] = BF16_QNAN; continue; } // NaN
    // add 0x7FFF plus the lsb of the kept half, then truncate: ties go to the even pattern
    y[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
}

export function bf16ToF32(n: number, x: Uint16Array, y: Float32Array): void {
  const bits = new Uint32Array(y.buffer, y.byteOffset, n);
  for (let i = 0; i < n; i++) bits[i] = x[i]! << 16;
}

/** Scalar helpers (tests, debugging). */
const scratchU32 = new Uint32Array(1);
const scratchF32 = new Float32Array(scratchU32.buffer);
export function bf16BitsToNumber(b: number): number { scratchU32[0] = b << 16; return scratchF32[0]!; }
export function numberToBf16Bits(v: number): number {
  scratchF32[0] = v;
  const u = scratchU32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return BF16_QNAN;
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}
