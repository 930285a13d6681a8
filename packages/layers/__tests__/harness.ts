// Shared helpers of the multi-rank suites: a small MoE stack config, seeded weights/inputs/output gradient,
// running every rank of a threads world in this one JS thread (their collectives progress in the comm worker
// threads), and gathering each rank's parameter gradients back into the canonical unsharded layout so that an
// N-rank run can be compared with the 1-rank run of the same model.
//
// Sharding (build.ts): attention q/k/v by rows (heads) and o_proj by columns over tp; shared-expert / dense MLP
// gate/up by rows and down by columns over tp; routed experts [E, ...] along dim 0 over ep (all-to-all form) or
// over tp (all-reduce form); norms and the router replicated.
//
// Gradient scale after dataParallel(stack, ctx).finish() with S = ep·dp token shards (loss = Σ over all tokens):
//   non-expert params: each rank's gradient covers its own shard's tokens, then is AVERAGED over ep·dp
//                      -> canonical · (ep·dp) = full-batch gradient
//   expert params:     the all-to-all backward already sums the contributions of every ep rank's tokens, then
//                      the gradient is averaged over dp and divided by ep -> canonical · (ep·dp) as well
import { createThreadsWorld } from '@farskip/collectives';
import type { Communicator } from '@farskip/collectives';
import { Tensor } from '@farskip/tensor';
import { MoE, ParallelContext, Tracer, buildStack, dataParallel, randomStackWeights, tracedBackward } from '../src/index.js';
import type { FarSkipOptions, FarSkipStack, MeshShape, MoEForm, Schedule, StackConfig, StackWeights } from '../src/index.js';

export const CFG: StackConfig = {
  layers: 3, hidden: 32, heads: 4, kvHeads: 2, denseLayers: 1, denseHidden: 48,
  moe: { numExperts: 4, topK: 2, expertHidden: 16, sharedHidden: 24, renormalize: true },
};
/** kvHeads 4 so that attention splits over tp = 4 */
export const CFG_TP4: StackConfig = { ...CFG, kvHeads: 4 };
export const BATCH = 4;
export const SEQ = 5;

export interface Problem {
  cfg: StackConfig;
  weights: StackWeights;
  /** [BATCH, SEQ, hidden] */
  x: Tensor;
  positions: Tensor;
  /** the output gradient fed to backward (a fixed random seed gradient) */
  seedGrad: Tensor;
}

export function problem(cfg: StackConfig = CFG, seeds: { weights?: number; input?: number } = {}, weights?: StackWeights): Problem {
  const H = cfg.hidden;
  const input = seeds.input ?? 9;
  return {
    cfg,
    weights: weights ?? randomStackWeights(cfg, seeds.weights ?? 3),
    x: Tensor.randn([BATCH, SEQ, H], { seed: input }),
    positions: new Tensor(Int32Array.from({ length: SEQ }, (_, i) => i), [SEQ], { dtype: 'i32' }),
    seedGrad: Tensor.randn([BATCH, SEQ, H], { seed: input + 1000 }),
  };
}

export const meshSize = (m: MeshShape): number => (m.tp ?? 1) * (m.ep ?? 1) * (m.dp ?? 1);

/**
 * Runs `fn` for every rank of a fresh threads world of the mesh's size, all in this thread (Promise.all).
 * Every rank's ParallelContext is created before any rank uses one (threads split() results block on first use
 * until all ranks have split). The world is destroyed afterwards, also on failure.
 */
export async function withMesh<R>(mesh: MeshShape, fn: (ctx: ParallelContext, world: Communicator) => Promise<R>): Promise<R[]> {
  const worlds = createThreadsWorld(meshSize(mesh));
  try {
    const ctxs = worlds.map((w) => ParallelContext.create(w, mesh));
    return await Promise.all(ctxs.map((c, i) => fn(c, worlds[i]!)));
  } finally {
    for (const w of worlds) w.destroy();
  }
}

export interface RunSpec {
  schedule?: Schedule;
  /** FarSkip connectivity (default {} = 'full'); null = the original model */
  farskip?: FarSkipOptions | null;
  form?: MoEForm;
  /** run backward with `seedGrad` and dataParallel(...).finish() (default true) */
  backward?: boolean;
  tracer?: boolean;
  bucketBytes?: number;
}

export interface RankResult {
  rank: number;
  tpRank: number;
  epRank: number;
  dpRank: number;
  /** which batch slice this rank ran (0 with the all-reduce form: tokens replicated) */
  shard: number;
  y: Float32Array;
  /** every parameter's gradient after finish() (null: none) */
  grads: Map<string, Tensor | null>;
  stack: FarSkipStack;
  tracer: Tracer | null;
  /** per MoE layer, the Router's token counts per expert of every route() call on this rank */
  counts: Map<number, Int32Array[]>;
  backwardMs: { start: number; end: number } | null;
}

