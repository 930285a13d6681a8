// MpiCommunicator: every call issues its MPI_I* operation synchronously (so MPI sees calls in program order,
// which is how it matches non-blocking collectives between ranks) and completes it with a blocking MPI_Wait
// run through koffi's async call on a libuv worker thread, so MPI progresses while the rank's main thread
// computes. The returned Work is that wait (plus a timeout); buffers, requests and count arrays stay referenced
// by the pending operation until MPI_Wait returned.
import { CollectiveError, defaultTimeoutMs } from '../errors.js';
import { envNumber } from '../env.js';
import type { FailureKind } from '../errors.js';
import { dtypeOf, isDeviceBuffer } from '../buffers.js';
import type { CommBuffer, CommDType, Communicator, CommunicatorOptions, HostBuffer, ReduceOp, Work } from '../types.js';
import { errorClass, errorString } from './lib.js';
import { mpiState, MpiRequestWork, PromiseWork } from './work.js';
import type { Pending } from './work.js';
import type { Handle, MpiLib } from './lib.js';
import { bf16ToF32, divideInPlace, f32ToBf16, INT_MAX, isCountArray, prefix, sum } from './util.js';

export interface MpiCommunicatorOptions extends CommunicatorOptions {
  /** Operations moving at least this many bytes (all buffers together) start a progress thread at issue, so they
   * advance while the rank computes; smaller ones are completed by wait() on the calling thread
   * (default 65536, env FARSKIP_MPI_ASYNC_BYTES; 0 = every operation gets a thread). */
  asyncBytes?: number;
  /** How long wait() spins MPI_Test on the calling thread before handing the request to a thread
   * (µs, default 2000, env FARSKIP_MPI_SPIN_US). */
  spinUs?: number;
}

export class MpiCommunicator implements Communicator {
  readonly backend = 'mpi';
  readonly timeoutMs: number;
  readonly asyncBytes: number;
  readonly spinUs: number;
  private destroyed = false;
  private readonly pending = new Set<Pending>();

  /** @internal use initMpi() */
  constructor(
    private readonly lib: MpiLib,
    /** the MPI_Comm handle */
    readonly handle: Handle,
    readonly rank: number,
    readonly size: number,
    readonly name: string,
    options: MpiCommunicatorOptions = {},
    private readonly isWorld = false,
  ) {
    this.timeoutMs = options.timeoutMs ?? defaultTimeoutMs();
    this.asyncBytes = options.asyncBytes ?? envNumber('FARSKIP_MPI_ASYNC_BYTES', 65536);
    this.spinUs = options.spinUs ?? envNumber('FARSKIP_MPI_SPIN_US', 2000);
  }

  // ---------------------------------------------------------------- collectives

  allReduce(buf: CommBuffer, op: ReduceOp = 'sum'): Work {
    const name = 'allReduce';
    const b = this.host(name, buf);
    if (typeof b === 'string') return this.fail(name, 'invalid-argument', b);
    const dt = dtypeOf(b);
    const mop = this.reduceOp(name, dt, op);
    if (typeof mop === 'string') return this.fail(name, 'invalid-argument', mop);
    if (b.length === 0) return this.done();
    const f = this.lib.fn;
    const inPlace = this.lib.h.inPlace;
    if (b instanceof Uint16Array) {
      const tmp = bf16ToF32(b);
      return this.issue(name, [b, tmp], (req) => f.MPI_Iallreduce!(inPlace, tmp, tmp.length, this.lib.h.f32, mop, this.handle, req),
        () => f32ToBf16(tmp, b, op === 'avg' ? 1 / this.size : 1));
    }
    return this.issue(name, [b], (req) => f.MPI_Iallreduce!(inPlace, b, b.length, this.mpiType(dt), mop, this.handle, req),
      op === 'avg' ? () => divideInPlace(b, this.size) : undefined);
  }

