#!/usr/bin/env node
// build-cuda.mjs: compile native/cuda (the CUDA kernels behind the GPU backend) into ONE module,
// native/cuda/build/farskip_cuda.fatbin (sm_80 + sm_90 SASS and compute_90 PTX), which the host loads with
// cuModuleLoadData and whose kernels it finds with cuModuleGetFunction. No dependencies.
//
//   node tooling/build-cuda.mjs            check the manifest, build if any source is newer than the fatbin
//   node tooling/build-cuda.mjs --force    rebuild
//   node tooling/build-cuda.mjs --check    only check native/cuda/kernels.json against the sources (no nvcc needed)
//   node tooling/build-cuda.mjs --hip      run hipify-perl over the sources into native/cuda/build/hip (if present)
//   node tooling/build-cuda.mjs --emu      build native/cuda/build/emu/libfs_cuda_emu.so: the same kernel sources
//                                          compiled by the host C++ compiler against a CPU emulation of the CUDA
//                                          execution model (native/cuda/emu), for tests on machines without a GPU
//
// Every `extern "C" __global__` kernel in native/cuda/src/*.cu must appear in kernels.json with the same parameter
// list (and vice versa): a mismatch exits 1 whether or not nvcc is installed. A missing nvcc prints one line and
// exits 0 (CPU-only machines and CI). The sources are compiled as one translation unit (a generated file that
// #includes every .cu), so the result is a single module; warnings are errors.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listFatbin } from './fatbin.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const cudaDir = path.join(root, 'native', 'cuda');
const srcDir = path.join(cudaDir, 'src');
const buildDir = path.join(cudaDir, 'build');
const manifestPath = path.join(cudaDir, 'kernels.json');
const fatbin = path.join(buildDir, 'farskip_cuda.fatbin');
const unit = path.join(buildDir, 'farskip_cuda_all.cu');
const args = new Set(process.argv.slice(2));
const NVCC = process.env.NVCC || 'nvcc';

const NVCC_FLAGS = ['-O3', '--std=c++17',
  '-gencode', 'arch=compute_90,code=sm_90', '-gencode', 'arch=compute_80,code=sm_80',
  '-gencode', 'arch=compute_90,code=compute_90', // PTX: JIT-compiled for newer GPUs
  '-Werror', 'all-warnings', '-Xcompiler', '-Wall', '--threads', '0',
  '--no-compress'] // plain images: tooling/fatbin.mjs (and the test) can list their kernels without cuobjdump;

const rel = (p) => path.relative(root, p);

/** C parameter type -> manifest type (ptr | int | float | i64). */
function paramType(decl) {
  if (decl.includes('*')) return 'ptr';
  const t = decl.replace(/\b(const|unsigned)\b/g, '').trim().split(/\s+/).slice(0, -1).join(' ');
  if (t === 'int') return 'int';
  if (t === 'float') return 'float';
  if (t === 'long long' || t === 'int64_t') return 'i64';
  throw new Error(`unsupported kernel parameter type: '${decl}'`);
}

/** Every `extern "C" __global__` kernel in the sources: [{ name, file, params: [{ name, type }] }]. */
function parseKernels() {
  const out = [];
  const re = /extern\s+"C"\s+__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+(\w+)\s*\(([^)]*)\)/g;
  for (const f of readdirSync(srcDir).filter((x) => x.endsWith('.cu')).sort()) {
    const text = readFileSync(path.join(srcDir, f), 'utf8');
    for (const m of text.matchAll(re)) {
      const params = m[2].split(',').map((s) => s.trim()).filter(Boolean)
        .map((decl) => ({ name: decl.match(/(\w+)\s*$/)[1], type: paramType(decl) }));
      out.push({ name: m[1], file: f, params });
    }
  }
  return out;
}

