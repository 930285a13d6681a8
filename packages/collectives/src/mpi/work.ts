// The Work of an MPI request, completed in one of two ways (both drive MPI's progress engine):
//  - thread: a blocking MPI_Wait run through koffi's async call on a libuv thread, started at issue, so the
//    operation progresses while the rank's own thread computes; the completion crosses back through libuv
//    (tens of µs, more when threads outnumber cores).
//  - poll: nothing at issue; wait() spins MPI_Test on the calling thread for up to spinUs (a few µs per
//    completed small collective, as a C program's MPI_Wait) and hands the request to the thread above only if it
//    is still incomplete then. `completed` tests too.
// Operations of at least asyncBytes start in thread mode (their overlap with compute is the point); smaller ones
// poll (their latency is the point). MPI allows one thread at a time per request: a request is tested by the
// calling thread only until it is handed off, never after.
import type { CollectiveError, FailureKind } from '../errors.js';
import type { Work } from '../types.js';
import { errorString } from './lib.js';
import type { MpiLib } from './lib.js';

/** Process-wide MPI state: in-flight waits (MPI_Finalize must not run under a stuck MPI_Wait). */
export const mpiState = { inFlight: 0, finalized: false };

export interface Pending { op: string; reject(e: CollectiveError): void }

export interface WorkOwner {
  lib: MpiLib;
  pending: Set<Pending>;
  timeoutMs: number;
  spinUs: number;
  error(op: string, kind: FailureKind, detail: string): CollectiveError;
  kindOf(rc: number): FailureKind;
}

/** A Work over a promise: already settled ones (zero-size operations, argument errors) and self-receives. */
export class PromiseWork implements Work {
  completed = false;
  constructor(private readonly promise: Promise<void>) {
    promise.then(() => { this.completed = true; }, () => undefined); // unwaited failures are not unhandled
  }
  static resolved(): PromiseWork {
    const w = new PromiseWork(Promise.resolve());
    w.completed = true;
    return w;
  }
  wait(): Promise<void> {
    return this.promise;
  }
}

export class MpiRequestWork implements Work {
  private mode: 'poll' | 'thread' | 'done' = 'poll';
  private settled = false;
  private ok = false;
  private doneAt: number | undefined;
  private readonly promise: Promise<void>;
  private resolveFn!: () => void;
  private rejectFn!: (e: CollectiveError) => void;
  private readonly timer: ReturnType<typeof setTimeout>;
  private readonly entry: Pending;

  constructor(
    private readonly owner: WorkOwner,
    private readonly op: string,
    /** the MPI_Request cell, the status block and the buffers: alive until MPI has let go of them */
    private readonly req: Int32Array | BigInt64Array,
    private readonly status: Uint8Array,
    private readonly keep: unknown[],
    private readonly post: ((status: Uint8Array) => string | void | undefined) | undefined,
    threadNow: boolean,
  ) {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    this.promise.catch(() => undefined);
    this.entry = { op, reject: (e) => this.settle(e) };
    owner.pending.add(this.entry);
    this.timer = setTimeout(() => this.onTimeout(), owner.timeoutMs);
    if (threadNow) this.handOff();
  }

  get completed(): boolean {
    if (this.mode === 'poll' && !this.settled) this.test();
    return this.ok;
  }

  get completedAt(): number | undefined {
    return this.ok ? this.doneAt : undefined;
  }

  wait(): Promise<void> {
    if (this.mode === 'poll' && !this.settled) {
      const until = performance.now() + this.owner.spinUs / 1000;
      do {
        if (this.test()) return this.promise;
      } while (performance.now() < until);
      this.handOff();
    }
    return this.promise;
  }

  /** One MPI_Test; true when the request finished (successfully or not). */
  private test(): boolean {
    const flag = [0];
    const rc = this.owner.lib.fn.MPI_Test!(this.req, flag, this.status) as number;
    if (rc === 0 && !flag[0]) return false;
    this.finish(rc);
    return true;
  }

  private handOff(): void {
    this.mode = 'thread';
    mpiState.inFlight++;
    this.owner.lib.fn.MPI_Wait!.async(this.req, this.status, (err: unknown, rc: number) => {
      mpiState.inFlight--;
      // The buffers, the request cell and the status block must stay alive until MPI_Wait (on another thread)
      // has returned: it writes MPI_REQUEST_NULL into req and the status into status. If they were collected
      // earlier, MPI would write into freed memory (seen as random V8 crashes before these references existed).
      void this.keep; void this.req; void this.status;
      if (err) {
        this.mode = 'done';
        this.owner.pending.delete(this.entry);
        return this.settle(this.owner.error(this.op, 'backend', `MPI_Wait: ${String(err)}`));
      }
      this.finish(rc);
    });
  }

  private finish(rc: number): void {
    this.doneAt = performance.timeOrigin + performance.now();
    this.mode = 'done';
    this.owner.pending.delete(this.entry);
    if (rc !== 0) return this.settle(this.owner.error(this.op, this.owner.kindOf(rc), errorString(this.owner.lib, rc)));
    let msg: string | void | undefined;
    try {
      msg = this.post?.(this.status);
    } catch (e) {
      msg = (e as Error).message;
    }
    this.settle(msg ? this.owner.error(this.op, 'mismatch', msg) : undefined);
  }

  private onTimeout(): void {
    // A polled request nobody waited for may have finished long ago: test before declaring it stuck.
    if (this.mode === 'poll' && !this.settled && this.test()) return;
    this.owner.pending.delete(this.entry);
    this.settle(this.owner.error(this.op, 'timeout', `the operation did not complete within ${this.owner.timeoutMs} ms ` +
      '(a peer stopped or called a different operation). A waiting MPI thread cannot be cancelled: end the job with abort()'));
  }

  private settle(e?: CollectiveError): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    if (e) return this.rejectFn(e);
    this.ok = true;
    this.resolveFn();
  }
}
