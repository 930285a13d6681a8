// The CUDA attention (forward, slot-cache forward, backward), grouped expert GEMM and MoE data-movement kernels of
// native/cuda under the CPU emulation (see cuda-emu.ts), held to tsBackend (and, for gather / scatter / combine,
// to plain loops) with the launch geometry of kernels.json. Shapes cross the 32-key / 32-row tiles, GQA groups,
// causal alignment with Tq != Tk, rows without visible keys and empty expert groups.

import { afterAll, describe, expect, it } from 'vitest';
import { tsBackend as ts } from '../src/backend/ts/index.js';
import { openRunner, bf16Round, type DType, type KernelRunner } from './cuda-emu.js';
import { mulberry32, randInts, randn, type Tol } from './helpers.js';

const emu = openRunner();
if (typeof emu === 'string') console.warn(`[cuda-emu-attention-moe.test] skipping: ${emu}`);
const E = emu as KernelRunner;
afterAll(() => { if (typeof emu !== 'string') emu.freeAll(); });

const rng = mulberry32(99);
const f32 = (n: number, s = 1) => randn(rng, n, Float32Array, s) as Float32Array;
const TOL: Record<DType, Tol> = { f32: { rtol: 1e-4, atol: 2e-5 }, bf16: { rtol: 2e-2, atol: 2e-2 } };
const DTS: DType[] = ['f32', 'bf16'];
const inputs = (dt: DType, x: Float32Array) => (dt === 'bf16' ? bf16Round(x) : x);

interface Cfg { B: number; Tq: number; Tk: number; Hq: number; Hkv: number; D: number; Dv: number; causal: number }
const CFGS: Cfg[] = [
  { B: 2, Tq: 5, Tk: 7, Hq: 4, Hkv: 2, D: 40, Dv: 24, causal: 1 },
  { B: 1, Tq: 70, Tk: 70, Hq: 2, Hkv: 1, D: 16, Dv: 20, causal: 1 },
  { B: 2, Tq: 6, Tk: 3, Hq: 3, Hkv: 3, D: 8, Dv: 8, causal: 1 },   // Tq > Tk: rows without visible keys
  { B: 1, Tq: 3, Tk: 45, Hq: 4, Hkv: 1, D: 33, Dv: 70, causal: 0 },
];
const label = (c: Cfg) => `B${c.B} Tq${c.Tq} Tk${c.Tk} Hq${c.Hq}/${c.Hkv} D${c.D} Dv${c.Dv} causal${c.causal}`;

