// The on-disk layout of a tokenized dataset, shared by the builder (writes it) and the loader (reads it):
//
//   <dir>/index.json               written last: its presence means the build finished
//   <dir>/tokenizer.json (+ tokenizer_config.json, chat_template.*)  the tokenizer the ids belong to
//   <dir>/train-00000.bin ...      the train token stream, little-endian uint16 (vocab ≤ 65536) or uint32
//   <dir>/train-00000.mask ...     optional, 1 byte per token: 1 = the token counts as a target (chat: assistant)
//   <dir>/train-offsets.bin        little-endian uint64 [documents + 1]: document d is tokens [off[d], off[d+1])
//   <dir>/heldout-*                the same for the held-out split
//
// A split's stream is its documents in source order, each followed by EOS (appendEos); shards cut that stream
// every `shardTokens` tokens, regardless of document boundaries.

export const INDEX_FILE = 'index.json';
export const INDEX_FORMAT = 'farskip-token-dataset';
export const INDEX_VERSION = 1;
export const SPLIT_NAMES = ['train', 'heldout'] as const;
export type SplitName = (typeof SPLIT_NAMES)[number];
export type TokenDtype = 'uint16' | 'uint32';
/** How `isHeldOut` assigns documents, recorded in the index so other tools can reproduce the split. */
export const SPLIT_RULE = 'held out iff fmix32(fnv1a32(utf8(id), basis 0x811c9dc5 ^ fmix32(seed))) / 2^32 < heldOutFraction';

export interface ShardEntry {
  /** file name inside the dataset directory */
  file: string;
  tokens: number;
  /** per-token loss-mask file (uint8), present when the split has a loss mask */
  mask?: string;
}

export interface SplitEntry {
  shards: ShardEntry[];
  documents: number;
  tokens: number;
  /** uint64 little-endian document start offsets, documents + 1 entries */
  offsets: string;
  /** true when every shard has a `mask` file (chat documents: only assistant tokens count) */
  lossMask: boolean;
}

export interface DatasetIndex {
  format: typeof INDEX_FORMAT;
  version: typeof INDEX_VERSION;
  vocabSize: number;
  dtype: TokenDtype;
  eosId: number | null;
  appendEos: boolean;
  /** tokenizer.json, relative to the dataset directory */
  tokenizer: string;
  seed: number;
  heldOutFraction: number;
  splitRule: string;
  shardTokens: number;
  source: string;
  createdAt: string;
  /** documents that produced no tokens (empty text), not written */
  skippedDocuments: number;
  splits: Record<SplitName, SplitEntry>;
}

/** A dataset directory or file that is missing, incomplete or corrupt; `file` names the offending file. */
export class DatasetFormatError extends Error {
  constructor(
    message: string,
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DatasetFormatError';
  }
}

