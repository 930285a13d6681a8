// Writes one split's token stream as fixed-size shards, each file atomically (temporary file, fsync, rename), and
// records what it wrote so a failed build can remove it.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { offsetsFileName, shardFileName } from './format.js';
import type { ShardEntry, SplitEntry, SplitName, TokenDtype } from './format.js';

/** Writes `data` to `dir/name` through a temporary file in the same directory; adds `name` to `written`. */
export function writeFileAtomic(dir: string, name: string, data: Uint8Array, written: Set<string>): void {
  const path = join(dir, name);
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    written.add(name);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    throw e;
  }
}

/** Little-endian bytes of a token buffer (a copy only on a big-endian host). */
function littleEndianBytes(tokens: Uint16Array | Uint32Array, count: number): Uint8Array {
  const bytes = new Uint8Array(tokens.buffer, tokens.byteOffset, count * tokens.BYTES_PER_ELEMENT);
  if (LITTLE_ENDIAN_HOST) return bytes;
  const out = new Uint8Array(bytes.length);
  const view = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    if (tokens instanceof Uint16Array) view.setUint16(2 * i, tokens[i]!, true);
    else view.setUint32(4 * i, tokens[i]!, true);
  }
  return out;
}
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Accumulates a split's documents ([tokens] per document, EOS already appended) into shards of `shardTokens`.
 * The loss mask is written only once a document carries one (a chat document); shards flushed before that get
 * all-ones masks then, so every shard of a masked split has one.
 */
export class SplitWriter {
  readonly shards: ShardEntry[] = [];
  /** document start offsets in the split's stream, plus the end */
  private readonly offsets: number[] = [0];
  private readonly buffer: Uint16Array | Uint32Array;
  private maskBuffer: Uint8Array | null = null;
  private fill = 0;
  tokens = 0;

  constructor(
    private readonly dir: string,
    readonly name: SplitName,
    readonly dtype: TokenDtype,
    private readonly shardTokens: number,
    private readonly vocabSize: number,
    private readonly written: Set<string>,
  ) {
    this.buffer = dtype === 'uint16' ? new Uint16Array(shardTokens) : new Uint32Array(shardTokens);
  }

  get documents(): number {
    return this.offsets.length - 1;
  }

  /** Appends one document: ids [n] and its mask [n] (null: every token counts). */
  append(docId: string, ids: readonly number[], mask: Uint8Array | null): void {
    if (mask !== null && this.maskBuffer === null) this.startMask();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(`document '${docId}' has token id ${id} at position ${i}, outside the vocabulary [0, ${this.vocabSize}); the tokenizer and its vocabSize disagree`);
      }
      this.buffer[this.fill] = id;
      if (this.maskBuffer !== null) this.maskBuffer[this.fill] = mask === null ? 1 : mask[i]!;
      if (++this.fill === this.shardTokens) this.flush();
    }
    this.tokens += ids.length;
    this.offsets.push(this.tokens);
  }

  /** Writes the last partial shard and the offsets file; returns the split's index entry. */
  finish(): SplitEntry {
    if (this.fill > 0) this.flush();
    const offsets = new Uint8Array(8 * this.offsets.length);
    const view = new DataView(offsets.buffer);
    this.offsets.forEach((o, i) => view.setBigUint64(8 * i, BigInt(o), true));
    const offsetsFile = offsetsFileName(this.name);
    writeFileAtomic(this.dir, offsetsFile, offsets, this.written);
    return { shards: this.shards, documents: this.documents, tokens: this.tokens, offsets: offsetsFile, lossMask: this.maskBuffer !== null };
  }

  private flush(): void {
    const shard = this.shards.length;
    const entry: ShardEntry = { file: shardFileName(this.name, shard), tokens: this.fill };
    writeFileAtomic(this.dir, entry.file, littleEndianBytes(this.buffer, this.fill), this.written);
    if (this.maskBuffer !== null) {
      entry.mask = shardFileName(this.name, shard, 'mask');
      writeFileAtomic(this.dir, entry.mask, this.maskBuffer.subarray(0, this.fill), this.written);
    }
    this.shards.push(entry);
    this.fill = 0;
  }

  /** The first masked document: every token so far counted, so the shards already written get all-ones masks. */
  private startMask(): void {
    this.maskBuffer = new Uint8Array(this.shardTokens);
    this.maskBuffer.fill(1, 0, this.fill);
    this.shards.forEach((s, i) => {
      s.mask = shardFileName(this.name, i, 'mask');
      writeFileAtomic(this.dir, s.mask, new Uint8Array(s.tokens).fill(1), this.written);
    });
  }
}
