// The threads backend under Node, Bun and Deno: a 2-rank world in this thread (each rank still gets its own
// communication worker), an all-reduce and an uneven all-to-all. Prints one JSON line.
import { createThreadsWorld } from '@farskip/collectives';

const runtime = typeof globalThis.Deno !== 'undefined' ? 'deno' : typeof globalThis.Bun !== 'undefined' ? 'bun' : 'node';
const [a, b] = createThreadsWorld(2, { timeoutMs: 20_000 });
const x0 = Float32Array.from([1, 2, 3]), x1 = Float32Array.from([10, 20, 30]);
await Promise.all([a.allReduce(x0, 'sum').wait(), b.allReduce(x1, 'sum').wait()]);
// rank 0 sends 1 element to itself and 2 to rank 1; rank 1 sends 3 to rank 0 and 0 to itself
const out0 = new Int32Array(4), out1 = new Int32Array(2);
await Promise.all([
  a.allToAll(Int32Array.from([7, 8, 9]), out0, [1, 2], [1, 3]).wait(),
  b.allToAll(Int32Array.from([4, 5, 6]), out1, [3, 0], [2, 0]).wait(),
]);
a.destroy(); b.destroy();
console.log(JSON.stringify({ runtime, sum: [...x0], sumOther: [...x1], a2a0: [...out0], a2a1: [...out1] }));
