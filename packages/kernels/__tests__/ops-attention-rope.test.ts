// rope (HF rotate-half, partial rotary, positions [T] / [B, T]), attention (causal / non-causal, GQA, Tq < Tk,
// Dv != D, custom scale) and KVCache decoding: f32 forward against the float64 reference on both backends,
// f64 gradcheck, f32 backward against f64 gradients.
import { describe, expect, it } from 'vitest';
import { noGrad } from '@farskip/tensor';
import { KVCache, attention, rope, ropeInvFreq } from '@farskip/kernels';
import {
  Rng, assertClose, attentionRef, expectF32GradsMatchF64, expectGradcheck, gradsOf, maxAbs, prod, ropeRef, roundAllBf16, roundAllF32, t,
} from './reference64.js';
import { forBackends } from './for-backends.js';


interface RopeCase { shape: [number, number, number, number]; pos: 'T' | 'BT'; rot?: number; theta?: number }
const ROPE_CASES: RopeCase[] = [
  { shape: [1, 1, 1, 2], pos: 'T' },
  { shape: [2, 3, 2, 16], pos: 'T' },
  { shape: [1, 5, 3, 64], pos: 'T', theta: 500000 },
  { shape: [2, 4, 2, 17], pos: 'BT', rot: 8 },
  { shape: [3, 7, 1, 32], pos: 'BT', rot: 16, theta: 1e6 },
  { shape: [1, 2, 5, 6], pos: 'T', rot: 0 },
];

interface AttnCase { B: number; Tq: number; Tk: number; Hq: number; Hkv: number; D: number; Dv: number; causal: boolean; scale?: number }
const ATTN_CASES: AttnCase[] = [
  { B: 1, Tq: 1, Tk: 1, Hq: 1, Hkv: 1, D: 1, Dv: 1, causal: true },
  { B: 2, Tq: 5, Tk: 5, Hq: 4, Hkv: 2, D: 16, Dv: 16, causal: true },
  { B: 1, Tq: 17, Tk: 17, Hq: 3, Hkv: 3, D: 31, Dv: 31, causal: false },
  { B: 2, Tq: 3, Tk: 17, Hq: 4, Hkv: 1, D: 8, Dv: 5, causal: true },
  { B: 2, Tq: 3, Tk: 17, Hq: 4, Hkv: 2, D: 8, Dv: 5, causal: false },
  { B: 1, Tq: 65, Tk: 65, Hq: 2, Hkv: 1, D: 64, Dv: 64, causal: true },
  { B: 1, Tq: 1, Tk: 33, Hq: 6, Hkv: 2, D: 17, Dv: 17, causal: true },
  { B: 1, Tq: 9, Tk: 31, Hq: 2, Hkv: 2, D: 3, Dv: 7, causal: true, scale: 0.3 },
  { B: 1, Tq: 31, Tk: 31, Hq: 2, Hkv: 2, D: 128, Dv: 128, causal: false, scale: 0.02 },
];

function attnInputs(c: AttnCase, seed: number): [Float64Array, Float64Array, Float64Array] {
  const rng = new Rng(seed);
  return [
    roundAllF32(rng.randn(c.B * c.Tq * c.Hq * c.D)),
    roundAllF32(rng.randn(c.B * c.Tk * c.Hkv * c.D)),
    roundAllF32(rng.randn(c.B * c.Tk * c.Hkv * c.Dv)),
  ];
}
const attnShapes = (c: AttnCase): number[][] => [[c.B, c.Tq, c.Hq, c.D], [c.B, c.Tk, c.Hkv, c.D], [c.B, c.Tk, c.Hkv, c.Dv]];

