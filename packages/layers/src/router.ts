// MoE router: scores = softmax or sigmoid of the gate logits; expert choice by top-k, optionally limited to the
// best groups of experts (DeepSeek-V2 'group_limited_greedy': group score = max; DeepSeek-V3 'noaux_tc': group
// score = sum of the top 2, on scores plus a correction bias that affects the choice only); the weights are the
// chosen experts' scores (differentiable), optionally renormalised to sum to 1, times routedScaling.
import { allocate, gather, Tensor, recordOp } from '@farskip/tensor';
import { linear, scale, sigmoid, softmax } from '@farskip/kernels';
import { expectShape } from './attention.js';
import { leaf } from './shard.js';

export interface RouterConfig {
  numExperts: number;
  topK: number;
  /** default 'softmax' */
  scoring?: 'softmax' | 'sigmoid';
  /** divide the chosen weights by their sum (HF norm_topk_prob); default false */
  renormalize?: boolean;
  /** group-limited routing: experts form numGroups equal groups and only the best topkGroups are eligible */
  numGroups?: number;
  topkGroups?: number;
  /** how a group is scored: 'max' (DeepSeek-V2), 'top2sum' (DeepSeek-V3); default 'max' */
  groupScore?: 'max' | 'top2sum';
  /** multiplies the weights (DeepSeek routed_scaling_factor); default 1 */
  routedScaling?: number;
}

export interface RouterWeights {
  /** [numExperts, hidden] */
  gate: Tensor;
  /** [numExperts]: added to the scores for the choice only (DeepSeek-V3 e_score_correction_bias; not trained) */
  correctionBias?: Tensor;
}

export interface Routing {
  /** [tokens·topK] chosen expert ids, token-major */
  experts: Int32Array;
  /** [tokens, topK] the chosen experts' weights (differentiable w.r.t. the gate and the input) */
  weights: Tensor;
  /** tokens routed to each expert [numExperts] */
  counts: Int32Array;
}

export class Router {
  readonly weight: Tensor;
  readonly bias: Float32Array | null;

  constructor(readonly hidden: number, readonly config: RouterConfig, weights: RouterWeights) {
    const { numExperts: E, topK, numGroups, topkGroups } = config;
    if (!Number.isInteger(topK) || topK < 1 || topK > E) throw new Error(`Router: topK ${topK} must be in [1, numExperts = ${E}]`);
    if (numGroups !== undefined) {
      if (E % numGroups !== 0) throw new Error(`Router: numExperts ${E} is not divisible by numGroups ${numGroups}`);
      const tg = topkGroups ?? numGroups;
      if (tg < 1 || tg > numGroups || tg * (E / numGroups) < topK) {
        throw new Error(`Router: topkGroups ${tg} must be in [1, ${numGroups}] and leave at least topK = ${topK} experts eligible`);
      }
    }
    expectShape('router.gate', weights.gate, [E, hidden]);
    this.weight = leaf(weights.gate);
    if (weights.correctionBias) {
      expectShape('router.correctionBias', weights.correctionBias, [E]);
      this.bias = Float32Array.from(weights.correctionBias.toArray());
    } else this.bias = null;
  }

  /** u [tokens, hidden] -> the routing of every token. */
  route(u: Tensor): Routing {
    const { numExperts: E, topK: k } = this.config;
    const N = u.shape[0]!;
    // bf16 models route in f32 (as Megatron's moe_router_dtype=fp32): top-k choices on rounded scores would
    // tie and flip between near-equal experts; the gates go back to the activations' dtype
    const f32 = u.dtype === 'bf16';
    const logits = f32 ? linear(u.to('f32'), this.weight.to('f32')) : linear(u, this.weight);
    const scores = this.config.scoring === 'sigmoid' ? sigmoid(logits) : softmax(logits, -1);
    const experts = this.choose(scores.data as Float32Array, N);
    const counts = new Int32Array(E);
    for (const e of experts) counts[e]!++;
    let weights = gather(scores, 1, new Tensor(experts, [N, k], { dtype: 'i32' }));
    if (this.config.renormalize) weights = normalizeRows(weights);
    const s = this.config.routedScaling ?? 1;
    if (s !== 1) weights = scale(weights, s);
    if (f32) weights = weights.to('bf16');
    return { experts, weights, counts };
  }

