// farskip-infer as users run it (the built CLI in child processes): generate on one rank and on two ranks in
// lockstep (--tp 2, threads backend through the launcher) give the same greedy tokens; `serve --tp 2` answers
// over HTTP with the completion `generate` printed; bad flags fail with a message naming them.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { writeTinyModel } from './fixture.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'farskip-infer-cli-'));
const dir = await writeTinyModel(join(root, 'model'));
const converted = await writeTinyModel(join(root, 'farskip'), { farskip: true });
const run = promisify(execFile);
const env = { ...process.env, FARSKIP_NUM_THREADS: '1' };

interface Generated { prompt: string; tokens: number[]; text: string; finishReason: string }
async function generateJson(model: string, extra: string[] = []): Promise<Generated[]> {
  const { stdout } = await run(process.execPath, [cli, 'generate', '--model', model, '--prompt', 'The quick brown fox', '--prompt', 'Hello', '--max-tokens', '10', '--json', ...extra], { env, timeout: 120_000 });
  const json = stdout.slice(stdout.indexOf('['), stdout.lastIndexOf(']') + 1).split('\n').map((l) => l.replace(/^\[rank 0\] /, '')).join('\n');
  return JSON.parse(json) as Generated[];
}

describe('farskip-infer generate', () => {
  it('one rank and two ranks (tp 2, experts split) give the same greedy tokens, original and FarSkip checkpoints', async () => {
    for (const model of [dir, converted]) {
      const one = await generateJson(model);
      const two = await generateJson(model, ['--tp', '2']);
      expect(one.length).toBe(2);
      expect(one[0]!.tokens.length).toBeGreaterThan(0);
      expect(two.map((r) => r.tokens)).toEqual(one.map((r) => r.tokens));
    }
  });

  // ranks as processes under MPICH's mpiexec (what several machines would run); skipped where MPICH is absent
  const mpich = ['/usr/bin/mpiexec.mpich', '/usr/bin/mpiexec.hydra'].find(existsSync);
  const libmpich = ['/usr/lib/x86_64-linux-gnu/libmpich.so.12', '/usr/lib/aarch64-linux-gnu/libmpich.so.12', '/usr/lib/libmpich.so.12'].find(existsSync);
  it.skipIf(!mpich || !libmpich)(`--backend mpi: two processes under mpiexec give the one-rank tokens${mpich && libmpich ? '' : ' (skipped: MPICH not installed; apt install mpich libmpich-dev)'}`, async () => {
    const one = await generateJson(dir);
    const { stdout } = await run(process.execPath, [cli, 'generate', '--model', dir, '--prompt', 'The quick brown fox', '--prompt', 'Hello', '--max-tokens', '10', '--json', '--tp', '2', '--backend', 'mpi'],
      { env: { ...env, FARSKIP_MPIEXEC: mpich!, FARSKIP_MPI_LIB: libmpich! }, timeout: 120_000 });
    const two = JSON.parse(stdout.slice(stdout.indexOf('['), stdout.lastIndexOf(']') + 1)) as Generated[];
    expect(two.map((r) => r.tokens)).toEqual(one.map((r) => r.tokens));
  });

  it('bad flags name the flag and what it expects', async () => {
    await expect(run(process.execPath, [cli, 'generate', '--model', dir, '--prompt', 'x', '--max-batch', 'many'], { env })).rejects.toThrow(/--max-batch many: expected an integer >= 1/);
    await expect(run(process.execPath, [cli, 'generate', '--model', dir, '--farskip', 'half'], { env })).rejects.toThrow(/--farskip half: expected auto/);
    await expect(run(process.execPath, [cli, 'generate', '--model', dir, '--prompt', 'x', '--tp', '2', '--backend', 'nccl'], { env })).rejects.toThrow(/--backend nccl: expected threads or mpi/);
    await expect(run(process.execPath, [cli, 'serve', '--model', join(root, 'nowhere')], { env })).rejects.toThrow(/no such directory/);
    await expect(run(process.execPath, [cli, 'serve', '--model', dir, '--bogus'], { env })).rejects.toThrow(/Unknown option '--bogus'/);
  });
});

describe('farskip-infer serve --tp 2', () => {
  it('answers with what generate printed (greedy), then stops on SIGTERM', async () => {
    const expected = await generateJson(dir);
    const child = spawn(process.execPath, [cli, 'serve', '--model', dir, '--served-model-name', 'tiny', '--tp', '2', '--port', '0', '--max-batch', '2'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start:\n${out}`)), 60_000);
      const onData = (d: Buffer): void => {
        out += d.toString();
        const m = /serving 'tiny'.* on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) { clearTimeout(timer); resolve(m[1]!); }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('exit', (code) => reject(new Error(`serve exited (${code}):\n${out}`)));
    });
    try {
      expect(out).toMatch(/2 rank\(s\)/);
      const results = await Promise.all(expected.map(async (e) => {
        const r = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'tiny', prompt: e.prompt, max_tokens: 10, temperature: 0 }) });
        expect(r.status).toBe(200);
        return ((await r.json()) as { choices: { text: string }[] }).choices[0]!.text;
      }));
      expect(results).toEqual(expected.map((e) => e.text));
    } finally {
      child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 0 : null))));
    expect(code).not.toBeNull();
  });
});
