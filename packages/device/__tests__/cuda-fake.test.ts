// ABI check of CudaRuntime and Cublas without a GPU: fixtures/fake_cuda.c exports the driver's and cuBLAS's
// symbols with their C signatures, keeps "device memory" in host malloc and runs two fake kernels that read their
// arguments through `void **kernelParams` as a real launch does. This shows that declarations, argument order,
// out-parameters, pointer widths and the params block are right; it cannot show real kernels, real asynchrony or
// pinned DMA (gpu.test.ts does, on a GPU).
import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CachingAllocator, OutOfMemoryError, runtimeAllocatorDriver } from '../src/allocator.js';
import { Cublas } from '../src/cublas/cublas.js';
import { CudaRuntime, cudaDeviceCount } from '../src/cuda.js';
import { GpuError } from '../src/errors.js';
import { fakeLib, haveCompiler, noCompilerReason } from './fake-lib.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...a: any[]) => any;
const hook: Record<string, Fn> = {};
const saved = { cuda: process.env.FARSKIP_CUDA_LIB, cublas: process.env.FARSKIP_CUBLAS_LIB, lt: process.env.FARSKIP_CUBLASLT_LIB };

beforeAll(() => {
  if (!haveCompiler) return;
  const lib = fakeLib();
  process.env.FARSKIP_CUDA_LIB = lib;
  process.env.FARSKIP_CUBLAS_LIB = lib;
  process.env.FARSKIP_CUBLASLT_LIB = lib;
  const L = koffi.load(lib); // the same dlopen handle as the runtime's: hooks see its state
  for (const d of ['void fake_reset()', 'const char *fake_log()', 'void fake_set_devices(int n)', 'void fake_set_mem_limit(size_t b)',
    'size_t fake_mem_used()', 'int fake_ctx_refs(int dev)', 'int fake_stream_priority(uintptr_t s)', 'unsigned int fake_stream_flags(uintptr_t s)',
    'unsigned int fake_host_flags()', 'uint64_t fake_last_param(int i)', 'uintptr_t fake_blas_stream()']) {
    hook[/ \*?(\w+)\(/.exec(d)![1]!] = L.func(d);
  }
  hook.fake_reset!();
});
afterAll(() => {
  for (const [k, v] of [['FARSKIP_CUDA_LIB', saved.cuda], ['FARSKIP_CUBLAS_LIB', saved.cublas], ['FARSKIP_CUBLASLT_LIB', saved.lt]] as const) {
    if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
});

describe.skipIf(!haveCompiler)(`CudaRuntime against the fake driver ${noCompilerReason}`, () => {
  it('opens a device: count, properties, primary context retained and released', () => {
    expect(cudaDeviceCount()).toBe(2);
    const rt = new CudaRuntime(1);
    expect(hook.fake_ctx_refs!(1)).toBe(1);
    expect(rt.properties()).toEqual({
      name: 'Fake H200 #1', totalMemory: 141 * 2 ** 30, multiprocessors: 132, computeCapability: [9, 0],
      warpSize: 32, maxThreadsPerBlock: 1024, maxSharedMemoryPerBlock: 49152,
    });
    expect(rt.driverVersion()).toBe(12080);
    rt.release();
    expect(hook.fake_ctx_refs!(1)).toBe(0);
    expect(() => rt.makeCurrent()).toThrow(/used after release/);
  });

  it('fails fast with the reason: device out of range, no device', () => {
    expect(() => new CudaRuntime(2)).toThrow(/device 2 out of range: 2 visible CUDA device\(s\)/);
    hook.fake_set_devices!(0);
    try {
      expect(cudaDeviceCount()).toBe(0);
      expect(() => new CudaRuntime(0)).toThrow(/cuInit failed with 100: no CUDA device visible to the driver .*CUDA_VISIBLE_DEVICES/);
    } finally { hook.fake_set_devices!(2); }
  });

  it('streams with priorities, timing events and stream-ordered copies and memsets', () => {
    const rt = new CudaRuntime(0);
    const { least, greatest } = rt.priorityRange();
    expect([least, greatest]).toEqual([0, -5]);
    const s = rt.createStream(greatest);
    expect([hook.fake_stream_priority!(s), hook.fake_stream_flags!(s)]).toEqual([-5, 1]);
    const t0 = rt.createEvent({ timing: true }), t1 = rt.createEvent({ timing: true });
    const d = rt.alloc(64), e = rt.alloc(64);
    rt.record(t0, s);
    rt.uploadAsync(d, Float32Array.from([1, 2, 3, 4]), s);
    rt.memsetD32Async(d + 16n, 0x3f800000, 4, s); // 1.0f
    rt.memsetD8Async(d + 32n, 0xff, 4, s);
    rt.copyAsync(e, d, 64, s);
    rt.record(t1, s);
    rt.syncEvent(t1);
    expect(rt.query(t1)).toBe(true);
    expect(rt.elapsedMs(t0, t1)).toBe(0.5); // the fake clock: 0.5 ms per record
    const out = new Float32Array(9);
    rt.downloadAsync(out, e, s);
    rt.syncStream(s);
    expect([...out.subarray(0, 8)]).toEqual([1, 2, 3, 4, 1, 1, 1, 1]);
    expect(new Uint32Array(out.buffer)[8]).toBe(0xffffffff);
    const untimed = rt.createEvent();
    expect(() => rt.elapsedMs(untimed, t1)).toThrow(GpuError);
    for (const ev of [t0, t1, untimed]) rt.destroyEvent(ev);
    rt.free(d); rt.free(e);
    rt.destroyStream(s);
    rt.release();
  });

  it('pinned host memory is a zero-copy ArrayBuffer over the driver allocation', () => {
    const rt = new CudaRuntime(0);
    const pinned = rt.allocHost(32);
    expect(hook.fake_host_flags!()).toBe(1); // CU_MEMHOSTALLOC_PORTABLE
    expect(pinned.buffer.byteLength).toBe(32);
    new Float64Array(pinned.buffer).set([1.5, -2, 3, 4]);
    const d = rt.alloc(32);
    rt.uploadAsync(d, pinned, 0n, 16); // first two doubles only
    const back = rt.allocHost(32);
    rt.downloadAsync(back, d, 0n, 16);
    expect([...new Float64Array(back.buffer, 0, 2)]).toEqual([1.5, -2]);
    expect(() => rt.uploadAsync(d, pinned, 0n, 64)).toThrow(/64 bytes requested but the host buffer holds 32/);
    rt.freeHost(pinned); rt.freeHost(back); rt.free(d);
    rt.release();
  });

  it('loads a module and launches a kernel whose arguments arrive through kernelParams', () => {
    const rt = new CudaRuntime(0);
    hook.fake_reset!();
    const mod = rt.loadModule(new TextEncoder().encode('.version 8.0\n.target sm_90\n')); // PTX text: NUL appended
    expect(String(hook.fake_log!())).toContain('module 2e766572 text=.versi');
    const axpy = rt.getFunction(mod, 'axpy');
    expect(() => rt.getFunction(mod, 'nope')).toThrow(/cuModuleGetFunction failed with 500/);
    const n = 5;
    const x = Float32Array.from([1, 2, 3, 4, 5]), y = Float32Array.from([10, 20, 30, 40, 50]);
    const dx = rt.alloc(4 * n), dy = rt.alloc(4 * n);
    rt.upload(dx, x); rt.upload(dy, y);
    rt.launch(axpy, { grid: [1], block: 128, sharedBytes: 256, stream: 0n }, ['ptr', 'ptr', 'float', 'int'], [dy, dx, 0.5, n]);
    expect(String(hook.fake_log!())).toContain('launch f=1 grid=1,1,1 block=128,1,1 shared=256 extra=(nil)');
    // opting in to more than 48 KiB of dynamic shared memory: CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (8)
    rt.setMaxDynamicSharedMemory(axpy, 100 * 1024);
    expect(String(hook.fake_log!())).toContain('attr f=1 attrib=8 value=102400');
    const out = new Float32Array(n);
    rt.download(out, dy);
    expect([...out]).toEqual([...y].map((v, i) => Math.fround(v + 0.5 * x[i]!)));
    // the params array: consecutive pointers into one block, 8 B apart for the two device pointers
    const p = [0, 1, 2, 3].map((i) => BigInt(hook.fake_last_param!(i)));
    expect([p[1]! - p[0]!, p[2]! - p[1]!, p[3]! - p[2]!]).toEqual([8n, 8n, 4n]);
    const fill = rt.getFunction(mod, 'fill_i64');
    const d64 = rt.alloc(24);
    rt.launch(fill, { grid: 1, block: [3, 1, 1] }, ['ptr', 'i64', 'int'], [d64, -(2n ** 40n) - 7n, 3]);
    const o64 = new BigInt64Array(3);
    rt.download(o64, d64);
    expect([...o64]).toEqual([-(2n ** 40n) - 7n, -(2n ** 40n) - 7n, -(2n ** 40n) - 7n]);
    expect(() => rt.launch(fill, { grid: 0, block: 1 }, ['ptr', 'i64', 'int'], [d64, 0n, 3])).toThrow(/launch grid 0/);
    rt.unloadModule(mod);
    for (const b of [dx, dy, d64]) rt.free(b);
    rt.release();
  });

  it('the caching allocator over the runtime: OOM (CUDA_ERROR_OUT_OF_MEMORY) empties the cache, then names the request', () => {
    const rt = new CudaRuntime(0);
    hook.fake_reset!();
    hook.fake_set_mem_limit!(48 << 20);
    const a = new CachingAllocator(runtimeAllocatorDriver(rt));
    const x = a.allocate(24 << 20);
    a.free(x);
    const y = a.allocate(30 << 20);
    expect(a.stats().oomRetries).toBe(1);
    expect(Number(hook.fake_mem_used!())).toBe(30 << 20);
    expect(() => a.allocate(20 << 20)).toThrow(OutOfMemoryError);
    a.free(y);
    a.emptyCache();
    expect(Number(hook.fake_mem_used!())).toBe(0);
    rt.release();
  });

  it('cuBLAS: a row-major f32 GEMM through the binding equals the row-major reference', () => {
    const rt = new CudaRuntime(0);
    const s = rt.createStream();
    const blas = new Cublas(rt, { stream: s, mathMode: 'pedantic' });
    expect(blas.version).toBe(120804);
    expect(BigInt(hook.fake_blas_stream!())).toBe(s);
    const M = 3, N = 4, K = 5;
    const A = Float32Array.from({ length: K * M }, (_, i) => (i % 7) - 3); // stored [K, M]: transA = 'T'
    const B = Float32Array.from({ length: K * N }, (_, i) => (i % 5) * 0.5); // stored [K, N]
    const C = Float32Array.from({ length: M * N }, (_, i) => i);
    const dA = rt.alloc(A.byteLength), dB = rt.alloc(B.byteLength), dC = rt.alloc(C.byteLength);
    rt.upload(dA, A); rt.upload(dB, B); rt.upload(dC, C);
    blas.gemm('T', 'N', M, N, K, 2, dA, M, dB, N, 1, dC, N, { a: 'f32', b: 'f32', c: 'f32' });
    const out = new Float32Array(M * N);
    rt.download(out, dC);
    const ref = Array.from({ length: M * N }, (_, idx) => {
      const i = Math.floor(idx / N), j = idx % N;
      let acc = 0;
      for (let p = 0; p < K; p++) acc += A[p * M + i]! * B[p * N + j]!;
      return 2 * acc + C[idx]!;
    });
    expect([...out]).toEqual(ref);
    // bf16 is not implemented by the fake: the status surfaces with cuBLAS's name for it
    expect(() => blas.gemm('N', 'N', M, N, K, 1, dA, K, dB, N, 0, dC, N, { a: 'bf16', b: 'bf16', c: 'f32' }))
      .toThrow(/cublasGemmEx failed with 15: CUBLAS_STATUS_NOT_SUPPORTED/);
    blas.destroy();
    for (const b of [dA, dB, dC]) rt.free(b);
    rt.destroyStream(s);
    rt.release();
  });
});
