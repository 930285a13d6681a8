// Finding vendor libraries (CUDA driver, cudart, cuBLAS/cuBLASLt, HIP, hipBLAS; other packages pass their own
// spec, e.g. collectives for NCCL/RCCL). Order, first that loads wins:
//   1. the environment override (FARSKIP_CUDA_LIB, FARSKIP_CUBLAS_LIB, ...). An override that fails to load is
//      the error, never a silent fallback: a user who names a file wants that file.
//   2. the bare sonames through the system loader: dlopen consults LD_LIBRARY_PATH, the RUNPATH of the process
//      and ld.so.cache (what `ldconfig -p` prints), so we need not spawn ldconfig ourselves.
//   3. pip wheels under every candidate site-packages (nvidia-cublas-cu12 installs nvidia/cublas/lib/
//      libcublas.so.12; torch's ROCm wheels bundle libamdhip64.so in torch/lib). We never spawn python to ask for
//      site-packages: candidates come from VIRTUAL_ENV, CONDA_PREFIX, PYTHONPATH and the usual prefixes.
//   4. well-known install directories (/usr/local/cuda/lib64, CUDA_HOME, /opt/rocm/lib, ...).
// The error names every place searched and the variable to set.
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';

export interface LibrarySpec {
  /** Environment variable naming the file to load instead of searching. */
  env: string;
  /** Human name in messages ("cuBLAS"). */
  label: string;
  /** Tried through the system loader, in order, and as file names in `dirs()`. */
  sonames: string[];
  /** Paths relative to a site-packages directory (pip wheels). */
  wheel: string[];
  /** Absolute directories (beyond site-packages) to look in for any of `sonames`. */
  dirs: () => string[];
  /** What to do when nothing loads (install hint; the message adds "or set <env>"). */
  fix: string;
}

export type LibKind = 'cuda' | 'cudart' | 'cublas' | 'cublasLt' | 'hip' | 'hipblas';

const env = (): NodeJS.ProcessEnv => process.env;
const conda = (): string[] => (env().CONDA_PREFIX ? [join(env().CONDA_PREFIX!, 'lib')] : []);
const rocm = (): string[] => [env().ROCM_PATH, '/opt/rocm'].filter((d): d is string => !!d).flatMap((d) => [join(d, 'lib'), join(d, 'lib64')]);
const distroLibs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64'];
/** CUDA toolkit library directories: CUDA_HOME / CUDA_PATH first, then the default install and its targets. */
function cudaToolkit(): string[] {
  const roots = [env().CUDA_HOME, env().CUDA_PATH, '/usr/local/cuda'].filter((d): d is string => !!d);
  return roots.flatMap((r) => [join(r, 'lib64'), join(r, 'lib'), join(r, 'targets/x86_64-linux/lib'), join(r, 'targets/sbsa-linux/lib')]);
}

// cu12 before cu13: a CUDA 13 library needs a driver >= 580 and would load, then fail at its first call on an
// older driver; set FARSKIP_CUBLAS_LIB to choose. CUDA 13 wheels put every library in nvidia/cu13/lib.
export const LIBRARIES: Readonly<Record<LibKind, LibrarySpec>> = {
  cuda: {
    env: 'FARSKIP_CUDA_LIB', label: 'the CUDA driver', sonames: ['libcuda.so.1', 'libcuda.so'], wheel: [],
    // the driver comes with the kernel module, never from a wheel; containers mount it in one of these
    dirs: () => [...distroLibs, '/usr/local/nvidia/lib64', '/usr/lib/wsl/lib'],
    fix: 'install the NVIDIA driver (and run containers with --gpus)',
  },
  cudart: {
    env: 'FARSKIP_CUDART_LIB', label: 'the CUDA runtime (cudart)', sonames: ['libcudart.so.12', 'libcudart.so.13', 'libcudart.so'],
    wheel: ['nvidia/cuda_runtime/lib/libcudart.so.12', 'nvidia/cu13/lib/libcudart.so.13', 'torch/lib/libcudart.so.12'],
    dirs: () => [...cudaToolkit(), ...conda(), ...distroLibs],
    fix: 'install the CUDA toolkit or pip install nvidia-cuda-runtime-cu12',
  },
  cublas: {
    env: 'FARSKIP_CUBLAS_LIB', label: 'cuBLAS', sonames: ['libcublas.so.12', 'libcublas.so.13', 'libcublas.so.11', 'libcublas.so'],
    wheel: ['nvidia/cublas/lib/libcublas.so.12', 'nvidia/cublas/lib/libcublas.so.13', 'nvidia/cu13/lib/libcublas.so.13', 'torch/lib/libcublas.so.12'],
    dirs: () => [...cudaToolkit(), ...conda(), ...distroLibs],
    fix: 'install the CUDA toolkit (libcublas) or pip install nvidia-cublas-cu12',
  },
  cublasLt: {
    env: 'FARSKIP_CUBLASLT_LIB', label: 'cuBLASLt', sonames: ['libcublasLt.so.12', 'libcublasLt.so.13', 'libcublasLt.so.11', 'libcublasLt.so'],
    wheel: ['nvidia/cublas/lib/libcublasLt.so.12', 'nvidia/cublas/lib/libcublasLt.so.13', 'nvidia/cu13/lib/libcublasLt.so.13', 'torch/lib/libcublasLt.so.12'],
    dirs: () => [...cudaToolkit(), ...conda(), ...distroLibs],
    fix: 'install the CUDA toolkit (libcublasLt) or pip install nvidia-cublas-cu12',
  },
  hip: {
    env: 'FARSKIP_HIP_LIB', label: 'the HIP runtime', sonames: ['libamdhip64.so.6', 'libamdhip64.so.7', 'libamdhip64.so'],
    wheel: ['torch/lib/libamdhip64.so'],
    dirs: () => [...rocm(), ...conda()],
    fix: 'install ROCm (hip-runtime-amd)',
  },
  hipblas: {
    env: 'FARSKIP_HIPBLAS_LIB', label: 'hipBLAS', sonames: ['libhipblas.so.2', 'libhipblas.so.3', 'libhipblas.so'],
    wheel: ['torch/lib/libhipblas.so'],
    dirs: () => [...rocm(), ...conda()],
    fix: 'install ROCm (hipblas)',
  },
};

