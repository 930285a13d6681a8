// The communicator contract every backend implements (../shared/DESIGN.md §3). Calls return a Work at once;
// `await work.wait()` completes it. Calls on one communicator execute in issue order on every rank, as NCCL and
// MPI require; a mismatch between ranks (operation, size, dtype, root) or a dead peer ends in a CollectiveError
// on every surviving rank within the communicator's timeout, never a hang.

/** Element types a collective can move and reduce. */
export type CommDType = 'f32' | 'f64' | 'bf16' | 'i32' | 'u8';

/** sum, avg (sum / size), max, min. bf16 reduces in f32 and rounds once per step, as NCCL does. */
export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';

/**
 * Host buffers are typed arrays in @farskip/tensor's storage convention: Float32Array = f32, Float64Array =
 * f64, Uint16Array = bf16 bit patterns, Int32Array = i32, Uint8Array = raw bytes (no reduction).
 */
export type HostBuffer = Float32Array | Float64Array | Uint16Array | Int32Array | Uint8Array;

/** Memory on an accelerator (nccl / rccl backends): a raw device pointer and its element count and type. */
export interface DeviceBuffer {
  readonly device: `cuda:${number}` | `hip:${number}`;
  readonly ptr: bigint;
  readonly length: number;
  readonly dtype: CommDType;
}

export type CommBuffer = HostBuffer | DeviceBuffer;

export interface Work {
  /** Resolves when the operation completed on this rank (its output buffers hold the result); rejects with a
   *  CollectiveError on mismatch, peer failure or timeout. */
  wait(): Promise<void>;
  readonly completed: boolean;
  /** When the operation completed on this rank, in ms on the clock `performance.timeOrigin + performance.now()`
   *  (comparable across the threads of a process), where the backend knows it (threads: stamped by the comm
   *  worker as it finishes; mpi: when the completing MPI_Test/MPI_Wait returned); undefined before completion.
   *  Overlap instrumentation uses it: a collective that finished while its rank computed is hidden. */
  readonly completedAt?: number;
}

export interface Communicator {
  readonly rank: number;
  readonly size: number;
  /** 'threads' | 'mpi' | 'nccl' | 'rccl' */
  readonly backend: string;
  /** Human-readable name used in errors, e.g. 'world' or 'world/split(color=1)'. */
  readonly name: string;

  /** In place: buf = op over ranks of buf. */
  allReduce(buf: CommBuffer, op?: ReduceOp): Work;
  /** output [size * n] = concatenation of every rank's input [n], in rank order. */
  allGather(input: CommBuffer, output: CommBuffer): Work;
  /** input [size * n]; output [n] = op over ranks of input's block `rank`. */
  reduceScatter(input: CommBuffer, output: CommBuffer, op?: ReduceOp): Work;
  /**
   * Personalised exchange with per-peer element counts (uneven MoE dispatch). input holds sendCounts[p]
   * elements for peer p, back to back in peer order; output receives recvCounts[p] from peer p likewise.
   * Without counts the buffers split evenly (length divisible by size). recvCounts[p] must equal peer p's
   * sendCounts[rank] (checked: a mismatch is an error on both ranks).
   */
  allToAll(input: CommBuffer, output: CommBuffer, sendCounts?: readonly number[], recvCounts?: readonly number[]): Work;
  /** buf on `root` is copied into buf on every rank. */
  broadcast(buf: CommBuffer, root: number): Work;
  send(buf: CommBuffer, peer: number): Work;
  recv(buf: CommBuffer, peer: number): Work;
  barrier(): Work;
  /**
   * Collective over this communicator (every rank calls it, in the same order as its other calls): ranks with
   * the same color form a new communicator, ordered by (key, old rank). A negative color returns null (the
   * rank joins none), like MPI_UNDEFINED.
   */
  split(color: number, key?: number): Communicator | null;
  /** Releases the communicator; idempotent; pending work fails with a CollectiveError. */
  destroy(): void;
}

export interface CommunicatorOptions {
  /** Every wait gives up after this many ms (default 300000, env FARSKIP_COMM_TIMEOUT_MS). */
  timeoutMs?: number;
}
