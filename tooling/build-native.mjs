#!/usr/bin/env node
// build-native.mjs: compile native/cpu (the C kernel library behind @farskip/kernels) into
// native/cpu/build/libfarskip_cpu.so with the system C compiler. No dependencies.
//
//   node tooling/build-native.mjs            build if any source is newer than the library
//   node tooling/build-native.mjs --force    rebuild
//   node tooling/build-native.mjs --test     build, then compile and run native/cpu/test/selftest.c
//
// Kernel sources are compiled once per ISA variant (scalar, avx2, avx512) with -DFS_VARIANT=<tag>; dispatch.c
// picks one at load time. On a non-x86_64 target only the scalar variant is built. A missing compiler or a
// failed build prints one warning and exits 0 so `npm install` still succeeds (the plain-TS fallback is used).
//
// When packages/kernels-<os>-<cpu>-<libc> exists for the compiler's target (today: linux-x64-gnu), the library is
// also copied there: that package is what npm installs next to a published @farskip/kernels, and in this
// repository it is the workspace @farskip/kernels resolves first, so the two copies never disagree.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const cpu = path.join(root, 'native', 'cpu');
const srcDir = path.join(cpu, 'src');
const incDir = path.join(cpu, 'include');
const buildDir = path.join(cpu, 'build');
const objDir = path.join(buildDir, 'obj');
const lib = path.join(buildDir, 'libfarskip_cpu.so');
const args = new Set(process.argv.slice(2));
const force = args.has('--force');
const runTest = args.has('--test');
const CC = process.env.CC || 'cc';

const GENERIC = new Set(['dispatch.c', 'threadpool.c']);
const AVX512 = ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx2', '-mfma', '-mf16c', '-mprefer-vector-width=512'];
const VARIANTS = {
  scalar: [],
  avx2: ['-mavx2', '-mfma', '-mf16c'],
  avx512: AVX512,
};
// files with their own ISA flags, compiled once: [file, variant tag, extra flags]
const SPECIAL = { 'bgemm_avx512bf16.c': ['avx512', [...AVX512, '-mavx512bf16']] };
const BASE = ['-O3', '-fPIC', '-pthread', '-fvisibility=hidden', '-std=gnu11', '-Wall', '-Wno-unused-function', '-fno-math-errno', `-I${incDir}`];

function warn(msg) {
  console.warn(`[farskip] WARNING: native CPU kernels not built (${msg}); the plain-TypeScript fallback will be used. ` +
    'Fix: install a C compiler (e.g. `apt-get install gcc` / `xcode-select --install`) or set CC, then run `npm run build:native`.');
}

function run(cmd, argv) {
  return new Promise((resolve) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', (e) => resolve({ code: -1, err: String(e) }));
    p.on('close', (code) => resolve({ code, err }));
  });
}

async function pool(jobs, width) {
  const results = [];
  let next = 0;
  async function lane() {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, width) }, lane));
  return results;
}

// x86_64-linux-gnu -> packages/kernels-linux-x64-gnu (the npm names: process.platform, process.arch, libc)
function platformPackageDir(target) {
  const [machine, ...rest] = target.split('-');
  const cpu = { x86_64: 'x64', amd64: 'x64', aarch64: 'arm64' }[machine];
  const os = rest.includes('linux') ? 'linux' : rest.some((p) => p.startsWith('darwin')) ? 'darwin' : null;
  if (!cpu || !os) return null;
  const libc = os === 'linux' ? (rest.some((p) => p.startsWith('musl')) ? '-musl' : '-gnu') : '';
  const dir = path.join(root, 'packages', `kernels-${os}-${cpu}${libc}`);
  return existsSync(path.join(dir, 'package.json')) ? dir : null;
}

function publishToPlatformPackage(target) {
  const dir = platformPackageDir(target);
  if (!dir) return;
  const dest = path.join(dir, 'libfarskip_cpu.so');
  if (existsSync(dest) && statSync(dest).mtimeMs >= statSync(lib).mtimeMs) return;
  const tmp = `${dest}.tmp${process.pid}`;
  copyFileSync(lib, tmp);
  renameSync(tmp, dest);
  console.log(`[farskip] copied the library into ${path.relative(root, dest)}`);
}

