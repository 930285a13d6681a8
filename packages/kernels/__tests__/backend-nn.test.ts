// tsBackend held to independent float64 definitions: RMSNorm, softmax, RoPE, attention, top-k, losses, AdamW, bf16.

import { describe, expect, it } from 'vitest';
import { tsBackend as ts } from '../src/backend/ts/index.js';
import { dot, expectClose, expectEqualInts, mulberry32, numericGrad, randInt, randInts, randn } from './helpers.js';

const F64 = { rtol: 1e-12, atol: 1e-12 };
const GRAD = { rtol: 1e-6, atol: 1e-7 };

function softmaxDef(x: ArrayLike<number>): number[] {
  const e = Array.from(x, (v) => Math.exp(v));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('tsBackend RMSNorm / softmax (f64)', () => {
  it('rmsnorm fwd by definition, bwd by finite differences (dx and dw)', () => {
    const rng = mulberry32(40);
    for (const [rows, cols] of [[1, 1], [3, 7], [4, 33]] as const) {
      const x = randn(rng, rows * cols) as Float64Array, w = randn(rng, cols) as Float64Array, eps = 1e-5;
      const y = new Float64Array(rows * cols), rstd = new Float64Array(rows);
      ts.rmsnormFwd(rows, cols, x, w, eps, y, rstd);
      const want = new Float64Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        const row = x.subarray(r * cols, (r + 1) * cols);
        const rms = Math.sqrt(dot(row, row) / cols + eps);
        expect(rstd[r]).toBeCloseTo(1 / rms, 12);
        for (let c = 0; c < cols; c++) want[r * cols + c] = (row[c]! / rms) * w[c]!;
      }
      expectClose(y, want, F64, 'rmsnorm fwd');
      const dy = randn(rng, rows * cols), dx = new Float64Array(rows * cols), dw = new Float64Array(cols).fill(NaN);
      ts.rmsnormBwd(rows, cols, x, w, rstd, dy, dx, dw);
      const L = () => {
        const t = new Float64Array(rows * cols), rs = new Float64Array(rows);
        ts.rmsnormFwd(rows, cols, x, w, eps, t, rs);
        return dot(t, dy);
      };
      expectClose(dx, numericGrad(x, L), GRAD, 'rmsnorm dx');
      expectClose(dw, numericGrad(w, L), GRAD, 'rmsnorm dw');
    }
  });

  it('softmax / log-softmax fwd by definition, bwd by finite differences', () => {
    const rng = mulberry32(41);
    for (const [rows, cols] of [[1, 1], [2, 5], [3, 67]] as const) {
      const x = randn(rng, rows * cols, Float64Array, 2) as Float64Array;
      const y = new Float64Array(rows * cols), ly = new Float64Array(rows * cols);
      ts.softmaxFwd(rows, cols, x, y);
      ts.logSoftmaxFwd(rows, cols, x, ly);
      const want: number[] = [];
      for (let r = 0; r < rows; r++) want.push(...softmaxDef(x.subarray(r * cols, (r + 1) * cols)));
      expectClose(y, want, F64, 'softmax');
      expectClose(ly, want.map(Math.log), F64, 'logsoftmax');
      const dy = randn(rng, rows * cols), dx = new Float64Array(rows * cols);
      ts.softmaxBwd(rows, cols, y, dy, dx);
      expectClose(dx, numericGrad(x, () => { const t = new Float64Array(rows * cols); ts.softmaxFwd(rows, cols, x, t); return dot(t, dy); }), GRAD, 'softmax bwd');
      ts.logSoftmaxBwd(rows, cols, ly, dy, dx);
      expectClose(dx, numericGrad(x, () => { const t = new Float64Array(rows * cols); ts.logSoftmaxFwd(rows, cols, x, t); return dot(t, dy); }), GRAD, 'logsoftmax bwd');
    }
  });

  it('softmax is stable for large logits', () => {
    const x = Float64Array.of(1000, 1001, 999), y = new Float64Array(3);
    ts.softmaxFwd(1, 3, x, y);
    expectClose(y, softmaxDef([1, 2, 0]), F64, 'stable softmax');
  });
});

