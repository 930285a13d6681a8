// A caching device allocator, PyTorch's CUDACachingAllocator simplified. cuMemAlloc / cuMemFree synchronize the
// device and cost tens of microseconds, so freed memory is kept and handed out again:
//  - sizes round up to 512 B; requests <= 1 MiB come from the small pool (2 MiB segments), larger ones from the
//    large pool (20 MiB segments for requests < 10 MiB, else the size rounded up to 2 MiB);
//  - a cached block larger than the request is split (small pool: when >= 512 B remain; large: when > 1 MiB
//    remain), and freed neighbours within one segment merge again;
//  - a block belongs to the stream it was allocated on and is reused only by requests on that stream: kernels on
//    one stream run in order, so the next user cannot overtake the last. A block also used on other streams
//    (recordStream) is held back at free() until an event recorded on each of those streams has completed;
//  - when the driver is out of memory, every cached segment that is wholly free is released and the request is
//    retried once; then the error names the request and the allocator's statistics.
// The driver is an interface so that this bookkeeping is testable without a GPU (runtimeAllocatorDriver adapts a
// GpuRuntime). Not thread-safe: one allocator per device per JS thread.
import { GpuError } from './errors.js';
import type { GpuRuntime } from './runtime.js';

export interface AllocatorDriver {
  /** Device memory of exactly `bytes`, or null when the device is out of memory (other failures throw). */
  malloc(bytes: number): bigint | null;
  free(ptr: bigint): void;
  createEvent(): bigint;
  destroyEvent(event: bigint): void;
  record(event: bigint, stream: bigint): void;
  query(event: bigint): boolean;
}

/** CUDA_ERROR_OUT_OF_MEMORY (cuda.h) and hipErrorOutOfMemory (hip_runtime_api.h) are both 2. */
const OUT_OF_MEMORY = 2;

export function runtimeAllocatorDriver(rt: GpuRuntime): AllocatorDriver {
  return {
    malloc(bytes) {
      try { return rt.alloc(bytes); } catch (e) {
        if (e instanceof GpuError && e.code === OUT_OF_MEMORY) return null;
        throw e;
      }
    },
    free: (ptr) => rt.free(ptr),
    createEvent: () => rt.createEvent(),
    destroyEvent: (e) => rt.destroyEvent(e),
    record: (e, s) => rt.record(e, s),
    query: (e) => rt.query(e),
  };
}

export const MIN_BLOCK = 512;
export const SMALL_SIZE = 1 << 20; // largest request served by the small pool
export const SMALL_SEGMENT = 2 << 20;
export const MIN_LARGE_ALLOC = 10 << 20;
export const LARGE_SEGMENT = 20 << 20;
export const ROUND_LARGE = 2 << 20;

export interface AllocatorStats {
  /** Bytes in blocks handed out (rounded sizes). */
  allocatedBytes: number;
  /** Bytes obtained from the driver and not yet returned. */
  reservedBytes: number;
  peakAllocatedBytes: number;
  peakReservedBytes: number;
  /** allocate() calls that succeeded. */
  numAllocs: number;
  /** ... of which were served from the cache without a driver call. */
  cacheHits: number;
  numFrees: number;
  /** Driver allocations (segments) made, and released by emptyCache(). */
  segmentsAllocated: number;
  segmentsReleased: number;
  /** Times the driver ran out of memory and the cache was emptied for a retry. */
  oomRetries: number;
}

/** A block handed out: `ptr` is valid for `size` bytes (>= the request) until free(). */
export interface DeviceBlock {
  readonly ptr: bigint;
  readonly size: number;
  readonly requested: number;
  readonly stream: bigint;
}

interface Segment { ptr: bigint; size: number; stream: bigint; small: boolean }

interface Block extends DeviceBlock {
  ptr: bigint;
  size: number;
  requested: number;
  segment: Segment;
  prev: Block | null;
  next: Block | null;
  allocated: boolean;
  /** Other streams that used the block (recordStream); cleared when it returns to the pool. */
  uses: Set<bigint>;
  /** Events a freed block waits on before it may be reused. */
  events: bigint[];
}

