// Wiring a threads world: one MessageChannel per pair of ranks connects their comm workers directly (rank
// threads never relay data), plus one control channel per rank that a launcher keeps to report dead ranks.
import { ThreadsCommunicator } from './communicator.js';
import type { ThreadsBootstrap, ThreadsOptions } from './communicator.js';
import { MessageChannel } from './runtime.js';
import type { Port } from './runtime.js';

export interface ThreadsWorldWiring {
  boots: ThreadsBootstrap[];
  /** controls[r]: post { t: 'peer-failed', worldRank, reason } to tell rank r's comm worker a peer died */
  controls: Port[];
}

export function wireThreadsWorld(size: number): ThreadsWorldWiring {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`world size must be a positive integer, got ${size}`);
  const ports: (Port | null)[][] = Array.from({ length: size }, () => Array<Port | null>(size).fill(null));
  for (let i = 0; i < size; i++) {
    for (let j = i + 1; j < size; j++) {
      const ch = new MessageChannel();
      ports[i]![j] = ch.port1;
      ports[j]![i] = ch.port2;
    }
  }
  const controls: Port[] = [];
  const boots = ports.map((p, r) => {
    const ch = new MessageChannel();
    controls.push(ch.port1);
    return { worldRank: r, worldSize: size, ports: p, control: ch.port2 };
  });
  for (const c of controls) c.unref();
  return { boots, controls };
}

/** Transferables of a bootstrap (for postMessage / Worker transferList). */
export function bootstrapTransfer(b: ThreadsBootstrap): Port[] {
  return [...b.ports.filter((p): p is Port => !!p), ...(b.control ? [b.control] : [])];
}

/**
 * All ranks of a world as communicators in this thread (tests, single-process tools): each has its own comm
 * worker, so they progress independently even though one thread issues every rank's calls.
 */
export function createThreadsWorld(size: number, options: ThreadsOptions = {}): ThreadsCommunicator[] {
  const { boots, controls } = wireThreadsWorld(size);
  for (const c of controls) c.close();
  return boots.map((b) => ThreadsCommunicator.fromBootstrap({ ...b, control: null }, options));
}
