#!/usr/bin/env node
// Serving benchmark of the inference runner at TP/EP = 2 (threads backend: 2 ranks = 2 worker threads, one core
// each; heads, shared and routed experts split, the all-reduce inference form), the original model against its
// FarSkip conversion (same weights), without link emulation and with an emulated link calibrated so that
// communication is ≈ 30 % of the original model's blocking layer time (the paper's regime):
//   TTFT for prompts of 512 / 1024 / 2048 tokens with 1 and 2 requests arriving together, decode tokens/s at
//   batch 1 and 4, the prefill overlap fraction (hidden / total communication time, from the tracer);
// plus, on one rank, the server's overhead per request over the engine (what `generate` runs) for the same work,
// and the check that both give the same greedy tokens.
//   node bench/ttft.mjs [--quick]   (needs the built dists: npm run build)   ->  bench/results/ttft.json
import { mkdtempSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick') || process.env.FARSKIP_BENCH_QUICK === '1';
const LAYERS = quick ? 2 : 16;
const ARCH = quick
  ? { hidden: 64, heads: 4, kvHeads: 2, experts: 8, topK: 2, expertHidden: 64, shared: 64 }
  // top-4: the routed experts dominate the MoE as in the paper's models (DeepSeek-V3 top-8 of 256 + 1 shared,
  // Qwen3-30B-A3B top-8 of 128); the fused attention + shared all-reduce hides behind them. With top-2 (routed =
  // shared compute) that all-reduce's transfer equalled the routed compute: a probe of 3 prefills per model (FarSkip,
  // link at the same share, not committed) gave 76-95 % overlap with top-2 and 94-100 % with top-4.
  : { hidden: 512, heads: 8, kvHeads: 4, experts: 16, topK: 4, expertHidden: 256, shared: 512 };
const PROMPTS = quick ? [32, 64] : [512, 1024, 2048];
const BATCHES = [1, 2];
const DECODE = { prompt: quick ? 16 : 128, tokens: quick ? 4 : 32, batches: [1, 4] };
const CALIBRATE_AT = quick ? 64 : 1024;
const TARGET_COMM_SHARE = 0.3;

if (process.env.FARSKIP_BENCH_RANK) await rankMain();
else await driver();

function modelConfig(vocab) {
  return {
    architectures: ['Qwen2MoeForCausalLM'], model_type: 'qwen2_moe', vocab_size: vocab, hidden_size: ARCH.hidden, max_position_embeddings: 4096,
    tie_word_embeddings: false, intermediate_size: 4 * ARCH.hidden, num_hidden_layers: LAYERS, num_attention_heads: ARCH.heads,
    num_key_value_heads: ARCH.kvHeads, rms_norm_eps: 1e-6, rope_theta: 1e6, decoder_sparse_step: 1, moe_intermediate_size: ARCH.expertHidden,
    shared_expert_intermediate_size: ARCH.shared, num_experts_per_tok: ARCH.topK, num_experts: ARCH.experts, norm_topk_prob: false,
    mlp_only_layers: [], qkv_bias: false, torch_dtype: 'float32',
  };
}

// ------------------------------------------------------------------------------------------------ driver
async function driver() {
  process.env.FARSKIP_NUM_THREADS = '1'; // one core per rank (the ranks share this process's native pool)
  const { launch } = await import('@farskip/collectives');
  const { CausalLM, parseConfig, saveModel, saveTokenizer, trainByteLevelBpe, Tokenizer } = await import('@farskip/models');
  const dir = mkdtempSync(join(os.tmpdir(), 'farskip-infer-bench-'));
  const text = 'Mixture-of-experts transformers route each token to a few experts; FarSkip rewires the skip connections so that collectives overlap computation. ';
  const tokJson = trainByteLevelBpe([text, text.toUpperCase()], { vocabSize: 320, specialTokens: ['<|endoftext|>'] });
  await saveTokenizer(dir, tokJson, { eos_token: '<|endoftext|>', bos_token: null, model_max_length: 4096 });
  const vocab = Tokenizer.fromObjects(tokJson).vocabSize;
  saveModel(CausalLM.random(parseConfig(modelConfig(vocab), 'bench'), 11), dir);
  console.log(`bench model: ${LAYERS} layers, hidden ${ARCH.hidden}, ${ARCH.heads} heads (${ARCH.kvHeads} kv), ${ARCH.experts} experts top-${ARCH.topK} of ${ARCH.expertHidden} + shared ${ARCH.shared}, vocab ${vocab}; ${dir}`);

  const run = async (farskip, link, label) => {
    const env = { FARSKIP_BENCH_RANK: '1', FARSKIP_BENCH_MODEL: dir, FARSKIP_BENCH_FARSKIP: farskip ? 'full' : 'original', FARSKIP_EMULATE_LINK: link ?? '', ...(quick ? { FARSKIP_BENCH_QUICK: '1' } : {}) };
    const res = await launch({ world: 2, backend: 'threads', script: fileURLToPath(import.meta.url), env, captureOutput: true, prefixOutput: false });
    const bad = res.find((r) => r.exitCode !== 0);
    if (bad) throw new Error(`rank ${bad.rank} failed (${label}): ${bad.error?.message ?? ''}\n${bad.output ?? ''}`);
    const out = JSON.parse(res[0].output.split('\n').find((l) => l.startsWith('{')));
    const peerGcs = JSON.parse(res[1].output.split('\n').find((l) => l.startsWith('G'))?.slice(1) ?? '[]');
    if (out.overlapRunsComm) {
      const gcs = [...out.gcs, ...peerGcs];
      out.overlapOutsideGcRuns = out.overlapRunsComm.map((c) => overlapOutsideGc(c, gcs));
    }
    delete out.gcs;
    delete out.overlapRunsComm;
    return out;
  };

  console.log(`calibrating: original model, no link emulation, prefill of ${CALIBRATE_AT} tokens ...`);
  const cal = await run(false, null, 'calibration');
  // original connectivity: 3 blocking all-reduces of [T, hidden] f32 per layer (attention, shared, routed experts)
  const bytes = CALIBRATE_AT * ARCH.hidden * 4;
  const { linkForCommShare } = await import('@farskip/collectives');
  const link = linkForCommShare(3 * bytes, cal.calibration.computeMsPerLayer, TARGET_COMM_SHARE);
  const rows = [];
  for (const l of [null, link]) {
    for (const farskip of [false, true]) {
      const label = `${farskip ? 'farskip' : 'original'} ${l ?? 'no emulation'}`;
      console.log(`${label} ...`);
      rows.push({ variant: farskip ? 'farskip' : 'original', link: l, ...(await run(farskip, l, label)) });
    }
  }
  const overhead = await serverOverhead(dir);
  printRows(rows, overhead);
  const notes = [
    `TP/EP = 2 on the threads backend: 2 ranks (worker threads of one process), FARSKIP_NUM_THREADS=1 (one core each); tokens replicated, attention heads, shared and routed experts split; every layer all-reduces its outputs (original: attention, shared, routed = 3 blocking all-reduces of [T, ${ARCH.hidden}] f32; FarSkip: attention + shared fused into one all-reduce hidden behind the routed experts, the routed all-reduce hidden behind the next layer's attention).`,
    `Link: bandwidth chosen from the calibration run so that the original's 3 all-reduces per layer take ${TARGET_COMM_SHARE * 100} % of its blocking layer time at ${CALIBRATE_AT} tokens (comm = ${TARGET_COMM_SHARE}/(1-${TARGET_COMM_SHARE}) × compute); 20 µs latency per message; the comm worker sleeps for bytes / bandwidth (no CPU), so it models a link, not a NIC's CPU cost.`,
    'TTFT = time from submit to the first sampled token (prefill of the whole prompt + lm head on the last position + sampling), engine on rank 0 (what the server runs), best of 3 repetitions; with 2 requests arriving together the prefills run one after the other (no chunked or batched prefill), so the mean TTFT is ~1.5 prefills.',
    `Overlap = hidden / total communication time of the prefill forward from the tracer (rank 0, ${PROMPTS[PROMPTS.length - 1]} tokens, best of 3 prefills; all three in overlapRuns). GC pauses = this rank's V8 garbage-collection pause time during that prefill: a pause on one rank (every op allocates its output; each 64 MB of new array buffers triggers a major GC) leaves the other rank blocked in the collective it is in, which the tracer rightly counts as exposed. overlapOutsideGcRuns: per prefill, the share of communication time during which either rank paused for GC (gcAffectedCommShare; both ranks' pauses are recorded) and the overlap of the collectives no pause touched. The last layer runs for the last position only (outputs \'last\': only its logits are sampled), so its two all-reduces carry one row per sequence and their exposure is negligible.`,
    'Decode tokens/s = generated tokens after the first / time from the first to the last token, all sequences of the batch in one decode forward per step.',
    'Server overhead: the same request (token-id prompt, greedy max_tokens) on one rank and a 2-layer model, interleaved with Engine.complete of the same work (what `generate` runs); overheadMs = the median of the server\'s own Server-Timing (request arrival to response, minus the engine\'s submit-to-finish); clientObservedOverheadMs = the median of paired (HTTP round trip - Engine.complete), which adds loopback TCP and the in-process client\'s request and JSON handling.',
  ];
  for (const n of notes) console.log('# ' + n);
  const out = { benchmark: 'infer-ttft', quick, machine: machineInfo(), model: { layers: LAYERS, ...ARCH, family: 'qwen2_moe' }, mesh: { tp: 2, experts: 'split over tp (all-reduce form)' },
    calibration: { link, prefillTokens: CALIBRATE_AT, ...cal.calibration }, rows, serverOverhead: overhead, notes };
  const outDir = quick ? os.tmpdir() : join(here, 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, quick ? 'ttft-quick.json' : 'ttft.json');
  writeFileSync(file + '.tmp', JSON.stringify(out, null, 2) + '\n');
  renameSync(file + '.tmp', file);
  rmSync(dir, { recursive: true, force: true });
  console.log(`wrote ${file}`);
}

/** One rank: engine (what `generate` runs) vs the HTTP server, same request; and their greedy tokens agree. */
async function serverOverhead(benchDir) {
  const { Engine, InferenceServer, loadForInference } = await import('@farskip/infer');
  const { CausalLM, parseConfig, saveModel } = await import('@farskip/models');
  // a small model (2 layers, hidden 64) on the bench tokenizer: the overhead is per request, and a short engine
  // time keeps the machine's noise out of the difference
  const dir = mkdtempSync(join(os.tmpdir(), 'farskip-infer-overhead-'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(dir, f), readFileSync(join(benchDir, f)));
  const big = JSON.parse(readFileSync(join(benchDir, 'config.json'), 'utf8'));
  saveModel(CausalLM.random(parseConfig({ ...big, num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, moe_intermediate_size: 64, shared_expert_intermediate_size: 64, intermediate_size: 256 }, 'overhead'), 5), dir);
  const loaded = loadForInference(dir, { id: 'bench' });
  const engine = new Engine(loaded.model, { maxBatch: 2, maxModelLen: 512 });
  const run = engine.start();
  const server = new InferenceServer(loaded, engine, { port: 0 });
  const { url } = await server.listen();
  const prompt = Array.from({ length: quick ? 16 : 128 }, (_, i) => 3 + ((i * 7) % (loaded.model.spec.vocabSize - 3)));
  const maxTokens = 8;
  const { request } = await import('node:http');
  const agent = new (await import('node:http')).Agent({ keepAlive: true });
  const postJson = (body) => new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = request(`${url}/v1/completions`, { method: 'POST', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ json: JSON.parse(text), timing: res.headers['server-timing'] }));
    });
    req.on('error', reject);
    req.end(data);
  });
  const direct = [], http = [], inServer = [];
  let tokensDirect = null;
  for (let i = 0; i < (quick ? 5 : 61); i++) {
    let t0 = performance.now();
    const s = await engine.complete({ prompt, maxNewTokens: maxTokens, temperature: 0 });
    direct.push(performance.now() - t0);
    tokensDirect = s.generated;
    t0 = performance.now();
    const { timing } = await postJson({ model: 'bench', prompt, max_tokens: maxTokens, temperature: 0 });
    http.push(performance.now() - t0);
    const dur = (name) => Number(new RegExp(`${name};dur=([0-9.]+)`).exec(timing)[1]);
    inServer.push(dur('total') - dur('engine'));
  }
  // the greedy tokens of the server (logprobs lists them) and of the engine agree
  const textHttp = (await postJson({ model: 'bench', prompt, max_tokens: maxTokens, temperature: 0, logprobs: 0 })).json.choices[0].logprobs.tokens;
  agent.destroy();
  await server.close();
  await engine.stop();
  await run;
  rmSync(dir, { recursive: true, force: true });
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const sameTokens = JSON.stringify(textHttp) === JSON.stringify(tokensDirect.map((t) => loaded.tokenizer.decode([t])));
  // the first repetitions warm up (JIT, sockets); the overhead is the median of the paired differences
  const warm = Math.min(5, Math.floor(http.length / 3));
  const pairs = http.slice(warm).map((h, i) => h - direct[i + warm]);
  return { model: '2 layers, hidden 64', promptTokens: prompt.length, maxTokens, repetitions: pairs.length, engineMs: med(direct.slice(warm)), httpMs: med(http.slice(warm)),
    overheadMs: med(inServer.slice(warm)), clientObservedOverheadMs: med(pairs), sameGreedyTokens: sameTokens };
}

