#!/usr/bin/env python3
"""Golden fixtures for tiny Hugging Face MoE checkpoints.

An implementation that is independent of @farskip/models: plain PyTorch (Debian's python3-torch, no
`transformers`, no `safetensors` package) written against the upstream Hugging Face modeling code
(see tooling/golden/README.md for the files and commits followed, and every simplification).

For every family it builds a tiny random float32 model from a fixed seed, runs the full causal-LM forward
(embedding -> decoder layers -> final norm -> lm_head) on a fixed batch of token ids, and writes

    packages/models/__tests__/fixtures/golden/<family>/config.json
    packages/models/__tests__/fixtures/golden/<family>/model.safetensors   (own writer, F32, HF tensor names)
    packages/models/__tests__/fixtures/golden/<family>/golden.json         (input_ids, logits, notes, routing)

Every forward reads its weights by their on-disk Hugging Face names, so a wrong name cannot go unnoticed.
The script checks itself: the safetensors file is read back and the forward re-run from it; a float64 run
must agree with the float32 logits; routing decisions must not sit on a near-tie; alternative formulations
used by other upstream code paths (DeepSeek-V2 complex RoPE vs. remote-code rotate-half RoPE, Llama-4 dense
"all experts" evaluation vs. sparse) must give the same logits.

Run:  /usr/bin/python3 tooling/golden/make_golden.py
"""

import json
import math
import os
import struct
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT_DIR = os.path.join(ROOT, "packages", "models", "__tests__", "fixtures", "golden")

# Fixed input: batch 2, seq 7. Includes the boundary ids 0 and 63 and a repeated id.
INPUT_IDS = [
    [1, 17, 42, 5, 33, 60, 9],
    [2, 8, 8, 63, 0, 21, 47],
]

# A routing decision whose k-th and (k+1)-th candidates differ by less than this (in the space the
# decision is made in: softmax probability, sigmoid score (+bias), or raw logit for Llama-4) is a near-tie
# that a float32 implementation with a different summation order could flip. Seeds are advanced until no
# decision is that close.
MIN_MARGIN = 5e-4

torch.set_num_threads(1)

# Deliberate mistakes, only switched on by --sensitivity (see main): each must move the logits, which shows
# that the fixture catches that mistake in an implementation.
ABLATE = set()


# --------------------------------------------------------------------------------------------------------
# safetensors (own writer / reader)
# --------------------------------------------------------------------------------------------------------


def write_safetensors(path, tensors):
    """tensors: OrderedDict name -> float32 tensor. 8-byte LE header length, JSON header padded with spaces
    to a multiple of 8, then the raw little-endian F32 data in header order."""
    header = OrderedDict()
    header["__metadata__"] = {"format": "pt"}
    blobs = []
    offset = 0
    for name in sorted(tensors.keys()):
        t = tensors[name].detach().to(torch.float32).contiguous().cpu()
        data = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np

    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "header not padded to 8"
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        s, e = info["data_offsets"]
        end_max = max(end_max, e)
        arr = np.frombuffer(raw[base + s : base + e], dtype="<f4").copy().reshape(info["shape"])
        out[name] = torch.from_numpy(arr)
    assert base + end_max == len(raw), "trailing bytes in safetensors file"
    return out


# --------------------------------------------------------------------------------------------------------
# random weights
# --------------------------------------------------------------------------------------------------------


class Init:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)
        self.w = OrderedDict()

    def normal(self, name, shape, std):
        self.w[name] = torch.randn(*shape, generator=self.g, dtype=torch.float32) * std
        return self.w[name]

    def norm(self, name, n):
        # RMSNorm weights around 1 (not exactly 1, so that forgetting the weight is caught)
        self.w[name] = 1.0 + 0.1 * torch.randn(n, generator=self.g, dtype=torch.float32)
        return self.w[name]

    def uniform(self, name, shape, lo, hi):
        self.w[name] = lo + (hi - lo) * torch.rand(*shape, generator=self.g, dtype=torch.float32)
        return self.w[name]

    def linear(self, name, out_f, in_f, std=None, bias=False, bias_std=0.1):
        if std is None:
            std = 1.0 / math.sqrt(in_f)
        self.normal(name + ".weight", (out_f, in_f), std)
        if bias:
            self.normal(name + ".bias", (out_f,), bias_std)

    def mlp(self, prefix, hidden, inter, names=("gate_proj", "up_proj", "down_proj")):
        g, u, d = names
        self.linear(f"{prefix}.{g}", inter, hidden)
        self.linear(f"{prefix}.{u}", inter, hidden)
        self.linear(f"{prefix}.{d}", hidden, inter)


# --------------------------------------------------------------------------------------------------------
# shared math (written to follow the HF modules; works in float32 or float64)
# --------------------------------------------------------------------------------------------------------


def rms_norm(x, w, eps):
    # HF *RMSNorm: x * rsqrt(mean(x^2, -1) + eps), then weight * (...)
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def l2_norm_llama4(x, eps):
    # Llama4TextL2Norm: despite its name, RMS normalisation without a weight
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def linear(x, W, b=None):
    return F.linear(x, W, b)


def swiglu(x, W, prefix, names=("gate_proj", "up_proj", "down_proj")):
    g, u, d = names
    return linear(F.silu(linear(x, W[f"{prefix}.{g}.weight"])) * linear(x, W[f"{prefix}.{u}.weight"]),
                  W[f"{prefix}.{d}.weight"])


def inv_freq(dim, theta, dtype):
    # default rope: 1 / theta^(arange(0, dim, 2) / dim)   (float32 upstream; float64 in the cross-check run)
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype) / dim))


def rope_angles(seq, dim, theta, dtype):
    pos = torch.arange(seq, dtype=dtype)
    return pos[:, None] * inv_freq(dim, theta, dtype)[None, :]  # [S, dim/2]


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rope_neox(x, ang):
    """Llama-style 'rotate-half' RoPE. x [B, H, S, D]; dims i and i + D/2 form a pair rotated by freq i."""
    emb = torch.cat((ang, ang), dim=-1)  # [S, D]
    return x * emb.cos() + rotate_half(x) * emb.sin()


def rope_deinterleave_rotate_half(x, ang):
    """DeepSeek remote code (V2/V3) and HF DeepseekV3 (rope_interleave=True): view (D/2, 2) -> transpose ->
    reshape, i.e. reorder [x0,x1,x2,x3,...] to [x0,x2,...,x1,x3,...], then rotate-half RoPE. The result is
    in the de-interleaved order (dims i and i + D/2 are the rotated pair (2i, 2i+1) of the input)."""
    *lead, d = x.shape
    x = x.view(*lead, d // 2, 2).transpose(-1, -2).reshape(*lead, d)
    return rope_neox(x, ang)


def rope_complex_interleaved(x, ang):
    """HF DeepseekV2 / Llama-4 (freqs_cis): consecutive pairs (2i, 2i+1) are a complex number rotated by
    freq i; the output stays interleaved. x [..., S, D] with ang broadcastable to [..., S, D/2]."""
    xr = x.reshape(*x.shape[:-1], -1, 2)
    a, b = xr[..., 0], xr[..., 1]
    c, s = ang.cos(), ang.sin()
    return torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2)


