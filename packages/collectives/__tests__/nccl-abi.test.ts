// ABI check of the nccl backend without a GPU: a fake libnccl + libcuda (fixtures/fake_nccl, compiled here with
// cc) exports NCCL's and the CUDA driver's exact signatures and records what it receives. Two fake ranks run in
// this one thread: a fake collective executes when the last rank enqueues it, which also lets us observe Work
// completion and stream ordering. What this cannot show (real kernels, real NCCL transport) is listed in the
// README's "nccl / rccl backends" section.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CollectiveError } from '../src/errors.js';
import type { DeviceBuffer, CommDType } from '../src/types.js';
import { initNccl, initRccl, ncclAvailable, rcclAvailable, ncclUniqueId, uniqueIdStoreFrom, NcclCommunicator, type UniqueIdStore } from '../src/nccl/index.js';

const fixture = fileURLToPath(new URL('./fixtures/fake_nccl/', import.meta.url));
let cc: string | null = null;
try { execFileSync('cc', ['--version'], { stdio: 'ignore' }); cc = 'cc'; } catch { /* no compiler */ }
const skipReason = cc ? '' : 'no C compiler (cc) to build the fake NCCL fixture';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...a: any[]) => any;
let lib = '', noSplitLib = '';
const hook: Record<string, Fn> = {};
const log = (): string[] => String(hook.fake_log!()).trim().split('\n');

