#!/usr/bin/env node
// The models issue's reference MoE, end to end through @farskip/models, against the PyTorch peer
// /work/shared/peers/torch_moe_step.py measured in the same run at equal threads:
//   vocab 4096, hidden 256, 4 layers, 8 heads (MHA, RoPE rotate-half), 8 experts top-2 (softmax, renormalised)
//   of width 512 + 1 shared expert of width 512, no dense first layer; batch 8 × seq 256; AdamW.
// Rows: forward tokens/s (no grad), training step tokens/s (forward + cross-entropy + backward + AdamW step),
// KV-cache greedy decode tokens/s (batch 8, prompt 64, 64 new tokens), FarSkip-converted forward vs original;
// a per-phase profile of our training step (forward spans from a Tracer, backward per autograd node, optimizer).
//
// The model is the peer's, weight for weight: bench/torch_moe_extra.py dumps the weights the peer builds
// (torch.manual_seed(0), Model(cfg)) and the token ids it trains on; ours loads them through
// CausalLM.fromSource(parseConfig(DeepSeek-V2 config), source) (HF names) and checks its logits against the
// peer's (original and FarSkip connectivity). Decode for PyTorch: torch_moe_extra.py decode (the peer has no
// decode mode; it reuses the peer's modules with a concatenating KV cache).
//
// Threads: every thread count runs in child processes with FARSKIP_NUM_THREADS set before the native library
// loads; the peer gets --threads. Order per thread count: ours, PyTorch, ours again (drift hits both).
//   node packages/models/bench/moe-train.mjs [--quick] [--no-peer] [--threads 1,2]
// Writes packages/models/bench/results/moe-train.json (--quick: /tmp/moe-train-quick.json).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backgroundBusy, createFmaPeak, fmt, machine, median, now, table } from '../../kernels/bench/common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i >= 0 ? process.argv[i + 1] : dflt; };
const quick = process.argv.includes('--quick');
const noPeer = process.argv.includes('--no-peer');
const PEER = process.env.FARSKIP_TORCH_PEER ?? '/work/shared/peers/torch_moe_step.py';
const PY = process.env.FARSKIP_PYTHON ?? '/usr/bin/python3';
const EXTRA = path.join(here, 'torch_moe_extra.py');

const CFG = { vocab: 4096, hidden: 256, layers: 4, heads: 8, experts: 8, topk: 2, ffn: 512, shared: 1, denseFirst: 0, denseFfn: 1024, seq: 256, batch: 8 };
const DECODE = { batch: 8, prompt: 64, newTokens: quick ? 8 : 64 };
const NTOK = CFG.batch * CFG.seq;
const CONTAMINATION = []; // every measured run: other processes' share of the machine before / during it
const ROUNDS = quick ? 1 : 3;
const peerArgs = () => ['--vocab', CFG.vocab, '--hidden', CFG.hidden, '--layers', CFG.layers, '--heads', CFG.heads, '--experts', CFG.experts,
  '--topk', CFG.topk, '--ffn', CFG.ffn, '--shared', CFG.shared, '--dense-first', CFG.denseFirst, '--dense-ffn', CFG.denseFfn,
  '--seq', CFG.seq, '--batch', CFG.batch].map(String);

/** Forward FLOPs per token (multiply-add = 2), the matmul work only (norms, softmax, RoPE, routing bookkeeping are O(d)). */
function flopCount(c, T) {
  const d = c.hidden, S = c.shared * c.ffn;
  const perLayer = {
    'attention projections q,k,v,o': 4 * 2 * d * d,
    'attention scores QKᵀ + PV (causal, mean context (T+1)/2)': 2 * 2 * d * (T + 1) / 2,
    router: 2 * d * c.experts,
    [`routed experts (${c.topk} active × 3 GEMMs)`]: c.topk * 3 * 2 * d * c.ffn,
    'shared expert (3 GEMMs)': 3 * 2 * d * S,
  };
  const layer = Object.values(perLayer).reduce((a, b) => a + b, 0);
  const lmHead = 2 * d * c.vocab;
  return { perLayer, layer, layers: c.layers * layer, lmHead, forward: c.layers * layer + lmHead, training: 3 * (c.layers * layer + lmHead) };
}

if (process.argv.includes('--child')) await child();
else await driver();

