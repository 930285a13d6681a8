// `farskip-train repro --quick` end to end on the embedded corpus (the built CLI, about a minute on 2 cores): the
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
    expect(first).toMatch(/\[15\/15\] report/);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { unigramPerplexity: number; families: { key: string; rows: Row[] }[] };
    expect(res.families.map((f) => f.key)).toEqual(['deepseek', 'qwen3']);
    for (const f of res.families) {
      const row = (name: string): Row => f.rows.find((r) => r.name === name)!;
      const original = row('original'), untrained = row('converted (100 %), untrained'), fcsd = row('FCSD (100 %)'), sft = row('SFT (100 %)');
      expect(original.perplexity, f.key).toBeLessThan(0.6 * res.unigramPerplexity);
      expect(untrained.perplexity, f.key).toBeGreaterThan(original.perplexity);
      expect(untrained.top1, f.key).toBeLessThan(0.99);
      // FCSD closes most of the gap the conversion opened (KL to the original), and beats SFT on it
      expect(fcsd.kl, f.key).toBeLessThan(0.5 * untrained.kl);
      expect(sft.kl, f.key).toBeGreaterThan(fcsd.kl);
    }
    // Table 3: both models, with and without the emulated link, times and overlap fractions measured
    const sys = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).families[0].systems as { link: string; rows: { link: string | null; variant: string; trainStepMs: number; prefillMs: number; overlapForward: number }[] };
    expect(sys.rows.map((r) => `${r.link === null ? 'none' : 'link'}:${r.variant}`)).toEqual(['none:standard', 'none:farskip', 'link:standard', 'link:farskip']);
    for (const r of sys.rows) {
      expect(r.trainStepMs).toBeGreaterThan(r.prefillMs);
      expect(r.overlapForward).toBeGreaterThanOrEqual(0);
      expect(r.overlapForward).toBeLessThanOrEqual(1);
    }
    expect(sys.link).toMatch(/GB\/s/);
    const md = readFileSync(join(out, 'results.md'), 'utf8');
    expect(md).toMatch(/\| link \| model \| training step/);
    expect(md).toMatch(/## DeepSeek-style/);
    expect(md).toMatch(/## Qwen3-style/);
    for (const f of ['deepseek-pretrain.png', 'deepseek-students.png', 'qwen3-pretrain.png', 'qwen3-students.png']) expect(existsSync(join(out, f)), f).toBe(true);
    const second = run();
    expect(second.match(/skipped/g)?.length).toBe(14);
  });
});
