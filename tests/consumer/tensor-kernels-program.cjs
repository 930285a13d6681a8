// The tensor + kernels program both module formats run: tensor-kernels.mjs passes the packages' ESM builds,
// tensor-kernels.cjs their CommonJS builds (require), so the two must give the same numbers.
'use strict';

/** @returns {Promise<object>} the numbers the test checks against float64 maths */
module.exports = async function run({ Tensor }, { backendInfo, matmul, softmax, sum, mul }) {
  const runtime = typeof globalThis.Deno !== 'undefined' ? 'deno' : typeof globalThis.Bun !== 'undefined' ? 'bun' : 'node';
  const a = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
  const b = Tensor.fromArray([0.5, -1, 2, 0, 1, 1], [3, 2]);
  const c = matmul(a, b);                   // [2, 2]
  const p = softmax(c);                     // rows sum to 1
  const loss = sum(mul(p, Tensor.fromArray([1, 2, 3, 4], [2, 2])));
  await loss.backward();
  const info = backendInfo();
  return { runtime, backend: info.backend, library: info.library ?? null, c: c.toArray(), loss: loss.item(), gradA: a.grad.toArray() };
};