async function build() {
  const probe = spawnSync(CC, ['-dumpmachine'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) { warn(`no C compiler found as '${CC}'`); return false; }
  const target = probe.stdout.trim();
  const x86 = /^(x86_64|amd64)/.test(target);
  const sources = readdirSync(srcDir).filter((f) => f.endsWith('.c')).sort();
  const headers = readdirSync(srcDir).filter((f) => f.endsWith('.h')).map((f) => path.join(srcDir, f));
  const inputs = [...sources.map((f) => path.join(srcDir, f)), ...headers, path.join(incDir, 'farskip_cpu.h'), fileURLToPath(import.meta.url)];
  if (!force && existsSync(lib)) {
    const libTime = statSync(lib).mtimeMs;
    if (inputs.every((f) => statSync(f).mtimeMs < libTime)) {
      console.log(`[farskip] native CPU kernels up to date (${path.relative(root, lib)})`);
      publishToPlatformPackage(target);
      return true;
    }
  }
  mkdirSync(objDir, { recursive: true });
  const units = []; // [source, object, flags]
  const variants = x86 ? Object.keys(VARIANTS) : ['scalar'];
  for (const f of sources) {
    const src = path.join(srcDir, f);
    const stem = f.replace(/\.c$/, '');
    if (GENERIC.has(f)) {
      units.push([src, path.join(objDir, `${stem}.o`), x86 ? ['-DFS_X86_VARIANTS=1'] : []]);
    } else if (SPECIAL[f]) {
      if (!x86) continue;
      const [tag, flags] = SPECIAL[f];
      units.push([src, path.join(objDir, `${stem}.o`), [`-DFS_VARIANT=${tag}`, ...flags]]);
    } else {
      for (const v of variants) units.push([src, path.join(objDir, `${stem}.${v}.o`), [`-DFS_VARIANT=${v}`, ...VARIANTS[v]]]);
    }
  }
  const t0 = Date.now();
  // incremental: an object is reused when it is newer than its source, every header and this script
  const depTime = Math.max(...[...headers, path.join(incDir, 'farskip_cpu.h'), fileURLToPath(import.meta.url)].map((f) => statSync(f).mtimeMs));
  const stale = ([src, obj]) => force || !existsSync(obj) || statSync(obj).mtimeMs <= Math.max(depTime, statSync(src).mtimeMs);
  const todo = units.filter(stale);
  const width = Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  const res = await pool(todo.map(([src, obj, flags]) => () => run(CC, [...BASE, ...flags, '-c', src, '-o', obj])), width);
  const bad = res.findIndex((r) => r.code !== 0);
  if (bad >= 0) {
    process.stderr.write(res[bad].err);
    warn(`compiling ${path.basename(todo[bad][0])} failed`);
    return false;
  }
  for (const r of res) if (r.err) process.stderr.write(r.err);
  const tmp = `${lib}.tmp${process.pid}`;
  // -z nodelete: the library's thread pool outlives any one loader. Under the threads backend every rank (a worker
  // thread) loads it through koffi; when the last of them exits, dlclose would unmap code the pool's threads are
  // parked in, and the next launch in the same process would crash or hang.
  const link = await run(CC, ['-shared', '-pthread', '-Wl,-z,nodelete', '-o', tmp, ...units.map((u) => u[1]), '-lm']);
  if (link.code !== 0) {
    process.stderr.write(link.err);
    rmSync(tmp, { force: true });
    warn('linking failed');
    return false;
  }
  renameSync(tmp, lib);
  publishToPlatformPackage(target);
  console.log(`[farskip] built ${path.relative(root, lib)} (${target}, ${variants.join('/')}${x86 ? '+avx512bf16' : ''}) in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${todo.length}/${units.length} objects compiled`);
  return true;
}

async function selftest() {
  const exe = path.join(buildDir, 'selftest');
  const c = await run(CC, ['-O2', '-std=gnu11', `-I${incDir}`, path.join(cpu, 'test', 'selftest.c'), '-o', exe, `-L${buildDir}`,
    '-lfarskip_cpu', `-Wl,-rpath,${buildDir}`, '-lm', '-pthread']);
  if (c.code !== 0) { process.stderr.write(c.err); console.error('[farskip] selftest failed to compile'); return 1; }
  const r = spawnSync(exe, [], { stdio: 'inherit' });
  return r.status ?? 1;
}

const ok = await build();
if (runTest) process.exit(ok ? await selftest() : 1);
process.exit(0);
