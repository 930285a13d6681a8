#!/usr/bin/env node
// Layer benchmarks for @farskip/kernels, built only from the public ops:
//  (a) fused causal attention (forward, forward+backward) vs an unfused matmul+mask+softmax+matmul composition of
//      our own ops, measured in the same run;
//  (b) one DeepSeek/Qwen-style MoE layer forward+backward (RMSNorm, router, softmax top-2 renormalised, tokens
//      permuted by expert, grouped SwiGLU experts in HF [out, in] layout, weighted scatter back, shared expert);
//  (c) the whole 1-layer model train step and forward (embedding, RMSNorm, RoPE attention, MoE, final norm,
//      lm head, cross-entropy, backward, AdamW) against the PyTorch peer /work/shared/peers/torch_moe_step.py run
//      in the same run with the same config (--layers 1, --mode train / forward).
// Writes bench/results/layers.json.   node packages/kernels/bench/layers.mjs [--quick] [--no-peer]
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { Tensor, gather, indexAdd, indexSelect, noGrad } from '@farskip/tensor';
import {
  AdamW, add, attention, backendInfo, cpuBackend, crossEntropy, embedding, groupedMatmul, linear, mm, mul, rmsNorm,
  rope, scale, softmax, swiglu, topk,
} from '@farskip/kernels';
import { backgroundBusy, createFmaPeak, fmt, machine, median, now, table, writeResults } from './common.mjs';

const quick = process.argv.includes('--quick');
const noPeer = process.argv.includes('--no-peer');
const PEER = process.env.FARSKIP_TORCH_PEER ?? '/work/shared/peers/torch_moe_step.py';
const PY = process.env.FARSKIP_PYTHON ?? '/usr/bin/python3';
const info = backendInfo();
const be = cpuBackend('f32');
const THREADS = Math.min(2, os.cpus().length);
be.setNumThreads(THREADS);
const notes = [];
const busyStart = await backgroundBusy();
const fmaPeak = createFmaPeak(createRequire(import.meta.url)('koffi'), [THREADS], notes);
fmaPeak.measure(2);
console.log(`# @farskip/kernels layer bench — ${machine(info).cpu}, ${os.cpus().length} cores, backend ${info.backend}/${info.isa}, ${THREADS} threads, node ${process.version}`);

/** Median ms of an (optionally async) fn: `warm` untimed calls, then `reps` timed calls. */
async function timeAsync(fn, { reps = 3, warm = 1 } = {}) {
  for (let i = 0; i < warm; i++) await fn();
  const t = [];
  for (let i = 0; i < reps; i++) { const t0 = now(); await fn(); t.push(now() - t0); }
  return { ms: median(t), samples: t };
}

// ---- (a) attention --------------------------------------------------------------------------------------------
const ATT = [
  { B: 1, T: 512, Hq: 8, Hkv: 8, D: 64, ref: true },
  { B: 2, T: 1024, Hq: 16, Hkv: 4, D: 64, ref: true },
  { B: 1, T: 2048, Hq: 8, Hkv: 2, D: 128, ref: true },
  { B: 4, T: 1024, Hq: 16, Hkv: 4, D: 128, ref: false }, // unfused scores would be 4*16*1024^2 floats x several copies
];

/** Unfused reference: [B,T,H,D] -> per-head q kᵀ, scale, additive causal mask, softmax, @ v, back to [B,T,H,D]. */
function attentionUnfused(q, k, v, mask) {
  const [B, T, Hq, D] = q.shape, Hkv = k.shape[2], g = Hq / Hkv;
  const heads = (x, H) => x.permute(0, 2, 1, 3); // [B,H,T,D]
  const rep = (x) => (g === 1 ? x : x.unsqueeze(2).expand(B, Hkv, g, T, D)).reshape(B * Hq, T, D);
  const qh = heads(q, Hq).reshape(B * Hq, T, D);
  const kh = rep(heads(k, Hkv)), vh = rep(heads(v, Hkv));
  const s = add(scale(mm(qh, kh, false, true), 1 / Math.sqrt(D)), mask);
  const o = mm(softmax(s), vh);
  return o.reshape(B, Hq, T, D).permute(0, 2, 1, 3);
}
function causalMask(T) {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e30;
  return new Tensor(m, [T, T]);
}