  allGather(input: CommBuffer, output: CommBuffer): Work {
    const name = 'allGather';
    const pair = this.pair(name, input, output);
    if (typeof pair === 'string') return this.fail(name, 'invalid-argument', pair);
    const [i, o] = pair;
    if (o.length !== i.length * this.size) {
      return this.fail(name, 'invalid-argument', `output has ${o.length} elements, expected size * input = ${this.size} * ${i.length}`);
    }
    if (i.length === 0) return this.done();
    const t = this.mpiType(dtypeOf(i));
    return this.issue(name, [i, o], (req) => this.lib.fn.MPI_Iallgather!(i, i.length, t, o, i.length, t, this.handle, req));
  }

  reduceScatter(input: CommBuffer, output: CommBuffer, op: ReduceOp = 'sum'): Work {
    const name = 'reduceScatter';
    const pair = this.pair(name, input, output);
    if (typeof pair === 'string') return this.fail(name, 'invalid-argument', pair);
    const [i, o] = pair;
    if (i.length !== o.length * this.size) {
      return this.fail(name, 'invalid-argument', `input has ${i.length} elements, expected size * output = ${this.size} * ${o.length}`);
    }
    const dt = dtypeOf(i);
    const mop = this.reduceOp(name, dt, op);
    if (typeof mop === 'string') return this.fail(name, 'invalid-argument', mop);
    if (o.length === 0) return this.done();
    const f = this.lib.fn;
    if (o instanceof Uint16Array) {
      const ti = bf16ToF32(i as Uint16Array);
      const to = new Float32Array(o.length);
      return this.issue(name, [i, o, ti, to], (req) => f.MPI_Ireduce_scatter_block!(ti, to, o.length, this.lib.h.f32, mop, this.handle, req),
        () => f32ToBf16(to, o, op === 'avg' ? 1 / this.size : 1));
    }
    return this.issue(name, [i, o], (req) => f.MPI_Ireduce_scatter_block!(i, o, o.length, this.mpiType(dt), mop, this.handle, req),
      op === 'avg' ? () => divideInPlace(o, this.size) : undefined);
  }

