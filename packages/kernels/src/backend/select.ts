// Which CpuBackend runs an op: f64 always runs the plain-TS reference (gradcheck, references); f32/bf16 run
// the native library when it loaded, else the TS fallback with one warning line (never silently).
import type { DType } from '@farskip/tensor';
import { loadNativeBackend, nativeLibraryStatus } from './native/index.js';
import { tsBackend } from './ts/index.js';
import type { CpuBackend } from './types.js';

export type BackendChoice = 'auto' | 'native' | 'ts';

let native: CpuBackend | null | undefined;
let choice: BackendChoice = 'auto';
let warned = false;

function nativeBackend(): CpuBackend | null {
  if (native === undefined) {
    try {
      native = loadNativeBackend();
    } catch (e) {
      native = null;
      if (choice === 'native') throw e;
      warnOnce(String((e as Error).message ?? e));
    }
    if (native === null) warnOnce(nativeLibraryStatus().reason ?? 'not built');
  }
  return native;
}

function warnOnce(reason: string): void {
  if (warned) return;
  warned = true;
  console.warn(`[farskip] native CPU kernels unavailable (${reason}); using the plain-TypeScript fallback, which is much slower. ` +
    'Fix: install a C compiler (apt-get install gcc) and run `npm run build:native`.');
}

/** Forces the backend for f32/bf16 ops ('auto' = native when available). Returns the previous choice. */
export function useBackend(next: BackendChoice): BackendChoice {
  const prev = choice;
  if (next === 'native' && !nativeBackend()) {
    throw new Error(`useBackend('native'): the native library is not loaded (${nativeLibraryStatus().reason ?? 'unknown reason'}); run \`npm run build:native\``);
  }
  choice = next;
  return prev;
}

/** The backend for tensors of `dtype`. */
export function cpuBackend(dtype: DType): CpuBackend {
  if (dtype === 'f64' || choice === 'ts') return tsBackend;
  return nativeBackend() ?? tsBackend;
}

/** Name and ISA of the backend f32 ops use now, for logs and benchmark headers. */
export function backendInfo(): { backend: 'native' | 'ts'; isa: string; threads: number; library?: string } {
  const b = cpuBackend('f32');
  const status = nativeLibraryStatus();
  return { backend: b.name, isa: b.isa(), threads: b.numThreads(), ...(status.path ? { library: status.path } : {}) };
}
