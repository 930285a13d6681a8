// launch(): N ranks of a script, as worker threads of this process (threads) or as child processes (mpi via
// mpiexec, nccl/rccl one process per rank). Each rank sees RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE /
// FARSKIP_BACKEND and, unless set, FARSKIP_NUM_THREADS = cores / local ranks so kernel pools do not oversubscribe
// the machine (threads ranks share one process, hence one native pool: the value is then informational).
// The launcher watches its ranks: one that throws or exits non-zero is reported at once to every other rank
// (threads: to their comm workers, which fail pending collectives; child processes: under 'farskip/failed/<rank>'
// in the rendezvous store).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { hardwareThreads, spawnWorker } from '../threads/runtime.js';
import { bootstrapTransfer, wireThreadsWorld } from '../threads/world.js';
import type { ControlMsg } from '../threads/protocol.js';
import { RendezvousStore } from './rendezvous.js';
import type { Backend } from './init.js';

export interface LaunchOptions {
  world: number;
  backend?: Backend;
  /** path or file: URL of an ES module */
  script: string;
  args?: string[];
  /** extra environment for every rank */
  env?: Record<string, string>;
  /** forward rank output to this process's stdout/stderr with '[rank N] ' prefixes (default true) */
  prefixOutput?: boolean;
  /** also return each rank's output in the results */
  captureOutput?: boolean;
  /** child processes: after one rank fails, kill the rest if still running after this long (default 10 s) */
  failureGraceMs?: number;
}

export interface RankResult {
  rank: number;
  exitCode: number;
  /** the uncaught exception that ended the rank (threads backend) */
  error?: { name: string; message: string };
  output?: string;
}

const NEEDS_CHILDREN: Backend[] = ['mpi', 'nccl', 'rccl'];

export async function launch(o: LaunchOptions): Promise<RankResult[]> {
  const world = o.world;
  if (!Number.isInteger(world) || world < 1) throw new RangeError(`launch: world must be a positive integer, got ${world}`);
  const backend = o.backend ?? 'threads';
  const script = o.script.startsWith('file:') ? o.script : resolve(o.script);
  const base: Record<string, string> = { ...(process.env as Record<string, string>), ...(o.env ?? {}) };
  base.FARSKIP_BACKEND = backend;
  base.WORLD_SIZE = String(world);
  base.LOCAL_WORLD_SIZE = String(world);
  if (!base.FARSKIP_NUM_THREADS) base.FARSKIP_NUM_THREADS = String(Math.max(1, Math.floor(hardwareThreads() / world)));
  const rankEnv = (r: number): Record<string, string> => ({ ...base, RANK: String(r), LOCAL_RANK: String(r) });
  if (backend === 'threads') return launchThreads(o, script, world, rankEnv);
  if (!NEEDS_CHILDREN.includes(backend)) throw new Error(`launch: unknown backend '${backend}' (threads, mpi, nccl, rccl)`);
  const store = await RendezvousStore.start();
  base.FARSKIP_RDZV = store.address;
  try {
    if (backend === 'mpi') return await launchMpiexec(o, script, world, base);
    return await launchChildren(o, script, world, rankEnv, store);
  } finally {
    await store.close();
  }
}

/** Splits a stream into lines, prefixes them, forwards and/or records them. */
function pipeLines(stream: Readable | null | undefined, prefix: string, sink: NodeJS.WriteStream | null, record: string[] | null): Promise<void> {
  if (!stream) return Promise.resolve();
  let rest = '';
  const emit = (line: string): void => { sink?.write(prefix + line + '\n'); record?.push(line); };
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    rest += d;
    const lines = rest.split('\n');
    rest = lines.pop()!;
    for (const l of lines) emit(l);
  });
  return new Promise((res) => stream.on('end', () => { if (rest) emit(rest); res(); }));
}

