// cuda:N without a CUDA driver: the first use of the device throws @farskip/device's lookup error (naming
// FARSKIP_CUDA_LIB and what was searched), and nothing is cached, so a later use retries.
import { afterAll, describe, expect, it } from 'vitest';
import { loadLib } from '@farskip/device';
import { Tensor } from '@farskip/tensor';

const saved = process.env.FARSKIP_CUDA_LIB;
afterAll(() => { if (saved === undefined) delete process.env.FARSKIP_CUDA_LIB; else process.env.FARSKIP_CUDA_LIB = saved; });

let realDriver = false;
try { delete process.env.FARSKIP_CUDA_LIB; loadLib('cuda'); realDriver = true; } catch { /* the usual case here */ }

describe('cuda:N without a CUDA driver', () => {
  it.skipIf(realDriver)('Tensor.zeros(..., { device: "cuda:0" }) throws the search error naming FARSKIP_CUDA_LIB', () => {
    delete process.env.FARSKIP_CUDA_LIB;
    expect(() => Tensor.zeros([2], { device: 'cuda:0' }))
      .toThrow(/the CUDA driver library not found\. Searched: FARSKIP_CUDA_LIB \(unset\); libcuda\.so\.1 .*set FARSKIP_CUDA_LIB=\/path\/to\/libcuda\.so\.1/);
    expect(() => Tensor.fromArray([1], [1]).to('cuda:0')).toThrow(/FARSKIP_CUDA_LIB/); // not cached: tried again
  });

  it('an explicit FARSKIP_CUDA_LIB that does not load is the error, never a silent fallback', () => {
    process.env.FARSKIP_CUDA_LIB = '/nonexistent/libcuda.so.1';
    expect(() => Tensor.zeros([2], { device: 'cuda:0' })).toThrow(/FARSKIP_CUDA_LIB=\/nonexistent\/libcuda\.so\.1 failed to load/);
  });
});
