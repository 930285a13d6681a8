// Reading a built dataset (layout in format.ts). `open` validates the index against the files on disk (every shard
// present with exactly tokens × bytes), so a truncated or missing file fails at open with its name, not mid-run.
// Reads are positional (a window of a shard), synchronous (the training loop pulls batches synchronously) and go
// through a small cache of open file descriptors: the dataset is never held in memory.
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Tokenizer } from '@farskip/models';
import { DatasetFormatError, INDEX_FILE, SPLIT_NAMES, dtypeBytes, parseIndex } from './format.js';
import type { DatasetIndex, SplitEntry, SplitName, TokenDtype } from './format.js';

/** Open file descriptors, least recently used closed first (a dataset may have thousands of shards). */
class FileCache {
  private readonly fds = new Map<string, number>();
  constructor(private readonly limit = 16) {}

  /** Reads exactly `length` bytes at `position` of `path` into `into` (from its start). */
  read(path: string, into: Uint8Array, length: number, position: number): void {
    let fd = this.fds.get(path);
    if (fd === undefined) {
      if (this.fds.size >= this.limit) this.evictOldest();
      try {
        fd = openSync(path, 'r');
      } catch (e) {
        throw new DatasetFormatError(`cannot open ${path}: ${e instanceof Error ? e.message : String(e)}; the dataset changed after it was opened — rebuild it`, path, { cause: e });
      }
    } else {
      this.fds.delete(path);
    }
    this.fds.set(path, fd);
    for (let done = 0; done < length; ) {
      const n = readSync(fd, into, done, length - done, position + done);
      if (n === 0) throw new DatasetFormatError(`${path} ended at byte ${position + done}, before the ${length} bytes read at ${position}; the file was truncated after the dataset was opened — rebuild it`, path);
      done += n;
    }
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  private evictOldest(): void {
    const [path, fd] = this.fds.entries().next().value as [string, number];
    closeSync(fd);
    this.fds.delete(path);
  }
}

function expectSize(path: string, bytes: number, what: string, indexFile: string): void {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new DatasetFormatError(`${what} ${path} listed in ${indexFile} is missing (${e instanceof Error ? e.message : String(e)}); rebuild the dataset with buildDataset`, path, { cause: e });
  }
  if (size !== bytes) {
    throw new DatasetFormatError(`${what} ${path} has ${size} bytes but ${indexFile} implies ${bytes}; the file is ${size < bytes ? 'truncated' : 'corrupt'} — rebuild the dataset with buildDataset`, path);
  }
}

/** One split (train or held-out): a token stream with document boundaries and an optional loss mask. */
export class TokenSplit {
  readonly tokens: number;
  readonly documents: number;
  readonly hasLossMask: boolean;
  /** [shards + 1] stream offset where each shard starts, then the total */
  private readonly starts: number[];
  private offsetsCache: Float64Array | null = null;
  private scratch = new Uint8Array(0);

  constructor(
    readonly name: SplitName,
    readonly dtype: TokenDtype,
    private readonly entry: SplitEntry,
    private readonly dir: string,
    private readonly files: FileCache,
  ) {
    this.tokens = entry.tokens;
    this.documents = entry.documents;
    this.hasLossMask = entry.lossMask;
    this.starts = [0];
    for (const s of entry.shards) this.starts.push(this.starts[this.starts.length - 1]! + s.tokens);
  }

  /** Tokens [start, start + count) of the stream, across shard boundaries. */
  read(start: number, count: number, out: Int32Array = new Int32Array(count)): Int32Array {
    const bytes = dtypeBytes(this.dtype);
    this.forEachPiece(start, count, (shard, offset, n, at) => {
      const buf = this.scratchOf(n * bytes);
      this.files.read(join(this.dir, this.entry.shards[shard]!.file), buf, n * bytes, offset * bytes);
      const view = new DataView(buf.buffer, buf.byteOffset, n * bytes);
      if (bytes === 2) for (let i = 0; i < n; i++) out[at + i] = view.getUint16(2 * i, true);
      else for (let i = 0; i < n; i++) out[at + i] = view.getUint32(4 * i, true);
    });
    return out;
  }

  /** Loss mask [count] of tokens [start, start + count): 1 = counts as a target. Only when hasLossMask. */
  readMask(start: number, count: number, out: Uint8Array = new Uint8Array(count)): Uint8Array {
    if (!this.hasLossMask) throw new Error(`split '${this.name}' has no loss mask (it was built from plain text, not chat documents)`);
    this.forEachPiece(start, count, (shard, offset, n, at) => {
      this.files.read(join(this.dir, this.entry.shards[shard]!.mask!), out.subarray(at), n, offset);
    });
    return out;
  }

