// threads backend: all-reduce bus bandwidth vs memcpy bandwidth measured in the same run (nccl-tests style:
// busbw = 2(n-1)/n * bytes / time), for shared (zero-copy) and staged (plain ArrayBuffer) user buffers, and the
// overlap fraction (C + M - T) / min(C, M) of an all-reduce with a busy compute loop on the rank thread.
// usage: node bench/threads.mjs [ranks=2] [maxMiB=64]
import { createThreadsWorld, threadsSharedLike } from '../dist/index.js';

const N = Number(process.argv[2] ?? 2);
const maxBytes = Number(process.argv[3] ?? 64) * 1024 * 1024;
const comms = createThreadsWorld(N);
const all = (ws) => Promise.all(ws.map((w) => w.wait()));
await all(comms.map((c) => c.barrier()));
if (comms[0].linkEmulation) console.log(`link emulation: ${comms[0].linkEmulation.spec}`);

function memcpyGBs(bytes) {
  const a = new Uint8Array(bytes), b = new Uint8Array(bytes).fill(1);
  let best = Infinity;
  for (let i = 0; i < Math.max(3, Math.min(50, (64 << 20) / bytes)); i++) { const t = performance.now(); a.set(b); best = Math.min(best, performance.now() - t); }
  return bytes / (best * 1e6);
}
async function allReduceMs(bytes, shared) {
  const n = bytes / 4;
  const bufs = comms.map(() => (shared ? threadsSharedLike(new Float32Array(n)) : new Float32Array(n)).fill(1));
  const iters = Math.max(3, Math.min(200, Math.floor((256 << 20) / Math.max(bytes, 1) / 4)));
  await all(comms.map((c, k) => c.allReduce(bufs[k])));
  let best = Infinity;
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    await all(comms.map((c, k) => c.allReduce(bufs[k])));
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

console.log(`threads all-reduce, ${N} ranks, f32 sum (best of several)`);
console.log('size'.padStart(10), 'time_us'.padStart(10), 'busbw_GB/s'.padStart(11), 'staged_us'.padStart(10), 'staged_bw'.padStart(10), 'memcpy_GB/s'.padStart(12), '%memcpy'.padStart(8));
for (let bytes = 1024; bytes <= maxBytes; bytes *= 4) {
  const ms = await allReduceMs(bytes, true);
  const msStaged = await allReduceMs(bytes, false);
  const bus = (f) => ((2 * (N - 1)) / N) * bytes / (f * 1e6);
  const mc = memcpyGBs(bytes);
  const label = bytes >= 1 << 20 ? `${bytes >> 20}MiB` : `${bytes >> 10}KiB`;
  console.log(label.padStart(10), (ms * 1e3).toFixed(1).padStart(10), bus(ms).toFixed(2).padStart(11), (msStaged * 1e3).toFixed(1).padStart(10), bus(msStaged).toFixed(2).padStart(10), mc.toFixed(2).padStart(12), ((100 * bus(ms)) / mc).toFixed(0).padStart(8));
}

// overlap: rank threads are this one thread; the "compute" is a busy loop of C ms on it while the all-reduce runs
const bytes = 16 << 20;
const bufs = comms.map(() => threadsSharedLike(new Float32Array(bytes / 4)).fill(1));
const M = await allReduceMs(bytes, true);
const spin = (ms) => { const t = performance.now(); let x = 0; while (performance.now() - t < ms) x++; return x; };
for (const C of [M, 2 * M, 4 * M]) {
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const ws = comms.map((c, k) => c.allReduce(bufs[k]));
    spin(C);
    await all(ws);
    best = Math.min(best, performance.now() - t);
  }
  const ov = (C + M - best) / Math.min(C, M);
  console.log(`overlap 16MiB all-reduce M=${M.toFixed(2)}ms compute C=${C.toFixed(2)}ms T=${best.toFixed(2)}ms overlap=${(100 * Math.min(1, ov)).toFixed(0)}%`);
}
for (const c of comms) c.destroy();
