// DeepSeek-V2/V3 multi-head latent attention (MLA), as the Hugging Face DeepseekV2Attention computes it:
//   q      = q_proj(x)                      or q_b_proj(RMSNorm(q_a_proj(x)))     [B, T, H, nope + rope]
//   c, kpe = split(kv_a_proj_with_mqa(x), [kvLora, rope])                       compressed kv, shared k rope part
//   k_nope, v = split(kv_b_proj(RMSNorm(c)), [nope, v])  per head
//   q_pe, k_pe: RoPE on the rope dims with DeepSeek's interleaved pairs (HF de-interleaves, then rotate-half)
//   o = softmax(q·k / sqrt(nope + rope)) v,  out = o_proj(o)
// An AttentionLike for FarSkip blocks: partA = projections + RoPE, partB = attention + output projection.
// Tensor parallelism is not supported here (kv_a is shared by all heads; splitting heads would need its
// gradient summed over the group).
//
// Decoding keeps MLA's compressed cache: per token only the normed latent c [kvLora] and the rotated shared key
// part k_pe [rope] — not the per-head keys and values. Attention then runs in the latent space with the
// up-projections absorbed (DeepSeek-V2 §2.1.2): q_lat[h] = W_kb[h]ᵀ q_nope[h], keys [c | k_pe] shared by all
// heads (one kv head), values c, and o[h] = W_vb[h] (Σ_t p_t c_t). Same maths as the expanded form, reordered.
import type { Communicator } from '@farskip/collectives';
import { attention, KVCache, linear, matmul, rmsNorm, rope } from '@farskip/kernels';
import { solo, deinterleave } from '@farskip/layers';
import type { AttentionLike, AttentionState, CommEnv } from '@farskip/layers';
import { cat, split } from '@farskip/tensor';
import type { Tensor } from '@farskip/tensor';
import type { MlaSpec } from './config.js';

export interface MlaWeights {
  /** [H·(nope+rope), hidden] when qLoraRank is null */
  q?: Tensor;
  /** [qLora, hidden], [qLora], [H·(nope+rope), qLora] otherwise */
  qA?: Tensor;
  qANorm?: Tensor;
  qB?: Tensor;
  /** [kvLora + rope, hidden] */
  kvA: Tensor;
  /** [kvLora] */
  kvANorm: Tensor;
  /** [H·(nope + v), kvLora] */
  kvB: Tensor;
  /** [hidden, H·v] */
  o: Tensor;
}

/** What MLA's partA hands to partB: the expanded q, k, v, plus the latent pieces the compressed cache needs. */
interface MlaState extends AttentionState {
  qNope: Tensor;
  qRot: Tensor;
  /** normed latent [B, T, kvLora] and rotated shared key part [B, T, 1, rope] */
  latent: Tensor;
  kRot1: Tensor;
}

export class MlaAttention implements AttentionLike {
  readonly reduceGroup: Communicator = solo();
  /** compressed decode cache: keys [c | k_pe] (kvLora + rope), values c (kvLora), one kv head */
  cache: KVCache | null = null;
  private readonly params: [string, Tensor][];
  private readonly w: Required<Pick<MlaWeights, 'kvA' | 'kvANorm' | 'kvB' | 'o'>> & Partial<MlaWeights>;

  constructor(readonly heads: number, readonly m: MlaSpec, weights: MlaWeights, readonly ropeTheta: number, readonly eps: number) {
    const lf = (t: Tensor): Tensor => t.detach().clone().requiresGrad_();
    this.w = { kvA: lf(weights.kvA), kvANorm: lf(weights.kvANorm), kvB: lf(weights.kvB), o: lf(weights.o) };
    this.params = [];
    if (m.qLoraRank === null) {
      if (!weights.q) throw new Error('MLA: q_proj.weight is required when q_lora_rank is null');
      this.w.q = lf(weights.q);
      this.params.push(['q_proj.weight', this.w.q]);
    } else {
      if (!weights.qA || !weights.qANorm || !weights.qB) throw new Error('MLA: q_a_proj, q_a_layernorm and q_b_proj are required when q_lora_rank is set');
      Object.assign(this.w, { qA: lf(weights.qA), qANorm: lf(weights.qANorm), qB: lf(weights.qB) });
      this.params.push(['q_a_proj.weight', this.w.qA!], ['q_a_layernorm.weight', this.w.qANorm!], ['q_b_proj.weight', this.w.qB!]);
    }
    this.params.push(['kv_a_proj_with_mqa.weight', this.w.kvA], ['kv_a_layernorm.weight', this.w.kvANorm], ['kv_b_proj.weight', this.w.kvB], ['o_proj.weight', this.w.o]);
  }

