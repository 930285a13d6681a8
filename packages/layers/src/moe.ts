// Mixture of experts with explicit phases, so a schedule can put other work between them (as Megatron's token
// dispatcher):
//   begin()   route -> permute (token copies sorted by expert) -> [all-to-all form] issue the exchange of
//             per-expert counts
//   dispatch() wait for the counts, issue the dispatch all-to-all
//   experts() wait for the dispatch -> group rows by local expert -> SwiGLU experts (grouped GEMM) -> back to
//             source order -> issue the combine all-to-all      [all-reduce form: local experts on the replicated
//             tokens, unpermute into a partial sum, issue its all-reduce]
//   finish()  wait for the combine -> weight and unpermute (scatter-add into [tokens, hidden]) -> routed output
// Forms: 'all-to-all' (training, prefill with EP: every rank has its own tokens, experts split over the group)
// and 'all-reduce' (inference with TP/EP: tokens replicated over the group, experts split over it, the routed
// output is each rank's partial sum). Shared experts are not part of the phases: the block runs them where the
// schedule wants them (and the all-reduce form fuses their partial sum with attention's).
import type { Communicator } from '@farskip/collectives';
import { groupedMatmul, mul, swiglu } from '@farskip/kernels';
import { indexAdd, indexSelect, Tensor } from '@farskip/tensor';
import { expectShape } from './attention.js';
import { shardLeaf } from './shard.js';
import { allReduceTensor, allToAllTensor, copyToGroup, issued } from './comm.js';
import { resolved } from './comm.js';
import type { CommEnv, Pending } from './comm.js';
import { ParallelContext, solo } from './context.js';
import { SwiGluMlp } from './mlp.js';
import type { MlpLike, MlpWeights } from './mlp.js';
import { Router } from './router.js';
import type { RouterConfig, RouterWeights } from './router.js';

export interface MoEConfig extends RouterConfig {
  hidden: number;
  /** routed experts' intermediate size */
  expertHidden: number;
  /** where the routing weight multiplies: the expert output (default; most families) or its input (Llama-4) */
  weightOn?: 'output' | 'input';
}

/** Full weights of all experts, stacked, nn.Linear layout per expert. */
export interface ExpertWeights {
  /** [numExperts, expertHidden, hidden] */
  gate: Tensor;
  /** [numExperts, expertHidden, hidden] */
  up: Tensor;
  /** [numExperts, hidden, expertHidden] */
  down: Tensor;
}

export interface MoEWeights {
  router: RouterWeights;
  experts: ExpertWeights;
  shared?: MlpWeights;
}

export type MoEForm = 'all-to-all' | 'all-reduce';

export interface MoEOptions {
  /** the group the routed experts are split across (default: one rank) */
  expertGroup?: Communicator;
  /** the group the shared experts are split across (tensor parallel; default: one rank) */
  sharedGroup?: Communicator;
  form?: MoEForm;
}

/** The interface a FarSkip block needs from any MoE implementation. */
export interface MoELike {
  /** shared experts every token passes through (any dense MLP; the block overlaps them with the dispatch), or none */
  readonly shared: MlpLike | null;
  /** route and permute; the all-to-all form also issues the exchange of per-expert counts */
  begin(u: Tensor, env: CommEnv): RoutedTokens;
  parameters(): [string, Tensor][];
  /** the parameters split across the expert group (their gradients are averaged over dp only) */
  expertParameters(): [string, Tensor][];
}

export interface RoutedTokens {
  /** waits for the counts, issues the token dispatch (all-to-all form; the all-reduce form has none) */
  dispatch(): Promise<DispatchedTokens>;
}

export interface DispatchedTokens {
  /** waits for the dispatch, runs the local experts, issues the combine */
  experts(): Promise<CombinedTokens>;
}

export interface CombinedTokens {
  /** waits for the combine; the routed output [tokens, hidden] */
  finish(): Promise<Tensor>;
}

export class MoE implements MoELike {
  readonly router: Router;
  readonly shared: SwiGluMlp | null;
  readonly w1: Tensor;
  readonly w3: Tensor;
  readonly w2: Tensor;
  readonly firstExpert: number;
  readonly localExperts: number;
  readonly group: Communicator;
  readonly form: MoEForm;

