#!/usr/bin/env node
// farskip-launch -n N [--backend threads|mpi|nccl|rccl] <script> [args...]
// Under an mpirun environment (each process is already one rank) it runs the script in-process as that rank.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch, underMpirun } from './launch/index.js';
import type { Backend } from './launch/index.js';

const USAGE = 'usage: farskip-launch -n N [--backend threads|mpi|nccl|rccl] <script.mjs> [args...]';

async function main(argv: string[]): Promise<number> {
  let n: number | undefined;
  let backend: Backend = (process.env.FARSKIP_BACKEND as Backend | undefined) ?? 'threads';
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-n' || a === '--nproc' || a === '--world') n = Number(argv[++i]);
    else if (a.startsWith('-n') && a.length > 2) n = Number(a.slice(2));
    else if (a === '--backend' || a === '-b') backend = argv[++i] as Backend;
    else if (a.startsWith('--backend=')) backend = a.slice(10) as Backend;
    else if (a === '-h' || a === '--help') { console.log(USAGE); return 0; }
    else if (a.startsWith('-')) { console.error(`farskip-launch: unknown option ${a}\n${USAGE}`); return 2; }
    else break;
  }
  const script = argv[i];
  if (!script) { console.error(USAGE); return 2; }
  if (underMpirun()) {
    // already one rank of an mpirun job: be that rank
    process.env.FARSKIP_BACKEND = 'mpi';
    process.argv = [process.argv[0]!, resolve(script), ...argv.slice(i + 1)];
    await import(pathToFileURL(resolve(script)).href);
    return 0;
  }
  if (!Number.isInteger(n) || n! < 1) { console.error(`farskip-launch: -n must be a positive integer\n${USAGE}`); return 2; }
  const results = await launch({ world: n!, backend, script, args: argv.slice(i + 1) });
  for (const r of results) if (r.error) console.error(`[rank ${r.rank}] ${r.error.name}: ${r.error.message}`);
  return results.find((r) => r.exitCode !== 0)?.exitCode ?? 0;
}

main(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 1; });
