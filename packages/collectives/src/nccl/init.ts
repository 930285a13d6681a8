// Creating NCCL / RCCL communicators: load the libraries, open the rank's device, agree on the 128-byte unique
// id (rank 0 calls ncclGetUniqueId and shares it through the launcher's rendezvous store, an MPI broadcast, or
// the caller passes it), then ncclCommInitRank with the id passed by value.
//
// ncclCommInitRank blocks until every rank has joined, so it runs on the calling thread (NCCL reads the current
// device from that thread; a koffi async call would run it on a pool thread with no device set). A rank process
// therefore must not also serve the rendezvous store on its own event loop: the launcher hosts it.
import { CollectiveError, defaultTimeoutMs } from '../errors.js';
import type { CommunicatorOptions } from '../types.js';
import { NcclCommunicator } from './communicator.js';
import { gpuDeviceCount, openGpu, type GpuKind, type GpuRuntime } from '@farskip/device';
import { getUniqueId, loadNccl, NCCL_RESULT, UNIQUE_ID_BYTES, type NcclFlavor, type NcclLib } from './lib.js';

/**
 * The part of the launcher's rendezvous store client (src/launch, env FARSKIP_RDZV=host:port) the bootstrap
 * needs: rank 0 sets the id, the others block in get() until it is there.
 */
export interface UniqueIdStore {
  set(key: string, value: Uint8Array): unknown;
  get(key: string): Promise<Uint8Array>;
}

/** The launcher's string store client shape (src/launch RendezvousClient): set, and a get that blocks. */
export interface StringRendezvous {
  set(key: string, value: string): unknown;
  wait(key: string, timeoutMs?: number): Promise<string>;
}

/** Adapts a string rendezvous client to UniqueIdStore; the 128 bytes travel as hex. */
export function uniqueIdStoreFrom(client: StringRendezvous): UniqueIdStore {
  return {
    set: (k, v) => client.set(k, Buffer.from(v).toString('hex')),
    get: async (k) => Uint8Array.from(Buffer.from(await client.wait(k), 'hex')),
  };
}

export interface NcclInitOptions extends CommunicatorOptions {
  rank: number;
  size: number;
  /** Device ordinal (one rank per device: NCCL rejects two ranks of a communicator on one GPU). */
  device: number;
  /** The 128 bytes from ncclUniqueId()/ncclGetUniqueId, identical on every rank. */
  uniqueId?: Uint8Array;
  /** Rendezvous store: rank 0 publishes a fresh id under `storeKey`, the others fetch it. */
  store?: UniqueIdStore;
  /** Default `farskip/<nccl|rccl>/uniqueId/<name>`; use a fresh key per communicator created through a store. */
  storeKey?: string;
  /** MPI bootstrap: called with the id on rank 0 and null elsewhere, returns rank 0's id (an MPI_Bcast). */
  broadcastId?: (id: Uint8Array | null) => Promise<Uint8Array>;
  /** The compute stream collectives order against (CUstream / hipStream_t handle); default 0, the default stream. */
  computeStream?: bigint;
  /** Work.wait() waits for the device instead of ordering the compute stream (TORCH_NCCL_BLOCKING_WAIT). */
  blockingWait?: boolean;
  /** Watchdog period in ms (default 2). */
  pollMs?: number;
  /** Communicator name used in errors (default 'world'). */
  name?: string;
}

const GPU_OF: Record<NcclFlavor, GpuKind> = { nccl: 'cuda', rccl: 'hip' };

export function initNccl(options: NcclInitOptions): Promise<NcclCommunicator> { return init('nccl', options); }
export function initRccl(options: NcclInitOptions): Promise<NcclCommunicator> { return init('rccl', options); }

/** true when libnccl and the CUDA driver load and at least one CUDA device is visible. */
export function ncclAvailable(): boolean { return available('nccl'); }
/** true when librccl and the HIP runtime load and at least one HIP device is visible. */
export function rcclAvailable(): boolean { return available('rccl'); }

function available(flavor: NcclFlavor): boolean {
  try { loadNccl(flavor); } catch { return false; }
  return gpuDeviceCount(GPU_OF[flavor]) > 0;
}

