// native/cuda: kernels.json must list exactly the kernels of native/cuda/src (checked on every machine, no nvcc
// needed); where nvcc is installed, tooling/build-cuda.mjs must produce one fatbin holding sm_80 / sm_90 SASS and
// compute_90 PTX with exactly those kernels. The build is cached (rebuilt only when a source is newer), so a
// repeated run costs a second. CI machines have no nvcc: the build part is skipped there. Numerics need a GPU and
// run in tooling/device/check.sh.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-ignore -- plain ESM tooling script without type declarations
import { listFatbin } from '../tooling/fatbin.mjs';

interface Image { kind: string; arch: string; bytes: number; compressed: boolean; kernels: string[] }

const root = fileURLToPath(new URL('..', import.meta.url));
const script = `${root}tooling/build-cuda.mjs`;
const fatbin = `${root}native/cuda/build/farskip_cuda.fatbin`;
const nvcc = process.env.NVCC || 'nvcc';
const hasNvcc = !spawnSync(nvcc, ['--version']).error;
const manifest = JSON.parse(readFileSync(`${root}native/cuda/kernels.json`, 'utf8')) as { kernels: { name: string }[] };
const names = manifest.kernels.map((k) => k.name).sort();

describe('native/cuda kernels', () => {
  it('kernels.json matches the extern "C" __global__ kernels of the sources', () => {
    const out = execFileSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
    expect(out).toMatch(new RegExp(`matches the sources \\(${names.length} kernels\\)`));
    expect(new Set(names).size).toBe(names.length);
  });

  it.skipIf(!hasNvcc)('builds one fatbin with sm_80 / sm_90 SASS and compute_90 PTX of every kernel (needs nvcc)', () => {
    const out = execFileSync(process.execPath, [script], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
    expect(out).toMatch(/up to date|no warnings/);
    expect(existsSync(fatbin)).toBe(true);
    const images = listFatbin(readFileSync(fatbin)) as Image[];
    const summary = images.map((im) => `${im.kind} ${im.arch}`).sort();
    expect(summary).toEqual(['elf sm_80', 'elf sm_90', 'ptx sm_90']);
    for (const im of images) expect(im.kernels, `${im.kind} ${im.arch}`).toEqual(names);
  }, 600_000);
});

if (!hasNvcc) console.log(`[cuda-build.test] nvcc not found: the fatbin build check is skipped (manifest check still runs)`);