describe.skipIf(typeof emu === 'string')(`CUDA kernels (${typeof emu === 'string' ? 'unavailable' : emu.label}): attention, grouped GEMM, MoE`, () => {
  for (const dt of DTS) for (const c of CFGS) {
    it(`attention forward (cache-strided k / v) and backward: ${label(c)} (${dt})`, () => {
      const { B, Tq, Tk, Hq, Hkv, D, Dv, causal } = c, scale = 1 / Math.sqrt(D), maxT = Tk + 2;
      const q = inputs(dt, f32(B * Tq * Hq * D)), kc = inputs(dt, f32(B * maxT * Hkv * D)), vc = inputs(dt, f32(B * maxT * Hkv * Dv));
      const kBatchStride = maxT * Hkv * D, vBatchStride = maxT * Hkv * Dv;
      const O = E.out(B * Tq * Hq * Dv, dt), LSE = E.out(B * Hq * Tq);
      const Q = E.in(q, dt);
      E.run(`fs_attention_fwd_${dt}`, { B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q: Q, k: E.in(kc, dt), kBatchStride, v: E.in(vc, dt), vBatchStride, o: O, lse: LSE });
      const o = new Float32Array(B * Tq * Hq * Dv), lse = new Float32Array(B * Hq * Tq);
      ts.attentionFwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal === 1, q, kc, kBatchStride, vc, vBatchStride, o, lse);
      expect(E.get(O, o.length, dt)).toAllBeClose(o, TOL[dt], 'o');
      expect(E.get(LSE, lse.length)).toAllBeClose(lse, TOL.f32, 'lse');
      // backward on packed k / v (the first Tk rows of each batch)
      const k = new Float32Array(B * Tk * Hkv * D), v = new Float32Array(B * Tk * Hkv * Dv);
      for (let b = 0; b < B; b++) {
        k.set(kc.subarray(b * kBatchStride, b * kBatchStride + Tk * Hkv * D), b * Tk * Hkv * D);
        v.set(vc.subarray(b * vBatchStride, b * vBatchStride + Tk * Hkv * Dv), b * Tk * Hkv * Dv);
      }
      const oIn = inputs(dt, o), dout = inputs(dt, f32(o.length));
      const OI = E.in(oIn, dt), DO = E.in(dout, dt), K = E.in(k, dt), V = E.in(v, dt), L = E.in(lse);
      const DEL = E.out(B * Hq * Tq), DQ = E.out(q.length, dt), DK = E.out(k.length, dt), DV = E.out(v.length, dt);
      E.run(`fs_attention_bwd_delta_${dt}`, { B, Tq, Hq, Dv, o: OI, dout: DO, delta: DEL });
      const common = { B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q: Q, k: K, v: V, lse: L, delta: DEL, dout: DO };
      E.run(`fs_attention_bwd_dq_${dt}`, { ...common, dq: DQ });
      E.run(`fs_attention_bwd_dkdv_${dt}`, { ...common, dk: DK, dv: DV });
      const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
      ts.attentionBwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal === 1, q, k, v, oIn, lse, dout, dq, dk, dv);
      const gt: Tol = { rtol: TOL[dt].rtol, atol: TOL[dt].atol * 2 };
      expect(E.get(DQ, dq.length, dt)).toAllBeClose(dq, gt, 'dq');
      expect(E.get(DK, dk.length, dt)).toAllBeClose(dk, gt, 'dk');
      expect(E.get(DV, dv.length, dt)).toAllBeClose(dv, gt, 'dv');
    });
  }

  it.each(DTS)('attention over a slot cache with per-sequence lengths (decode and chunked prefill) (%s)', (dt) => {
    const Hq = 4, Hkv = 2, D = 16, Dv = 12, maxT = 40, nSlots = 3, scale = 0.3;
    const kc = inputs(dt, f32(nSlots * maxT * Hkv * D)), vc = inputs(dt, f32(nSlots * maxT * Hkv * Dv));
    const kSlotStride = maxT * Hkv * D, vSlotStride = maxT * Hkv * Dv;
    for (const [Tq, slots, lens] of [[1, [2, 0], [37, 5]], [3, [1, 2, 0], [3, 33, 0]]] as const) {
      const B = slots.length, q = inputs(dt, f32(B * Tq * Hq * D));
      const O = E.out(B * Tq * Hq * Dv, dt), LSE = E.out(B * Hq * Tq);
      const S = Int32Array.from(slots), Ls = Int32Array.from(lens);
      E.run(`fs_attention_fwd_cached_${dt}`, { B, Tq, Hq, Hkv, D, Dv, scale, causal: 1, q: E.in(q, dt), k: E.in(kc, dt), kSlotStride, v: E.in(vc, dt), vSlotStride, slots: E.i32(S), lens: E.i32(Ls), o: O, lse: LSE });
      const o = new Float32Array(B * Tq * Hq * Dv), lse = new Float32Array(B * Hq * Tq);
      ts.attentionFwdCached(B, Tq, Hq, Hkv, D, Dv, scale, true, q, kc, kSlotStride, vc, vSlotStride, S, Ls, o, lse);
      expect(E.get(O, o.length, dt)).toAllBeClose(o, TOL[dt], `cached o Tq=${Tq}`);
      expect(E.get(LSE, lse.length)).toAllBeClose(lse, TOL.f32, `cached lse Tq=${Tq}`);
    }
  });

  it.each(DTS)('grouped expert GEMM forward and weight gradient, both layouts, beta 0 / 0.5, an empty group (%s)', (dt) => {
    const E_ = 4, N = 70, K = 37, offsets = Int32Array.from([0, 5, 5, 75, 80]), rows = 80;
    const X = inputs(dt, f32(rows * K)), dY = inputs(dt, f32(rows * N)), W = inputs(dt, f32(E_ * K * N));
    const OFF = E.i32(offsets), XB = E.in(X, dt), WB = E.in(W, dt), DYB = E.in(dY, dt);
    for (const transW of [0, 1]) for (const beta of [0, 0.5]) {
      const y0 = inputs(dt, f32(rows * N)), Y = E.in(beta ? y0 : new Float32Array(rows * N).fill(NaN), dt);
      E.run(`fs_grouped_gemm_${dt}`, { E: E_, offsets: OFF, transW, N, K, X: XB, W: WB, beta, Y }, { totalRows: rows });
      const want = y0.slice();
      ts.groupedSgemm(E_, offsets, transW === 1, N, K, X, W, beta, want);
      expect(E.get(Y, rows * N, dt)).toAllBeClose(want, { rtol: TOL[dt].rtol, atol: TOL[dt].atol * 4 }, `grouped fwd transW=${transW} beta=${beta}`);
      const w0 = inputs(dt, f32(E_ * K * N)), DW = E.in(beta ? w0 : new Float32Array(E_ * K * N).fill(NaN), dt);
      E.run(`fs_grouped_gemm_wgrad_${dt}`, { E: E_, offsets: OFF, transW, N, K, X: XB, dY: DYB, beta, dW: DW });
      const wantW = w0.slice();
      ts.groupedSgemmWgrad(E_, offsets, transW === 1, N, K, X, dY, beta, wantW);
      expect(E.get(DW, E_ * K * N, dt)).toAllBeClose(wantW, { rtol: TOL[dt].rtol, atol: TOL[dt].atol * 8 }, `grouped wgrad transW=${transW} beta=${beta}`);
    }
  });

  it.each(DTS)('MoE permute (gather rows), scatter-add with weights, deterministic combine and its backward (%s)', (dt) => {
    const tokens = 7, k = 2, dim = 150, rows = tokens * k;
    const x = inputs(dt, f32(tokens * dim)), index = randInts(rng, rows, 0, tokens);
    const P = E.out(rows * dim, dt);
    E.run(`fs_gather_rows_${dt}`, { n: rows, dim, index: E.i32(index), x: E.in(x, dt), out: P });
    const perm = new Float32Array(rows * dim);
    for (let i = 0; i < rows; i++) perm.set(x.subarray(index[i]! * dim, (index[i]! + 1) * dim), i * dim);
    expect(E.get(P, rows * dim, dt)).toAllBeClose(perm, { rtol: 0, atol: 0 }, 'gather rows');
    // scatter-add back with weights onto an f32 accumulator
    const w = f32(rows), acc0 = f32(tokens * dim), ACC = E.in(acc0), wantAcc = acc0.slice();
    E.run(`fs_scatter_add_rows_${dt}`, { n: rows, dim, index: E.i32(index), w: E.in(w), x: P, out: ACC });
    for (let i = 0; i < rows; i++) for (let d = 0; d < dim; d++) wantAcc[index[i]! * dim + d] += w[i]! * perm[i * dim + d]!;
    expect(E.get(ACC, tokens * dim)).toAllBeClose(wantAcc, TOL.f32, 'scatter-add rows');
    // combine: inv[t*k+j] = row of the expert-sorted outputs y holding copy (t, j); one copy dropped
    const y = inputs(dt, f32(rows * dim)), inv = Int32Array.from({ length: rows }, (_, c) => (c * 5) % rows);
    inv[3] = -1;
    for (const weighted of [true, false]) {
      const O = E.out(tokens * dim, dt), want = new Float32Array(tokens * dim);
      E.run(`fs_moe_combine_${dt}`, { tokens, k, dim, inv: E.i32(inv), w: weighted ? E.in(w) : null, x: E.in(y, dt), out: O });
      for (let c = 0; c < rows; c++) {
        if (inv[c]! < 0) continue;
        const t = Math.floor(c / k), wc = weighted ? w[c]! : 1;
        for (let d = 0; d < dim; d++) want[t * dim + d] += wc * y[inv[c]! * dim + d]!;
      }
      expect(E.get(O, tokens * dim, dt)).toAllBeClose(want, TOL[dt], `combine weighted=${weighted}`);
    }
    const dout = inputs(dt, f32(tokens * dim)), DX = E.in(new Float32Array(rows * dim), dt), DWt = E.out(rows);
    E.run(`fs_moe_combine_bwd_${dt}`, { tokens, k, dim, inv: E.i32(inv), w: E.in(w), x: E.in(y, dt), dout: E.in(dout, dt), dx: DX, dw: DWt });
    const dx = new Float32Array(rows * dim), dw = new Float32Array(rows);
    for (let c = 0; c < rows; c++) {
      const src = inv[c]!, t = Math.floor(c / k);
      if (src < 0) continue;
      let dot = 0;
      for (let d = 0; d < dim; d++) { dx[src * dim + d] = w[c]! * dout[t * dim + d]!; dot += dout[t * dim + d]! * y[src * dim + d]!; }
      dw[c] = dot;
    }
    expect(E.get(DX, rows * dim, dt)).toAllBeClose(dx, TOL[dt], 'combine dx');
    expect(E.get(DWt, rows)).toAllBeClose(dw, { rtol: 1e-4, atol: 1e-4 }, 'combine dw');
  });
});
