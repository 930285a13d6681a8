#!/usr/bin/env node
// release.mjs (`npm run release`): build, test, then `changeset publish` of every non-private @farskip package.
// A dry run unless --publish is given: npm packs each package (prepack checks included) and reports what it would
// upload, and nothing leaves the machine. CI never publishes: --publish is refused when CI is set.
//
//   npm run release                          build, test, changeset publish --dry-run
//   npm run release -- --skip-tests          (the tests already ran, e.g. in CI)
//   npm run release -- --publish             for real, from a maintainer's machine after `changeset version`
//
// The flow: contributors add changesets (`npx changeset`); a maintainer runs `npx changeset version` (one
// version for the whole fixed group, CHANGELOG.md per package), commits, then `npm run release -- --publish`.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const known = new Set(['--publish', '--skip-tests', '--skip-build']);
for (const a of args) {
  if (!known.has(a)) fail(`unknown option ${a}; expected any of ${[...known].join(', ')}`);
}
const publish = args.has('--publish');

function fail(msg) {
  console.error(`[release] ${msg}`);
  process.exit(1);
}

function step(title, cmd, argv, env = {}) {
  console.log(`\n[release] ${title}: ${cmd} ${argv.join(' ')}`);
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) fail(`${title} failed (exit ${r.status ?? r.signal}); nothing was published`);
}

if (publish && process.env.CI) fail('--publish is refused in CI (CI is set): CI only ever does the dry run');
if (publish) {
  const dirty = spawnSync('git', ['status', '--porcelain'], { cwd: root, encoding: 'utf8' }).stdout.trim();
  if (dirty) fail('the working tree has uncommitted changes: commit the `changeset version` result first');
}
const pending = readdirSync(path.join(root, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md');
if (pending.length) {
  const msg = `${pending.length} changeset(s) not yet applied (${pending.join(', ')}): \`npx changeset version\` turns them into versions and changelogs`;
  if (publish) fail(msg);
  console.log(`[release] note: ${msg}; the dry run publishes the current versions`);
}

if (!args.has('--skip-build')) step('build', 'npm', ['run', 'build']);
if (!args.has('--skip-tests')) step('test', 'npm', ['test']);
// changeset publish runs `npm publish` per package; npm_config_dry_run makes every one of them a dry run
// (pack + report, no upload). Only the real release tags the commit (<name>@<version> per package).
if (publish) step('publish', 'npx', ['changeset', 'publish']);
else step('publish (dry run)', 'npx', ['changeset', 'publish', '--no-git-tag'], { npm_config_dry_run: 'true' });
console.log(publish ? '\n[release] published' : '\n[release] dry run complete: nothing was uploaded');