  allToAll(input: CommBuffer, output: CommBuffer, sendCounts?: readonly number[], recvCounts?: readonly number[]): Work {
    const name = 'allToAll';
    const pair = this.pair(name, input, output);
    if (typeof pair === 'string') return this.fail(name, 'invalid-argument', pair);
    const [i, o] = pair;
    const n = this.size;
    let err = '';
    if (sendCounts === undefined && i.length % n !== 0) err = `input length ${i.length} is not divisible by size ${n}`;
    else if (sendCounts !== undefined && !isCountArray(sendCounts, n)) err = `sendCounts must be ${n} non-negative integers`;
    else if (recvCounts !== undefined && !isCountArray(recvCounts, n)) err = `recvCounts must be ${n} non-negative integers`;
    const sc = Int32Array.from(sendCounts ?? new Array<number>(n).fill(i.length / n));
    if (!err && sum(sc) > i.length) err = `sendCounts sum to ${sum(sc)} but input has ${i.length} elements`;
    // Exchange (my sendCounts[p], my recvCounts[p] or -1) with every peer p so both sides of a pair can check
    // each other, then agree on the outcome, so that every rank either issues MPI_Ialltoallv or fails. Both
    // exchanges are small blocking collectives issued in program order.
    const mine = new Int32Array(2 * n);
    for (let p = 0; p < n; p++) {
      mine[2 * p] = sc[p]!;
      mine[2 * p + 1] = recvCounts !== undefined && !err ? recvCounts[p]! : -1;
    }
    const theirs = new Int32Array(2 * n);
    const f = this.lib.fn;
    if (this.destroyed) return this.fail(name, 'destroyed', 'communicator was destroyed');
    let rc = f.MPI_Alltoall!(mine, 2, this.lib.h.i32, theirs, 2, this.lib.h.i32, this.handle) as number;
    if (rc !== 0) return this.fail(name, 'backend', `count exchange failed: ${errorString(this.lib, rc)}`);
    const rcnt = new Int32Array(n);
    for (let p = 0; p < n && !err; p++) {
      rcnt[p] = theirs[2 * p]!;
      if (recvCounts !== undefined && recvCounts[p] !== theirs[2 * p]) {
        err = `recvCounts[${p}] = ${recvCounts[p]} but rank ${p} sends ${theirs[2 * p]}`;
      } else if (theirs[2 * p + 1]! >= 0 && theirs[2 * p + 1] !== sc[p]) {
        err = `rank ${p} expects ${theirs[2 * p + 1]} elements from this rank but sendCounts[${p}] = ${sc[p]}`;
      }
    }
    if (!err && sum(rcnt) > o.length) err = `peers send ${sum(rcnt)} elements in total but output has ${o.length}`;
    const flag = new Int32Array([err ? this.rank : n]);
    rc = f.MPI_Allreduce!(this.lib.h.inPlace, flag, 1, this.lib.h.i32, this.lib.h.min, this.handle) as number;
    if (rc !== 0) return this.fail(name, 'backend', `count agreement failed: ${errorString(this.lib, rc)}`);
    if (err) return this.fail(name, 'mismatch', err, this.rank);
    if (flag[0]! < n) return this.fail(name, 'mismatch', `rank ${flag[0]} reported mismatched counts`, flag[0]);
    const sd = prefix(sc);
    const rd = prefix(rcnt);
    const t = this.mpiType(dtypeOf(i));
    return this.issue(name, [i, o, sc, sd, rcnt, rd], (req) => f.MPI_Ialltoallv!(i, sc, sd, t, o, rcnt, rd, t, this.handle, req));
  }

  broadcast(buf: CommBuffer, root: number): Work {
    const name = 'broadcast';
    const b = this.host(name, buf);
    if (typeof b === 'string') return this.fail(name, 'invalid-argument', b);
    if (!this.validRank(root)) return this.fail(name, 'invalid-argument', `root ${root} is not a rank of a communicator of size ${this.size}`);
    if (b.length === 0) return this.done();
    return this.issue(name, [b], (req) => this.lib.fn.MPI_Ibcast!(b, b.length, this.mpiType(dtypeOf(b)), root, this.handle, req));
  }

  send(buf: CommBuffer, peer: number): Work {
    const b = this.host('send', buf);
    if (typeof b === 'string') return this.fail('send', 'invalid-argument', b);
    if (!this.validRank(peer)) return this.fail('send', 'invalid-argument', `peer ${peer} is not a rank of a communicator of size ${this.size}`);
    if (peer === this.rank) return this.selfSend(b);
    return this.issue('send', [b], (req) => this.lib.fn.MPI_Isend!(b, b.length, this.mpiType(dtypeOf(b)), peer, 0, this.handle, req));
  }

  recv(buf: CommBuffer, peer: number): Work {
    const b = this.host('recv', buf);
    if (typeof b === 'string') return this.fail('recv', 'invalid-argument', b);
    if (!this.validRank(peer)) return this.fail('recv', 'invalid-argument', `peer ${peer} is not a rank of a communicator of size ${this.size}`);
    if (peer === this.rank) return this.selfRecv(b);
    const t = this.mpiType(dtypeOf(b));
    return this.issue('recv', [b], (req) => this.lib.fn.MPI_Irecv!(b, b.length, t, peer, 0, this.handle, req), (status) => {
      const count = [0];
      this.lib.fn.MPI_Get_count!(status, t, count);
      if (count[0] !== b.length) return `received ${count[0]} elements from rank ${peer} into a buffer of ${b.length}`;
      return undefined;
    });
  }

  barrier(): Work {
    return this.issue('barrier', [], (req) => this.lib.fn.MPI_Ibarrier!(this.handle, req));
  }

