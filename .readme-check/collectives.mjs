import { createThreadsWorld, threadsSharedLike } from '@farskip/collectives';

// Two ranks in this process, each with its own communication worker thread (no MPI / NCCL needed).
const world = createThreadsWorld(2);

// Rank r's gradient is (r + 1) · [1, 2, 3, 4]. A SharedArrayBuffer-backed array is reduced in place (zero copies);
// any other typed array works too, through a staging copy.
const grads = world.map((comm) => {
  const g = threadsSharedLike(new Float32Array(4));          // a zeroed shared array of the same type and length
  g.set([1, 2, 3, 4].map((v) => v * (comm.rank + 1)));
  return g;
});

// Collectives return a Work at once; the reduction runs on the comm workers while this thread goes on.
const works = world.map((comm, r) => comm.allReduce(grads[r], 'avg'));
await Promise.all(works.map((w) => w.wait()));
console.log('all-reduce avg:', grads.map((g) => [...g]));   // every rank: 1.5 · [1, 2, 3, 4]

// all-gather: every rank contributes its rank id × 10
const gathered = world.map(() => new Int32Array(2));
await Promise.all(world.map((comm, r) => comm.allGather(Int32Array.of(comm.rank * 10), gathered[r]).wait()));
console.log('all-gather:', gathered.map((g) => [...g]));

world.forEach((comm) => comm.destroy());   // stops the comm workers
