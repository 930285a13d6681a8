// Checkpoint directories: sharded write + read back, index validation, and atomic writes that fail midway.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor } from '@farskip/tensor';
import { SafetensorsCheckpoint, SafetensorsFile, writeSafetensors, writeShardedCheckpoint } from '../src/safetensors/index.js';

const root = mkdtempSync(join(tmpdir(), 'safetensors-ckpt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (): string => { const d = join(root, `c${dirCount++}`); mkdirSync(d); return d; };

// 40 + 40 + 24 + 400 + 8 + 16 bytes; with maxShardBytes 100: [a, b], [c], [big], [d, e]
const tensors = new Map<string, Tensor>([
  ['model.a', Tensor.randn([10], { seed: 1 })],
  ['model.b', Tensor.randn([2, 5], { seed: 2 })],
  ['model.c', new Tensor(new Int32Array([1, -2, 3, -4, 5, -6]), [6])],
  ['model.big', Tensor.randn([100], { seed: 3 })],
  ['model.d', new Tensor(new Float64Array([0.25]), [])],
  ['model.e', new Tensor(new Uint16Array(8).fill(0x3f80), [2, 4], { dtype: 'bf16' })],
]);
const shardNames = [1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`);

function expectSameTensors(ck: SafetensorsCheckpoint): void {
  expect(new Set(ck.keys())).toEqual(new Set(tensors.keys()));
  for (const [name, t] of tensors) {
    const back = ck.read(name);
    expect(back.dtype, name).toBe(t.dtype);
    expect(back.shape, name).toEqual(t.shape);
    expect(back.data, name).toEqual(t.data);
  }
}

describe('writeShardedCheckpoint', () => {
  it('splits into shards in the given order, writes the index, and reads back across shards', () => {
    const dir = freshDir();
    const result = writeShardedCheckpoint(dir, tensors, { maxShardBytes: 100, metadata: { format: 'pt' } });
    expect(result).toEqual({ files: [...shardNames, 'model.safetensors.index.json'], totalSize: 528 });
    expect(readdirSync(dir).sort()).toEqual([...shardNames, 'model.safetensors.index.json'].sort());
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata).toEqual({ format: 'pt', total_size: 528 });
    expect(Object.keys(index.weight_map)).toEqual([...tensors.keys()].sort());
    expect(index.weight_map).toEqual({
      'model.a': shardNames[0], 'model.b': shardNames[0], 'model.c': shardNames[1],
      'model.big': shardNames[2], 'model.d': shardNames[3], 'model.e': shardNames[3],
    });
    const shard = SafetensorsFile.open(join(dir, shardNames[3]!));
    expect(shard.metadata).toEqual({ format: 'pt' });
    expect(shard.keys()).toEqual(['model.d', 'model.e']);
    shard.close();

    const ck = SafetensorsCheckpoint.open(dir);
    expect(ck.files).toEqual(shardNames);
    expect(ck.metadata).toEqual({ format: 'pt', total_size: 528 });
    expect(ck.shardOf('model.big')).toBe(shardNames[2]);
    expect(ck.info('model.c')).toMatchObject({ dtype: 'I32', shape: [6], byteLength: 24 });
    expectSameTensors(ck);
    expect(() => ck.read('model.nope')).toThrow(/model\.safetensors\.index\.json: no tensor 'model\.nope'/);
    ck.close();
    // the index or a shard path can be opened directly too
    const viaIndex = SafetensorsCheckpoint.open(join(dir, 'model.safetensors.index.json'));
    expect(viaIndex.keys().length).toBe(6);
    viaIndex.close();
    const viaFile = SafetensorsCheckpoint.open(join(dir, shardNames[1]!));
    expect(viaFile.keys()).toEqual(['model.c']);
    viaFile.close();
  });

  it('writes a single model.safetensors when everything fits, and replaces the other layout', () => {
    const dir = freshDir();
    writeShardedCheckpoint(dir, tensors, { maxShardBytes: 100 });
    expect(writeShardedCheckpoint(dir, tensors)).toEqual({ files: ['model.safetensors'], totalSize: 528 });
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    const ck = SafetensorsCheckpoint.open(dir);
    expect(ck.indexPath).toBeNull();
    expectSameTensors(ck);
    ck.close();
    writeFileSync(join(dir, 'notes.txt'), 'kept');
    writeShardedCheckpoint(dir, tensors, { maxShardBytes: 300 }); // [a, b, c], [big], [d, e]
    expect(readdirSync(dir).sort()).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors', 'model.safetensors.index.json', 'notes.txt']);
    const again = SafetensorsCheckpoint.open(dir);
    expectSameTensors(again);
    again.close();
  });

  it('stores f32 as BF16 in every shard on request', () => {
    const dir = freshDir();
    const result = writeShardedCheckpoint(dir, tensors, { maxShardBytes: 100, f32As: 'BF16' });
    expect(result.totalSize).toBe(20 + 20 + 24 + 200 + 8 + 16);
    const ck = SafetensorsCheckpoint.open(dir);
    expect(ck.info('model.big').dtype).toBe('BF16');
    expect(ck.read('model.big', { as: 'f32' }).toArray()[0]).toBeCloseTo(tensors.get('model.big')!.toArray()[0]!, 2);
    ck.close();
  });
});

describe('checkpoint validation', () => {
  function sharded(): string {
    const dir = freshDir();
    writeShardedCheckpoint(dir, tensors, { maxShardBytes: 100 });
    return dir;
  }
  const editIndex = (dir: string, edit: (index: { weight_map: Record<string, string> }) => void): void => {
    const p = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(p, 'utf8'));
    edit(index);
    writeFileSync(p, JSON.stringify(index));
  };

  it('a missing shard names the index, the shard and a tensor mapped to it', () => {
    const dir = sharded();
    unlinkSync(join(dir, shardNames[2]!));
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(
      `${join(dir, 'model.safetensors.index.json')}: shard '${shardNames[2]}' (mapped for tensor 'model.big') does not exist in ${dir}`);
  });

  it('a tensor listed in the index but absent from its shard', () => {
    const dir = sharded();
    editIndex(dir, (ix) => { ix.weight_map['model.ghost'] = shardNames[0]!; });
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(`tensor 'model.ghost' is mapped to shard '${shardNames[0]}' but that file does not contain it`);
  });

  it('a tensor present in two shards', () => {
    const dir = sharded();
    writeSafetensors(join(dir, shardNames[3]!), { 'model.d': tensors.get('model.d')!, 'model.e': tensors.get('model.e')!, 'model.a': tensors.get('model.a')! });
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(
      `tensor 'model.a' is in both '${shardNames[3]}' and '${shardNames[0]}'; expected each tensor in exactly one shard`);
  });

  it('a shard tensor the index does not list, shard paths outside the directory, malformed JSON', () => {
    const dir = sharded();
    editIndex(dir, (ix) => { delete ix.weight_map['model.e']; });
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(`shard '${shardNames[3]}' holds tensor 'model.e', which the index does not list`);
    editIndex(dir, (ix) => { ix.weight_map['model.e'] = '../model.safetensors'; });
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(`tensor 'model.e' maps to "../model.safetensors"; expected a shard file name inside`);
    editIndex(dir, (ix) => { (ix as { weight_map: unknown }).weight_map = ['x']; });
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow('model.safetensors.index.json: "weight_map" must be an object');
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(/model\.safetensors\.index\.json: cannot read the index as JSON/);
  });

  it('a corrupt shard reports the shard file and tensor', () => {
    const dir = sharded();
    const p = join(dir, shardNames[1]!);
    const bytes = readFileSync(p);
    writeFileSync(p, bytes.subarray(0, bytes.length - 4)); // 'model.c' now ends past the data
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(`${p}: tensor 'model.c' has data_offsets [0, 24] but the data region is only 20 bytes`);
  });

  it('an ambiguous or empty directory', () => {
    const dir = sharded();
    writeSafetensors(join(dir, 'model.safetensors'), {});
    expect(() => SafetensorsCheckpoint.open(dir)).toThrow(`${dir}: holds both model.safetensors and model.safetensors.index.json`);
    const empty = freshDir();
    expect(() => SafetensorsCheckpoint.open(empty)).toThrow(`${empty}: expected model.safetensors or model.safetensors.index.json; found an empty directory`);
    expect(() => SafetensorsCheckpoint.open(join(empty, 'nope'))).toThrow(/nope: no such checkpoint directory or file/);
  });
});

describe('atomic writes', () => {
  /**
   * A tensor whose storage cannot be read once writing has started: its `data` getter throws if a temp
   * file already exists in `dir` (so the failure provably happens midway through a write).
   */
  function failsMidway(dir: string): { tensor: Tensor; sawTemp: () => boolean } {
    const real = Tensor.randn([64], { seed: 9 });
    let saw = false;
    const tensor = Object.create(real, {
      data: {
        get() {
          if (readdirSync(dir).some((f) => f.endsWith('.tmp'))) { saw = true; throw new Error('disk on fire'); }
          return real.data;
        },
      },
    }) as Tensor;
    return { tensor, sawTemp: () => saw };
  }

  it('a write that fails midway leaves neither the file nor a temp file', () => {
    const dir = freshDir();
    const { tensor, sawTemp } = failsMidway(dir);
    expect(() => writeSafetensors(join(dir, 'x.safetensors'), { a: Tensor.randn([4]), z: tensor })).toThrow('disk on fire');
    expect(sawTemp()).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a failed overwrite keeps the old file byte for byte', () => {
    const dir = freshDir();
    const path = join(dir, 'x.safetensors');
    writeSafetensors(path, { a: Tensor.randn([4]) });
    const before = readFileSync(path);
    const { tensor } = failsMidway(dir);
    expect(() => writeSafetensors(path, { a: Tensor.randn([8]), z: tensor })).toThrow('disk on fire');
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(dir)).toEqual(['x.safetensors']);
  });

  it('an unsupported dtype found late, bad metadata or a reserved name fail before anything is written', () => {
    const dir = freshDir();
    const odd = { dtype: 'f16', shape: [1], data: new Uint16Array(1) } as unknown as Tensor;
    const path = join(dir, 'x.safetensors');
    expect(() => writeSafetensors(path, new Map([['a', Tensor.randn([4])], ['zz.half', odd]])))
      .toThrow(`${path}: tensor 'zz.half' has dtype 'f16'; expected f32, bf16, i32 or f64`);
    expect(() => writeSafetensors(path, { a: Tensor.randn([1]) }, { metadata: { step: 3 as unknown as string } }))
      .toThrow(`${path}: metadata 'step' is number; safetensors metadata values must be strings`);
    expect(() => writeSafetensors(path, new Map([['__metadata__', Tensor.randn([1])]]))).toThrow(/'__metadata__' is reserved/);
    expect(() => writeShardedCheckpoint(join(dir, 'ck'), { odd })).toThrow(/tensor 'odd' has dtype 'f16'/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a sharded write failing in its last shard leaves the previous checkpoint untouched', () => {
    const dir = freshDir();
    writeShardedCheckpoint(dir, tensors, { maxShardBytes: 100 });
    const before = new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    const { tensor, sawTemp } = failsMidway(dir);
    const more = new Map([...tensors, ['model.zz', tensor]]);
    expect(() => writeShardedCheckpoint(dir, more, { maxShardBytes: 100 })).toThrow('disk on fire');
    expect(sawTemp()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual([...before.keys()].sort());
    for (const [f, bytes] of before) expect(readFileSync(join(dir, f)).equals(bytes), f).toBe(true);
    expect(existsSync(join(dir, 'model-00005-of-00005.safetensors'))).toBe(false);
  });

  it('a target that cannot be replaced (a directory in its place) leaves no temp file', () => {
    const dir = freshDir();
    mkdirSync(join(dir, 'x.safetensors'));
    expect(() => writeSafetensors(join(dir, 'x.safetensors'), { a: Tensor.randn([4]) })).toThrow();
    expect(readdirSync(dir)).toEqual(['x.safetensors']);
    expect(() => writeSafetensors(join(dir, 'missing', 'y.safetensors'), { a: Tensor.randn([4]) })).toThrow(/ENOENT/);
  });
});
