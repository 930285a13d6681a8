// A causal MoE language model of one of the supported families, built on @farskip/layers' FarSkipStack so
// that the same weights run with the original or the FarSkip connectivity, on one rank or on a TP/EP mesh.
//   logits = lm_head(FinalNorm(stack(embed(ids))))
import { embedding, linear } from '@farskip/kernels';
import { Attention, FarSkipStack, gatherShard, MoE, ParallelContext, shardOf, SwiGluMlp } from '@farskip/layers';
import type { BlockModules, FarSkipOptions, MoEForm, Schedule, Tracer } from '@farskip/layers';
import { Tensor } from '@farskip/tensor';
import type { LayerSpec, ModelSpec } from './config.js';
import { MlaAttention } from './mla.js';
import { moeNames, stackExperts, WeightReader } from './weights.js';
import type { Initializer, TensorSource } from './weights.js';

export interface LoadOptions {
  ctx?: ParallelContext;
  /** 'all-to-all' (training, EP) or 'all-reduce' (inference with experts split over tp) */
  form?: MoEForm;
  /**
   * Parameter dtype. 'bf16': bf16 weights, activations and gradients (every op computes in f32 and rounds its
   * result; the router scores in f32), and AdamW keeps f32 master weights — Megatron's --bf16 recipe. Default f32.
   */
  dtype?: 'f32' | 'bf16';
}

export interface ForwardOptions {
  /** i32 [T] or [B, T]; default 0..T-1 (or continuing the KV cache) */
  positions?: Tensor;
  schedule?: Schedule;
  tracer?: Tracer;
  /** FarSkip connectivity; default: what the checkpoint's config records (null = original model) */
  farskip?: FarSkipOptions | null;
  /** 'last': the output holds only each sequence's last position ([B, 1, ...]; the last layer is pruned to it) */
  outputs?: 'all' | 'last';
}

/**
 * HF-named tensors of the current parameters, in the checkpoint's layout. `full` maps a parameter to the tensor
 * to export: itself, or (gatherStateDict) the whole tensor gathered from its tensor/expert-parallel shards.
 */
type Exporter = (full: (t: Tensor) => Tensor) => [string, Tensor][];

export class CausalLM {
  /** FarSkip options the model runs with by default (from config.json 'farskip', or set by convertToFarSkip) */
  farskip: FarSkipOptions | null;
  private constructor(
    readonly spec: ModelSpec,
    readonly embed: Tensor,
    readonly stack: FarSkipStack,
    readonly lmHead: Tensor | null,
    readonly ctx: ParallelContext,
    private readonly exporters: Exporter[],
    /** the form the MoE layers were built in (the stack fuses the all-reduce form's collectives) */
    readonly form: MoEForm = 'all-to-all',
  ) {
    this.farskip = (spec.farskip as FarSkipOptions | null) ?? null;
  }

  /** Builds the model from HF-named tensors (strict: missing and unknown tensors are errors). */
  static fromSource(spec: ModelSpec, source: TensorSource, options: LoadOptions = {}, where = 'checkpoint', init?: Initializer): CausalLM {
    const ctx = options.ctx ?? ParallelContext.single();
    const form = options.form ?? 'all-to-all';
    const r = new WeightReader(source, where, init, options.dtype ?? 'f32');
    const { hidden: Hd, vocabSize: V } = spec;
    const exporters: Exporter[] = [];
    const lf = (t: Tensor): Tensor => t.detach().clone().requiresGrad_();
    const embed = lf(r.take('model.embed_tokens.weight', [V, Hd]));
    exporters.push(() => [['model.embed_tokens.weight', embed]]);
    const blocks: BlockModules[] = [];
    for (let i = 0; i < spec.layers; i++) {
      const L = `model.layers.${i}`;
      const ls = spec.layerSpecs[i]!;
      const attention = buildAttention(spec, r, i, ctx, ls);
      exporters.push((full) => attention.parameters().map(([n, t]) => [`${L}.self_attn.${n}`, full(t)]));
      const inputNorm = lf(r.take(`${L}.input_layernorm.weight`, [Hd]));
      const postAttentionNorm = lf(r.take(`${L}.post_attention_layernorm.weight`, [Hd]));
      exporters.push(() => [[`${L}.input_layernorm.weight`, inputNorm], [`${L}.post_attention_layernorm.weight`, postAttentionNorm]]);
      const names = moeNames(spec, i);
      let mlp: MoE | SwiGluMlp;
      if (!ls.moe) {
        const I = spec.denseHidden;
        const d = names.dense;
        mlp = new SwiGluMlp(Hd, { gate: r.take(`${d}.gate_proj.weight`, [I, Hd]), up: r.take(`${d}.up_proj.weight`, [I, Hd]), down: r.take(`${d}.down_proj.weight`, [Hd, I]) }, ctx.tp);
        const m = mlp;
        exporters.push((full) => exportMlp(d, m, full));
      } else {
        mlp = buildMoE(spec, r, i, ctx, form);
        const m = mlp;
        exporters.push((full) => exportMoE(spec, i, m, full));
      }
      blocks.push({ inputNorm, postAttentionNorm, attention, mlp, eps: spec.rmsEps });
    }
    const finalNorm = lf(r.take('model.norm.weight', [Hd]));
    exporters.push(() => [['model.norm.weight', finalNorm]]);
    let lmHead: Tensor | null = null;
    if (!spec.tieEmbeddings) {
      lmHead = lf(r.take('lm_head.weight', [V, Hd]));
      const h = lmHead;
      exporters.push(() => [['lm_head.weight', h]]);
    } else if (r.has('lm_head.weight')) {
      r.take('lm_head.weight', [V, Hd]); // tied: the file may carry a copy
    }
    r.finish();
    return new CausalLM(spec, embed, new FarSkipStack(blocks, finalNorm, spec.rmsEps), lmHead, ctx, exporters, form);
  }