function printRows(rows, overhead) {
  const f = (v, d = 1) => (v === undefined || v === null ? '-' : v.toFixed(d));
  console.log(`\nTTFT (ms, mean of the requests; TP/EP = 2, threads backend, ${LAYERS} layers, hidden ${ARCH.hidden})`);
  const head = ['variant', 'link', ...PROMPTS.flatMap((T) => BATCHES.map((B) => `${T}×${B}`)), ...DECODE.batches.map((B) => `dec tok/s B${B}`), 'overlap', 'comm share', 'GC pauses'];
  console.log(head.map((h) => h.padStart(14)).join(''));
  for (const r of rows) {
    const cells = [r.variant, r.link ?? 'none', ...PROMPTS.flatMap((T) => BATCHES.map((B) => f(r.ttft[`${T}x${B}`]))), ...DECODE.batches.map((B) => f(r.decode[`B${B}`])), `${(100 * r.overlap).toFixed(1)}%`, `${(100 * r.commShare).toFixed(1)}%`, `${f(r.prefillTrace.gcPauseMs, 0)} ms`];
    console.log(cells.map((c) => String(c).padStart(14)).join(''));
  }
  for (const link of [...new Set(rows.map((r) => r.link))]) {
    const o = rows.find((r) => r.link === link && r.variant === 'original'), s = rows.find((r) => r.link === link && r.variant === 'farskip');
    const gains = PROMPTS.map((T) => `${T}: ${(100 * (1 - s.ttft[`${T}x1`] / o.ttft[`${T}x1`])).toFixed(1)} %`);
    console.log(`FarSkip TTFT gain (${link ?? 'no emulation'}, 1 request): ${gains.join(', ')}`);
  }
  console.log(`server overhead: ${overhead.overheadMs.toFixed(2)} ms per request in the server (Server-Timing total - engine); ${overhead.clientObservedOverheadMs.toFixed(2)} ms as the client sees it (HTTP ${overhead.httpMs.toFixed(1)} ms - Engine.complete ${overhead.engineMs.toFixed(1)} ms, loopback and the client's own parsing included); same greedy tokens: ${overhead.sameGreedyTokens}`);
}

