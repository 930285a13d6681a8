// Loading libmpi with koffi and the handle table that hides the two ABIs.
//
// MPICH (libmpich.so.12 / libmpi.so.12) encodes every handle as a 32-bit int constant (MPI_COMM_WORLD =
// 0x44000000, MPI_FLOAT = 0x4c00040a, ...: values from mpich/mpi.h). Open MPI (libmpi.so.40) makes a handle the
// ADDRESS of an exported global (MPI_COMM_WORLD = &ompi_mpi_comm_world), so MPI_Comm, MPI_Datatype, MPI_Op and
// MPI_Request are pointers there. We detect the flavour by the presence of the `ompi_mpi_comm_world` symbol
// and bind every function with the handle type of that flavour ('int' or 'intptr_t').
//
// koffi's async calls (our MPI_Wait) run on libuv threads with koffi's own stacks; MPICH's MPI_Wait overflows
// koffi's 128 KiB default, so this module raises async_stack_size to 1 MiB when it is imported. koffi refuses
// configuration once any library was loaded: import @farskip/collectives before other koffi users
// (@farskip/kernels applies the same 1 MiB setting, so either order works with it).
import { existsSync } from 'node:fs';
import { envDefault, envVar } from '../env.js';
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');
type KoffiFn = ((...args: unknown[]) => unknown) & { async: (...args: unknown[]) => void };

/** An MPI handle: a 32-bit int under MPICH, an address (bigint) under Open MPI. */
export type Handle = number | bigint;
export type Flavour = 'mpich' | 'openmpi';

export const MIN_ASYNC_STACK = 1 << 20;
/** What we ask for: MPICH's ch4/UCX progress path is deep; 4 MiB leaves headroom over the 1 MiB minimum. */
const WANT_ASYNC_STACK = 4 << 20;

let koffi: Koffi | null = null;
let koffiError = '';
try {
  const req = createRequire(import.meta.url);
  const k = req('koffi') as Koffi & { default?: Koffi };
  koffi = (k.default ?? k) as Koffi;
  try {
    if ((koffi.config().async_stack_size ?? 0) < WANT_ASYNC_STACK) {
      koffi.config({ ...koffi.config(), async_stack_size: WANT_ASYNC_STACK });
    }
  } catch {
    // a library was already loaded through koffi; loadMpi() checks the effective setting
  }
} catch (e) {
  koffiError = `koffi unavailable: ${(e as Error).message}`;
}

// The libuv pool is left at its size (UV_THREADPOOL_SIZE, default 4). Each operation in thread mode holds a pool
// thread in MPI_Wait; more in flight queue behind them, which cannot deadlock because any MPI_Wait drives MPI's
// progress for every pending request. A larger pool measured slower, not faster, on a 2-core VM (64 KiB
// allReduce: 0.07 ms with 4 threads, 2-3 ms with 16, bench/mpi.mjs).

export interface MpiHandles {
  commWorld: Handle; commNull: Handle; requestNull: Handle; errorsReturn: Handle;
  f32: Handle; f64: Handle; i32: Handle; u8: Handle; u16: Handle;
  sum: Handle; max: Handle; min: Handle;
  /** MPI_IN_PLACE: (void *)-1 in MPICH, (void *)1 in Open MPI */
  inPlace: bigint;
  errTruncate: number;
}

export interface MpiLib {
  flavour: Flavour;
  path: string;
  koffi: Koffi;
  h: MpiHandles;
  /** a typed array that holds one handle (MPI_Request / MPI_Comm out-parameter) */
  handleCell(): Int32Array | BigInt64Array;
  fn: Record<string, KoffiFn>;
}

const MPICH_HANDLES: MpiHandles = {
  commWorld: 0x44000000, commNull: 0x04000000, requestNull: 0x2c000000, errorsReturn: 0x54000001,
  f32: 0x4c00040a, f64: 0x4c00080b, i32: 0x4c000405, u8: 0x4c000102, u16: 0x4c000204,
  sum: 0x58000003, max: 0x58000001, min: 0x58000002,
  inPlace: -1n, errTruncate: 14,
};

