import { Tensor } from '@farskip/tensor';
import { backendInfo, matmul, softmax, sum, linear, silu, crossEntropy, AdamW } from '@farskip/kernels';

console.log(backendInfo());   // native (prebuilt AVX-512 / AVX2 library) or the plain-TypeScript fallback

const a = Tensor.randn([2, 3], { seed: 1 }), b = Tensor.randn([3, 4], { seed: 2 });
const p = softmax(matmul(a, b), -1);                                   // [2, 4]
console.log('softmax(a·b):', p.toString(), 'row sums', sum(p, 1).toArray());

// a two-layer MLP fitting 16 labels: forward, backward, AdamW
const w1 = Tensor.randn([64, 32], { seed: 3, std: 0.1, requiresGrad: true });   // nn.Linear layout [out, in]
const w2 = Tensor.randn([16, 64], { seed: 4, std: 0.1, requiresGrad: true });
const x = Tensor.randn([16, 32], { seed: 5 });
const y = Tensor.fromArray(Array.from({ length: 16 }, (_, i) => i), [16], { dtype: 'i32' });
const opt = new AdamW([w1, w2], { lr: 1e-2 });
for (let step = 0; step <= 50; step++) {
  const loss = crossEntropy(linear(silu(linear(x, w1)), w2), y);
  await loss.backward();
  opt.step();
  opt.zeroGrad();
  if (step % 10 === 0) console.log(`step ${step}: loss ${loss.item().toFixed(4)}`);
}
