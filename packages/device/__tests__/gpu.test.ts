// Real-driver checks. Without libcuda and a device (this repository's CI VM) only the first test runs: opening a
// device must fail at once with an error that says what is missing and how to fix it. With a GPU (e.g. an H200)
// the describe block runs the driver for real: a PTX kernel JIT-compiled by the driver and launched through the
// params block, timing events, pinned-memory async copies, the caching allocator, and cuBLAS GEMMs (bf16 in, f32
// accumulate) against float64 references on the host.
import { describe, expect, it } from 'vitest';
import { CachingAllocator, runtimeAllocatorDriver } from '../src/allocator.js';
import { Cublas, loadCublas } from '../src/cublas/cublas.js';
import { CudaRuntime, cudaDeviceCount } from '../src/cuda.js';

const devices = cudaDeviceCount();
const hasGpu = devices > 0;
let cublasReason = '';
if (hasGpu) { try { loadCublas(); } catch (e) { cublasReason = (e as Error).message; } }

// y[i] += a * x[i] for i < n; params (u64 y, u64 x, f32 a, s32 n), one thread per element
const AXPY_PTX = `.version 7.0
.target sm_50
.address_size 64
.visible .entry axpy(.param .u64 y_param, .param .u64 x_param, .param .f32 a_param, .param .s32 n_param)
{
  .reg .pred %p<2>;
  .reg .b32 %r<6>;
  .reg .f32 %f<5>;
  .reg .b64 %rd<8>;
  ld.param.u64 %rd1, [y_param];
  ld.param.u64 %rd2, [x_param];
  ld.param.f32 %f1, [a_param];
  ld.param.s32 %r1, [n_param];
  mov.u32 %r2, %ctaid.x;
  mov.u32 %r3, %ntid.x;
  mov.u32 %r4, %tid.x;
  mad.lo.s32 %r5, %r2, %r3, %r4;
  setp.ge.s32 %p1, %r5, %r1;
  @%p1 bra DONE;
  cvta.to.global.u64 %rd3, %rd1;
  cvta.to.global.u64 %rd4, %rd2;
  mul.wide.s32 %rd5, %r5, 4;
  add.s64 %rd6, %rd3, %rd5;
  add.s64 %rd7, %rd4, %rd5;
  ld.global.f32 %f2, [%rd7];
  ld.global.f32 %f3, [%rd6];
  fma.rn.f32 %f4, %f1, %f2, %f3;
  st.global.f32 [%rd6], %f4;
DONE:
  ret;
}
`;