const attRows = [];
for (const c of ATT) {
  const { B, T, Hq, Hkv, D } = c;
  const q = Tensor.randn([B, T, Hq, D], { seed: 1, requiresGrad: true });
  const k = Tensor.randn([B, T, Hkv, D], { seed: 2, requiresGrad: true });
  const v = Tensor.randn([B, T, Hkv, D], { seed: 3, requiresGrad: true });
  const dout = Tensor.randn([B, T, Hq, D], { seed: 4 });
  const fwdFlop = (4 * B * Hq * T * T * D) / 2; // causal: half of the 2 matmuls
  const bwdFlop = 2.5 * fwdFlop; // 5 matmuls in backward (dV, dP, dQ, dK, + recomputed S) counted as 2.5x forward
  const clear = () => { q.grad = null; k.grad = null; v.grad = null; };
  const reps = quick ? 2 : 3;
  const fwd = await timeAsync(() => noGrad(() => attention(q, k, v)), { reps });
  const fb = await timeAsync(async () => { clear(); await attention(q, k, v).backward(dout); }, { reps });
  be.setNumThreads(1);
  const fwd1 = await timeAsync(() => noGrad(() => attention(q, k, v)), { reps: 2 });
  be.setNumThreads(THREADS);
  const row = {
    config: `B${B} T${T} H${Hq}/${Hkv} D${D}`, B, T, Hq, Hkv, D, gqa: Hq / Hkv,
    fwd_gflop: fwdFlop / 1e9, fwdbwd_gflop: (fwdFlop + bwdFlop) / 1e9,
    fused_fwd_ms: fwd.ms, fused_fwd_gflops: fwdFlop / (fwd.ms * 1e6),
    fused_fwd_1thread_ms: fwd1.ms, fused_fwd_1thread_gflops: fwdFlop / (fwd1.ms * 1e6), fwd_thread_scaling: fwd1.ms / fwd.ms,
    fused_fwdbwd_ms: fb.ms, fused_fwdbwd_gflops: (fwdFlop + bwdFlop) / (fb.ms * 1e6),
  };
  if (c.ref) {
    const mask = causalMask(T);
    // correctness of the comparison: same output
    const oF = noGrad(() => attention(q, k, v)).data, oR = noGrad(() => attentionUnfused(q, k, v, mask)).data;
    let md = 0; for (let i = 0; i < oF.length; i++) md = Math.max(md, Math.abs(oF[i] - oR[i]));
    row.max_abs_diff_vs_unfused = md;
    const rf = await timeAsync(() => noGrad(() => attentionUnfused(q, k, v, mask)), { reps: quick ? 1 : 2 });
    const rfb = await timeAsync(async () => { clear(); await attentionUnfused(q, k, v, mask).backward(dout); }, { reps: quick ? 1 : 2 });
    Object.assign(row, {
      unfused_fwd_ms: rf.ms, unfused_fwd_gflops: fwdFlop / (rf.ms * 1e6),
      unfused_fwdbwd_ms: rfb.ms, unfused_fwdbwd_gflops: (fwdFlop + bwdFlop) / (rfb.ms * 1e6),
      speedup_fwd: rf.ms / fwd.ms, speedup_fwdbwd: rfb.ms / fb.ms,
    });
  }
  attRows.push(row);
  console.log(`  attention ${row.config}: fwd ${fmt(row.fused_fwd_gflops)} GFLOP/s, fwd+bwd ${fmt(row.fused_fwdbwd_gflops)}${row.speedup_fwd ? `, vs unfused x${fmt(row.speedup_fwd, 2)} / x${fmt(row.speedup_fwdbwd, 2)}` : ''}`);
}

