// A stack of transformer blocks run with FarSkip connectivity (connectivity.ts) under a schedule:
//   reference   every collective waited where it is issued, in program order
//   overlapped  training / EP form, per MoE layer:
//                 attention part A ‖ previous layer's combine -> wait, unpermute, add -> norm, route, permute
//                 -> exchange of per-expert counts ‖ attention part B -> token dispatch ‖ shared experts ->
//                 wait -> routed experts -> combine ‖ the next layer's part A
//               (the paper puts the dispatch behind part B and the shared experts behind the combine; waiting
//               for the counts right after routing exposed every rank-to-rank skew — 80 % forward overlap in
//               bench/moe-stack.mjs — so here part B hides the counts and the skew, the shared experts the
//               dispatch)
//               all-reduce form (inference, tokens replicated over TP/EP): attention's partial sum + the shared
//                 experts' partial sum in one all-reduce ‖ routed experts; routed all-reduce ‖ the next layer's
//                 whole attention (parts A and B: routing needs no communication in this form)
// Both schedules run the same operations on the same values in the same order of additions, so their outputs
// and gradients are bit-identical; only where the rank waits differs.
import { add, rmsNorm } from '@farskip/kernels';
import type { Tensor } from '@farskip/tensor';
import type { AttentionLike, AttentionState } from './attention.js';
import { allReduceTensor, issued } from './comm.js';
import type { CommEnv, Pending, Schedule } from './comm.js';
import { layerPlan } from './connectivity.js';
import type { FarSkipOptions, LayerConnectivity } from './connectivity.js';
import type { MlpLike } from './mlp.js';
import type { CombinedTokens, DispatchedTokens, MoELike, RoutedTokens } from './moe.js';
import type { Tracer } from './trace.js';

export type { Schedule };

export interface BlockModules {
  /** RMSNorm weights [hidden] */
  inputNorm: Tensor;
  postAttentionNorm: Tensor;
  attention: AttentionLike;
  /** routed MoE (with optional shared experts) or a dense MLP */
  mlp: MoELike | MlpLike;
  eps?: number;
}

export function isMoE(m: MoELike | MlpLike): m is MoELike {
  return typeof (m as MoELike).begin === 'function';
}

export interface StackRunOptions {
  schedule?: Schedule;
  tracer?: Tracer;
  /** FarSkip connectivity; null = the original model (also what options.mode 'original' computes) */
  farskip?: FarSkipOptions | null;
  /** 'all-reduce' when the MoE modules were built in that form (inference with replicated tokens) */
  form?: 'all-to-all' | 'all-reduce';
  /**
   * 'last': only the last position of each sequence is needed at the output (a prefill whose logits are sampled
   * at its end): the last layer computes its attention output, MLP and collectives for that position only, as
   * llama.cpp prunes its output rows. Keys and values still enter the KV cache for every position. The result is
   * [B, 1, hidden]. Default 'all'.
   */
  outputs?: 'all' | 'last';
}

/** The two residual streams between layers; `routed` is the previous layer's routed output, maybe in flight. */
interface Streams {
  /** x~ (routed-free) [B, T, hidden]; the full stream is xr + routed */
  xr: Tensor;
  routed: Pending<Tensor> | null;
  /** x~ may be read by the next layer (the previous layer was converted) */
  routedFreeValid: boolean;
}

export class FarSkipStack {
  constructor(readonly blocks: BlockModules[], readonly finalNorm: Tensor, readonly eps = 1e-6) {}

  /** x [B, T, hidden], positions i32 [T] -> final-normed hidden states [B, T, hidden] (full stream). */
  async forward(x: Tensor, positions: Tensor, options: StackRunOptions = {}): Promise<Tensor> {
    const env: CommEnv = { schedule: options.schedule ?? 'overlapped', tracer: options.tracer };
    const plan = layerPlan(this.blocks.length, options.farskip === undefined ? {} : options.farskip);
    const allReduceForm = options.form === 'all-reduce';
    let st: Streams = { xr: x, routed: null, routedFreeValid: false };
    const L = this.blocks.length;
    for (let k = 0; k < L; k++) {
      const lastOnly = options.outputs === 'last' && k === L - 1 && typeof this.blocks[k]!.attention.lastQueries === 'function';
      st = await this.layer(this.blocks[k]!, plan[k]!, st, positions, env, allReduceForm, `layer${k}`, lastOnly);
    }
    const full = await this.full(st, env, 'final');
    return compute(env, 'final.norm', () => rmsNorm(full, this.finalNorm, this.eps));
  }

  /** The full stream x = x~ + t_prev: waits for the previous routed output (combine, unpermute) and adds it. */
  private async full(st: Streams, env: CommEnv, name: string): Promise<Tensor> {
    if (!st.routed) return st.xr;
    const t = await st.routed.wait();
    return compute(env, `${name}.residual`, () => add(st.xr, t.reshape(...st.xr.shape)));
  }

