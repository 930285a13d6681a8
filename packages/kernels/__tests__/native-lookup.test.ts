// Where @farskip/kernels looks for libfarskip_cpu.so outside this repository: the prebuilt package of the
// platform (an optional dependency), resolved like any package from the kernels module, wherever npm put it.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findPrebuilt, platformPackages } from '../src/backend/native/load.js';

describe('prebuilt library lookup', () => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'farskip-lookup-')));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  // <root>/node_modules/<name>/{package.json, libfarskip_cpu.so?} and a consumer module dir beside it
  function fakePackage(name: string, withLibrary: boolean): string {
    const dir = join(root, 'node_modules', ...name.split('/'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '0.0.0', exports: { './package.json': './package.json' } }));
    if (withLibrary) writeFileSync(join(dir, 'libfarskip_cpu.so'), 'not a real library: only the lookup is tested here');
    return join(dir, 'libfarskip_cpu.so');
  }

  it('names the package by platform, cpu and libc (the npm os / cpu / libc fields)', () => {
    expect(platformPackages('linux', 'x64', 'gnu')).toEqual(['@farskip/kernels-linux-x64-gnu', '@farskip/kernels-linux-x64-musl']);
    expect(platformPackages('linux', 'arm64', 'musl')).toEqual(['@farskip/kernels-linux-arm64-musl', '@farskip/kernels-linux-arm64-gnu']);
    expect(platformPackages('darwin', 'arm64')).toEqual(['@farskip/kernels-darwin-arm64']);
    expect(platformPackages('win32', 'x64')).toEqual(['@farskip/kernels-win32-x64-msvc']);
  });

  it('resolves the installed package from a module nested anywhere below node_modules', () => {
    const lib = fakePackage('@farskip/kernels-linux-x64-gnu', true);
    const kernelsDist = join(root, 'node_modules', '@farskip', 'kernels', 'dist');
    mkdirSync(kernelsDist, { recursive: true });
    expect(findPrebuilt(kernelsDist, ['@farskip/kernels-linux-x64-gnu'])).toBe(lib);
    // the second candidate (the other libc) is tried when the first is absent
    expect(findPrebuilt(kernelsDist, ['@farskip/kernels-linux-x64-musl', '@farskip/kernels-linux-x64-gnu'])).toBe(lib);
  });

  it('returns null when no candidate is installed or the installed one lacks the library', () => {
    fakePackage('@farskip/kernels-linux-riscv64-gnu', false);
    expect(findPrebuilt(root, ['@farskip/kernels-linux-riscv64-gnu'])).toBeNull();
    expect(findPrebuilt(root, ['@farskip/kernels-darwin-arm64'])).toBeNull();
    expect(findPrebuilt(tmpdir(), ['@farskip/kernels-linux-x64-gnu'])).toBeNull();
  });
});
