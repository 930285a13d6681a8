// One safetensors file, read lazily: open() reads and validates only the header; read(name) then fetches that
// tensor's bytes with one positional read and decodes them. Synchronous, like the Python library's safe_open.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Tensor } from '@farskip/tensor';
import { decodeTensor, type ReadAs } from './decode.js';
import { type SafetensorsDType, type SafetensorsHeader, type TensorEntry, parseHeaderJson, parseSafetensorsHeader, readHeaderLength } from './format.js';

export interface SafetensorsTensorInfo {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** [begin, end) relative to the data region, as in the header. */
  readonly dataOffsets: readonly [number, number];
}

export interface ReadOptions {
  /** Float conversion; see ReadAs. Default 'native'. */
  as?: ReadAs;
}

/** Where the bytes come from: an open file descriptor or a buffer already in memory. */
interface ByteSource {
  readonly size: number;
  /** Fills `into` from absolute `position`; throws if the source ends first. */
  read(position: number, into: Uint8Array): void;
  close(): void;
}

// readSync takes at most 2^31 - 1 bytes per call
const MAX_READ = 1 << 30;

function fileSource(path: string): ByteSource {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path}: not a regular file`);
    return {
      size: st.size,
      read(position, into) {
        let done = 0;
        while (done < into.length) {
          const got = readSync(fd, into, done, Math.min(into.length - done, MAX_READ), position + done);
          if (got === 0) {
            throw new Error(`${path}: file ended at byte ${position + done} while reading bytes [${position}, ${position + into.length}) ` +
              `(was it truncated after it was opened?)`);
          }
          done += got;
        }
      },
      close() { closeSync(fd); },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function bufferSource(buf: Uint8Array): ByteSource {
  return {
    size: buf.length,
    read(position, into) { into.set(buf.subarray(position, position + into.length)); },
    close() {},
  };
}

export class SafetensorsFile {
  /** The path (or buffer name) every error message starts with. */
  readonly path: string;
  /** The header's "__metadata__" (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly headerLength: number;
  private readonly dataStart: number;
  private readonly entries: ReadonlyMap<string, TensorEntry>;
  private readonly order: readonly string[];
  private source: ByteSource | null;
  private readCount = 0;

  private constructor(path: string, source: ByteSource, header: SafetensorsHeader) {
    this.path = path;
    this.source = source;
    this.metadata = header.metadata;
    this.headerLength = header.headerLength;
    this.dataStart = header.dataStart;
    this.entries = header.tensors;
    // storage order, so that reading every key in turn walks the file front to back
    this.order = [...header.tensors.keys()].sort((a, b) => header.tensors.get(a)!.begin - header.tensors.get(b)!.begin);
  }

  /** Opens `path` and validates its header; no tensor data is read. */
  static open(path: string): SafetensorsFile {
    const source = fileSource(path);
    try {
      const prefix = new Uint8Array(Math.min(8, source.size));
      source.read(0, prefix);
      const headerLength = readHeaderLength(prefix, source.size, path);
      const json = new Uint8Array(headerLength);
      source.read(8, json);
      const dataStart = 8 + headerLength, dataSize = source.size - dataStart;
      const { tensors, metadata } = parseHeaderJson(json, dataSize, path);
      const file = new SafetensorsFile(path, source, { headerLength, dataStart, dataSize, tensors, metadata });
      file.readCount = dataStart;
      return file;
    } catch (e) {
      source.close();
      throw e;
    }
  }

  /** The same reader over a whole file held in memory (`name` starts error messages). */
  static fromBuffer(buf: Uint8Array, name = '<buffer>'): SafetensorsFile {
    const header = parseSafetensorsHeader(buf, name);
    const file = new SafetensorsFile(name, bufferSource(buf), header);
    file.readCount = header.dataStart;
    return file;
  }

  /** Bytes fetched from the source so far, header included (lets callers and tests see that reads stay lazy). */
  get bytesRead(): number { return this.readCount; }

  /** Tensor names in storage order. */
  keys(): string[] { return [...this.order]; }

  has(name: string): boolean { return this.entries.has(name); }

  info(name: string): SafetensorsTensorInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: e.shape, byteLength: e.end - e.begin, dataOffsets: [e.begin, e.end] };
  }

  /** Reads and decodes one tensor (only its own bytes). */
  read(name: string, options: ReadOptions = {}): Tensor {
    const e = this.entry(name);
    const source = this.source;
    if (!source) throw new Error(`${this.path}: read('${name}') after close()`);
    const as = options.as ?? 'native';
    if (as !== 'native' && as !== 'f32' && as !== 'bf16') {
      throw new Error(`${this.path}: read('${name}', { as: ${JSON.stringify(as)} }); expected 'native', 'f32' or 'bf16'`);
    }
    // a fresh allocation of its own, so that typed-array views over it are aligned
    const bytes = new Uint8Array(new ArrayBuffer(e.end - e.begin));
    source.read(this.dataStart + e.begin, bytes);
    this.readCount += bytes.length;
    return decodeTensor(bytes, e.dtype, e.shape, as, `${this.path}: tensor '${name}'`);
  }

  /** Releases the file descriptor; later reads throw. Safe to call twice. */
  close(): void {
    const s = this.source;
    this.source = null;
    s?.close();
  }

  private entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) {
      const some = this.order.slice(0, 5).map((k) => `'${k}'`).join(', ');
      throw new Error(`${this.path}: no tensor '${name}' (the file has ${this.order.length} tensors${some ? `: ${some}${this.order.length > 5 ? ', …' : ''}` : ''})`);
    }
    return e;
  }
}
