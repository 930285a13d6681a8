// native/cuda/kernels.json: every kernel of the CUDA fatbin with its parameters (in order, with C types) and its
// launch rule. The host launches kernels by name with arguments by parameter name; this module checks the
// arguments against the manifest, packs them into 8-byte slots (what cuLaunchKernel's kernelParams point at, and
// what the CPU emulation's launcher reads), and evaluates the launch rule — grid, block and dynamic shared memory
// are expressions over the kernel's own scalar arguments, e.g. `cdiv(rows, 4)`, `[WARP, 4]`.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type KernelParamKind = 'ptr' | 'int' | 'i64' | 'float';
export interface KernelParam { name: string; type: KernelParamKind }
export interface KernelSpec {
  name: string;
  file: string;
  params: KernelParam[];
  launch: { grid: (number | string)[]; block: (number | string)[]; sharedBytes: number | string; note?: string };
}
export interface KernelManifest { module: string; kernels: KernelSpec[] }

/** A device buffer as the launcher sees it: an address (null = a null pointer). */
export interface DeviceAddress { addr: bigint }
export type KernelArg = number | bigint | DeviceAddress | null;

export interface Launch {
  grid: [number, number, number];
  block: [number, number, number];
  sharedBytes: number;
  /** one 8-byte slot per parameter: pointers and i64 as their 64 bits, int sign-extended, float's 32 bits in the low half */
  slots: BigUint64Array;
  /** the same arguments typed, in parameter order (for launchers that pack themselves) */
  values: (number | bigint)[];
  kinds: KernelParamKind[];
}

/**
 * The manifest: `FARSKIP_CUDA_MANIFEST`, else native/cuda/kernels.json of this checkout (seen from src/backend/cuda
 * or from dist), else the copy a published package ships in dist/cuda (tsup.config.ts copies it there).
 */
export function manifestPath(): string {
  const env = process.env.FARSKIP_CUDA_MANIFEST;
  if (env) {
    if (!existsSync(env)) throw new Error(`FARSKIP_CUDA_MANIFEST=${env}: no such file (expected native/cuda/kernels.json)`);
    return env;
  }
  for (const rel of ['../../../../../native/cuda/kernels.json', '../../../native/cuda/kernels.json', './cuda/kernels.json']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('native/cuda/kernels.json not found beside @farskip/kernels: set FARSKIP_CUDA_MANIFEST to its path');
}

export function loadManifest(path = manifestPath()): Map<string, KernelSpec> {
  const m = JSON.parse(readFileSync(path, 'utf8')) as KernelManifest;
  if (!Array.isArray(m.kernels)) throw new Error(`${path}: expected { kernels: [...] } (native/cuda/kernels.json)`);
  return new Map(m.kernels.map((k) => [k.name, k]));
}

const RULE = /^[\w\s+\-*/(),.?:<>=!&|]*$/;
type Rule = (cdiv: (a: number, b: number) => number, min: typeof Math.min, max: typeof Math.max, WARP: number, scope: Record<string, number>) => number;
const compiled = new Map<string, Rule>();

/** Evaluates a launch-rule entry: a number, or an expression over the scalar arguments with cdiv, min, max, WARP. */
export function evalRule(e: number | string, scope: Record<string, number>, warp: number, kernel: string): number {
  if (typeof e === 'number') return e;
  let f = compiled.get(e);
  if (!f) {
    // the manifest ships with the library; still, accept arithmetic only
    if (!RULE.test(e)) throw new Error(`${kernel}: launch rule '${e}' is not an arithmetic expression`);
    f = new Function('cdiv', 'min', 'max', 'WARP', 'scope', `with (scope) { return (${e}); }`) as Rule;
    compiled.set(e, f);
  }
  const v = f((a: number, b: number) => Math.ceil(a / b), Math.min, Math.max, warp, scope);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${kernel}: launch rule '${e}' gave ${v} for ${JSON.stringify(scope)}`);
  return v;
}

/**
 * Checks `args` (by parameter name) against `spec`, packs them and evaluates the launch rule. `extra` feeds rules
 * that use values which are not parameters (e.g. a workspace's row count). A zero in the grid means an empty launch.
 */
export function prepareLaunch(spec: KernelSpec, args: Record<string, KernelArg>, warp = 32, extra: Record<string, number> = {}): Launch {
  const slots = new BigUint64Array(spec.params.length);
  const values: (number | bigint)[] = [];
  const scope: Record<string, number> = { ...extra };
  spec.params.forEach((p, i) => {
    const v = args[p.name];
    if (v === undefined) throw new Error(`${spec.name}: argument '${p.name}' (${p.type}) missing; parameters: ${spec.params.map((q) => q.name).join(', ')}`);
    if (p.type === 'ptr') {
      if (v !== null && (typeof v !== 'object' || typeof v.addr !== 'bigint')) throw new Error(`${spec.name}: '${p.name}' must be a device buffer ({ addr: bigint }) or null`);
      const addr = v === null ? 0n : v.addr;
      slots[i] = addr;
      values.push(addr);
      return;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${spec.name}: '${p.name}' must be a finite number (${p.type}), got ${String(v)}`);
    if (p.type !== 'float' && !Number.isInteger(v)) throw new Error(`${spec.name}: '${p.name}' must be an integer (${p.type}), got ${v}`);
    if (p.type === 'int' && (v < -(2 ** 31) || v >= 2 ** 31)) throw new Error(`${spec.name}: '${p.name}' = ${v} does not fit an int32`);
    scope[p.name] = v;
    values.push(p.type === 'i64' ? BigInt(v) : v);
    slots[i] = p.type === 'float' ? BigInt(new Uint32Array(new Float32Array([v]).buffer)[0]!) : BigInt.asUintN(64, BigInt(v));
  });
  const dims = (d: (number | string)[]): [number, number, number] =>
    [0, 1, 2].map((i) => (i < d.length ? evalRule(d[i]!, scope, warp, spec.name) : 1)) as [number, number, number];
  return { grid: dims(spec.launch.grid), block: dims(spec.launch.block), sharedBytes: evalRule(spec.launch.sharedBytes, scope, warp, spec.name),
    slots, values, kinds: spec.params.map((p) => p.type) };
}
