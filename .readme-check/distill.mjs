import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CausalLM, parseConfig, convertToFarSkip, saveModel, loadModel } from '@farskip/models';
import { Trainer, forwardKl } from '@farskip/distill';
import { Tensor, noGrad } from '@farskip/tensor';

const V = 64, batch = 4, seq = 16;
const config = {
  architectures: ['MixtralForCausalLM'], vocab_size: V, hidden_size: 32, intermediate_size: 32, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 4, num_experts_per_tok: 2, rope_theta: 10000,
};
// Batches of arithmetic sequences (token i+1 = token i + step, mod V), served through the BatchSource interface.
let cursor = 0;
const data = {
  next() {
    const inputs = new Int32Array(batch * seq), targets = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++, cursor++) {
      for (let t = 0; t < seq; t++) {
        inputs[b * seq + t] = (cursor * 7 + t * (1 + (cursor % 3))) % V;
        targets[b * seq + t] = (cursor * 7 + (t + 1) * (1 + (cursor % 3))) % V;
      }
    }
    return { inputs, targets };
  },
  state: () => ({ cursor }),
  restore: (s) => { cursor = s.cursor; },
};

// 1. Pretrain a tiny Mixtral (the "original" model, the teacher).
const teacher = CausalLM.random(parseConfig(config), 1);
const pre = await new Trainer({ student: teacher, data, config: { objective: 'pretrain', steps: 80, batch, seq, lr: 2e-2 } }).train();
console.log(`pretrained: cross-entropy ${pre.metrics[0].loss.toFixed(3)} -> ${pre.metrics.at(-1).loss.toFixed(3)}`);

// 2. The student: the same weights with the FarSkip connectivity.
const dir = mkdtempSync(join(tmpdir(), 'farskip-distill-'));
saveModel(teacher, dir);
const student = convertToFarSkip(loadModel(dir), { mode: 'full' });
rmSync(dir, { recursive: true });

// 3. FCSD: KL(teacher ‖ student) on the teacher's own data, teacher frozen.
const held = new Tensor(data.next().inputs, [batch, seq], { dtype: 'i32' });
const heldKl = () => noGrad(async () => forwardKl(await student.forward(held), await teacher.forward(held, { farskip: null })).item());
console.log(`held-out KL before distillation: ${(await heldKl()).toFixed(4)}`);
const trainer = new Trainer({ student, teacher, data, config: { objective: 'fcsd', steps: 40, batch, seq, lr: 3e-3, warmupSteps: 3, clip: 1 } });
const { metrics } = await trainer.train();
console.log(`training KL ${metrics[0].loss.toFixed(4)} -> ${metrics.at(-1).loss.toFixed(4)} in ${metrics.length} steps`);
console.log(`held-out KL after distillation:  ${(await heldKl()).toFixed(4)}`);
