// A rank's communication thread. The rank's own thread only posts operations here and later picks up
// completions, so a collective keeps moving while that thread is stuck in a long synchronous native kernel: this
// worker exchanges buffer descriptors with its peers' comm workers (MessagePorts, one per peer), moves and
// reduces the data in shared memory itself, and writes a completion flag the rank can read without its event
// loop. It never blocks on a peer: everything is driven by messages, so many communicators (TP, DP, EP groups)
// progress side by side and a dead or mismatched peer becomes an error instead of a hang.
import { emulatedSeconds } from './protocol.js';
import type { ControlMsg, LinkEmulation, OpDesc, PeerMsg, ToWorker, WireError } from './protocol.js';
import { parentChannel, sleepSync } from './runtime.js';
import type { Port } from './runtime.js';
import { checkCollective, checkP2P, execute, opBytes } from './algorithms.js';

interface Op { opId: number; seq: number; peer?: number; desc: OpDesc; child?: { id: string; name: string; slot: SharedArrayBuffer }; phase: number; timer?: ReturnType<typeof setTimeout>; t0: number }
interface Comm {
  id: string; name: string; members: number[] | null; me: number;
  queue: Op[]; cur: Op | null;
  descs: Map<number, Map<number, OpDesc>>; dones: Map<number, Set<number>>;
  p2p: Map<string, OpDesc>; sends: Map<string, Op>;
  broken: WireError | null; gone: Map<number, string>;
}

const { port: parent } = parentChannel();
let worldRank = 0;
let ports: (Port | null)[] = [];
let status: Int32Array<ArrayBufferLike> = new Int32Array(1);
let doneAt: Float64Array<ArrayBufferLike> = new Float64Array(1);
let timeoutMs = 300_000;
let link: LinkEmulation | null = null;
const comms = new Map<string, Comm>();
const destroyedIds = new Set<string>();
const allPorts: Port[] = [];

function comm(id: string): Comm {
  let c = comms.get(id);
  if (!c) {
    c = { id, name: id, members: null, me: -1, queue: [], cur: null, descs: new Map(), dones: new Map(), p2p: new Map(), sends: new Map(), broken: null, gone: new Map() };
    comms.set(id, c);
  }
  return c;
}

function post(to: number, m: PeerMsg): void {
  ports[to]?.postMessage(m);
}

function finish(op: Op, err?: WireError): void {
  if (op.timer) clearTimeout(op.timer);
  op.timer = undefined;
  if (err && op.child) {
    // a failed split leaves the new communicator broken too, so operations already issued on it fail
    const ch = comm(op.child.id);
    ch.members ??= [];
    ch.broken ??= err;
    breakComm(ch, err);
    const slot = new Int32Array(op.child.slot);
    Atomics.store(slot, 0, -1);
    Atomics.notify(slot, 0);
  }
  doneAt[op.opId % doneAt.length] = performance.timeOrigin + performance.now(); // published by the Atomics.store below
  Atomics.store(status, op.opId % status.length, err ? -(op.opId + 1) : op.opId + 1);
  parent.postMessage(err ? { t: 'done', opId: op.opId, err } : { t: 'done', opId: op.opId });
}

/** Marks the communicator broken: the current, queued and unmatched send operations fail with `err`. */
function breakComm(c: Comm, err: WireError): void {
  if (!c.broken) c.broken = err;
  if (c.cur) { finish(c.cur, err); c.cur = null; }
  for (const op of c.queue.splice(0)) finish(op, { ...err, detail: `communicator failed earlier: ${err.detail}` });
  for (const [k, op] of c.sends) { finish(op, err); c.sends.delete(k); }
}

function start(c: Comm, op: Op): void {
  op.t0 = performance.now();
  op.timer = setTimeout(() => onTimeout(c, op), timeoutMs);
  const members = c.members!;
  if ((op.desc.kind === 'send' || op.desc.kind === 'recv') && !(Number.isInteger(op.peer) && op.peer! >= 0 && op.peer! < members.length && op.peer !== c.me)) {
    op.phase = 9;
    finish(op, { kind: 'invalid-argument', detail: `peer ${op.peer} is not another rank of this ${members.length}-rank communicator` });
    return;
  }
  if (op.desc.kind === 'send') {
    const to = members[op.peer!]!;
    post(to, { t: 'p2p', comm: c.id, seq: op.seq, from: worldRank, desc: op.desc });
    c.sends.set(`${to}:${op.seq}`, op);
    op.phase = 9; // leaves the queue: a send completes when the receiver acknowledges, later ops go on (MPI_Isend)
    return;
  }
  if (op.desc.kind === 'recv') { op.phase = 1; return; }
  let m = c.descs.get(op.seq);
  if (!m) c.descs.set(op.seq, (m = new Map()));
  m.set(worldRank, op.desc);
  for (const w of members) if (w !== worldRank) post(w, { t: 'desc', comm: c.id, seq: op.seq, from: worldRank, desc: op.desc });
  op.phase = 1;
}