// ---- (b) MoE layer and (c) the whole 1-layer model ----------------------------------------------------------------
const CFG = { vocab: 4096, d: 256, heads: 8, experts: 8, topk: 2, ffn: 512, shared: 1, batch: 8, seq: 256, eps: 1e-6, theta: 10000 };
const NTOK = CFG.batch * CFG.seq;
let seed = 100;
const param = (shape, std = 0.02) => Tensor.randn(shape, { seed: seed++, std, requiresGrad: true });
const ones = (n) => Tensor.ones([n], { requiresGrad: true });

function makeMoE() {
  const { d, experts: E, ffn } = CFG;
  return {
    norm: ones(d), router: param([E, d]),
    wGate: param([E, ffn, d]), wUp: param([E, ffn, d]), wDown: param([E, d, ffn]), // HF nn.Linear [out, in] per expert
    sGate: param([ffn * CFG.shared, d]), sUp: param([ffn * CFG.shared, d]), sDown: param([d, ffn * CFG.shared]),
  };
}

/** Routing bookkeeping (integers only, not differentiated): sort the N*k (token, slot) assignments by expert. */
function route(indices, N, k, E) {
  const idx = indices.data;
  const sizes = new Int32Array(E);
  for (let i = 0; i < N * k; i++) sizes[idx[i]]++;
  const start = new Int32Array(E);
  for (let e = 1; e < E; e++) start[e] = start[e - 1] + sizes[e - 1];
  const tok = new Int32Array(N * k), pos = new Int32Array(N * k);
  for (let i = 0; i < N * k; i++) { const p = start[idx[i]]++; tok[p] = (i / k) | 0; pos[p] = i; }
  return { sizes: new Tensor(sizes, [E]), tok: new Tensor(tok, [N * k]), pos: new Tensor(pos, [N * k]) };
}

/** The MoE MLP on u = rmsNorm(x) [N, d]: shared expert + routed top-k experts. `prof` (optional) collects ms per stage. */
function moeMlp(p, u, prof = null) {
  const { d, experts: E, topk: k } = CFG;
  const N = u.shape[0];
  let t = prof ? now() : 0;
  const lap = (name) => { if (prof) { const t1 = now(); prof[name] = (prof[name] ?? 0) + t1 - t; t = t1; } };
  const logits = linear(u, p.router); // [N, E]
  const probs = softmax(logits); // the peer: softmax(gate(x)) in f32, then top-k
  const { indices } = topk(probs, k);
  // renormalised top-k weights: p_i / sum_topk p_j == softmax over the top-k logits (same value, same gradient)
  const w = softmax(gather(logits, 1, indices)); // [N, k]
  lap('router: linear, softmax, top-2, renormalise');
  const r = route(indices, N, k, E);
  lap('routing bookkeeping (JS counting sort)');
  const xs = indexSelect(u, 0, r.tok); // [N*k, d] permuted by expert
  lap('permute tokens (indexSelect)');
  const h = swiglu(groupedMatmul(xs, p.wGate, r.sizes, { transW: true }), groupedMatmul(xs, p.wUp, r.sizes, { transW: true }));
  const y = groupedMatmul(h, p.wDown, r.sizes, { transW: true }); // [N*k, d]
  lap('experts: groupedMatmul gate/up, swiglu, down');
  const ws = indexSelect(w.reshape(N * k, 1), 0, r.pos); // routing weight of each permuted row
  const yw = mul(y, ws);
  lap('scale by routing weight (indexSelect, mul)');
  const routed = indexAdd(Tensor.zeros([N, d]), 0, r.tok, yw); // unpermute: each row back to its token
  lap('unpermute (indexAdd)');
  const shared = linear(swiglu(linear(u, p.sGate), linear(u, p.sUp)), p.sDown);
  lap('shared expert (linear, swiglu, linear)');
  const out = add(shared, routed);
  lap('add');
  return out;
}

