#!/usr/bin/env node
// FarSkip MoE stack at EP=2 on the threads backend (2 ranks = 2 worker threads, one core each), the columns of
// the paper's Table 3: training step and prefill time for standard-blocking (original connectivity, every
// collective waited at once), FarSkip-reference (FarSkip connectivity, waited at once) and FarSkip-overlapped,
// the ideal bound, and the overlap fractions, at three emulated link bandwidths (FARSKIP_EMULATE_LINK) chosen
// from a calibration run so that the all-to-all time per layer is ≪, ≈ and ≫ the compute it can hide behind.
//   node bench/moe-stack.mjs [--quick] [--reps 2] [--trace file.json]   (needs the built dists: npm run build)
// Writes bench/results/moe-stack.json and prints a table (--quick: a seconds-long smoke run of a tiny model, whose
// times are latency-bound and say nothing about overlap; it writes /tmp/moe-stack-quick.json); --trace writes a
// Perfetto/Chrome trace of both ranks' overlapped training step at M/C ≈ 1 (open it in ui.perfetto.dev).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i >= 0 ? process.argv[i + 1] : dflt; };
const quick = process.argv.includes('--quick') || process.env.FARSKIP_BENCH_QUICK === '1';

const CONFIG = quick
  ? { layers: 2, hidden: 64, heads: 4, moe: { numExperts: 8, topK: 2, expertHidden: 64, sharedHidden: 64, renormalize: true }, batch: 2, seq: 64 }
  : { layers: 8, hidden: 512, heads: 8, moe: { numExperts: 16, topK: 2, expertHidden: 256, sharedHidden: 512, renormalize: true }, batch: 4, seq: 512 };

if (process.env.FARSKIP_BENCH_RANK) await rankMain();
else await driver();

// ------------------------------------------------------------------------------------------------ driver
async function driver() {
  // one core per rank: the native pool of this process (shared by both rank threads) runs each call serially
  process.env.FARSKIP_NUM_THREADS = '1';
  const { launch } = await import('@farskip/collectives');
  const reps = Number(arg('--reps', quick ? '1' : '2'));
  const run = async (link, label) => {
    const env = { FARSKIP_BENCH_RANK: '1', FARSKIP_BENCH_REPS: String(reps), ...(quick ? { FARSKIP_BENCH_QUICK: '1' } : {}) };
    if (link) env.FARSKIP_EMULATE_LINK = link; else env.FARSKIP_EMULATE_LINK = '';
    const res = await launch({ world: 2, backend: 'threads', script: fileURLToPath(import.meta.url), env, captureOutput: true, prefixOutput: false });
    const bad = res.find((r) => r.exitCode !== 0);
    if (bad) throw new Error(`rank ${bad.rank} failed (${label}): ${bad.error?.message ?? ''}\n${bad.output ?? ''}`);
    const line = res[0].output.split('\n').find((l) => l.startsWith('{'));
    // each rank prints its trace events of the overlapped training step on a line starting with '['
    const traceEvents = res.flatMap((r) => JSON.parse(r.output.split('\n').find((l) => l.startsWith('[')) ?? '[]'));
    const t0 = Math.min(...traceEvents.filter((e) => e.ts !== undefined).map((e) => e.ts));
    for (const e of traceEvents) if (e.ts !== undefined) e.ts = +(e.ts - t0).toFixed(3);
    return { ...JSON.parse(line), traceEvents };
  };
  console.log(`calibrating (no link emulation) on ${os.availableParallelism?.() ?? os.cpus().length} cores ...`);
  const cal = await run(null, 'calibration');
  // the all-to-all bytes each rank sends to its peer per layer and direction, and the compute it can hide behind
  const bytes = cal.dispatchBytesPerLayer;
  const C = cal.overlappableMsPerLayer;
  const rows = [];
  const traceFile = arg('--trace', null);
  for (const ratio of [0.25, 1, 3]) {
    const gbs = bytes / (ratio * C * 1e6); // comm time per all-to-all = ratio · C / 2 (dispatch + combine = ratio · C)
    const link = `${(2 * gbs).toPrecision(3)}GB/s,20us`;
    console.log(`link ${link} (M/C ≈ ${ratio}) ...`);
    const { traceEvents, ...row } = await run(link, link);
    rows.push({ targetCommOverCompute: ratio, link, ...row });
    if (traceFile && ratio === 1) {
      writeFileSync(traceFile + '.tmp', JSON.stringify({ traceEvents, displayTimeUnit: 'ms', metadata: { benchmark: 'moe-stack', link, schedule: 'overlapped', step: 'training' } }));
      renameSync(traceFile + '.tmp', traceFile);
      console.log(`wrote ${traceFile}`);
    }
  }
  printRows(rows);
  const notes = [
    'standard = original connectivity, every collective waited where issued (standardForward + blocking backward nodes); farskipRef = FarSkip connectivity, same waits; farskipOvl = FarSkip connectivity, overlapped schedule. Training step = forward + backward of sum(output · fixed random seed); the DP gradient all-reduce is not part of the step (EP=2, the all-to-alls are what FarSkip hides).',
    'ideal (forward) = total compute of the overlapped run + Σ_layers max(0, M_k − C_k) with M_k the layer\'s measured dispatch + combine time (reference run, fully exposed) and C_k its overlappable compute (attention part B + shared expert + next layer\'s part A); the backward adds its compute (measured without emulation) + Σ max(0, M_bwd,k − 2·C_k) (backward of the same ops ≈ 2× forward, an approximation).',
    'overlap = hidden communication / total communication from the tracer (exposed = time the rank was blocked in a wait, or the autograd engine idle, while the collective was in flight).',
    'Link emulation: the comm worker sleeps bytes / bandwidth + latency per message (Atomics.wait, no CPU), so it models a link, not the CPU cost of a real NIC. Bandwidths are set from the calibration run so that dispatch + combine per layer ≈ 0.25, 1, 3 × the overlappable compute.',
  ];
  for (const n of notes) console.log('# ' + n);
  const out = { benchmark: 'moe-stack', quick, machine: machineInfo(), config: CONFIG, ranks: 2, mesh: { ep: 2 }, calibration: cal, rows, notes };
  const dir = quick ? os.tmpdir() : join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, quick ? 'moe-stack-quick.json' : 'moe-stack.json');
  writeFileSync(file + '.tmp', JSON.stringify(out, null, 2) + '\n');
  renameSync(file + '.tmp', file);
  console.log(`wrote ${file}`);
}

