// The repro pipeline's child-process stages (repro-jobs.ts): a stage that fails in its child rejects with the
// child's own error, and an aborted stage (a sibling failed) kills its child and rejects at once — never a hang.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { runInChild } from '../src/repro-jobs.js';

const built = existsSync(fileURLToPath(new URL('../dist/repro-stage.js', import.meta.url)));

describe.skipIf(!built)('runInChild (needs the built app)', () => {
  it('rejects with the error the stage raised in its child process', async () => {
    const cfg = loadConfig(undefined, { model: '/nonexistent/farskip-model', steps: 1 });
    await expect(runInChild({ kind: 'train', command: 'distill', cfg }, { threads: 1, onStep: () => {}, log: () => {} }))
      .rejects.toThrow(/nonexistent\/farskip-model/);
  }, 60_000);

  it('an abort kills the child and rejects promptly', async () => {
    // pretraining on the embedded corpus takes far longer than the abort below
    const cfg = loadConfig(undefined, { steps: 100000, out: `/tmp/farskip-repro-jobs-${process.pid}` });
    const abort = new AbortController();
    const t0 = performance.now();
    const run = runInChild({ kind: 'train', command: 'pretrain', cfg }, { threads: 1, onStep: () => {}, log: () => {}, signal: abort.signal });
    setTimeout(() => abort.abort(), 500);
    await expect(run).rejects.toThrow(/another stage failed/);
    expect(performance.now() - t0).toBeLessThan(10_000);
  }, 60_000);
});
