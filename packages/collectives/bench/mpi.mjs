#!/usr/bin/env node
// mpi backend benchmark: the C reference (mpi_allreduce.c: MPI_Allreduce, MPI_Iallreduce + MPI_Wait) and the same
// all-reduces through @farskip/collectives' mpi backend, in one run, nccl-tests style (size, time, algbw, busbw,
// ours/C), with memcpy bandwidth as the ceiling; then an overlap measurement: a native compute loop of time C on
// the main thread while an all-reduce of time M is in flight, overlap = (C + M - T) / min(C, M).
//   node bench/mpi.mjs [--flavour mpich|openmpi] [--ranks 2]      (needs dist/: npx tsup)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};

if (process.argv.includes('--rank')) await rankMain();
else driver();

function driver() {
  const flavour = arg('--flavour', 'mpich');
  const ranks = arg('--ranks', '2');
  const mpich = flavour === 'mpich';
  const mpicc = mpich ? 'mpicc.mpich' : 'mpicc.openmpi';
  const launcher = mpich ? 'mpiexec.mpich' : 'mpiexec.openmpi';
  const lib = mpich ? 'libmpich.so.12' : 'libmpi.so.40';
  const extra = mpich ? [] : ['--oversubscribe', '--bind-to', 'none', ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : [])];
  const build = join(tmpdir(), `farskip-mpi-bench-${flavour}`);
  mkdirSync(build, { recursive: true });
  execFileSync(mpicc, ['-O2', '-o', join(build, 'mpi_allreduce'), join(here, 'mpi_allreduce.c')], { stdio: 'inherit' });
  execFileSync('cc', ['-O2', '-shared', '-fPIC', '-o', join(build, 'libbusy.so'), join(here, 'busy.c')], { stdio: 'inherit' });
  const env = { ...process.env, FARSKIP_MPI_LIB: lib, FARSKIP_BENCH_BUSY: join(build, 'libbusy.so') };
  const run = (cmd) => {
    const r = spawnSync(launcher, [...extra, '-n', ranks, ...cmd], { env, encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{')));
  };
  const c = run([join(build, 'mpi_allreduce')]);
  env.FARSKIP_BENCH_SIZES = JSON.stringify(c.sizes.map((s) => [s.bytes, s.iters]));
  const ours = run([process.execPath, fileURLToPath(import.meta.url), '--rank']);
  const n = Number(ranks);
  const fmtBytes = (b) => (b >= 1 << 20 ? `${b >> 20} MiB` : `${b >> 10} KiB`);
  const lines = [];
  const p = (s) => { lines.push(s); console.log(s); };
  p(`# mpi backend vs C, ${ours.info.version} (${ours.info.path}), ${n} ranks, ${ours.cores} cores; memcpy ${c.memcpyGBs.toFixed(1)} GB/s (ceiling)`);
  p('#     size |  C Allreduce us | C Iallreduce+Wait us  algbw GB/s busbw GB/s |  ours us  algbw GB/s busbw GB/s | ours/C(Iallreduce)');
  for (let i = 0; i < c.sizes.length; i++) {
    const s = c.sizes[i];
    const o = ours.sizes[i];
    const algC = s.bytes / s.iallreduceUs / 1e3;
    const algO = s.bytes / o.us / 1e3;
    const bus = (2 * (n - 1)) / n;
    p(`${fmtBytes(s.bytes).padStart(10)} | ${s.allreduceUs.toFixed(1).padStart(15)} | ${s.iallreduceUs.toFixed(1).padStart(20)} ${algC.toFixed(2).padStart(10)} ${(algC * bus).toFixed(2).padStart(10)} | ` +
      `${o.us.toFixed(1).padStart(8)} ${algO.toFixed(2).padStart(10)} ${(algO * bus).toFixed(2).padStart(10)} | ${(o.us / s.iallreduceUs).toFixed(3).padStart(8)}`);
  }
  const ov = ours.overlap;
  p(`# overlap (${fmtBytes(ov.bytes)} allReduce in flight during a native compute loop): M = ${ov.M.toFixed(1)} ms, C = ${ov.C.toFixed(1)} ms, ` +
    `T = ${ov.T.toFixed(1)} ms -> overlap = ${(100 * ov.overlap).toFixed(1)} %`);
  const dir = join(here, 'results');
  if (!existsSync(dir)) mkdirSync(dir);
  writeFileSync(join(dir, `mpi-${flavour}-${n}ranks.txt`), lines.join('\n') + '\n');
}

async function rankMain() {
  const { initMpi, mpiInfo } = await import(new URL('../dist/index.js', import.meta.url).href);
  const koffi = (await import('koffi')).default;
  const world = initMpi();
  const sizes = JSON.parse(process.env.FARSKIP_BENCH_SIZES);
  const buf = new Float32Array(64 << 18).fill(1);
  const out = [];
  for (const [bytes, iters] of sizes) {
    const v = buf.subarray(0, bytes / 4);
    for (let k = 0; k < 2; k++) await world.allReduce(v).wait();
    await world.barrier().wait();
    const t0 = performance.now();
    for (let k = 0; k < iters; k++) await world.allReduce(v).wait();
    out.push({ bytes, us: ((performance.now() - t0) * 1e3) / iters });
  }
  // overlap: M alone, C alone (calibrated to about 1.5 M), then both
  const spin = koffi.load(process.env.FARSKIP_BENCH_BUSY).func('double fs_bench_spin(long iters)');
  const bytes = 16 << 20;
  const v = buf.subarray(0, bytes / 4);
  const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
  const timeIt = async (f) => { await world.barrier().wait(); const t0 = performance.now(); await f(); return performance.now() - t0; };
  const Ms = [];
  for (let k = 0; k < 5; k++) Ms.push(await timeIt(() => world.allReduce(v).wait()));
  const M = median(Ms);
  let iters = 1e6;
  const t0 = performance.now();
  spin(iters);
  iters = Math.round((iters * 1.5 * M) / Math.max(0.01, performance.now() - t0));
  const Cs = [];
  const Ts = [];
  for (let k = 0; k < 5; k++) {
    Cs.push(await timeIt(async () => spin(iters)));
    Ts.push(await timeIt(async () => { const w = world.allReduce(v); spin(iters); await w.wait(); }));
  }
  const C = median(Cs);
  const T = median(Ts);
  if (world.rank === 0) {
    const cores = (await import('node:os')).availableParallelism();
    console.log(JSON.stringify({ info: mpiInfo(), cores, sizes: out, overlap: { bytes, M, C, T, overlap: (C + M - T) / Math.min(C, M) } }));
  }
}
