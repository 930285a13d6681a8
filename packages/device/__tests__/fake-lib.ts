// Builds fixtures/fake_cuda.c (a fake libcuda + libcublas, see its header) once per test file with the system C
// compiler. Tests that need it skip, saying why, when there is no compiler.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cc: string | null = null;
try { execFileSync('cc', ['--version'], { stdio: 'ignore' }); cc = 'cc'; } catch { /* no compiler */ }
export const haveCompiler = cc !== null;
export const noCompilerReason = cc ? '' : '(skipped: no C compiler `cc` to build the fake driver)';

let built: string | null = null;
/** Path of the compiled fake library (the same file serves as libcuda and libcublas). */
export function fakeLib(): string {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'farskip-fake-cuda-'));
  const out = join(dir, 'libfake_cuda.so');
  execFileSync(cc!, ['-shared', '-fPIC', '-O1', '-o', out, fileURLToPath(new URL('./fixtures/fake_cuda.c', import.meta.url))]);
  built = out;
  return out;
}
