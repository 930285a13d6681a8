// Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_): norm = sqrt(Σ over every parameter of Σ g²),
// computed in float64; when above maxNorm every gradient is scaled by maxNorm / (norm + 1e-6).
// Sharded parameters (tensor-parallel slices, expert-parallel experts: @farskip/layers' shardOf) contribute their
// squares summed over their group, so every rank computes the norm of the whole model — as Megatron's
// clip_grad_norm_fp32 does with its model-parallel all-reduce. Replicated parameters count once.
import type { Communicator } from '@farskip/collectives';
import { shardOf } from '@farskip/layers';
import { Tensor } from '@farskip/tensor';

/** the gradient's values as f32 (bf16 parameters have bf16 gradients) */
const gradValues = (g: Tensor): Float32Array => (g.dtype === 'f32' ? g.data : g.detach().to('f32').data) as Float32Array;

export async function clipGradNorm(params: readonly Tensor[], maxNorm: number): Promise<number> {
  let replicated = 0;
  // one partial sum per shard group, in the order the groups first appear (the same on every rank)
  const groups = new Map<Communicator, Float64Array>();
  for (const p of params) {
    if (!p.grad) continue;
    const g = gradValues(p.grad);
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
    const shard = shardOf(p);
    if (!shard) { replicated += s; continue; }
    let acc = groups.get(shard.group);
    if (!acc) groups.set(shard.group, acc = new Float64Array(1));
    acc[0]! += s;
  }
  let total = replicated;
  for (const [group, acc] of groups) {
    await group.allReduce(acc, 'sum').wait();
    total += acc[0]!;
  }
  const norm = Math.sqrt(total);
  if (!Number.isFinite(norm)) return norm;
  if (maxNorm > 0 && norm > maxNorm) {
    const c = maxNorm / (norm + 1e-6);
    for (const p of params) {
      if (!p.grad) continue;
      if (p.grad.dtype === 'f32') {
        const g = p.grad.data as Float32Array;
        for (let i = 0; i < g.length; i++) g[i] = g[i]! * c;
      } else {
        const g = gradValues(p.grad);
        for (let i = 0; i < g.length; i++) g[i] = g[i]! * c;
        (p.grad.data as Uint16Array).set(new Tensor(g, p.grad.shape).to(p.grad.dtype).data as Uint16Array);
      }
    }
  }
  return norm;
}
