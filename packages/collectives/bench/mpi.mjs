#!/usr/bin/env node
// mpi backend benchmark, nccl-tests style: the C reference (mpi_allreduce.c: MPI_Allreduce / MPI_Iallreduce+Wait,
// MPI_Alltoall / MPI_Ialltoall+Wait) and the same allReduce / allToAll through @farskip/collectives' mpi backend, in
// one run (size, time, algbw, busbw, ours/C), with memcpy bandwidth as the ceiling; then overlap: the native kernel
// (busy.c, cc -O2, called through koffi on each rank's main thread) of time C while a 16 MiB allReduce / allToAll of
// time M is in flight, for C = 2M, M, M/2: overlap = (C + M - T) / min(C, M). Writes bench/results/mpi.json
// (mpi-openmpi.json with --flavour openmpi). Skips, saying why, when mpiexec / mpicc are absent.
//   node bench/mpi.mjs [--flavour mpich|openmpi] [--ranks 2]      (needs dist/)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBusy, busFactor, fmtBytes, here, machineInfo, median, predictT, printTable, writeJsonAtomic } from './common.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const which = (cmd) => (cmd.startsWith('/') ? (existsSync(cmd) ? cmd : null)
  : (process.env.PATH ?? '').split(delimiter).map((d) => join(d, cmd)).find((p) => existsSync(p)) ?? null);

if (process.argv.includes('--rank')) await rankMain();
else driver();

