// NcclCommunicator: the Communicator contract over NCCL / RCCL for DeviceBuffer arguments.
//
// Streams and events follow torch's ProcessGroupNCCL:
//  - every collective is enqueued on a dedicated communication stream created at the device's HIGHEST priority
//    (numerically the lowest value of the priority range), so the collective's kernels are scheduled ahead of
//    compute kernels queued at the same time: that is what lets communication overlap computation;
//  - before enqueueing, the comm stream waits on an event recorded on the compute stream, so the collective reads
//    what the compute stream produced (host code never blocks for that);
//  - after enqueueing, an event is recorded on the comm stream; the Work wraps it. `wait()` makes the compute
//    stream wait on that event and resolves (stream-ordered, like torch's Work.wait()); `completed` polls
//    cuEventQuery. With `blockingWait` (torch's TORCH_NCCL_BLOCKING_WAIT) wait() resolves only once the event
//    completed on the device. barrier() always waits for the device.
//  - a watchdog polls each pending event and ncclCommGetAsyncError; a collective older than the timeout or an
//    asynchronous error aborts the communicator (ncclCommAbort) and fails every pending Work with a
//    CollectiveError, so a dead peer never leaves a rank hanging.
// Host typed arrays are rejected (invalid-argument) rather than staged: a hidden H2D/D2H copy per call would
// defeat the overlap this backend exists for; `runtime.upload/download` stage explicitly where needed.
import { bytesPer, isDeviceBuffer, REDUCE_OPS } from '../buffers.js';
import { CollectiveError, type FailureKind } from '../errors.js';
import type { CommBuffer, Communicator, DeviceBuffer, ReduceOp, Work } from '../types.js';
import type { GpuRuntime } from '@farskip/device';
import { NCCL_DTYPE, NCCL_IN_PROGRESS, NCCL_OP, NCCL_RESULT, type NcclLib } from './lib.js';

/** A GPU runtime shared by a communicator and its splits; the context is released with the last of them. */
export interface SharedGpu { gpu: GpuRuntime; refs: number }

export interface NcclCommState {
  lib: NcclLib;
  shared: SharedGpu;
  comm: bigint;
  rank: number;
  size: number;
  name: string;
  timeoutMs: number;
  blockingWait: boolean;
  pollMs: number;
  computeStream: bigint;
}

const kindOf = (code: number): FailureKind =>
  code === 4 || code === 5 ? 'invalid-argument' : code === 6 ? 'peer-failed' : code === 8 ? 'timeout' : 'backend';

class NcclWork implements Work {
  state: 'pending' | 'done' | 'failed' = 'pending';
  error: CollectiveError | undefined;
  readonly issuedAt = Date.now();
  readonly waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  constructor(private readonly owner: NcclCommunicator, readonly op: string, public event: bigint, readonly hostSync: boolean) {}

  get completed(): boolean {
    if (this.state === 'pending') this.owner.poll(this);
    return this.state === 'done';
  }

