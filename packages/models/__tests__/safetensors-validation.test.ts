// Header validation: every malformed case throws an Error naming the file, the tensor and what was expected;
// then 10,000 randomly corrupted files, none of which may crash, hang or yield a tensor that disagrees with
// its shape.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { numelOf, Random } from '@farskip/tensor';
import { SAFETENSORS_DTYPE_BYTES, SafetensorsFile, parseSafetensorsHeader } from '../src/safetensors/index.js';

const FILE = 'model.safetensors';

function build(header: unknown, data: Uint8Array | number = 0, headerLength?: number | bigint): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = new TextEncoder().encode(text.padEnd(Math.ceil(text.length / 8) * 8, ' '));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}
const W = 'model.layers.0.mlp.gate.weight';
const entry = (dtype: unknown, shape: unknown, offsets: unknown): Record<string, unknown> => ({ [W]: { dtype, shape, data_offsets: offsets } });

describe('header validation', () => {
  const cases: [string, Uint8Array, string | RegExp][] = [
    ['byte count disagrees with shape', build(entry('F32', [4, 8], [0, 100]), 100),
      `${FILE}: tensor '${W}' has data_offsets [0, 100] but shape [4, 8] F32 needs 128 bytes`],
    ['file shorter than 8 bytes', new Uint8Array(5), `${FILE}: file is 5 bytes, too short for a safetensors file`],
    ['header length over the limit', build({}, 0, 100_000_001), `${FILE}: header length 100000001 exceeds the 100000000-byte limit`],
    ['header length a huge u64', build({}, 0, 2n ** 64n - 1n), /^model\.safetensors: header length ≈1\.845e\+19 exceeds/],
    ['header length past the end', build({}, 0, 9), `${FILE}: header length 9 runs past the end of the file (16 bytes, so at most 8)`],
    ['header not UTF-8', (() => { const b = build('{"a":1}'); b[10] = 0xff; return b; })(), `${FILE}: header is not valid UTF-8`],
    ['header not JSON', build('{"a":'), /^model\.safetensors: header is not valid JSON/],
    ['header a JSON array', build([1, 2]), `${FILE}: header must be a JSON object, got an array`],
    ['entry not an object', build({ [W]: [1] }), `${FILE}: tensor '${W}' must be an object { dtype, shape, data_offsets }, got [1]`],
    ['unknown dtype', build(entry('F128', [1], [0, 16]), 16), `${FILE}: tensor '${W}' has dtype "F128"; expected one of BOOL, U8`],
    ['missing dtype', build(entry(undefined, [1], [0, 4]), 4), `${FILE}: tensor '${W}' has dtype undefined; expected one of`],
    ['negative dimension', build(entry('F32', [2, -1], [0, 4]), 4), `${FILE}: tensor '${W}' has shape [2,-1]; expected an array of non-negative integers`],
    ['fractional dimension', build(entry('F32', [1.5], [0, 4]), 4), `tensor '${W}' has shape [1.5]; expected an array of non-negative integers`],
    ['shape not an array', build(entry('F32', '4', [0, 16]), 16), `tensor '${W}' has shape "4"; expected an array`],
    ['offsets of the wrong length', build(entry('F32', [1], [0]), 4), `tensor '${W}' has data_offsets [0]; expected [begin, end], two non-negative integers`],
    ['negative offset', build(entry('F32', [1], [-4, 0]), 4), `tensor '${W}' has data_offsets [-4,0]; expected [begin, end]`],
    ['begin after end', build(entry('F32', [0], [8, 4]), 8), `${FILE}: tensor '${W}' has data_offsets [8, 4]; expected begin <= end`],
    ['end past the data', build(entry('F32', [4], [0, 16]), 12),
      `${FILE}: tensor '${W}' has data_offsets [0, 16] but the data region is only 12 bytes (file truncated?)`],
    ['shape product overflowing', build(entry('F32', [2 ** 40, 2 ** 40], [0, 4]), 4),
      `tensor '${W}' has data_offsets [0, 4] but shape [1099511627776, 1099511627776] F32 needs 4.836e+24 bytes`],
    ['overlapping tensors', build({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, [W]: { dtype: 'I32', shape: [2], data_offsets: [4, 12] } }, 12),
      `${FILE}: tensor '${W}' has data_offsets [4, 12] overlapping tensor 'a' [0, 8]; expected disjoint ranges`],
    ['metadata not an object', build({ __metadata__: 'pt' }), `${FILE}: __metadata__ must be an object of strings, got "pt"`],
    ['metadata value not a string', build({ __metadata__: { step: 3 } }), `${FILE}: __metadata__ entry 'step' must be a string, got 3`],
  ];
  for (const [what, bytes, message] of cases) {
    it(what, () => {
      expect(() => parseSafetensorsHeader(bytes, FILE)).toThrow(message);
      expect(() => SafetensorsFile.fromBuffer(bytes, FILE)).toThrow(message);
    });
  }

  it('accepts gaps in the data, empty tensors anywhere, null metadata, unaligned offsets and extra fields', () => {
    const h = parseSafetensorsHeader(build({
      __metadata__: null,
      a: { dtype: 'F32', shape: [1], data_offsets: [3, 7], extra: true },
      e: { dtype: 'F64', shape: [0, 5], data_offsets: [4, 4] },
      b: { dtype: 'U8', shape: [2], data_offsets: [9, 11] },
    }, 16), FILE);
    expect([...h.tensors.keys()]).toEqual(['a', 'e', 'b']);
    expect(h.metadata).toEqual({});
    expect(h.dataSize).toBe(16);
  });

  it('errors from a real file name its path; unknown names list some of the tensors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'safetensors-val-'));
    try {
      const path = join(dir, 'bad.safetensors');
      writeFileSync(path, build(entry('F32', [4, 8], [0, 100]), 100));
      expect(() => SafetensorsFile.open(path)).toThrow(`${path}: tensor '${W}' has data_offsets [0, 100] but shape [4, 8] F32 needs 128 bytes`);
      writeFileSync(path, new Uint8Array(3));
      expect(() => SafetensorsFile.open(path)).toThrow(`${path}: file is 3 bytes, too short`);
      expect(() => SafetensorsFile.open(dir)).toThrow(`${dir}: not a regular file`);
      const f = SafetensorsFile.fromBuffer(build({ a: { dtype: 'F32', shape: [], data_offsets: [0, 4] } }, 4), FILE);
      expect(() => f.read('b')).toThrow(`${FILE}: no tensor 'b' (the file has 1 tensors: 'a')`);
      expect(() => f.info('b')).toThrow(`${FILE}: no tensor 'b'`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- fuzzing ---------------------------------------------------------------------------------------------------
function mulberry32(seed: number): () => number {
  // @farskip/tensor's Random is mulberry32 with its seed xor-ed by 0x9e3779b9: undo that to keep these streams
  const r = new Random(((seed >>> 0) ^ 0x9e3779b9) >>> 0);
  return () => r.uniform();
}

/** A valid file with one tensor of most dtypes, small integer values so that 64-bit ones narrow. */
function baseFile(): { header: Record<string, unknown>; data: Uint8Array } {
  const specs: [string, string, number[]][] = [
    ['w.f32', 'F32', [3, 4]], ['w.bf16', 'BF16', [5]], ['w.f16', 'F16', [2, 2]], ['ids.i64', 'I64', [3]], ['ids.i32', 'I32', []],
    ['mask', 'BOOL', [7]], ['fp8', 'F8_E4M3', [4]], ['empty', 'F64', [0, 3]], ['u64', 'U64', [2]], ['f64', 'F64', [2]],
  ];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let at = 0;
  for (const [name, dtype, shape] of specs) {
    const n = numelOf(shape) * SAFETENSORS_DTYPE_BYTES[dtype as keyof typeof SAFETENSORS_DTYPE_BYTES];
    header[name] = { dtype, shape, data_offsets: [at, at + n] };
    at += n;
  }
  const data = new Uint8Array(at);
  for (let i = 0; i < at; i++) data[i] = (i * 7) % 3; // 64-bit words stay below 2^31
  return { header, data };
}

const WEIRD: unknown[] = [-1, 0, 1, 2, 3, 7, 1.5, 2 ** 31, 2 ** 53, 2 ** 64, 1e308, -0, '4', null, true, [], {}, [1, 2], 'F32', 'BF16', 'I64', 'X'];

function mutateJson(rng: () => number, header: Record<string, unknown>): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
  const h = structuredClone(header) as Record<string, Record<string, unknown>>;
  const names = Object.keys(h).filter((k) => k !== '__metadata__');
  const e = h[pick(names)]!;
  switch (Math.floor(rng() * 10)) {
    case 0: e.dtype = pick([...Object.keys(SAFETENSORS_DTYPE_BYTES), ...WEIRD]); break;
    case 1: { const s = [...(e.shape as unknown[])]; s[Math.floor(rng() * (s.length + 1))] = pick(WEIRD); e.shape = s; break; }
    case 2: e.shape = rng() < 0.5 ? (e.shape as unknown[]).slice(1) : [...(e.shape as unknown[]), pick([0, 1, 2, 1000])]; break;
    case 3: { const o = [...(e.data_offsets as unknown[])]; o[Math.floor(rng() * 3)] = rng() < 0.5 ? pick(WEIRD) : Math.floor(rng() * 200); e.data_offsets = o; break; }
    case 4: e.data_offsets = (h[pick(names)]!.data_offsets as unknown[]).slice(); break; // likely overlap
    case 5: delete e[pick(['dtype', 'shape', 'data_offsets'])]; break;
    case 6: h[pick(names)] = pick(WEIRD) as never; break;
    case 7: h.__metadata__ = pick([null, 'pt', [], { a: 1 }, { a: 'b' }, { __proto__: 'x' }]) as never; break;
    case 8: { const k = pick(names); h[pick(['__proto__', '__metadata__', '', 'constructor', `${k}.copy`])] = h[k]!; break; }
    default: return pick([[], null, 42, 'str', [h]]);
  }
  return h;
}

function corrupt(rng: () => number, base: Uint8Array, header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  const n = base.length, headerEnd = 8 + Number(new DataView(base.buffer).getBigUint64(0, true));
  const flip = (b: Uint8Array, lo: number, hi: number, k: number): Uint8Array => {
    for (let i = 0; i < k; i++) b[lo + Math.floor(rng() * (hi - lo))] = Math.floor(rng() * 256);
    return b;
  };
  switch (Math.floor(rng() * 7)) {
    case 0: return flip(base.slice(), 0, n, 1 + Math.floor(rng() * 4));
    case 1: return flip(base.slice(), 8, headerEnd, 1 + Math.floor(rng() * 3));
    case 2: return base.slice(0, Math.floor(rng() * n));
    case 3: {
      const b = base.slice();
      const dv = new DataView(b.buffer);
      const r = rng();
      if (r < 0.4) dv.setUint32(0, headerEnd - 8 + Math.floor(rng() * 33) - 16, true);
      else if (r < 0.7) dv.setUint32(rng() < 0.5 ? 0 : 4, Math.floor(rng() * 2 ** 32), true);
      else dv.setBigUint64(0, BigInt(Math.floor(rng() * 2 ** 53)) * BigInt(1 + Math.floor(rng() * 2048)), true);
      return b;
    }
    case 4: case 5: {
      const d = rng() < 0.8 ? data : data.slice(0, Math.floor(rng() * (data.length + 40)));
      return build(mutateJson(rng, header), d);
    }
    default: {
      const junk = new Uint8Array(Math.floor(rng() * 64));
      return rng() < 0.5 ? flip(junk, 0, junk.length, junk.length) : new Uint8Array([...base, ...flip(junk, 0, junk.length, junk.length)]);
    }
  }
}

type Outcome = 'rejected' | 'loaded';

/** Opens and reads every tensor; returns what happened or a description of a broken invariant. */
function check(open: () => SafetensorsFile, name: string, problems: string[]): Outcome {
  let f: SafetensorsFile;
  try {
    f = open();
  } catch (e) {
    if (!(e instanceof Error) || !e.message.startsWith(name)) problems.push(`open threw ${String(e)}`);
    return 'rejected';
  }
  try {
    for (const k of f.keys()) {
      const info = f.info(k);
      const need = numelOf(info.shape) * SAFETENSORS_DTYPE_BYTES[info.dtype];
      if (info.byteLength !== need) problems.push(`${k}: info byteLength ${info.byteLength}, shape needs ${need}`);
      try {
        const t = f.read(k);
        if (t.data.length !== numelOf(t.shape) || t.shape.join() !== info.shape.join()) problems.push(`${k}: tensor ${t.data.length} elements, shape [${t.shape}]`);
        const same = { F32: 'f32', BF16: 'bf16', F64: 'f64', I32: 'i32' }[info.dtype as string];
        if (same && (t.dtype !== same || t.data.byteLength !== info.byteLength)) problems.push(`${k}: ${t.data.byteLength} bytes of ${t.dtype}, header says ${info.byteLength}`);
      } catch (e) {
        if (!(e instanceof Error) || !e.message.startsWith(`${name}: tensor '${k}'`)) problems.push(`read('${k}') threw ${String(e)}`);
      }
    }
  } finally {
    f.close();
  }
  return 'loaded';
}

describe('fuzzing', () => {
  const { header, data } = baseFile();
  const base = build(header, data);

  it('the base file is valid and every tensor reads', () => {
    const problems: string[] = [];
    expect(check(() => SafetensorsFile.fromBuffer(base, 'fuzz.safetensors'), 'fuzz.safetensors', problems)).toBe('loaded');
    expect(problems).toEqual([]);
  });

  it('10,000 corrupted buffers: each loads consistently or throws an Error naming the file', () => {
    const rng = mulberry32(20240601);
    const problems: string[] = [];
    const counts = { rejected: 0, loaded: 0 };
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) {
      const bytes = corrupt(rng, base, header, data);
      counts[check(() => SafetensorsFile.fromBuffer(bytes, 'fuzz.safetensors'), 'fuzz.safetensors', problems)]++;
      if (problems.length > 0) break;
    }
    expect(problems).toEqual([]);
    expect(counts.rejected).toBeGreaterThan(3000);
    expect(counts.loaded).toBeGreaterThan(1000);
    expect(performance.now() - t0).toBeLessThan(10_000);
  }, 30_000);

  it('300 corrupted files on disk behave the same through open()', () => {
    const dir = mkdtempSync(join(tmpdir(), 'safetensors-fuzz-'));
    try {
      const rng = mulberry32(7);
      const problems: string[] = [];
      const counts = { rejected: 0, loaded: 0 };
      for (let i = 0; i < 300; i++) {
        const path = join(dir, `f${i}.safetensors`);
        writeFileSync(path, corrupt(rng, base, header, data));
        counts[check(() => SafetensorsFile.open(path), path, problems)]++;
      }
      expect(problems).toEqual([]);
      expect(counts.rejected).toBeGreaterThan(50);
      expect(counts.loaded).toBeGreaterThan(20);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
