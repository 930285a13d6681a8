// Safetensors read/write: round trips of every dtype, the exact byte layout against hand-built bytes, a file
// written by an independent Python writer, dtype conversions, and lazy reads.
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor, type TypedArray, bf16BitsToF32, f32ToBf16Bits } from '@farskip/tensor';
import { SafetensorsFile, writeSafetensors } from '../src/safetensors/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'safetensors-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const FIXTURES = fileURLToPath(new URL('./fixtures/safetensors/', import.meta.url));

const bytesOf = (a: TypedArray): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** A safetensors file from a header (object or exact JSON text) and a data region, padded like the spec. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  let json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  json = padded;
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('round trip', () => {
  const view = Tensor.fromArray([9, 9, 1, 2, 3, 4], [3, 2]).slice(0, 1, 2); // row 1: storage at byteOffset 8
  const tensors: Record<string, Tensor> = {
    'f32.weight': new Tensor(new Float32Array([1.5, -0, NaN, Infinity, -3.4e38, 1e-45]), [2, 3]),
    'bf16.weight': new Tensor(new Uint16Array([0x3f80, 0x8000, 0x7fc1, 0xff80, 0x0001]), [5], { dtype: 'bf16' }),
    'i32.ids': new Tensor(new Int32Array([-2147483648, 2147483647, 0, -1]), [2, 2]),
    'f64.wide': new Tensor(new Float64Array([Math.PI, -1e300, 5e-324]), [3]),
    'scalar.f32': new Tensor(new Float32Array([42]), []),
    'scalar.i32': new Tensor(new Int32Array([-5]), []),
    'scalar.bf16': new Tensor(new Uint16Array([0x4049]), [], { dtype: 'bf16' }),
    'empty.f32': new Tensor(new Float32Array(0), [3, 0, 2]),
    'empty.bf16': new Tensor(new Uint16Array(0), [0], { dtype: 'bf16' }),
    'empty.i32': new Tensor(new Int32Array(0), [0, 1]),
    'empty.f64': new Tensor(new Float64Array(0), [0]),
    'view.f32': view,
    'ünïcode/名前': new Tensor(new Float32Array([7]), [1]),
  };
  const metadata = JSON.parse('{"format":"pt","__proto__":"own key","ключ":"значение","empty":""}') as Record<string, string>;

  it('writes and reads back every dtype, empty tensors, scalars and metadata bit for bit', () => {
    const path = join(tmp, 'round.safetensors');
    writeSafetensors(path, tensors, { metadata });
    const f = SafetensorsFile.open(path);
    try {
      expect(new Set(f.keys())).toEqual(new Set(Object.keys(tensors)));
      expect(Object.entries(f.metadata)).toEqual(Object.entries(metadata).sort((a, b) => (a[0] < b[0] ? -1 : 1)));
      for (const [name, t] of Object.entries(tensors)) {
        const back = f.read(name);
        expect(back.dtype, name).toBe(t.dtype);
        expect(back.shape, name).toEqual(t.shape);
        expect(bytesOf(back.data), name).toEqual(bytesOf(t.data));
        expect(f.info(name).byteLength).toBe(t.data.byteLength);
      }
      expect(view.data.byteOffset).toBe(8);
      expect(f.info('view.f32')).toMatchObject({ dtype: 'F32', shape: [1, 2] });
      expect(f.read('view.f32').toArray()).toEqual([1, 2]);
    } finally {
      f.close();
    }
  });

  it('accepts a Map and no metadata (no __metadata__ key at all)', () => {
    const path = join(tmp, 'map.safetensors');
    writeSafetensors(path, new Map([['x', Tensor.fromArray([1, 2], [2])]]));
    const text = readFileSync(path).subarray(8).toString('utf8');
    expect(text).not.toContain('__metadata__');
    const f = SafetensorsFile.open(path);
    expect(f.metadata).toEqual({});
    expect(f.read('x').toArray()).toEqual([1, 2]);
    f.close();
  });

  it('stores f32 as BF16 on request, rounding to nearest even like f32ToBf16Bits', () => {
    const vals = new Float32Array([1.00390625, 1.01171875, -2.5e-3, NaN, 65504, 3.4e38]); // two ties, NaN, overflow
    const path = join(tmp, 'as-bf16.safetensors');
    writeSafetensors(path, { w: new Tensor(vals, [2, 3]), ids: new Tensor(new Int32Array([3]), [1]) }, { f32As: 'BF16' });
    const f = SafetensorsFile.open(path);
    expect(f.info('w')).toMatchObject({ dtype: 'BF16', byteLength: 12 });
    expect(f.info('ids').dtype).toBe('I32');
    const back = f.read('w');
    expect(back.dtype).toBe('bf16');
    expect([...back.data]).toEqual([...vals].map(f32ToBf16Bits));
    expect([...back.data].slice(0, 2)).toEqual([0x3f80, 0x3f82]);
    f.close();
  });
});