function moeLayer(p, x) { return add(x, moeMlp(p, rmsNorm(x, p.norm, CFG.eps))); }

// (b) MoE layer alone: x [tokens, d] requires grad, upstream gradient fixed
const moe = makeMoE();
const moeParams = Object.values(moe);
const xMoe = Tensor.randn([NTOK, CFG.d], { seed: 7, requiresGrad: true });
const gMoe = Tensor.randn([NTOK, CFG.d], { seed: 8 });
const clearMoe = () => { for (const t of [...moeParams, xMoe]) t.grad = null; };
const moeFwd = await timeAsync(() => noGrad(() => moeLayer(moe, xMoe)), { reps: quick ? 3 : 5 });
const moeFb = await timeAsync(async () => { clearMoe(); await moeLayer(moe, xMoe).backward(gMoe); }, { reps: quick ? 3 : 5 });
// FLOP of the MoE layer's GEMMs: per token k routed experts + 1 shared, each 3 * 2*d*ffn, plus router 2*d*E
const moeGemmFlop = NTOK * ((CFG.topk + CFG.shared) * 3 * 2 * CFG.d * CFG.ffn + 2 * CFG.d * CFG.experts);
const moeRows = [
  { what: 'MoE layer forward', ms: moeFwd.ms, tokens_per_s: NTOK / (moeFwd.ms / 1e3), gemm_gflops: moeGemmFlop / (moeFwd.ms * 1e6), samples: moeFwd.samples },
  { what: 'MoE layer forward+backward', ms: moeFb.ms, tokens_per_s: NTOK / (moeFb.ms / 1e3), gemm_gflops: (3 * moeGemmFlop) / (moeFb.ms * 1e6), samples: moeFb.samples },
];
// where the MoE fwd+bwd time goes: the grouped GEMMs alone at the same shapes (raw backend), balanced groups
{
  const { d, experts: E, ffn, topk: k } = CFG;
  const rowsK = NTOK * k;
  const off = new Int32Array(E + 1); for (let e = 0; e <= E; e++) off[e] = Math.round((e * rowsK) / E);
  const X = new Float32Array(rowsK * d).fill(0.01), H = new Float32Array(rowsK * ffn).fill(0.01);
  const W1 = new Float32Array(E * ffn * d).fill(0.01), W2 = new Float32Array(E * d * ffn).fill(0.01);
  const Y1 = new Float32Array(rowsK * ffn), Y2 = new Float32Array(rowsK * d), dW1 = new Float32Array(E * ffn * d), dX = new Float32Array(rowsK * d);
  const g = await timeAsync(() => {
    // forward: gate, up, down; backward: dX and dW for each of the three (same shapes)
    for (let i = 0; i < 2; i++) be.groupedSgemm(E, off, true, ffn, d, X, W1, 0, Y1);
    be.groupedSgemm(E, off, true, d, ffn, H, W2, 0, Y2);
    for (let i = 0; i < 2; i++) { be.groupedSgemm(E, off, false, d, ffn, Y1, W1, 0, dX); be.groupedSgemmWgrad(E, off, true, ffn, d, X, Y1, 0, dW1); }
    be.groupedSgemm(E, off, false, ffn, d, Y2, W2, 0, Y1); be.groupedSgemmWgrad(E, off, true, d, ffn, H, Y2, 0, W2);
  }, { reps: 5 });
  const fl = 3 * NTOK * k * 3 * 2 * d * ffn;
  moeRows.push({ what: 'routed grouped GEMMs only (fwd+bwd, raw)', ms: g.ms, tokens_per_s: NTOK / (g.ms / 1e3), gemm_gflops: fl / (g.ms * 1e6), samples: g.samples });
}
// forward stage profile (no grad), summed over 5 passes then averaged
const moeProfile = {};
noGrad(() => { for (let i = 0; i < 6; i++) moeMlp(moe, rmsNorm(xMoe, moe.norm, CFG.eps), i === 0 ? null : moeProfile); });
for (const key of Object.keys(moeProfile)) moeProfile[key] /= 5;
for (const r of moeRows) console.log(`  ${r.what}: ${fmt(r.ms, 2)} ms, ${fmt(r.tokens_per_s, 0)} tok/s`);