  split(color: number, key?: number): MpiCommunicator | null {
    if (this.destroyed) throw this.error('split', 'destroyed', 'communicator was destroyed');
    if (!Number.isInteger(color) || (key !== undefined && !Number.isInteger(key))) {
      throw this.error('split', 'invalid-argument', `color and key must be integers (got ${color}, ${key})`);
    }
    const cell = this.lib.handleCell();
    const c = color < 0 ? -32766 /* MPI_UNDEFINED (both flavours) */ : color;
    const rc = this.lib.fn.MPI_Comm_split!(this.handle, c, key ?? this.rank, cell) as number;
    if (rc !== 0) throw this.error('split', 'backend', errorString(this.lib, rc));
    const h = cell[0]!;
    if (h === this.lib.h.commNull || color < 0) return null;
    const r = [0];
    const s = [0];
    this.lib.fn.MPI_Comm_rank!(h, r);
    this.lib.fn.MPI_Comm_size!(h, s);
    return new MpiCommunicator(this.lib, h, r[0]!, s[0]!, `${this.name}/split(color=${color})`, { timeoutMs: this.timeoutMs, asyncBytes: this.asyncBytes, spinUs: this.spinUs });
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of [...this.pending]) p.reject(this.error(p.op, 'destroyed', 'communicator destroyed while the operation was pending'));
    this.pending.clear();
    // MPI_Comm_free only marks the communicator; MPI frees it once its pending operations completed.
    if (!this.isWorld && !mpiState.finalized) {
      const cell = this.lib.handleCell();
      cell[0] = this.handle as never;
      this.lib.fn.MPI_Comm_free!(cell);
    }
  }

  /** MPI_Abort on this communicator: the way out after a timeout (a stuck MPI_Wait thread cannot be cancelled). */
  abort(code = 1): never {
    this.lib.fn.MPI_Abort!(this.handle, code);
    process.exit(code);
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  // ---------------------------------------------------------------- machinery

  // Messages to this rank itself are matched here, in order: MPICH 4.0 never wakes an MPI_Wait blocked on a
  // self-receive that another thread's MPI_Isend completes (reproduced in plain C). A send copies and completes.
  private readonly selfSends: HostBuffer[] = [];
  private readonly selfRecvs: { buf: HostBuffer; resolve: () => void; reject: (e: CollectiveError) => void }[] = [];

  private selfSend(b: HostBuffer): Work {
    if (this.destroyed) return this.fail('send', 'destroyed', 'communicator was destroyed');
    this.selfSends.push(b.slice());
    this.matchSelf();
    return this.done();
  }

  private selfRecv(b: HostBuffer): Work {
    if (this.destroyed) return this.fail('recv', 'destroyed', 'communicator was destroyed');
    const promise = new Promise<void>((resolve, reject) => {
      const entry: Pending = { op: 'recv', reject };
      this.pending.add(entry);
      const timer = setTimeout(() => entry.reject(this.error('recv', 'timeout', `no send to self within ${this.timeoutMs} ms`)), this.timeoutMs);
      const done = (e?: CollectiveError): void => {
        clearTimeout(timer);
        this.pending.delete(entry);
        if (e) return reject(e);
        resolve();
      };
      queueMicrotask(() => this.matchSelf());
      this.selfRecvs.push({ buf: b, resolve: () => done(), reject: (e) => done(e) });
    });
    return new PromiseWork(promise);
  }

  private matchSelf(): void {
    while (this.selfSends.length > 0 && this.selfRecvs.length > 0) {
      const data = this.selfSends.shift()!;
      const r = this.selfRecvs.shift()!;
      if (data.length !== r.buf.length || dtypeOf(data) !== dtypeOf(r.buf)) {
        r.reject(this.error('recv', 'mismatch', `received ${data.length} ${dtypeOf(data)} elements from this rank into a buffer of ${r.buf.length} ${dtypeOf(r.buf)}`));
      } else {
        r.buf.set(data as never);
        r.resolve();
      }
    }
  }

  private issue(op: string, keep: unknown[], start: (req: Int32Array | BigInt64Array) => unknown,
    post?: (status: Uint8Array) => string | void | undefined): Work {
    if (this.destroyed) return this.fail(op, 'destroyed', 'communicator was destroyed');
    const req = this.lib.handleCell();
    const status = new Uint8Array(64); // MPI_Status is 20 bytes (MPICH) / 24 bytes (Open MPI)
    const rc = start(req) as number;
    if (rc !== 0) return this.fail(op, this.kindOf(rc), errorString(this.lib, rc));
    let bytes = 0;
    for (const k of keep) if (ArrayBuffer.isView(k)) bytes += k.byteLength;
    return new MpiRequestWork(this.internals, op, req, status, keep, post, bytes >= this.asyncBytes);
  }

  /** @internal MpiRequestWork's access to the library, the pending set and the error constructor. */
  get internals() {
    return { lib: this.lib, pending: this.pending, timeoutMs: this.timeoutMs, spinUs: this.spinUs,
      error: (op: string, kind: FailureKind, detail: string) => this.error(op, kind, detail),
      kindOf: (rc: number) => this.kindOf(rc) };
  }

  private kindOf(rc: number): FailureKind {
    return errorClass(this.lib, rc) === this.lib.h.errTruncate ? 'mismatch' : 'backend';
  }

  private error(op: string, kind: FailureKind, detail: string, culprit?: number): CollectiveError {
    return new CollectiveError(kind, op, this.name, this.rank, detail, culprit);
  }

  private fail(op: string, kind: FailureKind, detail: string, culprit?: number): Work {
    return new PromiseWork(Promise.reject(this.error(op, kind, detail, culprit)));
  }

  private done(): Work {
    if (this.destroyed) return this.fail('noop', 'destroyed', 'communicator was destroyed');
    return PromiseWork.resolved();
  }

  private validRank(r: number): boolean {
    return Number.isInteger(r) && r >= 0 && r < this.size;
  }

  /** The host buffer, or why it cannot be used. */
  private host(op: string, b: CommBuffer): HostBuffer | string {
    if (isDeviceBuffer(b)) {
      return `device buffer (${b.device}) given: the mpi backend moves host typed arrays only (CUDA-aware MPI is out of scope); use the nccl backend`;
    }
    try {
      dtypeOf(b);
    } catch (e) {
      return (e as Error).message;
    }
    if (b.length > INT_MAX) return `${op} of ${b.length} elements exceeds MPI's int count limit`;
    return b;
  }

  private pair(op: string, i: CommBuffer, o: CommBuffer): [HostBuffer, HostBuffer] | string {
    const a = this.host(op, i);
    if (typeof a === 'string') return a;
    const b = this.host(op, o);
    if (typeof b === 'string') return b;
    if (dtypeOf(a) !== dtypeOf(b)) return `input is ${dtypeOf(a)} but output is ${dtypeOf(b)}`;
    return [a, b];
  }

  private mpiType(dt: CommDType): Handle {
    const h = this.lib.h;
    return dt === 'f32' ? h.f32 : dt === 'f64' ? h.f64 : dt === 'i32' ? h.i32 : dt === 'bf16' ? h.u16 : h.u8;
  }

  private reduceOp(op: string, dt: CommDType, r: ReduceOp): Handle | string {
    if (dt === 'u8') return `${op} cannot reduce u8 (raw bytes); use f32, f64, bf16 or i32`;
    const h = this.lib.h;
    if (r === 'sum' || r === 'avg') return h.sum;
    if (r === 'max') return h.max;
    if (r === 'min') return h.min;
    return `unknown reduce op '${String(r)}' (sum, avg, max, min)`;
  }
}
