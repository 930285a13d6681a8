// A MoE transformer stack from a plain config and full (unsharded) weights, sharded onto a ParallelContext:
// attention heads, shared experts and dense MLPs over tp; routed experts over ep (all-to-all form) or over tp
// (all-reduce form, tokens replicated). randomStackWeights makes seeded weights, so every rank of a mesh — and
// a single-rank run — builds the same model.
import { Tensor } from '@farskip/tensor';
import { Attention } from './attention.js';
import type { AttentionWeights } from './attention.js';
import type { ParallelContext } from './context.js';
import { SwiGluMlp } from './mlp.js';
import type { MlpWeights } from './mlp.js';
import { MoE } from './moe.js';
import type { MoEConfig, MoEForm, MoEWeights } from './moe.js';
import { FarSkipStack } from './stack.js';

export interface StackConfig {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads?: number;
  headDim?: number;
  ropeTheta?: number;
  /** routed MoE of every non-dense layer (hidden comes from the stack) */
  moe: Omit<MoEConfig, 'hidden'> & { sharedHidden?: number };
  /** the first k layers are dense SwiGLU MLPs (DeepSeek first_k_dense_replace); default 0 */
  denseLayers?: number;
  /** intermediate size of dense layers; default 4·hidden */
  denseHidden?: number;
  eps?: number;
}

export interface BlockWeights {
  inputNorm: Tensor;
  postAttentionNorm: Tensor;
  attention: AttentionWeights;
  moe?: MoEWeights;
  mlp?: MlpWeights;
}

export interface StackWeights {
  blocks: BlockWeights[];
  finalNorm: Tensor;
}

/** Seeded random weights (std 1/sqrt(fan_in); norms 1 ± 0.1 so their gradients matter). */
export function randomStackWeights(c: StackConfig, seed = 1): StackWeights {
  let s = seed * 1000;
  const w = (shape: number[], fanIn: number): Tensor => Tensor.randn(shape, { seed: s++, std: 1 / Math.sqrt(fanIn) });
  const norm = (n: number): Tensor => {
    const t = Tensor.randn([n], { seed: s++, std: 0.1 });
    const d = t.data as Float32Array;
    for (let i = 0; i < n; i++) d[i] = 1 + d[i]!;
    return t;
  };
  const H = c.hidden;
  const D = c.headDim ?? H / c.heads;
  const kv = c.kvHeads ?? c.heads;
  const mlp = (inter: number): MlpWeights => ({ gate: w([inter, H], H), up: w([inter, H], H), down: w([H, inter], inter) });
  const blocks: BlockWeights[] = [];
  for (let k = 0; k < c.layers; k++) {
    const attention = { q: w([c.heads * D, H], H), k: w([kv * D, H], H), v: w([kv * D, H], H), o: w([H, c.heads * D], c.heads * D) };
    const b: BlockWeights = { inputNorm: norm(H), postAttentionNorm: norm(H), attention };
    if (k < (c.denseLayers ?? 0)) {
      b.mlp = mlp(c.denseHidden ?? 4 * H);
    } else {
      const { numExperts: E, expertHidden: I } = c.moe;
      b.moe = {
        router: { gate: w([E, H], H) },
        experts: { gate: w([E, I, H], H), up: w([E, I, H], H), down: w([E, H, I], I) },
        shared: c.moe.sharedHidden ? mlp(c.moe.sharedHidden) : undefined,
      };
    }
    blocks.push(b);
  }
  return { blocks, finalNorm: norm(H) };
}

/** Builds this rank's shard of the stack. */
export function buildStack(c: StackConfig, weights: StackWeights, ctx: ParallelContext, form: MoEForm = 'all-to-all'): FarSkipStack {
  if (weights.blocks.length !== c.layers) throw new Error(`buildStack: config has ${c.layers} layers but the weights have ${weights.blocks.length}`);
  const blocks = weights.blocks.map((b, k) => {
    const attention = new Attention({ hidden: c.hidden, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, ropeTheta: c.ropeTheta }, b.attention, ctx.tp);
    let mlp;
    if (b.moe) {
      mlp = new MoE({ ...c.moe, hidden: c.hidden }, b.moe, { expertGroup: form === 'all-reduce' ? ctx.tp : ctx.ep, sharedGroup: ctx.tp, form });
    } else if (b.mlp) {
      mlp = new SwiGluMlp(c.hidden, b.mlp, ctx.tp);
    } else {
      throw new Error(`buildStack: layer ${k} has neither moe nor mlp weights`);
    }
    return {
      inputNorm: b.inputNorm.detach().clone().requiresGrad_(),
      postAttentionNorm: b.postAttentionNorm.detach().clone().requiresGrad_(),
      attention, mlp, eps: c.eps,
    };
  });
  return new FarSkipStack(blocks, weights.finalNorm.detach().clone().requiresGrad_(), c.eps ?? 1e-6);
}
