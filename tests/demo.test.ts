// `npm run example` (the smallest end-to-end example) must run on the built packages and its loss must fall; `npm
// start` is the README's main job, the repro pipeline (its quick profile runs in apps/trainer/__tests__/repro.test.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = existsSync(`${root}packages/kernels/dist/index.js`);

describe.skipIf(!built)('npm run example / npm start (needs `npm run build`)', () => {
  it('npm start runs the trainer\'s repro pipeline from the built app', () => {
    const start = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: { start: string } }).scripts.start;
    const [cmd, script, command] = start.split(' ');
    expect(cmd).toBe('node');
    expect(script).toBe('apps/trainer/dist/cli.js');
    expect(command).toBe('repro');
    expect(existsSync(`${root}${script}`), `start script target ${script} exists`).toBe(true);
  });

  it('the example script runs the demo, which trains and reports a falling loss', () => {
    const example = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: { example: string } }).scripts.example;
    const [cmd, script] = example.split(' ');
    expect(cmd).toBe('node');
    expect(existsSync(`${root}${script}`), `start script target ${script} exists`).toBe(true);
    const out = execFileSync(process.execPath, [`${root}${script}`, '--steps', '60'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    const m = /loss (\d+\.\d+) → (\d+\.\d+), accuracy (\d+\.\d+)%/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![2])).toBeLessThan(Number(m![1]) * 0.5);
    expect(Number(m![3])).toBeGreaterThan(50); // 3 classes: chance is 33 %
  });
});
