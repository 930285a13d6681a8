// Training-step helpers: a traced backward (the tracer's phase switches to 'backward' and the autograd
// engine reports its idle time, so the backward overlap fraction is measured) and the data-parallel buckets of
// a stack on a mesh (non-expert parameters averaged over ep × dp, expert parameters over dp).
import type { Tensor } from '@farskip/tensor';
import type { ParallelContext } from './context.js';
import { GradientBuckets } from './ddp.js';
import type { GradientBucketsOptions } from './ddp.js';
import type { FarSkipStack } from './stack.js';
import type { Tracer } from './trace.js';

/** loss.backward() with the tracer in its backward phase; `seed` for a non-scalar output. */
export async function tracedBackward(output: Tensor, tracer?: Tracer, seed?: Tensor): Promise<void> {
  if (!tracer) return output.backward(seed);
  const prev = tracer.phase;
  tracer.phase = 'backward';
  try {
    await output.backward(seed, tracer.backwardOptions());
  } finally {
    tracer.phase = prev;
  }
}

export interface DataParallel {
  buckets: GradientBuckets[];
  /** waits for every bucket; gradients are averaged afterwards */
  finish(): Promise<void>;
  remove(): void;
}

/**
 * Gradient buckets for a stack on `ctx`: dense parameters averaged over ctx.dense (ep × dp), expert parameters
 * over ctx.dp and divided by ep, so that with each rank's loss the mean over its own tokens every gradient is
 * that of the mean over all ranks' tokens. `params`: the parameters to bucket (default the stack's; a model adds
 * its embeddings and LM head, and leaves out frozen ones).
 */
export function dataParallel(stack: FarSkipStack, ctx: ParallelContext, options: GradientBucketsOptions & { params?: Tensor[] } = {}): DataParallel {
  const experts = stack.expertParameters();
  const { params, ...bucketOptions } = options;
  const all = params ?? stack.parameters().map(([, t]) => t);
  const buckets = [
    new GradientBuckets(all.filter((t) => !experts.has(t)), ctx.dense, { ...bucketOptions, name: 'dp.dense' }),
    new GradientBuckets(all.filter((t) => experts.has(t)), ctx.dp, { ...bucketOptions, name: 'dp.experts', postScale: 1 / ctx.mesh.ep }),
  ];
  return {
    buckets,
    finish: async () => { await Promise.all(buckets.map((b) => b.finish())); },
    remove: () => buckets.forEach((b) => b.remove()),
  };
}