/** A fresh unique id (for a parent process that hands it to its ranks, e.g. through the environment). */
export function ncclUniqueId(flavor: NcclFlavor = 'nccl'): Uint8Array { return getUniqueId(flavor); }

async function init(flavor: NcclFlavor, o: NcclInitOptions): Promise<NcclCommunicator> {
  const name = o.name ?? 'world';
  const op = flavor === 'nccl' ? 'initNccl' : 'initRccl';
  const fail = (detail: string, kind: 'invalid-argument' | 'backend' = 'invalid-argument'): CollectiveError =>
    new CollectiveError(kind, op, name, o.rank, detail);
  if (!Number.isInteger(o.size) || o.size < 1) throw fail(`size ${o.size} must be a positive integer`);
  if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.size) throw fail(`rank ${o.rank} out of range [0, ${o.size})`);
  if (!Number.isInteger(o.device) || o.device < 0) throw fail(`device ${o.device} must be a non-negative integer`);
  let lib: NcclLib, gpu: GpuRuntime;
  try {
    lib = loadNccl(flavor);
    gpu = openGpu(GPU_OF[flavor], o.device);
  } catch (e) {
    throw fail((e as Error).message, 'backend');
  }
  try {
    const id = await uniqueIdFor(flavor, o, name, fail);
    gpu.makeCurrent();
    const out = [0];
    const r = lib.f.ncclCommInitRank!(out, o.size, { internal: id }, o.rank) as number;
    if (r !== 0) throw fail(`ncclCommInitRank returned ${NCCL_RESULT[r] ?? r}: ${lib.errorString(r)}`, r === 4 || r === 5 ? 'invalid-argument' : 'backend');
    return new NcclCommunicator({
      lib, shared: { gpu, refs: 0 }, comm: BigInt(out[0]!), rank: o.rank, size: o.size, name,
      timeoutMs: o.timeoutMs ?? defaultTimeoutMs(), blockingWait: o.blockingWait ?? false, pollMs: o.pollMs ?? 2,
      computeStream: o.computeStream ?? 0n,
    });
  } catch (e) {
    gpu.release();
    throw e;
  }
}

async function uniqueIdFor(flavor: NcclFlavor, o: NcclInitOptions, name: string, fail: (d: string) => Error): Promise<Uint8Array> {
  const check = (id: Uint8Array, from: string): Uint8Array => {
    if (!(id instanceof Uint8Array) || id.length !== UNIQUE_ID_BYTES) throw fail(`unique id from ${from} must be a ${UNIQUE_ID_BYTES}-byte Uint8Array (got ${id?.length} bytes)`);
    return id;
  };
  if (o.uniqueId) return check(o.uniqueId, 'options.uniqueId');
  const fresh = (): Uint8Array => getUniqueId(flavor);
  if (o.broadcastId) return check(await o.broadcastId(o.rank === 0 ? fresh() : null), 'broadcastId');
  if (o.store) {
    const key = o.storeKey ?? `farskip/${flavor}/uniqueId/${name}`;
    if (o.rank === 0) {
      const id = fresh();
      await o.store.set(key, id);
      return id;
    }
    return check(new Uint8Array(await o.store.get(key)), `store key '${key}'`);
  }
  if (o.size === 1) return fresh();
  const rdzv = process.env.FARSKIP_RDZV;
  if (rdzv) {
    // launched by farskip-launch: use its rendezvous store (looked up structurally, so the two evolve apart)
    const launch = (await import('../launch/index.js')) as { RendezvousClient?: { fromEnv(): Promise<StringRendezvous & { close?(): void }> } };
    if (launch.RendezvousClient) {
      const client = await launch.RendezvousClient.fromEnv();
      try { return await uniqueIdFor(flavor, { ...o, store: uniqueIdStoreFrom(client) }, name, fail); } finally { client.close?.(); }
    }
  }
  throw fail(`${o.size} ranks need a shared unique id: pass uniqueId, store (the launcher's rendezvous store client${rdzv ? `, FARSKIP_RDZV=${rdzv}` : ''}) or broadcastId (MPI)`);
}