  /**
   * A new model of `spec` with random weights (seeded): N(0, 0.02) matrices, output projections scaled by
   * 1/sqrt(2·layers) (GPT-2), norms 1, biases 0, as Hugging Face's _init_weights does for these families.
   */
  static random(spec: ModelSpec, seed = 0, options: LoadOptions = {}): CausalLM {
    let n = seed * 100003;
    const init: Initializer = (name, shape) => {
      if (/norm\.weight$|layernorm\.weight$/.test(name)) return Tensor.ones(shape);
      if (/\.bias$|e_score_correction_bias$/.test(name)) return Tensor.zeros(shape);
      const std = /o_proj|down_proj|w2\./.test(name) ? 0.02 / Math.sqrt(2 * spec.layers) : 0.02;
      return Tensor.randn(shape, { seed: n++, std });
    };
    return CausalLM.fromSource(spec, { keys: () => [], get: () => { throw new Error('unreachable'); } }, options, 'random init', init);
  }

  /** ids i32 [B, T] -> logits [B, T, vocab]. */
  async forward(ids: Tensor, options: ForwardOptions = {}): Promise<Tensor> {
    const hidden = await this.hidden(ids, options);
    return linear(hidden, this.lmHead ?? this.embed);
  }

  /** final-normed hidden states [..., hidden] -> logits [..., vocab] */
  logitsOf(hidden: Tensor): Tensor {
    return linear(hidden, this.lmHead ?? this.embed);
  }

  /** ids i32 [B, T] -> final-normed hidden states [B, T, hidden]. */
  async hidden(ids: Tensor, options: ForwardOptions = {}): Promise<Tensor> {
    if (ids.dtype !== 'i32' || ids.ndim !== 2) throw new Error(`CausalLM.forward: ids must be i32 [batch, seq], got ${ids.dtype} [${ids.shape.join(', ')}]`);
    const [B, T] = ids.shape as [number, number];
    const V = this.spec.vocabSize;
    const d = ids.data as Int32Array;
    for (let i = 0; i < d.length; i++) {
      if (d[i]! < 0 || d[i]! >= V) throw new Error(`CausalLM.forward: token id ${d[i]} at position ${i} is outside the vocabulary [0, ${V})`);
    }
    const x = embedding(ids, this.embed).reshape(B, T, this.spec.hidden);
    const positions = options.positions ?? new Tensor(Int32Array.from({ length: T }, (_, i) => i), [T], { dtype: 'i32' });
    return this.stack.forward(x, positions, {
      schedule: options.schedule, tracer: options.tracer,
      farskip: options.farskip === undefined ? this.farskip : options.farskip, form: this.form, outputs: options.outputs,
    });
  }

  /** Every trainable parameter (this rank's shards), named like the checkpoint's modules. */
  parameters(): [string, Tensor][] {
    const p: [string, Tensor][] = [['model.embed_tokens.weight', this.embed]];
    for (const [n, t] of this.stack.parameters()) p.push([`model.${n}`, t]);
    if (this.lmHead) p.push(['lm_head.weight', this.lmHead]);
    return p;
  }

  /** The tensors of a Hugging Face checkpoint of this model (needs an unsharded model). */
  stateDict(): Map<string, Tensor> {
    if (this.sharded) throw new Error('stateDict: the model is sharded over tp/ep; use gatherStateDict() (every rank calls it) or saveModel, which gathers');
    return new Map(this.exporters.flatMap((e) => e((t) => t)).map(([n, t]) => [n, t.detach()]));
  }

