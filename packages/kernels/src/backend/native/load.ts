// Locating, loading and version-checking libfarskip_cpu.so with koffi.
//
// Lookup, first match wins:
//   1. FARSKIP_NO_NATIVE=1 disables the native backend.
//   2. FARSKIP_NATIVE_LIB (or options.libPath) names the library explicitly (unloadable -> throw).
//   3. The prebuilt library of this platform, shipped as the optional dependency
//      @farskip/kernels-<os>-<cpu>[-<libc>] (the esbuild / swc pattern) and resolved like any package from this
//      module, so it works wherever a package manager put it (hoisted, nested, pnpm's store, Deno's node_modules).
//   4. A source checkout's build: walk up from this module's directory until native/cpu/build/libfarskip_cpu.so
//      exists (developing farskip itself on a platform that has no prebuilt package).

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LibraryHandle } from 'koffi';

type Koffi = typeof import('koffi');

export const ABI_VERSION = 1;
export const LIB_FILE = 'libfarskip_cpu.so';
export const LIB_RELATIVE = join('native', 'cpu', 'build', LIB_FILE);
const BUILD_HINT = 'build it with `node tooling/build-native.mjs` (npm run build:native)';

let koffiModule: Koffi | null | undefined;
let koffiError = '';

/**
 * koffi, required lazily (so importing @farskip/kernels never fails where koffi's prebuilt module cannot load),
 * with async_stack_size raised to 1 MiB before anything else touches it: MPICH crashes on koffi's default
 * 128 KiB async stacks. koffi.config throws once a library is loaded; then whoever loaded first owns the setting.
 */
export function getKoffi(): Koffi | null {
  if (koffiModule !== undefined) return koffiModule;
  try {
    const require = createRequire(import.meta.url);
    const k = require('koffi') as Koffi & { default?: Koffi };
    koffiModule = (k.default ?? k) as Koffi;
  } catch (e) {
    koffiError = `koffi unavailable: ${(e as Error).message}; reinstall it (\`npm rebuild koffi\`) to use the native kernels`;
    koffiModule = null;
    return null;
  }
  try {
    koffiModule.config({ ...koffiModule.config(), async_stack_size: 1 << 20 });
  } catch {
    // koffi already used (a library was loaded before us): keep its configuration
  }
  return koffiModule;
}

/** Walk up from `start` until `<dir>/native/cpu/build/libfarskip_cpu.so` exists. */
export function findLibrary(start: string): string | null {
  let dir = start;
  for (;;) {
    const candidate = join(dir, LIB_RELATIVE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

/**
 * Names of the packages that ship a prebuilt library for this platform (only linux-x64-gnu is published today;
 * the others are the names a build for them would take). libc tells glibc from musl on Linux.
 */
export function platformPackages(platform: string = process.platform, arch: string = process.arch, libc: 'gnu' | 'musl' = linuxLibc()): string[] {
  if (platform === 'linux') return [`@farskip/kernels-linux-${arch}-${libc}`, `@farskip/kernels-linux-${arch}-${libc === 'gnu' ? 'musl' : 'gnu'}`];
  if (platform === 'win32') return [`@farskip/kernels-win32-${arch}-msvc`];
  return [`@farskip/kernels-${platform}-${arch}`];
}

function linuxLibc(): 'gnu' | 'musl' {
  // detect-libc's cheapest test: musl's ldd is a script that names musl; glibc's names GNU libc
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'gnu';
  } catch {
    return 'gnu';
  }
}

/** The library inside the first installed platform package, resolved from `fromDir`, or null. */
export function findPrebuilt(fromDir: string, names: string[] = platformPackages()): string | null {
  const require = createRequire(join(fromDir, 'noop.js'));
  for (const name of names) {
    let manifest: string;
    try {
      manifest = require.resolve(`${name}/package.json`);
    } catch {
      continue; // not installed: another platform, or installed with --omit=optional
    }
    const lib = join(dirname(manifest), LIB_FILE);
    if (existsSync(lib)) return lib;
  }
  return null;
}

export function moduleDir(): string {
  return dirname(fileURLToPath(import.meta.url));
}

export type LoadResult =
  | { ok: true; path: string; lib: LibraryHandle; koffi: Koffi }
  | { ok: false; reason: string; path?: string };

/**
 * Resolve and dlopen the library and check fs_abi_version() === 1. An explicit path (options / env) that does
 * not load throws; a missing default build returns { ok: false, reason }.
 */
export function openLibrary(explicitPath: string | undefined): LoadResult {
  const env = typeof process !== 'undefined' ? process.env : {};
  if (env.FARSKIP_NO_NATIVE === '1') return { ok: false, reason: 'disabled by FARSKIP_NO_NATIVE=1' };
  const fromEnv = explicitPath === undefined && env.FARSKIP_NATIVE_LIB ? env.FARSKIP_NATIVE_LIB : undefined;
  const explicit = explicitPath ?? fromEnv;
  const label = explicitPath !== undefined ? 'options.libPath' : 'FARSKIP_NATIVE_LIB';

  const koffi = getKoffi();
  if (!koffi) {
    if (explicit) throw new Error(`native backend: ${label}=${explicit} was given but ${koffiError}`);
    return { ok: false, reason: koffiError };
  }

  const names = platformPackages();
  const path = explicit ?? findPrebuilt(moduleDir(), names) ?? findLibrary(moduleDir());
  if (!path) {
    return {
      ok: false,
      reason: `no native CPU kernels for ${process.platform}-${process.arch}: ${names[0]} is not installed` +
        ` (${names.length > 1 ? `nor ${names.slice(1).join(', ')}; ` : ''}prebuilt libraries ship for linux-x64-gnu ` +
        'only, and npm skips optional dependencies with --omit=optional) ' +
        `and no source build (${LIB_RELATIVE}) was found above ${moduleDir()}. Fix: on linux-x64 reinstall without ` +
        '--omit=optional; elsewhere build libfarskip_cpu.so from the farskip repository (`node tooling/build-native.mjs`, ' +
        'needs a C compiler) and set FARSKIP_NATIVE_LIB to it',
    };
  }
  let lib: LibraryHandle;
  try {
    lib = koffi.load(path);
  } catch (e) {
    const msg = `cannot load ${path}: ${(e as Error).message}`;
    if (explicit) {
      throw new Error(`native backend: ${label}=${explicit}: ${msg}. Fix: ${BUILD_HINT} and point ${label} at the ` +
        'built libfarskip_cpu.so, or unset it to use the default lookup (FARSKIP_NO_NATIVE=1 forces the TS backend)');
    }
    return { ok: false, path, reason: `${msg}; rebuild with \`node tooling/build-native.mjs --force\`` };
  }
  let abi: number;
  try {
    abi = lib.func('int fs_abi_version(void)')() as number;
  } catch (e) {
    abi = -1;
    const msg = `${path} has no fs_abi_version: ${(e as Error).message} (not a farskip library?); rebuild with \`node tooling/build-native.mjs --force\``;
    if (explicit) throw new Error(`native backend: ${label}: ${msg}`);
    return { ok: false, path, reason: msg };
  }
  if (abi !== ABI_VERSION) {
    const msg = `${path} has ABI version ${abi}, expected ${ABI_VERSION} (stale build?); ` +
      'rebuild with `node tooling/build-native.mjs --force`';
    if (explicit) throw new Error(`native backend: ${label}: ${msg}`);
    return { ok: false, path, reason: msg };
  }
  return { ok: true, path, lib, koffi };
}
