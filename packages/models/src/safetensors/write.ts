// Writing safetensors files and sharded checkpoints. Layout as the upstream writer makes it: data ordered by
// descending dtype then by name (UTF-8 byte order), header JSON compact with "__metadata__" first, padded with
// spaces to a multiple of 8. Every file is written to a temp file in the same directory, fsynced and renamed
// into place, so a failure never leaves a partial file (nor the temp file) behind.
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type Tensor, type TypedArray, f32ToBf16Bits, numelOf } from '@farskip/tensor';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from './checkpoint.js';

export type TensorSet = Readonly<Record<string, Tensor>> | ReadonlyMap<string, Tensor>;

export interface WriteSafetensorsOptions {
  /** Written as the header's "__metadata__" (e.g. { format: 'pt' }). */
  metadata?: Readonly<Record<string, string>>;
  /** Store f32 tensors as 'F32' (default) or 'BF16' (round to nearest even). */
  f32As?: 'F32' | 'BF16';
}

export interface ShardedCheckpointOptions extends WriteSafetensorsOptions {
  /**
   * Most tensor bytes per shard (default 5e9, transformers' "5GB"). Tensors fill shards in the order given; a
   * tensor larger than this gets a shard of its own.
   */
  maxShardBytes?: number;
}

export interface ShardedCheckpointResult {
  /** Files written, relative to the directory (shards, then the index when there is one). */
  readonly files: readonly string[];
  /** Sum of all tensors' stored bytes (the index's metadata.total_size). */
  readonly totalSize: number;
}

type StoredDType = 'F64' | 'F32' | 'I32' | 'BF16';
const STORED: Readonly<Record<string, StoredDType>> = { f64: 'F64', f32: 'F32', i32: 'I32', bf16: 'BF16' };
const BYTES: Readonly<Record<StoredDType, number>> = { F64: 8, F32: 4, I32: 4, BF16: 2 };
// the upstream Dtype enum's order (BF16 < I32 < F32 < F64), which its writer sorts by, descending
const RANK: Readonly<Record<StoredDType, number>> = { BF16: 0, I32: 1, F32: 2, F64: 3 };
const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;
const MAX_WRITE = 1 << 30;
const CONVERT_CHUNK = 1 << 20;
const encoder = new TextEncoder();
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface Planned {
  readonly name: string;
  readonly tensor: Tensor;
  readonly dtype: StoredDType;
  readonly byteLength: number;
}

/** Writes one safetensors file at `path` (atomically; its directory must exist). */
export function writeSafetensors(path: string, tensors: TensorSet, options: WriteSafetensorsOptions = {}): void {
  const planned = plan(path, tensors, options);
  const metadata = checkMetadata(path, options.metadata);
  const tmp = writeTemp(path, (fd) => writeBody(fd, planned, metadata));
  commit([[tmp, path]]);
}

/**
 * Writes `dir/model.safetensors` when everything fits in one shard, else `model-0000i-of-0000N.safetensors`
 * plus `model.safetensors.index.json` ({ metadata: { ...metadata, total_size }, weight_map }). All shards are
 * complete on disk before any is renamed into place; the index goes last. Files of the other layout (or
 * shards of an earlier, differently sized write) are removed afterwards so the directory holds one checkpoint.
 */
export function writeShardedCheckpoint(dir: string, tensors: TensorSet, options: ShardedCheckpointOptions = {}): ShardedCheckpointResult {
  const max = options.maxShardBytes ?? 5e9;
  if (!(max > 0)) throw new Error(`${dir}: maxShardBytes ${max} must be a positive number of bytes`);
  const planned = plan(dir, tensors, options);
  const metadata = checkMetadata(dir, options.metadata);
  const groups: Planned[][] = [[]];
  let used = 0;
  for (const p of planned) {
    if (used + p.byteLength > max && groups.at(-1)!.length > 0) { groups.push([]); used = 0; }
    groups.at(-1)!.push(p);
    used += p.byteLength;
  }
  const totalSize = planned.reduce((s, p) => s + p.byteLength, 0);
  mkdirSync(dir, { recursive: true });

  const names = groups.length === 1 ? [SINGLE_FILE_NAME]
    : groups.map((_, i) => `model-${pad5(i + 1)}-of-${pad5(groups.length)}.safetensors`);
  const staged: [string, string][] = [];
  try {
    groups.forEach((g, i) => {
      const target = join(dir, names[i]!);
      staged.push([writeTemp(target, (fd) => writeBody(fd, g, metadata)), target]);
    });
    if (groups.length > 1) {
      const weightMap: Record<string, string> = {};
      const byName = groups.flatMap((g, i) => g.map((p) => [p.name, names[i]!] as const)).sort((a, b) => compareUtf8(a[0], b[0]));
      for (const [name, file] of byName) define(weightMap, name, file);
      const indexMeta: Record<string, string | number> = {};
      for (const k of Object.keys(metadata ?? {}).sort(compareUtf8)) define(indexMeta, k, metadata![k]!);
      define(indexMeta, 'total_size', totalSize);
      const json = `${JSON.stringify({ metadata: indexMeta, weight_map: weightMap }, null, 2)}\n`;
      const target = join(dir, INDEX_FILE_NAME);
      staged.push([writeTemp(target, (fd) => writeAll(fd, encoder.encode(json))), target]);
      names.push(INDEX_FILE_NAME);
    }
  } catch (e) {
    for (const [tmp] of staged) rmSync(tmp, { force: true });
    throw e;
  }
  commit(staged);
  const keep = new Set(names);
  for (const f of readdirSync(dir)) {
    if ((f === SINGLE_FILE_NAME || f === INDEX_FILE_NAME || SHARD_NAME.test(f)) && !keep.has(f)) rmSync(join(dir, f), { force: true });
  }
  return { files: names, totalSize };
}

