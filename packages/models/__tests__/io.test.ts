// saveModel / loadModel: round trips (single file, sharded, bf16) against the fixtures themselves — the saved
// tensor names are exactly the fixture's and the values bit-identical, the reloaded model's logits bit-identical;
// bf16 against the fixture's weights rounded to bf16 independently here; FarSkip conversion recorded in
// config.json and restored on load.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { noGrad, Tensor } from '@farskip/tensor';
import { CausalLM, convertToFarSkip, loadModel, parseConfig, saveModel } from '../src/index.js';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME, SafetensorsCheckpoint } from '../src/safetensors/index.js';

const dir = (f: string): string => fileURLToPath(new URL(`./fixtures/golden/${f}`, import.meta.url));
const golden = (f: string): number[][] => (JSON.parse(readFileSync(`${dir(f)}/golden.json`, 'utf8')) as { input_ids: number[][] }).input_ids;
const tmp = mkdtempSync(join(tmpdir(), 'farskip-io-'));
let n = 0;
const fresh = (): string => join(tmp, `m${n++}`);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function logits(m: CausalLM, family: string, farskip?: null | Record<string, unknown>): Promise<Float32Array> {
  const g = golden(family);
  const ids = new Tensor(Int32Array.from(g.flat()), [g.length, g[0]!.length], { dtype: 'i32' });
  const out = await noGrad(() => m.forward(ids, farskip === undefined ? {} : { farskip }));
  return Float32Array.from(out.data as Float32Array);
}
const bitEqual = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
const maxAbs = (a: Float32Array, b: Float32Array): number => a.reduce((w, v, i) => Math.max(w, Math.abs(v - b[i]!)), 0);

/** name -> f32 values of a checkpoint directory (any layout, any float dtype). */
function tensorsOf(path: string): Map<string, { shape: number[]; data: Float32Array; dtype: string }> {
  const c = SafetensorsCheckpoint.open(path);
  try {
    return new Map(c.keys().map((k) => {
      const t = c.read(k, { as: 'f32' });
      return [k, { shape: [...t.shape], data: Float32Array.from(t.data as Float32Array), dtype: c.info(k).dtype }];
    }));
  } finally {
    c.close();
  }
}

/** Round to nearest even bf16, written here from the definition (not the library's converter). */
function toBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const bits = u[0]!;
  if ((bits & 0x7f800000) === 0x7f800000) { u[0] = bits & 0xffff0000; return f[0]!; } // inf / nan kept
  const lower = bits & 0xffff;
  let upper = bits >>> 16;
  if (lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1)) upper += 1;
  u[0] = (upper << 16) >>> 0;
  return f[0]!;
}

const ROUND_TRIP = ['mixtral', 'qwen2_moe', 'deepseek_v3', 'llama4', 'olmoe'];