/** Wraps every MoE router of `stack` so its counts per expert are recorded (keyed by layer index). */
export function spyRouting(stack: FarSkipStack): Map<number, Int32Array[]> {
  const out = new Map<number, Int32Array[]>();
  stack.blocks.forEach((b, k) => {
    if (!(b.mlp instanceof MoE)) return;
    const router = b.mlp.router;
    const route = router.route.bind(router);
    const list: Int32Array[] = [];
    out.set(k, list);
    router.route = (u) => {
      const r = route(u);
      list.push(r.counts.slice());
      return r;
    };
  });
  return out;
}

/** One rank's run: its batch slice, forward, (traced) backward with the slice of the seed gradient, DP finish. */
export async function runRank(p: Problem, ctx: ParallelContext, spec: RunSpec = {}): Promise<RankResult> {
  const form = spec.form ?? 'all-to-all';
  const stack = buildStack(p.cfg, p.weights, ctx, form);
  const counts = spyRouting(stack);
  const shards = form === 'all-reduce' ? 1 : ctx.mesh.ep * ctx.mesh.dp;
  const shard = form === 'all-reduce' ? 0 : ctx.epRank + ctx.mesh.ep * ctx.dpRank;
  if (BATCH % shards !== 0) throw new Error(`batch ${BATCH} does not split into ${shards} shards`);
  const per = BATCH / shards;
  const xs = p.x.slice(0, shard * per, (shard + 1) * per).detach().clone();
  const gs = p.seedGrad.slice(0, shard * per, (shard + 1) * per).detach().clone();
  const tracer = spec.tracer ? new Tracer(ctx.world.rank) : null;
  const backward = spec.backward ?? true;
  const dp = backward ? dataParallel(stack, ctx, { tracer: tracer ?? undefined, bucketBytes: spec.bucketBytes }) : null;
  const y = await stack.forward(xs, p.positions, {
    schedule: spec.schedule ?? 'overlapped', tracer: tracer ?? undefined, farskip: spec.farskip === undefined ? {} : spec.farskip, form,
  });
  let backwardMs: RankResult['backwardMs'] = null;
  if (dp) {
    const start = performance.timeOrigin + performance.now();
    await tracedBackward(y, tracer ?? undefined, gs);
    backwardMs = { start, end: performance.timeOrigin + performance.now() };
    await dp.finish();
    dp.remove();
  }
  const grads = new Map<string, Tensor | null>();
  for (const [name, t] of stack.parameters()) grads.set(name, t.grad);
  return {
    rank: ctx.world.rank, tpRank: ctx.tpRank, epRank: ctx.epRank, dpRank: ctx.dpRank, shard,
    y: Float32Array.from(y.data as Float32Array), grads, stack, tracer, counts, backwardMs,
  };
}

/** The 1-rank run of the same problem (full batch). */
export async function runSingle(p: Problem, spec: RunSpec = {}): Promise<RankResult> {
  return runRank(p, ParallelContext.single(), spec);
}

/** Every rank of `mesh` running `spec` on `p`. */
export function runMesh(p: Problem, mesh: MeshShape, spec: RunSpec = {}): Promise<RankResult[]> {
  return withMesh(mesh, (ctx) => runRank(p, ctx, spec));
}

// ---- canonical (unsharded) layout --------------------------------------------------------------------------

type Axis = 'tp' | 'ep' | null;
interface Layout { axis: Axis; dim: 0 | 1 }

/** How parameter `name` is split on the mesh (see the header). */
export function layoutOf(name: string, form: MoEForm = 'all-to-all'): Layout {
  if (/\.mlp\.experts\./.test(name)) return { axis: form === 'all-reduce' ? 'tp' : 'ep', dim: 0 };
  if (/\.self_attn\.[qkv]_proj\.weight$/.test(name)) return { axis: 'tp', dim: 0 };
  if (/\.self_attn\.o_proj\.weight$/.test(name)) return { axis: 'tp', dim: 1 };
  if (/\.mlp\.(shared_experts\.)?(gate|up)_proj\.weight$/.test(name)) return { axis: 'tp', dim: 0 };
  if (/\.mlp\.(shared_experts\.)?down_proj\.weight$/.test(name)) return { axis: 'tp', dim: 1 };
  return { axis: null, dim: 0 }; // norms, router
}

/** Concatenates shards along dim 0 or 1 (row-major data). */
export function concat(shards: Tensor[], dim: 0 | 1): Float32Array {
  const parts = shards.map((s) => s.data as Float32Array);
  if (dim === 0 || shards.length === 1) {
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let off = 0;
    for (const p of parts) { out.set(p, off); off += p.length; }
    return out;
  }
  const rows = shards[0]!.shape[0]!;
  const cols = shards.map((s) => s.shape[1]!);
  const total = cols.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * total);
  for (let r = 0; r < rows; r++) {
    let c0 = 0;
    shards.forEach((s, i) => { out.set(parts[i]!.subarray(r * cols[i]!, (r + 1) * cols[i]!), r * total + c0); c0 += cols[i]!; });
  }
  return out;
}

export interface Canonical {
  /** unsharded gradient per parameter, from the replica group at the other mesh coordinates 0 */
  grads: Map<string, Float32Array>;
  /** the largest |difference| between replicas of the same canonical gradient (ranks that should agree) */
  replicaDiff: number;
  /** the largest |difference| relative to the gradient's max magnitude */
  replicaRel: number;
}