describe('tsBackend RoPE (f64)', () => {
  it('matches pairwise rotation, copies the tail, inverse undoes it, in place works', () => {
    const rng = mulberry32(50);
    for (const [batch, seq, heads, headDim, rotDim] of [[1, 1, 1, 2, 2], [2, 3, 2, 8, 8], [1, 5, 3, 10, 6]] as const) {
      const n = batch * seq * heads * headDim, h = rotDim / 2;
      const x = randn(rng, n), positions = randInts(rng, batch * seq, 0, 50);
      const invFreq = Float64Array.from({ length: h }, (_, i) => Math.pow(10000, (-2 * i) / rotDim));
      const y = new Float64Array(n);
      ts.rope(batch, seq, heads, headDim, rotDim, positions, invFreq, false, x, y);
      const want = new Float64Array(n);
      for (let t = 0; t < batch * seq; t++) for (let hd = 0; hd < heads; hd++) {
        const base = (t * heads + hd) * headDim;
        for (let i = 0; i < h; i++) {
          // complex multiply (x[i] + i x[i+h]) * e^{i theta}
          const th = positions[t]! * invFreq[i]!, re = x[base + i]!, im = x[base + i + h]!;
          want[base + i] = re * Math.cos(th) - im * Math.sin(th);
          want[base + i + h] = re * Math.sin(th) + im * Math.cos(th);
        }
        for (let d = rotDim; d < headDim; d++) want[base + d] = x[base + d]!;
      }
      expectClose(y, want, F64, 'rope');
      const back = new Float64Array(n);
      ts.rope(batch, seq, heads, headDim, rotDim, positions, invFreq, true, y, back);
      expectClose(back, x, F64, 'rope inverse');
      const inplace = Float64Array.from(x);
      ts.rope(batch, seq, heads, headDim, rotDim, positions, invFreq, false, inplace, inplace);
      expectClose(inplace, want, F64, 'rope in place');
    }
  });
});

// ---- attention: materialised scores with an explicit mask ---------------------------------------------------

interface AttnShape { B: number; Tq: number; Tk: number; Hq: number; Hkv: number; D: number; Dv: number; causal: boolean }

function refAttention(s: AttnShape, scale: number, q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>) {
  const { B, Tq, Tk, Hq, Hkv, D, Dv, causal } = s;
  const o = new Float64Array(B * Tq * Hq * Dv), lse = new Float64Array(B * Hq * Tq);
  for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) {
    const g = Math.floor(h / (Hq / Hkv));
    for (let i = 0; i < Tq; i++) {
      const scores: number[] = [];
      for (let j = 0; j < Tk; j++) {
        const visible = !causal || j <= i + (Tk - Tq);
        let sc = 0;
        for (let d = 0; d < D; d++) sc += q[((b * Tq + i) * Hq + h) * D + d]! * k[((b * Tk + j) * Hkv + g) * D + d]!;
        scores.push(visible ? scale * sc : -Infinity);
      }
      const z = scores.reduce((a, x) => a + Math.exp(x), 0);
      lse[(b * Hq + h) * Tq + i] = Math.log(z);
      for (let d = 0; d < Dv; d++) {
        let acc = 0;
        if (z > 0) for (let j = 0; j < Tk; j++) acc += (Math.exp(scores[j]!) / z) * v[((b * Tk + j) * Hkv + g) * Dv + d]!;
        o[((b * Tq + i) * Hq + h) * Dv + d] = acc;
      }
    }
  }
  return { o, lse };
}

const ATTN_SHAPES: AttnShape[] = [
  { B: 1, Tq: 1, Tk: 1, Hq: 1, Hkv: 1, D: 1, Dv: 1, causal: false },
  { B: 2, Tq: 5, Tk: 5, Hq: 4, Hkv: 2, D: 3, Dv: 5, causal: true },
  { B: 1, Tq: 3, Tk: 7, Hq: 3, Hkv: 1, D: 8, Dv: 4, causal: true },   // decode-like: offset Tk - Tq
  { B: 2, Tq: 6, Tk: 4, Hq: 2, Hkv: 2, D: 5, Dv: 3, causal: true },   // Tq > Tk: first rows see no key
  { B: 1, Tq: 4, Tk: 9, Hq: 2, Hkv: 1, D: 17, Dv: 17, causal: false },
];

