// `npm start`: trains a small MLP (no MoE yet) on three interleaved spirals with the farskip stack end to end:
// tensors + autograd (@farskip/tensor), native kernels, cross-entropy and fused AdamW (@farskip/kernels).
// Prints the loss falling and the final accuracy. Options: --steps N --hidden H --seed S.
import { Tensor, Random, noGrad } from '@farskip/tensor';
import { AdamW, backendInfo, crossEntropy, linear, silu, topk } from '@farskip/kernels';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const steps = arg('steps', 300), hidden = arg('hidden', 128), seed = arg('seed', 0);
const classes = 3, perClass = 200, n = classes * perClass;

// Spirals: class c, radius r in [0, 1], angle = 4r + 2πc/3 + noise. x [n, 2], y i32 [n].
const rng = new Random(seed);
const xs = new Float32Array(n * 2), ys = new Int32Array(n);
for (let c = 0; c < classes; c++) {
  for (let i = 0; i < perClass; i++) {
    const r = i / perClass, t = 4 * r + (2 * Math.PI * c) / classes + rng.normal() * 0.2;
    const k = c * perClass + i;
    xs[2 * k] = r * Math.sin(t); xs[2 * k + 1] = r * Math.cos(t); ys[k] = c;
  }
}
const x = new Tensor(xs, [n, 2]), y = new Tensor(ys, [n]);

// Kaiming-style init, nn.Linear layout [out, in].
const layer = (inF, outF, s) => [
  Tensor.randn([outF, inF], { seed: s, std: Math.sqrt(2 / inF), requiresGrad: true }),
  Tensor.zeros([outF], { requiresGrad: true }),
];
const [w1, b1] = layer(2, hidden, seed + 1), [w2, b2] = layer(hidden, hidden, seed + 2), [w3, b3] = layer(hidden, classes, seed + 3);
const params = [w1, b1, w2, b2, w3, b3];
const forward = (inp) => linear(silu(linear(silu(linear(inp, w1, b1)), w2, b2)), w3, b3);

const info = backendInfo();
console.log(`farskip demo: MLP 2→${hidden}→${hidden}→${classes} on ${n} spiral points; kernels: ${info.backend} (${info.isa}, ${info.threads} threads)`);
const opt = new AdamW(params, { lr: 1e-2, weightDecay: 1e-4 });
const t0 = performance.now();
let first = 0, last = 0;
for (let step = 1; step <= steps; step++) {
  const loss = crossEntropy(forward(x), y);
  opt.zeroGrad();
  await loss.backward();
  opt.step();
  last = loss.item();
  if (step === 1) first = last;
  if (step === 1 || step % 25 === 0 || step === steps) console.log(`step ${String(step).padStart(4)}  loss ${last.toFixed(4)}`);
}
const acc = noGrad(() => {
  const pred = topk(forward(x), 1).indices.data;
  let ok = 0;
  for (let i = 0; i < n; i++) ok += pred[i] === ys[i] ? 1 : 0;
  return ok / n;
});
const ms = performance.now() - t0;
console.log(`loss ${first.toFixed(4)} → ${last.toFixed(4)}, accuracy ${(acc * 100).toFixed(1)}%, ${(ms / steps).toFixed(2)} ms/step`);
if (!(last < first)) { console.error('loss did not fall'); process.exit(1); }
