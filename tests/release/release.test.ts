// The release flow a maintainer runs: `changeset version` over this repository's pending changesets (one version
// for the whole fixed @farskip group, internal dependency ranges and CHANGELOG.md files updated), and
// tooling/release.mjs (build, test, `changeset publish` as an npm dry run; never a real publish from CI).
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishablePackages, root } from '../consumer/project.js';

const changesetBin = join(root, 'node_modules', '@changesets', 'cli', 'bin.js');
const workspaceDirs = ['packages', 'apps'].flatMap((d) => readdirSync(join(root, d)).map((p) => join(d, p))).filter((d) => existsSync(join(root, d, 'package.json')));
const readJson = (p: string): Record<string, any> => JSON.parse(readFileSync(p, 'utf8'));

interface Changeset { file: string; bumps: Record<string, 'major' | 'minor' | 'patch'>; summary: string }
function pendingChangesets(): Changeset[] {
  const dir = join(root, '.changeset');
  return readdirSync(dir).filter((f) => f.endsWith('.md') && f !== 'README.md').map((file) => {
    const text = readFileSync(join(dir, file), 'utf8');
    const m = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(text);
    if (!m) throw new Error(`.changeset/${file}: no front matter`);
    const bumps = Object.fromEntries(m[1]!.split('\n').filter(Boolean).map((l) => {
      const [, name, kind] = /^"([^"]+)":\s*(major|minor|patch)\s*$/.exec(l) ?? [];
      if (!name) throw new Error(`.changeset/${file}: cannot read "${l}"`);
      return [name, kind as 'major' | 'minor' | 'patch'];
    }));
    return { file, bumps, summary: m[2]!.trim() };
  });
}

// Independent of changesets: the fixed group moves together by the largest bump any pending changeset asks for.
function expectedVersion(current: string, sets: Changeset[]): string {
  const rank = { patch: 0, minor: 1, major: 2 } as const;
  const top = sets.flatMap((s) => Object.values(s.bumps)).reduce((a, b) => (rank[b] > rank[a] ? b : a), 'patch' as 'patch' | 'minor' | 'major');
  const [maj, min, pat] = current.split('.').map(Number) as [number, number, number];
  if (top === 'major') return maj === 0 ? `0.${min + 1}.0` : `${maj + 1}.0.0`; // 0.x: a breaking change is a minor
  if (top === 'minor') return `${maj}.${min + 1}.0`;
  return `${maj}.${min}.${pat + 1}`;
}

describe('changeset version on the pending changesets', () => {
  const sets = pendingChangesets();
  const current = readJson(join(root, 'packages', 'tensor', 'package.json')).version as string;
  const want = expectedVersion(current, sets);
  let dir = '';
  beforeAll(() => {
    // a copy holding what `changeset version` reads and writes: the workspace manifests and .changeset
    dir = mkdtempSync(join(tmpdir(), 'farskip-version-'));
    cpSync(join(root, 'package.json'), join(dir, 'package.json'));
    cpSync(join(root, '.changeset'), join(dir, '.changeset'), { recursive: true });
    for (const w of workspaceDirs) {
      mkdirSync(join(dir, w), { recursive: true });
      cpSync(join(root, w, 'package.json'), join(dir, w, 'package.json'));
    }
    execFileSync(process.execPath, [changesetBin, 'version'], { cwd: dir, stdio: 'pipe', env: { ...process.env, CI: 'true' } });
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('there is a changeset describing the initial release, and every changeset names only real packages', () => {
    expect(sets.some((s) => /first release/i.test(s.summary))).toBe(true);
    const names = new Set(workspaceDirs.map((w) => readJson(join(root, w, 'package.json')).name));
    for (const s of sets) for (const n of Object.keys(s.bumps)) expect(names, `${s.file} names ${n}`).toContain(n);
  });

  it('bumps every @farskip package, published or private, to one version', () => {
    expect(sets.length).toBeGreaterThan(0);
    for (const w of workspaceDirs) expect(readJson(join(dir, w, 'package.json')).version, w).toBe(want);
  });

  it('moves the internal dependency pins (the prebuilt library package included) with it', () => {
    for (const w of workspaceDirs) {
      const pkg = readJson(join(dir, w, 'package.json'));
      for (const field of ['dependencies', 'optionalDependencies', 'devDependencies']) {
        for (const [name, range] of Object.entries((pkg[field] ?? {}) as Record<string, string>)) {
          if (name.startsWith('@farskip/')) expect(range, `${w} ${field} ${name}`).toBe(want);
        }
      }
    }
    expect(readJson(join(dir, 'packages', 'kernels', 'package.json')).optionalDependencies).toEqual({ '@farskip/kernels-linux-x64-gnu': want });
  });

  it('writes each package a CHANGELOG.md with the summaries that name it, and consumes the changesets', () => {
    for (const w of workspaceDirs) {
      const pkg = readJson(join(root, w, 'package.json'));
      const log = readFileSync(join(dir, w, 'CHANGELOG.md'), 'utf8');
      expect(log.startsWith(`# ${pkg.name}\n\n## ${want}\n`), w).toBe(true);
      for (const s of sets.filter((x) => pkg.name in x.bumps)) expect(log, `${w} lacks ${s.file}`).toContain(s.summary.split('\n')[0]);
    }
    expect(readdirSync(join(dir, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md')).toEqual([]);
  });
});

describe('tooling/release.mjs', () => {
  const release = join(root, 'tooling', 'release.mjs');
  const run = (args: string[], env: Record<string, string | undefined>) =>
    spawnSync(process.execPath, [release, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env }, timeout: 240_000 });

  it('refuses a real publish in CI and unknown options, before doing anything', () => {
    const ci = run(['--publish'], { CI: 'true' });
    expect(ci.status).toBe(1);
    expect(ci.stderr).toContain('--publish is refused in CI');
    const bad = run(['--dry'], {});
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('unknown option --dry');
  });

  // `changeset publish` asks the npm registry which versions exist: this needs the registry (CI has it)
  const registry = spawnSync('npm', ['ping'], { encoding: 'utf8', timeout: 20_000 }).status === 0;
  const built = existsSync(join(root, 'packages', 'kernels', 'dist', 'index.js')) && existsSync(join(root, 'packages', 'kernels-linux-x64-gnu', 'libfarskip_cpu.so'));
  if (!registry) console.warn('[release.test] npm registry unreachable: the publish dry run is skipped');
  it.skipIf(!registry || !built)('the publish step is an npm dry run of every published package (prepack checks included)', () => {
    const r = run(['--skip-build', '--skip-tests'], { CI: 'true' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const out = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, ''); // changesets colours its log regardless
    for (const { pkg } of publishablePackages()) expect(out).toContain(`Publishing "${pkg.name}" at "${pkg.version}"`);
    expect(out).not.toContain('@farskip/trainer');
    expect(out).toContain('dry run complete: nothing was uploaded');
  }, 240_000);
});