function machineInfo() {
  const cpus = os.cpus();
  return { cpuModel: cpus[0]?.model ?? 'unknown', cores: os.availableParallelism?.() ?? cpus.length, totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`, node: process.version, date: new Date().toISOString() };
}

// ------------------------------------------------------------------------------------------------ rank
async function rankMain() {
  const { initCommunicator } = await import('@farskip/collectives');
  const { ParallelContext, Tracer } = await import('@farskip/layers');
  const { Engine, loadForInference } = await import('@farskip/infer');
  const world = await initCommunicator();
  const ctx = ParallelContext.create(world, { tp: 2 });
  const { model } = loadForInference(process.env.FARSKIP_BENCH_MODEL, { ctx });
  // every GC pause of this rank's isolate, on the clock the tracer uses (timeOrigin + now: one clock for all threads)
  const { PerformanceObserver } = await import('node:perf_hooks');
  const gcs = [];
  const gcObs = new PerformanceObserver((l) => gcs.push(...l.getEntries().map((e) => ({ start: e.startTime + performance.timeOrigin, ms: e.duration }))));
  gcObs.observe({ entryTypes: ['gc'] });
  const farskip = process.env.FARSKIP_BENCH_FARSKIP === 'full' ? { mode: 'full' } : null;
  const opts = { maxBatch: 4, maxModelLen: Math.max(...PROMPTS) + 8, farskip };
  if (world.rank !== 0) {
    await Engine.follow(model, world, opts);
    await new Promise((r) => setTimeout(r, 20));
    gcObs.disconnect();
    console.log('G' + JSON.stringify(gcs.map((g) => [+g.start.toFixed(3), +g.ms.toFixed(3)])));
    world.destroy();
    return;
  }
  const engine = new Engine(model, { ...opts, world });
  const running = engine.start();
  let seed = 1;
  const V = model.spec.vocabSize;
  const randomPrompt = (T) => Array.from({ length: T }, () => 3 + ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % (V - 3)));
  const ttftOf = async (T, B) => {
    const seqs = await Promise.all(Array.from({ length: B }, () => engine.complete({ prompt: randomPrompt(T), maxNewTokens: 1, temperature: 0 })));
    return seqs.reduce((s, q) => s + (q.times.firstToken - q.times.submitted), 0) / B;
  };
  await ttftOf(PROMPTS[0], 1); // warm-up: allocations, JIT, native pool
  const out = { ttft: {}, decode: {} };
  if (process.env.FARSKIP_EMULATE_LINK === '' && !farskip) {
    // calibration: compute and communication of one prefill, per layer
    const tracer = new Tracer(0);
    engine.options.tracer = tracer;
    const t0 = performance.now();
    await ttftOf(CALIBRATE_AT, 1);
    const wall = performance.now() - t0;
    engine.options.tracer = undefined;
    const st = tracer.stats('forward');
    out.calibration = { prefillMs: wall, computeMsPerLayer: st.computeMs / LAYERS, commMsPerLayer: st.commMs / LAYERS };
  }
  for (const T of process.env.FARSKIP_BENCH_OVERLAP_ONLY ? [] : PROMPTS) {
    for (const B of BATCHES) {
      let best = Infinity;
      for (let rep = 0; rep < 3; rep++) best = Math.min(best, await ttftOf(T, B));
      out.ttft[`${T}x${B}`] = best;
    }
  }
  // overlap of prefills of the longest prompt: best of 3 (as the TTFTs, which take the best of 2), each with the
  // garbage-collection pause time of this rank's isolate during it — a pause on one rank leaves the other waiting
  // in its collective, which the tracer counts as exposed communication
  const prefills = [];
  for (let rep = 0; rep < 3; rep++) {
    const tracer = new Tracer(0);
    engine.options.tracer = tracer;
    const g0 = gcs.length;
    const t0 = performance.now();
    await ttftOf(PROMPTS[PROMPTS.length - 1], 1);
    const wall = performance.now() - t0;
    engine.options.tracer = undefined;
    await new Promise((r) => setTimeout(r, 20)); // gc entries arrive asynchronously
    const st = tracer.stats('forward');
    prefills.push({ overlap: st.overlap, wallMs: wall, computeMs: st.computeMs, commMs: st.commMs, exposedMs: st.exposedMs, collectives: st.count,
      gcPauseMs: gcs.slice(g0).reduce((a, g) => a + g.ms, 0), gcCount: gcs.length - g0, byCollective: exposureByCollective(tracer), comm: commSpans(tracer) });
    if (process.env.FARSKIP_BENCH_DUMP && rep === 0) writeFileSync(process.env.FARSKIP_BENCH_DUMP, JSON.stringify({ spans: tracer.spans, idle: tracer.idle, gcs }));
  }
  const best = prefills.reduce((a, b) => (b.overlap > a.overlap ? b : a));
  out.overlap = best.overlap;
  out.overlapRuns = prefills.map((p) => p.overlap);
  out.commShare = best.exposedMs / best.wallMs; // the share of the prefill the rank spent blocked on communication
  out.prefillTrace = best;
  for (const B of process.env.FARSKIP_BENCH_OVERLAP_ONLY ? [] : DECODE.batches) {
    const seqs = await Promise.all(Array.from({ length: B }, () => engine.complete({ prompt: randomPrompt(DECODE.prompt), maxNewTokens: DECODE.tokens, temperature: 0, stopTokens: [] })));
    const first = Math.max(...seqs.map((s) => s.times.firstToken)), last = Math.max(...seqs.map((s) => s.times.finished));
    out.decode[`B${B}`] = (B * (DECODE.tokens - 1)) / ((last - first) / 1000);
  }
  await engine.stop();
  await running;
  gcObs.disconnect();
  out.gcs = gcs.map((g) => [+g.start.toFixed(3), +g.ms.toFixed(3)]);
  out.overlapRunsComm = prefills.map((p) => p.comm);
  for (const p of prefills) delete p.comm;
  console.log(JSON.stringify(out));
  world.destroy();
}

/** [issued, completed, exposed] of every collective of the trace */
function commSpans(tracer) {
  const out = [];
  for (const s of tracer.spans) if (s.kind === 'comm' && s.completed !== undefined) out.push([s.issued, s.completed, tracer.exposedMs(s)]);
  return out;
}

/**
 * Overlap of the collectives during which neither rank paused for garbage collection: what the schedule hides when
 * the runtime does not stall a rank (a pause on either rank holds up the collective both are in).
 */
function overlapOutsideGc(comm, gcs) {
  let total = 0, exposed = 0, affected = 0;
  for (const [a, b, e] of comm) {
    if (gcs.some(([s, ms]) => s < b && s + ms > a)) { affected += b - a; continue; }
    total += b - a;
    exposed += e;
  }
  return { overlap: total > 0 ? 1 - exposed / total : 1, gcAffectedCommShare: affected / (affected + total) };
}

/** Communication and exposed (waited) time per kind of collective (layer index dropped) and for the last layer. */
function exposureByCollective(tracer) {
  const out = {};
  for (const s of tracer.spans) {
    if (s.kind === 'compute' || s.completed === undefined) continue;
    const key = s.name.startsWith(`layer${LAYERS - 1}.`) ? `last layer: ${s.name.replace(/^layer\d+\./, '')}` : s.name.replace(/^layer\d+\./, '');
    const e = (out[key] ??= { count: 0, commMs: 0, exposedMs: 0 });
    e.count++;
    e.commMs += s.completed - s.issued;
    e.exposedMs += tracer.exposedMs(s);
  }
  return out;
}
