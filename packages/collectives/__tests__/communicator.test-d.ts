// Type-level contract of @farskip/collectives as a downstream package sees it (the built dist/index.d.ts through
// the package's `exports`): the Communicator a user's own backend implements, the Work every call returns, the
// buffer / reduce-op types callers pass, and the factory hook a custom backend registers with. Checked by
// `tsc` through vitest's typecheck mode (vitest project 'types'); nothing here runs. Every `@ts-expect-error`
// marks a line that must stay an error: if the public types loosen so that it compiles, the check fails.
import { assertType, describe, expectTypeOf, test } from 'vitest';
import { CollectiveError, REDUCE_OPS, createThreadsWorld, initCommunicator, isDeviceBuffer, registerCommunicatorFactory } from '@farskip/collectives';
import type {
  CommBuffer, CommDType, Communicator, CommunicatorFactory, DeviceBuffer, FailureKind, HostBuffer, InitOptions, MpiCommunicator,
  NcclCommunicator, ReduceOp, ThreadsCommunicator, Work,
} from '@farskip/collectives';

/** A Work that is already complete, as a trivial backend would hand out. */
const done: Work = { wait: () => Promise.resolve(), completed: true };

/** A complete downstream backend: one rank, every collective a local no-op. Must type-check as is. */
class LoopbackCommunicator implements Communicator {
  readonly rank = 0;
  readonly size = 1;
  readonly backend = 'loopback';
  constructor(readonly name = 'loopback') {}
  allReduce(_buf: CommBuffer, _op?: ReduceOp): Work { return done; }
  allGather(_input: CommBuffer, _output: CommBuffer): Work { return done; }
  reduceScatter(_input: CommBuffer, _output: CommBuffer, _op?: ReduceOp): Work { return done; }
  allToAll(_input: CommBuffer, _output: CommBuffer, _sendCounts?: readonly number[], _recvCounts?: readonly number[]): Work { return done; }
  broadcast(_buf: CommBuffer, _root: number): Work { return done; }
  send(_buf: CommBuffer, _peer: number): Work { return done; }
  recv(_buf: CommBuffer, _peer: number): Work { return done; }
  barrier(): Work { return done; }
  split(color: number, _key?: number): Communicator | null { return color < 0 ? null : this; }
  destroy(): void {}
}

declare const comm: Communicator;
declare const f32: Float32Array;
declare const dev: DeviceBuffer;

describe('Work', () => {
  test('wait() resolves to void; completed is a readonly boolean; completedAt an optional number', () => {
    expectTypeOf<Work['wait']>().toEqualTypeOf<() => Promise<void>>();
    expectTypeOf<Work['wait']>().returns.resolves.toBeVoid();
    expectTypeOf<Work['completed']>().toEqualTypeOf<boolean>();
    expectTypeOf<Work>().toHaveProperty('completedAt').toEqualTypeOf<number | undefined>();
    const w: Work = comm.barrier();
    // @ts-expect-error completed is readonly for callers
    w.completed = true;
    // @ts-expect-error completedAt is readonly for callers
    w.completedAt = 1;
  });

  test('a downstream Work needs wait() returning a Promise and completed; completedAt may be omitted', () => {
    assertType<Work>({ wait: async () => {}, completed: false });
    assertType<Work>({ wait: () => Promise.resolve(), completed: true, completedAt: 12.5 });
    // a getter is a readonly property: a live `completed` is fine
    assertType<Work>({ wait: () => Promise.resolve(), get completed() { return true; } });
    // @ts-expect-error completed is required
    assertType<Work>({ wait: () => Promise.resolve() });
    // @ts-expect-error wait is required
    assertType<Work>({ completed: true });
    // @ts-expect-error wait() must be asynchronous (callers await it)
    assertType<Work>({ wait: () => undefined, completed: true });
    // @ts-expect-error completedAt is a number (ms on performance.timeOrigin + performance.now())
    assertType<Work>({ wait: () => Promise.resolve(), completed: true, completedAt: new Date() });
  });
});

