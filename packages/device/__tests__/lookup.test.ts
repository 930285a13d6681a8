// Library lookup order and its errors: the environment override wins (and a bad one is the error, never a silent
// fallback), a pip-wheel layout under VIRTUAL_ENV is found, and a failed search names every place it looked and the
// variable to set.
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { candidateFiles, LIBRARIES, LibraryNotFoundError, loadLib, loadLibrary, type LibrarySpec } from '../src/lookup.js';
import { fakeLib, haveCompiler, noCompilerReason } from './fake-lib.js';

const saved = { ...process.env };
afterEach(() => {
  for (const k of ['FARSKIP_CUDA_LIB', 'FARSKIP_CUBLAS_LIB', 'FARSKIP_TEST_FAKE_LIB', 'VIRTUAL_ENV']) {
    if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
  }
});

const testSpec = (): LibrarySpec => ({
  env: 'FARSKIP_TEST_FAKE_LIB', label: 'the test library', sonames: ['libfarskip_no_such_lib.so.7'],
  wheel: ['nvidia/fakelib/lib/libfarskip_no_such_lib.so.7'], dirs: () => ['/nonexistent-farskip-dir'],
  fix: 'install nothing',
});

describe('library lookup', () => {
  it.skipIf(!haveCompiler)(`the environment override wins ${noCompilerReason}`, () => {
    process.env.FARSKIP_CUDA_LIB = fakeLib();
    expect(loadLib('cuda').path).toBe(fakeLib());
    process.env.FARSKIP_CUBLAS_LIB = fakeLib();
    expect(loadLib('cublas').path).toBe(fakeLib());
  });

  it('a bad override is the error (no fallback), naming the variable and the fix', () => {
    process.env.FARSKIP_CUDA_LIB = '/nonexistent/libcuda.so.1';
    let err: unknown;
    try { loadLib('cuda'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(LibraryNotFoundError);
    expect((err as Error).message).toMatch(/^the CUDA driver library from FARSKIP_CUDA_LIB=\/nonexistent\/libcuda\.so\.1 failed to load: .*Fix the path or unset FARSKIP_CUDA_LIB\.$/);
  });

  it('a failed search lists the override, the sonames, the wheel and directory candidates, and what to set', () => {
    const venv = mkdtempSync(join(tmpdir(), 'farskip-venv-'));
    mkdirSync(join(venv, 'lib/python3.11/site-packages'), { recursive: true });
    process.env.VIRTUAL_ENV = venv;
    let err: LibraryNotFoundError | undefined;
    try { loadLibrary(testSpec()); } catch (e) { err = e as LibraryNotFoundError; }
    expect(err).toBeInstanceOf(LibraryNotFoundError);
    expect(err!.env).toBe('FARSKIP_TEST_FAKE_LIB');
    const m = err!.message;
    expect(m).toContain('the test library library not found. Searched: FARSKIP_TEST_FAKE_LIB (unset); libfarskip_no_such_lib.so.7 (');
    expect(m).toContain(`${venv}/lib/python3.11/site-packages/nvidia/fakelib/lib/libfarskip_no_such_lib.so.7 (absent)`);
    expect(m).toContain('/nonexistent-farskip-dir/libfarskip_no_such_lib.so.7 (absent)');
    expect(m).toMatch(/To fix: install nothing, or set FARSKIP_TEST_FAKE_LIB=\/path\/to\/libfarskip_no_such_lib\.so\.7\.$/);
  });

  it.skipIf(!haveCompiler)(`finds a pip wheel layout under VIRTUAL_ENV's site-packages ${noCompilerReason}`, () => {
    const venv = mkdtempSync(join(tmpdir(), 'farskip-venv-'));
    const dir = join(venv, 'lib/python3.12/site-packages/nvidia/fakelib/lib');
    mkdirSync(dir, { recursive: true });
    copyFileSync(fakeLib(), join(dir, 'libfarskip_no_such_lib.so.7'));
    process.env.VIRTUAL_ENV = venv;
    expect(loadLibrary(testSpec()).path).toBe(join(dir, 'libfarskip_no_such_lib.so.7'));
  });

  it('searches cuBLAS in cu12 then cu13 wheels, torch/lib and the CUDA toolkit directories', () => {
    const venv = mkdtempSync(join(tmpdir(), 'farskip-venv-'));
    mkdirSync(join(venv, 'lib/python3.10/site-packages'), { recursive: true });
    process.env.VIRTUAL_ENV = venv;
    const files = candidateFiles(LIBRARIES.cublas);
    const sp = join(venv, 'lib/python3.10/site-packages');
    expect(files.slice(0, 4)).toEqual([
      join(sp, 'nvidia/cublas/lib/libcublas.so.12'), join(sp, 'nvidia/cublas/lib/libcublas.so.13'),
      join(sp, 'nvidia/cu13/lib/libcublas.so.13'), join(sp, 'torch/lib/libcublas.so.12'),
    ]);
    expect(files).toContain('/usr/local/cuda/lib64/libcublas.so.12');
    expect(LIBRARIES.cublasLt.env).toBe('FARSKIP_CUBLASLT_LIB');
    expect(LIBRARIES.hip.env).toBe('FARSKIP_HIP_LIB');
    expect(LIBRARIES.hipblas.env).toBe('FARSKIP_HIPBLAS_LIB');
  });
});