// =============================================================================================== child
async function child() {
  const dir = arg('--dump');
  const round = Number(arg('--round', '1'));
  const full = round === 1;
  const { CausalLM, generate, parseConfig } = await import('@farskip/models');
  const { Tracer } = await import('@farskip/layers');
  const { AdamW, backendInfo, crossEntropy, linear } = await import('@farskip/kernels');
  const { Node, Tensor, noGrad } = await import('@farskip/tensor');
  const info = backendInfo();
  const out = { round, pid: process.pid, threads_env: process.env.FARSKIP_NUM_THREADS, backend: info };

  // ---- the model: the peer's weights under Hugging Face DeepSeek-V2 names ---------------------------------------
  const meta = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const wbuf = readFileSync(path.join(dir, 'weights.bin'));
  const wall = new Float32Array(wbuf.buffer.slice(wbuf.byteOffset, wbuf.byteOffset + wbuf.byteLength));
  const source = {
    keys: () => Object.keys(meta.weights),
    get: (n) => { const w = meta.weights[n]; return new Tensor(wall.subarray(w.offset / 4, (w.offset + w.bytes) / 4), w.shape); },
  };
  // DeepSeek-V2 MoE (softmax scoring, greedy top-k, norm_topk_prob, n_shared_experts unconditional and ungated,
  // first_k_dense_replace) is the family whose MoE is the peer's; its attention is MLA, the peer's is plain MHA
  // with rotate-half RoPE: parseConfig has no family with exactly MHA + ungated shared expert, so the parsed spec's
  // attention is switched to standard MHA (spec.mla = null, 'half' RoPE, head_dim hidden/heads) — buildAttention
  // then takes q_proj/k_proj/v_proj/o_proj, the peer's names. The logits parity check below proves the match.
  const cfg = {
    architectures: ['DeepseekV2ForCausalLM'], model_type: 'deepseek_v2', vocab_size: CFG.vocab, hidden_size: CFG.hidden,
    num_hidden_layers: CFG.layers, num_attention_heads: CFG.heads, num_key_value_heads: CFG.heads, intermediate_size: CFG.denseFfn,
    n_routed_experts: CFG.experts, num_experts_per_tok: CFG.topk, moe_intermediate_size: CFG.ffn, n_shared_experts: CFG.shared,
    first_k_dense_replace: CFG.denseFirst, moe_layer_freq: 1, topk_method: 'greedy', scoring_func: 'softmax', norm_topk_prob: true,
    routed_scaling_factor: 1.0, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 4096,
    q_lora_rank: null, kv_lora_rank: 64, qk_nope_head_dim: 0, qk_rope_head_dim: CFG.hidden / CFG.heads, v_head_dim: CFG.hidden / CFG.heads,
  };
  const spec = parseConfig(cfg, 'moe-train bench config');
  spec.mla = null;
  spec.ropeStyle = 'half';
  spec.headDim = CFG.hidden / CFG.heads;
  let t0 = now();
  const model = CausalLM.fromSource(spec, source, {}, 'peer weights');
  out.build_ms = now() - t0;
  const params = model.parameters().map(([, t]) => t);
  out.params = params.reduce((s, p) => s + p.numel, 0);

  const ids = new Int32Array(readFileSync(path.join(dir, 'ids.bin')).buffer.slice(0));
  const [B, T1] = meta.ids_shape, T = T1 - 1;
  const inp = new Int32Array(B * T), tgt = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) { inp[b * T + t] = ids[b * T1 + t]; tgt[b * T + t] = ids[b * T1 + t + 1]; }
  const inpT = new Tensor(inp, [B, T], { dtype: 'i32' }), tgtT = new Tensor(tgt, [B * T], { dtype: 'i32' });
  const V = spec.vocabSize;

  // ---- parity with the peer's logits (first 2 sequences × 64 tokens) -----------------------------------------------
  if (full) {
    const [pb, pt] = meta.ref_ids;
    const pin = new Int32Array(pb * pt);
    for (let b = 0; b < pb; b++) for (let t = 0; t < pt; t++) pin[b * pt + t] = ids[b * T1 + t];
    const pinT = new Tensor(pin, [pb, pt], { dtype: 'i32' });
    out.parity = {};
    for (const [fs, file] of [[null, 'logits.bin'], [{}, 'logits_farskip.bin']]) {
      const ref = new Float32Array(readFileSync(path.join(dir, file)).buffer.slice(0));
      const got = (await noGrad(() => model.forward(pinT, { farskip: fs }))).data;
      let md = 0, mx = 0;
      for (let i = 0; i < ref.length; i++) { md = Math.max(md, Math.abs(got[i] - ref[i])); mx = Math.max(mx, Math.abs(ref[i])); }
      out.parity[fs ? 'farskip' : 'original'] = { max_abs_diff: md, max_abs_logit: mx };
    }
  }

  const timeIt = async (fn, reps, warm = 1) => {
    for (let i = 0; i < warm; i++) await fn();
    const s = [];
    for (let i = 0; i < reps; i++) { const a = now(); await fn(); s.push(now() - a); }
    return s;
  };
  const R = quick ? 2 : 3;

  // ---- forward (no grad): original and FarSkip, interleaved ---------------------------------------------------------
  const fwd = (farskip) => noGrad(() => model.forward(inpT, { farskip }));
  await fwd(null); await fwd({});
  out.forward_ms = []; out.forward_farskip_ms = [];
  for (let i = 0; i < (quick ? 2 : 4); i++) {
    out.forward_ms.push(...await timeIt(() => fwd(null), 1, 0));
    out.forward_farskip_ms.push(...await timeIt(() => fwd({}), 1, 0));
  }

  // ---- training step -------------------------------------------------------------------------------------------------
  const opt = new AdamW(params, { lr: 1e-3, weightDecay: 0.01 }); // torch.optim.AdamW defaults
  const losses = [];
  const trainStep = async () => {
    const logits = await model.forward(inpT, { farskip: null });
    const loss = crossEntropy(logits.reshape(B * T, V), tgtT);
    opt.zeroGrad();
    await loss.backward();
    opt.step();
    losses.push(loss.item());
  };
  out.train_ms = await timeIt(trainStep, R, 1);
  out.losses = losses.slice();

  // ---- decode: greedy, KV cache, batch 8 × prompt 64 ------------------------------------------------------------------
  const prompts = Array.from({ length: DECODE.batch }, (_, b) => Array.from(ids.subarray(b * T1, b * T1 + DECODE.prompt)));
  const gen = (n) => generate(model, prompts, { maxNewTokens: n, forward: { farskip: null } });
  const g = await gen(DECODE.newTokens);
  if (full) {
    // the cache is right: greedy tokens == argmax of a full (uncached) forward over prompt + generated
    const L = DECODE.prompt + DECODE.newTokens - 1;
    const seq = new Int32Array(DECODE.batch * L);
    prompts.forEach((p, b) => { seq.set(p, b * L); seq.set(g.tokens[b].slice(0, -1), b * L + DECODE.prompt); });
    const lg = (await noGrad(() => model.forward(new Tensor(seq, [DECODE.batch, L], { dtype: 'i32' }), { farskip: null }))).data;
    let ok = true;
    for (let b = 0; b < DECODE.batch; b++) for (let j = 0; j < DECODE.newTokens; j++) {
      const row = lg.subarray((b * L + DECODE.prompt - 1 + j) * V, (b * L + DECODE.prompt + j) * V);
      let best = 0; for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
      if (best !== g.tokens[b][j]) ok = false;
    }
    out.decode_cache_matches_full_forward = ok;
  }
  out.generate_ms = await timeIt(() => gen(DECODE.newTokens), R, 0);
  out.generate_1_ms = await timeIt(() => gen(1), R, 1);

  // ---- decode step profile (round 1): Tracer spans of generate(N) minus generate(1), per decode step --------------------
  if (full) {
    const traced = async (n) => {
      const tr = new Tracer(0, true);
      const a = now();
      await generate(model, prompts, { maxNewTokens: n, forward: { farskip: null, tracer: tr } });
      const total = now() - a;
      const spans = {};
      for (const sp of tr.spans) if (sp.kind === 'compute') spans[sp.name.replace(/^layer\d+\./, 'layer*.')] = (spans[sp.name.replace(/^layer\d+\./, 'layer*.')] ?? 0) + sp.end - sp.start;
      return { total, spans };
    };
    await traced(DECODE.newTokens);
    const tn = await traced(DECODE.newTokens), t1 = await traced(1);
    const steps = DECODE.newTokens - 1;
    const spans = Object.fromEntries(Object.keys(tn.spans).map((k) => [k, (tn.spans[k] - (t1.spans[k] ?? 0)) / steps]).sort((x, y) => y[1] - x[1]));
    // the LM head of one decode step alone ([B, 1, hidden] x [vocab, hidden]ᵀ), outside the Tracer's spans
    const h1 = Tensor.randn([DECODE.batch, 1, CFG.hidden], { seed: 3 });
    const lm = await timeIt(() => noGrad(() => linear(h1, model.lmHead)), 20, 3);
    out.decode_profile = { step_ms: (tn.total - t1.total) / steps, spans_ms: spans, lm_head_ms: median(lm) };
  }

  // ---- profile of the training step (round 1 only): forward spans, backward per node, optimizer ----------------------
  if (full) {
    const P = quick ? 1 : 3;
    const fwdSpans = {}, bwdNodes = {}, phases = {};
    const usage = { minorPageFaults: 0, userMs: 0, systemMs: 0 }; // process.resourceUsage() over the recorded steps
    const addTo = (o, k, v) => { o[k] = (o[k] ?? 0) + v; };
    const origRun = Node.prototype.run;
    let inBackward = false; // only the recorded steps' backward
    Node.prototype.run = function run(grad, retain) {
      if (!inBackward) return origRun.call(this, grad, retain);
      const a = performance.now();
      const r = origRun.call(this, grad, retain);
      addTo(bwdNodes, this.name, performance.now() - a);
      return r;
    };
    try {
      for (let i = 0; i < P + 1; i++) {
        const rec = i > 0; // first iteration warms up the patched path
        const tracer = new Tracer(0, true);
        const lap = (name, a) => { const b = now(); if (rec) addTo(phases, name, b - a); return b; };
        const ru0 = process.resourceUsage();
        let a = now();
        const hidden = await model.hidden(inpT, { tracer, farskip: null });
        a = lap('forward: embedding + 4 layers + final norm', a);
        const logits = linear(hidden, model.lmHead);
        a = lap('forward: LM head', a);
        const loss = crossEntropy(logits.reshape(B * T, V), tgtT);
        a = lap('forward: cross-entropy', a);
        opt.zeroGrad();
        inBackward = rec;
        await loss.backward();
        inBackward = false;
        a = lap('backward (whole)', a);
        opt.step();
        a = lap('optimizer: AdamW step', a);
        const ru1 = process.resourceUsage();
        if (rec) {
          usage.minorPageFaults += ru1.minorPageFault - ru0.minorPageFault;
          usage.userMs += (ru1.userCPUTime - ru0.userCPUTime) / 1e3;
          usage.systemMs += (ru1.systemCPUTime - ru0.systemCPUTime) / 1e3;
        }
        if (rec) for (const s of tracer.spans) if (s.kind === 'compute') addTo(fwdSpans, s.name.replace(/^layer\d+\./, 'layer*.'), s.end - s.start);
      }
    } finally {
      Node.prototype.run = origRun;
    }
    const avg = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v / P]).sort((x, y) => y[1] - x[1]));
    out.profile = { steps: P, phases_ms: avg(phases), forward_spans_ms: avg(fwdSpans), backward_nodes_ms: avg(bwdNodes),
      per_step: { minor_page_faults: usage.minorPageFaults / P, user_cpu_ms: usage.userMs / P, system_cpu_ms: usage.systemMs / P } };
  }
  console.log('@@RESULT ' + JSON.stringify(out));
}

