// Float64 plain-TypeScript reference of DESIGN §2: a whole MoE stack with FarSkip two-stream wiring, written
// from the maths alone (plain loops over Float64Array; no @farskip/kernels op, no module of @farskip/layers).
// Every matrix is row-major; weights are nn.Linear layout [out, in]. Shapes are given in the comments.
import type { Tensor } from '@farskip/tensor';
import type { LayerConnectivity, MlpWeights, RouterConfig, StackConfig, StackWeights } from '@farskip/layers';

export function toF64(t: Tensor): Float64Array {
  return Float64Array.from(t.toArray());
}

/** x [rows, H] -> x / sqrt(mean(x²) + eps) * w */
export function rmsNorm64(x: Float64Array, H: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / H; r++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[r * H + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / H + eps);
    for (let i = 0; i < H; i++) y[r * H + i] = x[r * H + i]! * inv * w[i]!;
  }
  return y;
}

/** x [rows, inDim], W [outDim, inDim] -> x Wᵀ [rows, outDim] */
export function linear64(x: Float64Array, W: Float64Array, inDim: number, outDim: number): Float64Array {
  const rows = x.length / inDim;
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i]! * W[o * inDim + i]!;
      y[r * outDim + o] = s;
    }
  }
  return y;
}

export const silu64 = (z: number): number => z / (1 + Math.exp(-z));
export const sigmoid64 = (z: number): number => 1 / (1 + Math.exp(-z));

function addInto(acc: Float64Array, b: Float64Array): void {
  for (let i = 0; i < acc.length; i++) acc[i]! += b[i]!;
}

function sum64(...xs: Float64Array[]): Float64Array {
  const out = new Float64Array(xs[0]!.length);
  for (const x of xs) addInto(out, x);
  return out;
}

export interface Mlp64 {
  /** [I, H] */ gate: Float64Array;
  /** [I, H] */ up: Float64Array;
  /** [H, I] */ down: Float64Array;
  /** [1, H] (Qwen2-MoE shared_expert_gate) */ outputGate?: Float64Array;
}

function mlpTo64(m: MlpWeights): Mlp64 {
  return { gate: toF64(m.gate), up: toF64(m.up), down: toF64(m.down), outputGate: m.outputGate ? toF64(m.outputGate) : undefined };
}

/** SwiGLU: x [rows, H] -> down(silu(gate x) * up x) [rows, H] (times sigmoid(x · outputGate) if given) */
export function mlp64(x: Float64Array, H: number, m: Mlp64): Float64Array {
  const I = m.gate.length / H;
  const g = linear64(x, m.gate, H, I), u = linear64(x, m.up, H, I);
  const act = g.map((gi, i) => silu64(gi) * u[i]!); // [rows, I]
  const y = linear64(act, m.down, I, H);
  if (m.outputGate) {
    const gate = linear64(x, m.outputGate, H, 1); // [rows, 1]
    for (let r = 0; r < gate.length; r++) for (let i = 0; i < H; i++) y[r * H + i]! *= sigmoid64(gate[r]!);
  }
  return y;
}

/**
 * Rotate-half RoPE in place on x [B, T, heads, D]: pair dim i with i + rot/2 (i < rot/2), angle pos · invFreq[i],
 * invFreq[i] = theta^(-2i/rot); dims >= rot pass through.
 */
export function rope64(x: Float64Array, B: number, T: number, heads: number, D: number, positions: Int32Array, theta: number, rot = D): void {
  const half = rot / 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < heads; h++) {
        const base = ((b * T + t) * heads + h) * D;
        for (let i = 0; i < half; i++) {
          const angle = positions[t]! * theta ** (-(2 * i) / rot);
          const c = Math.cos(angle), s = Math.sin(angle);
          const x1 = x[base + i]!, x2 = x[base + i + half]!;
          x[base + i] = x1 * c - x2 * s;
          x[base + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
}

export interface Attention64 {
  /** [heads·D, H] */ q: Float64Array;
  /** [kvHeads·D, H] */ k: Float64Array;
  /** [kvHeads·D, H] */ v: Float64Array;
  /** [H, heads·D] */ o: Float64Array;
}

export interface AttentionDims { hidden: number; heads: number; kvHeads: number; headDim: number; theta: number }

/** xNorm [B·T, H] -> o(causal GQA softmax attention of RoPE'd q, k) [B·T, H] */
export function attention64(xNorm: Float64Array, B: number, T: number, positions: Int32Array, w: Attention64, d: AttentionDims): Float64Array {
  const { hidden: H, heads: Hq, kvHeads: Hkv, headDim: D } = d;
  const q = linear64(xNorm, w.q, H, Hq * D); // [B, T, Hq, D]
  const k = linear64(xNorm, w.k, H, Hkv * D); // [B, T, Hkv, D]
  const v = linear64(xNorm, w.v, H, Hkv * D); // [B, T, Hkv, D]
  rope64(q, B, T, Hq, D, positions, d.theta);
  rope64(k, B, T, Hkv, D, positions, d.theta);
  const group = Hq / Hkv;
  const scale = 1 / Math.sqrt(D);
  const heads = new Float64Array(B * T * Hq * D); // [B, T, Hq, D]
  const p = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const qOff = ((b * T + i) * Hq + h) * D;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) { // causal: keys j <= i
          const kOff = ((b * T + j) * Hkv + kh) * D;
          let dot = 0;
          for (let c = 0; c < D; c++) dot += q[qOff + c]! * k[kOff + c]!;
          p[j] = dot * scale;
          max = Math.max(max, p[j]!);
        }
        let z = 0;
        for (let j = 0; j <= i; j++) { p[j] = Math.exp(p[j]! - max); z += p[j]!; }
        for (let j = 0; j <= i; j++) {
          const vOff = ((b * T + j) * Hkv + kh) * D;
          for (let c = 0; c < D; c++) heads[qOff + c]! += (p[j]! / z) * v[vOff + c]!;
        }
      }
    }
  }
  return linear64(heads, w.o, Hq * D, H);
}

