// Hugging Face config.json -> ModelSpec, dispatching on `architectures` (a published checkpoint may say
// model_type 'deepseek_v3' with another architecture; the architecture decides the modeling code).
// Field names and defaults follow the transformers configuration classes of each family.
import { layerPlan } from '@farskip/layers';
import type { FarSkipOptions } from '@farskip/layers';

export type Family = 'mixtral' | 'qwen2_moe' | 'qwen3_moe' | 'olmoe' | 'deepseek_v2' | 'deepseek_v3' | 'llama4';

export const ARCHITECTURES: Record<string, Family> = {
  MixtralForCausalLM: 'mixtral',
  Qwen2MoeForCausalLM: 'qwen2_moe',
  Qwen3MoeForCausalLM: 'qwen3_moe',
  OlmoeForCausalLM: 'olmoe',
  DeepseekV2ForCausalLM: 'deepseek_v2',
  DeepseekV3ForCausalLM: 'deepseek_v3',
  Llama4ForCausalLM: 'llama4',
};

export interface MlaSpec {
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
}

export interface LayerSpec {
  /** routed experts in this layer (false: dense MLP of denseHidden) */
  moe: boolean;
  /** RoPE applied in this layer (Llama-4 interleaves NoPE layers) */
  rope: boolean;
  /** chunked causal attention with this chunk size (Llama-4 'chunked_attention' layers) */
  chunk?: number;
}

export interface ModelSpec {
  family: Family;
  architecture: string;
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ropeTheta: number;
  rmsEps: number;
  tieEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2-MoE) */
  attentionBias: boolean;
  /** 'head': RMSNorm over head_dim (Qwen3-MoE); 'full': RMSNorm over the whole projection (OLMoE);
   *  'l2': weightless L2 norm after RoPE (Llama-4 use_qk_norm) */
  qkNorm: 'none' | 'head' | 'full' | 'l2';
  /** rope pairs: 'half' = (i, i + d/2) (Llama/Qwen); 'interleaved' = (2i, 2i+1) (DeepSeek, Llama-4) */
  ropeStyle: 'half' | 'interleaved';
  mla: MlaSpec | null;
  layerSpecs: LayerSpec[];
  denseHidden: number;
  moe: {
    numExperts: number;
    topK: number;
    expertHidden: number;
    sharedHidden: number;
    sharedGate: boolean;
    scoring: 'softmax' | 'sigmoid';
    renormalize: boolean;
    numGroups?: number;
    topkGroups?: number;
    groupScore?: 'max' | 'top2sum';
    routedScaling: number;
    correctionBias: boolean;
    weightOn: 'output' | 'input';
  };
  /** Llama-4 attention temperature tuning on NoPE layers */
  temperatureTuning: { floorScale: number; attnScale: number } | null;
  /** FarSkip options recorded by a converted checkpoint (config key 'farskip') */
  farskip: Record<string, unknown> | null;
  /** the config as read */
  raw: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function need<T>(c: Json, key: string, what: string, check: (v: unknown) => boolean = (v) => typeof v === 'number' && Number.isFinite(v)): T {
  const v = c[key];
  if (v === undefined || v === null) throw new Error(`config.json (${what}): missing '${key}'`);
  if (!check(v)) throw new Error(`config.json (${what}): '${key}' = ${JSON.stringify(v)} has the wrong type`);
  return v as T;
}
const opt = <T>(c: Json, key: string, dflt: T): T => (c[key] === undefined || c[key] === null ? dflt : (c[key] as T));