// (c) whole 1-layer model, same config as the peer
function makeModel() {
  const { vocab, d } = CFG;
  return {
    embed: param([vocab, d]),
    ln1: ones(d), wq: param([d, d]), wk: param([d, d]), wv: param([d, d]), wo: param([d, d]),
    ln2: ones(d), moe: makeMoE(), norm: ones(d), lmHead: param([vocab, d]),
  };
}
// the model's MoE uses ln2 as its input norm, so the MoE block's own norm weight is not a model parameter
const modelParams = (m) => [m.embed, m.ln1, m.wq, m.wk, m.wv, m.wo, m.ln2, ...Object.entries(m.moe).filter(([k]) => k !== 'norm').map(([, v]) => v), m.norm, m.lmHead];
const positions = new Tensor(Int32Array.from({ length: CFG.seq }, (_, i) => i), [CFG.seq]);
function modelForward(m, ids) {
  const { batch: B, seq: T, d, heads: H } = CFG, Dh = d / H;
  const x = embedding(ids, m.embed); // [B, T, d]
  const u = rmsNorm(x, m.ln1, CFG.eps);
  const q = rope(linear(u, m.wq).reshape(B, T, H, Dh), positions, { theta: CFG.theta });
  const k = rope(linear(u, m.wk).reshape(B, T, H, Dh), positions, { theta: CFG.theta });
  const v = linear(u, m.wv).reshape(B, T, H, Dh);
  const h = add(x, linear(attention(q, k, v).reshape(B, T, d), m.wo));
  const hf = h.reshape(B * T, d);
  const o = add(hf, moeMlp(m.moe, rmsNorm(hf, m.ln2, CFG.eps)));
  return linear(rmsNorm(o, m.norm, CFG.eps), m.lmHead); // [B*T, vocab]
}
const model = makeModel();
const mParams = modelParams(model);
const nParams = mParams.reduce((s, p) => s + p.numel, 0);
const opt = new AdamW(mParams, { lr: 1e-3, weightDecay: 0.01 });
const ids = new Int32Array(CFG.batch * (CFG.seq + 1));
{ let s = 12345; for (let i = 0; i < ids.length; i++) { s = (s * 1103515245 + 12345) >>> 0; ids[i] = (s >>> 8) % CFG.vocab; } }
const inp = new Int32Array(NTOK), tgt = new Int32Array(NTOK);
for (let b = 0; b < CFG.batch; b++) for (let t = 0; t < CFG.seq; t++) {
  inp[b * CFG.seq + t] = ids[b * (CFG.seq + 1) + t]; tgt[b * CFG.seq + t] = ids[b * (CFG.seq + 1) + t + 1];
}
const inpT = new Tensor(inp, [CFG.batch, CFG.seq]), tgtT = new Tensor(tgt, [NTOK]);
let lastLoss = NaN;
async function trainStep() {
  const loss = crossEntropy(modelForward(model, inpT), tgtT);
  lastLoss = loss.item();
  opt.zeroGrad();
  await loss.backward();
  opt.step();
}
const fwdStep = () => noGrad(() => modelForward(model, inpT));

