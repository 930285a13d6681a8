// buildDataset: documents -> tokenized, sharded, self-contained dataset directory (layout in format.ts).
//
// Crash safety: the previous index.json is removed first and the new one is written last, every file through a
// temporary file + rename, so a directory with an index.json always holds a complete dataset. A build that fails
// removes what it wrote. A rebuild replaces only the files a build owns (shards, offsets, tokenizer, index).
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Tokenizer } from '@farskip/models';
import type { TokenizerConfig } from '@farskip/models';
import { encodeDocument } from './encode.js';
import { INDEX_FILE, INDEX_FORMAT, INDEX_VERSION, OWNED_FILE, SPLIT_RULE, TEMP_FILE, isHeldOut, tokenDtypeFor } from './format.js';
import type { DatasetIndex } from './format.js';
import { SplitWriter, writeFileAtomic } from './shard-writer.js';
import type { Document } from './sources.js';

/** A tokenizer given as parsed files (e.g. from trainByteLevelBpe); saved into the dataset as tokenizer.json (+ config). */
export interface TokenizerFiles {
  json: object;
  config?: TokenizerConfig | null;
}

export interface BuildProgress {
  documents: number;
  tokens: number;
  elapsedMs: number;
}

export interface BuildDatasetOptions {
  /** the documents, in order (e.g. textFileDocuments, jsonlDocuments, chatJsonlDocuments, sotuDocuments) */
  documents: AsyncIterable<Document> | Iterable<Document>;
  /** a tokenizer directory (or its tokenizer.json path), copied into the dataset, or parsed tokenizer files */
  tokenizer: string | TokenizerFiles;
  outDir: string;
  /** fraction of documents (not tokens) held out, chosen by a seeded hash of the id; default 0.05 */
  heldOutFraction?: number;
  /** seed of the train/held-out split; default 0 */
  seed?: number;
  /** documents that must be held out whatever the hash says (e.g. those evaluation tasks are built from) */
  forceHeldOut?: (id: string) => boolean;
  /** tokens per shard file; default 1 << 20 */
  shardTokens?: number;
  /** append the tokenizer's EOS after every document; default true */
  appendEos?: boolean;
  /** description recorded in the index; default the source's `description` */
  source?: string;
  /** called after every document */
  onProgress?: (progress: BuildProgress) => void;
}

export interface BuildResult {
  dir: string;
  index: DatasetIndex;
  /** the tokenizer the dataset was built with (as loaded from the files saved with it) */
  tokenizer: Tokenizer;
  elapsedMs: number;
  /** tokens written per second of the whole build (reading, tokenizing, writing) */
  tokensPerSecond: number;
}

interface LoadedTokenizer {
  tokenizer: Tokenizer;
  /** files to save into the dataset: name -> contents */
  files: Map<string, Uint8Array>;
}

const TOKENIZER_SIDE_FILES = ['tokenizer_config.json', 'chat_template.jinja', 'chat_template.json'];

/** Loads the tokenizer and reads the files to copy into memory (so a rebuild may take them from its own outDir). */
async function loadTokenizer(input: string | TokenizerFiles): Promise<LoadedTokenizer> {
  const files = new Map<string, Uint8Array>();
  if (typeof input !== 'string') {
    const encode = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n');
    files.set('tokenizer.json', encode(input.json));
    if (input.config) files.set('tokenizer_config.json', encode(input.config));
    return { tokenizer: Tokenizer.fromObjects(input.json, input.config ?? null, 'tokenizer files given to buildDataset'), files };
  }
  const isFile = existsSync(input) && statSync(input).isFile();
  const dir = isFile ? dirname(input) : input;
  const tokenizer = await Tokenizer.fromDir(input);
  files.set('tokenizer.json', await readFile(isFile ? input : join(dir, 'tokenizer.json')));
  for (const name of TOKENIZER_SIDE_FILES) {
    if (existsSync(join(dir, name))) files.set(name, await readFile(join(dir, name)));
  }
  return { tokenizer, files };
}

/** Removes index.json first (the directory stops looking complete), then every other file a build owns. */
function clearOwnedFiles(dir: string): void {
  if (existsSync(join(dir, INDEX_FILE))) unlinkSync(join(dir, INDEX_FILE));
  for (const name of readdirSync(dir)) {
    const base = name.replace(TEMP_FILE, '');
    if (OWNED_FILE.test(base) && statSync(join(dir, name)).isFile()) unlinkSync(join(dir, name));
  }
}

function removeWritten(dir: string, written: Set<string>, createdDir: boolean): void {
  for (const name of written) {
    try {
      unlinkSync(join(dir, name));
    } catch {
      // already gone
    }
  }
  if (createdDir) {
    try {
      rmdirSync(dir);
    } catch {
      // not empty: someone else put files there
    }
  }
}

