// Kernel arguments for cuLaunchKernel / hipModuleLaunchKernel. Their `void **kernelParams` is an array with one
// pointer per kernel parameter, each pointing at that argument's value. We build it in one native block:
//
//   [ p_0 | p_1 | ... | p_{n-1} | storage ]      p_i = base + 8n + offset_i   (all little-endian)
//
// storage holds each value at its natural alignment: 'ptr' (a device pointer, u64) and 'i64' take 8 bytes,
// 'int' (i32) and 'float' (f32) take 4. The driver copies the values at the launch call, so one scratch block can
// be reused for the next launch. The manifest must match the kernel's C signature: the driver cannot check it.
export type KernelParamType = 'ptr' | 'int' | 'float' | 'i64';

const SIZE: Readonly<Record<KernelParamType, number>> = { ptr: 8, i64: 8, int: 4, float: 4 };

export interface PackedParams {
  /** Argument values, each at `offsets[i]`. */
  storage: Uint8Array;
  offsets: number[];
}

function fail(i: number, type: string, value: unknown, expect: string): never {
  throw new TypeError(`kernel argument ${i} (${type}) is ${typeof value === 'bigint' ? `${value}n` : String(value)}: expected ${expect}`);
}

/** Lays out the argument values (no pointers yet). Throws naming the argument when a value does not fit its type. */
export function packKernelParams(manifest: readonly KernelParamType[], args: readonly (number | bigint)[]): PackedParams {
  if (manifest.length !== args.length) {
    throw new TypeError(`kernel manifest has ${manifest.length} parameter(s) (${manifest.join(', ')}) but ${args.length} argument(s) were given`);
  }
  const offsets: number[] = [];
  let end = 0;
  for (const t of manifest) {
    const size = SIZE[t];
    if (size === undefined) throw new TypeError(`unknown kernel parameter type '${String(t)}': expected ptr, int, float or i64`);
    end = Math.ceil(end / size) * size;
    offsets.push(end);
    end += size;
  }
  const storage = new Uint8Array(Math.ceil(end / 8) * 8);
  const dv = new DataView(storage.buffer);
  manifest.forEach((t, i) => {
    const v = args[i]!;
    const at = offsets[i]!;
    if (t === 'ptr') {
      const b = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : fail(i, t, v, 'a device pointer (bigint)');
      if (b < 0n || b > 0xffffffffffffffffn) fail(i, t, v, 'a 64-bit unsigned device pointer');
      dv.setBigUint64(at, b, true);
    } else if (t === 'i64') {
      const b = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : fail(i, t, v, 'an integer');
      if (b < -(1n << 63n) || b >= 1n << 63n) fail(i, t, v, 'a signed 64-bit integer');
      dv.setBigInt64(at, b, true);
    } else if (t === 'int') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) fail(i, t, v, 'a signed 32-bit integer (number)');
      dv.setInt32(at, v, true);
    } else {
      if (typeof v !== 'number') fail(i, t, v, 'a number');
      dv.setFloat32(at, v, true);
    }
  });
  return { storage, offsets };
}

/** Bytes of the whole block (pointer array then storage) for a block that will live at address `base`. */
export function kernelParamBlock(manifest: readonly KernelParamType[], args: readonly (number | bigint)[], base: bigint): Uint8Array {
  const { storage, offsets } = packKernelParams(manifest, args);
  const head = 8 * offsets.length;
  const block = new Uint8Array(head + storage.length);
  const dv = new DataView(block.buffer);
  offsets.forEach((off, i) => dv.setBigUint64(8 * i, base + BigInt(head + off), true));
  block.set(storage, head);
  return block;
}