function missingGone(c: Comm, waitingFor: Iterable<number>): WireError | null {
  for (const w of waitingFor) {
    const why = c.gone.get(w);
    if (why !== undefined) return { kind: 'peer-failed', detail: `rank ${c.members!.indexOf(w)} ${why}`, culprit: c.members!.indexOf(w) };
  }
  return null;
}

/** Runs `op` as far as the messages received allow; true when it left the head of the queue. */
function advance(c: Comm, op: Op): boolean {
  const members = c.members!;
  const size = members.length;
  if (op.phase === 9) return true;
  if (op.phase === 2) return false; // emulated link still "transferring"
  if (op.desc.kind === 'recv') {
    const from = members[op.peer!]!;
    const key = `${from}:${op.seq}`;
    const sd = c.p2p.get(key);
    if (!sd) { const e = missingGone(c, [from]); if (e) breakComm(c, e); return !!e; }
    c.p2p.delete(key);
    const err = checkP2P(op.desc, sd, op.peer!);
    if (!err) execute(c.me, size, 'recv', [sd, op.desc], 0);
    post(from, { t: 'p2pdone', comm: c.id, seq: op.seq, from: worldRank, ...(err ? { err } : {}) } as PeerMsg);
    if (err) { breakComm(c, err); return true; }
    if (delayed(c, op)) return false;
    finish(op); c.cur = null;
    return true;
  }
  if (op.phase === 1) {
    const m = c.descs.get(op.seq)!;
    if (m.size < size) {
      const e = missingGone(c, members.filter((w) => !m.has(w)));
      if (e) breakComm(c, e);
      return !!e;
    }
    const all = members.map((w) => m.get(w)!);
    c.descs.delete(op.seq);
    const err = checkCollective(op.desc.kind, all);
    if (err) { breakComm(c, err); return true; }
    if (op.desc.kind === 'split') { doSplit(c, op, all); finish(op); c.cur = null; return true; }
    execute(c.me, size, op.desc.kind, all, op.desc.root ?? 0);
    op.phase = 3;
    if (op.desc.kind !== 'barrier') for (const w of members) if (w !== worldRank) post(w, { t: 'done', comm: c.id, seq: op.seq, from: worldRank });
    if (delayed(c, op, all)) return false;
  }
  if (op.phase === 3) {
    const d = c.dones.get(op.seq) ?? new Set<number>();
    if (op.desc.kind !== 'barrier' && d.size < size - 1) {
      const e = missingGone(c, members.filter((w) => w !== worldRank && !d.has(w)));
      if (e) breakComm(c, e);
      return !!e;
    }
    c.dones.delete(op.seq);
    finish(op);
    c.cur = null;
    return true;
  }
  return false;
}

/**
 * Link emulation: the operation may not complete before its modelled transfer time has passed. Long waits use a
 * timer (other communicators keep going); sub-2 ms ones block this comm thread briefly. True while waiting.
 */
function delayed(c: Comm, op: Op, all?: OpDesc[]): boolean {
  if (!link) return false;
  const want = emulatedSeconds(link, op.desc.kind, opBytes(op.desc, all, c.me), c.members!.length) * 1000;
  const left = want - (performance.now() - op.t0);
  if (left > 2) {
    const resume = op.phase;
    op.phase = 2;
    setTimeout(() => {
      if (c.cur !== op) return; // failed meanwhile
      if (op.desc.kind === 'recv') { finish(op); c.cur = null; } else op.phase = resume;
      pump(c);
    }, left);
    return true;
  }
  sleepSync(left);
  return false;
}

function pump(c: Comm): void {
  while (c.members && !c.broken) {
    if (!c.cur) {
      const next = c.queue.shift();
      if (!next) return;
      c.cur = next;
      start(c, next);
      if (next.phase === 9) { c.cur = null; continue; }
    }
    if (!advance(c, c.cur!)) return;
  }
}

function doSplit(c: Comm, op: Op, all: OpDesc[]): void {
  const mine = op.desc.color!;
  if (mine < 0 || !op.child) return;
  const group = all.map((d, r) => ({ r, color: d.color!, key: d.key ?? 0 })).filter((x) => x.color === mine)
    .sort((a, b) => a.key - b.key || a.r - b.r);
  const child = comm(op.child.id);
  child.name = op.child.name;
  child.members = group.map((x) => c.members![x.r]!);
  child.me = child.members.indexOf(worldRank);
  for (const [w, why] of c.gone) child.gone.set(w, why);
  const slot = new Int32Array(op.child.slot);
  slot[1] = child.me;
  slot[2] = child.members.length;
  Atomics.store(slot, 0, 1);
  Atomics.notify(slot, 0);
  queueMicrotask(() => pump(child));
}

