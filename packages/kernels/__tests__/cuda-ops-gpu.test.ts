// The GPU ops on a real CUDA device (cuda:0, or FARSKIP_CUDA_DEVICE), against the CPU ops: the cases of
// cuda-ops-cases.ts, bf16 GEMM included. Skipped where no CUDA device is visible (CI, this project's dev VM); run on
// an H200 by tooling/device/check.sh, which imports this file under its vitest shim.
import { afterAll, describe, expect, it } from 'vitest';
import { cudaDeviceCount } from '@farskip/device';
import { type Device, releaseDeviceContexts, Tensor } from '@farskip/tensor';
import { deviceOpSuite } from './cuda-ops-cases.js';

const device = `cuda:${Number(process.env.FARSKIP_CUDA_DEVICE ?? '0')}` as Device;
const count = cudaDeviceCount();
afterAll(() => releaseDeviceContexts());

deviceOpSuite(`${device} (a real GPU)`, device, count > 0 ? null : 'no CUDA device visible (libcuda missing or no GPU)', { bf16Matmul: true });

describe.skipIf(count === 0)(`${device}: host ↔ device copies (a real GPU)`, () => {
  it('a round trip through device memory is bit exact for f32, bf16 and i32', () => {
    for (const dtype of ['f32', 'bf16', 'i32'] as const) {
      const x = dtype === 'i32' ? Tensor.fromArray([-3, 0, 7, 2 ** 30], [4], { dtype }) : Tensor.randn([257, 3], { seed: 5, dtype });
      const back = x.to(device).cpu();
      expect(back.device).toBe('cpu');
      expect(Array.from(back.data as ArrayLike<number>)).toEqual(Array.from(x.data as ArrayLike<number>));
    }
  });
});
