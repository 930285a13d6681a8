// A small tensor + kernels program that must run unchanged under Node, Bun and Deno. Prints one JSON line:
// the runtime, the kernel backend it got, and a few numbers the test checks against float64 maths.
import { Tensor } from '@farskip/tensor';
import { backendInfo, matmul, softmax, sum, mul } from '@farskip/kernels';

const runtime = typeof globalThis.Deno !== 'undefined' ? 'deno' : typeof globalThis.Bun !== 'undefined' ? 'bun' : 'node';
const a = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
const b = Tensor.fromArray([0.5, -1, 2, 0, 1, 1], [3, 2]);
const c = matmul(a, b);                   // [2, 2]
const p = softmax(c);                     // rows sum to 1
const loss = sum(mul(p, Tensor.fromArray([1, 2, 3, 4], [2, 2])));
await loss.backward();
console.log(JSON.stringify({ runtime, backend: backendInfo().backend, c: c.toArray(), loss: loss.item(), gradA: a.grad.toArray() }));