function printRows(rows) {
  const f = (v, d = 1) => (v === undefined ? '-' : v.toFixed(d));
  const pct = (v) => `${(100 * v).toFixed(0)}%`;
  for (const kind of ['train', 'prefill']) {
    console.log(`\n${kind === 'train' ? 'training step' : 'prefill'} (ms, EP=2, threads backend, ${CONFIG.layers} layers, hidden ${CONFIG.hidden}, ${CONFIG.moe.numExperts} experts top-${CONFIG.moe.topK} + shared, ${CONFIG.batch * CONFIG.seq} tokens/rank)`);
    console.log(['link', 'M/C', 'standard', 'farskipRef', 'farskipOvl', 'ideal', 'ovl/ideal', 'speed-up', 'overlap fwd', 'overlap bwd'].map((h) => h.padStart(12)).join(''));
    for (const r of rows) {
      const k = r[kind];
      console.log([r.link, f(r.measuredCommOverCompute, 2), f(k.standardMs), f(k.farskipRefMs), f(k.farskipOvlMs), f(k.idealMs), f(k.farskipOvlMs / k.idealMs, 2),
        f(k.standardMs / k.farskipOvlMs, 2), pct(k.overlapForward), kind === 'train' ? pct(k.overlapBackward) : '-'].map((c) => String(c).padStart(12)).join(''));
    }
  }
}