/** Problems between the sources and kernels.json (empty when in sync). */
function checkManifest() {
  const problems = [];
  const src = parseKernels();
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const listed = new Map();
  for (const k of manifest.kernels) {
    if (listed.has(k.name)) problems.push(`${k.name}: listed twice in kernels.json`);
    listed.set(k.name, k);
    for (const key of ['grid', 'block', 'sharedBytes']) {
      if (!k.launch || k.launch[key] === undefined) problems.push(`${k.name}: launch.${key} missing in kernels.json`);
    }
  }
  const seen = new Set();
  for (const k of src) {
    if (seen.has(k.name)) problems.push(`${k.name}: defined twice in the sources`);
    seen.add(k.name);
    const m = listed.get(k.name);
    if (!m) { problems.push(`${k.name} (${k.file}): not in kernels.json`); continue; }
    if (m.file !== k.file) problems.push(`${k.name}: kernels.json says file ${m.file}, source is ${k.file}`);
    const a = k.params.map((p) => `${p.type} ${p.name}`).join(', ');
    const b = (m.params ?? []).map((p) => `${p.type} ${p.name}`).join(', ');
    if (a !== b) problems.push(`${k.name}: parameters differ\n    source:      (${a})\n    kernels.json: (${b})`);
  }
  for (const name of listed.keys()) if (!seen.has(name)) problems.push(`${name}: in kernels.json but no such kernel in the sources`);
  return { problems, count: src.length };
}

function newestInput() {
  const files = readdirSync(srcDir).filter((f) => /\.(cu|cuh)$/.test(f)).map((f) => path.join(srcDir, f));
  return Math.max(...[...files, fileURLToPath(import.meta.url)].map((f) => statSync(f).mtimeMs));
}

function build(force) {
  const probe = spawnSync(NVCC, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    console.log(`[farskip] nvcc not found ('${NVCC}'): CUDA kernels not built (native/cuda; set NVCC or install the CUDA toolkit)`);
    return true;
  }
  if (!force && existsSync(fatbin) && statSync(fatbin).mtimeMs > newestInput()) {
    console.log(`[farskip] CUDA kernels up to date (${rel(fatbin)})`);
    return true;
  }
  mkdirSync(buildDir, { recursive: true });
  const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cu')).sort();
  writeFileSync(unit, '// generated by tooling/build-cuda.mjs: every kernel source in one translation unit (one module)\n' +
    sources.map((f) => `#include "../src/${f}"\n`).join(''));
  const tmp = `${fatbin}.tmp${process.pid}`;
  const t0 = Date.now();
  const r = spawnSync(NVCC, ['-fatbin', ...NVCC_FLAGS, '-o', tmp, unit], { encoding: 'utf8', cwd: buildDir });
  if (r.stdout) process.stdout.write(r.stdout);
  if (r.stderr) process.stderr.write(r.stderr);
  if (r.error || r.status !== 0) {
    rmSync(tmp, { force: true });
    console.error(`[farskip] CUDA build failed (${NVCC} exit ${r.status})`);
    return false;
  }
  renameSync(tmp, fatbin);
  const version = (probe.stdout.match(/release ([\d.]+)/) ?? [])[1] ?? '?';
  console.log(`[farskip] built ${rel(fatbin)} (nvcc ${version}, ${sources.length} sources, sm_80 sm_90 + compute_90 PTX) ` +
    `in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${r.stderr ? 'with compiler output above' : 'no warnings'}`);
  for (const im of listFatbin(readFileSync(fatbin))) {
    console.log(`[farskip]   ${im.kind.toUpperCase()} ${im.arch}: ${im.kernels.length} kernels, ${im.bytes} bytes`);
  }
  return true;
}

function hipify() {
  const probe = spawnSync('hipify-perl', ['--version'], { encoding: 'utf8' });
  if (probe.error) { console.log('[farskip] hipify-perl not found: HIP sources not generated (see native/cuda/README.md)'); return true; }
  const out = path.join(buildDir, 'hip');
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(srcDir).filter((x) => /\.(cu|cuh)$/.test(x))) {
    const r = spawnSync('hipify-perl', [path.join(srcDir, f)], { encoding: 'utf8' });
    if (r.status !== 0) { process.stderr.write(r.stderr); console.error(`[farskip] hipify-perl failed on ${f}`); return false; }
    if (r.stderr) process.stderr.write(r.stderr);
    writeFileSync(path.join(out, f.replace(/\.cu$/, '.hip')), r.stdout);
  }
  console.log(`[farskip] hipify-perl output in ${rel(out)}`);
  return true;
}