  constructor(readonly config: MoEConfig, weights: MoEWeights, options: MoEOptions = {}) {
    const { hidden, expertHidden: I, numExperts: E } = config;
    this.group = options.expertGroup ?? solo();
    this.form = options.form ?? 'all-to-all';
    this.router = new Router(hidden, config, weights.router);
    expectShape('experts.gate', weights.experts.gate, [E, I, hidden]);
    expectShape('experts.up', weights.experts.up, [E, I, hidden]);
    expectShape('experts.down', weights.experts.down, [E, hidden, I]);
    const [e0, e1] = ParallelContext.shard(E, this.group, 'MoE experts');
    this.firstExpert = e0;
    this.localExperts = e1 - e0;
    this.w1 = shardLeaf(weights.experts.gate, 0, e0, e1, this.group);
    this.w3 = shardLeaf(weights.experts.up, 0, e0, e1, this.group);
    this.w2 = shardLeaf(weights.experts.down, 0, e0, e1, this.group);
    this.shared = weights.shared ? new SwiGluMlp(hidden, weights.shared, options.sharedGroup ?? solo()) : null;
  }

  /** All phases back to back: the routed output [tokens, hidden] of u [tokens, hidden]. */
  async forward(u: Tensor, env: CommEnv): Promise<Tensor> {
    return (await (await this.begin(u, env).dispatch()).experts()).finish();
  }

  begin(u: Tensor, env: CommEnv): RoutedTokens {
    const N = u.shape[0]!, k = this.config.topK;
    const span = <T>(name: string, fn: () => T): T => moeSpan(env, name, fn);
    const routing = span('route', () => this.router.route(u));
    const P = this.group.size, L = this.localExperts, E = this.config.numExperts;
    const local = this.form === 'all-reduce';
    // token copies sorted by expert (stable: token order within an expert); the all-reduce form keeps only
    // the copies for this rank's experts
    const order = sortCopiesByExpert(routing.experts, E, local ? [this.firstExpert, this.firstExpert + L] : [0, E]);
    const tokenOf = Int32Array.from(order, (c) => Math.floor(c / k));
    // all-reduce form: every rank routes the same tokens but runs only its experts, so the gradients reaching u
    // and the routing weights through the experts are partial sums: copyToGroup sums them over the group in the
    // backward (the router itself is replicated and gets identical, complete gradients on every rank)
    const expertIn = local ? copyToGroup(u, this.group, env, 'moe.copyToGroup') : u;
    const allWeights = local ? copyToGroup(routing.weights, this.group, env, 'moe.weights.copyToGroup') : routing.weights;
    const weights = span('permute', () => indexSelect(allWeights.reshape(N * k), 0, i32(order)).reshape(order.length, 1));
    const rows = span('permute', () => {
      const r = indexSelect(expertIn, 0, i32(tokenOf));
      return this.config.weightOn === 'input' ? mul(r, weights) : r;
    });
    const finishRows = (y: Tensor): Tensor => span('unpermute', () => {
      const weighted = this.config.weightOn === 'input' ? y : mul(y, weights);
      return indexAdd(Tensor.zeros([N, this.config.hidden], { dtype: u.dtype }), 0, i32(tokenOf), weighted);
    });

    if (local) {
      const groupSizes = routing.counts.slice(this.firstExpert, this.firstExpert + L);
      const dispatched: DispatchedTokens = {
        experts: async () => {
          const partial = finishRows(span('experts', () => this.runExperts(rows, groupSizes)));
          const reduced = await issued(env, allReduceTensor(partial, this.group, env, 'moe.allReduce'));
          return { finish: () => reduced.wait() };
        },
      };
      return { dispatch: () => Promise.resolve(dispatched) };
    }

    // all-to-all form: counts per (destination rank, its local expert) are this rank's counts [E] in order;
    // their exchange is issued now and waited in dispatch()
    const counts = this.exchangeCounts(routing.counts, env);
    return { dispatch: () => counts.wait().then((recvCounts) => this.dispatchRows(rows, routing.counts, recvCounts, finishRows, env)) };
  }

  private async dispatchRows(rows: Tensor, sendCounts: Int32Array, recvCounts: Int32Array, finishRows: (y: Tensor) => Tensor,
    env: CommEnv): Promise<DispatchedTokens> {
    const P = this.group.size, L = this.localExperts;
    const span = <T>(name: string, fn: () => T): T => moeSpan(env, name, fn);
    const sendRows = Array.from({ length: P }, (_, p) => sumRange(sendCounts, p * L, (p + 1) * L));
    const recvRows = Array.from({ length: P }, (_, q) => sumRange(recvCounts, q * L, (q + 1) * L));
    const dispatched = await issued(env, allToAllTensor(rows, this.group, sendRows, recvRows, env, 'moe.dispatch'));
    return {
      experts: async () => {
        const got = await dispatched.wait(); // [Σ recvRows, hidden], source-major then expert
        const back = span('experts', () => {
          const { index, inverse, groupSizes } = sourceToExpertMajor(recvCounts, P, L);
          if (P === 1) return this.runExperts(got, groupSizes); // one source: already expert-major (identity)
          const y = this.runExperts(indexSelect(got, 0, i32(index)), groupSizes);
          return indexSelect(y, 0, i32(inverse));
        });
        const combined = await issued(env, allToAllTensor(back, this.group, recvRows, sendRows, env, 'moe.combine'));
        return { finish: async () => finishRows(await combined.wait()) };
      },
    };
  }