describe('tsBackend attention (f64)', () => {
  for (const s of ATTN_SHAPES) {
    it(`fwd vs materialised scores, bwd by finite differences: ${JSON.stringify(s)}`, () => {
      const rng = mulberry32(60 + s.Tq * 7 + s.Tk);
      const { B, Tq, Tk, Hq, Hkv, D, Dv, causal } = s;
      const scale = 1 / Math.sqrt(D);
      const q = randn(rng, B * Tq * Hq * D) as Float64Array, k = randn(rng, B * Tk * Hkv * D) as Float64Array;
      const v = randn(rng, B * Tk * Hkv * Dv) as Float64Array;
      const o = new Float64Array(B * Tq * Hq * Dv), lse = new Float64Array(B * Hq * Tq);
      ts.attentionFwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, 0, v, 0, o, lse);
      const ref = refAttention(s, scale, q, k, v);
      expectClose(o, ref.o, F64, 'attention o');
      expectClose(lse, ref.lse, F64, 'attention lse');

      // KV cache layout: k/v embedded in [B, maxT, Hkv, *] with batch strides
      const maxT = Tk + 3;
      const kc = randn(rng, B * maxT * Hkv * D), vc = randn(rng, B * maxT * Hkv * Dv);
      for (let b = 0; b < B; b++) {
        kc.set(k.subarray(b * Tk * Hkv * D, (b + 1) * Tk * Hkv * D), b * maxT * Hkv * D);
        vc.set(v.subarray(b * Tk * Hkv * Dv, (b + 1) * Tk * Hkv * Dv), b * maxT * Hkv * Dv);
      }
      const o2 = new Float64Array(o.length), lse2 = new Float64Array(lse.length);
      ts.attentionFwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, kc, maxT * Hkv * D, vc, maxT * Hkv * Dv, o2, lse2);
      expectClose(o2, ref.o, F64, 'attention o (strided cache)');

      const dout = randn(rng, o.length);
      const dq = new Float64Array(q.length).fill(NaN), dk = new Float64Array(k.length).fill(NaN);
      const dv = new Float64Array(v.length).fill(NaN);
      ts.attentionBwd(B, Tq, Tk, Hq, Hkv, D, Dv, scale, causal, q, k, v, o, lse, dout, dq, dk, dv);
      const L = () => dot(refAttention(s, scale, q, k, v).o, dout);
      expectClose(dq, numericGrad(q, L), GRAD, 'dq');
      expectClose(dk, numericGrad(k, L), GRAD, 'dk');
      expectClose(dv, numericGrad(v, L), GRAD, 'dv');
      if (causal && Tq > Tk) {
        // rows with no visible key: o = 0, lse = -inf, zero dq
        for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) for (let i = 0; i < Tq - Tk; i++) {
          expect(lse[(b * Hq + h) * Tq + i]).toBe(-Infinity);
          for (let d = 0; d < D; d++) expect(dq[((b * Tq + i) * Hq + h) * D + d]).toBe(0);
          for (let d = 0; d < Dv; d++) expect(o[((b * Tq + i) * Hq + h) * Dv + d]).toBe(0);
        }
      }
    });
  }
});

// ---- top-k: repeated selection of the first maximum -------------------------------------------------------

function refTopk(row: ArrayLike<number>, k: number): { values: number[]; indices: number[] } {
  const taken = new Array<boolean>(row.length).fill(false);
  const values: number[] = [], indices: number[] = [];
  for (let t = 0; t < k; t++) {
    let best = -1;
    for (let c = 0; c < row.length; c++) {
      if (taken[c]) continue;
      if (best < 0) { best = c; continue; }
      const a = row[c]!, b = row[best]!;
      const better = Number.isNaN(a) ? !Number.isNaN(b) : (!Number.isNaN(b) && a > b);
      if (better) best = c;
    }
    taken[best] = true; values.push(row[best]!); indices.push(best);
  }
  return { values, indices };
}

