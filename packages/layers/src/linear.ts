// Megatron's tensor-parallel linear layers over a group (weights in nn.Linear layout [out, in], given full and
// sharded here):
//   ColumnParallelLinear  each rank holds rows [r·out/tp, (r+1)·out/tp) of W: y_r = x W_rᵀ, the output split by
//                         columns; the input's gradient is summed over the group (copyToGroup). gatherOutput
//                         all-gathers the full [.., out].
//   RowParallelLinear     each rank holds columns [r·in/tp, ...) of W and the matching slice of the input:
//                         y = Σ_r x_r W_rᵀ — forward() returns the rank's partial sum, reduce() its all-reduce
//                         as a Pending (so a schedule can hide it).
import type { Communicator, HostBuffer } from '@farskip/collectives';
import { linear } from '@farskip/kernels';
import { Tensor, recordOp } from '@farskip/tensor';
import { expectShape } from './attention.js';
import { shardLeaf } from './shard.js';
import { allReduceTensor, copyToGroup } from './comm.js';
import type { CommEnv, Pending } from './comm.js';
import { ParallelContext } from './context.js';

export class ColumnParallelLinear {
  readonly weight: Tensor;
  readonly outLocal: number;

  constructor(full: Tensor, readonly group: Communicator, readonly gatherOutput = false) {
    if (full.ndim !== 2) throw new Error(`ColumnParallelLinear: weight must be [out, in], got [${full.shape.join(', ')}]`);
    const [o0, o1] = ParallelContext.shard(full.shape[0]!, group, 'ColumnParallelLinear output features');
    this.outLocal = o1 - o0;
    this.weight = shardLeaf(full, 0, o0, o1, group);
  }

  /** x [..., in] -> [..., out/tp] (or [..., out] with gatherOutput). */
  async forward(x: Tensor, env: CommEnv): Promise<Tensor> {
    const y = linear(copyToGroup(x, this.group, env, 'columnParallel.copy'), this.weight);
    return this.gatherOutput ? gatherLastDim(y, this.group) : y;
  }
}

export class RowParallelLinear {
  readonly weight: Tensor;
  readonly inLocal: number;

  constructor(full: Tensor, readonly group: Communicator) {
    if (full.ndim !== 2) throw new Error(`RowParallelLinear: weight must be [out, in], got [${full.shape.join(', ')}]`);
    const [i0, i1] = ParallelContext.shard(full.shape[1]!, group, 'RowParallelLinear input features');
    this.inLocal = i1 - i0;
    this.weight = shardLeaf(full, 1, i0, i1, group);
    expectShape('RowParallelLinear shard', this.weight, [full.shape[0]!, this.inLocal]);
  }

  /** x [..., in/tp] (this rank's slice) -> this rank's partial sum [..., out]. */
  partial(x: Tensor): Tensor {
    return linear(x, this.weight);
  }

  /** The full output, summed over the group (in flight until waited). */
  forward(x: Tensor, env: CommEnv): Pending<Tensor> {
    return allReduceTensor(this.partial(x), this.group, env, 'rowParallel.allReduce');
  }
}

/** [..., n] shards of every rank -> [..., n·size] in rank order (blocking: output layers need it at once). */
async function gatherLastDim(y: Tensor, group: Communicator): Promise<Tensor> {
  if (group.size === 1) return y;
  const n = y.shape[y.ndim - 1]!;
  const rows = y.numel / n;
  const P = group.size;
  const gathered = new Float32Array(y.numel * P);
  await group.allGather(y.detach().data as HostBuffer, gathered).wait();
  // gathered is [P, rows, n]; the output is [rows, P·n]
  const out = new Float32Array(gathered.length);
  for (let p = 0; p < P; p++) {
    for (let r = 0; r < rows; r++) out.set(gathered.subarray((p * rows + r) * n, (p * rows + r + 1) * n), (r * P + p) * n);
  }
  const t = new Tensor(out, [...y.shape.slice(0, -1), n * P]);
  const me = group.rank;
  // the gradient of this rank's shard is its slice of the output's gradient
  return recordOp(t, 'gatherLastDim', [y], (g) => {
    const gd = g.data as Float32Array;
    const gx = new Float32Array(y.numel);
    for (let r = 0; r < rows; r++) gx.set(gd.subarray((r * P + me) * n, (r * P + me + 1) * n), r * n);
    return [new Tensor(gx, y.shape.slice())];
  });
}