forBackends(() => {
  describe('rope forward f32', () => {
    it.each(ROPE_CASES)('%j', (c) => {
      const [B, T, H, D] = c.shape;
      const rng = new Rng(prod(c.shape));
      const x = roundAllF32(rng.randn(prod(c.shape)));
      const pos = rng.ints(c.pos === 'T' ? T : B * T, 0, 200);
      const rot = c.rot ?? D;
      const y = rope(t(x, c.shape), t(pos, c.pos === 'T' ? [T] : [B, T], 'i32'), { rotaryDim: c.rot, theta: c.theta });
      expect(y.shape).toEqual(c.shape);
      // angle pos*invFreq (pos < 200) in f32 is accurate to ~200*2^-24 rad
      assertClose(y.data as Float32Array, ropeRef(x, B, T, H, D, pos, rot, c.theta ?? 10000), { atol: 3e-5, rtol: 1e-5 }, 'rope');
    });

    it('explicit invFreq overrides theta; ropeInvFreq = theta^(-2i/d)', () => {
      const inv = ropeInvFreq(8, 10000);
      expect(inv.length).toBe(4);
      inv.forEach((f, i) => expect(f).toBeCloseTo(10000 ** (-(2 * i) / 8), 14));
      const rng = new Rng(3);
      const x = roundAllF32(rng.randn(2 * 3 * 8));
      const pos = [0, 5, 9];
      const y = rope(t(x, [1, 3, 2, 8]), t(pos, [3], 'i32'), { invFreq: ropeInvFreq(8, 777) });
      assertClose(y.data as Float32Array, ropeRef(x, 1, 3, 2, 8, pos, 8, 777), { atol: 3e-5, rtol: 1e-5 }, 'rope invFreq');
    });
  });

  describe('attention forward f32', () => {
    it.each(ATTN_CASES)('%j', (c) => {
      const [q, k, v] = attnInputs(c, c.B * 1000 + c.Tq * 37 + c.Tk + c.D);
      const [qs, ks, vs] = attnShapes(c);
      const o = attention(t(q, qs!), t(k, ks!), t(v, vs!), { causal: c.causal, scale: c.scale });
      expect(o.shape).toEqual([c.B, c.Tq, c.Hq, c.Dv]);
      const ref = attentionRef(q, k, v, c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, c.Dv, c.causal, c.scale ?? 1 / Math.sqrt(c.D));
      assertClose(o.data as Float32Array, ref, { atol: 2e-5, rtol: 1e-4 }, 'attention');
    });

    it('causal is the default', () => {
      const c = ATTN_CASES[1]!;
      const [q, k, v] = attnInputs(c, 5);
      const [qs, ks, vs] = attnShapes(c);
      const o = attention(t(q, qs!), t(k, ks!), t(v, vs!));
      assertClose(o.data as Float32Array, attentionRef(q, k, v, c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, c.Dv, true), { atol: 2e-5, rtol: 1e-4 }, 'default causal');
    });
  });

  describe('f32 backward against f64 gradients', () => {
    it('attention causal / non-causal, GQA, Tq < Tk, Dv != D', async () => {
      for (const [i, c] of [ATTN_CASES[1]!, ATTN_CASES[3]!, ATTN_CASES[4]!, ATTN_CASES[2]!].entries()) {
        const inputs = attnInputs(c, 200 + i);
        await expectF32GradsMatchF64((q, k, v) => attention(q!, k!, v!, { causal: c.causal, scale: c.scale }), inputs, attnShapes(c),
          `attention ${JSON.stringify(c)}`, 2e-5);
      }
    });

    it('rope full and partial, positions [T] and [B, T]', async () => {
      const rng = new Rng(210);
      await expectF32GradsMatchF64((x) => rope(x!, t([3, 1, 4, 1, 5], [5], 'i32')), [rng.randn(2 * 5 * 2 * 16)], [[2, 5, 2, 16]], 'rope full');
      await expectF32GradsMatchF64((x) => rope(x!, t([0, 1, 2, 7, 8, 9], [2, 3], 'i32'), { rotaryDim: 4 }), [rng.randn(2 * 3 * 3 * 10)],
        [[2, 3, 3, 10]], 'rope partial');
    });
  });

  describe('KVCache decode equals full causal attention', () => {
    it.each([
      { B: 2, Hq: 4, Hkv: 2, D: 16, Dv: 16, prefill: 5, total: 9 },
      { B: 1, Hq: 3, Hkv: 1, D: 17, Dv: 5, prefill: 1, total: 6 },
      { B: 3, Hq: 2, Hkv: 2, D: 64, Dv: 64, prefill: 31, total: 35 },
    ])('%j', (c) => {
      const rng = new Rng(c.B * 100 + c.D);
      const q = roundAllF32(rng.randn(c.B * c.total * c.Hq * c.D));
      const k = roundAllF32(rng.randn(c.B * c.total * c.Hkv * c.D));
      const v = roundAllF32(rng.randn(c.B * c.total * c.Hkv * c.Dv));
      const Q = t(q, [c.B, c.total, c.Hq, c.D]), K = t(k, [c.B, c.total, c.Hkv, c.D]), V = t(v, [c.B, c.total, c.Hkv, c.Dv]);
      noGrad(() => {
        const full = attention(Q, K, V);
        const ref = attentionRef(q, k, v, c.B, c.total, c.total, c.Hq, c.Hkv, c.D, c.Dv, true);
        assertClose(full.data as Float32Array, ref, { atol: 2e-5, rtol: 1e-4 }, 'full attention');
        const cache = new KVCache(c.B, c.total + 3, c.Hkv, c.D, c.Dv);
        cache.append(K.slice(1, 0, c.prefill), V.slice(1, 0, c.prefill));
        expect(cache.length).toBe(c.prefill);
        const pre = cache.attend(Q.slice(1, 0, c.prefill));
        expect(pre.shape).toEqual([c.B, c.prefill, c.Hq, c.Dv]);
        assertClose(pre.data as Float32Array, full.slice(1, 0, c.prefill).data as Float32Array, { atol: 1e-5, rtol: 1e-4 }, 'prefill');
        for (let p = c.prefill; p < c.total; p++) {
          cache.append(K.slice(1, p, p + 1), V.slice(1, p, p + 1));
          expect(cache.length).toBe(p + 1);
          const o = cache.attend(Q.slice(1, p, p + 1));
          expect(o.shape).toEqual([c.B, 1, c.Hq, c.Dv]);
          assertClose(o.data as Float32Array, full.slice(1, p, p + 1).data as Float32Array, { atol: 1e-5, rtol: 1e-4 }, `decode step ${p}`);
        }
      });
    });

    it('non-causal attend over the cache equals non-causal attention over the prefix', () => {
      const rng = new Rng(78);
      const [B, T, Hq, Hkv, D] = [2, 7, 4, 2, 16];
      const q = roundAllF32(rng.randn(B * 2 * Hq * D)), k = roundAllF32(rng.randn(B * T * Hkv * D)), v = roundAllF32(rng.randn(B * T * Hkv * D));
      noGrad(() => {
        const cache = new KVCache(B, 16, Hkv, D);
        cache.append(t(k, [B, T, Hkv, D]), t(v, [B, T, Hkv, D]));
        const o = cache.attend(t(q, [B, 2, Hq, D]), { causal: false });
        assertClose(o.data as Float32Array, attentionRef(q, k, v, B, 2, T, Hq, Hkv, D, D, false), { atol: 2e-5, rtol: 1e-4 }, 'non-causal attend');
        const oc = cache.attend(t(q, [B, 2, Hq, D]));
        assertClose(oc.data as Float32Array, attentionRef(q, k, v, B, 2, T, Hq, Hkv, D, D, true), { atol: 2e-5, rtol: 1e-4 }, 'causal attend Tq<Tk');
      });
    });

    it('slots with their own lengths (continuous batching): prefill per slot, ragged decode rows, reset and reuse', () => {
      const [Hq, Hkv, D, Dv, maxSeq] = [4, 2, 16, 12, 48];
      const rng = new Rng(91);
      // each sequence: its own q, k, v for all its positions; the reference is full causal attention over it
      const seq = (T: number) => ({ T, q: roundAllF32(rng.randn(T * Hq * D)), k: roundAllF32(rng.randn(T * Hkv * D)), v: roundAllF32(rng.randn(T * Hkv * Dv)) });
      const rowsOf = (a: Float64Array, per: number, p0: number, p1: number): Float64Array => a.slice(p0 * per, p1 * per);
      const refAt = (s: ReturnType<typeof seq>, p0: number, p1: number): Float64Array =>
        rowsOf(attentionRef(s.q, s.k, s.v, 1, s.T, s.T, Hq, Hkv, D, Dv, true), Hq * Dv, p0, p1);
      const part = (a: Float64Array, per: number, p0: number, p1: number, shape: number[]) => t(rowsOf(a, per, p0, p1), shape);
      noGrad(() => {
        const cache = new KVCache(4, maxSeq, Hkv, D, Dv);
        const seqs = [seq(30), seq(12), seq(25), seq(20)];
        const slotOf = [2, 0, 3, 1];
        const prefill = [7, 3, 20, 1];
        seqs.forEach((s, i) => { // one request at a time joins its slot
          cache.select([slotOf[i]!]);
          const n = prefill[i]!;
          cache.append(part(s.k, Hkv * D, 0, n, [1, n, Hkv, D]), part(s.v, Hkv * Dv, 0, n, [1, n, Hkv, Dv]));
          const o = cache.attend(part(s.q, Hq * D, 0, n, [1, n, Hq, D]));
          assertClose(o.data as Float32Array, refAt(s, 0, n), { atol: 2e-5, rtol: 1e-4 }, `prefill of sequence ${i}`);
        });
        cache.select([0, 1, 2, 3]);
        expect(() => cache.length).toThrow(/different numbers of tokens/);
        // decode: rows in any slot order, every sequence one token further per step, each at its own position
        const pos = [...prefill];
        const decodeStep = (members: number[], Tq: number) => {
          cache.select(members.map((i) => slotOf[i]!));
          const cat = (a: (i: number) => Float64Array) => Float64Array.from(members.flatMap((i) => [...a(i)]));
          const R = members.length;
          cache.append(t(cat((i) => rowsOf(seqs[i]!.k, Hkv * D, pos[i]!, pos[i]! + Tq)), [R, Tq, Hkv, D]), t(cat((i) => rowsOf(seqs[i]!.v, Hkv * Dv, pos[i]!, pos[i]! + Tq)), [R, Tq, Hkv, Dv]));
          const o = cache.attend(t(cat((i) => rowsOf(seqs[i]!.q, Hq * D, pos[i]!, pos[i]! + Tq)), [R, Tq, Hq, D]));
          assertClose(o.data as Float32Array, cat((i) => refAt(seqs[i]!, pos[i]!, pos[i]! + Tq)), { atol: 2e-5, rtol: 1e-4 }, `decode rows ${members}`);
          for (const i of members) pos[i]! += Tq;
        };
        for (let step = 0; step < 3; step++) decodeStep([2, 0, 3, 1], 1); // B >= threads: one task per sequence
        decodeStep([1], 1); // a single row (tiled path)
        decodeStep([3, 0], 2); // two queries per row (speculative-style), ragged
        // sequence 1 finishes; its slot (0) is reset and a new, longer sequence reuses it
        cache.reset(slotOf[1]!);
        expect(cache.lengths[slotOf[1]!]).toBe(0);
        seqs[1] = seq(16);
        pos[1] = 0;
        decodeStep([1], 9); // prefill of the new sequence in the reused slot
        decodeStep([0, 1, 2], 1);
        expect(Array.from(cache.lengths)).toEqual([pos[1], pos[3], pos[0], pos[2]]);
        expect(() => cache.select([0, 0])).toThrow(/selected twice/);
        expect(() => cache.select([4])).toThrow(/outside \[0, 4\)/);
        cache.select([2]);
        expect(() => cache.append(t(new Float64Array(40 * Hkv * D), [1, 40, Hkv, D]), t(new Float64Array(40 * Hkv * Dv), [1, 40, Hkv, Dv]))).toThrow(/exceed maxSeq 48/);
      });
    });

    it('f64 cache matches the reference tightly', () => {
      const rng = new Rng(77);
      const [B, T, Hq, Hkv, D] = [1, 6, 4, 2, 8];
      const q = rng.randn(B * T * Hq * D), k = rng.randn(B * T * Hkv * D), v = rng.randn(B * T * Hkv * D);
      const ref = attentionRef(q, k, v, B, T, T, Hq, Hkv, D, D, true);
      const cache = new KVCache(B, T, Hkv, D, D, 'f64');
      const K = t(k, [B, T, Hkv, D], 'f64'), V = t(v, [B, T, Hkv, D], 'f64'), Q = t(q, [B, T, Hq, D], 'f64');
      cache.append(K.slice(1, 0, 2), V.slice(1, 0, 2));
      const got: number[] = [...cache.attend(Q.slice(1, 0, 2)).toArray()];
      for (let p = 2; p < T; p++) {
        cache.append(K.slice(1, p, p + 1), V.slice(1, p, p + 1));
        got.push(...cache.attend(Q.slice(1, p, p + 1)).toArray());
      }
      assertClose(got, ref, { atol: 1e-12, rtol: 1e-10 }, 'f64 KV decode');
    });
  });
});

