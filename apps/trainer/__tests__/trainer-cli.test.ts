// farskip-train end to end on a tiny corpus (a folder of text files): pretrain a new model, distill its FarSkip
// conversion, evaluate, resume; and the config validation a user meets first.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SafetensorsCheckpoint } from '@farskip/models';
import { loadConfig, parseFlags } from '../src/index.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'farskip-trainer-'));

describe('config: file + flags validated with zod', () => {
  it('flags override the file; dotted keys reach nested settings; YAML works', () => {
    const f = join(tmp, 'c.yaml');
    writeFileSync(f, 'steps: 10\nlr: 0.01\narch:\n  layers: 3\n');
    const { flags } = parseFlags(['--steps', '20', '--arch.hidden', '64', '--farskip', '{"mode":"attn-only"}', '--no-resume']);
    const c = loadConfig(f, flags);
    expect(c.steps).toBe(20);
    expect(c.lr).toBe(0.01);
    expect(c.arch).toMatchObject({ layers: 3, hidden: 64 });
    expect(c.farskip).toEqual({ mode: 'attn-only' });
    expect(c.resume).toBe(false);
  });

  it('batchTokens sets the batch from the sequence length and accumulation', () => {
    expect(loadConfig(undefined, { batchTokens: 4096, seq: 256, accumulation: 2 }).batch).toBe(8);
    expect(() => loadConfig(undefined, { batchTokens: 1000, seq: 256 })).toThrow(/'batchTokens' 1000 is not a multiple of seq × accumulation = 256/);
  });

  it('defaults fill every setting, nested ones included', () => {
    const c = loadConfig(undefined, {});
    expect(c.arch).toEqual({ family: 'deepseek_v2', hidden: 128, layers: 4, heads: 4, experts: 8, topK: 2, expertHidden: 128, sharedExperts: 1, denseLayers: 1 });
    expect(c.corpus).toBe('sotu');
    expect(c.farskip).toEqual({ mode: 'full' });
  });

  it('an unknown or wrong key is an error naming it', () => {
    expect(() => loadConfig(undefined, { stepz: 3 })).toThrow(/unknown key\(s\) 'stepz'/);
    expect(() => loadConfig(undefined, { 'arch.layerz': 3 })).toThrow(/'arch.layerz'/);
    expect(() => loadConfig(undefined, { steps: 'many' })).toThrow(/'steps'/);
    expect(() => loadConfig(undefined, { farskip: { mode: 'sideways' } })).toThrow(/'farskip.mode'/);
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, '{ steps: ');
    expect(() => loadConfig(bad, {})).toThrow(/bad.json: cannot parse the config/);
  });
});

