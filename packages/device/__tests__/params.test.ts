// The kernelParams block cuLaunchKernel receives: its bytes are written out here by hand (little-endian) from the
// layout rule (pointer array, then each value at its natural alignment), independently of the packing code.
import { describe, expect, it } from 'vitest';
import { kernelParamBlock, packKernelParams } from '../src/params.js';

const le64 = (v: bigint): number[] => Array.from({ length: 8 }, (_, i) => Number((BigInt.asUintN(64, v) >> BigInt(8 * i)) & 0xffn));
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const f32 = (x: number): number[] => [...new Uint8Array(new Float32Array([x]).buffer)];

describe('kernel parameter packing', () => {
  it('lays out (ptr, ptr, float, int) as cuLaunchKernel reads it: 4 pointers, then values at natural alignment', () => {
    const base = 0x7f00_0000_1000n;
    const y = 0x7fff_0000_0200n, x = 0x7fff_0000_0400n;
    const block = kernelParamBlock(['ptr', 'ptr', 'float', 'int'], [y, x, 2.5, 1000], base);
    // storage starts at 32 (4 pointers): y at +0, x at +8, a at +16, n at +20 -> 24 bytes
    const expected = [
      ...le64(base + 32n), ...le64(base + 40n), ...le64(base + 48n), ...le64(base + 52n),
      ...le64(y), ...le64(x), ...f32(2.5), ...le32(1000),
    ];
    expect([...block]).toEqual(expected);
  });

  it('aligns an i64 after an int to 8 bytes and stores negatives in two\'s complement', () => {
    const { storage, offsets } = packKernelParams(['int', 'i64', 'float', 'ptr'], [-2, -3n, -0.5, 16]);
    expect(offsets).toEqual([0, 8, 16, 24]);
    expect([...storage]).toEqual([...le32(-2 >>> 0), 0, 0, 0, 0, ...le64(-3n), ...f32(-0.5), 0, 0, 0, 0, ...le64(16n)]);
  });

  it('rejects arguments that do not fit their declared type, naming the argument', () => {
    expect(() => packKernelParams(['int'], [1.5])).toThrow(/kernel argument 0 \(int\) is 1.5: expected a signed 32-bit integer/);
    expect(() => packKernelParams(['int'], [2 ** 31])).toThrow(/argument 0 \(int\)/);
    expect(() => packKernelParams(['ptr'], [-1n])).toThrow(/argument 0 \(ptr\) is -1n/);
    expect(() => packKernelParams(['ptr', 'int'], [0n])).toThrow(/2 parameter\(s\) \(ptr, int\) but 1 argument/);
    expect(() => packKernelParams(['half' as never], [1])).toThrow(/unknown kernel parameter type 'half'/);
  });
});
