// Packing the publishable workspaces and installing the tarballs into a fresh project outside the repository,
// the way a downstream team gets them: `npm pack`, then `npm install <tarballs>` with no workspace links.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const RUNTIMES = ['node', 'bun', 'deno'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export interface PackageJson { name: string; version: string; private?: boolean; os?: string[] }
export interface Packed { name: string; dir: string; tarball: string; files: string[]; pkg: PackageJson }

/** Every package under packages/ that is not private: what `changeset publish` would publish. */
export function publishablePackages(): { name: string; dir: string; pkg: PackageJson }[] {
  return readdirSync(join(root, 'packages')).sort().flatMap((d) => {
    const dir = join(root, 'packages', d);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
    return pkg.private ? [] : [{ name: pkg.name, dir, pkg }];
  });
}

/** `npm pack` of every publishable package into `dest` (prepack checks run: built dist, LICENSE, the binary). */
export function packAll(dest: string): Packed[] {
  const pkgs = publishablePackages();
  const args = ['pack', '--json', '--pack-destination', dest, ...pkgs.flatMap((p) => ['-w', p.name])];
  const out = execFileSync('npm', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  // prepack scripts print to the same stdout: the report is the array that starts on a line of its own
  const start = out.search(/^\[\s*$/m);
  if (start < 0) throw new Error(`npm pack printed no JSON report:\n${out}`);
  const reports = JSON.parse(out.slice(start)) as { name: string; filename: string; files: { path: string }[] }[];
  return reports.map((r) => {
    const p = pkgs.find((x) => x.name === r.name)!;
    return { name: r.name, dir: p.dir, pkg: p.pkg, tarball: join(dest, r.filename), files: r.files.map((f) => f.path) };
  });
}

const bin = (name: string): string => join(root, 'node_modules', '.bin', name);

const scratchDirs: string[] = [];
/** A new directory in the system temp directory, removed by removeScratch() (kept with FARSKIP_KEEP_CONSUMER=1). */
export function scratch(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `farskip-${prefix}-`));
  scratchDirs.push(dir);
  return dir;
}
export function removeScratch(): void {
  if (process.env.FARSKIP_KEEP_CONSUMER === '1') return console.log(`[consumer] kept ${scratchDirs.join(' ')}`);
  for (const d of scratchDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/**
 * A fresh project in the system temp directory that depends on `wanted` (package names) as tarballs, installed by
 * npm or by Bun's own package manager.
 * `overrides` pins every @farskip package (the dependencies of the wanted ones) to its tarball too, so nothing
 * is fetched from the registry under our names; third-party dependencies come from npm's cache or registry.
 */
export function installProject(packed: Packed[], wanted: string[], scripts: string[], installer: 'npm' | 'bun' = 'npm'): string {
  const dir = scratch('consumer');
  const spec = (name: string): string => `file:${packed.find((p) => p.name === name)!.tarball}`;
  const dependencies = Object.fromEntries(wanted.map((n) => [n, spec(n)]));
  const overrides = Object.fromEntries(packed.map((p) => [p.name, spec(p.name)]));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'farskip-consumer', private: true, version: '1.0.0', dependencies, overrides }, null, 2));
  // Bun's installer runs no dependency's install script unless the project trusts it (npm runs them all)
  if (installer === 'bun') execFileSync(bin('bun'), ['install', '--no-progress'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
  else execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
  // a bare name is a script of tests/consumer; a path is relative to the repository (copied under its base name)
  for (const s of scripts) copyFileSync(s.includes('/') ? join(root, s) : join(root, 'tests', 'consumer', s), join(dir, basename(s)));
  return dir;
}

export function command(runtime: Runtime, file: string): string[] {
  if (runtime === 'node') return [process.execPath, file];
  if (runtime === 'bun') return [bin('bun'), file];
  return [bin('deno'), 'run', '-A', '--quiet', file];
}

/** Runs `file` in `cwd` under `runtime`; returns stdout and stderr (warnings). Throws, with both, on failure. */
export function runScript(runtime: Runtime, file: string, cwd: string, env: Record<string, string> = {}): { stdout: string; stderr: string } {
  const [cmd, ...args] = command(runtime, file);
  const res = spawnSync(cmd!, args, { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 120_000 });
  if (res.status !== 0) throw new Error(`${runtime} ${file} exited with ${res.status ?? res.signal}:\n${res.stdout}\n${res.stderr}`);
  return { stdout: res.stdout, stderr: res.stderr };
}

/** runScript, then the last JSON line it printed. */
export function runJson<T>(runtime: Runtime, file: string, cwd: string, env: Record<string, string> = {}): { out: T; stderr: string } {
  const { stdout, stderr } = runScript(runtime, file, cwd, env);
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`${runtime} ${file} printed no JSON line:\n${stdout}\n${stderr}`);
  return { out: JSON.parse(line) as T, stderr };
}

/** The one ```js block under a README's "## Quick start" heading, or null. */
export function quickStart(readme: string): string | null {
  const section = /^## Quick start\s*$([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(readme)?.[1];
  return section ? (/^```js\n([\s\S]*?)^```/m.exec(section)?.[1] ?? null) : null;
}