  partA(xNorm: Tensor, positions: Tensor, _env: CommEnv): AttentionState {
    const [B, T] = xNorm.shape as [number, number, number];
    const { qkNopeHeadDim: nope, qkRopeHeadDim: rot, vHeadDim: dv, kvLoraRank: kvl } = this.m;
    const H = this.heads;
    const q = (this.w.q ? linear(xNorm, this.w.q) : linear(rmsNorm(linear(xNorm, this.w.qA!), this.w.qANorm!, this.eps), this.w.qB!))
      .reshape(B, T, H, nope + rot);
    const [qNope, qPe] = split(q, [nope, rot], 3) as [Tensor, Tensor];
    const [c, kPe] = split(linear(xNorm, this.w.kvA), [kvl, rot], 2) as [Tensor, Tensor];
    const latent = rmsNorm(c, this.w.kvANorm, this.eps);
    const opts = { theta: this.ropeTheta, rotaryDim: rot };
    const qRot = rope(deinterleave(qPe, rot), positions, opts);
    const kRot1 = rope(deinterleave(kPe.reshape(B, T, 1, rot), rot), positions, opts);
    if (this.cache) { // decoding: the expanded keys and values are never formed
      const state: MlaState = { q: qNope, k: kRot1, v: latent, qNope, qRot, latent, kRot1 };
      return state;
    }
    const kv = linear(latent, this.w.kvB).reshape(B, T, H, nope + dv);
    const [kNope, v] = split(kv, [nope, dv], 3) as [Tensor, Tensor];
    const kRot = kRot1.expand(B, T, H, rot);
    return { q: cat([qNope, qRot], 3), k: cat([kNope, kRot], 3), v };
  }

  /** Attention over the compressed cache with the up-projections absorbed; returns o [B, T, H·v]. */
  private latentAttention(st: MlaState, cache: KVCache, scale: number): Tensor {
    const { qkNopeHeadDim: nope, vHeadDim: dv, kvLoraRank: kvl } = this.m;
    const [B, T, H] = st.qNope.shape as [number, number, number, number];
    const Tk = st.latent.numel / (B * kvl); // every new position enters the cache, even when fewer queries remain
    const kvB = this.w.kvB.detach().reshape(H, nope + dv, kvl);
    const wK = kvB.slice(1, 0, nope);                                  // [H, nope, kvl]
    const wV = kvB.slice(1, nope, nope + dv).transpose(1, 2);          // [H, kvl, v]
    const perHead = (x: Tensor, d: number): Tensor => x.reshape(B * T, H, d).transpose(0, 1); // [H, B·T, d]
    const back = (x: Tensor, d: number): Tensor => x.transpose(0, 1).reshape(B, T, H, d);
    const qLat = back(matmul(perHead(st.qNope, nope), wK), kvl);        // [B, T, H, kvl]
    cache.append(cat([st.latent.reshape(B, Tk, 1, kvl), st.kRot1], 3), st.latent.reshape(B, Tk, 1, kvl));
    const oLat = cache.attend(cat([qLat, st.qRot], 3), { causal: true, scale }); // [B, T, H, kvl]
    return back(matmul(perHead(oLat, kvl), wV), dv).reshape(B, T, H * dv);
  }

  lastQueries(s: AttentionState): AttentionState {
    const last = (t: Tensor): Tensor => t.slice(1, t.shape[1]! - 1, t.shape[1]!);
    const st = s as Partial<MlaState> & AttentionState;
    // the cached (decode) state carries the latent pieces; the expanded one only q, k, v
    if (!st.qNope) return { ...st, q: last(st.q) };
    const kept: MlaState = { ...(st as MlaState), q: last(st.q), qNope: last(st.qNope), qRot: last(st.qRot!) };
    return kept;
  }

  partB(s: AttentionState): Tensor {
    const [B, T] = s.q.shape as [number, number, number, number];
    const H = this.heads;
    const scale = 1 / Math.sqrt(this.m.qkNopeHeadDim + this.m.qkRopeHeadDim);
    if (this.cache) return linear(this.latentAttention(s as MlaState, this.cache, scale), this.w.o);
    const o = attention(s.q, s.k, s.v, { causal: true, scale });
    return linear(o.reshape(B, T, H * this.m.vHeadDim), this.w.o);
  }

  parameters(): [string, Tensor][] {
    return this.params;
  }
}
