// Shared helpers for the @farskip/kernels benches: timing, machine description, atomic JSON results.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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