describe('buffers and reduce ops', () => {
  test('ReduceOp, CommDType and FailureKind are exactly their unions', () => {
    expectTypeOf<ReduceOp>().toEqualTypeOf<'sum' | 'avg' | 'max' | 'min'>();
    expectTypeOf<CommDType>().toEqualTypeOf<'f32' | 'f64' | 'bf16' | 'i32' | 'u8'>();
    expectTypeOf<FailureKind>().toEqualTypeOf<'mismatch' | 'peer-failed' | 'timeout' | 'destroyed' | 'invalid-argument' | 'backend'>();
    expectTypeOf(REDUCE_OPS).toEqualTypeOf<readonly ReduceOp[]>();
    // @ts-expect-error 'prod' is not a reduce op
    assertType<ReduceOp>('prod');
  });

  test('HostBuffer is the typed arrays of the storage convention; CommBuffer adds DeviceBuffer', () => {
    expectTypeOf<HostBuffer>().toEqualTypeOf<Float32Array | Float64Array | Uint16Array | Int32Array | Uint8Array>();
    expectTypeOf<CommBuffer>().toEqualTypeOf<HostBuffer | DeviceBuffer>();
    expectTypeOf<DeviceBuffer>().toEqualTypeOf<{
      readonly device: `cuda:${number}` | `hip:${number}`;
      readonly ptr: bigint;
      readonly length: number;
      readonly dtype: CommDType;
    }>();
    assertType<DeviceBuffer>({ device: 'cuda:0', ptr: 0n, length: 4, dtype: 'f32' });
    assertType<DeviceBuffer>({ device: 'hip:1', ptr: 0n, length: 4, dtype: 'bf16' });
    // @ts-expect-error the device names a cuda:N or hip:N device
    assertType<DeviceBuffer>({ device: 'gpu:0', ptr: 0n, length: 4, dtype: 'f32' });
    // @ts-expect-error ptr is a bigint device pointer
    assertType<DeviceBuffer>({ device: 'cuda:0', ptr: 0, length: 4, dtype: 'f32' });
    // @ts-expect-error Int8Array is not a buffer (bf16 travels as Uint16Array, bytes as Uint8Array)
    assertType<CommBuffer>(new Int8Array(4));
    // @ts-expect-error plain arrays are not buffers
    assertType<CommBuffer>([1, 2, 3]);
  });

  test('isDeviceBuffer narrows a CommBuffer', () => {
    const b = f32 as CommBuffer;
    if (isDeviceBuffer(b)) expectTypeOf(b).toEqualTypeOf<DeviceBuffer>();
    else expectTypeOf(b).toEqualTypeOf<HostBuffer>();
  });
});