  /** [documents + 1] stream offsets: document d is tokens [offsets[d], offsets[d + 1]) (its EOS included). */
  documentOffsets(): Float64Array {
    if (this.offsetsCache !== null) return this.offsetsCache;
    const path = join(this.dir, this.entry.offsets);
    const bytes = readFileSync(path);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const offsets = new Float64Array(this.documents + 1);
    for (let d = 0; d <= this.documents; d++) {
      offsets[d] = Number(view.getBigUint64(8 * d, true));
      if (d > 0 ? offsets[d]! < offsets[d - 1]! : offsets[d] !== 0) {
        throw new DatasetFormatError(`${path}: document offsets are not increasing from 0 at entry ${d}; the file is corrupt — rebuild the dataset`, path);
      }
    }
    if (offsets[this.documents] !== this.tokens) {
      throw new DatasetFormatError(`${path}: the last offset is ${offsets[this.documents]}, but the split has ${this.tokens} tokens; rebuild the dataset`, path);
    }
    return (this.offsetsCache = offsets);
  }

  /** The tokens of document `d` (0-based within this split), its trailing EOS included. */
  document(d: number): Int32Array {
    if (!Number.isInteger(d) || d < 0 || d >= this.documents) {
      throw new RangeError(`split '${this.name}' has ${this.documents} documents; document ${d} does not exist`);
    }
    const offsets = this.documentOffsets();
    return this.read(offsets[d]!, offsets[d + 1]! - offsets[d]!);
  }

  /** Calls fn(shard, offset in shard, count, offset in output) for the pieces of [start, start + count). */
  private forEachPiece(start: number, count: number, fn: (shard: number, offset: number, n: number, at: number) => void): void {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > this.tokens) {
      throw new RangeError(`split '${this.name}' has ${this.tokens} tokens; cannot read [${start}, ${start + count})`);
    }
    let shard = this.shardOf(start);
    for (let at = 0; at < count; shard++) {
      const offset = start + at - this.starts[shard]!;
      const n = Math.min(count - at, this.starts[shard + 1]! - this.starts[shard]! - offset);
      if (n > 0) fn(shard, offset, n, at);
      at += n;
    }
  }

  /** The shard holding stream position `pos` (binary search over the shard starts). */
  private shardOf(pos: number): number {
    let lo = 0;
    let hi = this.starts.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private scratchOf(bytes: number): Uint8Array {
    if (this.scratch.length < bytes) this.scratch = new Uint8Array(Math.max(bytes, 2 * this.scratch.length));
    return this.scratch;
  }
}

/** A built dataset directory (buildDataset's output), validated on open. */
export class TokenDataset {
  private readonly files = new FileCache();
  private readonly splits = new Map<SplitName, TokenSplit>();

  private constructor(
    readonly dir: string,
    readonly index: DatasetIndex,
  ) {
    for (const name of SPLIT_NAMES) this.splits.set(name, new TokenSplit(name, index.dtype, index.splits[name], dir, this.files));
  }

  /** Opens `dir`: parses index.json and checks that the tokenizer, every shard, mask and offsets file match it. */
  static open(dir: string): TokenDataset {
    const root = resolve(dir);
    const indexFile = join(root, INDEX_FILE);
    let text: string;
    try {
      text = readFileSync(indexFile, 'utf8');
    } catch (e) {
      const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
      throw new DatasetFormatError(
        missing
          ? `${indexFile} not found: ${root} is not a dataset, or its build did not finish (index.json is written last); build it with buildDataset`
          : `cannot read ${indexFile}: ${e instanceof Error ? e.message : String(e)}`,
        indexFile,
        { cause: e },
      );
    }
    const index = parseIndex(text, indexFile);
    const bytes = dtypeBytes(index.dtype);
    for (const name of SPLIT_NAMES) {
      const split = index.splits[name];
      for (const s of split.shards) {
        expectSize(join(root, s.file), s.tokens * bytes, `${name} shard`, indexFile);
        if (s.mask !== undefined) expectSize(join(root, s.mask), s.tokens, `${name} loss-mask file`, indexFile);
      }
      expectSize(join(root, split.offsets), 8 * (split.documents + 1), `${name} document offsets`, indexFile);
    }
    const tokenizer = join(root, index.tokenizer);
    try {
      statSync(tokenizer);
    } catch (e) {
      throw new DatasetFormatError(`tokenizer ${tokenizer} listed in ${indexFile} is missing; rebuild the dataset with buildDataset`, tokenizer, { cause: e });
    }
    return new TokenDataset(root, index);
  }

  /** Path of the dataset's tokenizer.json (load it with Tokenizer.fromDir(dataset.dir)). */
  get tokenizerPath(): string {
    return join(this.dir, this.index.tokenizer);
  }

  /** The tokenizer the dataset was built with (saved beside the shards). */
  tokenizer(): Promise<Tokenizer> {
    return Tokenizer.fromDir(this.dir);
  }

  get vocabSize(): number {
    return this.index.vocabSize;
  }

  split(name: string): TokenSplit {
    const split = this.splits.get(name as SplitName);
    if (split === undefined) throw new RangeError(`dataset ${this.dir} has splits ${SPLIT_NAMES.map((n) => `'${n}'`).join(', ')}; no split '${name}'`);
    return split;
  }

  /** Closes the cached file descriptors (reads reopen them). */
  close(): void {
    this.files.close();
  }
}