  private async layer(b: BlockModules, c: LayerConnectivity, st: Streams, positions: Tensor, stackEnv: CommEnv,
    allReduceForm: boolean, name: string, lastOnly = false): Promise<Streams> {
    const env: CommEnv = { ...stackEnv, scope: name };
    const eps = b.eps ?? this.eps;
    const [B, T0, H] = st.xr.shape as [number, number, number];
    // lastOnly: after attention's projections (every position's keys and values), only the last position goes on
    const T = lastOnly ? 1 : T0;
    const keep = (s: AttentionState): AttentionState => (lastOnly ? b.attention.lastQueries!(s) : s);
    const narrow = (t: Tensor): Tensor => (lastOnly ? t.slice(1, T0 - 1, T0) : t);
    const attnOnRoutedFree = c.attnReadsRoutedFree && st.routedFreeValid;
    // attention part A on x~ runs while the previous combine is in flight; in the all-reduce form nothing of the
    // MoE communicates before its experts run, so part B runs there too: the whole attention hides the previous
    // layer's routed all-reduce
    let partA = attnOnRoutedFree
      ? compute(env, `${name}.attn.A`, () => keep(b.attention.partA(rmsNorm(st.xr, b.inputNorm, eps), positions, env))) : null;
    const early = partA && allReduceForm ? compute(env, `${name}.attn.B`, () => b.attention.partB(partA!)) : null;
    const xAll = await this.full(st, env, name);
    partA ??= compute(env, `${name}.attn.A`, () => keep(b.attention.partA(rmsNorm(xAll, b.inputNorm, eps), positions, env)));
    const x = narrow(xAll);
    const moe = isMoE(b.mlp) ? b.mlp : null;
    const shared: MlpLike | null = moe ? moe.shared : (b.mlp as MlpLike);

    // MLP input before attention part B (FarSkip): routing, and the exchange of per-expert counts in flight
    // while part B runs ...
    let u: Tensor | null = null;
    let routedTokens: RoutedTokens | null = null;
    let dispatched: DispatchedTokens | null = null;
    if (c.mlpReadsPreAttention) {
      u = compute(env, `${name}.norm2`, () => rmsNorm(x, b.postAttentionNorm, eps).reshape(B * T, H));
      if (moe) routedTokens = moe.begin(u, env);
      if (routedTokens && env.schedule === 'reference') dispatched = await routedTokens.dispatch();
    }
    const aPartial = early ?? compute(env, `${name}.attn.B`, () => b.attention.partB(partA!));

    // ... or after it (original connectivity: h = x + a)
    let a: Tensor | null = null;
    let h: Tensor | null = null;
    let fused: Pending<Tensor> | null = null; // all-reduce form: reduce(a_partial + s_partial)
    let aReduced: Pending<Tensor> | null = null;
    if (!u) {
      a = await (await issued(env, allReduceTensor(aPartial, b.attention.reduceGroup, env, `${name}.attn.allReduce`))).wait();
      h = compute(env, `${name}.residual.attn`, () => add(x, a!));
      u = compute(env, `${name}.norm2`, () => rmsNorm(h!, b.postAttentionNorm, eps).reshape(B * T, H));
      if (moe) routedTokens = moe.begin(u, env);
    } else if (allReduceForm && shared) {
      const sPartial = compute(env, `${name}.shared`, () => shared.forward(u!, env).reshape(B, T, H));
      const sum = compute(env, `${name}.fuse`, () => add(aPartial, sPartial));
      fused = await issued(env, allReduceTensor(sum, b.attention.reduceGroup, env, `${name}.attn+shared.allReduce`));
    } else {
      aReduced = await issued(env, allReduceTensor(aPartial, b.attention.reduceGroup, env, `${name}.attn.allReduce`));
    }

    // token dispatch in flight while the shared experts (or the dense MLP) run, then the routed experts, whose
    // combine is in flight while the next layer's attention part A runs
    if (routedTokens && !dispatched) dispatched = await routedTokens.dispatch();
    let sReduced: Pending<Tensor> | null = null;
    if (!fused && shared) {
      const sPartial = compute(env, `${name}.shared`, () => shared.forward(u!, env).reshape(B, T, H));
      sReduced = await issued(env, allReduceTensor(sPartial, shared.reduceGroup, env, `${name}.shared.allReduce`));
    }
    const combined: CombinedTokens | null = dispatched ? await dispatched.experts() : null;

    let xr: Tensor;
    if (fused) {
      const r = await fused.wait();
      xr = compute(env, `${name}.residual`, () => add(x, r));
    } else {
      if (!h) {
        a = await aReduced!.wait();
        h = compute(env, `${name}.residual.attn`, () => add(x, a!));
      }
      const s = sReduced ? await sReduced.wait() : null;
      xr = s ? compute(env, `${name}.residual.shared`, () => add(h!, s)) : h;
    }
    const routed = combined ? { wait: () => combined.finish() } : null;
    return { xr, routed, routedFreeValid: c.converted };
  }

  parameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    this.blocks.forEach((b, k) => {
      const p = `layers.${k}.`;
      out.push([`${p}input_layernorm.weight`, b.inputNorm], [`${p}post_attention_layernorm.weight`, b.postAttentionNorm]);
      for (const [n, t] of b.attention.parameters()) out.push([`${p}self_attn.${n}`, t]);
      for (const [n, t] of b.mlp.parameters()) out.push([`${p}mlp.${n}`, t]);
    });
    out.push(['norm.weight', this.finalNorm]);
    return out;
  }

  /** Parameters split across the expert-parallel group (gradients averaged over dp), the rest over ep × dp. */
  expertParameters(): Set<Tensor> {
    const s = new Set<Tensor>();
    for (const b of this.blocks) if (isMoE(b.mlp)) for (const [, t] of b.mlp.expertParameters()) s.add(t);
    return s;
  }
}

function compute<T>(env: CommEnv, name: string, fn: () => T): T {
  return env.tracer ? env.tracer.compute(name, fn) : fn();
}