describe('byte layout (checked against hand-built bytes, not our reader)', () => {
  it('matches the upstream library\'s own test vector for one F32 tensor', () => {
    // from huggingface/safetensors tensor.rs test_serialization_forced_alignement: 65 bytes of JSON, 7 spaces
    const expected = [
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
      121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
      91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
      115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
      32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
      160, 64,
    ];
    const path = join(tmp, 'vector.safetensors');
    writeSafetensors(path, { attn0: Tensor.fromArray([0, 1, 2, 3, 4, 5], [1, 1, 2, 3]) });
    expect([...readFileSync(path)]).toEqual(expected);
  });

  it('orders data by descending dtype then name, metadata first and sorted, header padded with spaces', () => {
    const path = join(tmp, 'layout.safetensors');
    writeSafetensors(path, {
      z: new Tensor(new Uint16Array([0x3f80]), [1], { dtype: 'bf16' }),
      a: new Tensor(new Uint16Array([0xc000]), [1], { dtype: 'bf16' }),
      m: new Tensor(new Int32Array([-2]), [1]),
      b: new Tensor(new Float64Array([0.5]), [1]),
      c: new Tensor(new Float32Array([2]), []),
    }, { metadata: { b: '2', a: '1' } });
    const json = '{"__metadata__":{"a":"1","b":"2"},' +
      '"b":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},' +
      '"c":{"dtype":"F32","shape":[],"data_offsets":[8,12]},' +
      '"m":{"dtype":"I32","shape":[1],"data_offsets":[12,16]},' +
      '"a":{"dtype":"BF16","shape":[1],"data_offsets":[16,18]},' +
      '"z":{"dtype":"BF16","shape":[1],"data_offsets":[18,20]}}';
    expect(json.length).toBe(307);
    const n = 312; // 307 rounded up to a multiple of 8
    const expected = Buffer.alloc(8 + n + 20);
    expected.writeBigUInt64LE(BigInt(n), 0);
    expected.write(json.padEnd(n, ' '), 8, 'latin1');
    const d = 8 + n;
    expected.writeDoubleLE(0.5, d);
    expected.writeFloatLE(2, d + 8);
    expected.writeInt32LE(-2, d + 12);
    expected.writeUInt16LE(0xc000, d + 16);
    expected.writeUInt16LE(0x3f80, d + 18);
    expect(readFileSync(path).equals(expected)).toBe(true);
  });

  it('writes the empty file as an empty object padded to 8 bytes', () => {
    const path = join(tmp, 'empty.safetensors');
    writeSafetensors(path, {});
    expect([...readFileSync(path)]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect(SafetensorsFile.open(path).keys()).toEqual([]);
  });
});

describe('a file from an independent writer (tooling/safetensors/make_fixture.py)', () => {
  type Expected = { dtype: string; shape: number[]; values?: (number | string)[]; bits?: number[]; error?: string };
  const expected = JSON.parse(readFileSync(join(FIXTURES, 'mixed.expected.json'), 'utf8')) as {
    metadata: Record<string, string>; tensors: Record<string, Expected>;
  };
  const num = (v: number | string): number => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : (v as number));
  const f = SafetensorsFile.open(join(FIXTURES, 'mixed.safetensors'));
  afterAll(() => f.close());

  it('has the same tensors, in storage order, and metadata', () => {
    expect(f.keys()).toEqual(Object.keys(expected.tensors));
    expect(f.metadata).toEqual(expected.metadata);
  });

  for (const [name, exp] of Object.entries(expected.tensors)) {
    it(`reads '${name}' (${exp.dtype} [${exp.shape.join(', ')}])`, () => {
      expect(f.info(name)).toMatchObject({ dtype: exp.dtype, shape: exp.shape });
      if (exp.error) {
        expect(() => f.read(name)).toThrow(new RegExp(`mixed\\.safetensors: tensor '${name}' .*${exp.error}`));
        return;
      }
      const t = f.read(name);
      expect(t.shape).toEqual(exp.shape);
      expect(t.dtype).toBe({ BF16: 'bf16', F32: 'f32', F16: 'f32', I32: 'i32', I64: 'i32', F64: 'f64' }[exp.dtype]);
      expect(t.toArray()).toEqual(exp.values!.map(num));
      if (exp.bits) expect([...t.data]).toEqual(exp.bits);
      if (exp.dtype === 'BF16') expect(f.read(name, { as: 'f32' }).data).toEqual(Float32Array.from(exp.values!.map(num)));
      if (exp.dtype === 'F16') {
        expect([...f.read(name, { as: 'bf16' }).data]).toEqual(exp.values!.map((v) => f32ToBf16Bits(num(v))));
      }
    });
  }
});