describe.skipIf(!existsSync(cli))('farskip-train on a tiny corpus (needs the built app)', () => {
  const corpus = join(tmp, 'corpus');
  mkdirSync(corpus, { recursive: true });
  const words = 'the nation congress people war peace law budget year union states government economy citizens'.split(' ');
  for (let d = 0; d < 40; d++) {
    let text = '';
    for (let s = 0; s < 30; s++) text += `${Array.from({ length: 8 }, (_, i) => words[(d * 7 + s * 3 + i * i) % words.length]).join(' ')}. `;
    writeFileSync(join(corpus, `doc-${String(d).padStart(2, '0')}.txt`), text);
  }
  const run = (...args: string[]): string => execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, FARSKIP_NUM_THREADS: '1' } });
  const common = ['--corpus', corpus, '--vocab-size', '300', '--batch', '2', '--seq', '16', '--warmup-steps', '1', '--eval-every', '2', '--checkpoint-every', '2',
    '--held-out-fraction', '0.2', '--arch.hidden', '32', '--arch.heads', '2', '--arch.layers', '2', '--arch.experts', '4', '--arch.expert-hidden', '32'];

  it('pretrain -> distill -> eval writes models, metrics, checkpoints and curves; --resume continues', () => {
    const pre = join(tmp, 'pre');
    const out1 = run('pretrain', ...common, '--steps', '4', '--out', pre, '--lr', '0.01');
    expect(out1).toMatch(/pretrain done: 4 steps/);
    const m = readFileSync(join(pre, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(m.map((r) => r.step)).toEqual([1, 2, 3, 4]);
    expect(m.every((r) => Number.isFinite(r.loss))).toBe(true);
    expect(m[1].eval).toBeTypeOf('number');
    for (const f of ['loss.svg', 'loss.png', 'eval.png', 'model/config.json', 'model/model.safetensors', 'checkpoints/step-00000004/trainer.json']) expect(existsSync(join(pre, f)), f).toBe(true);
    expect([...readFileSync(join(pre, 'loss.png')).subarray(1, 4)].map((c) => String.fromCharCode(c)).join('')).toBe('PNG');

    const dis = join(tmp, 'dis');
    const out2 = run('distill', ...common, '--model', join(pre, 'model'), '--data', join(pre, 'data'), '--steps', '2', '--out', dis);
    expect(out2).toMatch(/distill done: 2 steps/);
    expect(JSON.parse(readFileSync(join(dis, 'model', 'config.json'), 'utf8')).farskip).toEqual({ mode: 'full' });
    // the step checkpoints carry the model's config (FarSkip options included), so they load for inference
    expect(JSON.parse(readFileSync(join(dis, 'checkpoints', 'config.json'), 'utf8')).farskip).toEqual({ mode: 'full' });
    // the SFT baseline trains the converted model too (cross-entropy instead of KL to the original)
    const sft = join(tmp, 'sft');
    expect(run('sft', ...common, '--model', join(pre, 'model'), '--data', join(pre, 'data'), '--steps', '2', '--out', sft)).toMatch(/sft done: 2 steps/);
    expect(JSON.parse(readFileSync(join(sft, 'model', 'config.json'), 'utf8')).farskip).toEqual({ mode: 'full' });

    const evOut = join(tmp, 'eval');
    const md = run('eval', '--model', join(pre, 'model'), '--student', join(dis, 'model'), '--data', join(pre, 'data'), '--seq', '16', '--task-limit', '4', '--out', evOut);
    expect(md).toMatch(/original/);
    const rep = JSON.parse(readFileSync(join(evOut, 'report.json'), 'utf8'));
    expect(rep.rows.map((r: { name: string }) => r.name)).toEqual(['original', 'converted-untrained', 'trained']);
    expect(rep.rows[0].kl).toBe(0);
    expect(rep.rows[0].top1).toBe(1);
    for (const r of rep.rows) {
      expect(r.perplexity).toBeGreaterThan(1);
      expect(r.tasks.map((t: { task: string }) => t.task)).toEqual(['sotu-next-sentence', 'sotu-cloze']);
    }

    // resume: two more steps after the 4 of the pretrain run, continuing its metrics
    run('pretrain', ...common, '--steps', '6', '--out', pre, '--lr', '0.01', '--resume');
    const m2 = readFileSync(join(pre, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(m2.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('--ranks 2 trains data-parallel through the launcher: both ranks end with identical weights', () => {
    const pre = join(tmp, 'pre');
    const dp = join(tmp, 'dp');
    run('pretrain', ...common, '--data', join(pre, 'data'), '--steps', '2', '--out', dp, '--ranks', '2');
    const m = readFileSync(join(dp, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(m.map((r) => [r.step, r.ranks])).toEqual([[1, 2], [2, 2]]);
    const w0 = readFileSync(join(dp, 'checkpoints', 'rank-0', 'step-00000002', 'model.safetensors'));
    const w1 = readFileSync(join(dp, 'checkpoints', 'rank-1', 'step-00000002', 'model.safetensors'));
    expect(w0.equals(w1)).toBe(true); // gradients averaged over the ranks before every update
    expect(existsSync(join(dp, 'model', 'model.safetensors'))).toBe(true);
  });

  it('--ranks 4 --tp 2 --ep 2: the mesh trains the global batch as one rank does (clipping included) and saves one whole model', () => {
    const pre = join(tmp, 'pre');
    // plain MHA (qwen3_moe): MLA attention has no tensor parallelism; clip 0.05 so that clipping acts every step
    const arch = [...common, '--data', join(pre, 'data'), '--steps', '3', '--arch.family', 'qwen3_moe', '--arch.heads', '4', '--clip', '0.05', '--eval-every', '3'];
    const one = join(tmp, 'mesh-1'), mesh = join(tmp, 'mesh-4');
    run('pretrain', ...arch, '--batch', '4', '--out', one);
    // dense group ep × dp = 2 ranks of 2 sequences each: the same 4 windows per step as the single rank
    run('pretrain', ...arch, '--batch', '2', '--out', mesh, '--ranks', '4', '--tp', '2', '--ep', '2');
    const metrics = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const m1 = metrics(one), m4 = metrics(mesh);
    expect(m4.map((r) => [r.step, r.ranks, r.tp, r.ep, r.tokens])).toEqual([[1, 4, 2, 2, 64], [2, 4, 2, 2, 64], [3, 4, 2, 2, 64]]);
    expect(m1.map((r) => r.tokens)).toEqual([64, 64, 64]);
    for (let i = 0; i < 3; i++) {
      expect(Math.abs(m4[i].loss - m1[i].loss)).toBeLessThan(1e-4 * m1[i].loss);
      expect(Math.abs(m4[i].gradNorm - m1[i].gradNorm)).toBeLessThan(1e-4 * m1[i].gradNorm);
      expect(m1[i].gradNorm).toBeGreaterThan(0.05); // the clip was active
    }
    // Adam moves every weight by about ±lr whatever its gradient's size: a gradient at rounding-noise level can
    // take the other sign on the mesh (sums in another order), so weights may differ by up to 2·Σ lr; the held-out
    // loss after the last update and the weights are held to that, not to float precision
    const lrSum = m1.reduce((a, r) => a + r.lr, 0);
    expect(Math.abs(m4[2].eval - m1[2].eval)).toBeLessThan(2e-3 * m1[2].eval);
    // the gathered checkpoint has every tensor of the single-rank one, with (nearly) the same values
    const a = SafetensorsCheckpoint.open(join(one, 'model')), b = SafetensorsCheckpoint.open(join(mesh, 'model'));
    try {
      expect(b.keys().sort()).toEqual(a.keys().sort());
      for (const k of a.keys()) {
        const x = a.read(k, { as: 'f32' }).data as Float32Array, y = b.read(k, { as: 'f32' }).data as Float32Array;
        let worst = 0;
        for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
        expect(worst, k).toBeLessThan(2 * lrSum + 1e-5);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('a mesh that does not divide the ranks is a config error naming the sizes', () => {
    expect(() => loadConfig(undefined, { ranks: 6, tp: 4 })).toThrow(/'ranks' 6 is not a multiple of tp × ep = 4/);
  });

  it('a bad command or missing model is a clear error with a non-zero exit', () => {
    expect(() => run('distill', '--out', join(tmp, 'x'), '--corpus', corpus, '--vocab-size', '300')).toThrow(/distill needs --model/);
    expect(() => run('fly')).toThrow(/unknown command 'fly'/);
  });
});
