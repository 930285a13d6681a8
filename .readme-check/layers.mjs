import { createThreadsWorld } from '@farskip/collectives';
import { ParallelContext, buildStack, randomStackWeights, Tracer, tracedBackward } from '@farskip/layers';
import { Tensor } from '@farskip/tensor';

// A 2-layer MoE stack (4 experts, top-2, one shared expert) with seeded random weights.
const config = { layers: 2, hidden: 16, heads: 2, moe: { numExperts: 4, topK: 2, expertHidden: 8, sharedHidden: 8 } };
const weights = randomStackWeights(config, 1);
const x = Tensor.randn([2, 3, config.hidden], { seed: 2 });              // [batch, seq, hidden]
const positions = Tensor.fromArray([0, 1, 2], [3], { dtype: 'i32' });

// One rank: the same weights with the original and with the FarSkip connectivity.
const single = buildStack(config, weights, ParallelContext.single());
const original = await single.forward(x, positions, { farskip: null });
const farskip = await single.forward(x, positions);                      // default: { mode: 'full' }
const diff = (a, b) => Math.max(...a.toArray().map((v, i) => Math.abs(v - b[i])));
console.log('1 rank: FarSkip vs original, max |diff| =', diff(farskip, original.toArray()).toFixed(4));

// Two expert-parallel ranks (threads backend): each holds 2 of the 4 experts and its own batch row; the
// dispatch / combine all-to-alls overlap attention and the shared expert, forward and backward.
const world = createThreadsWorld(2);
const ctxs = world.map((comm) => ParallelContext.create(comm, { ep: 2 }));   // every rank's context before use
const ranks = await Promise.all(ctxs.map(async (ctx) => {
  const stack = buildStack(config, weights, ctx);                         // this rank's shard
  const tracer = new Tracer(ctx.world.rank);
  const mine = x.slice(0, ctx.epRank, ctx.epRank + 1).detach().clone();
  const y = await stack.forward(mine, positions, { schedule: 'overlapped', tracer });
  await tracedBackward(y, tracer, Tensor.ones(y.shape));
  const ref = farskip.slice(0, ctx.epRank, ctx.epRank + 1).toArray();
  return { rank: ctx.world.rank, maxDiffVs1Rank: diff(y, ref), forward: tracer.stats('forward'), backward: tracer.stats('backward') };
}));
for (const r of ranks) {
  console.log(`rank ${r.rank}: max |diff| vs 1 rank = ${r.maxDiffVs1Rank}, ${r.forward.count} + ${r.backward.count} collectives, ` +
    `overlap forward ${(100 * r.forward.overlap).toFixed(0)} %, backward ${(100 * r.backward.overlap).toFixed(0)} %`);
}
world.forEach((comm) => comm.destroy());