describe('tsBackend topk', () => {
  it('descending, ties to the lower index, NaN first; small-k and sort paths', () => {
    const rng = mulberry32(70);
    for (const [rows, cols, k] of [[1, 1, 1], [3, 8, 2], [4, 64, 6], [2, 100, 40], [2, 50, 50], [3, 40, 33]] as const) {
      for (const ties of [false, true]) {
        const x = new Float64Array(rows * cols);
        for (let i = 0; i < x.length; i++) x[i] = ties ? randInt(rng, -3, 4) : rng() * 2 - 1;
        if (ties && cols > 4) { x[1] = NaN; x[cols - 1] = NaN; x[2] = -0; x[3] = 0; }
        const values = new Float64Array(rows * k), indices = new Int32Array(rows * k);
        ts.topk(rows, cols, k, x, values, indices);
        for (let r = 0; r < rows; r++) {
          const ref = refTopk(x.subarray(r * cols, (r + 1) * cols), k);
          expectEqualInts(indices.subarray(r * k, (r + 1) * k), ref.indices, `topk idx ${rows}x${cols} k=${k}`);
          expectClose(values.subarray(r * k, (r + 1) * k), ref.values, F64, 'topk values');
        }
      }
    }
  });
});

// ---- losses --------------------------------------------------------------------------------------------------

describe('tsBackend losses (f64)', () => {
  it('cross-entropy = -log softmax[t]; ignoreIndex -> 0 loss, 0 grad; bwd by finite differences', () => {
    const rng = mulberry32(80);
    const [rows, V] = [6, 13];
    const logits = randn(rng, rows * V, Float64Array, 3) as Float64Array;
    const targets = randInts(rng, rows, 0, V); targets[2] = -100;
    const loss = new Float64Array(rows), lse = new Float64Array(rows);
    ts.crossEntropyFwd(rows, V, logits, targets, -100, loss, lse);
    for (let r = 0; r < rows; r++) {
      const p = softmaxDef(logits.subarray(r * V, (r + 1) * V));
      expect(loss[r]).toBeCloseTo(targets[r] === -100 ? 0 : -Math.log(p[targets[r]!]!), 12);
    }
    const dloss = randn(rng, rows), dlogits = new Float64Array(rows * V).fill(NaN);
    ts.crossEntropyBwd(rows, V, logits, targets, -100, lse, dloss, dlogits);
    const L = () => {
      const l = new Float64Array(rows), s = new Float64Array(rows);
      ts.crossEntropyFwd(rows, V, logits, targets, -100, l, s);
      return dot(l, dloss);
    };
    expectClose(dlogits, numericGrad(logits, L), GRAD, 'ce bwd');
  });

  it('KL(p_teacher || q_student) at temperature by definition; bwd by finite differences', () => {
    const rng = mulberry32(81);
    for (const T of [1, 2.5]) {
      const [rows, V] = [4, 11];
      const st = randn(rng, rows * V, Float64Array, 2) as Float64Array, te = randn(rng, rows * V, Float64Array, 2);
      const kl = new Float64Array(rows);
      ts.klDivFwd(rows, V, st, te, T, kl);
      for (let r = 0; r < rows; r++) {
        const p = softmaxDef(Array.from(te.subarray(r * V, (r + 1) * V), (v) => v / T));
        const q = softmaxDef(Array.from(st.subarray(r * V, (r + 1) * V), (v) => v / T));
        let want = 0;
        for (let c = 0; c < V; c++) want += p[c]! * Math.log(p[c]! / q[c]!);
        expect(kl[r]).toBeCloseTo(want, 12);
      }
      const dkl = randn(rng, rows), ds = new Float64Array(rows * V);
      ts.klDivBwd(rows, V, st, te, T, dkl, ds);
      const L = () => { const t = new Float64Array(rows); ts.klDivFwd(rows, V, st, te, T, t); return dot(t, dkl); };
      expectClose(ds, numericGrad(st, L), GRAD, `kl bwd T=${T}`);
    }
  });
});