/** Indices of v sorted by value descending, ties by lower index first. */
function ranked(v: ArrayLike<number>, allowed?: (i: number) => boolean): number[] {
  const idx = Array.from({ length: v.length }, (_, i) => i).filter((i) => !allowed || allowed(i));
  return idx.sort((a, b) => (v[b]! - v[a]!) || (a - b));
}

export interface Routing64 {
  /** [N·topK] token-major */ experts: Int32Array;
  /** [N, topK] */ weights: Float64Array;
  /** [E] */ counts: Int32Array;
  /** [N, E] softmax / sigmoid of the gate logits */ scores: Float64Array;
  /** smallest gap (over tokens) between the last chosen and first unchosen candidate, expert or group */
  margin: number;
}

/**
 * The router: scores = softmax | sigmoid (u gateᵀ); choice on scores + bias, restricted to the best topkGroups
 * groups (group score max or top-2 sum) when grouped; weights = the chosen (unbiased) scores, optionally divided
 * by their sum (+1e-20), times routedScaling.
 */
export function router64(u: Float64Array, H: number, gate: Float64Array, c: RouterConfig, bias?: Float64Array): Routing64 {
  const E = c.numExperts, K = c.topK;
  const N = u.length / H;
  const logits = linear64(u, gate, H, E); // [N, E]
  const scores = new Float64Array(N * E);
  for (let n = 0; n < N; n++) {
    const row = logits.subarray(n * E, (n + 1) * E);
    if (c.scoring === 'sigmoid') {
      for (let e = 0; e < E; e++) scores[n * E + e] = sigmoid64(row[e]!);
    } else {
      const max = Math.max(...row);
      const ex = row.map((l) => Math.exp(l - max));
      const z = ex.reduce((a, b) => a + b, 0);
      for (let e = 0; e < E; e++) scores[n * E + e] = ex[e]! / z;
    }
  }
  const experts = new Int32Array(N * K), weights = new Float64Array(N * K), counts = new Int32Array(E);
  let margin = Infinity;
  const gap = (order: number[], v: ArrayLike<number>, keep: number): number =>
    order.length > keep ? v[order[keep - 1]!]! - v[order[keep]!]! : Infinity;
  for (let n = 0; n < N; n++) {
    const choice = Array.from({ length: E }, (_, e) => scores[n * E + e]! + (bias ? bias[e]! : 0));
    let eligible = (_e: number): boolean => true;
    if (c.numGroups) {
      const G = c.numGroups, per = E / G;
      const groupScore = Array.from({ length: G }, (_, g) => {
        const inGroup = choice.slice(g * per, (g + 1) * per).sort((a, b) => b - a);
        return c.groupScore === 'top2sum' ? inGroup[0]! + (inGroup[1] ?? 0) : inGroup[0]!;
      });
      const groups = ranked(groupScore);
      const kept = new Set(groups.slice(0, c.topkGroups ?? G));
      margin = Math.min(margin, gap(groups, groupScore, c.topkGroups ?? G));
      eligible = (e) => kept.has(Math.floor(e / per));
    }
    const order = ranked(choice, eligible);
    margin = Math.min(margin, gap(order, choice, K));
    const chosen = order.slice(0, K);
    const sum = chosen.reduce((s, e) => s + scores[n * E + e]!, 0) + 1e-20;
    chosen.forEach((e, j) => {
      experts[n * K + j] = e;
      counts[e]!++;
      weights[n * K + j] = (c.renormalize ? scores[n * E + e]! / sum : scores[n * E + e]!) * (c.routedScaling ?? 1);
    });
  }
  return { experts, weights, counts, scores, margin };
}

export interface MoE64 {
  /** [E, H] */ gate: Float64Array;
  /** [E] */ correctionBias?: Float64Array;
  /** expert e: gate [I, H], up [I, H], down [H, I] */ experts: Mlp64[];
  shared?: Mlp64;
}

