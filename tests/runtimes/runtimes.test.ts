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

const runtimes: [string, string[]][] = [
  ['node', [process.execPath, script]],
  ['bun', [bin('bun'), script]],
  ['deno', [bin('deno'), 'run', '-A', '--quiet', script]],
];

describe.skipIf(!built)('the same program under Node, Bun and Deno (needs `npm run build`)', () => {
  const ref = reference();
  for (const [name, [cmd, ...args]] of runtimes) {
    it(`${name}`, () => {
      const out = execFileSync(cmd!, args, { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 90_000 });
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop()!;
      const got = JSON.parse(line) as { runtime: string; backend: string; c: number[]; loss: number; gradA: number[] };
      expect(got.runtime).toBe(name);
      got.c.forEach((v, i) => expect(v).toBeCloseTo(ref.c[i]!, 4));
      expect(got.loss).toBeCloseTo(ref.loss, 5);
      got.gradA.forEach((v, i) => expect(v).toBeCloseTo(ref.gradA[i]!, 5));
    });
  }
});
