// The packages as a downstream project gets them. Every publishable package is packed with `npm pack`;
// publint --strict and attw (Are The Types Wrong) check each tarball; the tarballs are installed into fresh
// projects in the system temp directory (no workspace links, no repository above them), and the same programs
// run under Node, Bun and Deno: a 2-rank threads all-reduce with only @farskip/collectives installed, a
// tensor + kernels matmul from both module formats (ESM import and CommonJS require), and a FarSkip MoE stack
// from @farskip/layers. Numbers are checked against float64 maths done here, or against the 1-rank model.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatMessage } from 'publint/utils';
import { publint } from 'publint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installProject, packAll, publishablePackages, quickStart, removeScratch, root, RUNTIMES, runJson, runScript, scratch, type Packed } from './project.js';

const packages = publishablePackages();
const PREBUILT = '@farskip/kernels-linux-x64-gnu';
const hasPrebuilt = process.platform === 'linux' && process.arch === 'x64';
const prebuiltLib = join(root, 'packages', 'kernels-linux-x64-gnu', 'libfarskip_cpu.so');
// npm pack refuses (prepack) a package whose dist or binary is missing: without them this suite cannot run
const missing = [
  ...packages.filter((p) => !p.pkg.os && !existsSync(join(p.dir, 'dist', 'index.js'))).map((p) => `${p.name} dist (npm run build)`),
  ...(existsSync(prebuiltLib) ? [] : [`${PREBUILT}'s library (node tooling/build-native.mjs; needs a C compiler)`]),
];
if (missing.length) console.warn(`[consumer] skipped: ${missing.join(', ')} missing`);

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

interface MatmulOut { format: string; runtime: string; backend: string; library: string | null; c: number[]; loss: number; gradA: number[] }
function expectMatmul(got: MatmulOut): void {
  const ref = reference();
  got.c.forEach((v, i) => expect(v).toBeCloseTo(ref.c[i]!, 4));
  expect(got.loss).toBeCloseTo(ref.loss, 5);
  got.gradA.forEach((v, i) => expect(v).toBeCloseTo(ref.gradA[i]!, 5));
}

