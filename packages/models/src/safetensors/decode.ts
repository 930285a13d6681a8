// Raw little-endian tensor bytes -> a @farskip/tensor Tensor. Floats map to f32 / bf16 / f64 (F16 and the FP8
// forms have no dtype of ours, so they decode exactly to f32 through lookup tables); integers map to i32,
// and the 64-bit and unsigned 32-bit forms only when every value fits.
import { type DType, type Shape, type TypedArray, Tensor, f32ToBf16Bits, numelOf } from '@farskip/tensor';
import { SAFETENSORS_DTYPE_BYTES, type SafetensorsDType } from './format.js';

/**
 * What a float tensor comes back as: 'native' keeps F32/BF16/F64 as they are (F16 and FP8 become f32);
 * 'f32' and 'bf16' convert (to bf16 with round-to-nearest-even). Integer tensors are always i32.
 */
export type ReadAs = 'native' | 'f32' | 'bf16';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** `bytes` holds exactly the tensor's elements; `where` prefixes errors ("file: tensor 'x'"). */
export function decodeTensor(bytes: Uint8Array, dtype: SafetensorsDType, shape: Shape, as: ReadAs, where: string): Tensor {
  if (!LITTLE_ENDIAN) throw new Error(`${where}: reading safetensors needs a little-endian host`);
  const n = numelOf(shape);
  if (bytes.length !== n * SAFETENSORS_DTYPE_BYTES[dtype]) {
    throw new Error(`${where}: got ${bytes.length} bytes for shape [${shape.join(', ')}] ${dtype}`); // a reader bug, not bad input
  }
  if (bytes.byteOffset % 8 !== 0) bytes = bytes.slice(); // typed-array views need aligned storage
  const { buffer, byteOffset: at } = bytes;
  const [dt, data] = decodeData(bytes, buffer, at, n, dtype, as, where);
  return new Tensor(data as never, shape, { dtype: dt });
}

function decodeData(bytes: Uint8Array, buffer: ArrayBufferLike, at: number, n: number, dtype: SafetensorsDType, as: ReadAs,
  where: string): [DType, TypedArray] {
  switch (dtype) {
    case 'F32': return floats(new Float32Array(buffer, at, n), 'f32', as);
    case 'F64': return floats(new Float64Array(buffer, at, n), 'f64', as);
    case 'BF16': {
      const bits = new Uint16Array(buffer, at, n);
      if (as !== 'f32') return ['bf16', bits];
      const widened = new Uint32Array(n);
      for (let i = 0; i < n; i++) widened[i] = bits[i]! << 16;
      return ['f32', new Float32Array(widened.buffer)];
    }
    case 'F16': return fromTable(new Uint16Array(buffer, at, n), f16Table(), as);
    case 'F8_E4M3': return fromTable(bytes, f8Table('E4M3'), as);
    case 'F8_E5M2': return fromTable(bytes, f8Table('E5M2'), as);
    case 'F8_E8M0': return fromTable(bytes, f8Table('E8M0'), as);
    case 'BOOL': case 'U8': return ['i32', Int32Array.from(bytes)];
    case 'I8': return ['i32', Int32Array.from(new Int8Array(buffer, at, n))];
    case 'I16': return ['i32', Int32Array.from(new Int16Array(buffer, at, n))];
    case 'U16': return ['i32', Int32Array.from(new Uint16Array(buffer, at, n))];
    case 'I32': return ['i32', new Int32Array(buffer, at, n)];
    case 'U32': return ['i32', narrow(new Uint32Array(buffer, at, n), 1, false, dtype, where)];
    case 'I64': return ['i32', narrow(new Uint32Array(buffer, at, 2 * n), 2, true, dtype, where)];
    case 'U64': return ['i32', narrow(new Uint32Array(buffer, at, 2 * n), 2, false, dtype, where)];
    case 'C64': throw new Error(`${where} has dtype C64 (complex), which has no tensor dtype here`);
  }
}

function floats(data: Float32Array | Float64Array, dtype: 'f32' | 'f64', as: ReadAs): [DType, TypedArray] {
  if (as === 'native' || dtype === as) return [dtype, data];
  return as === 'f32' ? ['f32', Float32Array.from(data)] : ['bf16', toBf16(data)];
}

function fromTable(codes: Uint8Array | Uint16Array, table: Float32Array, as: ReadAs): [DType, TypedArray] {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = table[codes[i]!]!;
  return as === 'bf16' ? ['bf16', toBf16(out)] : ['f32', out];
}

function toBf16(src: Float32Array | Float64Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16Bits(src[i]!);
  return out;
}

/**
 * Integers stored as `words` u32 words per element (little-endian) to i32, failing on the first value that
 * does not fit. For 64-bit forms the high word must be the sign extension of the low word.
 */
function narrow(words: Uint32Array, per: 1 | 2, signed: boolean, dtype: SafetensorsDType, where: string): Int32Array {
  const n = words.length / per;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const lo = words[i * per]!, hi = per === 2 ? words[i * per + 1]! : 0;
    const fits = signed ? (hi === 0 && lo < 0x80000000) || (hi === 0xffffffff && lo >= 0x80000000) : hi === 0 && lo < 0x80000000;
    if (!fits) {
      let v = (BigInt(hi) << 32n) | BigInt(lo);
      if (signed && hi >= 0x80000000) v -= 1n << 64n;
      throw new Error(`${where} has dtype ${dtype} and element ${i} (= ${v}) does not fit in i32 [-2147483648, 2147483647]`);
    }
    out[i] = lo | 0;
  }
  return out;
}

// ---- exact minifloat decoding tables ------------------------------------------------------------------------
/** A sign/exponent/mantissa code to its value; `inf` says whether the all-ones exponent means Inf/NaN (IEEE). */
function minifloat(code: number, expBits: number, manBits: number, bias: number, inf: boolean): number {
  const sign = (code >> (expBits + manBits)) & 1 ? -1 : 1;
  const e = (code >> manBits) & ((1 << expBits) - 1), m = code & ((1 << manBits) - 1);
  if (inf && e === (1 << expBits) - 1) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** (1 - bias - manBits);
  return sign * (1 + m / (1 << manBits)) * 2 ** (e - bias);
}

let f16: Float32Array | undefined;
function f16Table(): Float32Array {
  if (!f16) {
    f16 = new Float32Array(65536);
    for (let c = 0; c < 65536; c++) f16[c] = minifloat(c, 5, 10, 15, true);
  }
  return f16;
}

const f8 = new Map<string, Float32Array>();
function f8Table(kind: 'E4M3' | 'E5M2' | 'E8M0'): Float32Array {
  let t = f8.get(kind);
  if (!t) {
    t = new Float32Array(256);
    for (let c = 0; c < 256; c++) {
      if (kind === 'E5M2') t[c] = minifloat(c, 5, 2, 15, true);
      // e4m3fn (torch.float8_e4m3fn): no infinities, only S.1111.111 is NaN; max 448
      else if (kind === 'E4M3') t[c] = (c & 0x7f) === 0x7f ? NaN : minifloat(c, 4, 3, 7, false);
      // e8m0: an unsigned power of two 2^(c - 127); 0xff is NaN
      else t[c] = c === 0xff ? NaN : 2 ** (c - 127);
    }
    f8.set(kind, t);
  }
  return t;
}