// C prototypes with H standing for the handle type and void * for buffers (typed arrays pass by address).
const PROTOS: readonly string[] = [
  'int MPI_Initialized(_Out_ int *flag)',
  'int MPI_Finalized(_Out_ int *flag)',
  'int MPI_Init_thread(void *argc, void *argv, int required, _Out_ int *provided)',
  'int MPI_Query_thread(_Out_ int *provided)',
  'int MPI_Finalize()',
  'int MPI_Abort(H comm, int code)',
  'int MPI_Comm_rank(H comm, _Out_ int *rank)',
  'int MPI_Comm_size(H comm, _Out_ int *size)',
  'int MPI_Comm_split(H comm, int color, int key, void *newcomm)',
  'int MPI_Comm_free(void *comm)',
  'int MPI_Comm_set_errhandler(H comm, H errh)',
  'int MPI_Error_string(int code, void *str, _Out_ int *len)',
  'int MPI_Error_class(int code, _Out_ int *cls)',
  'int MPI_Get_library_version(void *str, _Out_ int *len)',
  'int MPI_Get_count(void *status, H dtype, _Out_ int *count)',
  'int MPI_Iallreduce(void *sendbuf, void *recvbuf, int count, H dtype, H op, H comm, void *req)',
  'int MPI_Iallgather(void *sendbuf, int scount, H stype, void *recvbuf, int rcount, H rtype, H comm, void *req)',
  'int MPI_Ireduce_scatter_block(void *sendbuf, void *recvbuf, int rcount, H dtype, H op, H comm, void *req)',
  'int MPI_Ialltoallv(void *sendbuf, void *scounts, void *sdispls, H stype, void *recvbuf, void *rcounts, void *rdispls, H rtype, H comm, void *req)',
  'int MPI_Alltoall(void *sendbuf, int scount, H stype, void *recvbuf, int rcount, H rtype, H comm)',
  'int MPI_Allreduce(void *sendbuf, void *recvbuf, int count, H dtype, H op, H comm)',
  'int MPI_Ibcast(void *buf, int count, H dtype, int root, H comm, void *req)',
  'int MPI_Isend(void *buf, int count, H dtype, int dest, int tag, H comm, void *req)',
  'int MPI_Irecv(void *buf, int count, H dtype, int source, int tag, H comm, void *req)',
  'int MPI_Ibarrier(H comm, void *req)',
  'int MPI_Wait(void *req, void *status)',
  'int MPI_Test(void *req, _Out_ int *flag, void *status)',
];