  /** true when tensor or expert parallelism split the weights across ranks */
  get sharded(): boolean {
    return this.ctx.mesh.tp > 1 || this.ctx.mesh.ep > 1;
  }

  /**
   * The whole model's checkpoint tensors on every rank, gathered from the tensor- and expert-parallel shards
   * (a collective: every rank of the world calls it). Equal to stateDict() of the same model on one rank.
   */
  async gatherStateDict(): Promise<Map<string, Tensor>> {
    const full = new Map<Tensor, Tensor>();
    for (const [, t] of this.parameters()) if (shardOf(t)) full.set(t, await gatherShard(t));
    return new Map(this.exporters.flatMap((e) => e((t) => full.get(t) ?? t)).map(([n, t]) => [n, t.detach()]));
  }
}

function buildAttention(spec: ModelSpec, r: WeightReader, i: number, ctx: ParallelContext, ls: LayerSpec): Attention | MlaAttention {
  const useRope = ls.rope;
  const A = `model.layers.${i}.self_attn`;
  const { hidden: Hd, heads: H, kvHeads: Hkv, headDim: D } = spec;
  if (spec.mla) {
    if (ctx.mesh.tp > 1) throw new Error('MLA attention (DeepSeek) does not support tensor parallelism here; use ep/dp');
    const m = spec.mla;
    const qd = m.qkNopeHeadDim + m.qkRopeHeadDim;
    const w = m.qLoraRank === null
      ? { q: r.take(`${A}.q_proj.weight`, [H * qd, Hd]) }
      : { qA: r.take(`${A}.q_a_proj.weight`, [m.qLoraRank, Hd]), qANorm: r.take(`${A}.q_a_layernorm.weight`, [m.qLoraRank]), qB: r.take(`${A}.q_b_proj.weight`, [H * qd, m.qLoraRank]) };
    return new MlaAttention(H, m, {
      ...w,
      kvA: r.take(`${A}.kv_a_proj_with_mqa.weight`, [m.kvLoraRank + m.qkRopeHeadDim, Hd]),
      kvANorm: r.take(`${A}.kv_a_layernorm.weight`, [m.kvLoraRank]),
      kvB: r.take(`${A}.kv_b_proj.weight`, [H * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank]),
      o: r.take(`${A}.o_proj.weight`, [Hd, H * m.vHeadDim]),
    }, spec.ropeTheta, 1e-6); // q_a_layernorm / kv_a_layernorm are built without eps upstream: always 1e-6
  }
  const bias = spec.attentionBias;
  const norm = spec.qkNorm === 'l2' && !useRope ? 'none' : spec.qkNorm;
  return new Attention({
    hidden: Hd, heads: H, kvHeads: Hkv, headDim: D, ropeTheta: spec.ropeTheta, rope: useRope, ropeStyle: spec.ropeStyle,
    qkNorm: norm, normEps: spec.rmsEps, chunkSize: ls.chunk,
    temperatureTuning: !useRope && spec.temperatureTuning ? spec.temperatureTuning : undefined,
  }, {
    q: r.take(`${A}.q_proj.weight`, [H * D, Hd]), k: r.take(`${A}.k_proj.weight`, [Hkv * D, Hd]),
    v: r.take(`${A}.v_proj.weight`, [Hkv * D, Hd]), o: r.take(`${A}.o_proj.weight`, [Hd, H * D]),
    ...(bias ? { qBias: r.take(`${A}.q_proj.bias`, [H * D]), kBias: r.take(`${A}.k_proj.bias`, [Hkv * D]), vBias: r.take(`${A}.v_proj.bias`, [Hkv * D]) } : {}),
    ...(norm === 'head' ? { qNorm: r.take(`${A}.q_norm.weight`, [D]), kNorm: r.take(`${A}.k_norm.weight`, [D]) } : {}),
    ...(norm === 'full' ? { qNorm: r.take(`${A}.q_norm.weight`, [H * D]), kNorm: r.take(`${A}.k_norm.weight`, [Hkv * D]) } : {}),
  }, ctx.tp);
}