// =============================================================================================== driver
async function driver() {
  const threadList = (arg('--threads', quick ? '2' : '1,2')).split(',').map(Number);
  const notes = [];
  const { backendInfo } = await import('@farskip/kernels'); // machine description only (this process runs no kernels)
  const info = backendInfo();
  const mach = machine(info);
  const busy = { start_pct: await backgroundBusy() };
  const fmaPeak = createFmaPeak(createRequire(import.meta.url)('koffi'), threadList, notes);
  fmaPeak.measure(2);
  console.log(`# @farskip/models MoE train/decode bench — ${mach.cpu}, ${mach.cores} cores, backend ${info.backend}/${info.isa}, node ${process.version}, threads ${threadList.join(',')}`);
  const flops = flopCount(CFG, CFG.seq);
  console.log(`# forward ${(flops.forward / 1e6).toFixed(2)} MFLOP/token (${(flops.forward * NTOK / 1e9).toFixed(1)} GFLOP per ${NTOK}-token batch), training ≈ 3× = ${(flops.training * NTOK / 1e9).toFixed(1)} GFLOP`);

  const haveTorch = !noPeer && existsSync(PY) && (() => { try { execFileSync(PY, ['-c', 'import torch'], { stdio: 'pipe', timeout: 60e3 }); return true; } catch { return false; } })();
  if (!existsSync(PY)) throw new Error(`${PY} not found: the benchmark needs the peer's weights (Debian python3-torch)`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'moe-train-'));
  try {
    // the peer's weights and token ids (seed 0, as the peer builds them)
    const dumped = py([EXTRA, 'dump', '--peer', PEER, '--dir', tmp, ...peerArgs()]);
    console.log(`# peer weights dumped: ${dumped.params} parameters`);

    const runChild = (threads, round) => clean(`ours, ${threads} thread(s), round ${round}`, () => runChildOnce(threads, round));
    const runChildOnce = (threads, round) => {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', '--dump', tmp, '--round', String(round), ...(quick ? ['--quick'] : [])],
        { env: { ...process.env, FARSKIP_NUM_THREADS: String(threads) }, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 900e3 });
      const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('@@RESULT '));
      if (r.status !== 0 || !line) throw new Error(`child (threads ${threads}, round ${round}) failed: status ${r.status}\n${r.stderr}\n${r.stdout}`);
      const res = JSON.parse(line.slice(9));
      if (res.backend.threads !== threads) notes.push(`child asked for ${threads} threads via FARSKIP_NUM_THREADS but the native pool reports ${res.backend.threads}`);
      return res;
    };
    // PyTorch thread pools: torch.set_num_threads (--threads) sizes ATen's OpenMP pool only; this Debian build's
    // GEMMs run in OpenBLAS (openblas-pthread), whose own pool defaults to every core. A variant fixes both.
    const poolEnv = (v) => ({ ...process.env, OMP_NUM_THREADS: String(v.omp), OPENBLAS_NUM_THREADS: String(v.blas) });
    const peer = (mode, v, steps, extra = []) => {
      if (!haveTorch) return { skipped: noPeer ? '--no-peer' : 'python3-torch not importable' };
      try {
        return clean(`PyTorch ${mode}${extra.length ? ' ' + extra.join(' ') : ''}, ${v.label}`,
          () => py([PEER, '--mode', mode, '--threads', String(v.omp), '--steps', String(steps), ...peerArgs(), ...extra], poolEnv(v)));
      } catch (e) { return { skipped: `peer failed: ${String(e.message ?? e).split('\n')[0]}` }; }
    };
    const torchDecode = (v) => {
      if (!haveTorch) return { skipped: noPeer ? '--no-peer' : 'python3-torch not importable' };
      try {
        return clean(`PyTorch decode, ${v.label}`, () => py([EXTRA, 'decode', '--peer', PEER, '--threads', String(v.omp), '--steps', String(quick ? 2 : 3), ...peerArgs(),
          '--batch', String(DECODE.batch), '--prompt', String(DECODE.prompt), '--new', String(DECODE.newTokens)], poolEnv(v)));
      } catch (e) { return { skipped: `torch decode failed: ${String(e.message ?? e).split('\n')[0]}` }; }
    };
    // at t threads: both pools at t (what "--threads t" means with OPENBLAS_NUM_THREADS=t), and the two ways of
    // using t cores without oversubscription (OpenMP t + OpenBLAS 1, OpenMP 1 + OpenBLAS t); the comparison
    // uses PyTorch's best of them per row
    const torchVariants = (t) => (t === 1
      ? [{ omp: 1, blas: 1 }]
      : [{ omp: t, blas: t }, { omp: t, blas: 1 }, { omp: 1, blas: t }]).map((v) => ({ ...v, label: `OpenMP ${v.omp} + OpenBLAS ${v.blas}` }));

    const perThreads = [];
    for (const th of threadList) {
      // ours, PyTorch (every pool variant), ours, PyTorch, ... ours: ROUNDS rounds of PyTorch bracketed by our runs,
      // medians over rounds (the host's speed drifts by tens of percent over minutes, see notes)
      const oursRuns = [];
      const tv = torchVariants(th);
      const torchRuns = tv.map(() => []);
      for (let r = 1; r <= ROUNDS; r++) {
        console.log(`threads ${th}: ours (run ${r}) ...`);
        oursRuns.push(runChild(th, r));
        console.log(`threads ${th}: PyTorch round ${r}: train / forward${r === 1 ? ' / farskip forward' : ''} / decode ...`);
        tv.forEach((v, i) => torchRuns[i].push({
          train: peer('train', v, quick ? 2 : 3),
          forward: peer('forward', v, quick ? 3 : 5),
          ...(r === 1 ? { forward_farskip: peer('forward', v, quick ? 3 : 5, ['--farskip']) } : {}),
          decode: torchDecode(v),
        }));
      }
      if (!quick) { console.log(`threads ${th}: ours (run ${ROUNDS + 1}) ...`); oursRuns.push(runChild(th, ROUNDS + 1)); }
      const variants = tv.map((v, i) => ({ variant: v, rounds: torchRuns[i].length,
        ...Object.fromEntries(['train', 'forward', 'forward_farskip', 'decode'].map((k) => [k, medianOfRuns(torchRuns[i].map((x) => x[k]).filter(Boolean))])) }));
      // best PyTorch configuration per measurement (highest tokens/s)
      const best = (k, metric = 'tokens_per_s') => {
        const ok = variants.filter((x) => x[k] && !x[k].skipped && x[k][metric]);
        if (!ok.length) return variants[0][k];
        const b = ok.reduce((a, c) => (c[k][metric] > a[k][metric] ? c : a));
        return { ...b[k], pool: b.variant.label };
      };
      const pt = { train: best('train'), forward: best('forward'), forward_farskip: best('forward_farskip'), decode: best('decode'),
        decode_only: best('decode', 'decode_only_tokens_per_s'), variants };
      console.log(`threads ${th}: ours (round 2) ...`);
      perThreads.push({ threads: th, ours: oursRuns, pytorch: pt });
    }
    busy.end_pct = await backgroundBusy();
    fmaPeak.measure(1);
    fmaPeak.dispose();

    // ---- rows --------------------------------------------------------------------------------------------------------
    const rows = [];
    const fwdFlop = flops.forward * NTOK, trainFlop = flops.training * NTOK;
    for (const pt of perThreads) {
      const th = pt.threads;
      const all = (k) => pt.ours.flatMap((o) => o[k] ?? []);
      const peak = fmaPeak.peakFor(th);
      const fwdMs = median(all('forward_ms')), fsMs = median(all('forward_farskip_ms')), trainMs = median(all('train_ms'));
      const genMs = median(all('generate_ms')), gen1Ms = median(all('generate_1_ms'));
      const pf = pt.pytorch;
      const row = (what, oursMs, tokens, flop, p, pTok) => {
        const ours = tokens / (oursMs / 1e3);
        const gflops = flop ? flop / (oursMs * 1e6) : null;
        const ptTok = pTok ?? null;
        return {
          what, threads: th, ours_ms: oursMs, ours_tokens_per_s: ours, ours_gflops: gflops, ours_peak_fraction: gflops && peak ? gflops / peak : null,
          pytorch_ms: p?.step_s ? p.step_s * 1e3 : (p?.ms ?? null), pytorch_tokens_per_s: ptTok,
          pytorch_gflops: flop && ptTok ? (flop / tokens) * ptTok / 1e9 : null,
          ratio_ours_vs_pytorch: ptTok ? ours / ptTok : null,
        };
      };
      rows.push(row('forward (no grad)', fwdMs, NTOK, fwdFlop, pf.forward, pf.forward.tokens_per_s));
      rows.push(row('training step (fwd + CE + bwd + AdamW)', trainMs, NTOK, trainFlop, pf.train, pf.train.tokens_per_s));
      rows.push(row('forward, FarSkip-converted (no grad)', fsMs, NTOK, fwdFlop, pf.forward_farskip, pf.forward_farskip.tokens_per_s));
      const dTok = DECODE.batch * DECODE.newTokens;
      rows.push(row(`decode: generate ${DECODE.batch}×(${DECODE.prompt} prompt + ${DECODE.newTokens} new), incl. prefill`, genMs, dTok, null,
        pf.decode.generate_s ? { ms: pf.decode.generate_s * 1e3 } : null, pf.decode.tokens_per_s));
      const dOnlyMs = genMs - gen1Ms;
      rows.push(row(`decode only (new tokens 2..${DECODE.newTokens}, prefill excluded)`, dOnlyMs, DECODE.batch * (DECODE.newTokens - 1), null,
        pf.decode_only.generate_s ? { ms: (pf.decode_only.generate_s - pf.decode_only.generate_1_s) * 1e3 } : null, pf.decode_only.decode_only_tokens_per_s));
      // pools: the configuration each PyTorch number came from; the same row against both pools at t threads
      const pools = [pf.forward, pf.train, pf.forward_farskip, pf.decode, pf.decode_only];
      const naive = pf.variants.find((x) => x.variant.omp === th && x.variant.blas === th);
      const naiveTok = [naive?.forward.tokens_per_s, naive?.train.tokens_per_s, naive?.forward_farskip.tokens_per_s, naive?.decode.tokens_per_s, naive?.decode.decode_only_tokens_per_s];
      rows.slice(-5).forEach((r, i) => {
        r.pytorch_pool = pools[i]?.pool ?? null;
        r.pytorch_all_pools_at_t_tokens_per_s = naiveTok[i] ?? null;
        r.ratio_vs_all_pools_at_t = naiveTok[i] ? r.ours_tokens_per_s / naiveTok[i] : null;
      });
      pt.farskip_vs_original_forward = fsMs / fwdMs;
    }
    const p1 = perThreads[0].ours[0];
    if (dumped.params !== p1.params) notes.push(`Parameter counts differ: ours ${p1.params}, peer ${dumped.params}.`);

    // ---- tables ------------------------------------------------------------------------------------------------------
    const mainTable = table(['row', 'thr', 'ours ms', 'ours tok/s', 'GFLOP/s', '% FMA peak', 'PyTorch ms', 'PyTorch tok/s', 'PyTorch pools (best)', 'ours/PyTorch', 'PyTorch tok/s OMP t+BLAS t', 'ours/that'],
      rows.map((r) => [r.what, r.threads, fmt(r.ours_ms), fmt(r.ours_tokens_per_s, 0), fmt(r.ours_gflops), r.ours_peak_fraction ? fmt(100 * r.ours_peak_fraction) : null,
        fmt(r.pytorch_ms), fmt(r.pytorch_tokens_per_s, 0), r.pytorch_pool, fmt(r.ratio_ours_vs_pytorch, 2), fmt(r.pytorch_all_pools_at_t_tokens_per_s, 0), fmt(r.ratio_vs_all_pools_at_t, 2)]));
    const flopTable = table(['forward FLOPs per token', 'FLOP', 'share'], [
      ...Object.entries(flops.perLayer).map(([k, v]) => [`${k} × ${CFG.layers} layers`, (v * CFG.layers).toFixed(0), `${(100 * v * CFG.layers / flops.forward).toFixed(1)}%`]),
      ['LM head', flops.lmHead.toFixed(0), `${(100 * flops.lmHead / flops.forward).toFixed(1)}%`],
      ['total forward', flops.forward.toFixed(0), '100%'],
      ['training step ≈ 3 × forward', flops.training.toFixed(0), ''],
    ]);
    const profTables = perThreads.map((pt) => {
      const pr = pt.ours[0].profile;
      const ph = pr.phases_ms;
      const bwdTotal = ph['backward (whole)'];
      const nodesSum = Object.values(pr.backward_nodes_ms).reduce((a, b) => a + b, 0);
      const fwdHidden = ph['forward: embedding + 4 layers + final norm'];
      const spanSum = Object.values(pr.forward_spans_ms).reduce((a, b) => a + b, 0);
      const stepTotal = Object.values(ph).reduce((a, b) => a + b, 0);
      const lines = [];
      for (const [k, v] of Object.entries(ph)) lines.push([k, fmt(v, 1), `${fmt(100 * v / stepTotal, 1)}%`]);
      lines.push(['— forward spans (Tracer), summed over layers', '', '']);
      for (const [k, v] of Object.entries(pr.forward_spans_ms)) lines.push([`  fwd ${k}`, fmt(v, 1), `${fmt(100 * v / stepTotal, 1)}%`]);
      lines.push(['  fwd untraced (embedding, id validation, awaits)', fmt(fwdHidden - spanSum, 1), `${fmt(100 * (fwdHidden - spanSum) / stepTotal, 1)}%`]);
      lines.push(['— backward per autograd node type', '', '']);
      for (const [k, v] of Object.entries(pr.backward_nodes_ms)) if (v >= 0.5) lines.push([`  bwd ${k}`, fmt(v, 1), `${fmt(100 * v / stepTotal, 1)}%`]);
      const small = Object.values(pr.backward_nodes_ms).filter((v) => v < 0.5).reduce((a, b) => a + b, 0);
      lines.push(['  bwd other nodes (< 0.5 ms each type)', fmt(small, 1), `${fmt(100 * small / stepTotal, 1)}%`]);
      lines.push(['  bwd engine: grad accumulation into leaves, sums, scheduling', fmt(bwdTotal - nodesSum, 1), `${fmt(100 * (bwdTotal - nodesSum) / stepTotal, 1)}%`]);
      const u = pr.per_step;
      lines.push(['— process CPU per step (all threads)', '', '']);
      lines.push([`  user CPU`, fmt(u.user_cpu_ms, 1), '']);
      lines.push([`  system CPU (${(u.minor_page_faults / 1e3).toFixed(1)}k minor page faults: first touch of fresh buffers)`, fmt(u.system_cpu_ms, 1), '']);
      return { threads: pt.threads, stepTotal, table: table([`training step profile, ${pt.threads} thread(s) (mean of ${pr.steps} instrumented steps; total ${fmt(stepTotal, 1)} ms)`, 'ms', 'of step'], lines) };
    });

    const decodeTables = perThreads.map((pt) => {
      const dp = pt.ours[0].decode_profile;
      const spanSum = Object.values(dp.spans_ms).reduce((a, b) => a + b, 0);
      const lines = Object.entries(dp.spans_ms).map(([k, v]) => [`  ${k}`, fmt(v, 3), `${fmt(100 * v / dp.step_ms, 1)}%`]);
      lines.push(['  LM head [8,1,256]·[4096,256]ᵀ (timed alone)', fmt(dp.lm_head_ms, 3), `${fmt(100 * dp.lm_head_ms / dp.step_ms, 1)}%`]);
      const rest = dp.step_ms - spanSum - dp.lm_head_ms;
      lines.push(['  rest: embedding, id checks, greedy argmax over 8×4096, logits row copies, tensor glue', fmt(rest, 3), `${fmt(100 * rest / dp.step_ms, 1)}%`]);
      return { threads: pt.threads, table: table([`decode step profile, ${pt.threads} thread(s): batch ${DECODE.batch}, one token each (step ${fmt(dp.step_ms, 2)} ms)`, 'ms', 'of step'], lines) };
    });

    // ---- notes ---------------------------------------------------------------------------------------------------------
    for (const pt of perThreads) {
      const o = pt.ours[0];
      notes.push(`${pt.threads} thread(s): parity with the peer's logits (2 × 64 tokens, same weights): original max |Δ| ${o.parity.original.max_abs_diff.toExponential(2)}, FarSkip ${o.parity.farskip.max_abs_diff.toExponential(2)} (max |logit| ${o.parity.original.max_abs_logit.toFixed(2)}); ` +
        `KV-cache decode == full-forward argmax: ours ${o.decode_cache_matches_full_forward}, PyTorch ${pt.pytorch.decode.cache_matches_full_forward ?? '-'}; ` +
        `first training losses ours ${o.losses.slice(0, 3).map((x) => x.toFixed(4)).join(', ')}; FarSkip / original forward time ${pt.farskip_vs_original_forward.toFixed(3)}.`);
      const tv = pt.pytorch.variants;
      notes.push(`${pt.threads} thread(s): other processes' share of the machine during the kept runs (max over rounds): ours ${pt.ours.map((o) => `${o.others_pct_during}%`).join(' / ')}; PyTorch ` +
        tv.map((x) => `[${x.variant.label}] ${['train', 'forward', 'forward_farskip', 'decode'].map((k) => `${k} ${x[k].others_pct_during ?? '-'}%`).join(', ')}`).join('; ') + '.');
      const runs = (x, k) => (x[`${k}_runs`] ?? []).map((v) => v.toFixed(0)).join('/');
      notes.push(`${pt.threads} thread(s): PyTorch training tokens/s by thread pools (median of rounds; rounds): ${tv.map((x) => `${x.variant.label}: ${fmt(x.train.tokens_per_s, 0)} (${runs(x.train, 'tokens_per_s')})`).join(', ')}; decode-only: ${tv.map((x) => `${x.variant.label}: ${fmt(x.decode.decode_only_tokens_per_s, 0)} (${runs(x.decode, 'decode_only_tokens_per_s')})`).join(', ')}; ` +
        `ours training ms per run (median of its samples): ${pt.ours.map((o) => median(o.train_ms).toFixed(0)).join('/')}.`);
      for (const x of tv) for (const k of ['train', 'forward', 'forward_farskip', 'decode']) if (x[k]?.skipped) notes.push(`${pt.threads} thread(s): PyTorch ${k} [${x.variant.label}] skipped: ${x[k].skipped}`);
    }
    notes.push(`FLOPs: matmul work only, causal attention counted at the mean context (T+1)/2 (the peer computes full T×T scores and masks them, i.e. ~2× that attention work); training ≈ 3 × forward (backward = dX + dW GEMMs). GFLOP/s of PyTorch rows use the same count. % FMA peak: of the best f32 FMA-loop rate measured in this run by kernels/bench/fma_peak.c at that thread count (${Object.entries(fmaPeak.peak).map(([k, v]) => `${k}: ${v.toFixed(0)}`).join(', ')} GFLOP/s).`);
    notes.push('Model: the peer\'s own weights (torch.manual_seed(0), Model(cfg)) loaded through CausalLM.fromSource from a DeepSeek-V2 config.json (softmax, greedy top-2, norm_topk_prob, 1 ungated shared expert, first_k_dense_replace 0) whose MLA attention is switched to standard MHA with rotate-half RoPE after parseConfig (no supported family has exactly the peer\'s MHA + ungated shared expert); training and forward run on the peer\'s token ids.');
    notes.push(`Decode: greedy, batch ${DECODE.batch}, equal prompts of ${DECODE.prompt} tokens, ${DECODE.newTokens} new tokens; ours = generate() of @farskip/models (preallocated KVCache, batched prefill); PyTorch = bench/torch_moe_extra.py decode (the peer's modules, prefill + one token per step with a torch.cat KV cache; the peer has no decode mode). 'decode only' = (t(generate N) − t(generate 1)) for B·(N−1) tokens.`);
    notes.push('PyTorch is Debian python3-torch 1.13 (build details under pytorch.config): ATen ops run on an OpenMP pool sized by torch.set_num_threads (the peer\'s --threads), but its GEMMs (nn.Linear, bmm) run in OpenBLAS (openblas-pthread), whose own pool is sized by OPENBLAS_NUM_THREADS and defaults to every core — so the peer\'s "--threads 1" without it uses 2 cores, and "--threads 2" runs 2 + 2 busy-waiting threads on 2 cores. Each PyTorch run here sets OMP_NUM_THREADS and OPENBLAS_NUM_THREADS; at t threads the comparison column uses PyTorch\'s best configuration using at most t cores (both pools at t, or t + 1, or 1 + t), and the last columns show both pools at t. Ours runs with FARSKIP_NUM_THREADS = t in a child process. Each thread count alternates ours and PyTorch (all pool variants): ours, PyTorch, ours, PyTorch, ours, PyTorch, ours; ours = median over all timed samples of the 4 runs, PyTorch = median over its 3 runs of the peer\'s per-run median.');
    const dirty = CONTAMINATION.filter((c) => c.others_pct_during > 10);
    notes.push(`Shared machine: every measured process ran after waiting for < 10% CPU use by other processes, and was repeated (up to 3 tries, the least disturbed kept) when others took > 10% of the machine during it; ${dirty.length} of ${CONTAMINATION.length} runs were disturbed (see contamination in the JSON; kept runs record others_pct_during).`);
    if (Math.max(busy.start_pct ?? 0, busy.end_pct ?? 0) > 15) notes.push(`NOISY: other processes used ${busy.start_pct}% / ${busy.end_pct}% of the CPUs just before / after this run (idle sample).`);

    console.log(`\n${flopTable}\n\n${mainTable}`);
    for (const p of profTables) console.log(`\n${p.table}`);
    for (const p of decodeTables) console.log(`\n${p.table}`);
    console.log('\nnotes:\n- ' + notes.join('\n- '));
    const result = {
      bench: 'moe-train', date: new Date().toISOString(), node: process.version, quick, machine: mach, background_cpu_busy: busy,
      fma_peak_gflops: fmaPeak.peak, config: CFG, decode: DECODE, tokens: NTOK, params: p1.params, flops_per_token: flops,
      pytorch: { peer: PEER, python: PY, version: dumped.torch ?? null, config: torchConfig(haveTorch) },
      rows, per_threads: perThreads, contamination: CONTAMINATION, notes,
      tables: { main: mainTable, flops: flopTable, profile: Object.fromEntries(profTables.map((p) => [`threads_${p.threads}`, p.table])),
        decode_profile: Object.fromEntries(decodeTables.map((p) => [`threads_${p.threads}`, p.table])) },
    };
    const file = quick ? path.join(os.tmpdir(), 'moe-train-quick.json') : path.join(here, 'results', 'moe-train.json');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp-${process.pid}`, JSON.stringify(result, null, 2) + '\n');
    renameSync(`${file}.tmp-${process.pid}`, file);
    console.log(`\nwrote ${file}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function py(args, env = process.env) {
  const outp = execFileSync(PY, args, { encoding: 'utf8', timeout: 900e3, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, env });
  const line = outp.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  return JSON.parse(line);
}

