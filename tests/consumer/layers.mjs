// A FarSkip MoE stack under Node, Bun and Deno: the same seeded model on one rank and on 2 expert-parallel
// threads-backend ranks (overlapped schedule, forward + backward). Prints one JSON line: the largest difference
// between the 2-rank outputs and the matching rows of the 1-rank output, and the overlap statistics' sanity.
import { createThreadsWorld } from '@farskip/collectives';
import { ParallelContext, buildStack, randomStackWeights, Tracer, tracedBackward } from '@farskip/layers';
import { Tensor } from '@farskip/tensor';

const runtime = typeof globalThis.Deno !== 'undefined' ? 'deno' : typeof globalThis.Bun !== 'undefined' ? 'bun' : 'node';
const cfg = { layers: 2, hidden: 16, heads: 2, moe: { numExperts: 4, topK: 2, expertHidden: 8, sharedHidden: 8, renormalize: true } };
const weights = randomStackWeights(cfg, 5);
const B = 2, T = 3;
const x = Tensor.randn([B, T, cfg.hidden], { seed: 11 });
const positions = new Tensor(Int32Array.from([0, 1, 2]), [T], { dtype: 'i32' });
const single = await buildStack(cfg, weights, ParallelContext.single()).forward(x, positions);
const worlds = createThreadsWorld(2);
const ctxs = worlds.map((w) => ParallelContext.create(w, { ep: 2 }));
const per = (B / 2) * T * cfg.hidden;
const results = await Promise.all(ctxs.map(async (ctx) => {
  const stack = buildStack(cfg, weights, ctx);
  const tracer = new Tracer(ctx.world.rank);
  const xs = x.slice(0, ctx.epRank, ctx.epRank + 1).detach().clone();
  const y = await stack.forward(xs, positions, { schedule: 'overlapped', tracer });
  await tracedBackward(y, tracer, Tensor.ones(y.shape));
  let diff = 0;
  const ref = single.data.subarray(ctx.epRank * per, (ctx.epRank + 1) * per);
  y.data.forEach((v, i) => { diff = Math.max(diff, Math.abs(v - ref[i])); });
  const f = tracer.stats('forward'), b = tracer.stats('backward');
  return { diff, forwardComms: f.count, backwardComms: b.count, overlapsInRange: [f.overlap, b.overlap].every((o) => o >= 0 && o <= 1), gradOk: stack.parameters().every(([, t]) => t.grad !== null) };
}));
worlds.forEach((w) => w.destroy());
console.log(JSON.stringify({ runtime, maxDiff: Math.max(...results.map((r) => r.diff)), ranks: results }));