function driver() {
  const flavour = arg('--flavour', 'mpich');
  const n = Number(arg('--ranks', '2'));
  // MPICH explicitly: Debian's /usr/bin/mpiexec belongs to Open MPI once openmpi-bin is installed.
  let launcher = which(flavour === 'mpich' ? '/usr/bin/mpiexec.mpich' : '/usr/bin/mpiexec.openmpi');
  let mpicc = which(flavour === 'mpich' ? '/usr/bin/mpicc.mpich' : '/usr/bin/mpicc.openmpi');
  let lib = flavour === 'mpich' ? 'libmpich.so.12' : 'libmpi.so.40';
  if (!launcher || !mpicc) {
    launcher = which('mpiexec');
    mpicc = which('mpicc');
    lib = undefined; // let the package's lookup pick the library matching the launcher
  }
  if (!launcher || !mpicc) {
    console.log(`mpi benchmark skipped: ${!launcher ? 'no mpiexec(.mpich)' : 'no mpicc(.mpich)'} on this machine (install mpich: apt-get install mpich libmpich-dev)`);
    return;
  }
  const openmpi = /openmpi/.test(launcher) || /Open MPI/i.test(spawnSync(launcher, ['--version'], { encoding: 'utf8' }).stdout ?? '');
  const extra = openmpi ? ['--oversubscribe', '--bind-to', 'none', ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : [])] : [];
  const build = mkdtempSync(join(tmpdir(), 'farskip-mpi-bench-'));
  execFileSync(mpicc, ['-O2', '-o', join(build, 'mpi_ref'), join(here, 'mpi_allreduce.c')], { stdio: 'inherit' });
  const env = { ...process.env, FARSKIP_BENCH_BUSY: buildBusy() };
  if (lib) env.FARSKIP_MPI_LIB = lib;
  const run = (cmd) => {
    const r = spawnSync(launcher, [...extra, '-n', String(n), ...cmd], { env, encoding: 'utf8', timeout: 180_000 });
    if (r.status !== 0) throw new Error(`${launcher} ${cmd.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
    return JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{')));
  };
  const c = run([join(build, 'mpi_ref')]);
  env.FARSKIP_BENCH_SIZES = JSON.stringify(c.sizes.map((s) => [s.bytes, Math.min(s.iters, 200)]));
  const ours = run([process.execPath, fileURLToPath(import.meta.url), '--rank']);
  const machine = machineInfo();
  const rows = [];
  for (const op of ['allReduce', 'allToAll']) {
    const opRows = c.sizes.map((s, i) => {
      const o = ours.sizes[i];
      const cUs = op === 'allReduce' ? s.iallreduceUs : s.ialltoallUs;
      const cBlockUs = op === 'allReduce' ? s.allreduceUs : s.alltoallUs;
      const ourUs = op === 'allReduce' ? o.allReduceUs : o.allToAllUs;
      const alg = (us) => s.bytes / us / 1e3;
      const f = busFactor(op, n);
      return { backend: 'mpi', mpi: ours.info.version.split('\n')[0].trim(), ranks: n, op, bytes: s.bytes, iters: o.iters,
        cBlockingUs: cBlockUs, cNonblockingUs: cUs, cBusbwGBs: +(alg(cUs) * f).toFixed(3),
        timeUs: +ourUs.toFixed(2), algbwGBs: +alg(ourUs).toFixed(3), busbwGBs: +(alg(ourUs) * f).toFixed(3),
        oursOverC: +(ourUs / cUs).toFixed(3), memcpyGBs: c.memcpyGBs };
    });
    printTable(`\nmpi ${op}, ${n} ranks, f32, ${opRows[0].mpi}; C = MPI_I${op === 'allReduce' ? 'allreduce' : 'alltoall'} + MPI_Wait (mean); memcpy ceiling ${c.memcpyGBs.toFixed(2)} GB/s`, [
      ['size', (r) => fmtBytes(r.bytes), 9], ['C_us', (r) => r.cNonblockingUs.toFixed(1), 9], ['C_busbw', (r) => r.cBusbwGBs.toFixed(2)],
      ['ours_us', (r) => r.timeUs.toFixed(1), 9], ['algbw_GB/s', (r) => r.algbwGBs.toFixed(2)], ['busbw_GB/s', (r) => r.busbwGBs.toFixed(2)], ['ours/C', (r) => r.oursOverC.toFixed(2)],
    ], opRows);
    rows.push(...opRows);
  }
  const overlap = ours.overlap.map((o) => {
    const Tp = predictT(o.C_ms, o.M_ms, 1, 1); // each rank: its compute and its MPI progress share one core
    return { backend: 'mpi', ranks: n, ...o, predictedOverlap: +((o.C_ms + o.M_ms - Tp) / Math.min(o.C_ms, o.M_ms)).toFixed(3) };
  });
  printTable(`\nmpi overlap: native busy.c kernel (C) on each rank's main thread while a 16 MiB collective (M) waits in MPI_Wait on a libuv thread (rank 0, medians of 5)`, [
    ['op', (r) => r.op, 10], ['C/M', (r) => r.CoverM, 4], ['M_ms', (r) => r.M_ms.toFixed(2)], ['C_ms', (r) => r.C_ms.toFixed(2)], ['T_ms', (r) => r.T_ms.toFixed(2)],
    ['overlap', (r) => (100 * r.overlap).toFixed(0) + '%'], ['predicted', (r) => (100 * r.predictedOverlap).toFixed(0) + '%'],
  ], overlap);
  const big = (op) => rows.filter((r) => r.op === op && r.bytes >= 16 << 20).map((r) => r.oursOverC.toFixed(2)).join(' / ');
  const notes = [
    `Reference: the same collectives from C (mpi_allreduce.c, mpicc -O2) under the same launcher in the same run; ours/C compares with MPI_I* + MPI_Wait, which is what the backend issues (blocking times are in cBlockingUs). Target: ours within 10% of C (ours/C <= 1.10).`,
    `Measured ours/C at 16 / 64 MiB: allReduce ${big('allReduce')}, allToAll ${big('allToAll')}. Small sizes carry a fixed per-call cost (koffi async call + libuv hand-off + promise settlement; allToAll also runs a blocking MPI_Alltoall of counts and a 1-int MPI_Allreduce before MPI_Ialltoallv), so ours/C >> 1 below ~1 MiB.`,
    `Prediction, busbw: ${n} ranks on one machine exchange through shared memory, so busbw is bounded by memcpy (${c.memcpyGBs.toFixed(2)} GB/s, C program, same run); the MPI library's large-message algorithms copy each byte several times, hence well under memcpy for C and ours alike.`,
    `Overlap: ${n} ranks on ${machine.cores} cores means each rank's compute kernel and its MPI progress (MPI_Wait spinning on a libuv thread; shared-memory MPI moves data only while some thread of the rank polls) compete for the rank's single core, so the model predicts ~0% overlap (T ~= C + M). Overlap >= 90% at M <= C needs a spare core per rank (or an interconnect that progresses without the CPU).`,
    'Timing: C and ours use the same iteration counts (ours capped at 200) with 2 warm-ups and a barrier; overlap rows are rank 0 medians of 5. Shared VM: expect +-25% run to run.',
  ];
  for (const s of notes) console.log('# ' + s);
  const file = writeJsonAtomic(flavour === 'mpich' && !openmpi ? 'mpi' : 'mpi-openmpi', {
    benchmark: 'mpi', machine, mpi: { launcher, mpicc, library: ours.info.path, version: ours.info.version }, ranks: n,
    memcpyCeilingGBs: c.memcpyGBs, busbwFormula: 'busbw = algbw * 2(n-1)/n (allReduce), (n-1)/n (allToAll); size = per-rank buffer', rows, overlap, notes });
  console.log(`wrote ${file}`);
}