/** u [N, H] -> routed output t [N, H] = Σ_slots w · expert(u) (or expert(w · u) when weightOn 'input') */
export function routed64(u: Float64Array, H: number, m: MoE64, c: StackConfig['moe']): { t: Float64Array; margin: number } {
  const r = router64(u, H, m.gate, c, m.correctionBias);
  const N = u.length / H, K = c.topK;
  const t = new Float64Array(N * H);
  for (let n = 0; n < N; n++) {
    const row = u.slice(n * H, (n + 1) * H); // [1, H]
    for (let j = 0; j < K; j++) {
      const w = r.weights[n * K + j]!, expert = m.experts[r.experts[n * K + j]!]!;
      const y = c.weightOn === 'input' ? mlp64(row.map((v) => v * w), H, expert) : mlp64(row, H, expert).map((v) => v * w);
      for (let i = 0; i < H; i++) t[n * H + i]! += y[i]!;
    }
  }
  return { t, margin: r.margin };
}

interface Block64 {
  inputNorm: Float64Array;
  postAttentionNorm: Float64Array;
  attention: Attention64;
  moe?: MoE64;
  mlp?: Mlp64;
}

export interface Stack64 {
  blocks: Block64[];
  finalNorm: Float64Array;
}

/** The full weights of randomStackWeights (f32 tensors) in f64, experts split out one by one. */
export function stackTo64(w: StackWeights): Stack64 {
  const blocks = w.blocks.map((b): Block64 => {
    const { q, k, v, o } = b.attention;
    const out: Block64 = {
      inputNorm: toF64(b.inputNorm), postAttentionNorm: toF64(b.postAttentionNorm),
      attention: { q: toF64(q), k: toF64(k), v: toF64(v), o: toF64(o) },
    };
    if (b.mlp) out.mlp = mlpTo64(b.mlp);
    if (b.moe) {
      const [E, I, H] = b.moe.experts.gate.shape as [number, number, number];
      const gate = toF64(b.moe.experts.gate), up = toF64(b.moe.experts.up), down = toF64(b.moe.experts.down);
      out.moe = {
        gate: toF64(b.moe.router.gate),
        correctionBias: b.moe.router.correctionBias ? toF64(b.moe.router.correctionBias) : undefined,
        experts: Array.from({ length: E }, (_, e) => ({
          gate: gate.slice(e * I * H, (e + 1) * I * H), up: up.slice(e * I * H, (e + 1) * I * H), down: down.slice(e * H * I, (e + 1) * H * I),
        })),
        shared: b.moe.shared ? mlpTo64(b.moe.shared) : undefined,
      };
    }
    return out;
  });
  return { blocks, finalNorm: toF64(w.finalNorm) };
}

export interface StackResult64 {
  /** RMSNorm(full stream, finalNorm) [B, T, H] */
  out: Float64Array;
  /** the smallest routing margin met (a flip of a near-tie would make f32 and f64 legitimately disagree) */
  routerMargin: number;
}

/**
 * The stack with the given per-layer connectivity (DESIGN §2). x [B, T, H]; positions [T].
 * Per layer, with x the full stream and x~ the routed-free stream (x~ = x unless the previous layer was converted):
 *   a = Attn(LN1(attnReadsRoutedFree ? x~ : x));  u = LN2(mlpReadsPreAttention ? x : x + a)
 *   s = Shared(u) (or the dense MLP);  t = Routed(u) (0 for dense layers)
 *   x~' = x + a + s;  x' = x~' + t
 */
export function referenceStack64(config: StackConfig, weights: Stack64, x: Float64Array, B: number, T: number, positions: Int32Array,
  plan: LayerConnectivity[]): StackResult64 {
  const H = config.hidden;
  const eps = config.eps ?? 1e-6;
  const dims: AttentionDims = {
    hidden: H, heads: config.heads, kvHeads: config.kvHeads ?? config.heads,
    headDim: config.headDim ?? H / config.heads, theta: config.ropeTheta ?? 10000,
  };
  if (plan.length !== weights.blocks.length) throw new Error(`referenceStack64: plan has ${plan.length} layers, weights ${weights.blocks.length}`);
  let full: Float64Array = x.slice(); // x  [B·T, H]
  let routedFree: Float64Array = x.slice(); // x~ [B·T, H]
  let previousConverted = false;
  let routerMargin = Infinity;
  weights.blocks.forEach((blk, k) => {
    const c = plan[k]!;
    const xTilde = previousConverted ? routedFree : full;
    const attnIn = c.attnReadsRoutedFree ? xTilde : full;
    const a = attention64(rmsNorm64(attnIn, H, blk.inputNorm, eps), B, T, positions, blk.attention, dims);
    const u = rmsNorm64(c.mlpReadsPreAttention ? full : sum64(full, a), H, blk.postAttentionNorm, eps);
    const sharedMlp = blk.moe ? blk.moe.shared : blk.mlp;
    const s = sharedMlp ? mlp64(u, H, sharedMlp) : new Float64Array(u.length);
    let t: Float64Array = new Float64Array(u.length); // dense layers: t = 0
    if (blk.moe) {
      const r = routed64(u, H, blk.moe, config.moe);
      t = r.t;
      routerMargin = Math.min(routerMargin, r.margin);
    }
    routedFree = sum64(full, a, s);
    full = sum64(routedFree, t);
    previousConverted = c.converted;
  });
  return { out: rmsNorm64(full, H, weights.finalNorm, eps), routerMargin };
}
