// mpi backend: koffi over libmpi (MPICH or Open MPI). initMpi() initialises MPI with MPI_THREAD_MULTIPLE and
// returns the world communicator; MPI_Finalize runs at process exit. See README.md, "mpi backend".
import type { CommunicatorOptions } from '../types.js';
import { MpiCommunicator } from './comm.js';
import { mpiState } from './work.js';
import { candidateLibraries, libraryVersion, loadMpi, mpiLoadable } from './lib.js';
import type { Flavour, MpiLib } from './lib.js';

export { MpiCommunicator } from './comm.js';
export type { MpiCommunicatorOptions } from './comm.js';

const MPI_THREAD_MULTIPLE = 3;
const THREAD_LEVELS = ['MPI_THREAD_SINGLE', 'MPI_THREAD_FUNNELED', 'MPI_THREAD_SERIALIZED', 'MPI_THREAD_MULTIPLE'];

export interface MpiInfo {
  flavour: Flavour;
  /** the shared library that was loaded */
  path: string;
  /** MPI_Get_library_version, first line */
  version: string;
}

let world: MpiCommunicator | null = null;
let lib: MpiLib | null = null;

/**
 * Whether the mpi backend can run here: a libmpi loads (FARSKIP_MPI_LIB, then libmpi.so.40 / libmpich.so.12 /
 * libmpi.so.12 / libmpi.so; under Hydra MPICH first, under Open MPI's mpirun Open MPI first). Does not
 * initialise MPI.
 */
export function mpiAvailable(): { ok: true; flavour: Flavour; path: string } | { ok: false; reason: string } {
  return mpiLoadable();
}

/** The libraries mpiAvailable()/initMpi() try, in order. */
export function mpiLibraryCandidates(): string[] {
  return candidateLibraries();
}

/**
 * MPI_Init_thread(MPI_THREAD_MULTIPLE) (once per process; an error if the library provides less) and the world
 * communicator (rank and size from MPI_COMM_WORLD, errors returned rather than fatal). Later calls return the
 * same communicator until it is destroyed. MPI_Finalize is registered for process exit.
 */
export function initMpi(options: CommunicatorOptions = {}): MpiCommunicator {
  if (world && !world.isDestroyed) return world;
  if (mpiState.finalized) throw new Error('mpi backend: MPI was already finalized in this process');
  const l = loadMpi();
  lib = l;
  const f = l.fn;
  const flag = [0];
  f.MPI_Initialized!(flag);
  const provided = [0];
  if (!flag[0]) {
    const rc = f.MPI_Init_thread!(null, null, MPI_THREAD_MULTIPLE, provided) as number;
    if (rc !== 0) throw new Error(`mpi backend: MPI_Init_thread failed with code ${rc} (${l.path})`);
    process.on('exit', finalizeAtExit);
  } else {
    f.MPI_Query_thread!(provided);
  }
  if (provided[0]! < MPI_THREAD_MULTIPLE) {
    throw new Error(`mpi backend: ${l.path} provides ${THREAD_LEVELS[provided[0]!] ?? provided[0]} but the backend needs ` +
      'MPI_THREAD_MULTIPLE (MPI_Wait runs on worker threads while the main thread issues operations); use an MPI ' +
      'built with thread support (Debian/Ubuntu mpich and openmpi are)');
  }
  f.MPI_Comm_set_errhandler!(l.h.commWorld, l.h.errorsReturn);
  const r = [0];
  const s = [0];
  f.MPI_Comm_rank!(l.h.commWorld, r);
  f.MPI_Comm_size!(l.h.commWorld, s);
  world = new MpiCommunicator(l, l.h.commWorld, r[0]!, s[0]!, 'world', options, true);
  return world;
}

/** Library flavour, path and version (after initMpi or mpiAvailable loaded it). */
export function mpiInfo(): MpiInfo {
  const l = lib ?? loadMpi();
  return { flavour: l.flavour, path: l.path, version: libraryVersion(l) };
}

/** MPI_Abort(MPI_COMM_WORLD, code): ends every rank of the job (use after a timeout). */
export function abortMpi(code = 1): never {
  const l = lib ?? loadMpi();
  l.fn.MPI_Abort!(l.h.commWorld, code);
  process.exit(code);
}

function finalizeAtExit(code: number): void {
  if (!lib || mpiState.finalized) return;
  const fin = [0];
  lib.fn.MPI_Finalized!(fin);
  if (fin[0]) return;
  mpiState.finalized = true;
  // A rank leaving with an error, or with an MPI_Wait still blocked (a timed-out operation: MPI_Finalize and
  // libuv's thread-pool shutdown would both wait for it forever), ends the whole job: MPI_Abort, so the launcher
  // reports the failure and the other ranks do not hang in their next collective.
  if (code !== 0 || mpiState.inFlight > 0) {
    lib.fn.MPI_Abort!(lib.h.commWorld, code || 1);
    return;
  }
  lib.fn.MPI_Finalize!();
}