function buildMoE(spec: ModelSpec, r: WeightReader, i: number, ctx: ParallelContext, form: MoEForm): MoE {
  const { hidden: Hd } = spec;
  const m = spec.moe;
  const E = m.numExperts, I = m.expertHidden;
  const n = moeNames(spec, i);
  let gate: Tensor, up: Tensor, down: Tensor;
  if (n.fused) {
    // Llama-4: gate_up_proj [E, hidden, 2I] (x @ W: gate then up), down_proj [E, I, hidden]
    const gu = r.take(n.fused.gateUp, [E, Hd, 2 * I]);
    gate = gu.slice(2, 0, I).transpose(1, 2).detach().clone();
    up = gu.slice(2, I, 2 * I).transpose(1, 2).detach().clone();
    down = r.take(n.fused.down, [E, I, Hd]).transpose(1, 2).detach().clone();
  } else {
    gate = stackExperts(Array.from({ length: E }, (_, e) => r.take(n.expert(e, 'gate'), [I, Hd])));
    up = stackExperts(Array.from({ length: E }, (_, e) => r.take(n.expert(e, 'up'), [I, Hd])));
    down = stackExperts(Array.from({ length: E }, (_, e) => r.take(n.expert(e, 'down'), [Hd, I])));
  }
  const S = m.sharedHidden;
  const shared = n.shared && S > 0 ? {
    gate: r.take(`${n.shared}.gate_proj.weight`, [S, Hd]), up: r.take(`${n.shared}.up_proj.weight`, [S, Hd]), down: r.take(`${n.shared}.down_proj.weight`, [Hd, S]),
    ...(n.sharedGate ? { outputGate: r.take(n.sharedGate, [1, Hd]) } : {}),
  } : undefined;
  const router = { gate: r.take(n.router, [E, Hd]), ...(m.correctionBias ? { correctionBias: r.take(n.bias, [E]) } : {}) };
  return new MoE({ hidden: Hd, expertHidden: I, numExperts: E, topK: m.topK, scoring: m.scoring, renormalize: m.renormalize, numGroups: m.numGroups,
    topkGroups: m.topkGroups, groupScore: m.groupScore, routedScaling: m.routedScaling, weightOn: m.weightOn },
  { router, experts: { gate, up, down }, shared }, { expertGroup: form === 'all-reduce' ? ctx.tp : ctx.ep, sharedGroup: ctx.tp, form });
}

function exportMlp(prefix: string, m: SwiGluMlp, full: (t: Tensor) => Tensor): [string, Tensor][] {
  return [[`${prefix}.gate_proj.weight`, full(m.wGate)], [`${prefix}.up_proj.weight`, full(m.wUp)], [`${prefix}.down_proj.weight`, full(m.wDown)]];
}

function exportMoE(spec: ModelSpec, i: number, m: MoE, full: (t: Tensor) => Tensor): [string, Tensor][] {
  const n = moeNames(spec, i);
  // this rank's experts [E/ep, ...] numbered from firstExpert, or all of them once gathered
  const w1 = full(m.w1), w3 = full(m.w3), w2 = full(m.w2);
  const e0 = w1 === m.w1 ? m.firstExpert : 0, E = w1.shape[0]!;
  const out: [string, Tensor][] = [[n.router, m.router.weight]];
  if (m.router.bias) out.push([n.bias, new Tensor(Float32Array.from(m.router.bias), [m.router.bias.length])]);
  if (n.fused) {
    const gu = new Tensor(new Float32Array(w1.numel * 2), [E, spec.hidden, 2 * spec.moe.expertHidden]);
    // rebuilt lazily in the checkpoint layout; the trainable tensors stay the stacked [E, out, in] ones
    out.push([n.fused.gateUp, fuseGateUp(w1, w3, gu)], [n.fused.down, w2.detach().transpose(1, 2).detach().clone()]);
  } else {
    for (let e = 0; e < E; e++) {
      out.push([n.expert(e0 + e, 'gate'), w1.slice(0, e, e + 1).reshape(w1.shape[1]!, w1.shape[2]!)]);
      out.push([n.expert(e0 + e, 'up'), w3.slice(0, e, e + 1).reshape(w3.shape[1]!, w3.shape[2]!)]);
      out.push([n.expert(e0 + e, 'down'), w2.slice(0, e, e + 1).reshape(w2.shape[1]!, w2.shape[2]!)]);
    }
  }
  if (m.shared && n.shared) {
    out.push(...exportMlp(n.shared, m.shared, full));
    if (m.shared.wOutGate && n.sharedGate) out.push([n.sharedGate, m.shared.wOutGate]);
  }
  return out;
}

/** [E, I, H] gate and up -> [E, H, 2I] (gate columns first), the Llama-4 fused layout. */
function fuseGateUp(gate: Tensor, up: Tensor, out: Tensor): Tensor {
  const [E, I, H] = gate.shape as [number, number, number];
  const g = gate.data as Float32Array, u = up.data as Float32Array, o = out.data as Float32Array;
  for (let e = 0; e < E; e++) for (let i = 0; i < I; i++) for (let h = 0; h < H; h++) {
    o[(e * H + h) * 2 * I + i] = g[(e * I + i) * H + h]!;
    o[(e * H + h) * 2 * I + I + i] = u[(e * I + i) * H + h]!;
  }
  return out;
}
