// The GPU ops of backend/cuda/ops.ts against the CPU ops, forward and backward, f32 and bf16: every case builds
// seeded CPU inputs, runs the op and its backward on the CPU (the native or plain-TS CPU kernels, tested against
// float64 references elsewhere), then the same op on copies of the inputs on `device` with the same upstream
// gradient, and compares outputs and input gradients (downloaded) within f32 / bf16 tolerances. Shared by
// cuda-ops-emu.test.ts (the CPU emulation of the kernels behind a stand-in runtime) and cuda-ops-gpu.test.ts (a real
// GPU, run by tooling/device/check.sh): only describe / it / it.each / expect(...).toBe / toBeLessThanOrEqual, so
// the check's vitest shim runs it too.
import { describe, expect, it } from 'vitest';
import { type DType, type Device, Tensor } from '@farskip/tensor';
import { add, addScalar, linear, logSoftmax, matmul, mul, rmsNorm, scale, silu, softmax, sub, swiglu } from '../src/index.js';
import { expectClose, type Tol } from './helpers.js';

type FloatDt = 'f32' | 'bf16';
interface Case {
  name: string;
  shapes: number[][];
  fn: (...xs: Tensor[]) => Tensor;
  /** looser f32 tolerance for long reductions (GEMM) */
  f32?: Tol;
  /** the f32 case only (e.g. where the stand-in cuBLAS has no bf16 GEMM) */
  f32Only?: boolean;
}

const TOL: Record<FloatDt, Tol> = { f32: { rtol: 1e-4, atol: 1e-5 }, bf16: { rtol: 1.6e-2, atol: 1e-2 } };

const T = 6, H = 40; // 40 columns: more than a warp, not a multiple of 32
export const CASES: Case[] = [
  { name: 'add', shapes: [[T, H], [T, H]], fn: (a, b) => add(a, b) },
  { name: 'sub', shapes: [[T, H], [T, H]], fn: (a, b) => sub(a, b) },
  { name: 'mul', shapes: [[T, H], [T, H]], fn: (a, b) => mul(a, b) },
  { name: 'add row [T,H]+[H]', shapes: [[T, H], [H]], fn: (a, b) => add(a, b) },
  { name: 'add row [H]+[2,T,H]', shapes: [[H], [2, T, H]], fn: (a, b) => add(a, b) },
  { name: 'sub row [T,H]-[H]', shapes: [[T, H], [H]], fn: (a, b) => sub(a, b) },
  { name: 'mul row [T,H]*[H]', shapes: [[T, H], [H]], fn: (a, b) => mul(a, b) },
  { name: 'add col [T,H]+[T,1]', shapes: [[T, H], [T, 1]], fn: (a, b) => add(a, b) },
  { name: 'mul col [T,1]*[T,H]', shapes: [[T, 1], [T, H]], fn: (a, b) => mul(a, b) },
  { name: 'sub col [T,H]-[T,1]', shapes: [[T, H], [T, 1]], fn: (a, b) => sub(a, b) },
  { name: 'scale', shapes: [[T, H]], fn: (a) => scale(a, -1.75) },
  { name: 'addScalar', shapes: [[T, H]], fn: (a) => addScalar(a, 2.5) },
  { name: 'x*x (one leaf, two gradient contributions)', shapes: [[T, H]], fn: (a) => mul(a, a) },
  { name: 'silu', shapes: [[T, H]], fn: (a) => silu(a) },
  { name: 'swiglu', shapes: [[T, H], [T, H]], fn: (g, u) => swiglu(g, u) },
  { name: 'rmsNorm', shapes: [[2, T, H], [H]], fn: (x, w) => rmsNorm(x, w, 1e-5) },
  { name: 'softmax', shapes: [[T, H]], fn: (x) => softmax(scale(x, 3)) },
  { name: 'logSoftmax', shapes: [[2, T, H]], fn: (x) => logSoftmax(x) },
  { name: 'matmul [T,K]x[K,N]', shapes: [[T, 33], [33, 20]], fn: (a, b) => matmul(a, b), f32: { rtol: 1e-4, atol: 1e-4 } },
  { name: 'matmul batched [3,T,K]x[3,K,N]', shapes: [[3, T, 17], [3, 17, 9]], fn: (a, b) => matmul(a, b), f32: { rtol: 1e-4, atol: 1e-4 } },
  { name: 'linear with bias (transposed weight)', shapes: [[2, T, 24], [12, 24], [12]], fn: (x, w, b) => linear(x, w, b), f32: { rtol: 1e-4, atol: 1e-4 } },
  { name: 'MLP block: rmsNorm -> linear -> swiglu -> linear -> residual', shapes: [[T, 16], [16], [32, 16], [32, 16], [16, 32]],
    fn: (x, n, wg, wu, wd) => { const h = rmsNorm(x, n); return add(x, linear(swiglu(linear(h, wg), linear(h, wu)), wd)); }, f32: { rtol: 2e-4, atol: 2e-4 } },
];

