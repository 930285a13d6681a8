"""Companion of moe-train.mjs for what the PyTorch peer (/work/shared/peers/torch_moe_step.py) has no mode for.
It imports the peer's own modules (Cfg, Model, RMSNorm, Attn, MoE), so the model is the peer's, unchanged.

  dump   DIR  the peer's model weights exactly as the peer builds them (torch.manual_seed(0) then Model(cfg)) and
              the token ids it trains on (the next torch.randint), as raw little-endian f32/i32 with an index.json;
              plus reference logits of a short prefix (original and FarSkip connectivity) for a parity check.
  decode      KV-cache greedy decoding (the peer has no decode mode): prefill of the prompt batch, then one token
              per step for the whole batch; the keys/values of each layer are cached and concatenated (as
              Hugging Face's DynamicCache does). Prints one JSON line with the median time of a full generate and
              of a generate of 1 new token (prefill + 1 step), so decode-only tokens/s = B*(N-1) / (t_N - t_1).

Run with /usr/bin/python3 (Debian python3-torch 1.13)."""
import argparse, importlib.util, json, math, os, sys, time
import torch


def load_peer(path):
    spec = importlib.util.spec_from_file_location("torch_moe_step", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(P, a, farskip=False):
    c = P.Cfg(vocab=a.vocab, d=a.hidden, layers=a.layers, heads=a.heads, experts=a.experts, topk=a.topk, ffn=a.ffn,
              shared=a.shared, dense_first=a.dense_first, dense_ffn=a.dense_ffn, farskip=farskip)
    return c


def hf_name(n):
    # peer module names -> Hugging Face DeepSeek-V2 checkpoint names
    return n if n.startswith("lm_head.") else "model." + n


def dump(P, a):
    os.makedirs(a.dir, exist_ok=True)
    torch.set_num_threads(a.threads); torch.manual_seed(0)       # exactly the peer's main()
    c = build(P, a)
    m = P.Model(c); ids = torch.randint(0, c.vocab, (a.batch, a.seq + 1))
    index, off = {}, 0
    with open(os.path.join(a.dir, "weights.bin"), "wb") as f:
        for n, p in m.state_dict().items():
            b = p.detach().contiguous().numpy().astype("<f4").tobytes()
            index[hf_name(n)] = {"shape": list(p.shape), "offset": off, "bytes": len(b)}
            f.write(b); off += len(b)
    with open(os.path.join(a.dir, "ids.bin"), "wb") as f:
        f.write(ids.to(torch.int32).numpy().astype("<i4").tobytes())
    # parity reference: logits of the first 2 sequences x 64 tokens, original and FarSkip connectivity
    ref = ids[:2, :64]
    out = {}
    with torch.no_grad():
        for fs in (False, True):
            m.c.farskip = fs
            for l in m.layers: l.c.farskip = fs
            lg = m(ref)
            name = "logits_farskip.bin" if fs else "logits.bin"
            with open(os.path.join(a.dir, name), "wb") as f: f.write(lg.numpy().astype("<f4").tobytes())
            out[name] = list(lg.shape)
    meta = {"weights": index, "ids_shape": [a.batch, a.seq + 1], "ref_ids": [2, 64], "ref_logits": out,
            "params": sum(p.numel() for p in m.parameters()), "torch": torch.__version__}
    with open(os.path.join(a.dir, "index.json"), "w") as f: json.dump(meta, f)
    print(json.dumps({"dumped": a.dir, "params": meta["params"], "bytes": off, "torch": torch.__version__}))


def rope_at(x, pos, theta):  # x [B, H, T, D]; the peer's rotate-half RoPE at absolute positions `pos` [T]
    D = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    f = torch.outer(pos.to(torch.float32), inv); emb = torch.cat([f, f], -1)
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def attn_cached(at, x, cache, pos):
    B, T, C = x.shape
    q, k, v = (p(x).view(B, T, at.h, at.dh).transpose(1, 2) for p in (at.q_proj, at.k_proj, at.v_proj))
    q, k = rope_at(q, pos, at.theta), rope_at(k, pos, at.theta)
    if cache[0] is not None:
        k = torch.cat([cache[0], k], 2); v = torch.cat([cache[1], v], 2)
    cache[0], cache[1] = k, v
    S = k.shape[2]
    att = (q @ k.transpose(-1, -2)) / math.sqrt(at.dh)
    if T > 1:
        att = att.masked_fill(torch.ones(T, S, dtype=torch.bool).triu(S - T + 1), float("-inf"))
    y = att.softmax(-1) @ v
    return at.o_proj(y.transpose(1, 2).reshape(B, T, C))


def forward_cached(m, ids, caches, pos):
    x = m.embed_tokens(ids)
    for l, cache in zip(m.layers, caches):   # original connectivity (the peer's Layer.forward, farskip=False)
        h = x + attn_cached(l.self_attn, l.input_layernorm(x), cache, pos)
        u = l.post_attention_layernorm(h)
        x = h + l.mlp(u) if l.dense else h + l.mlp.shared(u) + l.mlp.routed(u)
    return m.lm_head(m.norm(x))


def generate(m, prompt, new):
    caches = [[None, None] for _ in m.layers]
    ids, p0, out = prompt, 0, []
    for _ in range(new):
        n = ids.shape[1]
        logits = forward_cached(m, ids, caches, torch.arange(p0, p0 + n)); p0 += n
        ids = logits[:, -1].argmax(-1, keepdim=True); out.append(ids)
    return torch.cat(out, 1)


def decode(P, a):
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    c = build(P, a)
    m = P.Model(c).eval()
    prompt = torch.randint(0, c.vocab, (a.batch, a.prompt))
    def timed(fn, reps):
        fn(); ts = []
        for _ in range(reps):
            t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
        return sorted(ts)[len(ts) // 2], ts
    with torch.no_grad():
        gen = generate(m, prompt, a.new)
        # the cache is right: greedy tokens == argmax of a full (uncached) forward over prompt + generated
        full = m(torch.cat([prompt, gen[:, :-1]], 1))
        check = bool((full[:, a.prompt - 1:].argmax(-1) == gen).all())
        tN, sN = timed(lambda: generate(m, prompt, a.new), a.steps)
        t1, s1 = timed(lambda: generate(m, prompt, 1), a.steps)
    print(json.dumps({"peer": "pytorch", "version": torch.__version__, "mode": "decode", "threads": a.threads,
                      "batch": a.batch, "prompt": a.prompt, "new_tokens": a.new, "cache_matches_full_forward": check,
                      "generate_s": round(tN, 4), "generate_1_s": round(t1, 4),
                      "tokens_per_s": round(a.batch * a.new / tN, 1),
                      "decode_only_tokens_per_s": round(a.batch * (a.new - 1) / (tN - t1), 1) if tN > t1 else None,
                      "samples_s": [round(x, 4) for x in sN], "samples_1_s": [round(x, 4) for x in s1]}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["dump", "decode"])
    p.add_argument("--peer", default="/work/shared/peers/torch_moe_step.py")
    p.add_argument("--dir", default=None)
    for k, v in dict(vocab=4096, hidden=256, layers=4, heads=8, experts=8, topk=2, ffn=512, shared=1, dense_first=0,
                     dense_ffn=1024, seq=256, batch=8, threads=1, steps=3, prompt=64, new=64).items():
        p.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    a = p.parse_args()
    P = load_peer(a.peer)
    if a.what == "dump":
        if not a.dir: p.error("dump needs --dir")
        dump(P, a)
    else:
        decode(P, a)


if __name__ == "__main__":
    main()