  /** Expert choice per token (no gradient): top-k of scores (+ bias), within the best groups if grouped. */
  private choose(scores: Float32Array, N: number): Int32Array {
    const { numExperts: E, topK: k, numGroups: G } = this.config;
    const out = new Int32Array(N * k);
    const choice = new Float64Array(E);
    const eligible = new Uint8Array(E);
    const per = G ? E / G : E;
    const groupScores = new Float64Array(G ?? 1);
    for (let t = 0; t < N; t++) {
      for (let e = 0; e < E; e++) choice[e] = scores[t * E + e]! + (this.bias ? this.bias[e]! : 0);
      eligible.fill(1);
      if (G) {
        for (let g = 0; g < G; g++) {
          let a = -Infinity, b = -Infinity;
          for (let e = g * per; e < (g + 1) * per; e++) {
            const v = choice[e]!;
            if (v > a) { b = a; a = v; } else if (v > b) b = v;
          }
          groupScores[g] = this.config.groupScore === 'top2sum' ? a + (per > 1 ? b : 0) : a;
        }
        const keep = topIndices(groupScores, this.config.topkGroups ?? G);
        eligible.fill(0);
        for (const g of keep) eligible.fill(1, g * per, (g + 1) * per);
      }
      const picked = topIndices(choice, k, eligible);
      out.set(picked, t * k);
    }
    return out;
  }

  parameters(): [string, Tensor][] {
    return [['gate.weight', this.weight]];
  }
}

/** Indices of the k largest values (descending; ties: lower index first), among `mask` when given. */
function topIndices(v: Float64Array, k: number, mask?: Uint8Array): Int32Array {
  const idx = new Int32Array(k).fill(-1);
  for (let j = 0; j < k; j++) {
    let best = -1;
    for (let e = 0; e < v.length; e++) {
      if ((mask && !mask[e]) || idx.includes(e)) continue;
      if (best < 0 || v[e]! > v[best]!) best = e;
    }
    idx[j] = best;
  }
  return idx;
}

/** w [rows, k] -> w / Σ_row w (HF: topk_weight / (topk_weight.sum(-1) + 1e-20)). */
export function normalizeRows(w: Tensor): Tensor {
  // computes in w's dtype (f32, or f64 for references and gradcheck); bf16 through f32
  if (w.dtype === 'bf16') return normalizeRows(w.to('f32')).to('bf16');
  if (w.dtype !== 'f32' && w.dtype !== 'f64') throw new Error(`normalizeRows: w must be a float tensor, got ${w.dtype}`);
  const dtype = w.dtype;
  const [rows, k] = w.shape as [number, number];
  const x = w.data as Float32Array | Float64Array;
  const y = allocate(dtype, x.length);
  const sums = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < k; j++) s += x[r * k + j]!;
    s += 1e-20;
    sums[r] = s;
    for (let j = 0; j < k; j++) y[r * k + j] = x[r * k + j]! / s;
  }
  const out = new Tensor(y, [rows, k], { dtype });
  return recordOp(out, 'normalizeRows', [w], (g) => {
    // d y_j / d x_i = (δ_ij − y_j) / S  ->  dx_i = (g_i − Σ_j g_j y_j) / S
    const gs = g.data as Float32Array | Float64Array;
    const dx = allocate(dtype, x.length);
    for (let r = 0; r < rows; r++) {
      let dot = 0;
      for (let j = 0; j < k; j++) dot += gs[r * k + j]! * y[r * k + j]!;
      for (let j = 0; j < k; j++) dx[r * k + j] = (gs[r * k + j]! - dot) / sums[r]!;
    }
    return [new Tensor(dx, [rows, k], { dtype })];
  });
}
