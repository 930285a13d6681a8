// How a launched script gets its world communicator without knowing how it was launched: the threads launcher
// leaves this rank's bootstrap on globalThis (process.env is per process, so worker-thread ranks cannot be told
// apart through it alone); child-process launchers set FARSKIP_BACKEND, RANK, WORLD_SIZE, FARSKIP_RDZV. The mpi
// and nccl backends plug in with registerCommunicatorFactory('mpi', ...) at module load.
import { envVar as env } from '../env.js';
import type { Communicator } from '../types.js';
import { ThreadsCommunicator } from '../threads/communicator.js';
import type { ThreadsBootstrap, ThreadsOptions } from '../threads/communicator.js';
import { createThreadsWorld } from '../threads/world.js';

export const THREADS_BOOT_KEY = Symbol.for('farskip.collectives.threadsBoot');
const WORLD_KEY = Symbol.for('farskip.collectives.threadsWorld');

export type Backend = 'threads' | 'mpi' | 'nccl' | 'rccl';
export interface InitOptions extends ThreadsOptions {
  /** default: the backend the launcher used (FARSKIP_BACKEND), 'mpi' under mpirun/mpiexec, else 'threads' */
  backend?: Backend | string;
  [k: string]: unknown;
}
export type CommunicatorFactory = (options: InitOptions) => Promise<Communicator> | Communicator;

const factories = new Map<string, CommunicatorFactory>();

/** For backends: makes initCommunicator({ backend: name }) (and launched ranks of that backend) use `factory`. */
export function registerCommunicatorFactory(name: string, factory: CommunicatorFactory): void {
  factories.set(name, factory);
}

type G = Record<symbol, unknown>;

function threadsBoot(): ThreadsBootstrap | undefined {
  return (globalThis as G)[THREADS_BOOT_KEY] as ThreadsBootstrap | undefined;
}

/**
 * The world communicator of this rank for the backend it was launched with. Under the threads launcher every
 * call in one rank returns the same communicator; run directly (no launcher) it is a 1-rank threads world.
 */
export async function initCommunicator(options: InitOptions = {}): Promise<Communicator> {
  // started by mpirun/mpiexec directly (no farskip-launch): the world is MPI's
  const backend = options.backend ?? env('FARSKIP_BACKEND') ?? (underMpirun() && !threadsBoot() ? 'mpi' : 'threads');
  if (backend !== 'threads') {
    const f = factories.get(backend);
    if (!f) throw new Error(`initCommunicator: backend '${backend}' is not available in this build (registered: threads${[...factories.keys()].map((k) => ', ' + k).join('')})`);
    return f(options);
  }
  const g = globalThis as G;
  const existing = g[WORLD_KEY] as ThreadsCommunicator | undefined;
  if (existing) return existing;
  const boot = threadsBoot();
  const c = boot ? ThreadsCommunicator.fromBootstrap(boot, options) : createThreadsWorld(1, options)[0]!;
  g[WORLD_KEY] = c;
  return c;
}

function firstInt(...names: string[]): number | undefined {
  for (const n of names) {
    const v = env(n);
    if (v !== undefined && v !== '' && Number.isInteger(Number(v))) return Number(v);
  }
  return undefined;
}

/** This rank's index in the launched world (threads launcher, RANK, or an mpirun environment); 0 otherwise. */
export function worldRank(): number {
  return threadsBoot()?.worldRank ?? firstInt('RANK', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK', 'PMIX_RANK') ?? 0;
}
export function worldSize(): number {
  return threadsBoot()?.worldSize ?? firstInt('WORLD_SIZE', 'OMPI_COMM_WORLD_SIZE', 'PMI_SIZE') ?? 1;
}
/** True when this process was started by mpirun/mpiexec (Open MPI, MPICH/Hydra, PMIx). */
export function underMpirun(): boolean {
  return firstInt('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_RANK') !== undefined;
}