describe.skipIf(missing.length > 0)('packed @farskip packages', () => {
  let packed: Packed[] = [];
  beforeAll(() => { packed = packAll(scratch('packs')); }, 300_000);
  afterAll(removeScratch);
  const get = (name: string): Packed => packed.find((p) => p.name === name)!;

  it('packs every publishable package, the prebuilt library included', () => {
    expect(packed.map((p) => p.name).sort()).toEqual(packages.map((p) => p.name).sort());
    expect(packages.map((p) => p.name)).toContain(PREBUILT);
  });

  for (const { name, pkg } of packages) {
    it(`${name}: the tarball holds what a consumer loads and nothing from the repository's sources or tests`, () => {
      const files = get(name).files;
      expect(files).toContain('LICENSE');
      expect(files).toContain('README.md');
      expect(files).toContain('package.json');
      if (pkg.os) expect(files).toContain('libfarskip_cpu.so');
      else for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts']) expect(files).toContain(f);
      expect(files.filter((f) => /^(src|__tests__|bench|node_modules)\//.test(f) || f.endsWith('.test.ts'))).toEqual([]);
    });

    it(`${name}: publint --strict reports nothing`, async () => {
      const tarball = readFileSync(get(name).tarball);
      const { messages, pkg: lintedPkg } = await publint({ pack: { tarball: tarball.buffer.slice(tarball.byteOffset, tarball.byteOffset + tarball.byteLength) }, strict: true, level: 'warning' });
      expect(messages.map((m) => formatMessage(m, lintedPkg, { color: false }))).toEqual([]);
    });

    // attw resolves types the way node10 / node16 (CJS and ESM) / bundler consumers do; a binary-only package
    // has no entry point to resolve
    it.skipIf(Boolean(pkg.os))(`${name}: attw finds no type resolution problem in any module mode`, () => {
      const bin = join(root, 'node_modules', '.bin', 'attw');
      let out: string;
      try {
        out = execFileSync(bin, [get(name).tarball, '--format', 'json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      } catch (e) {
        out = (e as { stdout?: string }).stdout ?? String(e);
      }
      const report = JSON.parse(out) as { analysis: { entrypoints: Record<string, unknown> }; problems: Record<string, unknown[]> | unknown[] };
      expect(Object.keys(report.analysis.entrypoints)).toContain('.');
      expect(Object.values(report.problems).flat()).toEqual([]);
    });
  }

  describe('a project with only @farskip/collectives installed', () => {
    let dir = '';
    beforeAll(() => { dir = installProject(packed, ['@farskip/collectives'], ['collectives.mjs', 'packages/collectives/__tests__/fixtures/rank-env.mjs']); }, 300_000);

    it('installs collectives and its runtime dependency, nothing of the model stack', () => {
      expect(readdirSync(join(dir, 'node_modules', '@farskip')).sort()).toEqual(['collectives', 'device']);
    });

    it('the installed farskip-launch starts 2 ranks of a script that all-reduce through initCommunicator()', () => {
      const r = spawnSync(join(dir, 'node_modules', '.bin', 'farskip-launch'), ['-n', '2', 'rank-env.mjs', 'extra-arg'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      for (const rank of [0, 1]) {
        const line = new RegExp(`^\\[rank ${rank}\\] RESULT (.*)$`, 'm').exec(r.stdout);
        expect(line, r.stdout).not.toBeNull();
        const got = JSON.parse(line![1]!) as { rank: number; size: number; backend: string; sum: number; args: string[] };
        expect(got).toMatchObject({ rank, size: 2, backend: 'threads', sum: 3, args: ['extra-arg'] });
      }
    });

    for (const runtime of RUNTIMES) {
      it(`2-rank threads all-reduce and uneven all-to-all under ${runtime}`, () => {
        const { out } = runJson<{ runtime: string; sum: number[]; sumOther: number[]; a2a0: number[]; a2a1: number[] }>(runtime, 'collectives.mjs', dir);
        expect(out.runtime).toBe(runtime);
        expect(out.sum).toEqual([11, 22, 33]);
        expect(out.sumOther).toEqual([11, 22, 33]);
        expect(out.a2a0).toEqual([7, 4, 5, 6]); // rank 0 keeps its 1 element, receives rank 1's 3
        expect(out.a2a1).toEqual([8, 9]);       // rank 1 receives rank 0's last 2
      });
    }
  });

  // The reason the native library ships as a package and not as an install-time build: Bun (like pnpm, and Deno
  // without --allow-scripts) runs no dependency's install script, yet the kernels must still be native there.
  describe.skipIf(!hasPrebuilt)('a project installed by Bun\'s package manager (dependency install scripts blocked)', () => {
    let dir = '';
    beforeAll(() => { dir = installProject(packed, ['@farskip/tensor', '@farskip/kernels'], ['tensor-kernels.mjs', 'tensor-kernels-program.cjs'], 'bun'); }, 300_000);

    it('runs the native kernels from the prebuilt package under bun', () => {
      const { out } = runJson<MatmulOut>('bun', 'tensor-kernels.mjs', dir);
      expect(out.backend).toBe('native');
      expect(out.library).toBe(join(dir, 'node_modules', PREBUILT, 'libfarskip_cpu.so'));
      expectMatmul(out);
    });
  });

  describe('a project with every library package installed', () => {
    let dir = '';
    const libraries = packages.filter((p) => !p.pkg.os).map((p) => p.name);
    const scripts = ['tensor-kernels.mjs', 'tensor-kernels.cjs', 'tensor-kernels-program.cjs', 'layers.mjs', 'imports.mjs', 'imports.cjs'];
    beforeAll(() => { dir = installProject(packed, libraries, scripts); }, 300_000);

    it(`the platform's prebuilt library arrives as an optional dependency of @farskip/kernels`, () => {
      const installed = existsSync(join(dir, 'node_modules', PREBUILT, 'libfarskip_cpu.so'));
      expect(installed).toBe(hasPrebuilt);
    });

    for (const runtime of RUNTIMES) {
      it(`every package loads from both module formats under ${runtime}`, () => {
        const esm = runJson<{ loaded: Record<string, number> }>(runtime, 'imports.mjs', dir, { FARSKIP_PACKAGES: libraries.join(',') }).out;
        const cjs = runJson<{ loaded: Record<string, number> }>(runtime, 'imports.cjs', dir, { FARSKIP_PACKAGES: libraries.join(',') }).out;
        expect(Object.keys(esm.loaded).sort()).toEqual([...libraries].sort());
        for (const name of libraries) {
          expect(esm.loaded[name]).toBeGreaterThan(0);
          expect(cjs.loaded[name]).toBe(esm.loaded[name]); // the same public API from require() and import
        }
      });

      for (const file of ['tensor-kernels.mjs', 'tensor-kernels.cjs']) {
        it(`tensor + kernels matmul, softmax and backward (${file}) under ${runtime}`, () => {
          const { out } = runJson<MatmulOut>(runtime, file, dir);
          expect(out.runtime).toBe(runtime);
          expect(out.format).toBe(file.endsWith('.cjs') ? 'cjs' : 'esm');
          expectMatmul(out);
          if (hasPrebuilt) {
            expect(out.backend).toBe('native');
            expect(out.library).toBe(join(dir, 'node_modules', PREBUILT, 'libfarskip_cpu.so'));
          }
        });
      }

      it(`@farskip/layers: 2-rank EP FarSkip stack, overlapped forward + backward == 1 rank under ${runtime}`, () => {
        const { out } = runJson<{ runtime: string; maxDiff: number; ranks: { forwardComms: number; backwardComms: number; overlapsInRange: boolean; gradOk: boolean }[] }>(runtime, 'layers.mjs', dir);
        expect(out.runtime).toBe(runtime);
        expect(out.maxDiff).toBeLessThan(1e-5);
        expect(out.ranks).toHaveLength(2);
        for (const r of out.ranks) {
          expect(r.forwardComms).toBeGreaterThan(0);
          expect(r.backwardComms).toBeGreaterThan(0);
          expect(r.overlapsInRange).toBe(true);
          expect(r.gradOk).toBe(true);
        }
      });
    }

    // the README that ships in each tarball shows install and a quick start: it must run as published
    for (const name of libraries) {
      it(`${name}: the README's quick start runs from the installed package`, () => {
        const readme = readFileSync(join(dir, 'node_modules', name, 'README.md'), 'utf8');
        expect(readme).toContain(`npm i ${name}`);
        const code = quickStart(readme);
        expect(code, `${name} README has no \`## Quick start\` with a js block`).toBeTruthy();
        const file = `quickstart-${name.split('/')[1]}.mjs`;
        writeFileSync(join(dir, file), code!);
        expect(runScript('node', file, dir).stdout.trim()).not.toBe('');
      });
    }

    // last: it moves the prebuilt package away (what --omit=optional or another platform leaves behind)
    it.skipIf(!hasPrebuilt)('without the prebuilt package the kernels fall back to TypeScript and say which package is missing', () => {
      const from = join(dir, 'node_modules', PREBUILT), aside = `${from}.aside`;
      renameSync(from, aside);
      try {
        const { out, stderr } = runJson<MatmulOut>('node', 'tensor-kernels.mjs', dir);
        expect(out.backend).toBe('ts');
        expectMatmul(out);
        expect(stderr).toContain(`${PREBUILT} is not installed`);
        expect(stderr).toContain('FARSKIP_NATIVE_LIB');
      } finally {
        renameSync(aside, from);
      }
    });
  });
});