describe('conversions', () => {
  const cases: [string, string, number[], (dv: DataView, i: number, v: number) => void, number][] = [
    ['u8', 'U8', [0, 255, 7], (dv, i, v) => dv.setUint8(i, v), 1],
    ['bool', 'BOOL', [1, 0, 1], (dv, i, v) => dv.setUint8(i, v), 1],
    ['i8', 'I8', [-128, 127, -1], (dv, i, v) => dv.setInt8(i, v), 1],
    ['i16', 'I16', [-32768, 32767, -2], (dv, i, v) => dv.setInt16(2 * i, v, true), 2],
    ['u16', 'U16', [65535, 0, 1], (dv, i, v) => dv.setUint16(2 * i, v, true), 2],
    ['u32', 'U32', [2147483647, 0, 9], (dv, i, v) => dv.setUint32(4 * i, v, true), 4],
    ['u64', 'U64', [2147483647, 0, 3], (dv, i, v) => dv.setBigUint64(8 * i, BigInt(v), true), 8],
    ['i64', 'I64', [-2147483648, -1, 5], (dv, i, v) => dv.setBigInt64(8 * i, BigInt(v), true), 8],
    // FP8 codes -> exact values: e4m3fn has no infinities (0x7e = 448, 0x7f = NaN), e5m2 is IEEE-like
    ['e4m3', 'F8_E4M3', [0x38, 0x7e, 0x01], (dv, i, v) => dv.setUint8(i, v), 1],
    ['e5m2', 'F8_E5M2', [0x3c, 0x7c, 0x01], (dv, i, v) => dv.setUint8(i, v), 1],
    ['e8m0', 'F8_E8M0', [127, 0, 254], (dv, i, v) => dv.setUint8(i, v), 1],
    ['f16', 'F16', [0x3c00, 0x0001, 0xfc00], (dv, i, v) => dv.setUint16(2 * i, v, true), 2],
  ];
  const decoded: Record<string, number[]> = {
    e4m3: [1, 448, 2 ** -9], e5m2: [1, Infinity, 2 ** -16], e8m0: [1, 2 ** -127, 2 ** 127], f16: [1, 2 ** -24, -Infinity],
  };
  const header: Record<string, unknown> = {};
  let size = 0;
  for (const [name, dtype, vals, , bytes] of cases) {
    header[name] = { dtype, shape: [vals.length], data_offsets: [size, size + bytes * vals.length] };
    size += bytes * vals.length;
  }
  const data = new Uint8Array(size + 8 + 1);
  const dv = new DataView(data.buffer);
  let at = 0;
  for (const [, , vals, set, bytes] of cases) {
    const sub = new DataView(data.buffer, at);
    vals.forEach((v, i) => set(sub, i, v));
    at += bytes * vals.length;
  }
  header.too_big = { dtype: 'I64', shape: [1], data_offsets: [size, size + 8] };
  dv.setBigInt64(size, -(2n ** 31n) - 1n, true);
  header.nan8 = { dtype: 'F8_E4M3', shape: [], data_offsets: [size + 8, size + 9] };
  data[size + 8] = 0xff; // -NaN in e4m3fn
  const f = SafetensorsFile.fromBuffer(build(header, data), 'conv.safetensors');

  for (const [name, , vals] of cases) {
    it(`decodes ${name} exactly`, () => {
      const t = f.read(name);
      expect(t.dtype).toBe(decoded[name] ? 'f32' : 'i32');
      expect(t.toArray()).toEqual(decoded[name] ?? vals);
    });
  }
  it('rejects 64-bit values outside i32, naming the tensor, element and value', () => {
    expect(() => f.read('too_big')).toThrow("conv.safetensors: tensor 'too_big' has dtype I64 and element 0 (= -2147483649) does not fit in i32");
    expect(Number.isNaN(f.read('nan8').item())).toBe(true);
  });
  it('converts between f32 and bf16 on request, leaving integers i32', () => {
    expect(f.read('f16', { as: 'bf16' }).dtype).toBe('bf16');
    expect(f.read('f16', { as: 'bf16' }).toArray()).toEqual([1, bf16BitsToF32(f32ToBf16Bits(2 ** -24)), -Infinity]);
    expect(f.read('i16', { as: 'f32' }).dtype).toBe('i32');
    expect(() => f.read('i16', { as: 'f16' as never })).toThrow("conv.safetensors: read('i16', { as: \"f16\" }); expected 'native', 'f32' or 'bf16'");
  });
});