/** Assembles each parameter's canonical gradient from the ranks' shards and checks that replicas agree. */
export function canonicalGrads(results: RankResult[], form: MoEForm = 'all-to-all'): Canonical {
  const grads = new Map<string, Float32Array>();
  let replicaDiff = 0, replicaRel = 0;
  for (const name of results[0]!.grads.keys()) {
    const { axis, dim } = layoutOf(name, form);
    const coord = (r: RankResult): number => (axis === 'tp' ? r.tpRank : axis === 'ep' ? r.epRank : 0);
    const rest = (r: RankResult): string => [axis === 'tp' ? 0 : r.tpRank, axis === 'ep' ? 0 : r.epRank, r.dpRank].join(',');
    const groups = new Map<string, RankResult[]>();
    for (const r of results) {
      const key = rest(r);
      const g = groups.get(key);
      if (g) g.push(r); else groups.set(key, [r]);
    }
    const assembled: Float32Array[] = [];
    for (const members of groups.values()) {
      members.sort((a, b) => coord(a) - coord(b));
      const shards = members.map((r) => {
        const g = r.grads.get(name);
        if (!g) throw new Error(`rank ${r.rank}: parameter ${name} has no gradient`);
        return g;
      });
      assembled.push(concat(shards, dim));
    }
    const first = assembled[0]!;
    for (const other of assembled.slice(1)) {
      const d = maxAbsDiff(first, other);
      replicaDiff = Math.max(replicaDiff, d);
      replicaRel = Math.max(replicaRel, d / Math.max(maxAbs(first), 1e-30));
    }
    grads.set(name, first);
  }
  return { grads, replicaDiff, replicaRel };
}

/** The factor that turns a rank's DP-averaged canonical gradient into the full-batch gradient (see header). */
export function gradScale(mesh: MeshShape): number {
  return (mesh.ep ?? 1) * (mesh.dp ?? 1); // experts too: their buckets divide the ep-summed gradient by ep (training.ts)
}

/** The 1-rank gradients as plain arrays. */
export function singleGrads(r: RankResult): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, g] of r.grads) {
    if (!g) throw new Error(`1-rank run: parameter ${name} has no gradient`);
    out.set(name, g.data as Float32Array);
  }
  return out;
}

// ---- comparisons -------------------------------------------------------------------------------------------

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(m) ? Infinity : m;
}

/** max |a − b| / max |ref| */
export function relErr(actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  return maxAbsDiff(actual, ref) / Math.max(maxAbs(ref), 1e-30);
}

/** Elements that differ under Object.is (bit-level up to NaN payloads). */
export function bitMismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
  return n;
}

/** Forward: the largest relative error of any rank's output against its slice of the 1-rank output. */
export function forwardError(results: RankResult[], single: RankResult): number {
  const per = results[0]!.y.length;
  let worst = 0;
  const scale = Math.max(maxAbs(single.y), 1e-30);
  for (const r of results) {
    const ref = single.y.subarray(r.shard * per, (r.shard + 1) * per);
    worst = Math.max(worst, maxAbsDiff(r.y, ref) / scale);
  }
  return worst;
}

export interface GradReport {
  /** worst relative error over all parameters, and which */
  worst: number;
  worstName: string;
  /** parameters compared */
  count: number;
  replicaRel: number;
}

/** Every parameter's gradient on the mesh (canonical, rescaled to the full batch) against the 1-rank one. */
export function gradientError(results: RankResult[], single: RankResult, mesh: MeshShape, form: MoEForm = 'all-to-all'): GradReport {
  const { grads, replicaRel } = canonicalGrads(results, form);
  const ref = singleGrads(single);
  let worst = 0, worstName = '';
  for (const [name, g] of ref) {
    const got = grads.get(name);
    if (!got) throw new Error(`mesh run lacks parameter ${name}`);
    const s = gradScale(mesh);
    const e = relErr(got.map((v) => v * s), g);
    if (!(e <= worst)) { worst = e; worstName = name; }
  }
  if (grads.size !== ref.size) throw new Error(`mesh has ${grads.size} parameters, 1 rank ${ref.size}`);
  return { worst, worstName, count: ref.size, replicaRel };
}

/** Bit mismatches between two runs of the same mesh (outputs and every gradient, rank by rank). */
export function bitDiffRuns(a: RankResult[], b: RankResult[]): { y: number; grads: number; compared: number } {
  let y = 0, grads = 0, compared = 0;
  a.forEach((ra, i) => {
    const rb = b[i]!;
    y += bitMismatches(ra.y, rb.y);
    compared += ra.y.length;
    for (const [name, g] of ra.grads) {
      const h = rb.grads.get(name);
      if (!g || !h) { grads += g === h ? 0 : 1; continue; }
      grads += bitMismatches(g.data as Float32Array, h.data as Float32Array);
      compared += g.numel;
    }
  });
  return { y, grads, compared };
}