/** Parses a config.json object; unknown architectures are an error that lists the supported ones. */
export function parseConfig(raw: Json, source = 'config.json'): ModelSpec {
  const archs = raw.architectures;
  if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== 'string') {
    throw new Error(`${source}: 'architectures' must be a non-empty list of names (one of ${Object.keys(ARCHITECTURES).join(', ')})`);
  }
  const architecture = archs[0] as string;
  const family = ARCHITECTURES[architecture];
  if (!family) throw new Error(`${source}: unsupported architecture '${architecture}'; supported: ${Object.keys(ARCHITECTURES).join(', ')}`);
  const c = (family === 'llama4' && raw.text_config && typeof raw.text_config === 'object') ? { ...(raw.text_config as Json), architectures: archs } : raw;
  const what = architecture;
  const hidden = need<number>(c, 'hidden_size', what);
  const heads = need<number>(c, 'num_attention_heads', what);
  const layers = need<number>(c, 'num_hidden_layers', what);
  const spec: ModelSpec = {
    family, architecture,
    vocabSize: need<number>(c, 'vocab_size', what),
    hidden, layers, heads,
    kvHeads: opt(c, 'num_key_value_heads', heads),
    headDim: opt(c, 'head_dim', hidden / heads),
    ropeTheta: opt(c, 'rope_theta', (c.rope_parameters as Json | undefined)?.rope_theta as number | undefined ?? 10000),
    rmsEps: opt(c, 'rms_norm_eps', 1e-6),
    tieEmbeddings: opt(c, 'tie_word_embeddings', false),
    attentionBias: false,
    qkNorm: 'none',
    ropeStyle: 'half',
    mla: null,
    layerSpecs: [],
    denseHidden: opt(c, 'intermediate_size', 4 * hidden),
    moe: {
      numExperts: 0, topK: 0, expertHidden: 0, sharedHidden: 0, sharedGate: false, scoring: 'softmax', renormalize: false,
      routedScaling: 1, correctionBias: false, weightOn: 'output',
    },
    temperatureTuning: null,
    farskip: (raw.farskip && typeof raw.farskip === 'object') ? raw.farskip as Json : null,
    raw,
  };
  const allMoe = (): LayerSpec[] => Array.from({ length: layers }, () => ({ moe: true, rope: true }));
  const m = spec.moe;
  switch (family) {
    case 'mixtral':
      Object.assign(m, { numExperts: need(c, 'num_local_experts', what), topK: need(c, 'num_experts_per_tok', what), expertHidden: spec.denseHidden, renormalize: true });
      spec.layerSpecs = allMoe();
      spec.rmsEps = opt(c, 'rms_norm_eps', 1e-5);
      spec.ropeTheta = opt(c, 'rope_theta', 1e6);
      break;
    case 'qwen2_moe':
    case 'qwen3_moe': {
      const step = opt(c, 'decoder_sparse_step', 1);
      const dense = new Set(opt<number[]>(c, 'mlp_only_layers', []));
      const E = need<number>(c, 'num_experts', what);
      spec.layerSpecs = Array.from({ length: layers }, (_, i) => ({ moe: !dense.has(i) && E > 0 && (i + 1) % step === 0, rope: true }));
      Object.assign(m, { numExperts: E, topK: need(c, 'num_experts_per_tok', what), expertHidden: need(c, 'moe_intermediate_size', what),
        renormalize: opt(c, 'norm_topk_prob', family === 'qwen3_moe') });
      if (family === 'qwen2_moe') {
        spec.attentionBias = true;
        Object.assign(m, { sharedHidden: opt(c, 'shared_expert_intermediate_size', 0), sharedGate: true });
      } else {
        spec.attentionBias = opt(c, 'attention_bias', false);
        spec.qkNorm = 'head';
      }
      break;
    }
    case 'olmoe':
      Object.assign(m, { numExperts: need(c, 'num_experts', what), topK: need(c, 'num_experts_per_tok', what), expertHidden: spec.denseHidden,
        renormalize: opt(c, 'norm_topk_prob', false) });
      spec.layerSpecs = allMoe();
      spec.qkNorm = 'full';
      spec.rmsEps = opt(c, 'rms_norm_eps', 1e-5);
      if (c.clip_qkv !== undefined && c.clip_qkv !== null) throw new Error(`${source}: OLMoE clip_qkv = ${String(c.clip_qkv)} is not supported (only null)`);
      break;
    case 'deepseek_v2':
    case 'deepseek_v3': {
      const first = opt(c, 'first_k_dense_replace', 0), freq = opt(c, 'moe_layer_freq', 1);
      const E = need<number>(c, 'n_routed_experts', what);
      spec.layerSpecs = Array.from({ length: layers }, (_, i) => ({ moe: E > 0 && i >= first && i % freq === 0, rope: true }));
      spec.mla = {
        qLoraRank: opt<number | null>(c, 'q_lora_rank', null), kvLoraRank: need(c, 'kv_lora_rank', what),
        qkNopeHeadDim: need(c, 'qk_nope_head_dim', what), qkRopeHeadDim: need(c, 'qk_rope_head_dim', what), vHeadDim: need(c, 'v_head_dim', what),
      };
      spec.ropeStyle = 'interleaved';
      spec.headDim = spec.mla.qkNopeHeadDim + spec.mla.qkRopeHeadDim;
      const method = opt<string>(c, 'topk_method', family === 'deepseek_v3' ? 'noaux_tc' : 'greedy');
      const scoring = opt<string>(c, 'scoring_func', family === 'deepseek_v3' ? 'sigmoid' : 'softmax');
      if (scoring !== 'softmax' && scoring !== 'sigmoid') throw new Error(`${source}: scoring_func '${scoring}' is not softmax or sigmoid`);
      if (!['greedy', 'group_limited_greedy', 'noaux_tc'].includes(method)) throw new Error(`${source}: topk_method '${method}' is not greedy, group_limited_greedy or noaux_tc`);
      Object.assign(m, {
        numExperts: E, topK: need(c, 'num_experts_per_tok', what), expertHidden: need(c, 'moe_intermediate_size', what),
        sharedHidden: opt(c, 'n_shared_experts', 0) * need<number>(c, 'moe_intermediate_size', what),
        scoring, renormalize: opt(c, 'norm_topk_prob', false), routedScaling: opt(c, 'routed_scaling_factor', 1),
        correctionBias: method === 'noaux_tc',
      });
      if (method !== 'greedy') Object.assign(m, { numGroups: need(c, 'n_group', what), topkGroups: need(c, 'topk_group', what), groupScore: method === 'noaux_tc' ? 'top2sum' : 'max' });
      break;
    }
    case 'llama4': {
      const step = opt(c, 'interleave_moe_layer_step', 1);
      const moeLayers = new Set(opt<number[] | null>(c, 'moe_layers', null) ?? Array.from({ length: layers }, (_, i) => i).filter((i) => (i + 1) % step === 0));
      const interval = opt(c, 'no_rope_layer_interval', 4);
      const noRope = opt<number[] | null>(c, 'no_rope_layers', null);
      const ropeOf = (i: number): boolean => (noRope && noRope.length ? noRope[i] !== 0 : (i + 1) % interval !== 0);
      const types = opt<string[] | null>(c, 'layer_types', null);
      const chunk = opt<number | null>(c, 'attention_chunk_size', null);
      spec.layerSpecs = Array.from({ length: layers }, (_, i) => {
        const rope = ropeOf(i);
        const chunked = chunk !== null && (types ? types[i] === 'chunked_attention' : rope);
        return { moe: moeLayers.has(i), rope, ...(chunked ? { chunk: chunk! } : {}) };
      });
      spec.ropeStyle = 'interleaved';
      spec.qkNorm = opt(c, 'use_qk_norm', true) ? 'l2' : 'none';
      spec.rmsEps = opt(c, 'rms_norm_eps', 1e-5);
      spec.denseHidden = opt(c, 'intermediate_size_mlp', spec.denseHidden);
      Object.assign(m, { numExperts: need(c, 'num_local_experts', what), topK: opt(c, 'num_experts_per_tok', 1), expertHidden: need(c, 'intermediate_size', what),
        sharedHidden: need(c, 'intermediate_size', what), scoring: 'sigmoid', renormalize: false, weightOn: 'input' });
      if (opt(c, 'attn_temperature_tuning', false)) {
        spec.temperatureTuning = { floorScale: opt(c, 'floor_scale', 8192), attnScale: opt(c, 'attn_scale', 0.1) };
      }
      break;
    }
  }
  if (raw.farskip !== undefined && raw.farskip !== null) {
    // validated here, so a bad recorded conversion fails at load rather than at the first forward
    const f = raw.farskip;
    let why = typeof f !== 'object' || Array.isArray(f) ? 'must be an object of FarSkip options' : '';
    if (!why) {
      try { layerPlan(layers, f as FarSkipOptions); } catch (e) { why = (e as Error).message; }
    }
    if (why) throw new Error(`${source}: 'farskip' = ${JSON.stringify(f)} is invalid: ${why}`);
  }
  if (!Number.isInteger(spec.headDim)) throw new Error(`${source}: hidden_size ${hidden} is not divisible by num_attention_heads ${heads}; give head_dim`);
  return spec;
}
