// One rank of measureSystems (systems.ts): loads this rank's experts of the model at EP = 2, times a training step
// (forward + backward of sum(logits · fixed random weights)) and a prefill for the standard-blocking original and
// the overlapped FarSkip conversion (best of FARSKIP_SYSTEMS_REPS), and prints rank 0's rows as one JSON line.
import { initCommunicator } from '@farskip/collectives';
import { ParallelContext, Tracer, tracedBackward } from '@farskip/layers';
import type { FarSkipOptions, Schedule } from '@farskip/layers';
import { loadModel } from '@farskip/models';
import { noGrad, Tensor } from '@farskip/tensor';

const world = await initCommunicator();
const ctx = ParallelContext.create(world, { ep: 2 });
const model = loadModel(process.env.FARSKIP_SYSTEMS_MODEL!, { ctx });
const [B, T] = process.env.FARSKIP_SYSTEMS_SHAPE!.split('x').map(Number) as [number, number];
const reps = Number(process.env.FARSKIP_SYSTEMS_REPS ?? '2');
const V = model.spec.vocabSize;
// every rank its own tokens (expert parallelism: the all-to-alls carry real traffic both ways)
let s = 1 + world.rank * 7919;
const ids = new Tensor(Int32Array.from({ length: B * T }, () => (s = (s * 1103515245 + 12345) % 2 ** 31) % V), [B, T], { dtype: 'i32' });
const seed = Tensor.randn([B, T, V], { seed: 100 + world.rank, std: 1 });
const variants: { variant: 'standard' | 'farskip'; farskip: FarSkipOptions | null; schedule: Schedule }[] = [
  { variant: 'standard', farskip: null, schedule: 'reference' },
  { variant: 'farskip', farskip: { mode: 'full' }, schedule: 'overlapped' },
];

async function timed(v: (typeof variants)[number], train: boolean): Promise<{ ms: number; tracer: Tracer }> {
  const tracer = new Tracer(world.rank);
  await world.barrier().wait();
  const t0 = performance.now();
  if (train) {
    const logits = await model.forward(ids, { farskip: v.farskip, schedule: v.schedule, tracer });
    await tracedBackward(logits, tracer, seed);
    for (const [, p] of model.parameters()) p.grad = null;
  } else {
    await noGrad(() => model.forward(ids, { farskip: v.farskip, schedule: v.schedule, tracer }));
  }
  const ms = performance.now() - t0;
  await world.barrier().wait();
  return { ms, tracer };
}

async function best(v: (typeof variants)[number], train: boolean): Promise<{ ms: number; tracer: Tracer }> {
  let r: { ms: number; tracer: Tracer } | null = null;
  for (let i = 0; i < reps; i++) {
    const t = await timed(v, train);
    if (!r || t.ms < r.ms) r = t;
  }
  return r!;
}

await timed(variants[1]!, true); // warm-up: allocations, JIT, native pool
const rows = [];
for (const v of variants) {
  const train = await best(v, true);
  const prefill = await best(v, false);
  const fwd = train.tracer.stats('forward'), bwd = train.tracer.stats('backward');
  const blocked = fwd.exposedMs + bwd.exposedMs;
  const bytes = train.tracer.spans.reduce((a, sp) => a + (sp.kind === 'comm' && /moe/.test(sp.name) ? sp.bytes : 0), 0);
  rows.push({ variant: v.variant, trainStepMs: train.ms, prefillMs: prefill.ms, overlapForward: fwd.overlap, overlapBackward: bwd.overlap,
    commShare: blocked / train.ms, allToAllBytes: bytes });
}
if (world.rank === 0) console.log(JSON.stringify({ rows }));
world.destroy();
