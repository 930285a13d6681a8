#!/usr/bin/env node
// prepack.mjs: npm runs this in a package's directory before `npm pack` / `npm publish` (and so before
// `changeset publish`). It refuses to pack a package that would not work once installed:
//   - every file named by exports / main / module / types / bin must exist (run the build first);
//   - a prebuilt-library package (one with an `os` field) must hold an ELF shared library for its `cpu`, needing
//     no glibc newer than GLIBC_FLOOR (what its README promises);
// and it copies the repository's LICENSE into the package (npm ships LICENSE from the package directory only).
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const GLIBC_FLOOR = '2.34';
const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 };

function fail(pkgName, msg) {
  console.error(`[prepack] ${pkgName}: ${msg}`);
  process.exit(1);
}

/** Paths a consumer's resolver can reach: the leaves of exports plus main/module/types/bin. */
export function declaredFiles(pkg) {
  const out = new Set();
  const walk = (v) => {
    if (typeof v === 'string') out.add(v);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  walk(pkg.exports);
  for (const k of ['main', 'module', 'types']) if (pkg[k]) out.add(pkg[k]);
  walk(pkg.bin);
  return [...out].filter((p) => !p.includes('*'));
}

const versionKey = (v) => { const [a = 0, b = 0, c = 0] = v.split('.').map(Number); return (a * 1000 + b) * 1000 + c; };

/** Checks a prebuilt shared library; returns an error message or null. */
export function checkSharedLibrary(file, cpu) {
  if (!existsSync(file)) return `${path.basename(file)} is missing: build it with \`node tooling/build-native.mjs\` on a ${cpu} machine`;
  const bytes = readFileSync(file);
  if (bytes.readUInt32BE(0) !== 0x7f454c46) return `${file} is not an ELF file`;
  if (bytes[4] !== 2) return `${file} is not a 64-bit ELF file`;
  if (bytes.readUInt16LE(16) !== 3) return `${file} is not a shared library (ELF type ${bytes.readUInt16LE(16)})`;
  const machine = bytes.readUInt16LE(18);
  if (machine !== ELF_MACHINE[cpu]) return `${file} is built for ELF machine 0x${machine.toString(16)}, not ${cpu}`;
  // the version-need names live in .dynstr as plain strings: the newest GLIBC_x.y is what the loader will demand
  const needed = [...new Set(bytes.toString('latin1').match(/GLIBC_\d+\.\d+(\.\d+)?/g) ?? [])].map((s) => s.slice(6));
  const newest = needed.sort((a, b) => versionKey(a) - versionKey(b)).pop();
  if (newest && versionKey(newest) > versionKey(GLIBC_FLOOR)) {
    return `${file} needs GLIBC_${newest}, newer than the GLIBC_${GLIBC_FLOOR} its README promises: build it on an older distribution (or raise the promise in README and tooling/prepack.mjs)`;
  }
  return null;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.cwd();
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  if (pkg.os) {
    for (const cpu of pkg.cpu ?? []) {
      const err = checkSharedLibrary(path.join(dir, 'libfarskip_cpu.so'), cpu);
      if (err) fail(pkg.name, err);
    }
  }
  const missing = declaredFiles(pkg).filter((f) => !existsSync(path.join(dir, f)));
  if (missing.length) fail(pkg.name, `${missing.join(', ')} missing: run \`npm run build\` at the repository root before packing`);
  copyFileSync(path.join(root, 'LICENSE'), path.join(dir, 'LICENSE'));
}
