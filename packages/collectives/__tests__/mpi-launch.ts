// Launching the mpi fixtures under MPICH's Hydra and Open MPI's mpirun, each with its own libmpi
// (FARSKIP_MPI_LIB), and skipping with the reason where a flavour is not installed.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Flavour {
  name: 'mpich' | 'openmpi';
  launcher: string | null;
  lib: string | null;
  args: string[];
  env: Record<string, string>;
  skip: string | false;
}

const first = (paths: string[]): string | null => paths.find((p) => existsSync(p)) ?? null;
const LIBDIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];

function flavour(name: Flavour['name']): Flavour {
  const mpich = name === 'mpich';
  const launcher = first(mpich
    ? ['/usr/bin/mpiexec.mpich', '/usr/bin/mpiexec.hydra', '/usr/local/bin/mpiexec.hydra']
    : ['/usr/bin/mpiexec.openmpi', '/usr/bin/orterun', '/usr/local/bin/orterun']);
  const lib = first(LIBDIRS.flatMap((d) => (mpich
    ? [`${d}/libmpich.so.12`]
    : [`${d}/libmpi.so.40`, `${d}/openmpi/lib/libmpi.so.40`])));
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const skip = !launcher || !lib
    ? `${name} not installed (${!launcher ? 'no launcher' : 'no library'}; apt install ${mpich ? 'mpich libmpich-dev' : 'openmpi-bin libopenmpi-dev'})`
    : false;
  return {
    name, launcher, lib, skip,
    args: mpich ? [] : ['--oversubscribe', '--bind-to', 'none', ...(root ? ['--allow-run-as-root'] : [])],
    env: { FARSKIP_MPI_LIB: lib ?? '', ...(mpich ? {} : { OMPI_MCA_btl_vader_single_copy_mechanism: 'none', OMPI_MCA_rmaps_base_oversubscribe: '1' }) },
  };
}

export const FLAVOURS: Flavour[] = [flavour('mpich'), flavour('openmpi')];

export interface RunResult { code: number | null; signal: string | null; ms: number; stdout: string; stderr: string; lines: Record<string, unknown>[]; killed: boolean }

/** mpiexec -n n node <fixture> ...args, killed (whole process group) after limitMs. */
export function runMpi(f: Flavour, n: number, fixture: string, args: string[], limitMs = 60_000, env: Record<string, string> = {}): Promise<RunResult> {
  const script = fileURLToPath(new URL(`./mpi-fixtures/${fixture}`, import.meta.url));
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(f.launcher!, [...f.args, '-n', String(n), process.execPath, script, ...args], {
      env: { ...process.env, ...f.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      killed = true;
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
    }, limitMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, signal, ms: Date.now() - t0, stdout, stderr, lines, killed });
    });
  });
}

export const distBuilt = existsSync(fileURLToPath(new URL('../dist/index.js', import.meta.url)));
