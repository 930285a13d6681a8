// The rank-side half of the threads backend: a ThreadsCommunicator turns each call into a message to this
// rank's comm worker (./comm-worker.ts) and returns a Work at once. The worker does all the waiting and data
// movement, so the rank's thread may sit in a synchronous native kernel meanwhile; the Work's `completed` reads a
// flag in shared memory the worker sets (true even before this thread's event loop runs again), and its promise
// settles when the event loop next runs.
import { envVar } from '../env.js';
import { CollectiveError, defaultTimeoutMs } from '../errors.js';
import { dtypeOf, isDeviceBuffer, REDUCE_OPS } from '../buffers.js';
import type { CommBuffer, Communicator, CommunicatorOptions, HostBuffer, ReduceOp, Work } from '../types.js';
import type { FailureKind } from '../errors.js';
import { parseLinkEmulation } from './protocol.js';
import type { FromWorker, LinkEmulation, OpDesc, OpKind, ToWorker } from './protocol.js';
import { spawnWorker } from './runtime.js';
import type { Port, Worker } from './runtime.js';
import { stage, StagingPool } from './staging.js';
import type { Staged } from './staging.js';

export interface ThreadsOptions extends CommunicatorOptions {
  /** e.g. '25GB/s,10us'; default env FARSKIP_EMULATE_LINK; null turns it off */
  linkEmulation?: string | null;
}

/** What one rank needs to join a threads world: ports to every peer's comm worker (null at its own index). */
export interface ThreadsBootstrap {
  worldRank: number;
  worldSize: number;
  ports: (Port | null)[];
  /** the launcher's channel for "rank N died" notices (null without a launcher) */
  control: Port | null;
}

const STATUS_SLOTS = 1 << 16;

type ErrorMaker = (kind: FailureKind, detail: string, culprit?: number) => CollectiveError;
interface Pending { comm: string; settle: (err?: CollectiveError) => void; mk: ErrorMaker }