describe('lazy reads', () => {
  // 'small' first, then 1 MiB of I64 garbage that would fail to narrow to i32 if it were ever decoded
  const garbage = new Uint8Array(1 << 20).fill(0x7f);
  const small = new Float32Array([1, 2, 3, 4]);
  const data = new Uint8Array(16 + garbage.length + 4);
  data.set(bytesOf(small), 0);
  data.set(garbage, 16);
  data.set(bytesOf(new Float32Array([5])), 16 + garbage.length);
  const header = {
    small: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
    garbage: { dtype: 'I64', shape: [garbage.length / 8], data_offsets: [16, 16 + garbage.length] },
    last: { dtype: 'F32', shape: [], data_offsets: [16 + garbage.length, 20 + garbage.length] },
  };
  const bytes = build(header, data);

  it('open() reads only the header; read(name) reads only that tensor', () => {
    const path = join(tmp, 'lazy.safetensors');
    writeFileSync(path, bytes);
    const f = SafetensorsFile.open(path);
    const headerBytes = 8 + f.headerLength;
    expect(f.bytesRead).toBe(headerBytes);
    expect(f.read('last').item()).toBe(5);
    expect(f.read('small').toArray()).toEqual([1, 2, 3, 4]);
    expect(f.bytesRead).toBe(headerBytes + 16 + 4);
    expect(() => f.read('garbage')).toThrow(/tensor 'garbage' has dtype I64 and element 0 .* does not fit in i32/);
    f.close();
  });

  it('still reads a tensor after the bytes of the others were cut off the file', () => {
    const path = join(tmp, 'lazy-cut.safetensors');
    writeFileSync(path, bytes);
    const f = SafetensorsFile.open(path);
    truncateSync(path, 8 + f.headerLength + 16 + 100); // keeps 'small' and 100 bytes of 'garbage'
    expect(f.read('small').toArray()).toEqual([1, 2, 3, 4]);
    expect(() => f.read('last')).toThrow(/lazy-cut\.safetensors: file ended at byte \d+ .*truncated after it was opened/);
    f.close();
    expect(() => f.read('small')).toThrow("lazy-cut.safetensors: read('small') after close()");
  });
});
