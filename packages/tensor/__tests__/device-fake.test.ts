// cuda:N / hip:N tensors against packages/device's FAKE driver (fixtures/fake_cuda.c, compiled here with `cc`):
// it exports libcuda's and libamdhip64's symbols with their C signatures but keeps "device memory" in host malloc
// and runs every stream operation at once. So these tests check the host-side bookkeeping for real through the
// bindings (allocation through the caching allocator, copies and memsets with the right pointers and sizes, the
// data guard, disposal, error paths), NOT a GPU: no real device memory, asynchrony or DMA is involved.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor, deviceContext, releaseDeviceContexts, tensor } from '@farskip/tensor';


let cc = false;
try { execFileSync('cc', ['--version'], { stdio: 'ignore' }); cc = true; } catch { /* no compiler: skipped below */ }
const saved = { cuda: process.env.FARSKIP_CUDA_LIB, hip: process.env.FARSKIP_HIP_LIB };

beforeAll(() => {
  if (!cc) return;
  const out = join(mkdtempSync(join(tmpdir(), 'farskip-tensor-fake-cuda-')), 'libfake_cuda.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', out, fileURLToPath(new URL('../../device/__tests__/fixtures/fake_cuda.c', import.meta.url))]);
  process.env.FARSKIP_CUDA_LIB = out; // the fake has 2 devices
  process.env.FARSKIP_HIP_LIB = out;
});
afterAll(() => {
  releaseDeviceContexts();
  for (const [k, v] of [['FARSKIP_CUDA_LIB', saved.cuda], ['FARSKIP_HIP_LIB', saved.hip]] as const) {
    if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
});

const bits = (t: Tensor): number[] => { const d = t.data as ArrayBufferView; return Array.from(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)); };