// ---- planning and the byte layout ----------------------------------------------------------------------------
function plan(file: string, tensors: TensorSet, options: WriteSafetensorsOptions): Planned[] {
  if (!LITTLE_ENDIAN) throw new Error(`${file}: writing safetensors needs a little-endian host`);
  const f32As = options.f32As ?? 'F32';
  if (f32As !== 'F32' && f32As !== 'BF16') throw new Error(`${file}: f32As ${JSON.stringify(f32As)}; expected 'F32' or 'BF16'`);
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, Tensor>);
  return entries.map(([name, tensor]) => {
    const where = `${file}: tensor '${name}'`;
    if (typeof name !== 'string' || name === '__metadata__') throw new Error(`${where}: '__metadata__' is reserved for the header's metadata`);
    if (!tensor || typeof tensor !== 'object' || !Array.isArray(tensor.shape)) throw new Error(`${where} is not a Tensor`);
    const stored = STORED[tensor.dtype];
    if (!stored) throw new Error(`${where} has dtype '${String(tensor.dtype)}'; expected f32, bf16, i32 or f64`);
    const dtype = stored === 'F32' ? f32As : stored;
    const numel = numelOf(tensor.shape);
    if (tensor.data.length !== numel) throw new Error(`${where} has ${tensor.data.length} elements but shape [${tensor.shape.join(', ')}]`);
    return { name, tensor, dtype, byteLength: numel * BYTES[dtype] };
  });
}

function checkMetadata(file: string, metadata: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> | undefined {
  if (metadata === undefined) return undefined;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new Error(`${file}: metadata must be an object of strings`);
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`${file}: metadata '${k}' is ${typeof v}; safetensors metadata values must be strings`);
  }
  return metadata;
}

/** Header bytes (JSON + space padding) for `ordered` tensors, whose data follows back to back. */
function headerBytes(ordered: readonly Planned[], metadata: Readonly<Record<string, string>> | undefined): Uint8Array {
  const parts: string[] = [];
  if (metadata) {
    const sorted: Record<string, string> = {};
    for (const k of Object.keys(metadata).sort(compareUtf8)) define(sorted, k, metadata[k]!);
    parts.push(`"__metadata__":${JSON.stringify(sorted)}`);
  }
  let offset = 0;
  for (const p of ordered) {
    parts.push(`${JSON.stringify(p.name)}:{"dtype":"${p.dtype}","shape":[${p.tensor.shape.join(',')}],"data_offsets":[${offset},${offset + p.byteLength}]}`);
    offset += p.byteLength;
  }
  const json = encoder.encode(`{${parts.join(',')}}`);
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

function writeBody(fd: number, tensors: readonly Planned[], metadata: Readonly<Record<string, string>> | undefined): void {
  const ordered = [...tensors].sort((a, b) => RANK[b.dtype] - RANK[a.dtype] || compareUtf8(a.name, b.name));
  const header = headerBytes(ordered, metadata);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.length), true);
  writeAll(fd, prefix);
  writeAll(fd, header);
  for (const p of ordered) writeTensor(fd, p);
}

function writeTensor(fd: number, p: Planned): void {
  const data = p.tensor.data as TypedArray;
  if (p.dtype === 'BF16' && p.tensor.dtype === 'f32') {
    const chunk = new Uint16Array(Math.min(CONVERT_CHUNK, data.length));
    for (let start = 0; start < data.length; start += chunk.length) {
      const n = Math.min(chunk.length, data.length - start);
      for (let i = 0; i < n; i++) chunk[i] = f32ToBf16Bits(data[start + i]!);
      writeAll(fd, new Uint8Array(chunk.buffer, 0, 2 * n));
    }
    return;
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length !== p.byteLength) throw new Error(`tensor '${p.name}': ${bytes.length} data bytes, expected ${p.byteLength}`);
  writeAll(fd, bytes);
}

// ---- atomic files ------------------------------------------------------------------------------------------
let tmpCounter = 0;

/** Writes a complete, fsynced temp file beside `target` and returns its path; on failure removes it. */
function writeTemp(target: string, body: (fd: number) => void): string {
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}-${tmpCounter++}-${Math.random().toString(36).slice(2, 8)}.tmp`);
  const fd = openSync(tmp, 'wx');
  try {
    body(fd);
    fsyncSync(fd);
  } catch (e) {
    try { closeSync(fd); } catch { /* the write error is the one to report */ }
    rmSync(tmp, { force: true });
    throw e;
  }
  try {
    closeSync(fd);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return tmp;
}

/** Renames staged temp files onto their targets in order; if one fails, the rest are removed. */
function commit(staged: readonly (readonly [string, string])[]): void {
  for (let i = 0; i < staged.length; i++) {
    try {
      renameSync(staged[i]![0], staged[i]![1]);
    } catch (e) {
      for (const [tmp] of staged.slice(i)) rmSync(tmp, { force: true });
      throw e;
    }
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, MAX_WRITE));
}

// ---- small helpers -------------------------------------------------------------------------------------------
const pad5 = (i: number): string => String(i).padStart(5, '0');

/** Code-point order, as Rust and Python compare strings (JS's default sort compares UTF-16 units). */
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const ea = encoder.encode(a), eb = encoder.encode(b);
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) if (ea[i] !== eb[i]) return ea[i]! - eb[i]!;
  return ea.length - eb.length;
}

/** Sets an own property even for keys like "__proto__". */
function define<T>(o: Record<string, T>, k: string, v: T): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}
