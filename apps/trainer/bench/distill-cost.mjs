#!/usr/bin/env node
// What a distillation step costs: FCSD (teacher forward, frozen, + student forward/backward/AdamW) against an SFT
// step (student forward/backward/AdamW) and a teacher forward alone, same model, same batch, same threads.
// Expected: fcsd ≈ sft + teacher forward (the KL over logits replaces the cross-entropy at similar cost).
//   node apps/trainer/bench/distill-cost.mjs      (after npm run build; FARSKIP_NUM_THREADS to pin threads)
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Trainer } from '@farskip/distill';
import { CausalLM, convertToFarSkip, parseConfig } from '@farskip/models';
import { noGrad, Tensor } from '@farskip/tensor';
import { newModelConfig } from '../dist/index.js';
import { loadConfig } from '../dist/index.js';

const cfg = loadConfig(undefined, {});
const vocab = 4096, B = cfg.batch, T = cfg.seq;
const spec = parseConfig(newModelConfig(cfg, vocab), 'bench model');
const reps = 4;
let cursor = 0;
const data = {
  next: () => {
    const inputs = Int32Array.from({ length: B * T }, (_, i) => (i * 7919 + cursor * 104729) % vocab);
    cursor++;
    return { inputs, targets: inputs.map((v, i) => inputs[(i + 1) % inputs.length]) };
  },
  state: () => cursor, restore: (s) => { cursor = s; },
};
async function timeSteps(objective) {
  const student = CausalLM.random(spec, 1);
  const teacher = objective === 'fcsd' ? CausalLM.random(spec, 1) : null;
  if (teacher) { convertToFarSkip(teacher, null); convertToFarSkip(student, { mode: 'full' }); }
  const tr = new Trainer({ student, teacher, data, config: { objective, steps: reps + 1, batch: B, seq: T, lr: 1e-3, clip: 1 } });
  await tr.trainStep(); // warm-up
  const ms = [];
  for (let i = 0; i < reps; i++) ms.push((await tr.trainStep()).ms);
  return Math.min(...ms);
}
async function teacherForward() {
  const m = CausalLM.random(spec, 1);
  const ids = new Tensor(data.next().inputs, [B, T], { dtype: 'i32' });
  await noGrad(() => m.forward(ids));
  const ms = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); await noGrad(() => m.forward(ids)); ms.push(performance.now() - t0); }
  return Math.min(...ms);
}
const sft = await timeSteps('sft');
const fcsd = await timeSteps('fcsd');
const fwd = await teacherForward();
const row = { sftStepMs: sft, fcsdStepMs: fcsd, teacherForwardMs: fwd, fcsdOverSft: fcsd / sft, fcsdOverSftPlusTeacher: fcsd / (sft + fwd) };
console.log(`model: ${spec.architecture} hidden ${spec.hidden}, ${spec.layers} layers, ${spec.moe.numExperts} experts top-${spec.moe.topK}; batch ${B} × seq ${T}; threads ${process.env.FARSKIP_NUM_THREADS ?? os.availableParallelism()}`);
console.log(`sft step ${sft.toFixed(0)} ms | fcsd step ${fcsd.toFixed(0)} ms | teacher forward ${fwd.toFixed(0)} ms | fcsd / sft ${row.fcsdOverSft.toFixed(2)} | fcsd / (sft + teacher fwd) ${row.fcsdOverSftPlusTeacher.toFixed(2)}`);
const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(dir, { recursive: true });
const out = { benchmark: 'distill-cost', date: new Date().toISOString(), cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), node: process.version, model: { arch: cfg.arch, vocab, batch: B, seq: T }, reps, ...row };
writeFileSync(join(dir, 'distill-cost.json.tmp'), JSON.stringify(out, null, 2) + '\n');
renameSync(join(dir, 'distill-cost.json.tmp'), join(dir, 'distill-cost.json'));
