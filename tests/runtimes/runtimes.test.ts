// Runs tests/runtimes/smoke.mjs under Node, Bun (the `bun` npm package) and Deno (the `deno` npm package)
// against the built packages, and checks each runtime's numbers against float64 maths done here.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const script = fileURLToPath(new URL('./smoke.mjs', import.meta.url));
const bin = (name: string): string => `${root}node_modules/.bin/${name}`;
const built = existsSync(`${root}packages/kernels/dist/index.js`) && existsSync(`${root}packages/tensor/dist/index.js`);

// Reference: c = a @ b; p = softmax(c); loss = sum(p * w); dL/da = (dL/dc) @ bᵀ with dL/dc = p * (w - sum(p*w)).
function reference(): { c: number[]; loss: number; gradA: number[] } {
  const a = [[1, 2, 3], [4, 5, 6]], b = [[0.5, -1], [2, 0], [1, 1]], w = [[1, 2], [3, 4]];
  const c = a.map((r) => [0, 1].map((j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
  let loss = 0;
  const dc = c.map((r, i) => {
    const m = Math.max(...r), e = r.map((v) => Math.exp(v - m)), z = e.reduce((s, v) => s + v, 0);
    const p = e.map((v) => v / z);
    const pw = p.reduce((s, v, j) => s + v * w[i]![j]!, 0);
    loss += pw;
    return p.map((v, j) => v * (w[i]![j]! - pw));
  });
  const gradA = dc.flatMap((r) => [0, 1, 2].map((k) => r[0]! * b[k]![0]! + r[1]! * b[k]![1]!));
  return { c: c.flat(), loss, gradA };
}

const command = (runtime: string, file: string): string[] =>
  runtime === 'node' ? [process.execPath, file] : runtime === 'bun' ? [bin('bun'), file] : [bin('deno'), 'run', '-A', '--quiet', file];
const RUNTIMES = ['node', 'bun', 'deno'];

function runJson<T>(runtime: string, file: string): T {
  const [cmd, ...args] = command(runtime, file);
  const out = execFileSync(cmd!, args, { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 90_000 });
  return JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).pop()!) as T;
}

describe.skipIf(!built)('the same program under Node, Bun and Deno (needs `npm run build`)', () => {
  const ref = reference();
  for (const name of RUNTIMES) {
    it(`tensor + kernels under ${name}`, () => {
      const got = runJson<{ runtime: string; backend: string; c: number[]; loss: number; gradA: number[] }>(name, script);
      expect(got.runtime).toBe(name);
      got.c.forEach((v, i) => expect(v).toBeCloseTo(ref.c[i]!, 4));
      expect(got.loss).toBeCloseTo(ref.loss, 5);
      got.gradA.forEach((v, i) => expect(v).toBeCloseTo(ref.gradA[i]!, 5));
    });
  }
});

// The threads backend of @farskip/collectives: 2 ranks (each with its comm worker), all-reduce and an uneven
// all-to-all; expected values written out by hand from the inputs in collectives-smoke.mjs.
const collectivesBuilt = existsSync(`${root}packages/collectives/dist/index.js`);
describe.skipIf(!collectivesBuilt)('collectives threads backend under Node, Bun and Deno (needs `npm run build`)', () => {
  const smoke = fileURLToPath(new URL('./collectives-smoke.mjs', import.meta.url));
  for (const name of RUNTIMES) {
    it(`threads all-reduce and all-to-all under ${name}`, () => {
      const got = runJson<{ runtime: string; sum: number[]; sumOther: number[]; a2a0: number[]; a2a1: number[] }>(name, smoke);
      expect(got.runtime).toBe(name);
      expect(got.sum).toEqual([11, 22, 33]);
      expect(got.sumOther).toEqual([11, 22, 33]);
      expect(got.a2a0).toEqual([7, 4, 5, 6]); // rank 0 keeps its 1 element, receives rank 1's 3
      expect(got.a2a1).toEqual([8, 9]);       // rank 1 receives rank 0's last 2
    });
  }
});

// @farskip/layers: a 2-rank expert-parallel FarSkip stack (threads backend) equals the 1-rank model under each runtime.
const layersBuilt = existsSync(`${root}packages/layers/dist/index.js`);
describe.skipIf(!layersBuilt)('layers: 2-rank EP FarSkip stack under Node, Bun and Deno (needs `npm run build`)', () => {
  const smoke = fileURLToPath(new URL('./layers-smoke.mjs', import.meta.url));
  for (const name of RUNTIMES) {
    it(`overlapped forward + backward == 1 rank under ${name}`, () => {
      const got = runJson<{ runtime: string; maxDiff: number; ranks: { forwardComms: number; backwardComms: number; overlapsInRange: boolean; gradOk: boolean }[] }>(name, smoke);
      expect(got.runtime).toBe(name);
      expect(got.maxDiff).toBeLessThan(1e-5);
      for (const r of got.ranks) {
        expect(r.forwardComms).toBeGreaterThan(0);
        expect(r.backwardComms).toBeGreaterThan(0);
        expect(r.overlapsInRange).toBe(true);
        expect(r.gradOk).toBe(true);
      }
    });
  }
});