/** uint16 when every id fits (vocab ≤ 65536), else uint32. */
export function tokenDtypeFor(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

export function dtypeBytes(dtype: TokenDtype): number {
  return dtype === 'uint16' ? 2 : 4;
}

export function shardFileName(split: SplitName, shard: number, kind: 'bin' | 'mask' = 'bin'): string {
  return `${split}-${String(shard).padStart(5, '0')}.${kind}`;
}

export function offsetsFileName(split: SplitName): string {
  return `${split}-offsets.bin`;
}

/** Files a build owns: removed before a rebuild and after a failed build. */
export const OWNED_FILE = /^(?:index\.json|(?:train|heldout)-(?:\d{5,}\.(?:bin|mask)|offsets\.bin)|tokenizer\.json|tokenizer_config\.json|chat_template\.(?:jinja|json))$/;
/** Temporary files of an interrupted write (`<name>.tmp-<pid>-<random>`). */
export const TEMP_FILE = /\.tmp-\d+-[0-9a-z]+-[0-9a-z]+$/;

/** MurmurHash3's 32-bit finalizer: spreads every input bit over the output. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const utf8 = new TextEncoder();

/** Uniform in [0, 1) from (seed, id); the same on every machine and run. */
export function documentHash(id: string, seed: number): number {
  let h = (0x811c9dc5 ^ fmix32(seed >>> 0)) >>> 0;
  for (const byte of utf8.encode(id)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return fmix32(h) / 4294967296;
}

/** Whether document `id` belongs to the held-out split (a function of the id, so order and other documents do not matter). */
export function isHeldOut(id: string, seed: number, heldOutFraction: number): boolean {
  return documentHash(id, seed) < heldOutFraction;
}

/** A seed for epoch `epoch` of a loader seeded with `seed` (distinct streams per epoch). */
export function epochSeed(seed: number, epoch: number): number {
  return fmix32((seed >>> 0) ^ fmix32((epoch + 0x9e3779b9) >>> 0));
}

// ---- index validation ----

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/** A plain file name: the index may not point outside its directory. */
const isFileName = (v: unknown): v is string => typeof v === 'string' && /^[^/\\]+$/.test(v) && v !== '.' && v !== '..';

function checkSplit(name: SplitName, value: unknown, file: string): SplitEntry {
  const bad = (what: string): DatasetFormatError =>
    new DatasetFormatError(`${file}: splits.${name} ${what}; the index is corrupt — rebuild the dataset with buildDataset`, file);
  if (!isObject(value)) throw bad('is missing or not an object');
  const { shards, documents, tokens, offsets, lossMask } = value;
  if (!Array.isArray(shards)) throw bad('has no "shards" array');
  if (!isCount(documents)) throw bad(`has "documents" ${JSON.stringify(documents)}, expected a non-negative integer`);
  if (!isCount(tokens)) throw bad(`has "tokens" ${JSON.stringify(tokens)}, expected a non-negative integer`);
  if (!isFileName(offsets)) throw bad(`has "offsets" ${JSON.stringify(offsets)}, expected a file name`);
  if (typeof lossMask !== 'boolean') throw bad('has no boolean "lossMask"');
  let sum = 0;
  const entries = shards.map((s, i): ShardEntry => {
    if (!isObject(s) || !isFileName(s.file) || !isCount(s.tokens)) {
      throw bad(`shard ${i} is ${JSON.stringify(s)}, expected { "file": name, "tokens": count }`);
    }
    if (lossMask && !isFileName(s.mask)) throw bad(`shard ${i} (${s.file}) has no "mask" file although lossMask is true`);
    sum += s.tokens;
    return lossMask ? { file: s.file, tokens: s.tokens, mask: s.mask as string } : { file: s.file, tokens: s.tokens };
  });
  if (sum !== tokens) throw bad(`lists shards holding ${sum} tokens but "tokens" is ${tokens}`);
  return { shards: entries, documents, tokens, offsets, lossMask };
}

/** Parses and validates index.json text; every problem is a DatasetFormatError naming `file`. */
export function parseIndex(text: string, file: string): DatasetIndex {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new DatasetFormatError(
      `${file} is not valid JSON (${e instanceof Error ? e.message : String(e)}); the index is corrupt — rebuild the dataset with buildDataset`,
      file,
      { cause: e },
    );
  }
  const bad = (what: string): DatasetFormatError =>
    new DatasetFormatError(`${file}: ${what}; the index is corrupt — rebuild the dataset with buildDataset`, file);
  if (!isObject(raw)) throw bad('the index is not a JSON object');
  if (raw.format !== INDEX_FORMAT) throw bad(`"format" is ${JSON.stringify(raw.format)}, expected "${INDEX_FORMAT}"`);
  if (raw.version !== INDEX_VERSION) {
    throw new DatasetFormatError(
      `${file}: dataset version ${JSON.stringify(raw.version)} is not supported (this reader knows version ${INDEX_VERSION}); rebuild the dataset with this version's buildDataset`,
      file,
    );
  }
  if (!isCount(raw.vocabSize) || raw.vocabSize === 0) throw bad(`"vocabSize" is ${JSON.stringify(raw.vocabSize)}, expected a positive integer`);
  if (raw.dtype !== 'uint16' && raw.dtype !== 'uint32') throw bad(`"dtype" is ${JSON.stringify(raw.dtype)}, expected "uint16" or "uint32"`);
  if (raw.dtype === 'uint16' && raw.vocabSize > 65536) throw bad(`"dtype" uint16 cannot hold vocabSize ${raw.vocabSize}`);
  if (!isFileName(raw.tokenizer)) throw bad(`"tokenizer" is ${JSON.stringify(raw.tokenizer)}, expected a file name`);
  if (!isCount(raw.shardTokens) || raw.shardTokens === 0) throw bad(`"shardTokens" is ${JSON.stringify(raw.shardTokens)}`);
  if (!isObject(raw.splits)) throw bad('"splits" is missing');
  const splits = raw.splits;
  return {
    format: INDEX_FORMAT,
    version: INDEX_VERSION,
    vocabSize: raw.vocabSize,
    dtype: raw.dtype,
    eosId: isCount(raw.eosId) ? raw.eosId : null,
    appendEos: raw.appendEos === true,
    tokenizer: raw.tokenizer,
    seed: typeof raw.seed === 'number' ? raw.seed : 0,
    heldOutFraction: typeof raw.heldOutFraction === 'number' ? raw.heldOutFraction : 0,
    splitRule: typeof raw.splitRule === 'string' ? raw.splitRule : SPLIT_RULE,
    shardTokens: raw.shardTokens,
    source: typeof raw.source === 'string' ? raw.source : '',
    createdAt: typeof raw.createdAt === 'string' ? raw.createdAt : '',
    skippedDocuments: isCount(raw.skippedDocuments) ? raw.skippedDocuments : 0,
    splits: { train: checkSplit('train', splits.train, file), heldout: checkSplit('heldout', splits.heldout, file) },
  };
}