describe('saveModel -> loadModel', () => {
  for (const family of ROUND_TRIP) {
    it(`${family}: the fixture's exact tensor names and values; reloaded logits identical bit for bit`, async () => {
      const m = loadModel(dir(family));
      const out = fresh();
      saveModel(m, out);
      expect(readdirSync(out).sort()).toEqual(['config.json', SINGLE_FILE_NAME]);
      const want = tensorsOf(dir(family)), got = tensorsOf(out);
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [k, w] of want) {
        const g = got.get(k)!;
        expect(g.shape, k).toEqual(w.shape);
        expect(g.dtype, k).toBe('F32');
        expect(bitEqual(g.data, w.data), `values of ${k}`).toBe(true);
      }
      // the config is the fixture's (no farskip key added for an unconverted model)
      expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(join(dir(family), 'config.json'), 'utf8')));
      const meta = SafetensorsCheckpoint.open(out);
      expect(meta.metadata).toEqual({ format: 'pt' });
      meta.close();
      const re = loadModel(out);
      expect(bitEqual(await logits(re, family), await logits(m, family))).toBe(true);
    });
  }

  it('a model changed after loading saves its current weights', async () => {
    const m = loadModel(dir('mixtral'));
    const before = await logits(m, 'mixtral');
    const w = m.stack.blocks[1]!.postAttentionNorm.data as Float32Array;
    for (let i = 0; i < w.length; i++) w[i] = w[i]! * 1.5;
    const changed = await logits(m, 'mixtral');
    expect(maxAbs(changed, before)).toBeGreaterThan(1e-3);
    const out = fresh();
    saveModel(m, out);
    expect(bitEqual(await logits(loadModel(out), 'mixtral'), changed)).toBe(true);
  });

  it('sharded save (tiny maxShardBytes): several shards + index, loads back bit-identical; re-saving unsharded removes the shards', async () => {
    const m = loadModel(dir('qwen2_moe'));
    const out = fresh();
    saveModel(m, out, { maxShardBytes: 40_000 });
    const files = readdirSync(out).sort();
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThanOrEqual(4);
    expect(files).toEqual(['config.json', INDEX_FILE_NAME, ...shards].sort());
    expect(files).not.toContain(SINGLE_FILE_NAME);
    const index = JSON.parse(readFileSync(join(out, INDEX_FILE_NAME), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    const want = tensorsOf(dir('qwen2_moe'));
    expect(Object.keys(index.weight_map).sort()).toEqual([...want.keys()].sort());
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
    expect(index.metadata.total_size).toBe([...want.values()].reduce((s, t) => s + 4 * t.data.length, 0));
    const c = SafetensorsCheckpoint.open(out);
    expect(c.indexPath).not.toBeNull();
    expect(c.files.length).toBe(shards.length);
    c.close();
    const got = tensorsOf(out);
    for (const [k, w] of want) expect(bitEqual(got.get(k)!.data, w.data), k).toBe(true);
    expect(bitEqual(await logits(loadModel(out), 'qwen2_moe'), await logits(m, 'qwen2_moe'))).toBe(true);
    // the same directory saved again in one file: one checkpoint layout remains
    saveModel(m, out);
    expect(readdirSync(out).sort()).toEqual(['config.json', SINGLE_FILE_NAME]);
    expect(bitEqual(await logits(loadModel(out), 'qwen2_moe'), await logits(m, 'qwen2_moe'))).toBe(true);
  });

  for (const family of ['deepseek_v2_lite', 'llama4']) {
    it(`${family}: bf16 save stores BF16, loads to the fixture's weights rounded to bf16; logits within bf16 tolerance`, async () => {
      const m = loadModel(dir(family));
      const out = fresh();
      saveModel(m, out, { bf16: true });
      const want = tensorsOf(dir(family)), got = tensorsOf(out);
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      const rounded = new Map<string, Tensor>();
      for (const [k, w] of want) {
        const g = got.get(k)!;
        expect(g.dtype, k).toBe('BF16');
        const r = w.data.map(toBf16);
        expect(bitEqual(g.data, r), `bf16 values of ${k}`).toBe(true);
        rounded.set(k, new Tensor(r, w.shape));
      }
      // the reference: the same architecture built from the independently rounded weights
      const spec = parseConfig(JSON.parse(readFileSync(join(dir(family), 'config.json'), 'utf8')) as Record<string, unknown>);
      const ref = CausalLM.fromSource(spec, { keys: () => [...rounded.keys()], get: (k) => rounded.get(k)! });
      const re = loadModel(out);
      const bf = await logits(re, family);
      expect(bitEqual(bf, await logits(ref, family))).toBe(true);
      const f32 = await logits(m, family);
      const err = maxAbs(bf, f32);
      expect(err).toBeGreaterThan(0); // really rounded
      // mean over all logits ~1e-2 (8-bit mantissas); the max is larger at one deepseek_v2_lite token (0.27), as
      // when a routing decision flips (the fixture's routing margins are only >= 5e-4)
      expect(bf.reduce((sum, v, i) => sum + Math.abs(v - f32[i]!), 0) / bf.length).toBeLessThan(0.04);
      expect(err).toBeLessThan(0.5);
    });
  }
});

