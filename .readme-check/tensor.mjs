import { Tensor, recordOp, gradcheck, cat } from '@farskip/tensor';

// A differentiable op of your own: y = x³, with its backward dy/dx = 3x² · grad.
function cube(x) {
  const y = new Tensor(x.data.map((v) => v * v * v), x.shape, { dtype: x.dtype });
  return recordOp(y, 'cube', [x], (g) => [new Tensor(g.data.map((gi, i) => 3 * x.data[i] ** 2 * gi), x.shape, { dtype: x.dtype })]);
}

const x = Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
const y = cat([cube(x), x.transpose(0, 1).reshape(2, 3)], 0);   // views and cat are differentiable too
console.log('y =', y.toString());

await y.backward(Tensor.ones(y.shape));                          // backward() returns a Promise
console.log('dy/dx =', x.grad.toArray());                        // 3x² + 1

// float64 central differences against the backward
const check = await gradcheck(cube, [Tensor.randn([3, 4], { seed: 0, dtype: 'f64', requiresGrad: true })]);
console.log('gradcheck:', check.ok, check.message);
