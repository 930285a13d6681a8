// Data movement over shared memory, run by each rank's comm worker once every rank's descriptor (buffers,
// counts) is known. Each rank works on a disjoint part so all comm threads run in parallel and no part of a
// buffer has two writers:
//  - allReduce: rank r reduces slice r of the vector across every rank's buffer (chunked to stay in cache) and
//    writes it back into every rank's buffer: direct reduce-scatter + all-gather, each byte read once and written
//    once per rank, as a memcpy does;
//  - reduceScatter: rank r reduces block r of everyone's input into its own output;
//  - allGather / allToAll / broadcast / recv: each rank pulls what it receives into its own output.
// A rank's buffers may be touched by peers only between the descriptor exchange and the 'done' messages, which
// is why every data operation ends with a done from each peer.
import type { CommDType } from '../types.js';
import { bytesPer } from '../buffers.js';
import type { OpDesc, OpKind, WireError } from './protocol.js';
import { CHUNK, reduceChunk, viewOf } from './reduce.js';
import type { View } from './reduce.js';

const v = (dt: CommDType, b: { sab: SharedArrayBuffer; off: number; len: number }): View => viewOf(dt, b.sab, b.off, b.len);

const scratch = new Map<CommDType, View>();
function tmp(dt: CommDType): View {
  let t = scratch.get(dt);
  if (!t) scratch.set(dt, (t = viewOf(dt, new SharedArrayBuffer(CHUNK * bytesPer(dt)), 0, CHUNK)));
  return t;
}

/** Per-peer counts of an all-to-all, defaulting to an even split. */
export function counts(c: number[] | undefined, len: number, size: number): number[] {
  return c ?? Array.from({ length: size }, () => len / size);
}
function displs(c: number[]): number[] {
  const d = [0];
  for (let i = 0; i < c.length - 1; i++) d.push(d[i]! + c[i]!);
  return d;
}

export function execute(me: number, size: number, kind: OpKind, all: OpDesc[], root: number): void {
  const dt = all[0]!.dtype!;
  switch (kind) {
    case 'allReduce': {
      const bufs = all.map((d) => v(dt, d.in!));
      const n = bufs[0]!.length;
      const lo = Math.floor((me * n) / size), hi = Math.floor(((me + 1) * n) / size);
      if (size === 1 && all[0]!.red !== 'avg') return;
      const t = tmp(dt);
      for (let c = lo; c < hi; c += CHUNK) {
        const e = Math.min(hi, c + CHUNK);
        const part = reduceChunk(dt, all[0]!.red!, t, bufs, c, e);
        for (const b of bufs) b.set(part as never, c);
      }
      return;
    }
    case 'reduceScatter': {
      const out = v(dt, all[me]!.out!);
      const n = out.length;
      const ins = all.map((d) => v(dt, d.in!));
      const t = tmp(dt);
      for (let c = 0; c < n; c += CHUNK) {
        const e = Math.min(n, c + CHUNK);
        out.set(reduceChunk(dt, all[0]!.red!, t, ins, me * n + c, me * n + e) as never, c);
      }
      return;
    }
    case 'allGather': {
      const out = v(dt, all[me]!.out!);
      all.forEach((d, p) => out.set(v(dt, d.in!) as never, p * d.in!.len));
      return;
    }
    case 'allToAll': {
      const out = v(dt, all[me]!.out!);
      const rc = counts(all[me]!.recvCounts, all[me]!.out!.len, size);
      const rd = displs(rc);
      all.forEach((d, p) => {
        const sc = counts(d.sendCounts, d.in!.len, size);
        const sd = displs(sc)[me]!;
        if (sc[me]) out.set(v(dt, d.in!).subarray(sd, sd + sc[me]!) as never, rd[p]);
      });
      return;
    }
    case 'broadcast':
      if (me !== root) v(dt, all[me]!.in!).set(v(dt, all[root]!.in!) as never);
      return;
    case 'recv': // all = [sender's desc, receiver's desc]
      v(dt, all[1]!.in!).set(v(dt, all[0]!.in!) as never);
      return;
    default:
      return;
  }
}

/** Bytes this rank puts on its (emulated) link. */
export function opBytes(d: OpDesc, all: OpDesc[] | undefined, me: number): number {
  const b = d.dtype ? bytesPer(d.dtype) : 0;
  switch (d.kind) {
    case 'allGather': return (d.out?.len ?? 0) * b;
    case 'reduceScatter': return (d.in?.len ?? 0) * b;
    case 'allToAll': {
      const size = all?.length ?? 1;
      const sc = counts(d.sendCounts, d.in!.len, size), rc = counts(d.recvCounts, d.out!.len, size);
      const s = sc.reduce((a, x, p) => a + (p === me ? 0 : x), 0), r = rc.reduce((a, x, p) => a + (p === me ? 0 : x), 0);
      return Math.max(s, r) * b;
    }
    default: return (d.in?.len ?? 0) * b;
  }
}

