// Locating, loading and version-checking libfarskip_cpu.so with koffi.
//
// Lookup: FARSKIP_NO_NATIVE=1 disables the native backend; FARSKIP_NATIVE_LIB (or options.libPath) names the
// library explicitly (unloadable -> throw); otherwise walk up from this module's directory until
// native/cpu/build/libfarskip_cpu.so exists (works from src/ under vitest and from the bundled dist/index.js).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LibraryHandle } from 'koffi';

type Koffi = typeof import('koffi');

export const ABI_VERSION = 1;
export const LIB_RELATIVE = join('native', 'cpu', 'build', 'libfarskip_cpu.so');
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
    koffiError = `koffi unavailable: ${(e as Error).message}`;
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

  const path = explicit ?? findLibrary(moduleDir());
  if (!path) {
    return { ok: false, reason: `${LIB_RELATIVE} not found above ${moduleDir()}; ${BUILD_HINT}` };
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
    const msg = `${path} has no fs_abi_version: ${(e as Error).message}`;
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
