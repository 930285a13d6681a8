// The safetensors layout and its validation. A file is: u64 little-endian N, N bytes of UTF-8 JSON (padded
// with spaces), then the data region. The JSON maps each tensor name to { dtype, shape, data_offsets } with
// offsets relative to the start of the data region, plus an optional "__metadata__" map of strings. Nothing
// here reads files: callers hand over bytes and a name to put in front of every error.

/** Every element type the format defines, with its size in bytes. */
export const SAFETENSORS_DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  F64: 8, I64: 8, U64: 8, C64: 8,
} as const;

export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPE_BYTES;

/** The upstream reader's limit (100 MB); a larger length is corruption, not a real header. */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's entry, validated. `begin`/`end` are relative to the data region. */
export interface TensorEntry {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** N: the JSON length in bytes (padding included). */
  readonly headerLength: number;
  /** Absolute file offset of the data region (8 + N). */
  readonly dataStart: number;
  /** Bytes after the header. */
  readonly dataSize: number;
  /** Tensors in header order. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown): string => {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
};

export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && hasOwn(SAFETENSORS_DTYPE_BYTES, s);
}

/**
 * Reads N from the first 8 bytes and checks it against the limit and the file size. `prefix` must hold at
 * least 8 bytes unless the whole file is shorter.
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new Error(`${file}: file is ${fileSize} bytes, too short for a safetensors file (8-byte header length, then the JSON header)`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = view.getUint32(0, true), hi = view.getUint32(4, true);
  const n = hi * 2 ** 32 + lo; // exact below 2^53; anything above is rejected by the limit anyway
  if (n > MAX_HEADER_BYTES) {
    throw new Error(`${file}: header length ${hi === 0 ? n : `≈${n.toExponential(3)}`} exceeds the ${MAX_HEADER_BYTES}-byte limit ` +
      '(not a safetensors file, or a corrupted one)');
  }
  if (n < 2) throw new Error(`${file}: header length ${n} is too small for a JSON object (expected at least 2 bytes, '{}')`);
  if (8 + n > fileSize) {
    throw new Error(`${file}: header length ${n} runs past the end of the file (${fileSize} bytes, so at most ${fileSize - 8})`);
  }
  return n;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes and validates the JSON header; `dataSize` is the number of bytes after it. */
export function parseHeaderJson(json: Uint8Array, dataSize: number, file: string): Pick<SafetensorsHeader, 'tensors' | 'metadata'> {
  let text: string;
  try {
    text = utf8.decode(json);
  } catch {
    throw new Error(`${file}: header is not valid UTF-8`);
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(root)) throw new Error(`${file}: header must be a JSON object, got ${Array.isArray(root) ? 'an array' : show(root)}`);

  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorEntry>();
  for (const name of Object.keys(root)) {
    const value = root[name];
    if (name === '__metadata__') metadata = parseMetadata(value, file);
    else tensors.set(name, parseEntry(name, value, dataSize, file));
  }
  checkOverlaps(tensors, file);
  return { tensors, metadata };
}

/** Validates a whole file held in memory (the fuzz tests and `SafetensorsFile.fromBuffer` use it). */
export function parseSafetensorsHeader(buf: Uint8Array, file: string): SafetensorsHeader {
  const headerLength = readHeaderLength(buf, buf.length, file);
  const dataStart = 8 + headerLength;
  const dataSize = buf.length - dataStart;
  const { tensors, metadata } = parseHeaderJson(buf.subarray(8, dataStart), dataSize, file);
  return { headerLength, dataStart, dataSize, tensors, metadata };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (value === null) return {}; // the upstream reader treats null as absent
  if (!isPlainObject(value)) throw new Error(`${file}: __metadata__ must be an object of strings, got ${show(value)}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new Error(`${file}: __metadata__ entry '${k}' must be a string, got ${show(v)}`);
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function parseEntry(name: string, value: unknown, dataSize: number, file: string): TensorEntry {
  const where = `${file}: tensor '${name}'`;
  if (!isPlainObject(value)) throw new Error(`${where} must be an object { dtype, shape, data_offsets }, got ${show(value)}`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isSafetensorsDType(dtype)) {
    throw new Error(`${where} has dtype ${show(dtype)}; expected one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new Error(`${where} has shape ${show(shape)}; expected an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
    throw new Error(`${where} has data_offsets ${show(offsets)}; expected [begin, end], two non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new Error(`${where} has data_offsets [${begin}, ${end}]; expected begin <= end`);
  if (end > dataSize) {
    throw new Error(`${where} has data_offsets [${begin}, ${end}] but the data region is only ${dataSize} bytes (file truncated?)`);
  }
  // The product can exceed 2^53 only for shapes far larger than any file, so a lossy product still mismatches.
  let numel = 1;
  for (const d of shape as number[]) numel *= d;
  const need = numel * SAFETENSORS_DTYPE_BYTES[dtype];
  if (end - begin !== need) {
    throw new Error(`${where} has data_offsets [${begin}, ${end}] but shape [${(shape as number[]).join(', ')}] ${dtype} needs ` +
      `${Number.isSafeInteger(need) ? need : need.toExponential(3)} bytes`);
  }
  return { dtype, shape: Object.freeze([...(shape as number[])]), begin, end };
}

/** Empty ranges overlap nothing; any two non-empty ranges must be disjoint. */
function checkOverlaps(tensors: ReadonlyMap<string, TensorEntry>, file: string): void {
  const ranges = [...tensors].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < ranges.length; i++) {
    const [prevName, prev] = ranges[i - 1]!, [name, cur] = ranges[i]!;
    if (cur.begin < prev.end) {
      throw new Error(`${file}: tensor '${name}' has data_offsets [${cur.begin}, ${cur.end}] overlapping tensor '${prevName}' ` +
        `[${prev.begin}, ${prev.end}]; expected disjoint ranges`);
    }
  }
}