describe('Communicator: what callers see', () => {
  test('identity properties', () => {
    expectTypeOf(comm.rank).toEqualTypeOf<number>();
    expectTypeOf(comm.size).toEqualTypeOf<number>();
    expectTypeOf(comm.backend).toEqualTypeOf<string>();
    expectTypeOf(comm.name).toEqualTypeOf<string>();
    // @ts-expect-error rank is readonly
    comm.rank = 1;
  });

  test('collective signatures: parameters and Work results', () => {
    expectTypeOf(comm.allReduce).parameters.toEqualTypeOf<[buf: CommBuffer, op?: ReduceOp]>();
    expectTypeOf(comm.allGather).parameters.toEqualTypeOf<[input: CommBuffer, output: CommBuffer]>();
    expectTypeOf(comm.reduceScatter).parameters.toEqualTypeOf<[input: CommBuffer, output: CommBuffer, op?: ReduceOp]>();
    expectTypeOf(comm.allToAll).parameters.toEqualTypeOf<[CommBuffer, CommBuffer, (readonly number[])?, (readonly number[])?]>();
    expectTypeOf(comm.broadcast).parameters.toEqualTypeOf<[buf: CommBuffer, root: number]>();
    expectTypeOf(comm.send).parameters.toEqualTypeOf<[buf: CommBuffer, peer: number]>();
    expectTypeOf(comm.recv).parameters.toEqualTypeOf<[buf: CommBuffer, peer: number]>();
    expectTypeOf(comm.barrier).parameters.toEqualTypeOf<[]>();
    for (const op of [comm.allReduce, comm.allGather, comm.reduceScatter, comm.allToAll, comm.broadcast, comm.send, comm.recv, comm.barrier]) {
      expectTypeOf(op).returns.toEqualTypeOf<Work>();
    }
    expectTypeOf(comm.split).toEqualTypeOf<(color: number, key?: number) => Communicator | null>();
    expectTypeOf(comm.destroy).toEqualTypeOf<() => void>();
  });

  test('calls accept host and device buffers, optional ops and readonly counts', async () => {
    expectTypeOf(comm.allReduce(f32)).toEqualTypeOf<Work>();
    expectTypeOf(comm.allReduce(dev, 'avg')).toEqualTypeOf<Work>();
    expectTypeOf(comm.reduceScatter(f32, f32, 'max')).toEqualTypeOf<Work>();
    const counts: readonly number[] = [1, 2];
    comm.allToAll(f32, f32);
    comm.allToAll(f32, f32, counts, [2, 1]);
    expectTypeOf(await comm.allGather(new Uint16Array(4), new Uint16Array(8)).wait()).toBeVoid();
    const sub = comm.split(0, comm.rank);
    // @ts-expect-error split may return null (negative color): narrow before use
    sub.barrier();
    if (sub) expectTypeOf(sub).toEqualTypeOf<Communicator>();
    // @ts-expect-error 'prod' is not a ReduceOp
    comm.allReduce(f32, 'prod');
    // @ts-expect-error a plain array is not a buffer
    comm.allReduce([1, 2, 3]);
    // @ts-expect-error broadcast needs a root
    comm.broadcast(f32);
    // @ts-expect-error counts are numbers per peer, not a typed array
    comm.allToAll(f32, f32, new Int32Array(2));
    // @ts-expect-error a Work is not a promise: await work.wait()
    await comm.barrier().then(() => {});
  });
});

