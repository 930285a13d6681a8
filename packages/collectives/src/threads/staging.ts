// Buffers the comm threads can reach. A typed array over a SharedArrayBuffer is used in place (peers' comm
// threads read and write it directly: zero copies). Any other typed array is copied into a pooled shared
// staging buffer when the operation is issued and copied back when the rank observes completion; that is one
// extra copy each way, so hot buffers (gradients, activations) should be allocated over a SharedArrayBuffer.
import type { HostBuffer } from '../types.js';
import type { BufRef } from './protocol.js';

const POOL_LIMIT = 256 * 1024 * 1024;

export class StagingPool {
  #free = new Map<number, SharedArrayBuffer[]>();
  #pooled = 0;

  take(bytes: number): SharedArrayBuffer {
    const cls = bytes <= 64 ? 64 : 2 ** Math.ceil(Math.log2(bytes));
    const sab = this.#free.get(cls)?.pop();
    if (sab) { this.#pooled -= cls; return sab; }
    return new SharedArrayBuffer(cls);
  }

  give(sab: SharedArrayBuffer): void {
    if (this.#pooled + sab.byteLength > POOL_LIMIT) return;
    let l = this.#free.get(sab.byteLength);
    if (!l) this.#free.set(sab.byteLength, (l = []));
    l.push(sab);
    this.#pooled += sab.byteLength;
  }
}

export interface Staged { ref: BufRef; /** copy back (when the op wrote it) and release; after success only */ release?: (ok: boolean) => void }

export function isShared(b: HostBuffer): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && b.buffer instanceof SharedArrayBuffer;
}

/** `output`: the operation writes the buffer (copy back on success). */
export function stage(pool: StagingPool, b: HostBuffer, input: boolean, output: boolean): Staged {
  if (isShared(b)) return { ref: { sab: b.buffer as SharedArrayBuffer, off: b.byteOffset, len: b.length } };
  const bytes = b.byteLength;
  const sab = pool.take(bytes);
  if (input && bytes) new Uint8Array(sab, 0, bytes).set(new Uint8Array(b.buffer, b.byteOffset, bytes));
  return {
    ref: { sab, off: 0, len: b.length },
    release: (ok) => {
      if (!ok) return; // a failed peer may still touch it: let GC have it rather than reuse it
      if (output && bytes) new Uint8Array(b.buffer, b.byteOffset, bytes).set(new Uint8Array(sab, 0, bytes));
      pool.give(sab);
    },
  };
}

/** A typed array of `length` elements of the same kind as `like`, over a SharedArrayBuffer (zero-copy path). */
export function sharedLike<T extends HostBuffer>(like: T, length: number = like.length): T {
  const C = like.constructor as new (b: SharedArrayBuffer) => T;
  return new C(new SharedArrayBuffer(length * like.BYTES_PER_ELEMENT));
}
