// Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_): norm = sqrt(Σ over every parameter of Σ g²),
// computed in float64; when above maxNorm every gradient is scaled by maxNorm / (norm + 1e-6). Parameters split
// across an expert-parallel group contribute their squares summed over that group, so every rank computes the
// same norm.
import type { Communicator } from '@farskip/collectives';
import type { Tensor } from '@farskip/tensor';

export interface ClipOptions {
  /** parameters sharded over `group` (their squared norms are summed across it) */
  sharded?: Set<Tensor>;
  group?: Communicator;
}

export async function clipGradNorm(params: readonly Tensor[], maxNorm: number, options: ClipOptions = {}): Promise<number> {
  let replicated = 0;
  const shardSq = new Float64Array(1);
  for (const p of params) {
    if (!p.grad) continue;
    const g = p.grad.data as Float32Array;
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
    if (options.sharded?.has(p)) shardSq[0]! += s; else replicated += s;
  }
  if (options.group && options.group.size > 1 && options.sharded?.size) await options.group.allReduce(shardSq, 'sum').wait();
  const norm = Math.sqrt(replicated + shardSq[0]!);
  if (!Number.isFinite(norm)) return norm;
  if (maxNorm > 0 && norm > maxNorm) {
    const c = maxNorm / (norm + 1e-6);
    for (const p of params) {
      if (!p.grad) continue;
      const g = p.grad.data as Float32Array;
      for (let i = 0; i < g.length; i++) g[i] = g[i]! * c;
    }
  }
  return norm;
}