/** The CPU emulation library (see native/cuda/emu/fs_emu.h); false when no C++ compiler or the build fails. */
function buildEmu(force) {
  const CXX = process.env.CXX || 'c++';
  const emuDir = path.join(cudaDir, 'emu'), outDir = path.join(buildDir, 'emu');
  const lib = path.join(outDir, 'libfs_cuda_emu.so');
  const inputs = [manifestPath, path.join(emuDir, 'fs_emu.h'), path.join(emuDir, 'fs_emu.cpp')];
  if (!force && existsSync(lib) && statSync(lib).mtimeMs > Math.max(newestInput(), ...inputs.map((f) => statSync(f).mtimeMs))) {
    console.log(`[farskip] CUDA emulation library up to date (${rel(lib)})`);
    return true;
  }
  if (spawnSync(CXX, ['--version']).error) { console.log(`[farskip] no C++ compiler ('${CXX}'): CUDA emulation library not built`); return false; }
  mkdirSync(outDir, { recursive: true });
  // the launcher's table: every kernel of kernels.json, called from 8-byte argument slots. The declarations use
  // void * for every pointer (ABI-identical to the typed pointers of the definitions, which live in another unit).
  const C = { ptr: 'void *', int: 'int', float: 'float', i64: 'long long' };
  const LD = { ptr: (i) => `(void *)(uintptr_t)a[${i}]`, int: (i) => `(int)(int64_t)a[${i}]`, i64: (i) => `(long long)a[${i}]`, float: (i) => `fs_emu_f32(a[${i}])` };
  const { kernels } = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const table = ['// generated by tooling/build-cuda.mjs --emu from native/cuda/kernels.json', '#include <stdint.h>', '#include <string.h>',
    'static float fs_emu_f32(uint64_t u) { uint32_t b = (uint32_t)u; float f; memcpy(&f, &b, 4); return f; }',
    'struct FsEmuEntry { const char *name; void (*call)(const uint64_t *); };'];
  for (const k of kernels) {
    table.push(`extern "C" void ${k.name}(${k.params.map((p) => C[p.type]).join(', ')});`);
    table.push(`static void call_${k.name}(const uint64_t *a) { ${k.name}(${k.params.map((p, i) => LD[p.type](i)).join(', ')}); }`);
  }
  table.push(`extern const FsEmuEntry fs_emu_table[] = {\n${kernels.map((k) => `  {"${k.name}", call_${k.name}},`).join('\n')}\n};`);
  table.push(`extern const int fs_emu_table_size = ${kernels.length};`);
  // generated sources in a directory of this process: test files may build concurrently (the rename is atomic)
  const work = path.join(outDir, `tmp${process.pid}`);
  mkdirSync(work, { recursive: true });
  writeFileSync(path.join(work, 'emu_table.cpp'), table.join('\n') + '\n');
  const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cu')).sort();
  writeFileSync(path.join(work, 'kernels.cpp'), '// generated by tooling/build-cuda.mjs --emu\n' +
    sources.map((f) => `#include "${path.join(srcDir, f)}"\n`).join(''));
  const flags = ['-O1', '-std=c++17', '-fPIC', '-pthread', '-Wall', '-Wno-unknown-pragmas', '-DFS_EMU'];
  const tmp = `${lib}.tmp${process.pid}`;
  const t0 = Date.now();
  const r = spawnSync(CXX, [...flags, '-shared', '-o', tmp,
    '-include', path.join(emuDir, 'fs_emu.h'), `-I${path.join(emuDir, 'include')}`, path.join(work, 'kernels.cpp'),
    path.join(emuDir, 'fs_emu.cpp'), path.join(work, 'emu_table.cpp')], { encoding: 'utf8' });
  rmSync(work, { recursive: true, force: true });
  if (r.stderr) process.stderr.write(r.stderr);
  if (r.error || r.status !== 0) { rmSync(tmp, { force: true }); console.error('[farskip] CUDA emulation library build failed'); return false; }
  renameSync(tmp, lib);
  console.log(`[farskip] built ${rel(lib)} (CPU emulation of the CUDA kernels) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return true;
}

const { problems, count } = checkManifest();
if (problems.length) {
  console.error(`[farskip] native/cuda/kernels.json is out of sync with native/cuda/src:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
if (args.has('--check')) { console.log(`[farskip] kernels.json matches the sources (${count} kernels)`); process.exit(0); }
if (args.has('--hip')) process.exit(hipify() ? 0 : 1);
if (args.has('--emu')) process.exit(buildEmu(args.has('--force')) ? 0 : 1);
process.exit(build(args.has('--force')) ? 0 : 1);
