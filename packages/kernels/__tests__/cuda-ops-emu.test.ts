// The GPU ops (backend/cuda/ops.ts) end to end on cuda:0 tensors WITHOUT a GPU: cuda:0's runtime is EmuRuntime
// (emu-runtime.ts: host memory, the CPU emulation of the CUDA kernels) and cuBLAS is packages/device's fake (a naive
// column-major f32 GEMM over host pointers; it has no bf16 GEMM, so bf16 matmul runs only on a GPU). This checks
// dispatch, launch arguments and rules, autograd recording, allocation and the kernels' logic against the CPU ops;
// it says nothing about the driver, real asynchrony or GPU rounding (cuda-ops-gpu.test.ts on an H200 does).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor, releaseDeviceContexts, useDeviceRuntime } from '@farskip/tensor';
import { cat, gather } from '@farskip/tensor';
import { add, crossEntropy, mul, sigmoid, softmax, sum } from '../src/index.js';
import { deviceOpSuite } from './cuda-ops-cases.js';
import { EmuRuntime, fakeCublasLib } from './emu-runtime.js';

const emu = EmuRuntime.open();
const blas = typeof emu === 'string' ? null : fakeCublasLib();
const skip = typeof emu === 'string' ? emu : blas === null ? 'no C compiler for the fake cuBLAS' : null;
const saved = { blas: process.env.FARSKIP_CUBLAS_LIB, lt: process.env.FARSKIP_CUBLASLT_LIB, fatbin: process.env.FARSKIP_CUDA_FATBIN };
if (skip === null) {
  process.env.FARSKIP_CUBLAS_LIB = blas!;
  process.env.FARSKIP_CUBLASLT_LIB = blas!;
  // the stand-in runtime ignores the module image; any existing file satisfies the fatbin lookup
  const manifest = fileURLToPath(new URL('../../../native/cuda/kernels.json', import.meta.url));
  if (existsSync(manifest)) process.env.FARSKIP_CUDA_FATBIN = manifest;
  useDeviceRuntime('cuda:0', emu as EmuRuntime);
}
afterAll(() => {
  releaseDeviceContexts();
  for (const [k, v] of [['FARSKIP_CUBLAS_LIB', saved.blas], ['FARSKIP_CUBLASLT_LIB', saved.lt], ['FARSKIP_CUDA_FATBIN', saved.fatbin]] as const) {
    if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
});

deviceOpSuite('cuda:0 = the CUDA emulation (no GPU)', 'cuda:0', skip, { bf16Matmul: false });

describe.skipIf(skip !== null)('GPU dispatch errors (emulated cuda:0)', () => {
  const x = () => Tensor.randn([4, 8], { seed: 1 }).to('cuda:0');

  it('an op without a GPU implementation names the device and the fix', () => {
    expect(() => sum(x())).toThrow(/tensor on cuda:0: a CPU kernel needs its elements on the CPU.*not implemented on cuda yet.*\.cpu\(\)/);
    expect(() => sigmoid(x())).toThrow(/not implemented on cuda yet/);
    expect(() => crossEntropy(x(), Tensor.fromArray([0, 1, 2, 3], [4], { dtype: 'i32' }))).toThrow(/cuda:0/);
    expect(() => cat([x(), x()])).toThrow(/cuda:0.*\.cpu\(\)/);
    expect(() => gather(x(), 1, Tensor.zeros([4, 1], { dtype: 'i32' }))).toThrow(/cuda:0/);
  });

  it('variants the kernels lack say so: softmax over another dim, general broadcasts, f64', () => {
    expect(() => softmax(x(), 0)).toThrow(/softmax \(over dim 0: only the last dim runs on the GPU.*not implemented on cuda yet/);
    expect(() => add(Tensor.randn([4, 1, 8]).to('cuda:0'), Tensor.randn([3, 1]).to('cuda:0'))).toThrow(/add \(broadcasting.*not implemented on cuda yet/);
    expect(() => mul(x().to('f64'), x().to('f64'))).toThrow(/f64: the CUDA kernels take f32 and bf16/);
  });

  it('operands on different devices are an error naming both', () => {
    expect(() => add(x(), Tensor.randn([4, 8]))).toThrow(/add: a is on cuda:0 but b is on cpu; move one with \.to\('cuda:0'\)/);
  });

  it('launches go through the manifest on the compute stream (the emulation logged the kernels)', () => {
    const rt = emu as EmuRuntime;
    const before = rt.launches.length;
    mul(x(), x());
    expect(rt.launches.slice(before)).toEqual(['fs_mul_f32']);
  });
});
