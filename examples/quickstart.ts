// Run with `npx bun examples/quickstart.ts` (Bun runs TypeScript directly) or after `npm run build` with any
// TS-capable runner. A linear layer, a loss, a backward pass and one AdamW step.
import { Tensor } from '@farskip/tensor';
import { AdamW, backendInfo, crossEntropy, linear, silu } from '@farskip/kernels';

const w = Tensor.randn([64, 32], { seed: 1, std: 0.1, requiresGrad: true });
const x = Tensor.randn([16, 32], { seed: 2 });
const y = Tensor.fromArray(Array.from({ length: 16 }, (_, i) => i % 64), [16], { dtype: 'i32' });
const opt = new AdamW([w], { lr: 1e-2 });
for (let step = 0; step < 5; step++) {
  const loss = crossEntropy(silu(linear(x, w)), y);
  opt.zeroGrad();
  await loss.backward();
  opt.step();
  console.log(`step ${step} loss ${loss.item().toFixed(4)}`);
}
console.log(backendInfo());
