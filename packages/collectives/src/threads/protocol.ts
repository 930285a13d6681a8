// Messages between a rank's thread, its communication worker, peers' communication workers and the launcher.
// Buffers travel as (SharedArrayBuffer, byte offset, element count): posting a SharedArrayBuffer shares the
// memory, so a peer's comm worker reads and writes the rank's buffer in place, with no copy through a mailbox.
import type { CommDType, ReduceOp } from '../types.js';

export interface BufRef { sab: SharedArrayBuffer; off: number; len: number }

export type OpKind = 'allReduce' | 'allGather' | 'reduceScatter' | 'allToAll' | 'broadcast' | 'send' | 'recv' | 'barrier' | 'split';

/** What a rank issued; its collective part is what peers compare (mismatch detection) and use (buffers). */
export interface OpDesc {
  kind: OpKind;
  dtype?: CommDType;
  red?: ReduceOp;
  root?: number;
  in?: BufRef;
  out?: BufRef;
  sendCounts?: number[];
  recvCounts?: number[];
  color?: number;
  key?: number;
}

/** rank thread -> its comm worker */
export type ToWorker =
  | { t: 'init'; worldRank: number; worldSize: number; ports: (Port | null)[]; control: Port | null; status: SharedArrayBuffer; doneAt: SharedArrayBuffer; timeoutMs: number; link: LinkEmulation | null }
  | { t: 'op'; comm: string; opId: number; seq: number; peer?: number; desc: OpDesc; child?: { id: string; name: string; slot: SharedArrayBuffer } }
  | { t: 'register'; comm: string; name: string; members: number[] }
  | { t: 'destroy'; comm: string; all: boolean };

/** comm worker -> rank thread */
export type FromWorker = { t: 'done'; opId: number; err?: WireError } | { t: 'closed' };

export interface WireError { kind: 'mismatch' | 'peer-failed' | 'timeout' | 'destroyed' | 'invalid-argument' | 'backend'; detail: string; culprit?: number }

/** comm worker <-> comm worker (world ranks in `from`) */
export type PeerMsg =
  | { t: 'desc'; comm: string; seq: number; from: number; desc: OpDesc }
  | { t: 'done'; comm: string; seq: number; from: number }
  | { t: 'p2p'; comm: string; seq: number; from: number; desc: OpDesc }
  | { t: 'p2pdone'; comm: string; seq: number; from: number }
  | { t: 'abort'; comm: string; from: number; detail: string }
  | { t: 'destroyed'; comm: string; from: number };

/** launcher -> comm worker: a rank's thread threw or exited (detected at once by the launcher) */
export type ControlMsg = { t: 'peer-failed'; worldRank: number; reason: string };

type Port = import('node:worker_threads').MessagePort;

export interface LinkEmulation {
  /** the FARSKIP_EMULATE_LINK value, e.g. '25GB/s,10us' */
  spec: string;
  bytesPerSecond: number;
  latencySeconds: number;
}

const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
const TIME: Record<string, number> = { s: 1, ms: 1e-3, us: 1e-6, 'µs': 1e-6, ns: 1e-9 };

/** Parses '25GB/s,10us' (bandwidth per link, latency per message); bits are accepted as 'Gbit/s'. */
export function parseLinkEmulation(spec: string | undefined): LinkEmulation | null {
  if (!spec || !spec.trim()) return null;
  const m = /^\s*([\d.]+)\s*([kmgt]?i?b(?:it)?)\/s\s*(?:,\s*([\d.]+)\s*(s|ms|us|µs|ns))?\s*$/i.exec(spec);
  if (!m) throw new Error(`FARSKIP_EMULATE_LINK='${spec}': expected e.g. '25GB/s,10us' (bandwidth/s, latency per message)`);
  const unit = m[2]!.toLowerCase();
  const bits = unit.endsWith('bit');
  const bytesPerSecond = Number(m[1]) * UNITS[bits ? unit.replace('bit', 'b') : unit]! / (bits ? 8 : 1);
  const latencySeconds = m[3] ? Number(m[3]) * TIME[m[4]!.toLowerCase()]! : 0;
  if (!(bytesPerSecond > 0)) throw new Error(`FARSKIP_EMULATE_LINK='${spec}': bandwidth must be positive`);
  return { spec: spec.trim(), bytesPerSecond, latencySeconds };
}

/**
 * The link emulation spec under which collectives putting `bytes` on each rank's link (as `emulatedSeconds` counts
 * them) take `share` of a run that otherwise computes for `computeMs`: comm = share / (1 − share) × compute =
 * bytes / bandwidth. How benchmarks calibrate a link to a target communication share.
 */
export function linkForCommShare(bytes: number, computeMs: number, share: number, latency = '20us'): string {
  if (!(bytes > 0) || !(computeMs > 0) || !(share > 0 && share < 1)) {
    throw new Error(`linkForCommShare: need bytes > 0, computeMs > 0 and 0 < share < 1, got ${bytes}, ${computeMs}, ${share}`);
  }
  const commMs = (share / (1 - share)) * computeMs;
  return `${(bytes / (commMs * 1e6)).toPrecision(3)}GB/s,${latency}`;
}

/**
 * Time the operation would take on a ring of links (the model NCCL's bus bandwidth uses): `steps` messages of
 * latency each plus the bytes this rank puts on its link.
 */
export function emulatedSeconds(link: LinkEmulation, kind: OpKind, bytes: number, size: number): number {
  if (size <= 1 && kind !== 'send' && kind !== 'recv') return 0;
  const n = size;
  switch (kind) {
    case 'allReduce': return 2 * (n - 1) * link.latencySeconds + (2 * (n - 1) / n) * bytes / link.bytesPerSecond;
    case 'allGather': case 'reduceScatter': return (n - 1) * link.latencySeconds + ((n - 1) / n) * bytes / link.bytesPerSecond;
    case 'allToAll': return (n - 1) * link.latencySeconds + bytes / link.bytesPerSecond;
    case 'broadcast': case 'send': case 'recv': return link.latencySeconds + bytes / link.bytesPerSecond;
    case 'barrier': case 'split': return Math.ceil(Math.log2(n)) * 2 * link.latencySeconds;
  }
}
