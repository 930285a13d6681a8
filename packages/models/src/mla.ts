// DeepSeek-V2/V3 multi-head latent attention (MLA), as the Hugging Face DeepseekV2Attention computes it:
//   q      = q_proj(x)                      or q_b_proj(RMSNorm(q_a_proj(x)))     [B, T, H, nope + rope]
//   c, kpe = split(kv_a_proj_with_mqa(x), [kvLora, rope])                       compressed kv, shared k rope part
//   k_nope, v = split(kv_b_proj(RMSNorm(c)), [nope, v])  per head
//   q_pe, k_pe: RoPE on the rope dims with DeepSeek's interleaved pairs (HF de-interleaves, then rotate-half)
//   o = softmax(q·k / sqrt(nope + rope)) v,  out = o_proj(o)
// An AttentionLike for FarSkip blocks: partA = projections + RoPE, partB = attention + output projection.
// Tensor parallelism is not supported here (kv_a is shared by all heads; splitting heads would need its
// gradient summed over the group). The decode cache stores the expanded per-head k and v (not the compressed
// latent), which trades memory for not re-expanding the cache every step.
import type { Communicator } from '@farskip/collectives';
import { attention, KVCache, linear, rmsNorm, rope } from '@farskip/kernels';
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

export class MlaAttention implements AttentionLike {
  readonly reduceGroup: Communicator = solo();
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
    const kv = linear(rmsNorm(c, this.w.kvANorm, this.eps), this.w.kvB).reshape(B, T, H, nope + dv);
    const [kNope, v] = split(kv, [nope, dv], 3) as [Tensor, Tensor];
    const opts = { theta: this.ropeTheta, rotaryDim: rot };
    const qRot = rope(deinterleave(qPe, rot), positions, opts);
    const kRot = rope(deinterleave(kPe.reshape(B, T, 1, rot), rot), positions, opts).expand(B, T, H, rot);
    return { q: cat([qNope, qRot], 3), k: cat([kNope, kRot], 3), v };
  }

  partB(s: AttentionState): Tensor {
    const [B, T, H] = s.q.shape as [number, number, number, number];
    const scale = 1 / Math.sqrt(this.m.qkNopeHeadDim + this.m.qkRopeHeadDim);
    let o: Tensor;
    if (this.cache) {
      this.cache.append(s.k, s.v);
      o = this.cache.attend(s.q, { causal: true, scale });
    } else {
      o = attention(s.q, s.k, s.v, { causal: true, scale });
    }
    return linear(o.reshape(B, T, H * this.m.vHeadDim), this.w.o);
  }

  parameters(): [string, Tensor][] {
    return this.params;
  }
}
