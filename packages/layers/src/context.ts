// ParallelContext: the tp × ep × dp mesh of ranks and its communicators (from Communicator.split).
//
// Rank layout (tensor parallel innermost, as Megatron): rank = tpRank + tp·(epRank + ep·dpRank).
//   tp    ranks sharing (ep, dp): attention heads, shared-expert and dense-MLP columns are split across them;
//         they see the same tokens.
//   ep    ranks sharing (tp, dp): routed experts are split across them; each has its own tokens, exchanged by
//         all-to-all.
//   dp    ranks sharing (tp, ep): replicas of everything; expert gradients are averaged over them.
//   dense ranks sharing tp (= ep × dp of them): replicas of the non-expert weights, whose gradients are
//         averaged over this group (every ep rank trains the same attention on different tokens).
import type { Communicator, HostBuffer, ReduceOp, Work } from '@farskip/collectives';

export interface MeshShape {
  tp?: number;
  ep?: number;
  dp?: number;
}

export class ParallelContext {
  private constructor(
    readonly world: Communicator,
    readonly tp: Communicator,
    readonly ep: Communicator,
    readonly dp: Communicator,
    readonly dense: Communicator,
    readonly mesh: Required<MeshShape>,
  ) {}

  get tpRank(): number { return this.tp.rank; }
  get epRank(): number { return this.ep.rank; }
  get dpRank(): number { return this.dp.rank; }

  /**
   * Splits `world` into the mesh (a collective: every rank calls it). Missing sizes default so that
   * tp·ep·dp = world.size with dp absorbing the rest.
   */
  static create(world: Communicator, shape: MeshShape = {}): ParallelContext {
    const tp = shape.tp ?? 1;
    const ep = shape.ep ?? 1;
    const dp = shape.dp ?? world.size / (tp * ep);
    for (const [k, v] of Object.entries({ tp, ep, dp })) {
      if (!Number.isInteger(v) || v < 1) {
        throw new Error(`ParallelContext: ${k} = ${v} must be a positive integer (tp·ep·dp must equal the world size ${world.size})`);
      }
    }
    if (tp * ep * dp !== world.size) {
      throw new Error(`ParallelContext: mesh tp=${tp} × ep=${ep} × dp=${dp} = ${tp * ep * dp} ranks but the world has ${world.size}; ` +
        'choose sizes whose product is the number of ranks');
    }
    const r = world.rank;
    const tpRank = r % tp, epRank = Math.floor(r / tp) % ep, dpRank = Math.floor(r / (tp * ep));
    const mk = (color: number, key: number): Communicator => world.size === 1 ? world : world.split(color, key)!;
    // Every group is its own communicator, even when its members are those of another group or of the world:
    // collectives on one communicator must be issued in the same order on every rank, and the backward issues
    // all-to-alls (ep) from the autograd engine while gradient buckets (dense, dp) launch from hooks — on a shared
    // communicator their relative order could differ between ranks.
    const tpComm = tp === 1 ? solo(r) : mk(epRank + ep * dpRank, tpRank);
    const epComm = ep === 1 ? solo(r) : mk(tpRank + tp * dpRank, epRank);
    const dpComm = dp === 1 ? solo(r) : mk(tpRank + tp * epRank, dpRank);
    const denseComm = ep * dp === 1 ? solo(r) : mk(tpRank, epRank + ep * dpRank);
    return new ParallelContext(world, tpComm, epComm, dpComm, denseComm, { tp, ep, dp });
  }

  /** One rank, no communication. */
  static single(): ParallelContext {
    const s = solo(0);
    return new ParallelContext(s, s, s, s, s, { tp: 1, ep: 1, dp: 1 });
  }

  /** The [start, end) slice of `n` items (heads, experts, columns) this rank holds when `group` splits them. */
  static shard(n: number, group: Communicator, what: string): [number, number] {
    if (n % group.size !== 0) {
      throw new Error(`${what}: ${n} cannot be split evenly across ${group.size} ranks; choose a parallel size that divides ${n}`);
    }
    const per = n / group.size;
    return [group.rank * per, (group.rank + 1) * per];
  }
}

/** A communicator of one rank: every collective is a local copy that completes at once. */
export function solo(worldRank = 0): Communicator {
  return new SoloCommunicator(worldRank);
}

const doneWork: Work = { wait: () => Promise.resolve(), completed: true };

class SoloCommunicator implements Communicator {
  readonly rank = 0;
  readonly size = 1;
  readonly backend = 'solo';
  readonly name: string;
  constructor(worldRank: number) {
    this.name = `solo(rank ${worldRank})`;
  }
  allReduce(_buf: HostBuffer, _op?: ReduceOp): Work { return doneWork; }
  allGather(input: HostBuffer, output: HostBuffer): Work { output.set(input as never); return doneWork; }
  reduceScatter(input: HostBuffer, output: HostBuffer): Work { output.set(input.subarray(0, output.length) as never); return doneWork; }
  allToAll(input: HostBuffer, output: HostBuffer, sendCounts?: readonly number[]): Work {
    const n = sendCounts ? sendCounts[0]! : input.length;
    output.set(input.subarray(0, n) as never);
    return doneWork;
  }
  broadcast(): Work { return doneWork; }
  send(): Work { throw new Error('send on a one-rank communicator has no peer'); }
  recv(): Work { throw new Error('recv on a one-rank communicator has no peer'); }
  barrier(): Work { return doneWork; }
  split(color: number): Communicator | null { return color < 0 ? null : this; }
  destroy(): void {}
}
