#!/usr/bin/env node
// threads backend benchmark, nccl-tests style: for allReduce, allGather, reduceScatter and allToAll on 2 and 4
// ranks, size / time / algbw / busbw with single-thread memcpy bandwidth measured in the same run as the ceiling;
// then overlap of a native compute kernel (busy.c, cc -O2, called through koffi on the thread that owns every
// rank) with an allReduce / allToAll in flight, for C = 2M, M, M/2: overlap = (C + M - T) / min(C, M).
// Writes bench/results/threads.json.   usage: node bench/threads.mjs [ranks=2,4] [maxMiB=64]   (needs dist/)
import { createThreadsWorld, threadsSharedLike } from '../dist/index.js';
import koffi from 'koffi';
import { buildBusy, busFactor, fmtBytes, loadBusy, machineInfo, median, memcpyGBs, predictT, printTable, writeJsonAtomic } from './common.mjs';

const rankCounts = (process.argv[2] ?? '2,4').split(',').map(Number);
const maxBytes = Number(process.argv[3] ?? 64) * (1 << 20);
const OPS = ['allReduce', 'allGather', 'reduceScatter', 'allToAll'];
const machine = machineInfo();
const busy = loadBusy(koffi, buildBusy());
const all = (ws) => Promise.all(ws.map((w) => w.wait()));
const shared = (n) => threadsSharedLike(new Float32Array(n)).fill(1);

// size = per-rank buffer as in nccl-tests: allReduce/allToAll buffer, allGather output, reduceScatter input.
function buffers(op, bytes, n) {
  const e = bytes / 4;
  if (op === 'allReduce') return { a: shared(e) };
  if (op === 'allGather') return { a: shared(e / n), b: shared(e) };
  return { a: shared(e), b: shared(op === 'reduceScatter' ? e / n : e) };
}
const issue = (op, c, { a, b }) => (op === 'allReduce' ? c.allReduce(a) : c[op](a, b));

/** Mean time (ms) of one collective over all ranks, after warm-up; time-bounded. */
async function timeOp(comms, op, bytes, budgetMs = 250) {
  const n = comms.length;
  const bufs = comms.map(() => buffers(op, bytes, n));
  for (let k = 0; k < 2; k++) await all(comms.map((c, r) => issue(op, c, bufs[r])));
  let iters = 0;
  const t0 = performance.now();
  do {
    await all(comms.map((c, r) => issue(op, c, bufs[r])));
    iters++;
  } while (iters < 3 || (performance.now() - t0 < budgetMs && iters < 1000));
  return { ms: (performance.now() - t0) / iters, iters };
}

const sizes = [];
for (let b = 1024; b <= maxBytes; b *= 4) sizes.push(b);
const memcpy = Object.fromEntries(sizes.map((b) => [b, memcpyGBs(b)]));
const ceiling = memcpyGBs(64 << 20); // DRAM-resident copy: the ceiling for the large sizes
const rows = [];
const overlap = [];

