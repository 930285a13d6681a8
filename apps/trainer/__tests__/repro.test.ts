// `farskip-train repro --quick` end to end on the embedded corpus (the built CLI, about 3 minutes on 2 cores): the
// orderings the paper reports must hold at this scale — pretrained models clear the unigram bar, the untrained
// conversion moves the model away from the original, FCSD brings it most of the way back, and FCSD beats the SFT
// baseline on KL to the original; a second run finds every stage cached.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const out = join(mkdtempSync(join(tmpdir(), 'farskip-repro-')), 'quick');

interface Row { name: string; perplexity: number; kl: number; top1: number }
describe.skipIf(!existsSync(cli))('repro --quick (needs the built app)', () => {
  it('runs every stage, writes results.md, and the paper\'s orderings hold; a rerun is served from the stage cache', () => {
    const run = (): string => execFileSync(process.execPath, [cli, 'repro', '--quick', '--out', out], { encoding: 'utf8', env: { ...process.env, FARSKIP_NUM_THREADS: '2' } });
    const first = run();
    expect(first).toMatch(/\[17\/17\] report/);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { unigramPerplexity: number; families: { key: string; rows: Row[] }[] };
    expect(res.families.map((f) => f.key)).toEqual(['deepseek', 'qwen3']);
    for (const f of res.families) {
      const row = (name: string): Row => f.rows.find((r) => r.name === name)!;
      const original = row('original'), untrained = row('converted (100 %), untrained'), fcsd = row('FCSD (100 %)'), sft = row('SFT (100 %)');
      expect(original.perplexity, f.key).toBeLessThan(0.6 * res.unigramPerplexity);
      // the untrained conversion is clearly worse (the paper's collapse, in miniature: +8 % / +24 % here)
      expect(untrained.perplexity, f.key).toBeGreaterThan(1.05 * original.perplexity);
      expect(untrained.top1, f.key).toBeLessThan(0.99);
      // FCSD closes most of the gap the conversion opened (KL to the original), and beats SFT on it
      expect(fcsd.kl, f.key).toBeLessThan(0.5 * untrained.kl);
      expect(sft.kl, f.key).toBeGreaterThan(fcsd.kl);
    }
    // Table 3: training step (EP = 2) and prefill (TP = 2, or EP = 2 for MLA), both models, with and without each
    // one's calibrated link; times and overlap fractions measured
    for (const [i, prefillMesh, which] of [[0, 'ep', 'systems'], [1, 'tp', 'systems'], [0, 'ep', 'systemsScale'], [1, 'tp', 'systemsScale']] as const) {
      const sys = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).families[i][which] as { links: Record<string, string>; rows: { measure: string; mesh: string; link: string | null; variant: string; ms: number; overlapForward: number; overlapBackward: number | null }[] };
      expect(sys.rows.map((r) => `${r.measure}/${r.mesh}:${r.link === null ? 'none' : r.link}:${r.variant}`)).toEqual([
        'train/ep:none:standard', 'train/ep:none:farskip', `prefill/${prefillMesh}:none:standard`, `prefill/${prefillMesh}:none:farskip`,
        `train/ep:${sys.links.train}:standard`, `train/ep:${sys.links.train}:farskip`, `prefill/${prefillMesh}:${sys.links.prefill}:standard`, `prefill/${prefillMesh}:${sys.links.prefill}:farskip`]);
      for (const r of sys.rows) {
        expect(r.ms).toBeGreaterThan(0);
        expect(r.overlapForward).toBeGreaterThanOrEqual(0);
        expect(r.overlapForward).toBeLessThanOrEqual(1);
        expect(r.overlapBackward === null).toBe(r.measure === 'prefill');
      }
      for (const l of Object.values(sys.links)) expect(l).toMatch(/^[0-9.e+-]+GB\/s,20us$/);
    }
    const md = readFileSync(join(out, 'results.md'), 'utf8');
    expect(md).toMatch(/\| measure \| link \| model \| time \(ms\)/);
    expect(md).toMatch(/## DeepSeek-style/);
    expect(md).toMatch(/## Qwen3-style/);
    for (const f of ['deepseek-pretrain.png', 'deepseek-students.png', 'qwen3-pretrain.png', 'qwen3-students.png']) expect(existsSync(join(out, f)), f).toBe(true);
    const second = run();
    expect(second.match(/skipped/g)?.length).toBe(16);
  }, 900_000); // ~3 minutes alone on 2 cores; CI runs other test files beside it
});