function torchConfig(have) {
  if (!have) return null;
  try {
    return execFileSync(PY, ['-c', "import torch,re; s=torch.__config__.show(); print(torch.__version__, '|', ';'.join(x.strip() for x in s.splitlines() if 'CPU capability' in x), '|', ';'.join(re.findall(r'BLAS_INFO=\\w+', s)))"],
      { encoding: 'utf8', stdio: 'pipe', timeout: 60e3 }).trim();
  } catch { return null; }
}

// ---- shared-machine hygiene ------------------------------------------------------------------------------------------
// Every measured process (our child, the peer) is a waited-for child of this one, so its CPU time shows up in this
// process's cutime/cstime. CPU time used meanwhile by anything else = Δ(busy jiffies of the machine) − Δ(our
// children's + our own CPU time): the share of the machine other processes took during the measurement.
function jiffies() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0), total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const st = readFileSync('/proc/self/stat', 'utf8');
  const g = st.slice(st.lastIndexOf(')') + 2).split(' ').map(Number); // fields from 3 (state) on
  const mine = g[11] + g[12] + g[13] + g[14]; // utime stime cutime cstime (fields 14..17)
  return { busy: total - idle, total, mine };
}
function othersShare(a, b) {
  const total = b.total - a.total;
  return total > 0 ? Math.max(0, (b.busy - a.busy) - (b.mine - a.mine)) / total : 0;
}
/** Waits (up to maxS) until other processes use < 10% of the machine over a 1 s sample. */
function waitQuiet(maxS = 120) {
  const t0 = Date.now();
  let share = 1;
  while (Date.now() - t0 < maxS * 1e3) {
    const a = jiffies();
    const end = Date.now() + 1000; while (Date.now() < end) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    share = othersShare(a, jiffies());
    if (share < 0.1) break;
  }
  return share;
}
/** Runs a measurement (sync fn) after waiting for a quiet machine; repeats it (up to 3 tries) while other processes
 *  took > 10% of the machine during it; returns the least contaminated result, annotated. */