def causal_mask(seq, chunk=None):
    i = torch.arange(seq)[:, None]
    j = torch.arange(seq)[None, :]
    allowed = j <= i
    if chunk is not None:
        allowed = allowed & ((i // chunk) == (j // chunk))
    return allowed  # [S, S] bool


def sdpa(q, k, v, scale, allowed):
    """q [B,H,S,D], k [B,Hkv,S,D], v [B,Hkv,S,Dv] -> [B,S,H*Dv] (eager_attention_forward + repeat_kv)."""
    h, hkv = q.shape[1], k.shape[1]
    if h != hkv:
        k = k.repeat_interleave(h // hkv, dim=1)  # query head i uses kv head i // (H/Hkv)
        v = v.repeat_interleave(h // hkv, dim=1)
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    s = s.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(s, dim=-1)
    o = torch.matmul(p, v)
    b, _, sq, dv = o.shape
    return o.transpose(1, 2).reshape(b, sq, h * dv)


def topk_margin(vals, k):
    """smallest gap between the k-th and (k+1)-th largest value over rows (inf if k == n)."""
    if k >= vals.shape[-1]:
        return float("inf")
    sv = torch.sort(vals, dim=-1, descending=True).values
    return float((sv[:, k - 1] - sv[:, k]).min())


class Trace:
    def __init__(self):
        self.routing = OrderedDict()  # layer -> list of sorted expert ids per token
        self.margins = []  # (layer, what, margin)
        self.extra = OrderedDict()

    def route(self, layer, idx):
        self.routing[str(layer)] = [sorted(int(e) for e in row) for row in idx.tolist()]

    def margin(self, layer, what, m):
        self.margins.append((layer, what, m))


def run_experts(x, idx, wts, expert_fn, n_experts):
    """x [T, H]; idx/wts [T, k]. out[t] = sum_j wts[t, j] * expert_{idx[t, j]}(x[t])."""
    out = torch.zeros_like(x)
    for e in range(n_experts):
        tok, slot = torch.where(idx == e)
        if tok.numel() == 0:
            continue
        y = expert_fn(e, x[tok]) * wts[tok, slot, None]
        out.index_add_(0, tok, y)
    return out


# --------------------------------------------------------------------------------------------------------
# families with standard (GQA) attention: mixtral, qwen2_moe, qwen3_moe, olmoe
# --------------------------------------------------------------------------------------------------------


def std_attention(fam, cfg, W, p, x, trace, dtype):
    B, S, Hd = x.shape
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    bias = fam == "qwen2_moe" and cfg.get("qkv_bias", True)
    q = linear(x, W[p + "q_proj.weight"], W.get(p + "q_proj.bias") if bias else None)
    k = linear(x, W[p + "k_proj.weight"], W.get(p + "k_proj.bias") if bias else None)
    v = linear(x, W[p + "v_proj.weight"], W.get(p + "v_proj.bias") if bias else None)
    if fam == "olmoe" and "no_qk_norm" not in ABLATE:
        # OlmoeAttention: RMSNorm over the whole projection (H*D for q, Hkv*D for k) before the head split
        q = rms_norm(q, W[p + "q_norm.weight"], eps)
        k = rms_norm(k, W[p + "k_norm.weight"], eps)
        if cfg.get("clip_qkv") is not None:
            c = cfg["clip_qkv"]
            q, k, v = q.clamp(-c, c), k.clamp(-c, c), v.clamp(-c, c)
    q = q.view(B, S, H, D)
    k = k.view(B, S, Hkv, D)
    v = v.view(B, S, Hkv, D)
    if fam == "qwen3_moe" and "no_qk_norm" not in ABLATE:
        # Qwen3MoeAttention: RMSNorm(head_dim) per head, before RoPE
        q = rms_norm(q, W[p + "q_norm.weight"], eps)
        k = rms_norm(k, W[p + "k_norm.weight"], eps)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    ang = rope_angles(S, D, cfg["rope_theta"], dtype)
    rope = rope_complex_interleaved if "wrong_rope_convention" in ABLATE else rope_neox
    q, k = rope(q, ang), rope(k, ang)
    o = sdpa(q, k, v, D ** -0.5, causal_mask(S))
    return linear(o, W[p + "o_proj.weight"])


def softmax_topk_moe(cfg, W, gate_name, expert_prefix, x, k, n_exp, normalize, trace, layer, names):
    T = x.shape[0]
    logits = linear(x, W[gate_name])
    probs = torch.softmax(logits, dim=-1)
    wts, idx = torch.topk(probs, k, dim=-1)
    if "flip_norm_topk_prob" in ABLATE:
        normalize = not normalize
    if normalize:
        wts = wts / wts.sum(dim=-1, keepdim=True)
    trace.route(layer, idx)
    trace.margin(layer, "softmax top-k", topk_margin(probs, k))
    return run_experts(
        x, idx, wts,
        lambda e, xs: swiglu(xs, W, f"{expert_prefix}.{e}", names),
        n_exp,
    )


def std_mlp(fam, cfg, W, li, x, trace):
    B, S, Hd = x.shape
    xf = x.reshape(B * S, Hd)
    p = f"model.layers.{li}."
    if fam == "mixtral":
        out = softmax_topk_moe(cfg, W, p + "block_sparse_moe.gate.weight", p + "block_sparse_moe.experts", xf,
                               cfg["num_experts_per_tok"], cfg["num_local_experts"], True, trace, li,
                               ("w1", "w3", "w2"))
    elif fam in ("qwen2_moe", "qwen3_moe"):
        sparse = (li not in cfg["mlp_only_layers"]) and (
            cfg["num_experts"] > 0 and (li + 1) % cfg["decoder_sparse_step"] == 0)
        if not sparse:
            return swiglu(x, W, p + "mlp")
        out = softmax_topk_moe(cfg, W, p + "mlp.gate.weight", p + "mlp.experts", xf, cfg["num_experts_per_tok"],
                               cfg["num_experts"], cfg["norm_topk_prob"], trace, li,
                               ("gate_proj", "up_proj", "down_proj"))
        if fam == "qwen2_moe":
            sh = swiglu(xf, W, p + "mlp.shared_expert")
            gate = 1.0 if "no_shared_expert_gate" in ABLATE else torch.sigmoid(
                linear(xf, W[p + "mlp.shared_expert_gate.weight"]))
            out = out + gate * sh
    elif fam == "olmoe":
        out = softmax_topk_moe(cfg, W, p + "mlp.gate.weight", p + "mlp.experts", xf, cfg["num_experts_per_tok"],
                               cfg["num_experts"], cfg["norm_topk_prob"], trace, li,
                               ("gate_proj", "up_proj", "down_proj"))
    else:
        raise ValueError(fam)
    return out.view(B, S, Hd)


def forward_std(fam, cfg, W, ids, dtype, trace, variant=None):
    eps = cfg["rms_norm_eps"]
    h = W["model.embed_tokens.weight"][ids]
    for li in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{li}."
        a = std_attention(fam, cfg, W, p + "self_attn.", rms_norm(h, W[p + "input_layernorm.weight"], eps), trace,
                          dtype)
        h = h + a
        m = std_mlp(fam, cfg, W, li, rms_norm(h, W[p + "post_attention_layernorm.weight"], eps), trace)
        h = h + m
    h = rms_norm(h, W["model.norm.weight"], eps)
    return linear(h, W["lm_head.weight"])


# --------------------------------------------------------------------------------------------------------
# DeepSeek-V2 / V3 (MLA + DeepSeekMoE)
# --------------------------------------------------------------------------------------------------------

DS_INNER_NORM_EPS = 1e-6  # q_a_layernorm / kv_a_layernorm are built without eps -> RMSNorm default 1e-6


def mla_attention(cfg, W, p, x, dtype, rope_style):
    B, S, _ = x.shape
    H = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    r = cfg["kv_lora_rank"]
    if cfg["q_lora_rank"] is None:
        q = linear(x, W[p + "q_proj.weight"])
    else:
        q = linear(rms_norm(linear(x, W[p + "q_a_proj.weight"]), W[p + "q_a_layernorm.weight"], DS_INNER_NORM_EPS),
                   W[p + "q_b_proj.weight"])
    q = q.view(B, S, H, dn + dr).transpose(1, 2)
    q_nope, q_pe = torch.split(q, [dn, dr], dim=-1)
    ckv = linear(x, W[p + "kv_a_proj_with_mqa.weight"])
    c, k_pe = torch.split(ckv, [r, dr], dim=-1)
    kv = linear(rms_norm(c, W[p + "kv_a_layernorm.weight"], DS_INNER_NORM_EPS), W[p + "kv_b_proj.weight"])
    kv = kv.view(B, S, H, dn + dv).transpose(1, 2)
    k_nope, v = torch.split(kv, [dn, dv], dim=-1)
    k_pe = k_pe.view(B, 1, S, dr)  # one rope key shared by all heads (MQA-style)
    ang = rope_angles(S, dr, cfg["rope_theta"], dtype)
    if rope_style == "deinterleave":
        q_pe, k_pe = rope_deinterleave_rotate_half(q_pe, ang), rope_deinterleave_rotate_half(k_pe, ang)
    elif rope_style == "complex":
        q_pe, k_pe = rope_complex_interleaved(q_pe, ang), rope_complex_interleaved(k_pe, ang)
    elif rope_style == "neox":
        q_pe, k_pe = rope_neox(q_pe, ang), rope_neox(k_pe, ang)
    else:
        raise ValueError(rope_style)
    k_pe = k_pe.expand(B, H, S, dr)
    qs = torch.cat((q_nope, q_pe), dim=-1)
    ks = torch.cat((k_nope, k_pe), dim=-1)
    scale = (dn + dr) ** -0.5  # no rope_scaling (yarn mscale) in the fixtures
    o = sdpa(qs, ks, v, scale, causal_mask(S))
    return linear(o, W[p + "o_proj.weight"])


def ds_v2_route(cfg, logits, trace, li, hf_transformers_semantics=False):
    k = cfg["num_experts_per_tok"]
    E = cfg["n_routed_experts"]
    T = logits.shape[0]
    scores = torch.softmax(logits, dim=-1)
    if cfg["topk_method"] == "greedy":
        wts, idx = torch.topk(scores, k, dim=-1, sorted=False)
        trace.margin(li, "greedy top-k", topk_margin(scores, k))
    elif cfg["topk_method"] == "group_limited_greedy":
        G, TG = cfg["n_group"], cfg["topk_group"]
        group_scores = scores.view(T, G, -1).max(dim=-1).values
        group_idx = torch.topk(group_scores, TG, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(T, G, E // G).reshape(T, -1)
        tmp = scores.masked_fill(~score_mask.bool(), 0.0)
        wts, idx = torch.topk(tmp, k, dim=-1, sorted=False)
        trace.margin(li, "group max top-topk_group", topk_margin(group_scores, TG))
        trace.margin(li, "masked top-k", topk_margin(tmp, k))
    else:
        raise ValueError(cfg["topk_method"])
    if "no_routed_scaling_factor" in ABLATE:
        pass
    elif hf_transformers_semantics:
        # HF transformers DeepseekV2Moe.route_tokens_to_experts: always * routed_scaling_factor
        wts = wts * cfg["routed_scaling_factor"]
    elif k > 1 and cfg["norm_topk_prob"]:
        # deepseek-ai remote code MoEGate
        wts = wts / (wts.sum(dim=-1, keepdim=True) + 1e-20)
    else:
        wts = wts * cfg["routed_scaling_factor"]
    return idx, wts


def ds_v3_route(cfg, logits, bias, trace, li):
    k = cfg["num_experts_per_tok"]
    E = cfg["n_routed_experts"]
    G, TG = cfg["n_group"], cfg["topk_group"]
    scores = torch.sigmoid(logits)
    sfc = scores if "v3_ignore_bias" in ABLATE else scores + bias[None, :]  # bias only for choosing
    group_scores = sfc.view(-1, G, E // G).topk(2, dim=-1)[0].sum(dim=-1)
    group_idx = torch.topk(group_scores, TG, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(-1, G, E // G).reshape(-1, E)
    masked = sfc.masked_fill(~score_mask.bool(), 0.0)
    idx = torch.topk(masked, k, dim=-1, sorted=False)[1]
    wts = (sfc if "v3_bias_in_weights" in ABLATE else scores).gather(1, idx)  # weights: UN-biased scores
    if cfg["norm_topk_prob"]:
        wts = wts / (wts.sum(dim=-1, keepdim=True) + 1e-20)
    if "no_routed_scaling_factor" not in ABLATE:
        wts = wts * cfg["routed_scaling_factor"]
    trace.margin(li, "group top2-sum top-topk_group", topk_margin(group_scores, TG))
    trace.margin(li, "masked biased top-k", topk_margin(masked, k))
    # HF fills masked experts with 0.0, deepseek-ai inference/model.py with -inf: identical only if every
    # un-masked biased score is > 0. Record the minimum so the fixture is valid for both.
    unmasked_min = float(sfc.masked_fill(~score_mask.bool(), float("inf")).min())
    trace.margin(li, "min unmasked biased score (>0 required)", unmasked_min)
    # how often does the bias change the selection (vs. plain top-k on sigmoid scores inside the same groups)?
    plain = torch.topk(scores.masked_fill(~score_mask.bool(), -1.0), k, dim=-1)[1]
    changed = sum(
        1 for a, b in zip(idx.tolist(), plain.tolist()) if sorted(a) != sorted(b))
    trace.extra.setdefault("tokens_whose_selection_the_bias_changed", OrderedDict())[str(li)] = changed
    return idx, wts


def ds_mlp(cfg, W, li, x, trace, fam, hf_v2_semantics=False):
    B, S, Hd = x.shape
    p = f"model.layers.{li}.mlp."
    is_moe = (cfg["n_routed_experts"] is not None and li >= cfg["first_k_dense_replace"]
              and li % cfg.get("moe_layer_freq", 1) == 0)
    if not is_moe:
        return swiglu(x, W, p[:-1])
    xf = x.reshape(B * S, Hd)
    logits = linear(xf, W[p + "gate.weight"])
    if fam == "deepseek_v3":
        idx, wts = ds_v3_route(cfg, logits, W[p + "gate.e_score_correction_bias"], trace, li)
    else:
        idx, wts = ds_v2_route(cfg, logits, trace, li, hf_v2_semantics)
    trace.route(li, idx)
    out = run_experts(xf, idx, wts, lambda e, xs: swiglu(xs, W, f"{p}experts.{e}"), cfg["n_routed_experts"])
    out = out + swiglu(xf, W, p + "shared_experts")
    return out.view(B, S, Hd)


def forward_ds(fam, cfg, W, ids, dtype, trace, variant=None):
    eps = cfg["rms_norm_eps"]
    # reference path: remote-code / HF-V3 rope (de-interleave + rotate-half); "hf_v2" variant: HF transformers
    # DeepseekV2 (complex interleaved rope, routed_scaling_factor always applied)
    rope_style = "complex" if variant == "hf_v2" else "deinterleave"
    if "wrong_rope_convention" in ABLATE:
        rope_style = "neox"
    h = W["model.embed_tokens.weight"][ids]
    for li in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{li}."
        h = h + mla_attention(cfg, W, p + "self_attn.", rms_norm(h, W[p + "input_layernorm.weight"], eps), dtype,
                              rope_style)
        h = h + ds_mlp(cfg, W, li, rms_norm(h, W[p + "post_attention_layernorm.weight"], eps), trace, fam,
                       variant == "hf_v2")
    h = rms_norm(h, W["model.norm.weight"], eps)
    return linear(h, W["lm_head.weight"])


# --------------------------------------------------------------------------------------------------------
# Llama-4 text (Llama4ForCausalLM)
# --------------------------------------------------------------------------------------------------------


def llama4_attention(cfg, W, p, x, li, dtype):
    B, S, _ = x.shape
    H, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    use_rope = bool(cfg["no_rope_layers"][li]) or "l4_rope_every_layer" in ABLATE
    q = linear(x, W[p + "q_proj.weight"]).view(B, S, H, D)
    k = linear(x, W[p + "k_proj.weight"]).view(B, S, Hkv, D)
    v = linear(x, W[p + "v_proj.weight"]).view(B, S, Hkv, D).transpose(1, 2)
    if use_rope:
        ang = rope_angles(S, D, cfg["rope_theta"], dtype)[None, :, None, :]  # [1, S, 1, D/2]
        if "wrong_rope_convention" in ABLATE:
            q = rope_neox(q.transpose(1, 2), ang[0].transpose(0, 1)).transpose(1, 2)
            k = rope_neox(k.transpose(1, 2), ang[0].transpose(0, 1)).transpose(1, 2)
        else:
            q, k = rope_complex_interleaved(q, ang), rope_complex_interleaved(k, ang)
    if cfg["use_qk_norm"] and use_rope and "no_qk_norm" not in ABLATE:
        q = l2_norm_llama4(q, cfg["rms_norm_eps"])
        k = l2_norm_llama4(k, cfg["rms_norm_eps"])
    if cfg["attn_temperature_tuning"] and not use_rope and "l4_no_temperature_tuning" not in ABLATE:
        pos = torch.arange(S, dtype=dtype)
        scales = torch.log1p(torch.floor((pos + 1.0) / cfg["floor_scale"])) * cfg["attn_scale"] + 1.0
        q = q * scales.view(1, S, 1, 1)
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    chunked = cfg["layer_types"][li] == "chunked_attention" and "l4_no_chunking" not in ABLATE
    allowed = causal_mask(S, cfg["attention_chunk_size"] if chunked else None)
    o = sdpa(q, k, v, D ** -0.5, allowed)
    return linear(o, W[p + "o_proj.weight"])


def llama4_moe(cfg, W, p, x, li, trace, dense_eval):
    B, S, Hd = x.shape
    E, k = cfg["num_local_experts"], cfg["num_experts_per_tok"]
    xf = x.reshape(B * S, Hd)
    logits = linear(xf, W[p + "router.weight"])
    top_v, top_i = torch.topk(logits, k, dim=1)
    scores = torch.full_like(logits, float("-inf")).scatter_(1, top_i, top_v)
    scores = torch.sigmoid(scores)  # [T, E]; 0 for unselected experts
    trace.route(li, top_i)
    trace.margin(li, "router logit top-k", topk_margin(logits, k))
    gu, dn = W[p + "experts.gate_up_proj"], W[p + "experts.down_proj"]  # [E, H, 2I], [E, I, H]

    def expert(e, xs):
        g, u = torch.matmul(xs, gu[e]).chunk(2, dim=-1)
        return torch.matmul(u * F.silu(g), dn[e])

    if dense_eval:
        # literally as Llama4TextMoe: every expert sees every token, input pre-multiplied by its score
        routed_in = xf.repeat(E, 1) * scores.transpose(0, 1).reshape(-1, 1)
        hs = routed_in.view(E, -1, Hd)
        g, u = torch.bmm(hs, gu).chunk(2, dim=-1)
        routed = torch.bmm(u * F.silu(g), dn).view(E, -1, Hd).sum(dim=0)
    else:
        routed = torch.zeros_like(xf)
        for e in range(E):
            tok = torch.where((top_i == e).any(dim=1))[0]
            if tok.numel():
                # score multiplies the expert INPUT (not the output)
                if "l4_score_on_output" in ABLATE:
                    routed.index_add_(0, tok, expert(e, xf[tok]) * scores[tok, e, None])
                else:
                    routed.index_add_(0, tok, expert(e, xf[tok] * scores[tok, e, None]))
    out = swiglu(xf, W, p + "shared_expert") + routed
    return out.view(B, S, Hd)


def forward_llama4(fam, cfg, W, ids, dtype, trace, variant=None):
    eps = cfg["rms_norm_eps"]
    h = W["model.embed_tokens.weight"][ids]
    for li in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{li}."
        h = h + llama4_attention(cfg, W, p + "self_attn.", rms_norm(h, W[p + "input_layernorm.weight"], eps), li,
                                 dtype)
        x = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        if li in cfg["moe_layers"]:
            h = h + llama4_moe(cfg, W, p + "feed_forward.", x, li, trace, variant == "dense_experts")
        else:
            h = h + swiglu(x, W, p + "feed_forward")
    h = rms_norm(h, W["model.norm.weight"], eps)
    return linear(h, W["lm_head.weight"])


# --------------------------------------------------------------------------------------------------------
# configs + weight builders
# --------------------------------------------------------------------------------------------------------

COMMON = dict(vocab_size=64, hidden_size=32, max_position_embeddings=128, initializer_range=0.02, use_cache=True,
              hidden_act="silu", attention_dropout=0.0, tie_word_embeddings=False)


def cfg_mixtral():
    return OrderedDict(
        architectures=["MixtralForCausalLM"], model_type="mixtral", **COMMON,
        intermediate_size=16, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        rms_norm_eps=1e-5, rope_theta=1000000.0, sliding_window=None, num_experts_per_tok=2, num_local_experts=8,
        output_router_logits=False, router_aux_loss_coef=0.02, router_jitter_noise=0.0,
        pad_token_id=None, bos_token_id=1, eos_token_id=2, torch_dtype="float32")


def cfg_qwen2_moe():
    return OrderedDict(
        architectures=["Qwen2MoeForCausalLM"], model_type="qwen2_moe", **COMMON,
        intermediate_size=48, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        rms_norm_eps=1e-6, rope_theta=1000000.0, rope_scaling=None, use_sliding_window=False, sliding_window=None,
        max_window_layers=3, decoder_sparse_step=1, moe_intermediate_size=16, shared_expert_intermediate_size=40,
        num_experts_per_tok=2, num_experts=8, norm_topk_prob=False, output_router_logits=False,
        router_aux_loss_coef=0.001, mlp_only_layers=[1], qkv_bias=True,
        bos_token_id=None, eos_token_id=None, torch_dtype="float32")


def cfg_qwen3_moe():
    return OrderedDict(
        architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", **COMMON,
        intermediate_size=48, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        rms_norm_eps=1e-6, rope_theta=1000000.0, rope_scaling=None, attention_bias=False, use_sliding_window=False,
        sliding_window=None, max_window_layers=3, decoder_sparse_step=1, moe_intermediate_size=16,
        num_experts_per_tok=2, num_experts=8, norm_topk_prob=True, output_router_logits=False,
        router_aux_loss_coef=0.001, mlp_only_layers=[], bos_token_id=None, eos_token_id=None,
        torch_dtype="float32")


def cfg_olmoe():
    return OrderedDict(
        architectures=["OlmoeForCausalLM"], model_type="olmoe", **COMMON,
        intermediate_size=16, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None, attention_bias=False, clip_qkv=None,
        num_experts_per_tok=2, num_experts=8, norm_topk_prob=False, output_router_logits=False,
        router_aux_loss_coef=0.01, pad_token_id=1, bos_token_id=None, eos_token_id=2, torch_dtype="float32")


def _ds_common():
    return dict(
        intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=4, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12,
        first_k_dense_replace=1, moe_layer_freq=1, rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None,
        attention_bias=False, pretraining_tp=1, ep_size=1, aux_loss_alpha=0.001, seq_aux=True,
        pad_token_id=None, bos_token_id=0, eos_token_id=1, torch_dtype="float32")


def cfg_deepseek_v2_lite():
    return OrderedDict(
        architectures=["DeepseekV2ForCausalLM"], model_type="deepseek_v2", **COMMON, **_ds_common(),
        q_lora_rank=None, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, topk_method="greedy",
        n_group=1, topk_group=1, scoring_func="softmax", norm_topk_prob=False, routed_scaling_factor=1.5)


def cfg_deepseek_v2_grouped():
    return OrderedDict(
        architectures=["DeepseekV2ForCausalLM"], model_type="deepseek_v2", **COMMON, **_ds_common(),
        q_lora_rank=24, n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=2,
        topk_method="group_limited_greedy", n_group=4, topk_group=2, scoring_func="softmax", norm_topk_prob=False,
        routed_scaling_factor=2.0)


def cfg_deepseek_v3():
    c = _ds_common()
    c["moe_intermediate_size"] = 12
    return OrderedDict(
        architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3", **COMMON, **c,
        q_lora_rank=24, n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=3, topk_method="noaux_tc",
        n_group=4, topk_group=2, scoring_func="sigmoid", norm_topk_prob=True, routed_scaling_factor=2.5,
        rope_interleave=True)


def cfg_llama4():
    n_layers = 4
    no_rope_layers = [int((i + 1) % 4 != 0) for i in range(n_layers)]  # default with no_rope_layer_interval=4
    step = 2
    return OrderedDict(
        architectures=["Llama4ForCausalLM"], model_type="llama4_text", **COMMON,
        intermediate_size=16, intermediate_size_mlp=48, num_hidden_layers=n_layers, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5, rope_theta=500000.0, rope_scaling=None,
        attention_bias=False, num_experts_per_tok=1, num_local_experts=4,
        moe_layers=list(range(step - 1, n_layers, step)), interleave_moe_layer_step=step, use_qk_norm=True,
        output_router_logits=False, router_aux_loss_coef=0.001, router_jitter_noise=0.0,
        no_rope_layers=no_rope_layers, no_rope_layer_interval=4, attention_chunk_size=4,
        layer_types=["chunked_attention" if r else "full_attention" for r in no_rope_layers],
        attn_temperature_tuning=True, floor_scale=2, attn_scale=0.5,
        pad_token_id=None, bos_token_id=1, eos_token_id=2, torch_dtype="float32")


EMB_STD = 0.5
HEAD_STD = 0.25
ROUTER_STD = 0.35


def build_std(fam, cfg, seed):
    I = Init(seed)
    Hd, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or Hd // H
    I.normal("model.embed_tokens.weight", (cfg["vocab_size"], Hd), EMB_STD)
    for li in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{li}."
        I.norm(p + "input_layernorm.weight", Hd)
        bias = fam == "qwen2_moe"
        I.linear(p + "self_attn.q_proj", H * D, Hd, bias=bias)
        I.linear(p + "self_attn.k_proj", Hkv * D, Hd, bias=bias)
        I.linear(p + "self_attn.v_proj", Hkv * D, Hd, bias=bias)
        I.linear(p + "self_attn.o_proj", Hd, H * D)
        if fam == "olmoe":
            I.norm(p + "self_attn.q_norm.weight", H * D)
            I.norm(p + "self_attn.k_norm.weight", Hkv * D)
        if fam == "qwen3_moe":
            I.norm(p + "self_attn.q_norm.weight", D)
            I.norm(p + "self_attn.k_norm.weight", D)
        I.norm(p + "post_attention_layernorm.weight", Hd)
        if fam == "mixtral":
            I.normal(p + "block_sparse_moe.gate.weight", (cfg["num_local_experts"], Hd), ROUTER_STD)
            for e in range(cfg["num_local_experts"]):
                I.mlp(f"{p}block_sparse_moe.experts.{e}", Hd, cfg["intermediate_size"], ("w1", "w3", "w2"))
        elif fam in ("qwen2_moe", "qwen3_moe"):
            sparse = (li not in cfg["mlp_only_layers"]) and (
                cfg["num_experts"] > 0 and (li + 1) % cfg["decoder_sparse_step"] == 0)
            if sparse:
                I.normal(p + "mlp.gate.weight", (cfg["num_experts"], Hd), ROUTER_STD)
                for e in range(cfg["num_experts"]):
                    I.mlp(f"{p}mlp.experts.{e}", Hd, cfg["moe_intermediate_size"])
                if fam == "qwen2_moe":
                    I.mlp(p + "mlp.shared_expert", Hd, cfg["shared_expert_intermediate_size"])
                    I.normal(p + "mlp.shared_expert_gate.weight", (1, Hd), 0.3)
            else:
                I.mlp(p + "mlp", Hd, cfg["intermediate_size"])
        elif fam == "olmoe":
            I.normal(p + "mlp.gate.weight", (cfg["num_experts"], Hd), ROUTER_STD)
            for e in range(cfg["num_experts"]):
                I.mlp(f"{p}mlp.experts.{e}", Hd, cfg["intermediate_size"])
    I.norm("model.norm.weight", Hd)
    I.normal("lm_head.weight", (cfg["vocab_size"], Hd), HEAD_STD)
    return I.w


def build_ds(fam, cfg, seed):
    I = Init(seed)
    Hd, H = cfg["hidden_size"], cfg["num_attention_heads"]
    dn, dr, dv, r = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    I.normal("model.embed_tokens.weight", (cfg["vocab_size"], Hd), EMB_STD)
    for li in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{li}."
        I.norm(p + "input_layernorm.weight", Hd)
        a = p + "self_attn."
        if cfg["q_lora_rank"] is None:
            I.linear(a + "q_proj", H * (dn + dr), Hd)
        else:
            I.linear(a + "q_a_proj", cfg["q_lora_rank"], Hd)
            I.norm(a + "q_a_layernorm.weight", cfg["q_lora_rank"])
            I.linear(a + "q_b_proj", H * (dn + dr), cfg["q_lora_rank"])
        I.linear(a + "kv_a_proj_with_mqa", r + dr, Hd)
        I.norm(a + "kv_a_layernorm.weight", r)
        I.linear(a + "kv_b_proj", H * (dn + dv), r)
        I.linear(a + "o_proj", Hd, H * dv)
        I.norm(p + "post_attention_layernorm.weight", Hd)
        m = p + "mlp."
        if li >= cfg["first_k_dense_replace"]:
            E = cfg["n_routed_experts"]
            I.normal(m + "gate.weight", (E, Hd), ROUTER_STD)
            if fam == "deepseek_v3":
                # positive, non-trivial correction bias (see ds_v3_route on why positive)
                I.uniform(m + "gate.e_score_correction_bias", (E,), 0.02, 0.35)
            for e in range(E):
                I.mlp(f"{m}experts.{e}", Hd, cfg["moe_intermediate_size"])
            I.mlp(m + "shared_experts", Hd, cfg["moe_intermediate_size"] * cfg["n_shared_experts"])
        else:
            I.mlp(m[:-1], Hd, cfg["intermediate_size"])
    I.norm("model.norm.weight", Hd)
    I.normal("lm_head.weight", (cfg["vocab_size"], Hd), HEAD_STD)
    return I.w


def build_llama4(fam, cfg, seed):
    I = Init(seed)
    Hd, H, Hkv, D = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    E, Ie = cfg["num_local_experts"], cfg["intermediate_size"]
    I.normal("model.embed_tokens.weight", (cfg["vocab_size"], Hd), EMB_STD)
    for li in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{li}."
        I.norm(p + "input_layernorm.weight", Hd)
        I.linear(p + "self_attn.q_proj", H * D, Hd)
        I.linear(p + "self_attn.k_proj", Hkv * D, Hd)
        I.linear(p + "self_attn.v_proj", Hkv * D, Hd)
        I.linear(p + "self_attn.o_proj", Hd, H * D)
        I.norm(p + "post_attention_layernorm.weight", Hd)
        f = p + "feed_forward."
        if li in cfg["moe_layers"]:
            I.normal(f + "router.weight", (E, Hd), ROUTER_STD)
            # fused expert tensors, NOT transposed like nn.Linear: x @ gate_up_proj[e], x @ down_proj[e]
            I.normal(f + "experts.gate_up_proj", (E, Hd, 2 * Ie), 1.0 / math.sqrt(Hd))
            I.normal(f + "experts.down_proj", (E, Ie, Hd), 1.0 / math.sqrt(Ie))
            I.mlp(f + "shared_expert", Hd, Ie)
        else:
            I.mlp(f[:-1], Hd, cfg["intermediate_size_mlp"])
    I.norm("model.norm.weight", Hd)
    I.normal("lm_head.weight", (cfg["vocab_size"], Hd), HEAD_STD)
    return I.w


# --------------------------------------------------------------------------------------------------------
# notes (what each fixture exercises)
# --------------------------------------------------------------------------------------------------------

NOTES = {
    "mixtral": [
        "MixtralForCausalLM; follows modeling_mixtral.py (MixtralSparseMoeBlock, MixtralAttention).",
        "Attention: GQA 4 query heads / 2 kv heads (query head i uses kv head i // 2), head_dim = hidden/heads = 8,"
        " no biases, scale head_dim^-0.5, full causal (sliding_window null).",
        "RoPE: rotate-half (GPT-NeoX) over the full head_dim, theta 1e6, inv_freq = theta^(-2i/d); pairs are"
        " (i, i + d/2).",
        "Router: logits = x @ gate.weight^T; softmax over all 8 experts (float32); top-2; weights renormalised to"
        " sum 1; output = sum_j w_j * w2(silu(w1 x) * w3 x). Every layer is MoE.",
        "RMSNorm eps 1e-5: weight * x * rsqrt(mean(x^2) + eps). tie_word_embeddings false (separate lm_head).",
    ],
    "qwen2_moe": [
        "Qwen2MoeForCausalLM; follows modeling_qwen2_moe.py.",
        "Attention: q/k/v projections WITH bias (qkv_bias true), o_proj without; GQA 4/2, head_dim 8;"
        " rotate-half RoPE theta 1e6; scale head_dim^-0.5; no sliding window.",
        "MoE layers: layer i is sparse iff i not in mlp_only_layers and (i+1) % decoder_sparse_step == 0."
        " Here mlp_only_layers=[1], decoder_sparse_step=1 -> layers 0 and 2 MoE, layer 1 a dense MLP"
        " (model.layers.1.mlp.{gate,up,down}_proj with intermediate_size 48).",
        "Router: softmax over 8 experts, top-2, norm_topk_prob false -> weights are the raw softmax probabilities"
        " (do NOT renormalise).",
        "Shared expert (intermediate 40) on every token, multiplied by sigmoid(shared_expert_gate(x)) (a [1, hidden]"
        " linear, one scalar per token), added to the routed sum.",
        "RMSNorm eps 1e-6. tie_word_embeddings false.",
    ],
    "qwen3_moe": [
        "Qwen3MoeForCausalLM; follows modeling_qwen3_moe.py.",
        "Attention: explicit head_dim 16 with 4 heads (q_proj out 64 != hidden 32, o_proj in 64); GQA 4/2;"
        " no biases (attention_bias false).",
        "q_norm / k_norm: RMSNorm over head_dim (weight shape [16]) applied per head after the head split and"
        " BEFORE RoPE; eps = rms_norm_eps 1e-6.",
        "RoPE rotate-half theta 1e6; scale head_dim^-0.5 (16^-0.5).",
        "Router: softmax over 8 experts, top-2, norm_topk_prob true -> renormalised to sum 1. No shared expert."
        " All layers MoE (decoder_sparse_step 1, mlp_only_layers []).",
    ],
    "olmoe": [
        "OlmoeForCausalLM; follows modeling_olmoe.py.",
        "Attention: q_norm = RMSNorm over the FULL q projection (weight [heads*head_dim = 32]), k_norm = RMSNorm over"
        " the full k projection (weight [kv_heads*head_dim = 16]), applied before the head split and before RoPE;"
        " clip_qkv null (no clamp); GQA 4/2; head_dim 8; no biases.",
        "RoPE rotate-half theta 1e4; scale head_dim^-0.5.",
        "Router: softmax over 8 experts, top-2, norm_topk_prob false (raw probabilities). Experts use"
        " intermediate_size (16). No shared expert. All layers MoE.",
        "RMSNorm eps 1e-5 (also for q_norm/k_norm).",
    ],
    "deepseek_v2_lite": [
        "DeepseekV2ForCausalLM, V2-Lite style; follows deepseek-ai/DeepSeek-V2-Lite modeling_deepseek.py (remote"
        " code) and HF modeling_deepseek_v2.py (both give these logits; the script checks it).",
        "MLA with q_lora_rank null: q = q_proj(x) [heads*(qk_nope+qk_rope) = 4*16]; split per head into"
        " q_nope (8) | q_pe (8).",
        "kv: kv_a_proj_with_mqa(x) -> [kv_lora_rank 16 | k_pe 8]; kv_b_proj(kv_a_layernorm(c)) -> per head"
        " [k_nope 8 | v 12]; k_pe is ONE head shared by all heads. kv_a_layernorm eps is the RMSNorm default 1e-6.",
        "RoPE only on the 8 rope dims, theta 1e4, inv_freq over dim = qk_rope_head_dim. Interleaved pairs"
        " (2i, 2i+1) rotated by freq i (remote code: view(d/2,2).transpose.reshape then rotate-half; HF: complex"
        " multiply) -- same attention scores either way.",
        "q = [q_nope | rope(q_pe)], k = [k_nope | rope(k_pe)]; softmax scale (qk_nope+qk_rope)^-0.5 = 16^-0.5"
        " (no yarn / mscale); v_head_dim 12 != qk head dim 16; o_proj in = heads*v_head_dim = 48.",
        "first_k_dense_replace 1: layer 0 dense MLP (intermediate_size 48); layers 1,2 MoE.",
        "Router (topk_method greedy): softmax over 8 experts (float32), top-2 (unsorted), norm_topk_prob false ->"
        " weights = probabilities * routed_scaling_factor (1.5). Shared experts: 1 x moe_intermediate_size (16)"
        " added unweighted.",
    ],
    "deepseek_v2_grouped": [
        "DeepseekV2ForCausalLM, full-V2 style; same MLA and rope as deepseek_v2_lite but with q_lora_rank 24:"
        " q = q_b_proj(q_a_layernorm(q_a_proj(x))) (q_a_layernorm eps 1e-6).",
        "Router topk_method group_limited_greedy: softmax over 8 experts; 4 groups of 2 consecutive experts;"
        " group score = MAX prob in group; keep topk_group 2 groups; other experts' scores set to 0.0; top-2 of"
        " the masked scores; weights = probabilities * routed_scaling_factor 2.0 (norm_topk_prob false).",
        "n_shared_experts 2 -> shared_experts MLP with intermediate 2*16 = 32.",
        "first_k_dense_replace 1 (layer 0 dense).",
    ],
    "deepseek_v3": [
        "DeepseekV3ForCausalLM; follows HF modeling_deepseek_v3.py (DeepseekV3TopkRouter) and deepseek-ai"
        " DeepSeek-V3 modeling_deepseek.py (MoEGate noaux_tc).",
        "MLA as deepseek_v2_grouped (q_lora_rank 24, kv_lora_rank 16, nope 8, rope 8, v 12); rope_interleave true"
        " (HF apply_rotary_pos_emb_interleave = de-interleave then rotate-half); scale 16^-0.5, no yarn.",
        "Router: logits in float32; scores = sigmoid(logits); choice scores = scores + e_score_correction_bias"
        " (buffer model.layers.N.mlp.gate.e_score_correction_bias, non-zero); 4 groups of 4 experts;"
        " group score = sum of the top-2 choice scores in the group; keep topk_group 2 groups; masked choice"
        " scores (0.0 fill) -> top-3 (num_experts_per_tok 3) indices.",
        "Weights = UN-biased sigmoid scores gathered at those indices, normalised by (sum + 1e-20) (norm_topk_prob"
        " true), then multiplied by routed_scaling_factor 2.5.",
        "All un-masked biased scores are > 0 so the 0.0 fill (HF) and -inf fill (deepseek-ai inference) agree.",
        "Shared expert (n_shared_experts 1 x moe_intermediate_size 12) added unweighted. first_k_dense_replace 1.",
    ],
    "llama4": [
        "Llama4ForCausalLM (model_type llama4_text); follows HF modeling_llama4.py (text part). Tensor names are"
        " the text-only ones (model.layers..., lm_head.weight), no language_model. prefix.",
        "Layers: 4; interleave_moe_layer_step 2 -> moe_layers [1, 3] (MoE), layers 0, 2 dense"
        " (feed_forward.{gate,up,down}_proj with intermediate_size_mlp 48).",
        "no_rope_layers [1,1,1,0] (default, interval 4): layers 0-2 use RoPE, layer 3 is a NoPE layer.",
        "RoPE: complex / interleaved (freqs_cis): consecutive pairs (2i, 2i+1) of each head are rotated by"
        " freq i = theta^(-2i/head_dim), theta 5e5, no rope_scaling; output stays interleaved.",
        "use_qk_norm true: on RoPE layers only, AFTER RoPE, q and k are L2Norm'ed per head ="
        " x * rsqrt(mean(x^2) + rms_norm_eps), no weight.",
        "attn_temperature_tuning true on the NoPE layer: q *= log1p(floor((pos+1)/floor_scale)) * attn_scale + 1"
        " with floor_scale 2, attn_scale 0.5 (pos = 0-based position); chosen small so that it is exercised.",
        "layer_types: RoPE layers use chunked causal attention with attention_chunk_size 4 (key j visible to query"
        " i iff j <= i and i//4 == j//4); the NoPE layer uses full causal attention. Scale head_dim^-0.5.",
        "MoE: router logits = x @ router.weight^T; top-1; score = sigmoid(top logit) (others sigmoid(-inf) = 0);"
        " the score multiplies the expert INPUT: y = ((x*s) @ gate_up_proj[e]) -> gate, up = chunk(2, last dim)"
        " (gate first); (up * silu(gate)) @ down_proj[e]. Fused tensors experts.gate_up_proj [E, hidden,"
        " 2*intermediate] and experts.down_proj [E, intermediate, hidden] (not nn.Linear-transposed).",
        "Shared expert feed_forward.shared_expert.{gate,up,down}_proj (intermediate_size 16) on every token, added.",
        "RMSNorm eps 1e-5. GQA 4/2, head_dim 8, no biases. tie_word_embeddings false.",
    ],
}

FAMILIES = OrderedDict([
    ("mixtral", (cfg_mixtral, build_std, forward_std, 1001, [])),
    ("qwen2_moe", (cfg_qwen2_moe, build_std, forward_std, 2001, [])),
    ("qwen3_moe", (cfg_qwen3_moe, build_std, forward_std, 3001, [])),
    ("olmoe", (cfg_olmoe, build_std, forward_std, 4001, [])),
    ("deepseek_v2_lite", (cfg_deepseek_v2_lite, build_ds, forward_ds, 5001, ["hf_v2"])),
    ("deepseek_v2_grouped", (cfg_deepseek_v2_grouped, build_ds, forward_ds, 6001, ["hf_v2"])),
    ("deepseek_v3", (cfg_deepseek_v3, build_ds, forward_ds, 7001, [])),
    ("llama4", (cfg_llama4, build_llama4, forward_llama4, 8001, ["dense_experts"])),
])


def dump_golden(g):
    """JSON with one logits row (one token's vocab) per line."""
    parts = []
    for k, v in g.items():
        if k == "logits":
            seqs = []
            for seq in v:
                rows = ",\n   ".join(json.dumps(row, separators=(",", ":")) for row in seq)
                seqs.append("  [\n   " + rows + "\n  ]")
            parts.append(f' "logits": [\n' + ",\n".join(seqs) + "\n ]")
        elif k in ("input_ids",):
            parts.append(f" {json.dumps(k)}: {json.dumps(v)}")
        else:
            parts.append(f" {json.dumps(k)}: " + json.dumps(v, indent=2).replace("\n", "\n "))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def to64(W):
    return OrderedDict((k, v.to(torch.float64)) for k, v in W.items())


def make_family(fam):
    cfg_fn, build, fwd, seed0, variants = FAMILIES[fam]
    cfg = cfg_fn()
    ids = torch.tensor(INPUT_IDS, dtype=torch.long)
    for attempt in range(50):
        seed = seed0 + attempt
        W = build(fam, cfg, seed)
        trace = Trace()
        with torch.no_grad():
            logits = fwd(fam, cfg, W, ids, torch.float32, trace)
        ok = True
        for (layer, what, m) in trace.margins:
            if what.startswith("min unmasked"):
                ok &= m > 1e-3
            else:
                ok &= m >= MIN_MARGIN
        n_used = [len({e for row in rows for e in row}) for rows in trace.routing.values()]
        ok &= all(n >= 3 for n in n_used)
        if ok:
            break
    else:
        raise RuntimeError(f"{fam}: no seed without near-ties")

    # --- checks -----------------------------------------------------------------------------------------
    assert torch.isfinite(logits).all(), fam
    with torch.no_grad():
        t64 = Trace()
        l64 = fwd(fam, cfg, to64(W), ids, torch.float64, t64)
    d64 = float((l64 - logits.double()).abs().max())
    assert d64 < 1e-4, (fam, d64)
    assert t64.routing == trace.routing, f"{fam}: float64 routing differs"
    variant_diffs = OrderedDict()
    for v in variants:
        with torch.no_grad():
            tv = Trace()
            lv = fwd(fam, cfg, W, ids, torch.float32, tv, variant=v)
        dv = float((lv - logits).abs().max())
        variant_diffs[v] = dv
        assert dv < 1e-4, (fam, v, dv)

    # --- write ------------------------------------------------------------------------------------------
    d = os.path.join(OUT_DIR, fam)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    st_path = os.path.join(d, "model.safetensors")
    write_safetensors(st_path, W)
    W2 = read_safetensors(st_path)
    assert set(W2) == set(W), fam
    with torch.no_grad():
        l2 = fwd(fam, cfg, W2, ids, torch.float32, Trace())
    assert torch.equal(l2, logits), f"{fam}: logits from re-read safetensors differ"

    std = float(logits.std())
    assert 0.2 < std < 10.0, (fam, std)
    margins = OrderedDict()
    for (layer, what, m) in trace.margins:
        key = f"layer {layer}: {what}"
        margins[key] = min(margins.get(key, float("inf")), m)
    golden = OrderedDict(
        family=fam,
        architecture=cfg["architectures"][0],
        input_ids=INPUT_IDS,
        logits=[[[float(x) for x in row] for row in seq] for seq in logits.tolist()],
        notes=NOTES[fam],
        debug=OrderedDict(
            seed=seed,
            logits_std=std,
            logits_mean=float(logits.mean()),
            max_abs_diff_vs_float64=d64,
            max_abs_diff_vs_alternative_upstream_paths=variant_diffs,
            moe_layers=[int(k) for k in trace.routing.keys()],
            selected_experts_per_token_sorted=trace.routing,
            distinct_experts_used_per_layer={k: len({e for r in v for e in r}) for k, v in trace.routing.items()},
            min_routing_margins=margins,
            **trace.extra,
        ),
    )
    with open(os.path.join(d, "golden.json"), "w") as f:
        f.write(dump_golden(golden))
    sizes = {n: os.path.getsize(os.path.join(d, n)) for n in os.listdir(d)}
    n_params = sum(t.numel() for t in W.values())
    print(f"{fam:22s} seed={seed} params={n_params:6d} logits std={std:.3f} |d64|={d64:.2e} "
          f"variants={dict(variant_diffs)} experts used/layer={golden['debug']['distinct_experts_used_per_layer']} "
          f"min margin={min(m for (_, w, m) in trace.margins if not w.startswith('min unmasked')):.2e} "
          f"bytes={sum(sizes.values())}")
    return sum(sizes.values())


SENSITIVITY = OrderedDict([
    ("wrong_rope_convention", list(FAMILIES)),
    ("flip_norm_topk_prob", ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe"]),
    ("no_qk_norm", ["qwen3_moe", "olmoe", "llama4"]),
    ("no_shared_expert_gate", ["qwen2_moe"]),
    ("no_routed_scaling_factor", ["deepseek_v2_lite", "deepseek_v2_grouped", "deepseek_v3"]),
    ("v3_ignore_bias", ["deepseek_v3"]),
    ("v3_bias_in_weights", ["deepseek_v3"]),
    ("l4_no_chunking", ["llama4"]),
    ("l4_no_temperature_tuning", ["llama4"]),
    ("l4_rope_every_layer", ["llama4"]),
    ("l4_score_on_output", ["llama4"]),
])


def sensitivity():
    """Re-run each fixture with one deliberate mistake; print how far the logits move (max |diff|)."""
    ids = torch.tensor(INPUT_IDS, dtype=torch.long)
    for ab, fams in SENSITIVITY.items():
        res = []
        for fam in fams:
            d = os.path.join(OUT_DIR, fam)
            cfg = json.load(open(os.path.join(d, "config.json")), object_pairs_hook=OrderedDict)
            W = read_safetensors(os.path.join(d, "model.safetensors"))
            gold = torch.tensor(json.load(open(os.path.join(d, "golden.json")))["logits"])
            fwd = FAMILIES[fam][2]
            ABLATE.clear()
            ABLATE.add(ab)
            with torch.no_grad():
                l = fwd(fam, cfg, W, ids, torch.float32, Trace())
            ABLATE.clear()
            res.append(f"{fam}={float((l - gold).abs().max()):.3g}")
        print(f"{ab:26s} " + " ".join(res))


def main(argv):
    if argv[1:] == ["--sensitivity"]:
        sensitivity()
        return
    fams = argv[1:] or list(FAMILIES)
    total = 0
    for fam in fams:
        total += make_family(fam)
    print(f"total fixture bytes: {total}")


if __name__ == "__main__":
    main(sys.argv)