async function rankMain() {
  const { initMpi, mpiInfo } = await import(new URL('../dist/index.js', import.meta.url).href);
  const koffi = (await import('koffi')).default;
  const world = initMpi();
  const n = world.size;
  const sizes = JSON.parse(process.env.FARSKIP_BENCH_SIZES);
  const buf = new Float32Array(64 << 18).fill(1);
  const out = new Float32Array(64 << 18);
  const ops = {
    allReduce: (e) => world.allReduce(buf.subarray(0, e)),
    allToAll: (e) => world.allToAll(buf.subarray(0, e), out.subarray(0, e)),
  };
  const timeLoop = async (op, e, iters) => {
    for (let k = 0; k < 2; k++) await ops[op](e).wait();
    await world.barrier().wait();
    const t0 = performance.now();
    for (let k = 0; k < iters; k++) await ops[op](e).wait();
    return ((performance.now() - t0) * 1e3) / iters;
  };
  const res = [];
  for (const [bytes, iters] of sizes) {
    const e = Math.floor(bytes / 4 / n) * n;
    res.push({ bytes, iters, allReduceUs: await timeLoop('allReduce', e, iters), allToAllUs: await timeLoop('allToAll', e, iters) });
  }
  const spin = koffi.load(process.env.FARSKIP_BENCH_BUSY).func('double fs_bench_spin(long iters)');
  let t = performance.now();
  spin(5e6);
  const itersPerMs = 5e6 / (performance.now() - t);
  const bytes = 16 << 20;
  const e = bytes / 4;
  const timeIt = async (f) => { await world.barrier().wait(); const t0 = performance.now(); await f(); return performance.now() - t0; };
  const overlap = [];
  for (const op of ['allReduce', 'allToAll']) {
    const Ms = [];
    for (let k = 0; k < 5; k++) Ms.push(await timeIt(() => ops[op](e).wait()));
    const M = median(Ms);
    for (const ratio of [2, 1, 0.5]) {
      const iters = Math.round(itersPerMs * ratio * M);
      const Cs = [];
      const Ts = [];
      for (let k = 0; k < 5; k++) {
        Cs.push(await timeIt(async () => spin(iters)));
        Ts.push(await timeIt(async () => { const w = ops[op](e); spin(iters); await w.wait(); }));
      }
      const C = median(Cs);
      const T = median(Ts);
      overlap.push({ op, bytes, CoverM: ratio, M_ms: +M.toFixed(3), C_ms: +C.toFixed(3), T_ms: +T.toFixed(3), overlap: +((C + M - T) / Math.min(C, M)).toFixed(3) });
    }
  }
  if (world.rank === 0) console.log(JSON.stringify({ info: mpiInfo(), sizes: res, overlap }));
}