// Ours and the peer alternate (ours, peer, ours) so drift on a shared machine hits both.
function runPeer(mode, steps) {
  if (noPeer) return { skipped: '--no-peer' };
  if (!existsSync(PEER)) return { skipped: `peer script ${PEER} not found` };
  if (!existsSync(PY)) return { skipped: `${PY} not found` };
  try {
    execFileSync(PY, ['-c', 'import torch'], { stdio: 'pipe', timeout: 60e3 });
  } catch { return { skipped: 'python3-torch is not installed (apt-get install -y python3-torch)' }; }
  try {
    const outp = execFileSync(PY, [PEER, '--layers', '1', '--mode', mode, '--threads', String(THREADS), '--steps', String(steps),
      '--vocab', String(CFG.vocab), '--hidden', String(CFG.d), '--heads', String(CFG.heads), '--experts', String(CFG.experts),
      '--topk', String(CFG.topk), '--ffn', String(CFG.ffn), '--shared', String(CFG.shared), '--seq', String(CFG.seq), '--batch', String(CFG.batch)],
    { encoding: 'utf8', timeout: 240e3, stdio: ['ignore', 'pipe', 'pipe'] });
    const line = outp.trim().split('\n').filter((l) => l.startsWith('{')).pop();
    return JSON.parse(line);
  } catch (e) { return { skipped: `peer failed: ${String(e.message ?? e).split('\n')[0]}` }; }
}
function torchConfig() {
  if (noPeer || !existsSync(PY)) return null;
  try {
    return execFileSync(PY, ['-c', "import torch,re; s=torch.__config__.show(); print(torch.__version__, '|', ';'.join(x.strip() for x in s.splitlines() if 'CPU capability' in x), '|', ';'.join(re.findall(r'BLAS_INFO=\\w+', s)))"],
      { encoding: 'utf8', stdio: 'pipe', timeout: 60e3 }).trim();
  } catch { return null; }
}

const ourTrain = [], ourFwd = [];
const t1 = await timeAsync(trainStep, { reps: quick ? 2 : 3, warm: 1 }); ourTrain.push(...t1.samples);
const f1 = await timeAsync(fwdStep, { reps: quick ? 2 : 3, warm: 1 }); ourFwd.push(...f1.samples);
const peerTrain = runPeer('train', quick ? 2 : 3);
const peerFwd = runPeer('forward', quick ? 3 : 5);
const t2 = await timeAsync(trainStep, { reps: quick ? 2 : 3, warm: 0 }); ourTrain.push(...t2.samples);
const f2 = await timeAsync(fwdStep, { reps: quick ? 2 : 3, warm: 0 }); ourFwd.push(...f2.samples);
be.setNumThreads(THREADS);
const trainMs = median(ourTrain), fwdMs = median(ourFwd);
const modelRows = [
  { what: '1-layer model train step (fwd+bwd+AdamW)', ours_ms: trainMs, ours_tokens_per_s: NTOK / (trainMs / 1e3),
    pytorch_ms: peerTrain.step_s ? peerTrain.step_s * 1e3 : null, pytorch_tokens_per_s: peerTrain.tokens_per_s ?? null,
    ratio_ours_vs_pytorch: peerTrain.tokens_per_s ? NTOK / (trainMs / 1e3) / peerTrain.tokens_per_s : null, ours_samples_ms: ourTrain },
  { what: '1-layer model forward (no grad)', ours_ms: fwdMs, ours_tokens_per_s: NTOK / (fwdMs / 1e3),
    pytorch_ms: peerFwd.step_s ? peerFwd.step_s * 1e3 : null, pytorch_tokens_per_s: peerFwd.tokens_per_s ?? null,
    ratio_ours_vs_pytorch: peerFwd.tokens_per_s ? NTOK / (fwdMs / 1e3) / peerFwd.tokens_per_s : null, ours_samples_ms: ourFwd },
];
if (peerTrain.params && peerTrain.params !== nParams) notes.push(`Parameter counts differ: ours ${nParams}, peer ${peerTrain.params}.`);
for (const p of [peerTrain, peerFwd]) if (p.skipped) { notes.push(`PyTorch rows skipped: ${p.skipped}.`); break; }

