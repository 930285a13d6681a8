// ABI check of HipRuntime without an AMD GPU or ROCm: the fake library (fixtures/fake_cuda.c, its HIP section)
// exports hip_runtime_api.h's symbols and signatures over the same fake state as the CUDA part. It shows the
// declarations, argument order, out-parameters and the ROCm 5/6 attribute numbers we send are consistent with the
// header as we read it; it cannot show that a real libamdhip64 agrees (see README: HIP is unverified on hardware).
import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HipRuntime, hipDeviceCount } from '../src/hip.js';
import { gpuDeviceCount, openGpu, parseDevice } from '../src/open.js';
import { fakeLib, haveCompiler, noCompilerReason } from './fake-lib.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const hook: Record<string, (...a: any[]) => any> = {};
const saved = process.env.FARSKIP_HIP_LIB;
beforeAll(() => {
  if (!haveCompiler) return;
  process.env.FARSKIP_HIP_LIB = fakeLib();
  const L = koffi.load(fakeLib());
  for (const d of ['void fake_reset()', 'const char *fake_log()', 'int fake_hip_device()', 'unsigned int fake_host_flags()', 'int fake_stream_priority(uintptr_t s)']) {
    hook[/ \*?(\w+)\(/.exec(d)![1]!] = L.func(d);
  }
  hook.fake_reset!();
});
afterAll(() => { if (saved === undefined) delete process.env.FARSKIP_HIP_LIB; else process.env.FARSKIP_HIP_LIB = saved; });

describe.skipIf(!haveCompiler)(`HipRuntime against the fake HIP runtime ${noCompilerReason}`, () => {
  it('opens a device through openGpu and reports its properties', () => {
    expect(hipDeviceCount()).toBe(2);
    expect(gpuDeviceCount('hip')).toBe(2);
    const { kind, index } = parseDevice('hip:1');
    const rt = openGpu(kind, index);
    expect(rt).toBeInstanceOf(HipRuntime);
    expect(hook.fake_hip_device!()).toBe(1);
    expect(rt.properties()).toEqual({
      name: 'Fake MI300X #1', totalMemory: 192 * 2 ** 30, multiprocessors: 304, computeCapability: [9, 4],
      warpSize: 64, maxThreadsPerBlock: 1024, maxSharedMemoryPerBlock: 65536,
    });
    expect(() => new HipRuntime(5)).toThrow(/device 5 out of range: 2 visible HIP device\(s\)/);
    rt.release();
  });

  it('streams, events, copies (sync and async), memsets, pinned memory, module launch', () => {
    const rt = new HipRuntime(0);
    const s = rt.createStream(rt.priorityRange().greatest);
    expect(hook.fake_stream_priority!(s)).toBe(-1);
    const d = rt.alloc(32), e = rt.alloc(32);
    rt.upload(d, Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    rt.memsetD32Async(d + 16n, 0xbf800000, 2, s); // -1.0f, passed as a C int
    rt.memsetD8Async(d + 24n, 0, 8, s);
    rt.copyAsync(e, d, 32, s);
    const pinned = rt.allocHost(32);
    expect(hook.fake_host_flags!()).toBe(1); // hipHostMallocPortable
    rt.downloadAsync(pinned, e, s);
    rt.syncStream(s);
    expect([...new Float32Array(pinned.buffer)]).toEqual([1, 2, 3, 4, -1, -1, 0, 0]);
    new Float32Array(pinned.buffer).set([9, 9, 9, 9]);
    rt.uploadAsync(d, pinned, s, 16);
    const back = new Float32Array(8);
    rt.download(back, d);
    expect([...back]).toEqual([9, 9, 9, 9, -1, -1, 0, 0]);
    const t0 = rt.createEvent({ timing: true }), t1 = rt.createEvent({ timing: true });
    rt.record(t0, s); rt.record(t1, s);
    expect(rt.query(t1)).toBe(true);
    expect(rt.elapsedMs(t0, t1)).toBe(0.5);
    const mod = rt.loadModule(Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3, 4])); // an ELF code object: no NUL added
    const axpy = rt.getFunction(mod, 'axpy');
    rt.launch(axpy, { grid: 1, block: 64, stream: s }, ['ptr', 'ptr', 'float', 'int'], [e, d, 2, 4]);
    const out = new Float32Array(8);
    rt.download(out, e);
    expect([...out]).toEqual([19, 20, 21, 22, -1, -1, 0, 0]);
    rt.unloadModule(mod);
    rt.freeHost(pinned); rt.free(d); rt.free(e);
    for (const ev of [t0, t1]) rt.destroyEvent(ev);
    rt.destroyStream(s);
    rt.release();
  });
});