function pythonLibDirs(prefix: string): string[] {
  const lib = join(prefix, 'lib');
  let names: string[] = [];
  try { names = readdirSync(lib).filter((n) => /^python3(\.\d+)?$/.test(n)); } catch { return []; }
  return names.flatMap((n) => [join(lib, n, 'site-packages'), join(lib, n, 'dist-packages')]);
}

/** Candidate site-packages directories that exist, most specific first (an active venv beats the system). */
export function sitePackagesDirs(): string[] {
  const e = env();
  const dirs = [
    ...(e.VIRTUAL_ENV ? pythonLibDirs(e.VIRTUAL_ENV) : []),
    ...(e.CONDA_PREFIX ? pythonLibDirs(e.CONDA_PREFIX) : []),
    ...(e.PYTHONPATH ? e.PYTHONPATH.split(':').filter(Boolean) : []),
    ...pythonLibDirs(join(homedir(), '.local')),
    ...pythonLibDirs('/usr/local'),
    ...pythonLibDirs('/usr'),
    '/usr/lib/python3/dist-packages',
  ];
  return [...new Set(dirs)].filter((d) => existsSync(d));
}

/** The files (absolute paths) searched after the sonames, in order; existing or not. */
export function candidateFiles(spec: LibrarySpec): string[] {
  return [...new Set([
    ...sitePackagesDirs().flatMap((d) => spec.wheel.map((w) => join(d, w))),
    ...spec.dirs().flatMap((d) => spec.sonames.map((s) => join(d, s))),
  ])];
}

export type Lib = LibraryHandle;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Fn = (...args: any[]) => any;
export interface LoadedLib { lib: Lib; path: string }

export class LibraryNotFoundError extends Error {
  override readonly name = 'LibraryNotFoundError';
  constructor(readonly env: string, readonly searched: string[], message: string) { super(message); }
}

const cache = new Map<string, LoadedLib>();

/** Loads the library `spec` describes or throws a LibraryNotFoundError naming every place searched and the fix. */
export function loadLibrary(spec: LibrarySpec): LoadedLib {
  const override = env()[spec.env];
  const key = `${spec.env}:${override ?? ''}:${spec.sonames.join(',')}`;
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
    throw new LibraryNotFoundError(spec.env, tried,
      `${spec.label} library from ${spec.env}=${override} failed to load: ${tried[0]}. Fix the path or unset ${spec.env}.`);
  }
  tried.push(`${spec.env} (unset)`);
  for (const so of spec.sonames) { const got = attempt(so); if (got) return got; }
  for (const f of candidateFiles(spec)) {
    if (!existsSync(f)) { tried.push(`${f} (absent)`); continue; }
    const got = attempt(f);
    if (got) return got;
  }
  throw new LibraryNotFoundError(spec.env, tried,
    `${spec.label} library not found. Searched: ${tried.join('; ')}. To fix: ${spec.fix}, or set ${spec.env}=/path/to/${spec.sonames[0]}.`);
}

/** loadLibrary for one of this package's known libraries. */
export function loadLib(kind: LibKind): LoadedLib {
  return loadLibrary(LIBRARIES[kind]);
}

/** Binds `decl` if the library exports it; undefined otherwise (optional or newer API). */
export function optionalFunc(lib: Lib, decl: string): Fn | undefined {
  try { return lib.func(decl); } catch { return undefined; }
}

/**
 * Binds C declarations on first use, by function name. A symbol that an older driver lacks then fails only when
 * called, naming the symbol and the library, instead of making the whole runtime unusable.
 */
export class LazyBindings {
  private readonly bound = new Map<string, Fn>();
  private readonly decls = new Map<string, string>();
  constructor(private readonly lib: Lib, private readonly path: string, decls: readonly string[]) {
    for (const d of decls) this.decls.set(/ \*?(\w+)\(/.exec(d)![1]!, d);
  }
  has(name: string): boolean {
    try { this.get(name); return true; } catch { return false; }
  }
  get(name: string): Fn {
    let f = this.bound.get(name);
    if (f) return f;
    const decl = this.decls.get(name);
    if (!decl) throw new Error(`internal: no declaration for ${name}`);
    try { f = this.lib.func(decl); } catch (e) {
      throw new Error(`${name} is not exported by ${this.path} (${(e as Error).message}); the library is too old for this call`);
    }
    this.bound.set(name, f);
    return f;
  }
}