function machineInfo() {
  const cpus = os.cpus();
  return { cpuModel: cpus[0]?.model ?? 'unknown', cores: os.availableParallelism?.() ?? cpus.length, totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`, node: process.version, date: new Date().toISOString() };
}

// ------------------------------------------------------------------------------------------------ rank
async function rankMain() {
  const { initCommunicator } = await import('@farskip/collectives');
  const { ParallelContext, buildStack, randomStackWeights, standardForward, Tracer, tracedBackward } = await import('@farskip/layers');
  const { Tensor, noGrad } = await import('@farskip/tensor');
  const world = await initCommunicator();
  const ctx = ParallelContext.create(world, { ep: 2 });
  const reps = Number(process.env.FARSKIP_BENCH_REPS ?? '2');
  const { batch: B, seq: T, ...cfg } = CONFIG;
  const weights = randomStackWeights(cfg, 7);
  const x = Tensor.randn([B, T, cfg.hidden], { seed: 100 + world.rank, std: 1 });
  const positions = new Tensor(Int32Array.from({ length: T }, (_, i) => i), [T], { dtype: 'i32' });
  const seed = Tensor.randn([B, T, cfg.hidden], { seed: 200 + world.rank, std: 1 });
  const variants = {
    standard: (st, tr) => standardForward(st, x, positions, tr),
    farskipRef: (st, tr) => st.forward(x, positions, { schedule: 'reference', tracer: tr }),
    farskipOvl: (st, tr) => st.forward(x, positions, { schedule: 'overlapped', tracer: tr }),
  };
  const barrier = () => world.barrier().wait();
  const timeOne = async (name, train) => {
    const st = buildStack(cfg, weights, ctx);
    const tr = new Tracer(world.rank);
    await barrier();
    const t0 = performance.now();
    if (train) {
      const y = await variants[name](st, tr);
      await tracedBackward(y, tr, seed);
    } else {
      await noGrad(() => variants[name](st, tr));
    }
    const ms = performance.now() - t0;
    await barrier();
    return { ms, tr };
  };
  const best = async (name, train) => {
    let r = null;
    for (let i = 0; i < reps; i++) {
      const t = await timeOne(name, train);
      if (!r || t.ms < r.ms) r = t;
    }
    return r;
  };
  await timeOne('farskipOvl', true); // warm-up (allocations, native pool, JIT)

  const out = {};
  let trainTrace = null;
  for (const kind of ['train', 'prefill']) {
    const train = kind === 'train';
    const res = {};
    for (const name of Object.keys(variants)) res[name] = await best(name, train);
    const ref = res.farskipRef.tr;
    const ovl = res.farskipOvl.tr;
    if (train) trainTrace = ovl;
    const perLayer = layerCosts(ref, cfg.layers);
    const fwdCompute = ovl.stats('forward').computeMs;
    let ideal = fwdCompute + perLayer.reduce((s, l) => s + Math.max(0, l.commMs - l.overlappableMs), 0);
    const row = {
      standardMs: res.standard.ms, farskipRefMs: res.farskipRef.ms, farskipOvlMs: res.farskipOvl.ms,
      overlapForward: ovl.stats('forward').overlap, commForwardMs: ovl.stats('forward').commMs,
    };
    if (train) {
      const bwd = ovl.stats('backward');
      const refBwd = ref.stats('backward');
      // backward compute = backward wall time of the reference run minus its (fully exposed) communication
      const bwdWall = res.farskipRef.ms - refWallForward(ref);
      const bwdCompute = Math.max(0, bwdWall - refBwd.exposedMs);
      const bwdComm = perLayer.reduce((s, l) => s + Math.max(0, l.commMs - 2 * l.overlappableMs), 0);
      ideal += bwdCompute + bwdComm;
      Object.assign(row, { overlapBackward: bwd.overlap, commBackwardMs: bwd.commMs, backwardComputeMs: bwdCompute });
    }
    row.idealMs = ideal;
    row.perLayer = perLayer;
    out[kind] = row;
  }
  const layers = out.prefill.perLayer;
  const C = layers.reduce((s, l) => s + l.overlappableMs, 0) / layers.length;
  const M = layers.reduce((s, l) => s + l.commMs, 0) / layers.length;
  const tokens = B * T;
  const dispatchBytesPerLayer = (tokens * cfg.moe.topK * cfg.hidden * 4) / 2; // half of the copies go to the peer (uniform routing)
  // absolute times (performance.timeOrigin + now is one clock for the threads of this process); the driver
  // shifts both ranks' events to a common origin
  console.log(JSON.stringify(trainTrace.toTraceEvents(0)));
  if (world.rank === 0) {
    console.log(JSON.stringify({ ...out, overlappableMsPerLayer: C, commMsPerLayer: M, measuredCommOverCompute: M / C, dispatchBytesPerLayer,
      link: process.env.FARSKIP_EMULATE_LINK || null }));
  }
  world.destroy();
}

/** Per MoE layer of a reference-schedule trace: its all-to-all time (fully exposed there: dispatch counts,
 *  dispatch, combine) and the compute the overlapped schedule can hide it behind (attention part B + shared
 *  experts + the next layer's part A). */
function layerCosts(tr, L) {
  const fwd = tr.spans.filter((s) => s.phase === 'forward');
  const dur = (s) => (s.kind === 'compute' ? s.end - s.start : (s.completed ?? s.issued) - s.issued);
  const out = [];
  for (let k = 0; k < L; k++) {
    const commMs = fwd.filter((s) => s.kind === 'comm' && s.name.startsWith(`layer${k}.moe.`)).reduce((a, s) => a + dur(s), 0);
    const names = new Set([`layer${k}.attn.B`, `layer${k}.shared`, `layer${k + 1}.attn.A`]);
    const overlappableMs = fwd.filter((s) => s.kind === 'compute' && names.has(s.name)).reduce((a, s) => a + dur(s), 0);
    out.push({ layer: k, commMs, overlappableMs });
  }
  return out;
}

/** Forward wall time of a traced run: from its first span to the end of the final norm. */
function refWallForward(tr) {
  const fwd = tr.spans.filter((s) => s.phase === 'forward');
  const start = Math.min(...fwd.map((s) => (s.kind === 'compute' ? s.start : s.issued)));
  const end = Math.max(...fwd.map((s) => (s.kind === 'compute' ? s.end : (s.completed ?? s.issued))));
  return end - start;
}