/** Runs `c` on the CPU and on `device` in `dt` and compares. */
export async function checkCase(c: Case, dt: FloatDt, device: Device): Promise<void> {
  const xs = c.shapes.map((s, i) => Tensor.randn(s, { seed: 100 + i, dtype: dt as DType, requiresGrad: true }));
  const y = c.fn(...xs);
  const g = Tensor.randn(y.shape, { seed: 7, dtype: dt as DType });
  await y.backward(g);

  const xd = xs.map((x) => x.detach().to(device).requiresGrad_());
  const yd = c.fn(...xd);
  expect(yd.device).toBe(device);
  expect(yd.dtype).toBe(dt);
  const gd = g.to(device);
  await yd.backward(gd);
  const tol = dt === 'f32' ? (c.f32 ?? TOL.f32) : TOL.bf16;
  expectClose(yd.toArray(), y.toArray(), tol, `${c.name} ${dt} forward on ${device}`);
  xs.forEach((x, i) => {
    const got = xd[i]!.grad;
    expect(got !== null && got.device === device, `${c.name} ${dt}: grad ${i} on ${device}`).toBe(true);
    expectClose(got!.toArray(), x.grad!.toArray(), tol, `${c.name} ${dt} grad of input ${i} on ${device}`);
  });
  for (const t of [...xd, yd, gd]) { t.grad?.dispose(); t.dispose(); }
}

/** Registers the suite for `device`; `skip` (a reason) skips it. */
export function deviceOpSuite(label: string, device: Device, skip: string | null, options: { bf16Matmul: boolean }): void {
  describe.skipIf(skip !== null)(`GPU ops on ${label}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    for (const dt of ['f32', 'bf16'] as const) {
      const cases = CASES.filter((c) => dt === 'f32' || (!c.f32Only && (options.bf16Matmul || !/matmul|linear|MLP/.test(c.name))));
      it.each(cases.map((c) => c.name))(`%s (${dt}) matches the CPU op, forward and backward`, async (name) => {
        await checkCase(CASES.find((c) => c.name === name)!, dt, device);
      });
    }

    it('gradients accumulate on the device across backward calls (engine addInPlace)', async () => {
      const x = Tensor.randn([T, H], { seed: 3 }).to(device).requiresGrad_();
      const y = silu(x);
      const g = Tensor.randn([T, H], { seed: 4 });
      await y.backward(g.to(device), { retainGraph: true });
      const once = x.grad!.toArray();
      await y.backward(g.to(device));
      expectClose(x.grad!.toArray(), once.map((v) => 2 * v), TOL.f32, 'x.grad after two backward calls');
    });

    it('f32 <-> bf16 casts on the device equal the CPU casts bit for bit', () => {
      const x = Tensor.randn([T, H], { seed: 5, std: 100 });
      const viaDevice = x.to(device).to('bf16').cpu();
      expect(Array.from(viaDevice.data as Uint16Array)).toEqual(Array.from(x.to('bf16').data as Uint16Array));
      const back = x.to('bf16').to(device).to('f32').cpu();
      expect(Array.from(back.data as Float32Array)).toEqual(Array.from(x.to('bf16').to('f32').data as Float32Array));
    });
  });
}
