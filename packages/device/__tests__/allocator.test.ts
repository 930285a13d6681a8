// Bookkeeping of the caching allocator against an in-memory fake driver: this is a unit test of the allocator's
// rules (rounding, pools, splitting, merging, per-stream reuse, cross-stream events, OOM retry), not of device
// memory; the real-driver path is exercised in gpu.test.ts when a GPU is present.
import { describe, expect, it } from 'vitest';
import { CachingAllocator, OutOfMemoryError, roundSize, segmentSize, type AllocatorDriver } from '../src/allocator.js';

class FakeDriver implements AllocatorDriver {
  next = 0x1000_0000n;
  live = new Map<bigint, number>();
  mallocs: number[] = [];
  frees: bigint[] = [];
  capacity = Infinity;
  events = new Map<bigint, { stream: bigint; done: boolean }>();
  private nextEvent = 1n;
  used(): number { let s = 0; for (const v of this.live.values()) s += v; return s; }
  malloc(bytes: number): bigint | null {
    if (this.used() + bytes > this.capacity) return null;
    const p = this.next;
    this.next += BigInt(bytes) + 0x10_0000n; // segments never adjacent: merging must stay within one segment
    this.live.set(p, bytes);
    this.mallocs.push(bytes);
    return p;
  }
  free(ptr: bigint): void { expect(this.live.delete(ptr)).toBe(true); this.frees.push(ptr); }
  createEvent(): bigint { const e = this.nextEvent++; this.events.set(e, { stream: -1n, done: false }); return e; }
  destroyEvent(e: bigint): void { this.events.delete(e); }
  record(e: bigint, stream: bigint): void { this.events.get(e)!.stream = stream; }
  query(e: bigint): boolean { return this.events.get(e)!.done; }
  completeStream(stream: bigint): void { for (const ev of this.events.values()) if (ev.stream === stream) ev.done = true; }
}

const MiB = 1 << 20;
const S1 = 11n, S2 = 22n;