for (const n of rankCounts) {
  const comms = createThreadsWorld(n);
  await all(comms.map((c) => c.barrier()));
  for (const op of OPS) {
    const opRows = [];
    for (const bytes of sizes) {
      const { ms, iters } = await timeOp(comms, op, bytes);
      const algbw = bytes / (ms * 1e6);
      const busbw = algbw * busFactor(op, n);
      opRows.push({ backend: 'threads', ranks: n, op, bytes, iters, timeUs: +(ms * 1e3).toFixed(2), algbwGBs: +algbw.toFixed(3),
        busbwGBs: +busbw.toFixed(3), memcpyGBs: +memcpy[bytes].toFixed(2), busbwOverMemcpy: +(busbw / memcpy[bytes]).toFixed(3) });
    }
    printTable(`\nthreads ${op}, ${n} ranks, f32 (shared buffers, mean of a time-bounded loop)`, [
      ['size', (r) => fmtBytes(r.bytes), 9], ['time_us', (r) => r.timeUs.toFixed(1), 10], ['algbw_GB/s', (r) => r.algbwGBs.toFixed(2)],
      ['busbw_GB/s', (r) => r.busbwGBs.toFixed(2)], ['memcpy_GB/s', (r) => r.memcpyGBs.toFixed(2)], ['bus/memcpy', (r) => (100 * r.busbwOverMemcpy).toFixed(0) + '%'],
    ], opRows);
    rows.push(...opRows);
  }
  // overlap: the native kernel runs on this thread (which owns every rank) while the comm workers progress.
  const bytes = Math.min(16 << 20, maxBytes);
  for (const op of ['allReduce', 'allToAll']) {
    const bufs = comms.map(() => buffers(op, bytes, n));
    const once = async () => { const t = performance.now(); await all(comms.map((c, r) => issue(op, c, bufs[r]))); return performance.now() - t; };
    await once();
    const Ms = [];
    for (let k = 0; k < 7; k++) Ms.push(await once());
    const M = median(Ms);
    for (const ratio of [2, 1, 0.5]) {
      const iters = Math.round(busy.itersPerMs * ratio * M);
      const Cs = [];
      const Ts = [];
      for (let k = 0; k < 7; k++) {
        let t = performance.now();
        busy.spin(iters);
        Cs.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 1));
        t = performance.now();
        const ws = comms.map((c, r) => issue(op, c, bufs[r]));
        busy.spin(iters);
        await all(ws);
        Ts.push(performance.now() - t);
      }
      const C = median(Cs);
      const T = median(Ts);
      const P = machine.cores;
      const Tp = predictT(C, M, n, P);
      overlap.push({ backend: 'threads', ranks: n, op, bytes, CoverM: ratio, M_ms: +M.toFixed(3), C_ms: +C.toFixed(3), T_ms: +T.toFixed(3),
        overlap: +((C + M - T) / Math.min(C, M)).toFixed(3), predictedOverlap: +((C + M - Tp) / Math.min(C, M)).toFixed(3) });
    }
  }
  for (const c of comms) c.destroy();
}
printTable(`\nthreads overlap: native busy.c kernel (C) on the ranks' thread while a ${fmtBytes(Math.min(16 << 20, maxBytes))} collective (M) is in flight`, [
  ['ranks', (r) => r.ranks, 5], ['op', (r) => r.op, 10], ['C/M', (r) => r.CoverM, 4], ['M_ms', (r) => r.M_ms.toFixed(2)], ['C_ms', (r) => r.C_ms.toFixed(2)],
  ['T_ms', (r) => r.T_ms.toFixed(2)], ['overlap', (r) => (100 * r.overlap).toFixed(0) + '%'], ['predicted', (r) => (100 * r.predictedOverlap).toFixed(0) + '%'],
], overlap);

const big = (n) => rows.filter((r) => r.ranks === n && r.op === 'allReduce' && r.bytes >= 16 << 20);
const ratioVsCeiling = (n) => big(n).map((r) => +(r.busbwGBs / ceiling).toFixed(3));
const P = machine.cores;
const notes = [
  `memcpy ceiling (single thread, 64 MiB, same run): ${ceiling.toFixed(2)} GB/s; per-size memcpy is listed in every row (small sizes are cache-resident, so bus/memcpy is tiny there).`,
  `Prediction, all-reduce busbw: each comm thread copies its slice of every rank's buffer into wasm memory (S bytes read+written) and the reduced slice back out to every buffer (S bytes), i.e. about two memcpys of S per rank; with ${P} cores running min(n, ${P}) comm threads, T ~= n*2S/(min(n,${P})*memcpy) if bandwidth scaled per core, so busbw/memcpy ~= (2(n-1)/n) * min(n,${P})/(2n): ${rankCounts.map((n) => `${n} ranks ${((((2 * (n - 1)) / n) * Math.min(n, P)) / (2 * n) * 100).toFixed(0)}%`).join(', ')} (upper bound: two threads share one memory bus).`,
  `Measured all-reduce busbw/memcpy ceiling at >= 16 MiB: ${rankCounts.map((n) => `${n} ranks ${ratioVsCeiling(n).map((x) => (100 * x).toFixed(0) + '%').join(' / ')}`).join('; ')} (target >= 50%).`,
  `Overlap model (predictedOverlap): the collective needs min(n,P)*M core-ms and gets min(n,P) cores alone but only min(n,P-1) while the native kernel holds one; with P=${P} that predicts ~50% at C=M and C=M/2 and ~100% at C=2M for 2 and 4 ranks. The ranks all live on the one thread that runs the kernel, so their comm workers keep running; what limits overlap on ${P} cores is that the kernel takes one of the two cores the comm workers need (target >= 90% at M <= C is met only when a core is free for communication).`,
  'Timing: mean over a time-bounded loop (>= 3 iterations, ~250 ms) after 2 warm-ups; overlap rows are medians of 7. Shared VM: expect +-25% run to run.',
];
for (const s of notes) console.log('# ' + s);
const file = writeJsonAtomic('threads', { benchmark: 'threads', machine, memcpyCeilingGBs: +ceiling.toFixed(3), busbwFormula: 'busbw = algbw * 2(n-1)/n (allReduce), (n-1)/n (allGather, reduceScatter, allToAll); size = per-rank allReduce/allToAll buffer, allGather output, reduceScatter input', rows, overlap, notes });
console.log(`wrote ${file}`);
