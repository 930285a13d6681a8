// The CUDA kernels of native/cuda on a real GPU: the fatbin loaded with cuModuleLoadData (through @farskip/device,
// so nothing compiles at install time), kernels resolved by name on first use, launched with the manifest's rule
// (manifest.ts) on a stream. What @farskip/kernels' GPU ops and tooling/device/check.sh's op tests call.
//
// Fatbin lookup: FARSKIP_CUDA_FATBIN, else native/cuda/build/farskip_cuda.fatbin of this checkout (built by
// `node tooling/build-cuda.mjs`), else dist/cuda/farskip_cuda.fatbin of a published package.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openGpu } from '@farskip/device';
import type { GpuRuntime } from '@farskip/device';
import { loadManifest, prepareLaunch } from './manifest.js';
import type { KernelArg, KernelSpec, Launch } from './manifest.js';

/** Above this, a kernel needs the opt-in attribute before it launches (CUDA's default dynamic shared memory cap). */
const DEFAULT_SHARED_LIMIT = 48 * 1024;

export function fatbinPath(): string {
  const env = process.env.FARSKIP_CUDA_FATBIN;
  if (env) {
    if (!existsSync(env)) throw new Error(`FARSKIP_CUDA_FATBIN=${env}: no such file (expected a fatbin built by tooling/build-cuda.mjs)`);
    return env;
  }
  const tried: string[] = [];
  for (const rel of ['../../../../../native/cuda/build/farskip_cuda.fatbin', '../../../native/cuda/build/farskip_cuda.fatbin', './cuda/farskip_cuda.fatbin']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
    tried.push(p);
  }
  throw new Error(`the CUDA kernels are not built (looked for ${tried.join(', ')}): run \`node tooling/build-cuda.mjs\` (needs nvcc) ` +
    'or set FARSKIP_CUDA_FATBIN to a farskip_cuda.fatbin');
}

export class CudaKernelModule {
  private readonly fns = new Map<string, { fn: bigint; sharedLimit: number }>();
  private module: bigint | null;
  readonly warp: number;

  /** Loads the fatbin into `rt`'s context (CUDA only: the HIP build of these kernels is not produced yet). */
  constructor(readonly rt: GpuRuntime, private readonly specs = loadManifest(), image?: Uint8Array) {
    if (rt.kind !== 'cuda') throw new Error(`the kernels of native/cuda are built for CUDA only; ${rt.kind}:${rt.device} needs the hipified build (native/cuda/README.md)`);
    this.warp = rt.properties().warpSize;
    this.module = rt.loadModule(image ?? new Uint8Array(readFileSync(fatbinPath())));
  }

  /** Opens `cuda:N` and loads the kernels there. */
  static open(device = 0): CudaKernelModule {
    return new CudaKernelModule(openGpu('cuda', device));
  }

  spec(name: string): KernelSpec {
    const s = this.specs.get(name);
    if (!s) throw new Error(`kernel '${name}' is not in native/cuda/kernels.json (${this.specs.size} kernels; names look like fs_rmsnorm_fwd_f32)`);
    return s;
  }

  /** Launches `name` on `stream` (default: the legacy default stream). Returns the launch it made (null: empty grid). */
  launch(name: string, args: Record<string, KernelArg>, options: { stream?: bigint; extra?: Record<string, number> } = {}): Launch | null {
    if (this.module === null) throw new Error('CudaKernelModule used after dispose()');
    const l = prepareLaunch(this.spec(name), args, this.warp, options.extra);
    if (l.grid.some((g) => g === 0)) return null;
    let f = this.fns.get(name);
    if (!f) {
      f = { fn: this.rt.getFunction(this.module, name), sharedLimit: DEFAULT_SHARED_LIMIT };
      this.fns.set(name, f);
    }
    if (l.sharedBytes > f.sharedLimit) {
      this.rt.setMaxDynamicSharedMemory(f.fn, l.sharedBytes);
      f.sharedLimit = l.sharedBytes;
    }
    this.rt.launch(f.fn, { grid: l.grid, block: l.block, sharedBytes: l.sharedBytes, stream: options.stream ?? 0n }, l.kinds, l.values);
    return l;
  }

  dispose(): void {
    if (this.module !== null) this.rt.unloadModule(this.module);
    this.module = null;
    this.fns.clear();
  }
}