// ---- tables ---------------------------------------------------------------------------------------------------
const attTable = table(['config', 'fwd GFLOP', 'fused fwd ms', 'GFLOP/s', '1-thr fwd GFLOP/s', 'fused f+b ms', 'GFLOP/s', 'unfused fwd ms', 'unfused f+b ms', 'fused speedup fwd', 'f+b'],
  attRows.map((r) => [r.config, fmt(r.fwd_gflop, 2), fmt(r.fused_fwd_ms), fmt(r.fused_fwd_gflops), fmt(r.fused_fwd_1thread_gflops), fmt(r.fused_fwdbwd_ms), fmt(r.fused_fwdbwd_gflops),
    fmt(r.unfused_fwd_ms), fmt(r.unfused_fwdbwd_ms), fmt(r.speedup_fwd, 2), fmt(r.speedup_fwdbwd, 2)]));
const moeTable = table(['MoE layer (hidden 256, 8 experts, top-2, ffn 512, 1 shared; 2048 tokens)', 'ms', 'tokens/s', 'GEMM GFLOP/s'],
  moeRows.map((r) => [r.what, fmt(r.ms, 2), fmt(r.tokens_per_s, 0), fmt(r.gemm_gflops)]));
const modelTable = table(['1-layer MoE model, batch 8 x seq 256', 'ours ms', 'ours tok/s', 'PyTorch ms', 'PyTorch tok/s', 'ours/PyTorch'],
  modelRows.map((r) => [r.what, fmt(r.ours_ms), fmt(r.ours_tokens_per_s, 0), fmt(r.pytorch_ms), fmt(r.pytorch_tokens_per_s, 0), fmt(r.ratio_ours_vs_pytorch, 2)]));
console.log(`\nfused causal attention (${THREADS} threads; GFLOP counts 4·B·H·T²·D/2 forward, 3.5x that for fwd+bwd)\n` + attTable);
const profTable = table(['MoE forward stage (no grad, mean of 5)', 'ms'], Object.entries(moeProfile).map(([k, v]) => [k, fmt(v, 2)]));
console.log(`\n${moeTable}`);
console.log(`\n${profTable}`);
console.log(`\n${modelTable}`);

