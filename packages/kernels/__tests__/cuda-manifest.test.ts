// The host side of the CUDA kernels that needs no GPU (src/backend/cuda): the launch manifest's argument checks,
// the 8-byte slot packing cuLaunchKernel's kernelParams point at, and the launch rules of every kernel in
// native/cuda/kernels.json evaluated for a representative shape (the GPU launches go through exactly this code;
// the CPU-emulation tests run every kernel through it too).
import { afterEach, describe, expect, it } from 'vitest';
import { evalRule, loadManifest, prepareLaunch } from '../src/backend/cuda/manifest.js';
import { fatbinPath } from '../src/backend/cuda/module.js';

const specs = loadManifest();

describe('CUDA launch manifest', () => {
  it('every kernel\'s launch rule evaluates to a positive geometry for a representative shape', () => {
    expect(specs.size).toBeGreaterThan(50);
    for (const spec of specs.values()) {
      // ints 64 (and the GQA group Hq = 2·Hkv), i64 strides 4096, floats 0.5, pointers null; E experts of 64 rows
      const args = Object.fromEntries(spec.params.map((p) => [p.name, p.type === 'ptr' ? null : p.type === 'i64' ? 4096 : p.type === 'float' ? 0.5 : 64]));
      if ('Hq' in args) args.Hq = 128;
      const l = prepareLaunch(spec, args, 32, { totalRows: 64 * 64, P: 8 });
      for (const d of [...l.grid, ...l.block]) expect(d, `${spec.name} ${JSON.stringify(l.grid)} ${JSON.stringify(l.block)}`).toBeGreaterThan(0);
      expect(l.block[0] * l.block[1] * l.block[2], spec.name).toBeLessThanOrEqual(1024);
      expect(l.slots.length).toBe(spec.params.length);
    }
  });

  it('packs pointers, int32 (sign-extended), int64 and float bits into 8-byte slots', () => {
    const spec = specs.get('fs_axpby_f32')!;
    const l = prepareLaunch(spec, { n: 1000, alpha: -1.5, a: { addr: 0x7f0000001000n }, beta: 2, b: null, out: { addr: 0x10n } });
    const at = (name: string): bigint => l.slots[spec.params.findIndex((p) => p.name === name)]!;
    expect(at('a')).toBe(0x7f0000001000n);
    expect(at('b')).toBe(0n);
    expect(at('alpha')).toBe(BigInt(new Uint32Array(new Float32Array([-1.5]).buffer)[0]!));
    expect(l.grid).toEqual([4, 1, 1]); // min(cdiv(1000, 256), 65535)
    const att = specs.get('fs_attention_fwd_f32')!;
    const a = Object.fromEntries(att.params.map((p) => [p.name, p.type === 'ptr' ? null : 1]));
    const la = prepareLaunch(att, { ...a, causal: -1, kBatchStride: 2 ** 40 });
    expect(la.slots[att.params.findIndex((p) => p.name === 'causal')]).toBe(2n ** 64n - 1n);
    expect(la.slots[att.params.findIndex((p) => p.name === 'kBatchStride')]).toBe(2n ** 40n);
  });

  it('names a missing or mistyped argument, and rejects a rule that is not arithmetic', () => {
    const spec = specs.get('fs_axpby_f32')!;
    expect(() => prepareLaunch(spec, { n: 10, alpha: 1, a: null, beta: 1, b: null })).toThrow(/'out' \(ptr\) missing/);
    expect(() => prepareLaunch(spec, { n: 1.5, alpha: 1, a: null, beta: 1, b: null, out: null })).toThrow(/'n' must be an integer/);
    expect(() => prepareLaunch(specs.get('fs_softmax_fwd_f32')!, { rows: 2 ** 31, cols: 8, x: null, y: null })).toThrow(/'rows' = 2147483648 does not fit an int32/);
    expect(() => prepareLaunch(spec, { n: 10, alpha: 1, a: 5, beta: 1, b: null, out: null })).toThrow(/'a' must be a device buffer/);
    expect(() => evalRule('process.exit(1)', {}, 32, 'k')).toThrow();
    expect(() => evalRule('n; require("fs")', { n: 1 }, 32, 'k')).toThrow(/not an arithmetic expression/);
    expect(evalRule('transW ? cdiv(K, 64) : cdiv(N, 64)', { transW: 1, K: 130, N: 64 }, 32, 'k')).toBe(3);
  });
});

describe('CUDA fatbin lookup', () => {
  const saved = process.env.FARSKIP_CUDA_FATBIN;
  afterEach(() => { if (saved === undefined) delete process.env.FARSKIP_CUDA_FATBIN; else process.env.FARSKIP_CUDA_FATBIN = saved; });
  it('a wrong FARSKIP_CUDA_FATBIN is an error that names it', () => {
    process.env.FARSKIP_CUDA_FATBIN = '/nonexistent/farskip_cuda.fatbin';
    expect(() => fatbinPath()).toThrow(/FARSKIP_CUDA_FATBIN=\/nonexistent\/farskip_cuda.fatbin: no such file/);
  });
});