function protoName(p: string): string {
  return /^int (\w+)\(/.exec(p)![1]!;
}

/** Candidate libraries: FARSKIP_MPI_LIB alone if set; else ordered by the launcher we run under. */
export function candidateLibraries(): string[] {
  const explicit = envVar('FARSKIP_MPI_LIB');
  if (explicit) return [explicit];
  const ompi = ['libmpi.so.40', '/usr/lib/x86_64-linux-gnu/openmpi/lib/libmpi.so.40'];
  const mpich = ['libmpich.so.12', 'libmpi.so.12'];
  // Under Open MPI's mpirun (OMPI_COMM_WORLD_SIZE) or MPICH's Hydra (PMI_RANK/PMI_FD) load the matching
  // library first: the other one would start as a singleton and every rank would see size 1.
  if (envVar('OMPI_COMM_WORLD_SIZE') === undefined && (envVar('PMI_RANK') !== undefined || envVar('PMI_FD') !== undefined)) {
    return [...mpich, ...ompi, 'libmpi.so'];
  }
  return [...ompi, ...mpich, 'libmpi.so'];
}

let loaded: MpiLib | null = null;
let loadError = '';

/** dlopen libmpi and build the handle table; throws with every tried path and its error. */
export function loadMpi(): MpiLib {
  if (loaded) return loaded;
  disableUcxMemoryHooks();
  if (!koffi) throw new Error(`mpi backend: ${koffiError}`);
  const k = koffi;
  const stack = k.config().async_stack_size ?? 0;
  if (stack < MIN_ASYNC_STACK) {
    throw new Error(`mpi backend: koffi async_stack_size is ${stack} bytes (< 1 MiB, MPI_Wait would overflow it) ` +
      'because another package loaded a library through koffi first; import @farskip/collectives before it');
  }
  const tried: string[] = [];
  for (const path of candidateLibraries()) {
    if (path.startsWith('/') && !existsSync(path)) { tried.push(`${path}: not found`); continue; }
    let lib: ReturnType<Koffi['load']>;
    try {
      lib = k.load(path);
    } catch (e) {
      tried.push(`${path}: ${(e as Error).message}`);
      continue;
    }
    let ompiWorld: bigint | null = null;
    try { ompiWorld = lib.symbol('ompi_mpi_comm_world') as bigint; } catch { ompiWorld = null; }
    const flavour: Flavour = ompiWorld ? 'openmpi' : 'mpich';
    let h: MpiHandles;
    if (flavour === 'openmpi') {
      const sym = (n: string): bigint => lib.symbol(n) as bigint;
      h = {
        commWorld: sym('ompi_mpi_comm_world'), commNull: sym('ompi_mpi_comm_null'),
        requestNull: sym('ompi_request_null'), errorsReturn: sym('ompi_mpi_errors_return'),
        f32: sym('ompi_mpi_float'), f64: sym('ompi_mpi_double'), i32: sym('ompi_mpi_int'),
        u8: sym('ompi_mpi_unsigned_char'), u16: sym('ompi_mpi_unsigned_short'),
        sum: sym('ompi_mpi_op_sum'), max: sym('ompi_mpi_op_max'), min: sym('ompi_mpi_op_min'),
        inPlace: 1n, errTruncate: 15,
      };
    } else {
      h = MPICH_HANDLES;
    }
    const H = flavour === 'openmpi' ? 'intptr_t' : 'int';
    const fn: Record<string, KoffiFn> = {};
    for (const p of PROTOS) fn[protoName(p)] = lib.func(p.replace(/\bH\b/g, H)) as unknown as KoffiFn;
    loaded = {
      flavour, path, koffi: k, h, fn,
      handleCell: () => (flavour === 'openmpi' ? new BigInt64Array(1) : new Int32Array(1)),
    };
    return loaded;
  }
  loadError = `no MPI library could be loaded (${tried.join('; ')}); install MPICH (apt install mpich) or ` +
    'Open MPI, or set FARSKIP_MPI_LIB to the libmpi shared library';
  throw new Error(`mpi backend: ${loadError}`);
}

/** Whether a libmpi can be loaded here (does not initialise MPI). */
export function mpiLoadable(): { ok: true; flavour: Flavour; path: string } | { ok: false; reason: string } {
  try {
    const l = loadMpi();
    return { ok: true, flavour: l.flavour, path: l.path };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

/** MPI_Error_string of a return code. */
export function errorString(lib: MpiLib, code: number): string {
  const buf = new Uint8Array(1024);
  const len = [0];
  if (lib.fn.MPI_Error_string!(code, buf, len) !== 0) return `MPI error ${code}`;
  return `${new TextDecoder().decode(buf.subarray(0, len[0]!))} (MPI error ${code})`;
}

export function errorClass(lib: MpiLib, code: number): number {
  const cls = [0];
  return lib.fn.MPI_Error_class!(code, cls) === 0 ? cls[0]! : -1;
}

export function libraryVersion(lib: MpiLib): string {
  const buf = new Uint8Array(8192);
  const len = [0];
  if (lib.fn.MPI_Get_library_version!(buf, len) !== 0) return 'unknown';
  return new TextDecoder().decode(buf.subarray(0, len[0]!)).replace(/\0.*$/s, '').split('\n')[0]!.trim();
}

/** Read the handle stored in a cell written by MPI (MPI_Comm_split's newcomm). */
export function cellValue(cell: Int32Array | BigInt64Array): Handle {
  return cell[0]!;
}

/**
 * UCX (the network layer under Debian's MPICH and Open MPI) replaces malloc/mmap through its memory hooks to
 * track registered memory. Inside a V8 process those hooks corrupted the heap here (intermittent SIGSEGV in
 * V8's compiler, backtrace through libucs). Shared-memory jobs on one node do not need them, so they are turned
 * off before the library is loaded, unless the user set the variables (a multi-node RDMA job may want them).
 */
function disableUcxMemoryHooks(): void {
  envDefault('UCX_MEM_MALLOC_HOOKS', 'no');
  envDefault('UCX_MEM_EVENTS', 'no');
}