describe('Communicator: what a downstream backend implements', () => {
  test('a class implementing every member satisfies Communicator, and split may return itself', () => {
    expectTypeOf<LoopbackCommunicator>().toExtend<Communicator>();
    const c: Communicator = new LoopbackCommunicator();
    expectTypeOf(c.split(0)).toEqualTypeOf<Communicator | null>();
  });

  test('omitting a required member is an error', () => {
    // @ts-expect-error split is missing
    class NoSplit implements Communicator {
      readonly rank = 0; readonly size = 1; readonly backend = 'x'; readonly name = 'x';
      allReduce(): Work { return done; }
      allGather(): Work { return done; }
      reduceScatter(): Work { return done; }
      allToAll(): Work { return done; }
      broadcast(): Work { return done; }
      send(): Work { return done; }
      recv(): Work { return done; }
      barrier(): Work { return done; }
      destroy(): void {}
    }
    // @ts-expect-error name is missing
    class NoName implements Communicator {
      readonly rank = 0; readonly size = 1; readonly backend = 'x';
      allReduce(): Work { return done; }
      allGather(): Work { return done; }
      reduceScatter(): Work { return done; }
      allToAll(): Work { return done; }
      broadcast(): Work { return done; }
      send(): Work { return done; }
      recv(): Work { return done; }
      barrier(): Work { return done; }
      split(): Communicator | null { return null; }
      destroy(): void {}
    }
    const w = (): Work => done;
    assertType<Communicator>({
      rank: 0, size: 1, backend: 'x', name: 'x', allReduce: w, allGather: w, reduceScatter: w, allToAll: w, broadcast: w, send: w, recv: w,
      barrier: w, split: () => null, destroy: () => {},
    });
    // @ts-expect-error barrier is missing
    assertType<Communicator>({
      rank: 0, size: 1, backend: 'x', name: 'x', allReduce: w, allGather: w, reduceScatter: w, allToAll: w, broadcast: w, send: w, recv: w,
      split: () => null, destroy: () => {},
    });
    void NoSplit; void NoName;
  });

  test('collectives must return a Work synchronously, not a Promise or nothing', () => {
    const w = (): Work => done;
    const members = {
      rank: 0, size: 1, backend: 'x', name: 'x', allReduce: w, allGather: w, reduceScatter: w, allToAll: w, broadcast: w, send: w, recv: w,
      barrier: w, split: (): Communicator | null => null, destroy: () => {},
    };
    assertType<Communicator>(members);
    // @ts-expect-error allReduce returns Work at once (the collective is in flight), not a Promise
    assertType<Communicator>({ ...members, allReduce: async () => {} });
    // @ts-expect-error barrier returns a Work
    assertType<Communicator>({ ...members, barrier: () => {} });
    // @ts-expect-error a Work must have completed, not just wait()
    assertType<Communicator>({ ...members, barrier: () => ({ wait: () => Promise.resolve() }) });
    // @ts-expect-error split returns a Communicator (or null), not a promise of one
    assertType<Communicator>({ ...members, split: async () => null });
    // @ts-expect-error rank is a number
    assertType<Communicator>({ ...members, rank: '0' });
    // @ts-expect-error allReduce's op is a ReduceOp, not any string
    assertType<Communicator>({ ...members, allReduce: (_b: CommBuffer, _op: 'sum' | 'mean') => done });
  });

  test('registerCommunicatorFactory takes a sync or async factory of Communicators', () => {
    expectTypeOf<CommunicatorFactory>().toEqualTypeOf<(options: InitOptions) => Promise<Communicator> | Communicator>();
    registerCommunicatorFactory('loopback', () => new LoopbackCommunicator());
    registerCommunicatorFactory('loopback-async', async (o) => new LoopbackCommunicator(String(o.backend)));
    // @ts-expect-error the factory must produce a Communicator
    registerCommunicatorFactory('bad', () => ({ rank: 0, size: 1 }));
    expectTypeOf(initCommunicator).returns.resolves.toEqualTypeOf<Communicator>();
    expectTypeOf(initCommunicator).parameters.toEqualTypeOf<[options?: InitOptions]>();
  });
});

describe('built-in backends and errors', () => {
  test('the shipped communicators are Communicators', () => {
    expectTypeOf<ThreadsCommunicator>().toExtend<Communicator>();
    expectTypeOf<MpiCommunicator>().toExtend<Communicator>();
    expectTypeOf<NcclCommunicator>().toExtend<Communicator>();
    expectTypeOf(createThreadsWorld).returns.toEqualTypeOf<ThreadsCommunicator[]>();
    expectTypeOf(createThreadsWorld(2)[0]!.allReduce(f32, 'sum')).toEqualTypeOf<Work>();
  });

  test('CollectiveError says what failed, where and why', () => {
    expectTypeOf<CollectiveError>().toExtend<Error>();
    expectTypeOf<CollectiveError['kind']>().toEqualTypeOf<FailureKind>();
    expectTypeOf<CollectiveError['op']>().toEqualTypeOf<string>();
    expectTypeOf<CollectiveError['communicator']>().toEqualTypeOf<string>();
    expectTypeOf<CollectiveError['rank']>().toEqualTypeOf<number>();
    expectTypeOf<CollectiveError['culprit']>().toEqualTypeOf<number | undefined>();
    expectTypeOf(CollectiveError).constructorParameters
      .toEqualTypeOf<[kind: FailureKind, op: string, communicator: string, rank: number, detail: string, culprit?: number]>();
  });
});
