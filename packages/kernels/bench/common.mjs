// Shared helpers for the @farskip/kernels benches: timing, machine description, atomic JSON results.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchDir = path.dirname(fileURLToPath(import.meta.url));
export const resultsDir = path.join(benchDir, 'results');

export const now = () => performance.now(); // ms
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/**
 * Times fn: warm-up (>= warmMs or 1 call), then `reps` repetitions, each running fn enough times to take about
 * minRepMs (so sub-ms kernels are not dominated by timer resolution). Returns per-call ms for each repetition.
 */
export function timeReps(fn, { reps = 5, minRepMs = 60, warmMs = 50 } = {}) {
  let t0 = now(), calls = 0;
  do { fn(); calls++; } while (now() - t0 < warmMs);
  const perCall = (now() - t0) / calls;
  const inner = Math.max(1, Math.ceil(minRepMs / Math.max(perCall, 1e-4)));
  const out = [];
  for (let r = 0; r < reps; r++) {
    t0 = now();
    for (let i = 0; i < inner; i++) fn();
    out.push((now() - t0) / inner);
  }
  return out;
}

export function cpuModel() {
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m);
    if (m) return m[1].trim();
  } catch { /* not linux */ }
  return os.cpus()[0]?.model ?? 'unknown';
}

export function cpuFlags() {
  try {
    const m = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:\s*(.*)$/m);
    return new Set((m?.[1] ?? '').split(/\s+/));
  } catch { return new Set(); }
}

export function machine(info) {
  return {
    cpu: cpuModel(),
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    backend: info.backend,
    isa: info.isa,
    threads: info.threads,
    library: info.library,
  };
}

/** Writes results/<name>.json via a temp file + rename (readers never see a half-written file). */
export function writeResults(name, obj) {
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${name}.json`);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(obj, null, 2) + '\n');
  renameSync(tmp, file);
  return file;
}

export function table(headers, rows) {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [line(headers), w.map((x) => '-'.repeat(x)).join('  '), ...cells.map(line)].join('\n');
}

export const fmt = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? null : x.toFixed(d));

function cpuTimes() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  } catch { return null; }
}

/**
 * Fraction of the machine's CPU time used by OTHER processes over `ms` while this one sits idle (call it between
 * measurements). Shared machines: a high value means every number of the run is noisy.
 */
export async function backgroundBusy(ms = 500) {
  const a = cpuTimes();
  await sleep(ms);
  const b = cpuTimes();
  if (!a || !b || b.total === a.total) return null;
  return Math.round(1000 * (1 - (b.idle - a.idle) / (b.total - a.total))) / 10; // percent
}

/**
 * The machine's f32 FMA ceiling, measured now by bench/fma_peak.c (register-only FMA loops, 12 accumulators,
 * AVX-512 and AVX2), compiled with `cc -O2` into a temp dir and called through koffi. `measure(reps)` may be
 * called repeatedly; `peak` keeps the best GFLOP/s seen per `${isa}x${threads}` (on a shared machine the
 * ceiling is the best moment of the run). Never throws: without a compiler `peakFor` returns null.
 */
export function createFmaPeak(koffi, threadCounts, notes) {
  const flags = cpuFlags();
  const isas = [...(flags.has('avx512f') ? [512] : []), ...(flags.has('fma') && flags.has('avx2') ? [256] : [])];
  const peak = {};
  let fn = null, dir = null;
  if (isas.length) {
    dir = mkdtempSync(path.join(os.tmpdir(), 'fs-fma-'));
    const so = path.join(dir, 'libfma_peak.so');
    try {
      execFileSync(process.env.CC || 'cc', ['-O2', '-shared', '-fPIC', '-pthread', path.join(benchDir, 'fma_peak.c'), '-o', so], { stdio: 'pipe' });
      fn = koffi.load(so).func('double fma_peak_gflops(int isa, int threads, long iters)');
    } catch (e) {
      notes.push(`FMA peak not measured: could not build/load bench/fma_peak.c (${String(e.message ?? e).split('\n')[0]})`);
    }
  } else notes.push('FMA peak not measured: the CPU reports neither AVX-512F nor AVX2+FMA.');
  const measure = (reps = 1) => {
    if (!fn) return;
    for (const isa of isas) {
      for (const t of threadCounts) {
        const probe = 2e6, flopIter = 12 * (isa === 512 ? 16 : 8) * 2;
        const g0 = fn(isa, t, probe);
        const iters = Math.max(probe, Math.round((g0 * 1e9 * 0.1) / (flopIter * t))); // ~100 ms per run
        const k = `${isa}x${t}`;
        peak[k] = Math.max(peak[k] ?? 0, g0);
        for (let r = 0; r < reps; r++) peak[k] = Math.max(peak[k], fn(isa, t, iters));
      }
    }
  };
  const peakFor = (t) => Math.max(0, ...isas.map((isa) => peak[`${isa}x${t}`] ?? 0)) || null;
  const dispose = () => { if (dir) rmSync(dir, { recursive: true, force: true }); dir = null; };
  return { peak, measure, peakFor, dispose };
}