  wait(): Promise<void> {
    if (this.state === 'pending') this.owner.poll(this);
    if (this.state === 'failed') return Promise.reject(this.error);
    if (this.state === 'done') return Promise.resolve();
    if (this.hostSync || this.owner.blockingWait) {
      return new Promise((resolve, reject) => { this.waiters.push({ resolve, reject }); this.owner.poll(this); });
    }
    try {
      this.owner.computeWaits(this);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

export class NcclCommunicator implements Communicator {
  readonly rank: number;
  readonly size: number;
  readonly backend: 'nccl' | 'rccl';
  readonly name: string;
  /** Element-wise device name buffers must carry, e.g. 'cuda:0'. */
  readonly deviceName: `cuda:${number}` | `hip:${number}`;
  readonly timeoutMs: number;
  readonly blockingWait: boolean;
  /** The dedicated high-priority stream every collective is enqueued on. */
  readonly commStream: bigint;
  /** The priority it was created with (the device's greatest = numerically lowest). */
  readonly commStreamPriority: number;
  /** The stream whose work collectives wait for and which Work.wait() orders after them (0 = default stream). */
  computeStream: bigint;

  private readonly lib: NcclLib;
  private readonly shared: SharedGpu;
  private comm: bigint;
  private readonly pollMs: number;
  private readonly preEvent: bigint;
  private readonly freeEvents: bigint[] = [];
  private readonly pending = new Set<NcclWork>();
  private scratch = 0n; // 4 bytes of device memory for barrier()
  private broken: CollectiveError | undefined;
  private destroyed = false;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(s: NcclCommState) {
    this.lib = s.lib; this.shared = s.shared; this.comm = s.comm;
    this.rank = s.rank; this.size = s.size; this.name = s.name; this.backend = s.lib.flavor;
    this.timeoutMs = s.timeoutMs; this.blockingWait = s.blockingWait; this.pollMs = s.pollMs;
    this.computeStream = s.computeStream;
    const gpu = this.gpu;
    this.deviceName = `${gpu.kind}:${gpu.device}`;
    gpu.makeCurrent();
    this.commStreamPriority = gpu.priorityRange().greatest;
    this.commStream = gpu.createStream(this.commStreamPriority);
    this.preEvent = gpu.createEvent();
    s.shared.refs++;
  }

  /** The CUDA driver / HIP runtime this communicator's device is driven through (alloc, upload, download). */
  get runtime(): GpuRuntime { return this.gpu; }
  /** NCCL_VERSION_CODE of the loaded library, and where it was loaded from. */
  get ncclVersion(): number { return this.lib.version; }
  get libraryPath(): string { return this.lib.path; }
  private get gpu(): GpuRuntime { return this.shared.gpu; }

  // ---- errors -----------------------------------------------------------------------------------------------
  private error(kind: FailureKind, op: string, detail: string, culprit?: number): CollectiveError {
    return new CollectiveError(kind, op, this.name, this.rank, detail, culprit);
  }

  private check(op: string, code: number, call: string): void {
    if (code === 0) return;
    const last = this.lib.lastError ? String(this.lib.lastError(this.comm) ?? '') : '';
    const name = NCCL_RESULT[code] ?? `ncclResult_t ${code}`;
    throw this.error(kindOf(code), op, `${call} returned ${name}: ${this.lib.errorString(code)}${last ? ` (${last})` : ''}`);
  }

  private live(op: string): void {
    if (this.destroyed) throw this.error('destroyed', op, 'communicator was destroyed');
    if (this.broken) throw this.error(this.broken.kind, op, `communicator was aborted earlier: ${this.broken.message}`);
  }

  private device(op: string, b: CommBuffer, what: string): DeviceBuffer {
    if (!isDeviceBuffer(b)) {
      throw this.error('invalid-argument', op, `${what} is a host ${Object.prototype.toString.call(b).slice(8, -1)}: the ${this.backend} backend takes DeviceBuffer { device, ptr, length, dtype } (stage it with comm.runtime.alloc/upload, or use the threads/mpi backend for host arrays)`);
    }
    if (b.device !== this.deviceName) throw this.error('invalid-argument', op, `${what} lives on ${b.device}, this communicator on ${this.deviceName}`);
    if (!Number.isSafeInteger(b.length) || b.length < 0) throw this.error('invalid-argument', op, `${what}.length ${b.length} is not a non-negative integer`);
    if (NCCL_DTYPE[b.dtype] === undefined) throw this.error('invalid-argument', op, `${what}.dtype '${b.dtype}' is not supported`);
    return b;
  }

  private redop(op: string, r: ReduceOp, b: DeviceBuffer): number {
    if (!REDUCE_OPS.includes(r)) throw this.error('invalid-argument', op, `unknown reduce op '${r}' (expected ${REDUCE_OPS.join(', ')})`);
    if (b.dtype === 'u8') throw this.error('invalid-argument', op, 'u8 buffers are raw bytes and cannot be reduced');
    if (r === 'avg' && this.lib.version < 21000) throw this.error('invalid-argument', op, `'avg' needs NCCL >= 2.10 (loaded ${this.lib.version})`);
    return NCCL_OP[r];
  }

  private sameType(op: string, a: DeviceBuffer, b: DeviceBuffer): void {
    if (a.dtype !== b.dtype) throw this.error('invalid-argument', op, `input is ${a.dtype} but output is ${b.dtype}`);
  }

  private peer(op: string, p: number, what = 'peer'): void {
    if (!Number.isInteger(p) || p < 0 || p >= this.size) throw this.error('invalid-argument', op, `${what} ${p} out of range [0, ${this.size})`);
  }

  // ---- enqueueing ---------------------------------------------------------------------------------------------
  private enqueue(op: string, issue: (stream: bigint) => void, hostSync = false): Work {
    this.live(op);
    const gpu = this.gpu;
    try {
      gpu.makeCurrent();
      // the collective must see what the compute stream wrote before this call
      gpu.record(this.preEvent, this.computeStream);
      gpu.streamWait(this.commStream, this.preEvent);
      issue(this.commStream);
      const ev = this.freeEvents.pop() ?? gpu.createEvent();
      gpu.record(ev, this.commStream);
      const w = new NcclWork(this, op, ev, hostSync);
      this.pending.add(w);
      this.arm();
      return w;
    } catch (e) {
      if (e instanceof CollectiveError) throw e;
      throw this.error('backend', op, (e as Error).message);
    }
  }

  private call(op: string, fn: string, ...args: unknown[]): void {
    this.check(op, this.lib.f[fn]!(...args) as number, fn);
  }

  allReduce(buf: CommBuffer, op: ReduceOp = 'sum'): Work {
    const b = this.device('allReduce', buf, 'buf');
    const r = this.redop('allReduce', op, b);
    return this.enqueue('allReduce', (s) => this.call('allReduce', 'ncclAllReduce', b.ptr, b.ptr, b.length, NCCL_DTYPE[b.dtype], r, this.comm, s));
  }

  allGather(input: CommBuffer, output: CommBuffer): Work {
    const i = this.device('allGather', input, 'input'), o = this.device('allGather', output, 'output');
    this.sameType('allGather', i, o);
    if (o.length !== i.length * this.size) throw this.error('invalid-argument', 'allGather', `output.length ${o.length} != size ${this.size} x input.length ${i.length}`);
    return this.enqueue('allGather', (s) => this.call('allGather', 'ncclAllGather', i.ptr, o.ptr, i.length, NCCL_DTYPE[i.dtype], this.comm, s));
  }

  reduceScatter(input: CommBuffer, output: CommBuffer, op: ReduceOp = 'sum'): Work {
    const i = this.device('reduceScatter', input, 'input'), o = this.device('reduceScatter', output, 'output');
    this.sameType('reduceScatter', i, o);
    const r = this.redop('reduceScatter', op, i);
    if (i.length !== o.length * this.size) throw this.error('invalid-argument', 'reduceScatter', `input.length ${i.length} != size ${this.size} x output.length ${o.length}`);
    return this.enqueue('reduceScatter', (s) => this.call('reduceScatter', 'ncclReduceScatter', i.ptr, o.ptr, o.length, NCCL_DTYPE[i.dtype], r, this.comm, s));
  }

  broadcast(buf: CommBuffer, root: number): Work {
    const b = this.device('broadcast', buf, 'buf');
    this.peer('broadcast', root, 'root');
    return this.enqueue('broadcast', (s) => this.call('broadcast', 'ncclBroadcast', b.ptr, b.ptr, b.length, NCCL_DTYPE[b.dtype], root, this.comm, s));
  }

  send(buf: CommBuffer, peer: number): Work { return this.p2p('send', buf, peer); }
  recv(buf: CommBuffer, peer: number): Work { return this.p2p('recv', buf, peer); }

  private p2p(op: 'send' | 'recv', buf: CommBuffer, peer: number): Work {
    const b = this.device(op, buf, 'buf');
    this.peer(op, peer);
    if (peer === this.rank) throw this.error('invalid-argument', op, `${op} to self (rank ${peer}): copy the buffer instead`);
    const fn = op === 'send' ? 'ncclSend' : 'ncclRecv';
    return this.enqueue(op, (s) => this.call(op, fn, b.ptr, b.length, NCCL_DTYPE[b.dtype], peer, this.comm, s));
  }

  /**
   * Uneven all-to-all as torch does it: one ncclGroupStart/End bracket holding, per peer, an ncclSend of
   * sendCounts[p] elements and an ncclRecv of recvCounts[p] (zero counts skipped on both sides). NCCL cannot
   * check recvCounts[p] == peer's sendCounts[rank] without another exchange: a mismatch ends in the watchdog's
   * timeout (or an NCCL error), not in a silent wrong result on a well-behaved NCCL.
   */
  allToAll(input: CommBuffer, output: CommBuffer, sendCounts?: readonly number[], recvCounts?: readonly number[]): Work {
    const op = 'allToAll';
    const i = this.device(op, input, 'input'), o = this.device(op, output, 'output');
    this.sameType(op, i, o);
    const even = (n: number, what: string): number[] => {
      if (n % this.size !== 0) throw this.error('invalid-argument', op, `${what}.length ${n} is not divisible by size ${this.size}; pass sendCounts/recvCounts`);
      return new Array<number>(this.size).fill(n / this.size);
    };
    if ((sendCounts === undefined) !== (recvCounts === undefined)) throw this.error('invalid-argument', op, 'pass both sendCounts and recvCounts, or neither');
    const sc = sendCounts ? [...sendCounts] : even(i.length, 'input');
    const rc = recvCounts ? [...recvCounts] : even(o.length, 'output');
    for (const [c, what, buf] of [[sc, 'sendCounts', i], [rc, 'recvCounts', o]] as const) {
      if (c.length !== this.size || c.some((x) => !Number.isInteger(x) || x < 0)) throw this.error('invalid-argument', op, `${what} must hold ${this.size} non-negative integers`);
      const total = c.reduce((a, b) => a + b, 0);
      if (total > buf.length) throw this.error('invalid-argument', op, `${what} sum ${total} exceeds the buffer's ${buf.length} elements`);
    }
    const es = BigInt(bytesPer(i.dtype)), dt = NCCL_DTYPE[i.dtype];
    return this.enqueue(op, (s) => {
      this.call(op, 'ncclGroupStart');
      let failure: unknown;
      try {
        let so = 0n, ro = 0n;
        for (let p = 0; p < this.size; p++) {
          if (sc[p]! > 0) this.call(op, 'ncclSend', i.ptr + so * es, sc[p], dt, p, this.comm, s);
          if (rc[p]! > 0) this.call(op, 'ncclRecv', o.ptr + ro * es, rc[p], dt, p, this.comm, s);
          so += BigInt(sc[p]!); ro += BigInt(rc[p]!);
        }
      } catch (e) { failure = e; }
      // the group must be closed even after a failed member, or the next NCCL call on this thread joins it
      const end = this.lib.f.ncclGroupEnd!() as number;
      if (failure) throw failure;
      this.check(op, end, 'ncclGroupEnd');
    });
  }

  /** NCCL has no barrier: a 1-element all-reduce whose Work waits on the host for the device, as torch does. */
  barrier(): Work {
    this.live('barrier');
    if (this.scratch === 0n) { this.gpu.makeCurrent(); this.scratch = this.gpu.alloc(4); }
    const p = this.scratch;
    return this.enqueue('barrier', (s) => this.call('barrier', 'ncclAllReduce', p, p, 1, NCCL_DTYPE.i32, NCCL_OP.sum, this.comm, s), true);
  }

  split(color: number, key: number = this.rank): NcclCommunicator | null {
    const op = 'split';
    this.live(op);
    if (!this.lib.split) throw this.error('backend', op, `ncclCommSplit is not exported by ${this.lib.path} (needs NCCL >= 2.18 / a matching RCCL); create the sub-communicator with initNccl and its own unique id instead`);
    if (!Number.isInteger(color) || !Number.isInteger(key)) throw this.error('invalid-argument', op, `color ${color} and key ${key} must be integers`);
    this.gpu.makeCurrent();
    const out = [0];
    // NCCL_SPLIT_NOCOLOR (-1): this rank joins no new communicator (but must still take part in the call)
    this.check(op, this.lib.split(this.comm, color < 0 ? -1 : color, key, out, null) as number, 'ncclCommSplit');
    const handle = BigInt(out[0]!);
    if (color < 0 || handle === 0n) return null;
    const size = [0], rank = [0];
    this.call(op, 'ncclCommCount', handle, size);
    this.call(op, 'ncclCommUserRank', handle, rank);
    return new NcclCommunicator({
      lib: this.lib, shared: this.shared, comm: handle, rank: rank[0]!, size: size[0]!,
      name: `${this.name}/split(color=${color})`, timeoutMs: this.timeoutMs, blockingWait: this.blockingWait,
      pollMs: this.pollMs, computeStream: this.computeStream,
    });
  }

  // ---- progress, watchdog, teardown ------------------------------------------------------------------------
  /** Makes the compute stream wait for `w` (stream-ordered completion). */
  computeWaits(w: NcclWork): void {
    this.gpu.makeCurrent();
    this.gpu.streamWait(this.computeStream, w.event);
  }

  /** Queries `w`'s event; completes it when the device is done. */
  poll(w: NcclWork): void {
    if (w.state !== 'pending') return;
    try {
      this.gpu.makeCurrent();
      if (this.gpu.query(w.event)) this.finish(w);
    } catch (e) {
      this.abort('backend', `event query failed: ${(e as Error).message}`);
    }
  }

  private finish(w: NcclWork): void {
    w.state = 'done';
    this.pending.delete(w);
    this.freeEvents.push(w.event); // a completed event can be re-recorded: nothing waits on its old record any more
    for (const x of w.waiters.splice(0)) x.resolve();
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.pollMs);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private disarm(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The watchdog: completes finished work, surfaces asynchronous NCCL errors, aborts on timeout. */
  private tick(): void {
    for (const w of [...this.pending]) this.poll(w);
    if (this.broken || this.destroyed) return;
    const err = [0];
    const r = this.lib.f.ncclCommGetAsyncError!(this.comm, err) as number;
    const code = r !== 0 ? r : err[0]!;
    if (code !== 0 && code !== NCCL_IN_PROGRESS) {
      this.abort(kindOf(code) === 'invalid-argument' ? 'backend' : kindOf(code), `asynchronous NCCL error ${NCCL_RESULT[code] ?? code}: ${this.lib.errorString(code)}`);
      return;
    }
    const now = Date.now();
    for (const w of this.pending) {
      if (now - w.issuedAt > this.timeoutMs) {
        this.abort('timeout', `${w.op} did not complete within ${this.timeoutMs} ms (a peer died, or ranks issued mismatched collectives); communicator aborted with ncclCommAbort`);
        return;
      }
    }
    if (this.pending.size === 0) this.disarm();
  }

  /** ncclCommAbort, then every pending Work fails with the same cause. */
  private abort(kind: FailureKind, detail: string): void {
    if (this.broken) return;
    this.broken = this.error(kind, 'watchdog', detail);
    this.disarm();
    try { this.lib.f.ncclCommAbort!(this.comm); } catch { /* the error below is what matters */ }
    this.comm = 0n;
    for (const w of this.pending) {
      w.state = 'failed';
      w.error = this.error(kind, w.op, detail);
      for (const x of w.waiters.splice(0)) x.reject(w.error);
    }
    this.pending.clear();
  }

  destroy(): void {
    if (this.destroyed) return;
    const gpu = this.gpu;
    if (this.pending.size > 0 && !this.broken) this.abort('destroyed', 'communicator destroyed with work pending');
    this.destroyed = true;
    this.disarm();
    try {
      gpu.makeCurrent();
      // ncclCommDestroy flushes outstanding work and could block on a dead peer: an aborted comm is already freed
      if (this.comm !== 0n) this.lib.f.ncclCommDestroy!(this.comm);
      this.comm = 0n;
      for (const e of [this.preEvent, ...this.freeEvents]) gpu.destroyEvent(e);
      this.freeEvents.length = 0;
      if (this.scratch !== 0n) gpu.free(this.scratch);
      gpu.destroyStream(this.commStream);
    } finally {
      if (--this.shared.refs === 0) gpu.release();
    }
  }
}