// ---- notes --------------------------------------------------------------------------------------------------------
fmaPeak.measure(1);
fmaPeak.dispose();
// the ceiling: the best of this run's own FMA-loop measurement and gemm.json's (same machine, earlier)
let gemmPeak = fmaPeak.peakFor(THREADS);
try {
  const g = JSON.parse(readFileSync(new URL('./results/gemm.json', import.meta.url), 'utf8'));
  const fromGemm = Math.max(0, ...Object.entries(g.fma_peak_gflops ?? {}).filter(([k]) => k.endsWith(`x${THREADS}`)).map(([, v]) => v));
  if (fromGemm > (gemmPeak ?? 0)) gemmPeak = fromGemm;
} catch { /* gemm.mjs not run */ }
if (gemmPeak) {
  notes.push(`Prediction: with the ${THREADS}-thread FMA peak (best of this run's fma_peak.c loop and gemm.json: ${gemmPeak.toFixed(0)} GFLOP/s) and ~50% efficiency for fused attention (online softmax, exp and masking between the two matmuls), ` +
    attRows.map((r) => `${r.config}: fwd ${r.fwd_gflop.toFixed(2)} GFLOP -> ~${(r.fwd_gflop * 1e3 / (0.5 * gemmPeak)).toFixed(1)} ms (measured ${r.fused_fwd_ms.toFixed(1)} ms, ${(100 * r.fused_fwd_gflops / gemmPeak).toFixed(0)}% of peak); fwd+bwd ~${(r.fwdbwd_gflop * 1e3 / (0.5 * gemmPeak)).toFixed(0)} ms (measured ${r.fused_fwdbwd_ms.toFixed(0)} ms, ${(100 * r.fused_fwdbwd_gflops / gemmPeak).toFixed(0)}%)`).join('; ') + '.');
  const profTotal = Object.values(moeProfile).reduce((a, b) => a + b, 0);
  const gemmStage = (moeProfile['experts: groupedMatmul gate/up, swiglu, down'] ?? 0) + (moeProfile['shared expert (linear, swiglu, linear)'] ?? 0);
  notes.push(`MoE layer GEMM work: ${(moeGemmFlop / 1e9).toFixed(2)} GFLOP forward, ~${(3 * moeGemmFlop / 1e9).toFixed(2)} fwd+bwd -> ${(moeGemmFlop / 1e6 / (0.6 * gemmPeak)).toFixed(1)} ms forward / ${(3 * moeGemmFlop / 1e6 / (0.6 * gemmPeak)).toFixed(1)} ms fwd+bwd at 60% of peak if the GEMMs were all; measured ${moeFwd.ms.toFixed(1)} / ${moeFb.ms.toFixed(1)} ms. ` +
    `Forward profile: expert + shared GEMM stages ${gemmStage.toFixed(1)} of ${profTotal.toFixed(1)} ms (${(100 * gemmStage / profTotal).toFixed(0)}%); the rest is routing and data movement (router/softmax/topk, indexSelect, indexAdd, mul with the [N*k,1] routing weight). ` +
    `The expert GEMMs are small (${CFG.experts} groups of ~${(NTOK * CFG.topk / CFG.experts) | 0} rows x K ${CFG.d} or ${CFG.ffn}), so they run well below the large-shape GEMM rate.`);
}
notes.push('Unfused reference = our own mm (batched, transB) + scale + additive causal mask + softmax + mm, with GQA heads materialised by expand; it computes the full T×T scores (2x the causal FLOPs) and materialises them, so its GFLOP/s uses the same causal count for a like-for-like time ratio.');
notes.push('MoE routing follows the peer: softmax(router logits) -> top-2 -> renormalise. The renormalised weights are computed as softmax over the two selected logits, which equals p_i / (p_1 + p_2) exactly (value and gradient) and needs no division op.');
notes.push('The PyTorch peer is Debian python3-torch (1.13) at the same thread count; its MoE loops over experts in Python with torch.where/index_add_, its attention materialises T×T scores; the 1-layer model rows are the apples-to-apples comparison (same config, embedding, RoPE attention, MoE, norm, lm head, cross-entropy, backward, AdamW).');
const busyEnd = await backgroundBusy();
const busy = { start_pct: busyStart, end_pct: busyEnd };
if (Math.max(busyStart ?? 0, busyEnd ?? 0) > 15) notes.push(`NOISY: other processes used ${busyStart}% / ${busyEnd}% of the CPUs just before / after this run (idle sample); absolute numbers are depressed, the same-run ratios less so.`);
console.log(`# background CPU use by other processes: ${busyStart}% before, ${busyEnd}% after`);
const out = {
  fma_peak_gflops: fmaPeak.peak, peak_used_gflops: gemmPeak,
  bench: 'layers', date: new Date().toISOString(), node: process.version, machine: machine(info), background_cpu_busy: busy, native_library_mtime: info.library && existsSync(info.library) ? statSync(info.library).mtime.toISOString() : null, threads: THREADS,
  config: CFG, tokens: NTOK, params: nParams, last_loss: lastLoss,
  pytorch: { peer: PEER, train: peerTrain, forward: peerFwd, config: torchConfig() },
  attention: attRows, moe: moeRows, moe_forward_profile_ms: moeProfile, model: modelRows, notes,
  tables: { attention: attTable, moe: moeTable, moe_profile: profTable, model: modelTable },
};
console.log('\nnotes:\n- ' + notes.join('\n- '));
console.log(`\nwrote ${writeResults('layers', out)}`);
