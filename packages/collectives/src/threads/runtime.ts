// The only runtime-specific file of the threads backend. Node 20 has no global `Worker`, and Bun and Deno both
// implement node:worker_threads (Worker, MessageChannel, parentPort, workerData, per-worker env, ref/unref), so
// one import serves all three; everything else in threads/ and launch/ talks to these wrappers.
import { availableParallelism, cpus } from 'node:os';
import { MessageChannel, MessagePort, Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export { MessageChannel, MessagePort, Worker };
export type Port = MessagePort;

export interface SpawnOptions {
  data?: unknown;
  transfer?: readonly unknown[];
  env?: Record<string, string>;
  /** capture the worker's stdout/stderr as streams (the launcher prefixes them with [rank N]) */
  pipeOutput?: boolean;
  name?: string;
}

export function spawnWorker(url: URL, o: SpawnOptions = {}): Worker {
  return new Worker(url, {
    // flags such as --input-type (from `node -e`) are invalid for a file worker; the rest (loaders, --expose-gc) carry over
    execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type') && a !== '-e' && a !== '--eval' && a !== '-p' && a !== '--print'),
    workerData: o.data,
    transferList: (o.transfer ?? []) as never,
    ...(o.env ? { env: o.env } : {}),
    ...(o.pipeOutput ? { stdout: true, stderr: true } : {}),
    ...(o.name ? { name: o.name } : {}),
  });
}

/** Inside a worker: the port to the thread that spawned it, and the data it was given. */
export function parentChannel(): { port: MessagePort; data: unknown } {
  if (isMainThread || !parentPort) throw new Error('parentChannel() called outside a worker thread');
  return { port: parentPort, data: workerData };
}

export function inMainThread(): boolean {
  return isMainThread;
}

/** Blocks this thread for up to `ms` without burning a core (used for sub-millisecond link-emulation delays). */
const sleeper = new Int32Array(new SharedArrayBuffer(4));
export function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
}

export function hardwareThreads(): number {
  return Math.max(1, typeof availableParallelism === 'function' ? availableParallelism() : cpus().length);
}
