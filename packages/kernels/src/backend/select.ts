// Which CpuBackend runs an op: f64 always runs the plain-TS reference (gradcheck, references); f32/bf16 run
// the native library when it loaded, else the TS fallback with one warning line (never silently).
import type { DType } from '@farskip/tensor';
import { loadNativeBackend, nativeLibraryStatus } from './native/index.js';
import { tsBackend } from './ts/index.js';
import type { CpuBackend } from './types.js';

export type BackendChoice = 'auto' | 'native' | 'ts';

let native: CpuBackend | null | undefined;
let loadError: Error | null = null;
let choice: BackendChoice = 'auto';
let warned = false;

// A library that is simply absent (not built, or FARSKIP_NO_NATIVE=1) falls back to TS with one warning line;
// one that was asked for explicitly (FARSKIP_NATIVE_LIB) and fails to load is an error on every op, not a
// silent slowdown.
function nativeBackend(): CpuBackend | null {
  if (loadError) throw loadError;
  if (native === undefined) {
    try {
      native = loadNativeBackend();
    } catch (e) {
      loadError = e as Error;
      throw loadError;
    }
    if (native === null) warnOnce(nativeLibraryStatus().reason ?? 'not built');
  }
  return native;
}

function warnOnce(reason: string): void {
  if (warned) return;
  warned = true;
  // every reason openLibrary gives names its own fix; only the deliberate opt-out needs the way back
  const fix = /FARSKIP_NO_NATIVE/.test(reason) ? ' Unset FARSKIP_NO_NATIVE to use them.' : '';
  console.warn(`[farskip] native CPU kernels unavailable (${reason}); using the plain-TypeScript fallback, which is much slower.${fix}`);
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