describe('gradcheck (f64)', () => {
  it('rope full, partial rotary, positions [B, T]', async () => {
    const rng = new Rng(301);
    await expectGradcheck((x) => rope(x!, t([2, 7, 11], [3], 'i32')), [rng.randn(1 * 3 * 2 * 4)], [[1, 3, 2, 4]], 'rope full');
    await expectGradcheck((x) => rope(x!, t([0, 3, 1, 2, 9, 4], [2, 3], 'i32'), { rotaryDim: 2, theta: 100 }), [rng.randn(2 * 3 * 1 * 5)],
      [[2, 3, 1, 5]], 'rope partial [B,T]');
  });

  it('attention causal and non-causal, GQA, Tq < Tk, Dv != D', async () => {
    const rng = new Rng(302);
    for (const causal of [true, false]) {
      // Tq = Tk, GQA 2:1
      await expectGradcheck((q, k, v) => attention(q!, k!, v!, { causal }), [rng.randn(12), rng.randn(6), rng.randn(9)],
        [[1, 3, 2, 2], [1, 3, 1, 2], [1, 3, 1, 3]], `attention Tq=Tk causal=${causal}`);
      // Tq < Tk, GQA 4:2, batch 2
      await expectGradcheck((q, k, v) => attention(q!, k!, v!, { causal }), [rng.randn(2 * 2 * 4 * 2), rng.randn(2 * 4 * 2 * 2), rng.randn(2 * 4 * 2 * 1)],
        [[2, 2, 4, 2], [2, 4, 2, 2], [2, 4, 2, 1]], `attention Tq<Tk causal=${causal}`);
    }
    await expectGradcheck((q, k, v) => attention(q!, k!, v!, { scale: 0.7 }), [rng.randn(8), rng.randn(12), rng.randn(12)],
      [[1, 2, 2, 2], [1, 3, 2, 2], [1, 3, 2, 2]], 'attention custom scale');
  });
});