describe('caching allocator bookkeeping (fake driver, no GPU)', () => {
  it('rounds to 512 B and picks the pool and segment size like PyTorch', () => {
    expect([roundSize(0), roundSize(1), roundSize(512), roundSize(513)]).toEqual([512, 512, 512, 1024]);
    expect([segmentSize(512), segmentSize(MiB), segmentSize(MiB + 512), segmentSize(10 * MiB), segmentSize(11 * MiB + 1)])
      .toEqual([2 * MiB, 2 * MiB, 20 * MiB, 10 * MiB, 12 * MiB]);
  });

  it('splits a small segment, serves later requests from the cache and merges freed neighbours', () => {
    const d = new FakeDriver();
    const a = new CachingAllocator(d);
    const x = a.allocate(100, S1);
    const y = a.allocate(1000, S1);
    expect(d.mallocs).toEqual([2 * MiB]); // one 2 MiB small segment, split
    expect(x.size).toBe(512);
    expect(y.ptr).toBe(x.ptr + 512n);
    expect(a.stats()).toMatchObject({ allocatedBytes: 512 + 1024, reservedBytes: 2 * MiB, numAllocs: 2, cacheHits: 1 });
    a.free(x);
    a.free(y);
    // both merged back with the tail: two 1 MiB requests fill the whole 2 MiB segment again without a driver call
    const z = a.allocate(MiB, S1);
    expect(z.ptr).toBe(x.ptr);
    expect(d.mallocs.length).toBe(1);
    expect(a.stats()).toMatchObject({ allocatedBytes: MiB, peakAllocatedBytes: MiB, numFrees: 2, cacheHits: 2 });
    expect(a.allocate(MiB, S1).ptr).toBe(x.ptr + BigInt(MiB));
    expect(d.mallocs.length).toBe(1);
  });

  it('keeps freed blocks per stream: another stream gets its own segment', () => {
    const d = new FakeDriver();
    const a = new CachingAllocator(d);
    const x = a.allocate(4096, S1);
    a.free(x);
    const y = a.allocate(4096, S2);
    expect(y.ptr).not.toBe(x.ptr);
    expect(d.mallocs.length).toBe(2);
    expect(a.allocate(4096, S1).ptr).toBe(x.ptr);
  });

  it('large pool: 20 MiB segments for 1-10 MiB requests, split only when more than 1 MiB remains', () => {
    const d = new FakeDriver();
    const a = new CachingAllocator(d);
    const x = a.allocate(3 * MiB);
    expect(d.mallocs).toEqual([20 * MiB]);
    const y = a.allocate(16 * MiB + 512); // best fit: the 17 MiB tail; the 1 MiB - 512 B left over is not split off
    expect(y.ptr).toBe(x.ptr + BigInt(3 * MiB));
    expect(y.size).toBe(17 * MiB);
    expect(d.mallocs).toEqual([20 * MiB]);
    const z = a.allocate(16 * MiB + 512); // >= 10 MiB and nothing cached: a segment of the size rounded to 2 MiB
    expect(d.mallocs).toEqual([20 * MiB, 18 * MiB]);
    expect(z.size).toBe(16 * MiB + 512);
    expect(a.stats().cacheHits).toBe(1);
    for (const b of [x, y, z]) a.free(b);
  });

  it('a block recorded on another stream is reused only after that stream\'s event completes', () => {
    const d = new FakeDriver();
    const a = new CachingAllocator(d);
    const x = a.allocate(8192, S1);
    a.recordStream(x, S2);
    a.recordStream(x, S1); // its own stream needs no event
    a.free(x);
    expect(d.events.size).toBe(1);
    expect([...d.events.values()][0]!.stream).toBe(S2);
    const y = a.allocate(8192, S1);
    expect(y.ptr).not.toBe(x.ptr); // x is still in flight on S2
    d.completeStream(S2);
    const z = a.allocate(8192, S1);
    expect(z.ptr).toBe(x.ptr);
    expect(d.events.size).toBe(0); // event destroyed once consumed
  });

  it('emptyCache returns only wholly free segments to the driver', () => {
    const d = new FakeDriver();
    const a = new CachingAllocator(d);
    const x = a.allocate(1000, S1);
    const y = a.allocate(30 * MiB, S1);
    a.free(y);
    a.emptyCache();
    expect(d.frees).toEqual([y.ptr]);
    expect(a.stats()).toMatchObject({ reservedBytes: 2 * MiB, segmentsReleased: 1 });
    a.free(x);
    a.emptyCache();
    expect(d.live.size).toBe(0);
    expect(a.stats().reservedBytes).toBe(0);
  });

  it('on driver OOM frees the cache and retries once, then throws naming the request and the stats', () => {
    const d = new FakeDriver();
    d.capacity = 40 * MiB;
    const a = new CachingAllocator(d);
    const x = a.allocate(24 * MiB);
    a.free(x); // 24 MiB cached
    const y = a.allocate(30 * MiB); // does not fit beside the cache: emptied, retried, succeeds
    expect(a.stats()).toMatchObject({ oomRetries: 1, segmentsReleased: 1, reservedBytes: 30 * MiB });
    let err: unknown;
    try { a.allocate(20 * MiB); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(OutOfMemoryError);
    expect((err as Error).message).toMatch(/allocating 20\.00 MiB \(20971520 B\).*30\.00 MiB allocated, 30\.00 MiB reserved/);
    expect(a.stats().oomRetries).toBe(2);
    a.free(y);
  });

  it('rejects a double free and a foreign block', () => {
    const a = new CachingAllocator(new FakeDriver());
    const x = a.allocate(10);
    a.free(x);
    expect(() => a.free(x)).toThrow(/not allocated by this allocator \(double free\?\)/);
    expect(() => a.free({ ptr: 5n, size: 512, requested: 1, stream: 0n })).toThrow(/0x5/);
  });
});