/** f32 -> bf16 bits, round to nearest even (what a bf16 tensor stores). */
function toBf16(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
const fromBf16 = (b: number): number => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!;

it.skipIf(hasGpu)('without a GPU, new CudaRuntime(0) fails fast naming what is missing and the fix', () => {
  const t0 = performance.now();
  let err: Error | undefined;
  try { new CudaRuntime(0); } catch (e) { err = e as Error; }
  expect(err).toBeDefined();
  expect(err!.message).toMatch(/FARSKIP_CUDA_LIB|no CUDA device visible/);
  expect(performance.now() - t0).toBeLessThan(5000);
});

describe.skipIf(!hasGpu)(`on a real GPU (${devices} CUDA device(s))`, () => {
  it('reports the device and launches a JIT-compiled PTX kernel through the params block', () => {
    const rt = new CudaRuntime(0);
    const p = rt.properties();
    expect(p.name.length).toBeGreaterThan(0);
    expect(p.multiprocessors).toBeGreaterThan(0);
    expect(p.computeCapability[0]).toBeGreaterThanOrEqual(5);
    expect(p.warpSize).toBe(32);
    const mem = rt.memInfo();
    expect(mem.total).toBeGreaterThan(0);
    expect(mem.free).toBeLessThanOrEqual(mem.total);
    const { least, greatest } = rt.priorityRange();
    expect(greatest).toBeLessThanOrEqual(least);
    const s = rt.createStream(greatest);
    const mod = rt.loadModule(new TextEncoder().encode(AXPY_PTX));
    const axpy = rt.getFunction(mod, 'axpy');
    const n = 100_003;
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
    const dx = rt.alloc(4 * n), dy = rt.alloc(4 * n);
    const t0 = rt.createEvent({ timing: true }), t1 = rt.createEvent({ timing: true });
    rt.uploadAsync(dx, x, s); rt.uploadAsync(dy, y, s);
    rt.record(t0, s);
    rt.launch(axpy, { grid: Math.ceil(n / 256), block: 256, stream: s }, ['ptr', 'ptr', 'float', 'int'], [dy, dx, -1.5, n]);
    rt.record(t1, s);
    const out = new Float32Array(n);
    rt.downloadAsync(out, dy, s);
    rt.syncStream(s);
    expect(rt.query(t1)).toBe(true);
    expect(rt.elapsedMs(t0, t1)).toBeGreaterThanOrEqual(0);
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(out[i]! - (y[i]! - 1.5 * x[i]!)));
    expect(worst).toBeLessThan(1e-6);
    rt.unloadModule(mod);
    for (const e of [t0, t1]) rt.destroyEvent(e);
    rt.free(dx); rt.free(dy); rt.destroyStream(s);
    rt.release();
  });

  it('pinned async copies, memsets and device-to-device copies round-trip', () => {
    const rt = new CudaRuntime(0);
    const s = rt.createStream();
    const bytes = 8 << 20;
    const src = rt.allocHost(bytes), dst = rt.allocHost(bytes);
    const a = new Uint32Array(src.buffer);
    for (let i = 0; i < a.length; i++) a[i] = (i * 2654435761) >>> 0;
    const d1 = rt.alloc(bytes), d2 = rt.alloc(bytes);
    rt.uploadAsync(d1, src, s);
    rt.copyAsync(d2, d1, bytes, s);
    rt.memsetD32Async(d2, 0xdeadbeef, 16, s);
    rt.memsetD8Async(d2 + 64n, 0x11, 4, s);
    rt.downloadAsync(dst, d2, s);
    rt.syncStream(s);
    const b = new Uint32Array(dst.buffer);
    expect(b[0]).toBe(0xdeadbeef);
    expect(b[15]).toBe(0xdeadbeef);
    expect(b[16]).toBe(0x11111111);
    let mismatches = 0;
    for (let i = 17; i < b.length; i++) if (b[i] !== a[i]) mismatches++;
    expect(mismatches).toBe(0);
    rt.freeHost(src); rt.freeHost(dst); rt.free(d1); rt.free(d2); rt.destroyStream(s);
    rt.release();
  });

  it('the caching allocator reuses device memory on one stream and releases it with emptyCache', () => {
    const rt = new CudaRuntime(0);
    const a = new CachingAllocator(runtimeAllocatorDriver(rt));
    const x = a.allocate(3 << 20);
    const data = Float32Array.from({ length: 1024 }, (_, i) => i);
    rt.upload(x.ptr, data);
    const back = new Float32Array(1024);
    rt.download(back, x.ptr);
    expect([...back]).toEqual([...data]);
    a.free(x);
    const y = a.allocate(3 << 20);
    expect(y.ptr).toBe(x.ptr);
    a.free(y);
    a.emptyCache();
    expect(a.stats()).toMatchObject({ reservedBytes: 0, segmentsAllocated: 1, segmentsReleased: 1, cacheHits: 1 });
    rt.release();
  });

  describe.skipIf(cublasReason !== '')(`cuBLAS ${cublasReason ? `(skipped: ${cublasReason.slice(0, 200)})` : ''}`, () => {
    it('row-major bf16 x bf16 -> f32 GEMM (f32 accumulate), plain and strided batched, match float64 references', () => {
      const rt = new CudaRuntime(0);
      const blas = new Cublas(rt);
      const [M, N, K, batch] = [37, 53, 129, 3];
      const rand = (i: number): number => Math.sin(i * 12.9898) * 0.5;
      // A stored [M, K] ('N'), B stored [N, K] ('T'): C = A · Bᵀ as a linear layer computes it
      const A16 = Uint16Array.from({ length: batch * M * K }, (_, i) => toBf16(rand(i)));
      const B16 = Uint16Array.from({ length: batch * N * K }, (_, i) => toBf16(rand(i + 7777)));
      const dA = rt.alloc(A16.byteLength), dB = rt.alloc(B16.byteLength), dC = rt.alloc(4 * batch * M * N);
      rt.upload(dA, A16); rt.upload(dB, B16);
      const ref = (b: number, i: number, j: number): number => {
        let s = 0;
        for (let p = 0; p < K; p++) s += fromBf16(A16[b * M * K + i * K + p]!) * fromBf16(B16[b * N * K + j * K + p]!);
        return s;
      };
      blas.gemm('N', 'T', M, N, K, 1, dA, K, dB, K, 0, dC, N, { a: 'bf16', b: 'bf16', c: 'f32' });
      const C = new Float32Array(M * N);
      rt.download(C, dC);
      let worst = 0;
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) worst = Math.max(worst, Math.abs(C[i * N + j]! - ref(0, i, j)));
      expect(worst).toBeLessThan(1e-4);
      blas.gemmStridedBatched('N', 'T', M, N, K, 2, dA, K, M * K, dB, K, N * K, 0, dC, N, M * N, batch, { a: 'bf16', b: 'bf16', c: 'f32' });
      const Cb = new Float32Array(batch * M * N);
      rt.download(Cb, dC);
      worst = 0;
      for (let b = 0; b < batch; b++) for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) worst = Math.max(worst, Math.abs(Cb[b * M * N + i * N + j]! - 2 * ref(b, i, j)));
      expect(worst).toBeLessThan(2e-4);
      blas.destroy();
      for (const d of [dA, dB, dC]) rt.free(d);
      rt.release();
    });
  });
});