function clean(label, fn, tries = quick ? 1 : 3) {
  let best = null;
  for (let i = 0; i < tries; i++) {
    const before = waitQuiet();
    const a = jiffies();
    const res = fn();
    const share = othersShare(a, jiffies());
    if (!best || share < best.share) best = { res, share, before, attempt: i + 1 };
    CONTAMINATION.push({ label, attempt: i + 1, others_pct_before: +(100 * before).toFixed(1), others_pct_during: +(100 * share).toFixed(1) });
    console.log(`  ${label}: other processes ${(100 * share).toFixed(1)}% of the machine during the run${share > 0.1 && i + 1 < tries ? ' -> again' : ''}`);
    if (share <= 0.1) break;
  }
  return { ...best.res, others_pct_during: +(100 * best.share).toFixed(1), attempt: best.attempt };
}

/** Several runs of one PyTorch measurement -> one record: the median of every numeric field, the runs kept. */
function medianOfRuns(runs) {
  const ok = runs.filter((r) => r && !r.skipped);
  if (!ok.length) return runs[0] ?? { skipped: 'not run' };
  const out = { ...ok[0], runs: ok.length };
  for (const k of ['tokens_per_s', 'step_s', 'generate_s', 'generate_1_s', 'decode_only_tokens_per_s']) {
    const v = ok.map((r) => r[k]).filter((x) => typeof x === 'number');
    if (v.length) { out[k] = median(v); out[`${k}_runs`] = v; }
  }
  out.others_pct_during = Math.max(...ok.map((r) => r.others_pct_during ?? 0));
  if ('cache_matches_full_forward' in ok[0]) out.cache_matches_full_forward = ok.every((r) => r.cache_matches_full_forward);
  delete out.samples_s; delete out.samples_1_s;
  return out;
}
