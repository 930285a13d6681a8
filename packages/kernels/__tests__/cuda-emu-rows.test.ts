// The CUDA kernels of native/cuda (elementwise, norms, softmax, losses, RoPE, embedding, top-k, AdamW, bf16
// conversion), run under the CPU emulation of the CUDA execution model (see cuda-emu.ts), held to tsBackend with
// the launch geometry of kernels.json. f32 tolerances bound f32 math; bf16 variants get bf16-rounded inputs (the
// reference sees the same values) and are compared at bf16 output precision. This checks the kernels' logic; GPU
// numerics (expf / sincosf rounding, real concurrency) still need tooling/device/check.sh on a GPU.

import { afterAll, describe, expect, it } from 'vitest';
import { tsBackend as ts } from '../src/backend/ts/index.js';
import { openRunner, bf16Round, type DType, type KernelRunner } from './cuda-emu.js';
import { expectClose, expectEqualInts, mulberry32, randInts, randn, type Tol } from './helpers.js';

const emu = openRunner();
if (typeof emu === 'string') console.warn(`[cuda-emu-rows.test] skipping: ${emu}`);
const E = emu as KernelRunner;
afterAll(() => { if (typeof emu !== 'string') emu.freeAll(); });

const rng = mulberry32(1234);
const f32 = (n: number, s = 1) => randn(rng, n, Float32Array, s) as Float32Array;
const TOL: Record<DType, Tol> = { f32: { rtol: 2e-5, atol: 2e-5 }, bf16: { rtol: 1.6e-2, atol: 1e-2 } };
const DTS: DType[] = ['f32', 'bf16'];
const inputs = (dt: DType, x: Float32Array) => (dt === 'bf16' ? bf16Round(x) : x);