async function launchThreads(o: LaunchOptions, script: string, world: number, rankEnv: (r: number) => Record<string, string>): Promise<RankResult[]> {
  const { boots, controls } = wireThreadsWorld(world);
  const results: RankResult[] = [];
  const prefix = o.prefixOutput ?? true;
  const failedRanks = new Set<number>();
  const tell = (rank: number, reason: string, delayMs: number): void => {
    if (failedRanks.has(rank)) return;
    failedRanks.add(rank);
    const send = (): void => controls.forEach((c, r) => { if (r !== rank) c.postMessage({ t: 'peer-failed', worldRank: rank, reason } satisfies ControlMsg); });
    // a clean exit is reported late: the rank's last messages to its peers travel on other ports and must win
    if (delayMs) setTimeout(send, delayMs).unref(); else send();
  };
  const runs = boots.map((boot, r) => new Promise<void>((done) => {
    const out: string[] | null = o.captureOutput ? [] : null;
    const w = spawnWorker(new URL('./rank-worker.js', import.meta.url), {
      data: { boot, script, args: o.args ?? [] }, transfer: bootstrapTransfer(boot), env: rankEnv(r), pipeOutput: true, name: `farskip-rank-${r}`,
    });
    const res: RankResult = { rank: r, exitCode: 0 };
    results[r] = res;
    const streams = Promise.all([
      pipeLines(w.stdout, `[rank ${r}] `, prefix ? process.stdout : null, out),
      pipeLines(w.stderr, `[rank ${r}] `, prefix ? process.stderr : null, out),
    ]);
    w.on('error', (e: Error) => {
      res.error = { name: e?.name ?? 'Error', message: e?.message ?? String(e) };
      tell(r, `threw ${res.error.name}: ${res.error.message}`, 0);
    });
    w.on('exit', async (code: number) => {
      res.exitCode = res.error && code === 0 ? 1 : code;
      tell(r, res.exitCode ? `exited with code ${res.exitCode}` : 'exited', res.exitCode ? 0 : 250);
      await Promise.race([streams, new Promise((x) => setTimeout(x, 1000))]);
      if (out) res.output = out.join('\n');
      done();
    });
  }));
  await Promise.all(runs);
  for (const c of controls) c.close();
  return results;
}

function onPath(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '').split(delimiter)) if (d && existsSync(join(d, cmd))) return join(d, cmd);
  return null;
}

async function launchMpiexec(o: LaunchOptions, script: string, world: number, env: Record<string, string>): Promise<RankResult[]> {
  const mpiexec = env.FARSKIP_MPIEXEC ?? onPath('mpiexec') ?? onPath('mpirun');
  if (!mpiexec) throw new Error("launch: backend 'mpi' needs mpiexec/mpirun on PATH (install MPICH or Open MPI, or set FARSKIP_MPIEXEC)");
  const out: string[] | null = o.captureOutput ? [] : null;
  const child = spawn(mpiexec, ['-n', String(world), process.execPath, script, ...(o.args ?? [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const streams = Promise.all([pipeLines(child.stdout, '', (o.prefixOutput ?? true) ? process.stdout : null, out), pipeLines(child.stderr, '', (o.prefixOutput ?? true) ? process.stderr : null, out)]);
  const code = await new Promise<number>((res) => { child.on('error', () => res(127)); child.on('exit', (c, sig) => res(c ?? (sig ? 128 : 1))); });
  await streams;
  // mpiexec reports one status for the job; every rank gets it
  return Array.from({ length: world }, (_, rank) => ({ rank, exitCode: code, ...(out ? { output: out.join('\n') } : {}) }));
}

async function launchChildren(o: LaunchOptions, script: string, world: number, rankEnv: (r: number) => Record<string, string>, store: RendezvousStore): Promise<RankResult[]> {
  const children = Array.from({ length: world }, (_, r) => spawn(process.execPath, [script, ...(o.args ?? [])], { env: { ...rankEnv(r), FARSKIP_RDZV: store.address }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const results = await Promise.all(children.map((child, r) => new Promise<RankResult>((done) => {
    const out: string[] | null = o.captureOutput ? [] : null;
    const sink = (o.prefixOutput ?? true);
    const streams = Promise.all([pipeLines(child.stdout, `[rank ${r}] `, sink ? process.stdout : null, out), pipeLines(child.stderr, `[rank ${r}] `, sink ? process.stderr : null, out)]);
    child.on('exit', async (c, sig) => {
      const exitCode = c ?? (sig ? 128 : 1);
      if (exitCode !== 0) {
        store.set(`farskip/failed/${r}`, `exited with ${c ?? sig}`);
        killTimer ??= setTimeout(() => children.forEach((ch) => ch.exitCode === null && ch.kill('SIGTERM')), o.failureGraceMs ?? 10_000);
      }
      await streams;
      done({ rank: r, exitCode, ...(out ? { output: out.join('\n') } : {}) });
    });
  })));
  if (killTimer) clearTimeout(killTimer);
  return results;
}
