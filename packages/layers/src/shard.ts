// Which parameters are shards, and of what: every layer that keeps a slice of a weight (tensor-parallel columns
// or rows, expert-parallel experts) registers the slice here with its group and the dimension it was cut along.
// Whole-model operations read it instead of knowing each layer: the global gradient norm sums a shard's squares
// over its group (clipping), and a sharded model gathers every shard back to the checkpoint's full tensor (saving).
import type { Communicator, HostBuffer } from '@farskip/collectives';
import { Tensor } from '@farskip/tensor';

export interface Shard {
  /** the ranks that hold the other slices (in rank order along `dim`) */
  readonly group: Communicator;
  /** the dimension of the full tensor the slices were cut along (equal slices) */
  readonly dim: number;
}

const shards = new WeakMap<Tensor, Shard>();

/** A trainable copy of `t` (its own storage, a leaf). */
export function leaf(t: Tensor): Tensor {
  return t.detach().clone().requiresGrad_();
}

/**
 * A trainable copy of this rank's slice [start, end) of `full` along `dim`, registered as a shard over `group`
 * (nothing is registered on a group of one rank: the slice is the whole tensor).
 */
export function shardLeaf(full: Tensor, dim: number, start: number, end: number, group: Communicator): Tensor {
  const t = leaf(full.slice(dim, start, end));
  if (group.size > 1) shards.set(t, { group, dim });
  return t;
}

/** The shard description of a parameter, or undefined for a replicated (whole) one. */
export function shardOf(t: Tensor): Shard | undefined {
  return shards.get(t);
}

/**
 * The full tensor of a shard, gathered from its group (a collective: every rank of the group calls it, for the
 * same parameters in the same order); a replicated parameter is returned as is. The result is detached.
 */
export async function gatherShard(t: Tensor): Promise<Tensor> {
  const s = shards.get(t);
  if (!s) return t.detach();
  const { group, dim } = s;
  const P = group.size;
  const shape = t.shape;
  // as [outer, n, inner]: the slices concatenate along n
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const n = shape[dim]!;
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  const src = (t.dtype === 'f32' ? t.detach() : t.detach().to('f32')).data as Float32Array;
  const all = new Float32Array(src.length * P);
  await group.allGather(src as HostBuffer, all).wait();
  const out = new Float32Array(all.length);
  const row = n * inner;
  for (let p = 0; p < P; p++) {
    for (let o = 0; o < outer; o++) out.set(all.subarray((p * outer + o) * row, (p * outer + o + 1) * row), (o * P + p) * row);
  }
  const full = new Tensor(out, shape.map((d, i) => (i === dim ? d * P : d)));
  return t.dtype === 'f32' ? full : full.to(t.dtype).detach();
}