describe.skipIf(!cc)('device tensors over the fake CUDA driver (host bookkeeping, not a GPU)', () => {
  it('to(cuda:0) / cpu() round trips preserve the bits of f32, bf16 and i32 (NaN payloads, -0, inf, subnormals)', () => {
    const f32 = new Float32Array([0, -0, 1.5, -Infinity, Infinity, 1e-45, 3.4e38]);
    new Uint32Array(f32.buffer)[0] = 0x7fa00001; // a signalling NaN payload must survive too
    const cases: Tensor[] = [
      new Tensor(f32, [7]),
      new Tensor(Uint16Array.from([0x7fc1, 0x8000, 0x3f80, 0xff80, 0x0001, 0xffff]), [2, 3], { dtype: 'bf16' }),
      new Tensor(Int32Array.from([0, -1, 2 ** 31 - 1, -(2 ** 31), 12345]), [5]),
    ];
    for (const host of cases) {
      for (const d of [host.to('cuda:0'), host.cuda(), host.to('cuda'), host.cuda(1)]) {
        expect(d.device === 'cuda:0' || d.device === 'cuda:1').toBe(true);
        expect(d.storage).not.toBeNull();
        expect([d.dtype, d.shape]).toEqual([host.dtype, host.shape]);
        const back = d.cpu();
        expect(back.device).toBe('cpu');
        expect(bits(back)).toEqual(bits(host));
        expect(d.to('cpu').toArray()).toEqual(host.toArray());
      }
    }
    expect(cases[0]!.cpu()).toBe(cases[0]); // already there: the same tensor, as torch
  });

  it('creators take { device }: zeros (even in a reused block), empty, full, ones, fromArray, randn, tensor()', () => {
    // 1.2 MB: the large pool, where nothing else lives, so the freed block is handed out again at the same address
    const junk = Tensor.full([300_000], 7.25, { device: 'cuda:0' });
    const addr = junk.storage!.addr;
    junk.dispose();
    const z = Tensor.zeros([300_000], { device: 'cuda:0' });
    expect(z.storage!.addr).toBe(addr); // the same memory, still holding 7.25s: zeros must clear it
    expect(z.toArray().every((v) => v === 0)).toBe(true);
    expect(Tensor.full([3], -2.5, { device: 'cuda:0' }).toArray()).toEqual([-2.5, -2.5, -2.5]);
    expect(Tensor.full([3], -7, { device: 'cuda:0', dtype: 'i32' }).toArray()).toEqual([-7, -7, -7]);
    expect(Tensor.full([3], 0.1, { device: 'cuda:0', dtype: 'bf16' }).toArray()).toEqual(Tensor.full([3], 0.1, { dtype: 'bf16' }).toArray());
    expect(Tensor.ones([2, 2], { device: 'cuda:0', dtype: 'bf16' }).toArray()).toEqual([1, 1, 1, 1]);
    expect(Tensor.empty([4, 5], { device: 'cuda:0' }).shape).toEqual([4, 5]);
    expect(Tensor.fromArray([1, 2, 3], [3], { device: 'cuda:0', dtype: 'bf16' }).toArray()).toEqual([1, 2, 3]);
    expect(Tensor.randn([10], { seed: 3, device: 'cuda:0' }).toArray()).toEqual(Tensor.randn([10], { seed: 3 }).toArray());
    const r = tensor([[1, 2], [3, 4]], { device: 'cuda:0', requiresGrad: true });
    expect([r.device, r.requiresGrad, r.toArray()]).toEqual(['cuda:0', true, [1, 2, 3, 4]]);
    expect(Tensor.fromArray([42], [], { device: 'cuda:0' }).item()).toBe(42);
    expect(String(Tensor.fromArray([1, 2], [2], { device: 'cuda:0' }))).toBe('Tensor([2], f32, cuda:0) [1, 2]');
  });

  it("a device tensor's data throws a clear error naming the device and the fix; numel and shape still work", () => {
    const d = Tensor.fromArray([1, 2, 3, 4], [2, 2], { device: 'cuda:0' });
    expect(d.numel).toBe(4);
    expect(() => (d.data as Float32Array)[0]).toThrow(/f32\[2, 2\] tensor on cuda:0: reading data\[0\] needs its elements on the CPU.*\.cpu\(\) \/ \.to\('cpu'\)/);
    expect(() => { (d.data as Float32Array)[1] = 5; }).toThrow(/writing data\[1\]/);
    expect(() => (d.data as Float32Array).subarray(0, 1)).toThrow(/reading data\.subarray/);
    expect(() => [...(d.data as Float32Array)]).toThrow(/cuda:0/);
    expect(() => d.transpose(0, 1)).toThrow(/cuda:0.*\.cpu\(\)/); // a CPU-only view op
  });

  it('views: reshape and detach share the device storage, clone copies it, to(dtype) converts (through the host here)', () => {
    const d = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3], { device: 'cuda:0' });
    const r = d.reshape(3, 2), det = d.detach(), c = d.clone();
    expect(r.storage).toBe(d.storage);
    expect(det.storage).toBe(d.storage);
    expect(c.storage).not.toBe(d.storage);
    expect([r.shape, r.toArray(), c.toArray()]).toEqual([[3, 2], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]]);
    const b = d.to('bf16');
    expect([b.device, b.dtype, b.toArray()]).toEqual(['cuda:0', 'bf16', [1, 2, 3, 4, 5, 6]]);
  });

  it('dispose() returns the block to the caching allocator at once; a disposed tensor says so when used', () => {
    const stats = () => deviceContext('cuda:0').allocator.stats();
    const before = stats();
    const t = Tensor.zeros([1000], { device: 'cuda:0' });
    expect(stats().allocatedBytes - before.allocatedBytes).toBe(4096); // 4000 B rounded up to 512 B blocks
    t.dispose();
    t.dispose(); // twice is fine
    expect(stats().allocatedBytes).toBe(before.allocatedBytes);
    expect(stats().numFrees).toBe(before.numFrees + 1);
    expect(() => t.toArray()).toThrow(/cuda:0 tensor storage used after dispose\(\)/);
    Tensor.zeros([3]).dispose(); // a CPU no-op
  });

  it('garbage collection frees device memory through the FinalizationRegistry', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const stats = () => deviceContext('cuda:0').allocator.stats();
    for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setTimeout(r, 5)); } // earlier tests' garbage first
    const base = stats().numFrees;
    (() => { for (let i = 0; i < 8; i++) Tensor.zeros([256], { device: 'cuda:0' }); })();
    for (let i = 0; i < 50 && stats().numFrees < base + 8; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(stats().numFrees).toBe(base + 8);
  });

  it('to(device) is differentiable: the gradient comes back to the CPU leaf', async () => {
    const x = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
    const y = x.to('cuda:0');
    expect(y.requiresGrad).toBe(true);
    await y.cpu().backward(Tensor.fromArray([0.5, -1, 2], [3]));
    expect(x.grad!.toArray()).toEqual([0.5, -1, 2]);
    const leaf = Tensor.fromArray([1, 2], [2], { device: 'cuda:0', requiresGrad: true });
    expect(() => leaf.backward(Tensor.ones([2]))).toThrow(/gradient is on cpu but the tensor on cuda:0/);
  });

  it('errors: device index out of range, malformed device strings', () => {
    expect(() => Tensor.zeros([2], { device: 'cuda:5' })).toThrow(/device 5 out of range: 2 visible CUDA device\(s\)/);
    expect(() => Tensor.zeros([2]).to('cuda:x' as never)).toThrow(/invalid device 'cuda:x'/);
  });

  it('hip:0 goes through the same path with HipRuntime (fake HIP runtime)', () => {
    const h = Tensor.fromArray([1.5, -2, 3], [3], { device: 'hip:0' });
    expect([h.device, h.toArray()]).toEqual(['hip:0', [1.5, -2, 3]]);
    expect(Tensor.zeros([2], { device: 'hip:0', dtype: 'i32' }).toArray()).toEqual([0, 0]);
    expect(deviceContext('hip:0').runtime.kind).toBe('hip');
  });
});