describe('bf16', () => {
  it('attention and rope accept bf16 and stay close to the f64 reference of the rounded inputs', async () => {
    const rng = new Rng(401);
    const c = { B: 1, Tq: 4, Tk: 6, Hq: 2, Hkv: 1, D: 8, Dv: 8 };
    const q = roundAllBf16(rng.randn(c.Tq * c.Hq * c.D)), k = roundAllBf16(rng.randn(c.Tk * c.D)), v = roundAllBf16(rng.randn(c.Tk * c.Dv));
    const o = attention(t(q, [1, 4, 2, 8], 'bf16'), t(k, [1, 6, 1, 8], 'bf16'), t(v, [1, 6, 1, 8], 'bf16'));
    expect(o.dtype).toBe('bf16');
    assertClose(o.toArray(), attentionRef(q, k, v, 1, 4, 6, 2, 1, 8, 8, true), { atol: 1e-3, rtol: 2 ** -7 }, 'bf16 attention');
    const x = roundAllBf16(rng.randn(2 * 3 * 2 * 8));
    const y = rope(t(x, [2, 3, 2, 8], 'bf16'), t([1, 2, 3], [3], 'i32'));
    expect(y.dtype).toBe('bf16');
    assertClose(y.toArray(), ropeRef(x, 2, 3, 2, 8, [1, 2, 3]), { atol: 1e-3, rtol: 2 ** -7 }, 'bf16 rope');
    const [g] = await gradsOf((a) => rope(a!, t([1, 2, 3], [3], 'i32')), [x], [[2, 3, 2, 8]], 'bf16');
    const [g64] = await gradsOf((a) => rope(a!, t([1, 2, 3], [3], 'i32')), [x], [[2, 3, 2, 8]], 'f64');
    assertClose(g!, g64!, { atol: 2 ** -7 * maxAbs(g64!), rtol: 2 ** -7 }, 'bf16 rope grad');
  });
});
