// A Hugging Face checkpoint directory: one `model.safetensors`, or shards listed by
// `model.safetensors.index.json` ({ metadata, weight_map: { tensor: shardFile } }). Opening validates the
// index against every shard's header; reads stay lazy and go to the shard that holds the tensor.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { Tensor } from '@farskip/tensor';
import { type ReadOptions, SafetensorsFile, type SafetensorsTensorInfo } from './read.js';

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export class SafetensorsCheckpoint {
  /** The checkpoint directory. */
  readonly dir: string;
  /** The index file, or null for a single-file checkpoint. */
  readonly indexPath: string | null;
  /** The index's "metadata" (e.g. total_size), or the single file's "__metadata__". */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Shard file names (relative to `dir`) in name order. */
  readonly files: readonly string[];
  private readonly shards: ReadonlyMap<string, SafetensorsFile>;
  private readonly owner: ReadonlyMap<string, string>;
  private readonly order: readonly string[];

  private constructor(dir: string, indexPath: string | null, metadata: Record<string, unknown>, shards: Map<string, SafetensorsFile>,
    owner: Map<string, string>) {
    this.dir = dir;
    this.indexPath = indexPath;
    this.metadata = metadata;
    this.files = [...shards.keys()];
    this.shards = shards;
    this.owner = owner;
    this.order = this.files.flatMap((f) => shards.get(f)!.keys());
  }

  /**
   * Opens a checkpoint directory (or a `.safetensors` file, or an index file, directly). A directory holding
   * both `model.safetensors` and an index is rejected as ambiguous rather than guessing which is current.
   */
  static open(path: string): SafetensorsCheckpoint {
    if (!existsSync(path)) throw new Error(`${path}: no such checkpoint directory or file`);
    if (!statSync(path).isDirectory()) {
      return path.endsWith('.json') ? SafetensorsCheckpoint.openIndex(path) : SafetensorsCheckpoint.openSingle(dirname(path), basename(path));
    }
    const single = existsSync(join(path, SINGLE_FILE_NAME)), index = existsSync(join(path, INDEX_FILE_NAME));
    if (single && index) {
      throw new Error(`${path}: holds both ${SINGLE_FILE_NAME} and ${INDEX_FILE_NAME}; expected one checkpoint layout (remove the stale one)`);
    }
    if (single) return SafetensorsCheckpoint.openSingle(path, SINGLE_FILE_NAME);
    if (index) return SafetensorsCheckpoint.openIndex(join(path, INDEX_FILE_NAME));
    const found = readdirSync(path).slice(0, 10);
    throw new Error(`${path}: expected ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME}; found ${found.length ? found.join(', ') : 'an empty directory'}`);
  }

  /** Tensor names, shard by shard in storage order. */
  keys(): string[] { return [...this.order]; }

  has(name: string): boolean { return this.owner.has(name); }

  /** The shard file (relative to `dir`) that holds `name`. */
  shardOf(name: string): string {
    const f = this.owner.get(name);
    if (f === undefined) {
      throw new Error(`${this.indexPath ?? join(this.dir, this.files[0] ?? SINGLE_FILE_NAME)}: no tensor '${name}' in this checkpoint ` +
        `(${this.order.length} tensors)`);
    }
    return f;
  }

  info(name: string): SafetensorsTensorInfo { return this.shards.get(this.shardOf(name))!.info(name); }

  read(name: string, options?: ReadOptions): Tensor { return this.shards.get(this.shardOf(name))!.read(name, options); }

  close(): void { for (const s of this.shards.values()) s.close(); }

  private static openSingle(dir: string, file: string): SafetensorsCheckpoint {
    const f = SafetensorsFile.open(join(dir, file));
    const owner = new Map(f.keys().map((k) => [k, file]));
    return new SafetensorsCheckpoint(dir, null, { ...f.metadata }, new Map([[file, f]]), owner);
  }

  private static openIndex(indexPath: string): SafetensorsCheckpoint {
    const dir = dirname(indexPath);
    const { metadata, weightMap } = parseIndex(indexPath);
    const byShard = new Map<string, string[]>();
    for (const [name, file] of weightMap) {
      const list = byShard.get(file);
      if (list) list.push(name);
      else byShard.set(file, [name]);
    }
    const shards = new Map<string, SafetensorsFile>();
    try {
      for (const file of [...byShard.keys()].sort()) {
        const names = byShard.get(file)!;
        const full = join(dir, file);
        if (!existsSync(full)) {
          throw new Error(`${indexPath}: shard '${file}' (mapped for tensor '${names[0]}'${names.length > 1 ? ` and ${names.length - 1} more` : ''}) ` +
            `does not exist in ${dir}`);
        }
        shards.set(file, SafetensorsFile.open(full));
      }
      for (const [file, shard] of shards) {
        for (const name of byShard.get(file)!) {
          if (!shard.has(name)) throw new Error(`${indexPath}: tensor '${name}' is mapped to shard '${file}' but that file does not contain it`);
        }
        for (const name of shard.keys()) {
          const mapped = weightMap.get(name);
          if (mapped === undefined) throw new Error(`${indexPath}: shard '${file}' holds tensor '${name}', which the index does not list`);
          if (mapped !== file) {
            throw new Error(`${indexPath}: tensor '${name}' is in both '${file}' and '${mapped}'; expected each tensor in exactly one shard ` +
              `(the index maps it to '${mapped}')`);
          }
        }
      }
    } catch (e) {
      for (const s of shards.values()) s.close();
      throw e;
    }
    return new SafetensorsCheckpoint(dir, indexPath, metadata, shards, weightMap);
  }
}

function parseIndex(indexPath: string): { metadata: Record<string, unknown>; weightMap: Map<string, string> } {
  let root: unknown;
  try {
    root = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new Error(`${indexPath}: cannot read the index as JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(root)) throw new Error(`${indexPath}: expected a JSON object { "metadata": {...}, "weight_map": {...} }`);
  const metadata = root.metadata ?? {}, wm = root.weight_map;
  if (!isPlainObject(metadata)) throw new Error(`${indexPath}: "metadata" must be an object, got ${JSON.stringify(metadata)}`);
  if (!isPlainObject(wm)) throw new Error(`${indexPath}: "weight_map" must be an object { tensor: shard file }`);
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(wm)) {
    if (typeof file !== 'string' || file === '' || isAbsolute(file) || file.split(/[\\/]/).includes('..')) {
      throw new Error(`${indexPath}: tensor '${name}' maps to ${JSON.stringify(file)}; expected a shard file name inside the checkpoint directory`);
    }
    weightMap.set(name, file);
  }
  return { metadata: { ...metadata }, weightMap };
}
