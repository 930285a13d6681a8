// Shared helpers for the collectives benchmarks: machine info, nccl-tests bus-bandwidth factors, table printing,
// atomic JSON results, and the native compute kernel (busy.c compiled with cc -O2, called through koffi).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));

/** nccl-tests: busbw = algbw * factor (size = the larger of the per-rank send / receive buffers). */
export const busFactor = (op, n) => (op === 'allReduce' ? (2 * (n - 1)) / n : (n - 1) / n);

export const fmtBytes = (b) => (b >= 1 << 20 ? `${b / (1 << 20)} MiB` : `${b / 1024} KiB`);

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    date: new Date().toISOString(),
  };
}

/** Single-thread memcpy bandwidth (GB/s, best of several) for a buffer of `bytes`. */
export function memcpyGBs(bytes) {
  const a = new Uint8Array(bytes);
  const b = new Uint8Array(bytes).fill(1);
  let best = Infinity;
  const reps = Math.max(5, Math.min(200, Math.floor((256 << 20) / bytes)));
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    a.set(b);
    best = Math.min(best, performance.now() - t);
  }
  return bytes / (Math.max(best, 1e-4) * 1e6);
}

export function writeJsonAtomic(name, obj) {
  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  const tmp = join(dir, `.${name}.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(obj, null, 2) + '\n');
  renameSync(tmp, file);
  return file;
}

/** Compiles busy.c into a temp dir; returns the .so path. */
export function buildBusy() {
  const dir = mkdtempSync(join(os.tmpdir(), 'farskip-bench-busy-'));
  const so = join(dir, 'libbusy.so');
  execFileSync('cc', ['-O2', '-shared', '-fPIC', '-o', so, join(here, 'busy.c')], { stdio: 'inherit' });
  return so;
}

/** Loads the native kernel; returns { spin(iters), itersPerMs } (calibrated, best of 3). */
export function loadBusy(koffi, so) {
  const spin = koffi.load(so).func('double fs_bench_spin(long iters)');
  let best = Infinity;
  const n = 5e6;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    spin(n);
    best = Math.min(best, performance.now() - t);
  }
  return { spin, itersPerMs: n / best };
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export function printTable(title, cols, rows) {
  console.log(title);
  const w = cols.map(([h, , width]) => Math.max(h.length, width ?? 8));
  console.log(cols.map(([h], i) => h.padStart(w[i])).join(' '));
  for (const r of rows) console.log(cols.map(([, f], i) => String(f(r)).padStart(w[i])).join(' '));
}

/** Overlap model used for predictions: the collective needs `min(n, P) * M` core-ms and can use min(n, P) cores
 *  alone, min(n, P - 1) while the compute kernel holds one core (P = cores). Returns predicted T. */
export function predictT(C, M, n, P) {
  const alone = Math.min(n, P);
  const shared = Math.min(n, Math.max(0, P - 1));
  const work = alone * M;
  const doneDuringC = shared * C;
  return doneDuringC >= work ? Math.max(C, work / Math.max(shared, 1e-9)) : C + (work - doneDuringC) / alone;
}
