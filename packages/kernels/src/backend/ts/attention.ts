// Attention, plain TypeScript reference: explicit scores per query row, stable softmax, f64 accumulation.
//
// q [B, Tq, Hq, D]; k [B, Tk, Hkv, D]; v [B, Tk, Hkv, Dv]; o [B, Tq, Hq, Dv]; lse [B, Hq, Tq].
// GQA: query head h reads kv head floor(h / (Hq / Hkv)).
// kBatchStride / vBatchStride: elements between batches of k / v in the forward pass (0 = packed), so a KV cache
// [B, maxT, Hkv, D] can be read up to Tk <= maxT. The backward pass takes packed k / v.
// causal: query i sees keys j <= i + (Tk - Tq). s_j = scale * q.k_j; lse = log(sum_j exp(s_j)) over visible keys.
// A row with no visible key gives o = 0, lse = -Infinity, and contributes no gradient.

import type { FloatArray } from '../types.js';

/** Index of the last visible key for query i (-1 = none). */
function lastKey(causal: boolean, i: number, Tq: number, Tk: number): number {
  return causal ? Math.min(Tk - 1, i + Tk - Tq) : Tk - 1;
}

export function attentionFwd(B: number, Tq: number, Tk: number, Hq: number, Hkv: number, D: number, Dv: number,
  scale: number, causal: boolean, q: FloatArray, k: FloatArray, kBatchStride: number, v: FloatArray,
  vBatchStride: number, o: FloatArray, lse: FloatArray): void {
  const group = Hq / Hkv;
  const kbs = kBatchStride || Tk * Hkv * D;
  const vbs = vBatchStride || Tk * Hkv * Dv;
  const s = new Float64Array(Tk);   // scores of one query row
  const acc = new Float64Array(Dv); // output accumulator of one query row
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < Tq; i++) {
        const qBase = ((b * Tq + i) * Hq + h) * D;
        const oBase = ((b * Tq + i) * Hq + h) * Dv;
        const lseIdx = (b * Hq + h) * Tq + i;
        const last = lastKey(causal, i, Tq, Tk);
        if (last < 0) {
          for (let d = 0; d < Dv; d++) o[oBase + d] = 0;
          lse[lseIdx] = -Infinity;
          continue;
        }
        // scores s_j = scale * q_i . k_j and their max
        let mx = -Infinity;
        for (let j = 0; j <= last; j++) {
          const kBase = b * kbs + (j * Hkv + kvh) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qBase + d]! * k[kBase + d]!;
          const sj = scale * dot;
          s[j] = sj;
          if (sj > mx) mx = sj;
        }
        // o_i = sum_j exp(s_j - max) v_j / sum_j exp(s_j - max)
        acc.fill(0);
        let sum = 0;
        for (let j = 0; j <= last; j++) {
          const p = Math.exp(s[j]! - mx);
          sum += p;
          const vBase = b * vbs + (j * Hkv + kvh) * Dv;
          for (let d = 0; d < Dv; d++) acc[d] += p * v[vBase + d]!;
        }
        const inv = 1 / sum;
        for (let d = 0; d < Dv; d++) o[oBase + d] = acc[d]! * inv;
        lse[lseIdx] = mx + Math.log(sum);
      }
    }
  }
}

/**
 * Attention over a slot cache with a length per sequence (continuous batching): batch row b is an independent
 * attentionFwd of its Tq queries over keys [0, lens[b]) of cache slot slots[b] (k [slots, maxT, Hkv, D]).
 */
export function attentionFwdCached(B: number, Tq: number, Hq: number, Hkv: number, D: number, Dv: number, scale: number,
  causal: boolean, q: FloatArray, k: FloatArray, kSlotStride: number, v: FloatArray, vSlotStride: number,
  slots: Int32Array, lens: Int32Array, o: FloatArray, lse: FloatArray): void {
  for (let b = 0; b < B; b++) {
    const s = slots[b]!;
    attentionFwd(1, Tq, lens[b]!, Hq, Hkv, D, Dv, scale, causal, q.subarray(b * Tq * Hq * D, (b + 1) * Tq * Hq * D),
      k.subarray(s * kSlotStride), kSlotStride, v.subarray(s * vSlotStride), vSlotStride,
      o.subarray(b * Tq * Hq * Dv, (b + 1) * Tq * Hq * Dv), lse.subarray(b * Hq * Tq, (b + 1) * Hq * Tq));
  }
}

/**
 * Backward, recomputing P from lse (flash-attention style):
 *   P_j = exp(s_j - lse);  dv_j += P_j * dout_i;  dP_j = dout_i . v_j;  Delta = dout_i . o_i
 *   dS_j = P_j * (dP_j - Delta);  dq_i = scale * sum_j dS_j k_j;  dk_j += scale * dS_j q_i
 * dq [B,Tq,Hq,D], dk [B,Tk,Hkv,D], dv [B,Tk,Hkv,Dv] are overwritten (dk/dv accumulate over the GQA group in f64).
 */
export function attentionBwd(B: number, Tq: number, Tk: number, Hq: number, Hkv: number, D: number, Dv: number,
  scale: number, causal: boolean, q: FloatArray, k: FloatArray, v: FloatArray, o: FloatArray, lse: FloatArray,
  dout: FloatArray, dq: FloatArray, dk: FloatArray, dv: FloatArray): void {
  const group = Hq / Hkv;
  const dkAcc = new Float64Array(B * Tk * Hkv * D);
  const dvAcc = new Float64Array(B * Tk * Hkv * Dv);
  const dqAcc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < Tq; i++) {
        const qBase = ((b * Tq + i) * Hq + h) * D;
        const oBase = ((b * Tq + i) * Hq + h) * Dv;
        const l = lse[(b * Hq + h) * Tq + i]!;
        const last = lastKey(causal, i, Tq, Tk);
        dqAcc.fill(0);
        if (last >= 0 && l !== -Infinity) {
          let delta = 0; // dout_i . o_i  (= sum_j P_j dP_j)
          for (let d = 0; d < Dv; d++) delta += dout[oBase + d]! * o[oBase + d]!;
          for (let j = 0; j <= last; j++) {
            const kBase = ((b * Tk + j) * Hkv + kvh) * D;
            const vBase = ((b * Tk + j) * Hkv + kvh) * Dv;
            let dot = 0;
            for (let d = 0; d < D; d++) dot += q[qBase + d]! * k[kBase + d]!;
            const p = Math.exp(scale * dot - l);
            let dp = 0;
            for (let d = 0; d < Dv; d++) {
              const g = dout[oBase + d]!;
              dp += g * v[vBase + d]!;
              dvAcc[vBase + d] += p * g;
            }
            const ds = scale * p * (dp - delta);
            for (let d = 0; d < D; d++) {
              dqAcc[d] += ds * k[kBase + d]!;
              dkAcc[kBase + d] += ds * q[qBase + d]!;
            }
          }
        }
        for (let d = 0; d < D; d++) dq[qBase + d] = dqAcc[d]!;
      }
    }
  }
  for (let i = 0; i < dkAcc.length; i++) dk[i] = dkAcc[i]!;
  for (let i = 0; i < dvAcc.length; i++) dv[i] = dvAcc[i]!;
}