  /** x [rows, hidden] grouped by local expert (groupSizes [L]) -> SwiGLU experts -> [rows, hidden]. */
  private runExperts(x: Tensor, groupSizes: Int32Array): Tensor {
    const sizes = i32(groupSizes);
    const g = groupedMatmul(x, this.w1, sizes, { transW: true });
    const up = groupedMatmul(x, this.w3, sizes, { transW: true });
    return groupedMatmul(swiglu(g, up), this.w2, sizes, { transW: true });
  }

  /** Sends counts[p·L .. (p+1)·L) to rank p; returns [P·L]: from each source rank, its rows per local expert. */
  private exchangeCounts(counts: Int32Array, env: CommEnv): Pending<Int32Array> {
    const P = this.group.size;
    if (P === 1) return resolved(counts.slice());
    const recv = new Int32Array(counts.length);
    const work = this.group.allToAll(counts.slice(), recv);
    const h = env.tracer ? env.tracer.comm(`${env.scope ? env.scope + '.' : ''}moe.dispatch.counts`, work, counts.byteLength) : null;
    let p: Promise<Int32Array> | null = null;
    return { wait: () => (p ??= (h ? h.wait() : work.wait()).then(() => recv)) };
  }

  parameters(): [string, Tensor][] {
    const p: [string, Tensor][] = this.router.parameters().map(([n, t]) => [n, t]);
    p.push(...this.expertParameters());
    if (this.shared) p.push(...this.shared.parameters().map(([n, t]) => [`shared_experts.${n}`, t] as [string, Tensor]));
    return p;
  }

  expertParameters(): [string, Tensor][] {
    return [['experts.gate_proj', this.w1], ['experts.up_proj', this.w3], ['experts.down_proj', this.w2]];
  }
}

/** A compute span named `<scope>.moe.<name>` when the schedule is traced. */
function moeSpan<T>(env: CommEnv, name: string, fn: () => T): T {
  return env.tracer ? env.tracer.compute(`${env.scope ? env.scope + '.' : ''}moe.${name}`, fn) : fn();
}

function i32(a: Int32Array): Tensor {
  return new Tensor(a, [a.length], { dtype: 'i32' });
}

function sumRange(a: Int32Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i]!;
  return s;
}

/** Copy ids c (token c / k, slot c % k) whose expert lies in [lo, hi), sorted by expert, stable. */
export function sortCopiesByExpert(experts: Int32Array, numExperts: number, [lo, hi]: [number, number]): Int32Array {
  const start = new Int32Array(numExperts + 1);
  for (const e of experts) if (e >= lo && e < hi) start[e + 1]!++;
  for (let e = 0; e < numExperts; e++) start[e + 1]! += start[e]!;
  const out = new Int32Array(start[numExperts]!);
  const fill = start.slice();
  for (let c = 0; c < experts.length; c++) {
    const e = experts[c]!;
    if (e >= lo && e < hi) out[fill[e]!++] = c;
  }
  return out;
}

/**
 * Received rows are ordered (source rank q, local expert e) with recvCounts[q·L + e] rows each; the experts
 * need them ordered (e, q). Returns the gather index into the received rows, its inverse, and the rows per
 * local expert.
 */
export function sourceToExpertMajor(recvCounts: Int32Array, P: number, L: number): { index: Int32Array; inverse: Int32Array; groupSizes: Int32Array } {
  const start = new Int32Array(P * L);
  let off = 0;
  for (let j = 0; j < P * L; j++) { start[j] = off; off += recvCounts[j]!; }
  const index = new Int32Array(off);
  const groupSizes = new Int32Array(L);
  let n = 0;
  for (let e = 0; e < L; e++) {
    for (let q = 0; q < P; q++) {
      const c = recvCounts[q * L + e]!, s = start[q * L + e]!;
      for (let r = 0; r < c; r++) index[n++] = s + r;
      groupSizes[e]! += c;
    }
  }
  const inverse = new Int32Array(off);
  for (let i = 0; i < off; i++) inverse[index[i]!] = i;
  return { index, inverse, groupSizes };
}

