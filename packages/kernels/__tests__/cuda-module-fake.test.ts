// CudaKernelModule's host path end to end without a GPU: @farskip/device's compiled fake libcuda (see
// packages/device/__tests__/fixtures/fake_cuda.c: "device memory" is host malloc, and its module knows two fake
// kernels, `axpy` (y += a·x over n floats) and `fill_i64`) stands in for the driver. A manifest written here in
// kernels.json's format describes `axpy`, so the launch goes name → manifest → rule → packed params →
// cuLaunchKernel → a kernel that reads its arguments through kernelParams. This checks the glue; the real
// kernels run on a GPU in tooling/device/check.sh.
import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CudaRuntime } from '@farskip/device';
import { CudaKernelModule } from '../src/backend/cuda/module.js';
import type { KernelSpec } from '../src/backend/cuda/manifest.js';
import { fakeCublasLib } from './emu-runtime.js';

const saved = process.env.FARSKIP_CUDA_LIB;
const fake = fakeCublasLib(); // the same fake library serves as libcuda (null without a C compiler)
let log: () => string = () => '';
beforeAll(() => {
  if (!fake) return;
  process.env.FARSKIP_CUDA_LIB = fake;
  const L = koffi.load(fake);
  const f = L.func('const char *fake_log()');
  log = () => String(f());
});
afterAll(() => { if (saved === undefined) delete process.env.FARSKIP_CUDA_LIB; else process.env.FARSKIP_CUDA_LIB = saved; });

const AXPY: KernelSpec = {
  name: 'axpy', file: 'fake', params: [{ name: 'y', type: 'ptr' }, { name: 'x', type: 'ptr' }, { name: 'a', type: 'float' }, { name: 'n', type: 'int' }],
  launch: { grid: ['cdiv(n, 128)'], block: [128], sharedBytes: 'n > 4 ? 64 * 1024 : 0' },
};

describe.skipIf(!fake)(`CudaKernelModule over the fake driver${fake ? '' : ' (skipped: no C compiler `cc` to build it)'}`, () => {
  it('launches by name with the manifest\'s geometry, opting in to large shared memory, and the kernel sees its arguments', () => {
    const rt = new CudaRuntime(0);
    const m = new CudaKernelModule(rt, new Map([['axpy', AXPY]]), new TextEncoder().encode('.version 8.0\n.target sm_90\n'));
    const n = 300, x = Float32Array.from({ length: n }, (_, i) => i), y = new Float32Array(n).fill(1);
    const dx = rt.alloc(4 * n), dy = rt.alloc(4 * n);
    rt.upload(dx, x); rt.upload(dy, y);
    const l = m.launch('axpy', { y: { addr: dy }, x: { addr: dx }, a: 0.5, n });
    expect(l!.grid).toEqual([3, 1, 1]);
    expect(log()).toContain('attr f=1 attrib=8 value=65536');
    expect(log()).toContain('launch f=1 grid=3,1,1 block=128,1,1 shared=65536');
    const out = new Float32Array(n);
    rt.download(out, dy);
    expect([...out]).toEqual([...x].map((v) => Math.fround(1 + 0.5 * v)));
    expect(m.launch('axpy', { y: { addr: dy }, x: { addr: dx }, a: 1, n: 0 })).toBeNull(); // empty grid: no launch
    expect(() => m.launch('nope', {})).toThrow(/'nope' is not in native\/cuda\/kernels.json/);
    expect(() => m.launch('axpy', { y: { addr: dy }, x: { addr: dx }, a: 1 })).toThrow(/'n' \(int\) missing/);
    m.dispose();
    expect(() => m.launch('axpy', { y: { addr: dy }, x: { addr: dx }, a: 1, n })).toThrow(/after dispose/);
    rt.free(dx); rt.free(dy);
    rt.release();
  });
});