describe('FarSkip conversion recorded in config.json', () => {
  it("convertToFarSkip(model, { mode: 'full' }) -> save -> load runs the converted model by default", async () => {
    const family = 'deepseek_v3';
    const m = loadModel(dir(family));
    const original = await logits(m, family);
    expect(m.farskip).toBeNull();
    expect(convertToFarSkip(m, { mode: 'full' })).toBe(m);
    expect(m.farskip).toEqual({ mode: 'full' });
    const converted = await logits(m, family);
    expect(maxAbs(converted, original)).toBeGreaterThan(1e-3);
    expect(bitEqual(converted, await logits(m, family, { mode: 'full' }))).toBe(true);
    const out = fresh();
    saveModel(m, out);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.farskip).toEqual({ mode: 'full' });
    const { farskip: _f, ...rest } = cfg;
    expect(rest).toEqual(JSON.parse(readFileSync(join(dir(family), 'config.json'), 'utf8')));
    // weights unchanged by the conversion
    const want = tensorsOf(dir(family)), got = tensorsOf(out);
    for (const [k, w] of want) expect(bitEqual(got.get(k)!.data, w.data), k).toBe(true);
    const re = loadModel(out);
    expect(re.farskip).toEqual({ mode: 'full' });
    const reLogits = await logits(re, family);
    expect(bitEqual(reLogits, converted)).toBe(true);
    expect(maxAbs(reLogits, original)).toBeGreaterThan(1e-3);
    // the original connectivity is still reachable per call
    expect(bitEqual(await logits(re, family, null), original)).toBe(true);

    // convertToFarSkip(model, null) restores the original and saving removes the key
    convertToFarSkip(re, null);
    expect(re.farskip).toBeNull();
    expect(bitEqual(await logits(re, family), original)).toBe(true);
    const out2 = fresh();
    saveModel(re, out2);
    expect('farskip' in (JSON.parse(readFileSync(join(out2, 'config.json'), 'utf8')) as object)).toBe(false);
    const re2 = loadModel(out2);
    expect(re2.farskip).toBeNull();
    expect(bitEqual(await logits(re2, family), original)).toBe(true);
  });

  it('partial conversions round-trip too (layers, lastFraction, attn-only)', async () => {
    const family = 'llama4';
    for (const opts of [{ layers: [1, 3] as [number, number] }, { lastFraction: 0.5 }, { mode: 'attn-only' as const }]) {
      const m = convertToFarSkip(loadModel(dir(family)), opts);
      const want = await logits(m, family);
      const out = fresh();
      saveModel(m, out);
      const re = loadModel(out);
      expect(re.farskip).toEqual({ mode: 'full', ...opts });
      expect(bitEqual(await logits(re, family), want)).toBe(true);
    }
  });

  it('invalid FarSkip options are rejected with the reason, leaving the model as it was', async () => {
    const m = loadModel(dir('mixtral'));
    const cases: [unknown, RegExp][] = [
      [{ mode: 'sideways' }, /mode 'sideways' is not one of full, attn-only, mlp-only, original/],
      [{ layers: [0, 4] }, /layers \[0, 4\) must satisfy 0 <= start <= end <= 3/],
      [{ layers: [2, 1] }, /layers \[2, 1\)/],
      [{ lastFraction: 0 }, /lastFraction 0 must be in \(0, 1\]/],
      [{ lastFraction: 1.5 }, /lastFraction 1.5/],
      [{ layers: [0, 1], lastFraction: 0.5 }, /either layers .* or lastFraction, not both/],
    ];
    for (const [opts, msg] of cases) {
      expect(() => convertToFarSkip(m, opts as never), JSON.stringify(opts)).toThrow(msg);
      expect(m.farskip).toBeNull();
    }
    convertToFarSkip(m, {});
    expect(() => convertToFarSkip(m, { mode: 'bogus' } as never)).toThrow(/bogus/);
    expect(m.farskip).toEqual({}); // the earlier valid conversion stays
  });
});