class ThreadsWork implements Work {
  #state: 'pending' | 'ok' | 'failed' = 'pending';
  readonly #p: Promise<void>;
  #resolve!: () => void;
  #reject!: (e: CollectiveError) => void;
  #completedAt: number | undefined;
  constructor(private readonly status: Int32Array | null, private readonly opId: number, private readonly staged: Staged[],
    private readonly doneAt: Float64Array | null = null) {
    this.#p = new Promise<void>((res, rej) => { this.#resolve = res; this.#reject = rej; });
    this.#p.catch(() => {}); // a Work nobody waits on must not become an unhandled rejection
  }
  wait(): Promise<void> { return this.#p; }
  /** True once the outputs hold the result; readable while this thread never yielded to its event loop. */
  get completed(): boolean {
    if (this.#state === 'pending' && this.status && Atomics.load(this.status, this.opId % STATUS_SLOTS) === this.opId + 1) this.settle();
    return this.#state === 'ok';
  }
  get completedAt(): number | undefined {
    return this.completed ? this.#completedAt : undefined;
  }
  settle(err?: CollectiveError): void {
    if (this.#state !== 'pending') return;
    // the worker stamped the slot before publishing the status this thread observed
    this.#completedAt = this.doneAt ? this.doneAt[this.opId % STATUS_SLOTS] : performance.timeOrigin + performance.now();
    this.#state = err ? 'failed' : 'ok';
    for (const s of this.staged) s.release?.(!err);
    if (err) this.#reject(err); else this.#resolve();
  }
}

/** One per rank and world: the comm worker, the table of pending operations, the staging pool. */
export class RankLink {
  readonly worker: Worker;
  readonly status = new Int32Array(new SharedArrayBuffer(4 * STATUS_SLOTS));
  readonly doneAt = new Float64Array(new SharedArrayBuffer(8 * STATUS_SLOTS));
  readonly pool = new StagingPool();
  readonly pending = new Map<number, Pending>();
  closed = false;
  #nextOp = 0;
  #refd = false;

  constructor(readonly boot: ThreadsBootstrap, readonly timeoutMs: number, readonly link: LinkEmulation | null) {
    this.worker = spawnWorker(new URL('./comm-worker.js', import.meta.url), { name: `farskip-comm-${boot.worldRank}` });
    this.worker.unref(); // held only while operations are pending (see #ref), so an idle world never keeps the process alive
    this.worker.on('message', (m: FromWorker) => this.#onMessage(m));
    this.worker.on('error', (e: Error) => this.#failAll('backend', `comm worker crashed: ${e.message}`));
    this.worker.on('exit', () => this.#failAll('backend', 'comm worker exited'));
    const ports = boot.ports.filter((p): p is Port => !!p);
    const init: ToWorker = { t: 'init', worldRank: boot.worldRank, worldSize: boot.worldSize, ports: boot.ports, control: boot.control, status: this.status.buffer as SharedArrayBuffer, doneAt: this.doneAt.buffer as SharedArrayBuffer, timeoutMs, link };
    this.worker.postMessage(init, [...ports, ...(boot.control ? [boot.control] : [])] as never);
  }

  issue(comm: string, msg: Omit<ToWorker & { t: 'op' }, 'opId' | 't'>, staged: Staged[], onError: ErrorMaker): Work {
    if (this.closed) return failed(onError('destroyed', 'the communicator was destroyed'));
    const opId = this.#nextOp++;
    const w = new ThreadsWork(this.status, opId, staged, this.doneAt);
    this.pending.set(opId, { comm, mk: onError, settle: (e) => w.settle(e) });
    if (!this.#refd) { this.worker.ref(); this.#refd = true; }
    this.worker.postMessage({ t: 'op', opId, ...msg } satisfies ToWorker);
    return w;
  }

  #onMessage(m: FromWorker): void {
    if (m.t === 'closed') { void this.worker.terminate(); return; } // Deno's worker cannot close its own port
    if (m.t !== 'done') return;
    const p = this.pending.get(m.opId);
    if (!p) return;
    this.pending.delete(m.opId);
    p.settle(m.err ? p.mk(m.err.kind, m.err.detail, m.err.culprit) : undefined);
    this.#unrefIfIdle();
  }

  #unrefIfIdle(): void {
    if (this.pending.size === 0 && this.#refd) { this.worker.unref(); this.#refd = false; }
  }

  failComm(comm: string | null, kind: FailureKind, detail: string): void {
    for (const [id, p] of this.pending) {
      if (comm !== null && p.comm !== comm) continue;
      this.pending.delete(id);
      p.settle(p.mk(kind, detail));
    }
    this.#unrefIfIdle();
  }

  #failAll(kind: FailureKind, detail: string): void {
    if (this.closed) return;
    this.closed = true;
    this.failComm(null, kind, detail);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.postMessage({ t: 'destroy', comm: 'world', all: true } satisfies ToWorker);
    this.failComm(null, 'destroyed', 'the communicator was destroyed while the operation was pending');
    this.worker.unref();
  }
}

export { envVar };

function failed(e: CollectiveError): Work {
  const p = Promise.reject(e);
  p.catch(() => {});
  return { wait: () => p, completed: false };
}

export class ThreadsCommunicator implements Communicator {
  readonly backend = 'threads';
  #seq = 0;
  #sendSeq = new Map<number, number>();
  #recvSeq = new Map<number, number>();
  #destroyed = false;
  readonly #children: ThreadsCommunicator[] = [];

  /** `where`: [rank, size] when known, or the split result slot [state, rank, size] the comm worker fills. */
  constructor(private readonly rl: RankLink, readonly id: string, readonly name: string, private readonly where: Int32Array) {}

  static fromBootstrap(boot: ThreadsBootstrap, options: ThreadsOptions = {}): ThreadsCommunicator {
    const spec = options.linkEmulation === undefined ? envVar('FARSKIP_EMULATE_LINK') : options.linkEmulation ?? undefined;
    const rl = new RankLink(boot, options.timeoutMs ?? defaultTimeoutMs(), parseLinkEmulation(spec));
    return new ThreadsCommunicator(rl, 'world', 'world', Int32Array.of(1, boot.worldRank, boot.worldSize));
  }

  /** Link emulation in effect (FARSKIP_EMULATE_LINK), so benchmark outputs can say so; null when off. */
  get linkEmulation(): LinkEmulation | null { return this.rl.link; }
  get timeoutMs(): number { return this.rl.timeoutMs; }
  get worldRank(): number { return this.rl.boot.worldRank; }

  #resolved(): Int32Array {
    const w = this.where;
    if (Atomics.load(w, 0) === 0) Atomics.wait(w, 0, 0, this.rl.timeoutMs); // split still running in the comm workers
    const s = Atomics.load(w, 0);
    if (s !== 1) throw new CollectiveError(s === 0 ? 'timeout' : 'peer-failed', 'split', this.name, -1, s === 0 ? 'the split did not complete' : 'the split that created this communicator failed');
    return w;
  }
  get rank(): number { return this.#resolved()[1]!; }
  get size(): number { return this.#resolved()[2]!; }

  #err(op: string): ErrorMaker {
    return (kind, detail, culprit) => new CollectiveError(kind, op, this.name, Atomics.load(this.where, 0) === 1 ? this.where[1]! : -1, detail, culprit);
  }

  #issue(kind: OpKind, desc: OpDesc, bufs: [CommBuffer, boolean, boolean][], extra: { peer?: number; seq?: number; child?: { id: string; name: string; slot: SharedArrayBuffer } } = {}): Work {
    const mk = this.#err(kind);
    if (this.#destroyed) return failed(mk('destroyed', 'the communicator was destroyed'));
    const staged: Staged[] = [];
    try {
      for (const [b] of bufs) if (isDeviceBuffer(b)) throw new TypeError('the threads backend moves host typed arrays; device buffers need the nccl/rccl backend');
      if (desc.red !== undefined && !REDUCE_OPS.includes(desc.red)) throw new TypeError(`unknown reduce op '${desc.red}' (expected ${REDUCE_OPS.join(', ')})`);
      if (bufs.length) desc.dtype = dtypeOf(bufs[0]![0]);
      for (const [b] of bufs) if (dtypeOf(b) !== desc.dtype) throw new TypeError(`input and output must have the same dtype (${desc.dtype} vs ${dtypeOf(b)})`);
      bufs.forEach(([b, input, output], i) => { const s = stage(this.rl.pool, b as HostBuffer, input, output); staged.push(s); if (i === 0) desc.in = s.ref; else desc.out = s.ref; });
    } catch (e) {
      return failed(mk('invalid-argument', (e as Error).message));
    }
    const seq = extra.seq ?? this.#seq++;
    return this.rl.issue(this.id, { comm: this.id, seq, desc, ...(extra.peer !== undefined ? { peer: extra.peer } : {}), ...(extra.child ? { child: extra.child } : {}) }, staged, mk);
  }

  allReduce(buf: CommBuffer, op: ReduceOp = 'sum'): Work {
    return this.#issue('allReduce', { kind: 'allReduce', red: op }, [[buf, true, true]]);
  }
  allGather(input: CommBuffer, output: CommBuffer): Work {
    return this.#issue('allGather', { kind: 'allGather' }, [[input, true, false], [output, false, true]]);
  }
  reduceScatter(input: CommBuffer, output: CommBuffer, op: ReduceOp = 'sum'): Work {
    return this.#issue('reduceScatter', { kind: 'reduceScatter', red: op }, [[input, true, false], [output, false, true]]);
  }
  allToAll(input: CommBuffer, output: CommBuffer, sendCounts?: readonly number[], recvCounts?: readonly number[]): Work {
    const desc: OpDesc = { kind: 'allToAll' };
    if (sendCounts) desc.sendCounts = [...sendCounts];
    if (recvCounts) desc.recvCounts = [...recvCounts];
    return this.#issue('allToAll', desc, [[input, true, false], [output, false, true]]);
  }
  broadcast(buf: CommBuffer, root: number): Work {
    return this.#issue('broadcast', { kind: 'broadcast', root }, [[buf, true, true]]);
  }
  send(buf: CommBuffer, peer: number): Work {
    const seq = this.#sendSeq.get(peer) ?? 0;
    this.#sendSeq.set(peer, seq + 1);
    return this.#issue('send', { kind: 'send' }, [[buf, true, false]], { peer, seq });
  }
  recv(buf: CommBuffer, peer: number): Work {
    const seq = this.#recvSeq.get(peer) ?? 0;
    this.#recvSeq.set(peer, seq + 1);
    return this.#issue('recv', { kind: 'recv' }, [[buf, false, true]], { peer, seq });
  }
  barrier(): Work {
    return this.#issue('barrier', { kind: 'barrier' }, []);
  }

  /**
   * Returns at once: the new communicator's rank and size are filled in by the comm workers when every member has
   * called split; reading them before that blocks (bounded by the timeout), while issuing operations does not.
   */
  split(color: number, key = 0): ThreadsCommunicator | null {
    const seq = this.#seq;
    if (!Number.isInteger(color)) throw new TypeError(`split: color must be an integer, got ${color}`);
    if (color < 0) { this.#issue('split', { kind: 'split', color: -1, key }, []); return null; }
    const slot = new SharedArrayBuffer(12);
    const child = { id: `${this.id}.${seq}.${color}`, name: `${this.name}/split(color=${color})`, slot };
    this.#issue('split', { kind: 'split', color, key }, [], { child });
    const c = new ThreadsCommunicator(this.rl, child.id, child.name, new Int32Array(slot));
    this.#children.push(c);
    return c;
  }

  /** Idempotent. Destroying the world communicator stops this rank's comm worker (and its split children). */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const c of this.#children) c.destroy();
    if (this.id === 'world') { this.rl.close(); return; }
    if (!this.rl.closed) this.rl.worker.postMessage({ t: 'destroy', comm: this.id, all: false } satisfies ToWorker);
    this.rl.failComm(this.id, 'destroyed', 'the communicator was destroyed while the operation was pending');
  }
}