const mismatch = (detail: string, culprit?: number): WireError => ({ kind: 'mismatch', detail, ...(culprit !== undefined ? { culprit } : {}) });
const invalid = (detail: string, culprit: number): WireError => ({ kind: 'invalid-argument', detail, culprit });

/**
 * Compares every rank's descriptor for one collective. Every rank runs the same check on the same descriptors,
 * so every rank reports the same error naming the same culprit.
 */
export function checkCollective(kind: OpKind, all: OpDesc[]): WireError | null {
  const size = all.length;
  const d0 = all[0]!;
  for (let p = 1; p < size; p++) {
    const d = all[p]!;
    if (d.kind !== d0.kind) return mismatch(`rank 0 called ${d0.kind} but rank ${p} called ${d.kind} at the same position (collectives issued in different orders?)`, p);
    if (kind === 'barrier' || kind === 'split') continue;
    if (d.dtype !== d0.dtype) return mismatch(`dtype mismatch: rank 0 has ${d0.dtype}, rank ${p} has ${d.dtype}`, p);
    if (d.red !== d0.red) return mismatch(`reduce op mismatch: rank 0 uses ${d0.red}, rank ${p} uses ${d.red}`, p);
    if (d.root !== d0.root) return mismatch(`root mismatch: rank 0 uses root ${d0.root}, rank ${p} uses root ${d.root}`, p);
  }
  if (d0.root !== undefined && (d0.root < 0 || d0.root >= size || !Number.isInteger(d0.root))) return invalid(`root ${d0.root} is not a rank of a ${size}-rank communicator`, 0);
  if ((d0.red !== undefined) && d0.dtype === 'u8') return invalid('u8 buffers carry raw bytes and cannot be reduced', 0);
  const n0 = d0.in?.len ?? 0;
  for (let p = 0; p < size; p++) {
    const d = all[p]!;
    const nIn = d.in?.len ?? 0, nOut = d.out?.len ?? 0;
    switch (kind) {
      case 'allReduce': case 'broadcast':
        if (nIn !== n0) return mismatch(`size mismatch: rank 0 has ${n0} elements, rank ${p} has ${nIn}`, p);
        break;
      case 'allGather':
        if (nIn !== n0) return mismatch(`size mismatch: rank 0 sends ${n0} elements, rank ${p} sends ${nIn}`, p);
        if (nOut !== size * n0) return invalid(`rank ${p}'s output has ${nOut} elements, expected size * input = ${size * n0}`, p);
        break;
      case 'reduceScatter': {
        const m0 = all[0]!.out!.len;
        if (nOut !== m0) return mismatch(`size mismatch: rank 0 receives ${m0} elements, rank ${p} receives ${nOut}`, p);
        if (nIn !== size * m0) return invalid(`rank ${p}'s input has ${nIn} elements, expected size * output = ${size * m0}`, p);
        break;
      }
      case 'allToAll': {
        for (const [name, c, len] of [['sendCounts', d.sendCounts, nIn], ['recvCounts', d.recvCounts, nOut]] as const) {
          if (c === undefined) { if (len % size) return invalid(`rank ${p}: ${len} elements do not split evenly over ${size} ranks; pass ${name}`, p); continue; }
          if (c.length !== size || c.some((x) => !Number.isInteger(x) || x < 0)) return invalid(`rank ${p}: ${name} must be ${size} non-negative integers`, p);
          const sum = c.reduce((a, x) => a + x, 0);
          if (sum > len) return invalid(`rank ${p}: ${name} add up to ${sum} but the buffer holds ${len}`, p);
        }
        break;
      }
    }
  }
  if (kind === 'allToAll') {
    for (let q = 0; q < size; q++) {
      const rc = counts(all[q]!.recvCounts, all[q]!.out!.len, size);
      for (let p = 0; p < size; p++) {
        const sc = counts(all[p]!.sendCounts, all[p]!.in!.len, size);
        if (sc[q] !== rc[p]) return mismatch(`count mismatch: rank ${p} sends ${sc[q]} elements to rank ${q}, which expects ${rc[p]}`, p);
      }
    }
  }
  return null;
}

export function checkP2P(recv: OpDesc, send: OpDesc, peer: number): WireError | null {
  if (send.dtype !== recv.dtype) return mismatch(`dtype mismatch: rank ${peer} sends ${send.dtype}, the receiver expects ${recv.dtype}`, peer);
  if (send.in!.len !== recv.in!.len) return mismatch(`size mismatch: rank ${peer} sends ${send.in!.len} elements, the receiver expects ${recv.in!.len}`, peer);
  return null;
}
