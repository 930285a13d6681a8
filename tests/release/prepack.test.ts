// tooling/prepack.mjs, the gate every `npm pack` / `npm publish` of a package passes: the files a consumer's
// resolver reaches must exist, and a prebuilt-library package must hold a shared library for its cpu that needs
// no newer glibc than its README promises.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain .mjs tooling without declarations
import { checkSharedLibrary, declaredFiles, GLIBC_FLOOR } from '../../tooling/prepack.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const lib = join(root, 'packages', 'kernels-linux-x64-gnu', 'libfarskip_cpu.so');
const onX64 = process.platform === 'linux' && process.arch === 'x64' && existsSync(lib);

describe('prepack checks', () => {
  it('lists every path a resolver can reach: exports leaves, main, module, types, bin', () => {
    const pkg = {
      exports: { '.': { import: { types: './dist/index.d.ts', default: './dist/index.js' }, require: { types: './dist/index.d.cts', default: './dist/index.cjs' } }, './package.json': './package.json' },
      main: './dist/index.cjs', types: './dist/index.d.cts', bin: { tool: './dist/cli.js' },
    };
    expect((declaredFiles(pkg) as string[]).sort()).toEqual(['./dist/cli.js', './dist/index.cjs', './dist/index.d.cts', './dist/index.d.ts', './dist/index.js', './package.json']);
  });

  it.skipIf(!onX64)('accepts the library built here and rejects a missing, foreign, non-ELF or too-new one', () => {
    expect(GLIBC_FLOOR).toBe('2.34');
    expect(checkSharedLibrary(lib, 'x64')).toBeNull();
    expect(checkSharedLibrary(lib, 'arm64')).toMatch(/ELF machine 0x3e, not arm64/);
    const dir = mkdtempSync(join(tmpdir(), 'farskip-prepack-'));
    expect(checkSharedLibrary(join(dir, 'libfarskip_cpu.so'), 'x64')).toMatch(/missing: build it/);
    writeFileSync(join(dir, 'text.so'), 'not a library at all');
    expect(checkSharedLibrary(join(dir, 'text.so'), 'x64')).toMatch(/not an ELF file/);
    // the same library demanding a newer glibc symbol version than the README promises
    const newer = join(dir, 'newer.so');
    copyFileSync(lib, newer);
    writeFileSync(newer, Buffer.concat([readFileSync(newer), Buffer.from('\0GLIBC_2.41\0')]));
    expect(checkSharedLibrary(newer, 'x64')).toMatch(/needs GLIBC_2\.41, newer than the GLIBC_2\.34/);
    rmSync(dir, { recursive: true, force: true });
  });
});