beforeAll(() => {
  if (!cc) return;
  const dir = mkdtempSync(join(tmpdir(), 'fake-nccl-'));
  const srcs = ['fake_nccl.c', 'fake_cuda.c', 'fake_hip.c'].map((f) => join(fixture, f));
  lib = join(dir, 'libfake_nccl.so');
  noSplitLib = join(dir, 'libfake_nccl_nosplit.so');
  execFileSync(cc, ['-shared', '-fPIC', '-O1', '-o', lib, ...srcs]);
  execFileSync(cc, ['-shared', '-fPIC', '-O1', '-DFAKE_NO_SPLIT', '-o', noSplitLib, ...srcs]);
  const L = koffi.load(lib); // same dlopen handle as the backend's: the hooks see the backend's state
  for (const d of ['void fake_reset()', 'const char *fake_log()', 'int fake_init_id(int rank, _Out_ uint8_t *out)',
    'int fake_stream_priority(uintptr_t s)', 'unsigned int fake_stream_flags(uintptr_t s)', 'int fake_stream_pending(uintptr_t s)',
    'void fake_fail_next(int code)', 'void fake_set_async_error(int code)', 'int fake_live_comms()', 'int fake_ctx_refs(int dev)']) {
    hook[/ \*?(\w+)\(/.exec(d)![1]!] = L.func(d);
  }
});

describe.skipIf(!cc)(`nccl backend against the fake NCCL/CUDA ABI fixture ${skipReason}`, () => {
  const comms: NcclCommunicator[] = [];
  beforeEach(() => {
    process.env.FARSKIP_NCCL_LIB = lib;
    process.env.FARSKIP_CUDA_LIB = lib;
    hook.fake_reset!();
  });
  afterEach(() => { for (const c of comms.splice(0)) c.destroy(); });

  async function world(opts: { timeoutMs?: number; blockingWait?: boolean } = {}): Promise<NcclCommunicator[]> {
    const id = ncclUniqueId();
    const cs = await Promise.all([0, 1].map((rank) => initNccl({ rank, size: 2, device: rank, uniqueId: id, ...opts })));
    comms.push(...cs);
    return cs;
  }
  function dev(c: NcclCommunicator, data: ArrayLike<number>, dtype: CommDType = 'f32'): DeviceBuffer {
    const host = dtype === 'f64' ? Float64Array.from(data) : dtype === 'i32' ? Int32Array.from(data) : dtype === 'bf16' ? Uint16Array.from(data) : dtype === 'u8' ? Uint8Array.from(data) : Float32Array.from(data);
    const ptr = c.runtime.alloc(Math.max(1, host.byteLength));
    c.runtime.upload(ptr, host);
    return { device: c.deviceName, ptr, length: host.length, dtype };
  }
  function read(c: NcclCommunicator, b: DeviceBuffer): number[] {
    const out = b.dtype === 'i32' ? new Int32Array(b.length) : b.dtype === 'bf16' ? new Uint16Array(b.length) : new Float32Array(b.length);
    c.runtime.download(out, b.ptr);
    return [...out];
  }

  it('passes the 128-byte ncclUniqueId by value, byte for byte, with rank/nranks and the rank device current', async () => {
    const id = ncclUniqueId();
    expect(id.length).toBe(128);
    expect([id[3], id[64], id[127]]).toEqual([0, 0, 0xff]); // zeros inside: a string conversion would truncate
    const cs = await Promise.all([0, 1].map((rank) => initNccl({ rank, size: 2, device: rank, uniqueId: id })));
    comms.push(...cs);
    for (const rank of [0, 1]) {
      const got = new Uint8Array(128);
      expect(hook.fake_init_id!(rank, got)).toBe(2);
      expect([...got]).toEqual([...id]);
    }
    expect(log()).toEqual(expect.arrayContaining(['ncclCommInitRank rank=0 nranks=2 dev=0', 'ncclCommInitRank rank=1 nranks=2 dev=1']));
    expect(cs.map((c) => [c.rank, c.size, c.backend, c.deviceName])).toEqual([[0, 2, 'nccl', 'cuda:0'], [1, 2, 'nccl', 'cuda:1']]);
    expect(ncclAvailable()).toBe(true);
  });

  it('bootstraps the unique id through a rendezvous store: rank 0 publishes, rank 1 waits for it', async () => {
    const kv = new Map<string, Uint8Array>(), waiting = new Map<string, (v: Uint8Array) => void>();
    const store: UniqueIdStore = {
      set(k, v) { kv.set(k, v); waiting.get(k)?.(v); },
      get: (k) => (kv.has(k) ? Promise.resolve(kv.get(k)!) : new Promise((res) => waiting.set(k, res))),
    };
    const cs = await Promise.all([1, 0].map((rank) => initNccl({ rank, size: 2, device: rank, store })));
    comms.push(...cs);
    const a = new Uint8Array(128), b = new Uint8Array(128);
    hook.fake_init_id!(0, a); hook.fake_init_id!(1, b);
    expect([...b]).toEqual([...a]);
    expect([...kv.get('farskip/nccl/uniqueId/world')!]).toEqual([...a]);
    // the launcher's string client (set + blocking wait) through the adapter: bytes travel as hex
    const strings = new Map<string, string>();
    const adapted = uniqueIdStoreFrom({ set: (k, v) => void strings.set(k, v), wait: async (k) => strings.get(k)! });
    const more = await Promise.all([0, 1].map((rank) => initNccl({ rank, size: 2, device: rank, store: adapted, storeKey: 'k2' })));
    comms.push(...more);
    expect(strings.get('k2')).toMatch(/^[0-9a-f]{256}$/);
  });

  it('enqueues on a high-priority non-blocking comm stream, ordered after the compute stream, and wait() orders the compute stream', async () => {
    const [c0, c1] = await world();
    expect(c0!.commStreamPriority).toBe(-5); // greatest priority of the fake range [0, -5]
    expect(hook.fake_stream_priority!(c0!.commStream)).toBe(-5);
    expect(hook.fake_stream_flags!(c0!.commStream)).toBe(1); // CU_STREAM_NON_BLOCKING
    const compute = c0!.runtime.createStream(0);
    c0!.computeStream = compute;
    const x0 = dev(c0!, [1, 2, 3]), x1 = dev(c1!, [10, 20, 30]);
    const before = log().length;
    const w0 = c0!.allReduce(x0);
    const sid = (h: bigint): string => { const m = /^cuStreamCreateWithPriority (s\d+)/.exec(log().find((l) => l.includes(`priority=${hook.fake_stream_priority!(h)}`) && l.includes('dev=0'))!); return m![1]!; };
    const comm = sid(c0!.commStream);
    const lines = log().slice(before).filter((l) => !l.startsWith('cuEventCreate'));
    const pre = /^cuEventRecord (e\d+) (s\d+)$/.exec(lines[0]!)!;
    expect(pre[2]).not.toBe(comm); // recorded on the compute stream ...
    expect(lines[1]).toBe(`cuStreamWaitEvent ${comm} ${pre[1]} flags=0`); // ... and the comm stream waits on it
    expect(lines[2]).toBe(`ncclAllReduce rank=0 count=3 dtype=7 op=0 root=0 ${comm}`);
    const post = /^cuEventRecord (e\d+) (s\d+)$/.exec(lines[3]!)!;
    expect(post[2]).toBe(comm);
    expect(w0.completed).toBe(false); // rank 1 has not joined: the fake collective has not run
    await w0.wait(); // stream-ordered: resolves at once, the compute stream now waits on the event
    expect(log().at(-1)).toBe(`cuStreamWaitEvent ${pre[2]} ${post[1]} flags=0`);
    expect(hook.fake_stream_pending!(compute)).toBe(1);
    const w1 = c1!.allReduce(x1);
    expect(hook.fake_stream_pending!(compute)).toBe(0);
    expect(w0.completed && w1.completed).toBe(true);
    expect(read(c0!, x0)).toEqual([11, 22, 33]);
    expect(read(c1!, x1)).toEqual([11, 22, 33]);
  });

  it('allReduce sum/avg/max/min over f32, i32 and bf16', async () => {
    const [c0, c1] = await world({ blockingWait: true });
    const run = async (op: 'sum' | 'avg' | 'max' | 'min', a: number[], b: number[], dtype: CommDType = 'f32'): Promise<number[][]> => {
      const x = dev(c0!, a, dtype), y = dev(c1!, b, dtype);
      await Promise.all([c0!.allReduce(x, op).wait(), c1!.allReduce(y, op).wait()]);
      return [read(c0!, x), read(c1!, y)];
    };
    expect(await run('sum', [1, -2, 3.5], [4, 5, 6])).toEqual([[5, 3, 9.5], [5, 3, 9.5]]);
    expect((await run('avg', [1, 2], [3, 6]))[0]).toEqual([2, 4]);
    expect((await run('max', [1, 9], [3, 6]))[1]).toEqual([3, 9]);
    expect((await run('min', [1, 9], [3, 6], 'i32'))[0]).toEqual([1, 6]);
    expect((await run('sum', [0x3f80, 0x4000], [0x4040, 0x3f80], 'bf16'))[0]).toEqual([0x4080, 0x4040]); // 1+3=4, 2+1=3
  });

  it('allGather, reduceScatter, broadcast, send/recv and uneven allToAll (one ncclGroupStart/End bracket)', async () => {
    const [c0, c1] = await world({ blockingWait: true });
    const both = (a: { wait(): Promise<void> }, b: { wait(): Promise<void> }): Promise<unknown> => Promise.all([a.wait(), b.wait()]);
    const gi = [dev(c0!, [1, 2]), dev(c1!, [3, 4])], go = [dev(c0!, [0, 0, 0, 0]), dev(c1!, [0, 0, 0, 0])];
    await both(c0!.allGather(gi[0]!, go[0]!), c1!.allGather(gi[1]!, go[1]!));
    expect([read(c0!, go[0]!), read(c1!, go[1]!)]).toEqual([[1, 2, 3, 4], [1, 2, 3, 4]]);
    const ri = [dev(c0!, [1, 2, 3, 4]), dev(c1!, [10, 20, 30, 40])], ro = [dev(c0!, [0, 0]), dev(c1!, [0, 0])];
    await both(c0!.reduceScatter(ri[0]!, ro[0]!), c1!.reduceScatter(ri[1]!, ro[1]!));
    expect([read(c0!, ro[0]!), read(c1!, ro[1]!)]).toEqual([[11, 22], [33, 44]]);
    const b = [dev(c0!, [0, 0]), dev(c1!, [7, 8])];
    await both(c0!.broadcast(b[0]!, 1), c1!.broadcast(b[1]!, 1));
    expect(read(c0!, b[0]!)).toEqual([7, 8]);
    const s = dev(c0!, [5, 6, 7]), r = dev(c1!, [0, 0, 0]);
    await both(c0!.send(s, 1), c1!.recv(r, 0));
    expect(read(c1!, r)).toEqual([5, 6, 7]);
    // rank 0 sends 1 to itself and 3 to rank 1; rank 1 sends 2 to rank 0 and 0 to itself
    const ai = [dev(c0!, [1, 2, 3, 4]), dev(c1!, [5, 6])], ao = [dev(c0!, [0, 0, 0]), dev(c1!, [0, 0, 0])];
    const before = log().length;
    await both(c0!.allToAll(ai[0]!, ao[0]!, [1, 3], [1, 2]), c1!.allToAll(ai[1]!, ao[1]!, [2, 0], [3, 0]));
    expect([read(c0!, ao[0]!), read(c1!, ao[1]!)]).toEqual([[1, 5, 6], [2, 3, 4]]);
    const r0 = log().slice(before).filter((l) => /^nccl(Group|Send|Recv)/.test(l)).slice(0, 6);
    expect(r0[0]).toBe('ncclGroupStart');
    // rank 0: send 1 to self, recv 1 from self, send 3 to rank 1, recv 2 from rank 1, all inside the group
    expect(r0.slice(1, 5).map((l) => /^(ncclSend|ncclRecv) rank=0 peer=(\d) count=(\d) .* group=1$/.exec(l)!.slice(1).join(' ')))
      .toEqual(['ncclSend 0 1', 'ncclRecv 0 1', 'ncclSend 1 3', 'ncclRecv 1 2']);
    expect(r0[5]).toBe('ncclGroupEnd');
    await both(c0!.barrier(), c1!.barrier());
  });

  it('surfaces ncclResult_t errors as CollectiveError with ncclGetErrorString and rejects bad arguments clearly', async () => {
    const [c0] = await world();
    const x = dev(c0!, [1, 2]);
    hook.fake_fail_next!(4);
    let err: unknown;
    try { c0!.allReduce(x); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(CollectiveError);
    expect((err as CollectiveError).kind).toBe('invalid-argument');
    expect((err as Error).message).toContain('ncclAllReduce returned ncclInvalidArgument: invalid argument (run with NCCL_DEBUG=WARN for details) (fake nccl: injected failure)');
    expect((err as Error).message).toContain("allReduce on communicator 'world' (rank 0)");
    expect(() => c0!.allReduce(new Float32Array(2))).toThrow(/host Float32Array: the nccl backend takes DeviceBuffer/);
    expect(() => c0!.allReduce({ ...x, device: 'cuda:1' })).toThrow(/lives on cuda:1, this communicator on cuda:0/);
    expect(() => c0!.allReduce(dev(c0!, [1], 'u8'))).toThrow(/cannot be reduced/);
    expect(() => c0!.allGather(x, dev(c0!, [0, 0, 0]))).toThrow(/output.length 3 != size 2 x input.length 2/);
    expect(() => c0!.allToAll(x, x, [1, 1])).toThrow(/both sendCounts and recvCounts/);
  });

  it('watchdog: a collective the peer never joins times out, ncclCommAbort is called, every later call fails', async () => {
    const [c0] = await world({ timeoutMs: 60 });
    const w = c0!.allReduce(dev(c0!, [1]));
    const t0 = Date.now();
    await expect(w.wait()).resolves.toBeUndefined(); // stream-ordered wait does not block the host
    const blocking = c0!.barrier().wait(); // host-synchronous: waits for the device, then times out
    await expect(blocking).rejects.toMatchObject({ kind: 'timeout', message: expect.stringMatching(/did not complete within 60 ms/) });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(log()).toContain('ncclCommAbort rank=0');
    expect(() => c0!.allReduce(dev(c0!, [1]))).toThrow(/aborted earlier/);
  });

  it('watchdog: an asynchronous NCCL error (ncclCommGetAsyncError) aborts and fails pending work', async () => {
    const [c0] = await world({ blockingWait: true });
    const w = c0!.allReduce(dev(c0!, [1]));
    hook.fake_set_async_error!(6);
    await expect(w.wait()).rejects.toMatchObject({ kind: 'peer-failed', message: expect.stringContaining('remote process exited or there was a network error') });
    expect(log()).toContain('ncclCommAbort rank=0');
  });

  it('split via ncclCommSplit (negative color: NCCL_SPLIT_NOCOLOR, null); a library without it gives a clear error', async () => {
    const solo = await initNccl({ rank: 0, size: 1, device: 0 });
    comms.push(solo);
    const sub = solo.split(3, 0)!;
    comms.unshift(sub); // destroyed before its parent
    expect([sub.rank, sub.size, sub.name]).toEqual([0, 1, 'world/split(color=3)']);
    expect(solo.split(-5)).toBeNull();
    expect(log()).toEqual(expect.arrayContaining(['ncclCommSplit rank=0 color=3 key=0 config=NULL', 'ncclCommSplit rank=0 color=-1 key=0 config=NULL']));
    const x = dev(sub, [4]);
    await sub.allReduce(x).wait();
    expect(read(sub, x)).toEqual([4]);
    process.env.FARSKIP_NCCL_LIB = noSplitLib;
    process.env.FARSKIP_CUDA_LIB = noSplitLib; // its own static state: its fake driver must make the context current
    const old = await initNccl({ rank: 0, size: 1, device: 0 });
    comms.push(old);
    expect(() => old.split(0)).toThrow(/ncclCommSplit is not exported by .*needs NCCL >= 2.18/);
  });

  it('rccl: the same backend over librccl + the HIP runtime (hipSetDevice, hipMalloc, hipMemcpy kinds)', async () => {
    process.env.FARSKIP_RCCL_LIB = lib;
    process.env.FARSKIP_HIP_LIB = lib;
    expect(rcclAvailable()).toBe(true);
    const id = ncclUniqueId('rccl');
    const cs = await Promise.all([0, 1].map((rank) => initRccl({ rank, size: 2, device: rank, uniqueId: id, blockingWait: true })));
    comms.push(...cs);
    expect(cs.map((c) => [c.backend, c.deviceName, c.commStreamPriority])).toEqual([['rccl', 'hip:0', -5], ['rccl', 'hip:1', -5]]);
    const xs = cs.map((c, r) => dev(c, [r + 1, 10 * (r + 1)]));
    await Promise.all(cs.map((c, r) => c.allReduce(xs[r]!, 'max').wait()));
    expect(read(cs[1]!, xs[1]!)).toEqual([2, 20]);
    expect(log()).toEqual(expect.arrayContaining(['hipSetDevice 1', 'hipMemcpy bytes=8 kind=1', 'hipMemcpy bytes=8 kind=2']));
  });

  it('destroy frees the communicator, its stream and events, and releases the primary context', async () => {
    const [c0, c1] = await world();
    comms.length = 0;
    c0!.destroy(); c0!.destroy(); // idempotent
    expect(log()).toContain('ncclCommDestroy rank=0');
    expect(() => c0!.barrier()).toThrow(/destroyed/);
    const w = c1!.allReduce(dev(c1!, [1]));
    c1!.destroy(); // pending work: abort instead of a destroy that could block on the missing peer
    await expect(w.wait()).rejects.toMatchObject({ kind: 'destroyed' });
    expect(log()).toContain('ncclCommAbort rank=1');
    expect(hook.fake_live_comms!()).toBe(0);
    expect([hook.fake_ctx_refs!(0), hook.fake_ctx_refs!(1)]).toEqual([0, 0]);
  });
});

describe('nccl library lookup', () => {
  it('a missing library gives an error naming what was searched and how to fix it', async () => {
    process.env.FARSKIP_NCCL_LIB = '/nonexistent/libnccl.so.2';
    await expect(initNccl({ rank: 0, size: 1, device: 0 })).rejects.toThrow(/FARSKIP_NCCL_LIB=\/nonexistent\/libnccl.so.2 failed to load.*unset FARSKIP_NCCL_LIB/);
    delete process.env.FARSKIP_NCCL_LIB;
    delete process.env.FARSKIP_CUDA_LIB;
    if (ncclAvailable()) return; // a machine with NCCL installed finds it: nothing more to check here
    const e = await initNccl({ rank: 0, size: 1, device: 0 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CollectiveError);
    expect((e as CollectiveError).kind).toBe('backend');
    expect((e as Error).message).toMatch(/not found\. Searched: .*FARSKIP_(NCCL|CUDA)_LIB \(unset\).*To fix: install/);
  });
});