describe('tsBackend AdamW (f64)', () => {
  it('matches the PyTorch AdamW update over several steps', () => {
    const rng = mulberry32(90);
    const n = 19, lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    const p = randn(rng, n), m = new Float64Array(n), v = new Float64Array(n);
    const rp = Float64Array.from(p), rm = new Float64Array(n), rv = new Float64Array(n);
    for (let step = 1; step <= 5; step++) {
      const g = randn(rng, n);
      ts.adamwStep(n, p, g, m, v, lr, b1, b2, eps, wd, step);
      for (let i = 0; i < n; i++) {
        rp[i] = rp[i]! - lr * wd * rp[i]!;
        rm[i] = b1 * rm[i]! + (1 - b1) * g[i]!;
        rv[i] = b2 * rv[i]! + (1 - b2) * g[i]! * g[i]!;
        const mhat = rm[i]! / (1 - b1 ** step), vhat = rv[i]! / (1 - b2 ** step);
        rp[i] = rp[i]! - (lr * mhat) / (Math.sqrt(vhat) + eps);
      }
      expectClose(p, rp, { rtol: 1e-12, atol: 1e-14 }, `adamw p step ${step}`);
      expectClose(m, rm, F64, 'adamw m');
      expectClose(v, rv, F64, 'adamw v');
    }
  });
});

// ---- bf16 ---------------------------------------------------------------------------------------------------

/** Nearest bf16 by comparing the two candidate neighbours in f64; ties to the even pattern. */
function refBf16(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer)[0]!;
  const lo = u >>> 16, hi = lo + 1;
  const val = (b: number) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!;
  if (!Number.isFinite(x)) return lo;
  // the upper neighbour of the largest finite bf16 is inf: for distances it stands for 2^128
  const vlo = val(lo), vhi = (hi & 0x7f80) === 0x7f80 ? (lo & 0x8000 ? -1 : 1) * 2 ** 128 : val(hi);
  const dlo = Math.abs(f[0]! - vlo), dhi = Math.abs(vhi - f[0]!);
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi & 0xffff;
  return (lo & 1) === 0 ? lo : hi & 0xffff;
}

describe('tsBackend bf16', () => {
  it('f32 -> bf16 rounds to nearest even (specials, ties, overflow to inf, subnormals); NaN -> 0x7FC0', () => {
    const rng = mulberry32(100);
    const specials = [0, -0, Infinity, -Infinity, NaN, -NaN, 1, -1, 3.4028234663852886e38, -3.4e38, 1e-40, -1e-45,
      1.00390625, 1.01171875, 1.0078125 + 2 ** -9, 65504, 2 ** -126, 3.3961775292304266e38];
    const xs = new Float32Array(specials.length + 2000);
    xs.set(specials);
    const bits = new Uint32Array(xs.buffer);
    for (let i = specials.length; i < xs.length; i++) {
      bits[i] = (Math.floor(rng() * 2 ** 32) >>> 0) & (i % 3 === 0 ? 0xffff8000 : 0xffffffff) | (i % 3 === 0 ? 0x8000 : 0);
    }
    bits[specials.length] = 0x7f812345; // signalling-NaN pattern
    bits[specials.length + 1] = 0xffc00001; // negative NaN with payload
    const y = new Uint16Array(xs.length);
    ts.f32ToBf16(xs.length, xs, y);
    expectEqualInts(y, Array.from(xs, refBf16), 'f32ToBf16');
  });

  it('bf16 -> f32 is exact for all 65536 patterns', () => {
    const x = new Uint16Array(65536).map((_, i) => i), y = new Float32Array(65536);
    ts.bf16ToF32(65536, x, y);
    const out = new Uint32Array(y.buffer);
    for (let i = 0; i < 65536; i++) if (out[i] !== (i << 16) >>> 0) throw new Error(`bf16ToF32 pattern ${i}`);
  });
});