describe.skipIf(typeof emu === 'string')(`CUDA kernels (${typeof emu === 'string' ? 'unavailable' : emu.label}): rows and elementwise`, () => {
  it.each(DTS)('flat elementwise and activations (%s)', (dt) => {
    const n = 1000, a = inputs(dt, f32(n)), b = inputs(dt, f32(n)), g = inputs(dt, f32(n));
    const A = E.in(a, dt), B = E.in(b, dt), G = E.in(g, dt);
    const cases: [string, Record<string, number | ReturnType<KernelRunner['in']>>, (o: Float32Array) => void][] = [
      ['axpby', { alpha: 0.5, a: A, beta: -2, b: B }, (o) => ts.axpby(n, 0.5, a, -2, b, o)],
      ['mul', { a: A, b: B }, (o) => ts.mul(n, a, b, o)],
      ['scale', { a: A, s: 3 }, (o) => ts.scale(n, a, 3, o)],
      ['silu_fwd', { x: A }, (o) => ts.siluFwd(n, a, o)],
      ['silu_bwd', { x: A, dy: G }, (o) => ts.siluBwd(n, a, g, o)],
      ['swiglu_fwd', { gate: A, up: B }, (o) => ts.swigluFwd(n, a, b, o)],
    ];
    for (const [op, args, ref] of cases) {
      const outName = op === 'silu_fwd' || op === 'swiglu_fwd' ? 'y' : op === 'silu_bwd' ? 'dx' : 'out';
      const O = E.out(n, dt);
      E.run(`fs_${op}_${dt}`, { n, ...args, [outName]: O });
      const want = new Float32Array(n);
      ref(want);
      expectClose(E.get(O, n, dt), want, TOL[dt], `${op} ${dt}`);
    }
    const DG = E.out(n, dt), DU = E.out(n, dt), wg = new Float32Array(n), wu = new Float32Array(n);
    E.run(`fs_swiglu_bwd_${dt}`, { n, gate: A, up: B, dy: G, dgate: DG, dup: DU });
    ts.swigluBwd(n, a, b, g, wg, wu);
    expectClose(E.get(DG, n, dt), wg, TOL[dt], 'swiglu dgate');
    expectClose(E.get(DU, n, dt), wu, TOL[dt], 'swiglu dup');
  });

  it.each(DTS)('row / column broadcasts and sumAxis (%s)', (dt) => {
    const rows = 7, cols = 45, a = inputs(dt, f32(rows * cols)), br = inputs(dt, f32(cols)), bc = inputs(dt, f32(rows));
    const A = E.in(a, dt);
    for (const [op, b, ref] of [['add_row', br, ts.addRow], ['mul_row', br, ts.mulRow], ['add_col', bc, ts.addCol], ['mul_col', bc, ts.mulCol]] as const) {
      const O = E.out(rows * cols, dt), want = new Float32Array(rows * cols);
      E.run(`fs_${op}_${dt}`, { rows, cols, a: A, b: E.in(b, dt), out: O });
      ref(rows, cols, a, b, want);
      expectClose(E.get(O, rows * cols, dt), want, TOL[dt], `${op} ${dt}`);
    }
    for (const [outer, dim, inner] of [[3, 50, 5], [2, 7, 1], [1, 300, 70]] as const) {
      const x = inputs(dt, f32(outer * dim * inner)), O = E.out(outer * inner, dt), want = new Float32Array(outer * inner);
      E.run(`fs_sum_axis_${dt}`, { outer, dim, inner, x: E.in(x, dt), out: O });
      ts.sumAxis(outer, dim, inner, x, want);
      expectClose(E.get(O, outer * inner, dt), want, { rtol: TOL[dt].rtol, atol: TOL[dt].atol * Math.sqrt(dim) }, `sumAxis ${outer},${dim},${inner}`);
    }
  });

  it.each(DTS)('rmsnorm forward and backward, dw through partial sums (%s)', (dt) => {
    const rows = 37, cols = 100, P = 3;
    const x = inputs(dt, f32(rows * cols)), w = inputs(dt, f32(cols)), dy = inputs(dt, f32(rows * cols));
    const X = E.in(x, dt), W = E.in(w, dt), Y = E.out(rows * cols, dt), R = E.out(rows);
    E.run(`fs_rmsnorm_fwd_${dt}`, { rows, cols, x: X, w: W, eps: 1e-5, y: Y, rstd: R });
    const y = new Float32Array(rows * cols), rstd = new Float32Array(rows);
    ts.rmsnormFwd(rows, cols, x, w, 1e-5, y, rstd);
    expectClose(E.get(Y, rows * cols, dt), y, TOL[dt], 'rmsnorm y');
    expectClose(E.get(R, rows), rstd, TOL.f32, 'rmsnorm rstd');
    const DY = E.in(dy, dt), DX = E.out(rows * cols, dt), part = E.out(P * cols), DW = E.out(cols, dt);
    E.run(`fs_rmsnorm_bwd_dx_${dt}`, { rows, cols, x: X, w: W, rstd: R, dy: DY, dx: DX });
    E.run(`fs_rmsnorm_bwd_dw_partial_${dt}`, { rows, cols, x: X, rstd: R, dy: DY, partial: part }, { P });
    E.run(`fs_rmsnorm_bwd_dw_finalize_${dt}`, { P, cols, partial: part, dw: DW });
    const dx = new Float32Array(rows * cols), dw = new Float32Array(cols);
    ts.rmsnormBwd(rows, cols, x, w, rstd, dy, dx, dw);
    expectClose(E.get(DX, rows * cols, dt), dx, TOL[dt], 'rmsnorm dx');
    expectClose(E.get(DW, cols, dt), dw, { rtol: TOL[dt].rtol, atol: TOL[dt].atol * 6 }, 'rmsnorm dw');
  });

  it.each(DTS)('softmax and log-softmax forward / backward, -inf and all -inf rows (%s)', (dt) => {
    const rows = 5, cols = 333, x = inputs(dt, f32(rows * cols, 3)), dy = inputs(dt, f32(rows * cols));
    x[7] = -Infinity;
    for (let c = 0; c < cols; c++) x[3 * cols + c] = -Infinity; // an all -inf row: NaN like the reference
    for (const op of ['softmax', 'log_softmax'] as const) {
      const fwd = op === 'softmax' ? ts.softmaxFwd : ts.logSoftmaxFwd, bwd = op === 'softmax' ? ts.softmaxBwd : ts.logSoftmaxBwd;
      const Y = E.out(rows * cols, dt), y = new Float32Array(rows * cols);
      E.run(`fs_${op}_fwd_${dt}`, { rows, cols, x: E.in(x, dt), y: Y });
      fwd(rows, cols, x, y);
      const got = E.get(Y, rows * cols, dt);
      expectClose(got, y, TOL[dt], `${op} fwd`);
      const yin = inputs(dt, y.map((v) => (Number.isFinite(v) ? v : 0)));
      const DX = E.out(rows * cols, dt), dx = new Float32Array(rows * cols);
      E.run(`fs_${op}_bwd_${dt}`, { rows, cols, y: E.in(yin, dt), dy: E.in(dy, dt), dx: DX });
      bwd(rows, cols, yin, dy, dx);
      expectClose(E.get(DX, rows * cols, dt), dx, { rtol: TOL[dt].rtol, atol: TOL[dt].atol * 4 }, `${op} bwd`);
    }
  });

  it.each(DTS)('cross-entropy (ignoreIndex) and KL at temperature 2, forward / backward (%s)', (dt) => {
    const rows = 6, V = 301, ignore = -100, logits = inputs(dt, f32(rows * V, 2)), teacher = inputs(dt, f32(rows * V, 2));
    const targets = randInts(rng, rows, 0, V);
    targets[2] = ignore;
    const L = E.in(logits, dt), T = E.in(teacher, dt), TG = E.i32(targets);
    const LOSS = E.out(rows), LSE = E.out(rows), loss = new Float32Array(rows), lse = new Float32Array(rows);
    E.run(`fs_cross_entropy_fwd_${dt}`, { rows, V, logits: L, targets: TG, ignoreIndex: ignore, loss: LOSS, lse: LSE });
    ts.crossEntropyFwd(rows, V, logits, targets, ignore, loss, lse);
    expectClose(E.get(LOSS, rows), loss, TOL.f32, 'ce loss');
    expectClose(E.get(LSE, rows), lse, TOL.f32, 'ce lse');
    const dloss = f32(rows), DL = E.out(rows * V, dt), dl = new Float32Array(rows * V);
    E.run(`fs_cross_entropy_bwd_${dt}`, { rows, V, logits: L, targets: TG, ignoreIndex: ignore, lse: LSE, dloss: E.in(dloss), dlogits: DL });
    ts.crossEntropyBwd(rows, V, logits, targets, ignore, lse, dloss, dl);
    expectClose(E.get(DL, rows * V, dt), dl, TOL[dt], 'ce dlogits');
    const KL = E.out(rows), kl = new Float32Array(rows);
    E.run(`fs_kl_div_fwd_${dt}`, { rows, V, student: L, teacher: T, temperature: 2, kl: KL });
    ts.klDivFwd(rows, V, logits, teacher, 2, kl);
    expectClose(E.get(KL, rows), kl, { rtol: 1e-4, atol: 1e-5 }, 'kl');
    const dkl = f32(rows), DS = E.out(rows * V, dt), ds = new Float32Array(rows * V);
    E.run(`fs_kl_div_bwd_${dt}`, { rows, V, student: L, teacher: T, temperature: 2, dkl: E.in(dkl), dstudent: DS });
    ts.klDivBwd(rows, V, logits, teacher, 2, dkl, ds);
    expectClose(E.get(DS, rows * V, dt), ds, { rtol: TOL[dt].rtol, atol: 1e-6 + TOL[dt].atol * 0.01 }, 'kl dstudent');
  });

  it.each(DTS)('rope forward / inverse, partial rotary dims, in place (%s)', (dt) => {
    const batch = 2, seq = 3, heads = 2, headDim = 10, rotDim = 8, n = batch * seq * heads * headDim;
    const positions = Int32Array.from([0, 1, 7, 1000, 65535, 131071]);
    const invFreq = Float32Array.from({ length: rotDim / 2 }, (_, i) => Math.pow(10000, (-2 * i) / rotDim));
    const x = inputs(dt, f32(n));
    for (const inverse of [0, 1]) {
      const Y = E.out(n, dt), y = new Float32Array(n);
      E.run(`fs_rope_${dt}`, { batch, seq, heads, headDim, rotDim, positions: E.i32(positions), invFreq: E.in(invFreq), inverse, x: E.in(x, dt), y: Y });
      ts.rope(batch, seq, heads, headDim, rotDim, positions, invFreq, inverse === 1, x, y);
      expectClose(E.get(Y, n, dt), y, { rtol: TOL[dt].rtol, atol: dt === 'f32' ? 2e-5 : TOL.bf16.atol }, `rope inverse=${inverse}`);
      const X = E.in(x, dt); // in place: y aliases x
      E.run(`fs_rope_${dt}`, { batch, seq, heads, headDim, rotDim, positions: E.i32(positions), invFreq: E.in(invFreq), inverse, x: X, y: X });
      expectClose(E.get(X, n, dt), y, { rtol: TOL[dt].rtol, atol: dt === 'f32' ? 2e-5 : TOL.bf16.atol }, `rope in place inverse=${inverse}`);
    }
  });

  it.each(DTS)('embedding forward / backward (scatter-add onto an f32 table) (%s)', (dt) => {
    const n = 9, dim = 130, vocab = 5, ids = Int32Array.from([0, 3, 3, 1, 4, 3, 0, 2, 3]);
    const table = inputs(dt, f32(vocab * dim)), dout = inputs(dt, f32(n * dim)), dtable0 = f32(vocab * dim);
    const O = E.out(n * dim, dt), want = new Float32Array(n * dim);
    E.run(`fs_embedding_fwd_${dt}`, { n, dim, ids: E.i32(ids), table: E.in(table, dt), out: O });
    ts.embeddingFwd(n, dim, ids, table, want);
    expectClose(E.get(O, n * dim, dt), want, TOL.f32, 'embedding fwd (exact copy)');
    const DT = E.in(dtable0), dtable = dtable0.slice();
    E.run(`fs_embedding_bwd_${dt}`, { n, dim, ids: E.i32(ids), dout: E.in(dout, dt), dtable: DT });
    ts.embeddingBwd(n, dim, ids, dout, dtable);
    expectClose(E.get(DT, vocab * dim), dtable, TOL.f32, 'embedding bwd');
  });

  it.each(DTS)('top-k (k = 1, 8, 16): descending, ties to the lower index, NaN first (%s)', (dt) => {
    const rows = 9, cols = 70, x = inputs(dt, f32(rows * cols));
    for (let c = 0; c < cols; c += 3) x[cols + c] = 0.5; // many ties
    x[2 * cols + 40] = NaN; x[2 * cols + 5] = NaN; x[3 * cols + 69] = Infinity; x[4 * cols + 1] = -Infinity;
    for (const k of [1, 8, 16]) {
      const V = E.out(rows * k, dt), I = E.i32(new Int32Array(rows * k).fill(-7)), v = new Float32Array(rows * k), idx = new Int32Array(rows * k);
      E.run(`fs_topk_${dt}`, { rows, cols, k, x: E.in(x, dt), values: V, indices: I });
      ts.topk(rows, cols, k, x, v, idx);
      expectEqualInts(E.getI32(I, rows * k), idx, `topk k=${k} indices`);
      expectClose(E.get(V, rows * k, dt), v, { rtol: 0, atol: 0 }, `topk k=${k} values`);
    }
  });

  it.each(['f32', 'bf16grad'] as const)('AdamW step (grad %s)', (g) => {
    const n = 777, p = f32(n), m = f32(n, 0.1), v = f32(n, 0.1).map(Math.abs), grad = g === 'f32' ? f32(n) : bf16Round(f32(n));
    const P = E.in(p), M = E.in(m), Vb = E.in(v);
    E.run(`fs_adamw_step_${g}`, { n, param: P, grad: E.in(grad, g === 'f32' ? 'f32' : 'bf16'), m: M, v: Vb, lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 });
    ts.adamwStep(n, p, grad, m, v, 1e-3, 0.9, 0.95, 1e-8, 0.1, 3);
    expectClose(E.get(P, n), p, { rtol: 1e-5, atol: 1e-6 }, 'param');
    expectClose(E.get(M, n), m, TOL.f32, 'm');
    expectClose(E.get(Vb, n), v, TOL.f32, 'v');
  });

  it('f32 <-> bf16 conversion is bit-exact (ties to even, NaN -> 0x7FC0, infinities, subnormals)', () => {
    const special = [0, -0, 1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, -3.5, 65504, 1e-40, -1e-45, 3.4e38, Infinity, -Infinity, NaN];
    const x = Float32Array.from([...special, ...f32(500, 100)]);
    const bits = new Uint32Array(x.buffer);
    bits[3] = 0xff800001; // a signalling negative NaN
    const n = x.length, Y = E.out(n, 'bf16'), want = new Uint16Array(n);
    E.run('fs_f32_to_bf16', { n, x: E.in(x), y: Y });
    ts.f32ToBf16(n, x, want);
    expectEqualInts(E.getBits(Y, n), want, 'f32 -> bf16 bits');
    const back = E.out(n), wantBack = new Float32Array(n);
    E.run('fs_bf16_to_f32', { n, x: Y, y: back });
    ts.bf16ToF32(n, want, wantBack);
    expect(new Uint32Array(E.get(back, n).buffer)).toEqual(new Uint32Array(wantBack.buffer));
  });
});