function onTimeout(c: Comm, op: Op): void {
  op.timer = undefined;
  const waiting = op.desc.kind === 'send' ? 'the receiver' : op.desc.kind === 'recv' ? `rank ${op.peer}'s matching send` : 'the other ranks';
  const err: WireError = { kind: 'timeout', detail: `timed out after ${timeoutMs} ms waiting for ${waiting} (seq ${op.seq})` };
  if (op.desc.kind === 'send') {
    for (const [k, o] of c.sends) if (o === op) c.sends.delete(k);
    finish(op, err);
    return;
  }
  breakComm(c, err);
  for (const w of c.members ?? []) if (w !== worldRank) post(w, { t: 'abort', comm: c.id, from: worldRank, detail: err.detail });
}

function onPeer(m: PeerMsg & { err?: WireError }): void {
  if (destroyedIds.has(m.comm)) return;
  const c = comm(m.comm);
  switch (m.t) {
    case 'desc': { let x = c.descs.get(m.seq); if (!x) c.descs.set(m.seq, (x = new Map())); x.set(m.from, m.desc); break; }
    case 'done': { let x = c.dones.get(m.seq); if (!x) c.dones.set(m.seq, (x = new Set())); x.add(m.from); break; }
    case 'p2p': c.p2p.set(`${m.from}:${m.seq}`, m.desc); break;
    case 'p2pdone': {
      const k = `${m.from}:${m.seq}`;
      const op = c.sends.get(k);
      if (op) { c.sends.delete(k); finish(op, m.err); }
      break;
    }
    case 'abort': if (c.members) breakComm(c, { kind: 'peer-failed', detail: `rank ${c.members.indexOf(m.from)} gave up: ${m.detail}`, culprit: c.members.indexOf(m.from) }); else c.gone.set(m.from, `gave up: ${m.detail}`); break;
    case 'destroyed': c.gone.set(m.from, 'destroyed the communicator'); failSendsTo(c, m.from); break;
  }
  pump(c);
}

function failSendsTo(c: Comm, w: number): void {
  for (const [k, op] of c.sends) if (k.startsWith(`${w}:`)) { c.sends.delete(k); finish(op, { kind: 'peer-failed', detail: `rank ${c.members?.indexOf(w)} ${c.gone.get(w)}` }); }
}

function onControl(m: ControlMsg): void {
  for (const c of comms.values()) {
    if (c.members && !c.members.includes(m.worldRank)) continue;
    c.gone.set(m.worldRank, `failed: ${m.reason}`);
    failSendsTo(c, m.worldRank);
    pump(c);
  }
}

function destroy(id: string): void {
  const c = comms.get(id);
  if (!c) return;
  breakComm(c, { kind: 'destroyed', detail: 'the communicator was destroyed while the operation was pending' });
  for (const w of c.members ?? []) if (w !== worldRank) post(w, { t: 'destroyed', comm: id, from: worldRank });
  comms.delete(id);
  destroyedIds.add(id);
}

parent.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'init': {
      worldRank = m.worldRank; ports = m.ports; timeoutMs = m.timeoutMs; link = m.link;
      status = new Int32Array(m.status);
      doneAt = new Float64Array(m.doneAt);
      const w = comm('world');
      w.name = 'world'; w.members = Array.from({ length: m.worldSize }, (_, i) => i); w.me = worldRank;
      for (const p of ports) if (p) { allPorts.push(p); p.on('message', onPeer); }
      if (m.control) { allPorts.push(m.control); m.control.on('message', onControl); }
      break;
    }
    case 'op': {
      const c = comm(m.comm);
      const op: Op = { opId: m.opId, seq: m.seq, peer: m.peer, desc: m.desc, child: m.child, phase: 0, t0: 0 };
      if (c.broken) { finish(op, { ...c.broken, detail: `communicator failed earlier: ${c.broken.detail}` }); break; }
      c.queue.push(op);
      pump(c);
      break;
    }
    case 'destroy': {
      if (!m.all) { destroy(m.comm); break; }
      for (const id of [...comms.keys()]) destroy(id);
      for (const p of allPorts) p.close();
      parent.postMessage({ t: 'closed' });
      // Node and Bun close the worker's parent port (the worker then exits by itself); Deno's parentPort has no
      // close(), and its worker ends when the owner terminates it on 'closed'
      (parent as { close?: () => void }).close?.();
      break;
    }
    case 'register': break;
  }
});
