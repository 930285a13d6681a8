// The GPU ops on a real CUDA device (cuda:0, or FARSKIP_CUDA_DEVICE), against the CPU ops: the cases of
// cuda-ops-cases.ts, bf16 GEMM included. Skipped where no CUDA device is visible (CI, this project's dev VM); run on
// an H200 by tooling/device/check.sh, which imports this file under its vitest shim.
import { afterAll } from 'vitest';
import { cudaDeviceCount } from '@farskip/device';
import { type Device, releaseDeviceContexts } from '@farskip/tensor';
import { deviceOpSuite } from './cuda-ops-cases.js';

const device = `cuda:${Number(process.env.FARSKIP_CUDA_DEVICE ?? '0')}` as Device;
const count = cudaDeviceCount();
afterAll(() => releaseDeviceContexts());

deviceOpSuite(`${device} (a real GPU)`, device, count > 0 ? null : 'no CUDA device visible (libcuda missing or no GPU)', { bf16Matmul: true });