function checkOptions(o: BuildDatasetOptions): Required<Pick<BuildDatasetOptions, 'heldOutFraction' | 'seed' | 'shardTokens' | 'appendEos'>> {
  const heldOutFraction = o.heldOutFraction ?? 0.05;
  const seed = o.seed ?? 0;
  const shardTokens = o.shardTokens ?? 1 << 20;
  if (!(heldOutFraction >= 0 && heldOutFraction <= 1)) {
    throw new RangeError(`buildDataset: heldOutFraction is ${heldOutFraction}; expected a fraction in [0, 1] (e.g. 0.05)`);
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError(`buildDataset: seed is ${seed}; expected an integer`);
  if (!Number.isSafeInteger(shardTokens) || shardTokens < 1) {
    throw new RangeError(`buildDataset: shardTokens is ${shardTokens}; expected a positive integer (default ${1 << 20})`);
  }
  return { heldOutFraction, seed, shardTokens, appendEos: o.appendEos ?? true };
}

function checkDocument(doc: unknown, ordinal: number, source: string): asserts doc is Document {
  const d = doc as Partial<Record<'id' | 'text' | 'messages', unknown>> | null;
  const ok = d !== null && typeof d === 'object' && typeof d.id === 'string' && (typeof d.text === 'string' || Array.isArray(d.messages));
  if (!ok) {
    throw new TypeError(`buildDataset: document #${ordinal} of ${source} is ${JSON.stringify(doc)?.slice(0, 120)}; expected { id: string, text: string } or { id: string, messages: [...] }`);
  }
}

/** Tokenizes `documents` into `outDir` (train / held-out shards, offsets, tokenizer, index.json last). */
export async function buildDataset(options: BuildDatasetOptions): Promise<BuildResult> {
  const { heldOutFraction, seed, shardTokens, appendEos } = checkOptions(options);
  const started = performance.now();
  const source = options.source ?? (options.documents as { description?: unknown }).description;
  const description = typeof source === 'string' ? source : 'documents';
  const { tokenizer, files } = await loadTokenizer(options.tokenizer);
  const eosId = tokenizer.eosId;
  if (appendEos && eosId === null) {
    throw new Error('buildDataset: appendEos needs an EOS token, but the tokenizer has none (no eos_token in tokenizer_config.json); set eos_token or pass appendEos: false');
  }
  const vocabSize = tokenizer.vocabSize;
  const dtype = tokenDtypeFor(vocabSize);

  const dir = resolve(options.outDir);
  const createdDir = !existsSync(dir);
  mkdirSync(dir, { recursive: true });
  clearOwnedFiles(dir);
  const written = new Set<string>();
  try {
    const train = new SplitWriter(dir, 'train', dtype, shardTokens, vocabSize, written);
    const heldout = new SplitWriter(dir, 'heldout', dtype, shardTokens, vocabSize, written);
    let ordinal = 0;
    let skippedDocuments = 0;
    for await (const doc of options.documents) {
      checkDocument(doc, ordinal++, description);
      const { ids, mask } = encodeDocument(tokenizer, doc);
      if (ids.length === 0) {
        skippedDocuments++;
        continue;
      }
      // the EOS after a conversation counts as a target only when the conversation ends with the assistant
      const withEos = appendEos ? [...ids, eosId!] : ids;
      let maskWithEos = mask;
      if (mask !== null && appendEos) {
        maskWithEos = new Uint8Array(mask.length + 1);
        maskWithEos.set(mask);
        maskWithEos[mask.length] = mask[mask.length - 1]!;
      }
      const held = options.forceHeldOut?.(doc.id) || isHeldOut(doc.id, seed, heldOutFraction);
      (held ? heldout : train).append(doc.id, withEos, maskWithEos);
      options.onProgress?.({ documents: ordinal, tokens: train.tokens + heldout.tokens, elapsedMs: performance.now() - started });
    }
    for (const [name, data] of files) writeFileAtomic(dir, name, data, written);
    const index: DatasetIndex = {
      format: INDEX_FORMAT,
      version: INDEX_VERSION,
      vocabSize,
      dtype,
      eosId,
      appendEos,
      tokenizer: 'tokenizer.json',
      seed,
      heldOutFraction,
      splitRule: SPLIT_RULE,
      shardTokens,
      source: description,
      createdAt: new Date().toISOString(),
      skippedDocuments,
      splits: { train: train.finish(), heldout: heldout.finish() },
    };
    writeFileAtomic(dir, INDEX_FILE, new TextEncoder().encode(JSON.stringify(index, null, 2) + '\n'), written);
    const elapsedMs = performance.now() - started;
    const tokens = index.splits.train.tokens + index.splits.heldout.tokens;
    return { dir, index, tokenizer, elapsedMs, tokensPerSecond: tokens / Math.max(elapsedMs / 1000, 1e-9) };
  } catch (e) {
    removeWritten(dir, written, createdDir);
    throw e;
  }
}