export function roundSize(bytes: number): number {
  return Math.max(MIN_BLOCK, Math.ceil(bytes / MIN_BLOCK) * MIN_BLOCK);
}

/** Driver allocation size for a (rounded) request that missed the cache. */
export function segmentSize(size: number): number {
  if (size <= SMALL_SIZE) return SMALL_SEGMENT;
  if (size < MIN_LARGE_ALLOC) return LARGE_SEGMENT;
  return Math.ceil(size / ROUND_LARGE) * ROUND_LARGE;
}

const fmt = (b: number): string => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(2)} MiB` : `${b} B`);

export class OutOfMemoryError extends Error {
  override readonly name = 'OutOfMemoryError';
  constructor(readonly requested: number, readonly stats: AllocatorStats) {
    super(`out of device memory allocating ${fmt(requested)} (${requested} B) even after releasing the cache: ` +
      `${fmt(stats.allocatedBytes)} allocated, ${fmt(stats.reservedBytes)} reserved by this allocator ` +
      `(peak ${fmt(stats.peakAllocatedBytes)} allocated). Free tensors you no longer need, use smaller batches, ` +
      'or check for other processes on the device (nvidia-smi / rocm-smi).');
  }
}

export class CachingAllocator {
  private readonly pools = new Map<string, Block[]>(); // key `${small ? 's' : 'l'}:${stream}` -> free blocks by (size, ptr)
  private readonly live = new Map<bigint, Block>();
  private readonly pending: Block[] = [];
  private readonly s: AllocatorStats = {
    allocatedBytes: 0, reservedBytes: 0, peakAllocatedBytes: 0, peakReservedBytes: 0, numAllocs: 0, cacheHits: 0,
    numFrees: 0, segmentsAllocated: 0, segmentsReleased: 0, oomRetries: 0,
  };

  constructor(private readonly driver: AllocatorDriver) {}

  stats(): AllocatorStats { return { ...this.s }; }

  /** A block of at least `bytes` for use on `stream` (0n is the default stream). */
  allocate(bytes: number, stream = 0n): DeviceBlock {
    if (!(Number.isInteger(bytes) && bytes >= 0)) throw new RangeError(`allocate(${bytes}): expected a non-negative integer byte count`);
    this.processEvents();
    const size = roundSize(bytes);
    const small = size <= SMALL_SIZE;
    let block = this.takeFree(small, stream, size);
    if (block) this.s.cacheHits++;
    else block = this.newSegment(small, stream, size, bytes);
    this.split(block, size);
    block.allocated = true;
    block.requested = bytes;
    this.live.set(block.ptr, block);
    this.s.allocatedBytes += block.size;
    this.s.peakAllocatedBytes = Math.max(this.s.peakAllocatedBytes, this.s.allocatedBytes);
    this.s.numAllocs++;
    return block;
  }

  /** Marks `block` as used by work on `stream` too: free() then waits for that work before the block is reused. */
  recordStream(block: DeviceBlock, stream: bigint): void {
    const b = this.liveBlock(block, 'recordStream');
    if (stream !== b.stream) b.uses.add(stream);
  }

  free(block: DeviceBlock): void {
    const b = this.liveBlock(block, 'free');
    this.live.delete(b.ptr);
    b.allocated = false;
    this.s.allocatedBytes -= b.size;
    this.s.numFrees++;
    if (b.uses.size === 0) { this.release(b); return; }
    for (const stream of b.uses) {
      const e = this.driver.createEvent();
      this.driver.record(e, stream);
      b.events.push(e);
    }
    b.uses.clear();
    this.pending.push(b);
  }

  /** Returns every wholly free cached segment to the driver (blocks still waiting on events stay). */
  emptyCache(): void {
    this.processEvents();
    for (const [key, list] of this.pools) {
      const keep: Block[] = [];
      for (const b of list) {
        if (b.prev === null && b.next === null) {
          this.driver.free(b.segment.ptr);
          this.s.reservedBytes -= b.segment.size;
          this.s.segmentsReleased++;
        } else keep.push(b);
      }
      if (keep.length) this.pools.set(key, keep); else this.pools.delete(key);
    }
  }

  /** Moves freed blocks whose cross-stream events have all completed into their pools. */
  processEvents(): void {
    for (let i = 0; i < this.pending.length;) {
      const b = this.pending[i]!;
      if (b.events.every((e) => this.driver.query(e))) {
        for (const e of b.events) this.driver.destroyEvent(e);
        b.events = [];
        this.pending.splice(i, 1);
        this.release(b);
      } else i++;
    }
  }

  private liveBlock(block: DeviceBlock, call: string): Block {
    const b = this.live.get(block.ptr);
    if (!b || b !== block) throw new Error(`${call}: block at 0x${block.ptr.toString(16)} is not allocated by this allocator (double free?)`);
    return b;
  }

  private key(small: boolean, stream: bigint): string { return `${small ? 's' : 'l'}:${stream}`; }

  /** Best fit: the smallest free block on this stream and pool with size >= `size` (lowest address on ties). */
  private takeFree(small: boolean, stream: bigint, size: number): Block | null {
    const list = this.pools.get(this.key(small, stream));
    if (!list) return null;
    let lo = 0, hi = list.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (list[mid]!.size < size) lo = mid + 1; else hi = mid; }
    if (lo === list.length) return null;
    return list.splice(lo, 1)[0]!;
  }

  private insertFree(b: Block): void {
    const key = this.key(b.segment.small, b.stream);
    let list = this.pools.get(key);
    if (!list) { list = []; this.pools.set(key, list); }
    const before = (x: Block): boolean => x.size < b.size || (x.size === b.size && x.ptr < b.ptr);
    let lo = 0, hi = list.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (before(list[mid]!)) lo = mid + 1; else hi = mid; }
    list.splice(lo, 0, b);
  }

  private removeFree(b: Block): void {
    const list = this.pools.get(this.key(b.segment.small, b.stream))!;
    list.splice(list.indexOf(b), 1);
  }

  private newSegment(small: boolean, stream: bigint, size: number, requested: number): Block {
    const bytes = segmentSize(size);
    let ptr = this.driver.malloc(bytes);
    if (ptr === null) {
      this.s.oomRetries++;
      this.emptyCache();
      ptr = this.driver.malloc(bytes);
      if (ptr === null) throw new OutOfMemoryError(requested, this.stats());
    }
    const segment: Segment = { ptr, size: bytes, stream, small };
    this.s.reservedBytes += bytes;
    this.s.peakReservedBytes = Math.max(this.s.peakReservedBytes, this.s.reservedBytes);
    this.s.segmentsAllocated++;
    return { ptr, size: bytes, requested: 0, stream, segment, prev: null, next: null, allocated: false, uses: new Set(), events: [] };
  }

  /** Cuts the unused tail of `b` into a free block when it is worth keeping apart. */
  private split(b: Block, size: number): void {
    const rest = b.size - size;
    if (b.segment.small ? rest < MIN_BLOCK : rest <= SMALL_SIZE) return;
    const tail: Block = {
      ptr: b.ptr + BigInt(size), size: rest, requested: 0, stream: b.stream, segment: b.segment,
      prev: b, next: b.next, allocated: false, uses: new Set(), events: [],
    };
    if (b.next) b.next.prev = tail;
    b.next = tail;
    b.size = size;
    this.insertFree(tail);
  }

  /** Returns a block to its pool, merging it with free neighbours of the same segment. */
  private release(b: Block): void {
    // a neighbour still waiting on events (pending) is not in a pool yet: it merges when it is released itself
    const free = (x: Block | null): x is Block => x !== null && !x.allocated && x.events.length === 0;
    // `left` takes over `right`'s bytes and its place in the segment's list
    const merge = (left: Block, right: Block): Block => {
      left.size += right.size;
      left.next = right.next;
      if (right.next) right.next.prev = left;
      return left;
    };
    if (free(b.prev)) { this.removeFree(b.prev); b = merge(b.prev, b); }
    if (free(b.next)) { this.removeFree(b.next); merge(b, b.next); }
    this.insertFree(b);
  }
}
