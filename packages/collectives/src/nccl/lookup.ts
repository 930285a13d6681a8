// Finding the vendor libraries. Order: an explicit environment override (an override that fails to load is an
// error, never a silent fallback, as FARSKIP_NATIVE_LIB in kernels), then the system loader (ld.so.cache,
// LD_LIBRARY_PATH: the bare soname), then well-known install directories, including pip wheels
// (nvidia-nccl-cu12 installs site-packages/nvidia/nccl/lib/libnccl.so.2; torch's ROCm wheels bundle librccl.so
// and libamdhip64.so in site-packages/torch/lib). We never spawn python to ask for site-packages: the candidate
// directories are derived from VIRTUAL_ENV, CONDA_PREFIX, PYTHONPATH and the usual system prefixes.
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';

export type LibKind = 'nccl' | 'rccl' | 'cuda' | 'hip';

interface LibSpec {
  env: string;
  label: string;
  sonames: string[];
  /** Paths relative to a site-packages directory. */
  wheel: string[];
  /** Absolute directories (beyond site-packages) to look in for any of `sonames`. */
  dirs: () => string[];
  fix: string;
}

const rocm = (): string[] => [process.env.ROCM_PATH, '/opt/rocm'].filter((d): d is string => !!d).flatMap((d) => [join(d, 'lib'), join(d, 'lib64')]);
const conda = (): string[] => (process.env.CONDA_PREFIX ? [join(process.env.CONDA_PREFIX, 'lib')] : []);

const SPECS: Record<LibKind, LibSpec> = {
  nccl: {
    env: 'FARSKIP_NCCL_LIB', label: 'NCCL', sonames: ['libnccl.so.2', 'libnccl.so'],
    wheel: ['nvidia/nccl/lib/libnccl.so.2'],
    dirs: () => [...conda(), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/local/cuda/lib64', '/usr/lib64'],
    fix: 'install NCCL (apt install libnccl2, or pip install nvidia-nccl-cu12) or set FARSKIP_NCCL_LIB=/path/to/libnccl.so.2',
  },
  rccl: {
    env: 'FARSKIP_RCCL_LIB', label: 'RCCL', sonames: ['librccl.so.1', 'librccl.so'],
    wheel: ['torch/lib/librccl.so', 'torch/lib/librccl.so.1'],
    dirs: () => [...rocm(), ...conda()],
    fix: 'install RCCL (ROCm: apt install rccl) or set FARSKIP_RCCL_LIB=/path/to/librccl.so',
  },
  cuda: {
    env: 'FARSKIP_CUDA_LIB', label: 'the CUDA driver', sonames: ['libcuda.so.1', 'libcuda.so'],
    wheel: [],
    // the driver comes with the kernel module, never from a wheel; containers mount it in one of these
    dirs: () => ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/local/nvidia/lib64', '/usr/lib/wsl/lib'],
    fix: 'install the NVIDIA driver (and run containers with --gpus) or set FARSKIP_CUDA_LIB=/path/to/libcuda.so.1',
  },
  hip: {
    env: 'FARSKIP_HIP_LIB', label: 'the HIP runtime', sonames: ['libamdhip64.so.6', 'libamdhip64.so.7', 'libamdhip64.so'],
    wheel: ['torch/lib/libamdhip64.so'],
    dirs: () => [...rocm(), ...conda()],
    fix: 'install ROCm (hip-runtime-amd) or set FARSKIP_HIP_LIB=/path/to/libamdhip64.so',
  },
};

function pythonLibDirs(prefix: string): string[] {
  const lib = join(prefix, 'lib');
  let names: string[] = [];
  try { names = readdirSync(lib).filter((n) => /^python3(\.\d+)?$/.test(n)); } catch { return []; }
  return names.flatMap((n) => [join(lib, n, 'site-packages'), join(lib, n, 'dist-packages')]);
}

/** Candidate site-packages directories, most specific first (an active venv beats the system). */
export function sitePackagesDirs(): string[] {
  const env = process.env;
  const dirs = [
    ...(env.VIRTUAL_ENV ? pythonLibDirs(env.VIRTUAL_ENV) : []),
    ...(env.CONDA_PREFIX ? pythonLibDirs(env.CONDA_PREFIX) : []),
    ...(env.PYTHONPATH ? env.PYTHONPATH.split(':').filter(Boolean) : []),
    ...pythonLibDirs(join(homedir(), '.local')),
    ...pythonLibDirs('/usr/local'),
    ...pythonLibDirs('/usr'),
    '/usr/lib/python3/dist-packages',
  ];
  return [...new Set(dirs)].filter((d) => existsSync(d));
}

export type Lib = LibraryHandle;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Fn = (...args: any[]) => any;
export interface LoadedLib { lib: Lib; path: string }

const cache = new Map<string, LoadedLib>();

/** Loads the library or throws an Error naming every place searched and the fix. */
export function loadLib(kind: LibKind): LoadedLib {
  const spec = SPECS[kind];
  const override = process.env[spec.env];
  const key = `${kind}:${override ?? ''}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const tried: string[] = [];
  const attempt = (path: string): LoadedLib | null => {
    try {
      const found = { lib: koffi.load(path), path };
      cache.set(key, found);
      return found;
    } catch (e) {
      tried.push(`${path} (${String((e as Error).message).split('\n')[0]})`);
      return null;
    }
  };
  if (override) {
    const got = attempt(override);
    if (got) return got;
    throw new Error(`${spec.label} library from ${spec.env}=${override} failed to load: ${tried[0]}. Fix the path or unset ${spec.env}.`);
  }
  tried.push(`${spec.env} (unset)`);
  for (const so of spec.sonames) { const got = attempt(so); if (got) return got; }
  const files = [
    ...sitePackagesDirs().flatMap((d) => spec.wheel.map((w) => join(d, w))),
    ...spec.dirs().flatMap((d) => spec.sonames.map((s) => join(d, s))),
  ];
  for (const f of new Set(files)) {
    if (!existsSync(f)) { tried.push(`${f} (absent)`); continue; }
    const got = attempt(f);
    if (got) return got;
  }
  throw new Error(`${spec.label} library not found. Searched: ${tried.join('; ')}. To fix: ${spec.fix}.`);
}

/** Binds `name` if the library exports it; undefined otherwise (optional API, e.g. ncclCommSplit before 2.18). */
export function optionalFunc(lib: Lib, decl: string): Fn | undefined {
  try { return lib.func(decl); } catch { return undefined; }
}
