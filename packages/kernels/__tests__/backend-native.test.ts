// The native backend (libfarskip_cpu.so via koffi) held to tsBackend on every function, on every ISA path this
// CPU supports (forced with setIsa, restored at the end). Inputs are f32; tsBackend computes them in f64 and
// rounds once, so tolerances below bound the native kernels' own f32 error.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ISA_NAMES, loadNativeBackend, nativeLibraryStatus } from '../src/backend/native/index.js';
import { findLibrary, findPrebuilt } from '../src/backend/native/load.js';
import { ISAS, native, originalIsa, skipReason, skipSuffix } from './native-setup.js';
import { tsBackend as ts } from '../src/backend/ts/index.js';
import { expectClose, mulberry32, randInt, randInts, randn, type Rng, type Tol } from './helpers.js';

if (!native) console.warn(`[backend-native.test] skipping native tests (${skipReason})`);

const f32 = (rng: Rng, n: number, scale = 1) => randn(rng, n, Float32Array, scale) as Float32Array;
const copy = (x: Float32Array) => x.slice();
const EW: Tol = { rtol: 1e-6, atol: 1e-6 };
const bigGemmRefs = new Map<string, { A: Float32Array; B: Float32Array; C: Float32Array; want: Float32Array }>();
const gemmTol = (K: number, alpha = 1): Tol => ({ rtol: 1e-5, atol: 1e-5 * Math.sqrt(Math.max(K, 1)) * Math.max(1, Math.abs(alpha)) });

describe.skipIf(!native)(`native backend plumbing${skipSuffix}`, () => {
  const nb = native!;

  it('reports itself: name, status, ISA, threads', () => {
    const st = nativeLibraryStatus();
    expect(st.loaded).toBe(true);
    expect(st.path).toMatch(/libfarskip_cpu\.so$/);
    expect(ISA_NAMES).toContain(st.isa);
    expect(nb.name).toBe('native');
    expect(nb.numThreads()).toBeGreaterThanOrEqual(1);
    expect(loadNativeBackend()).toBe(nb); // loaded once, cached
  });

  it('koffi honours a subarray byteOffset (pointers land at the view start)', () => {
    const a = Float32Array.from({ length: 16 }, (_, i) => i + 1), out = new Float32Array(16).fill(-1);
    nb.scale(4, a.subarray(5), 2, out.subarray(3));
    expect(Array.from(out)).toEqual([-1, -1, -1, 12, 14, 16, 18, -1, -1, -1, -1, -1, -1, -1, -1, -1]);
    // GEMM on views of a shared buffer
    const buf = new Float32Array(64).fill(NaN);
    const A = buf.subarray(1, 5), B = buf.subarray(7, 11), C = buf.subarray(20, 24);
    A.set([1, 2, 3, 4]); B.set([5, 6, 7, 8]);
    nb.sgemm(false, false, 2, 2, 2, 1, A, 2, B, 2, 0, C, 2);
    expect(Array.from(C)).toEqual([19, 22, 43, 50]);
    expect(Number.isNaN(buf[19]!) && Number.isNaN(buf[24]!)).toBe(true);
    // int32 and uint16 views too
    const ids = new Int32Array([9, 9, 2, 0]).subarray(2), table = Float32Array.from({ length: 6 }, (_, i) => i);
    const emb = new Float32Array(4);
    nb.embeddingFwd(2, 2, ids, table, emb);
    expect(Array.from(emb)).toEqual([4, 5, 0, 1]);
    const bits = new Uint16Array([0, 0x3f80, 0x4000]).subarray(1), f = new Float32Array(2);
    nb.bf16ToF32(2, bits, f);
    expect(Array.from(f)).toEqual([1, 2]);
  });

  it('rejects Float64Array (and wrong index types) with a clear error', () => {
    const a64 = new Float64Array(4), a32 = new Float32Array(4);
    expect(() => nb.sgemm(false, false, 2, 2, 2, 1, a32, 2, a64, 2, 0, a32, 2)).toThrow(
      'native backend: sgemm argument B must be Float32Array, got Float64Array; the plain-TS backend handles f64');
    expect(() => nb.softmaxFwd(1, 4, a64, a32)).toThrow(/softmaxFwd argument x must be Float32Array, got Float64Array/);
    expect(() => nb.topk(1, 4, 1, a32, a32, new Float32Array(1) as unknown as Int32Array))
      .toThrow(/topk argument indices must be Int32Array, got Float32Array/);
  });

  it('an explicit library path that does not load throws naming the path and the fix', () => {
    expect(() => loadNativeBackend({ libPath: '/nonexistent/libfarskip_cpu.so' }))
      .toThrow(/\/nonexistent\/libfarskip_cpu\.so.*build-native/);
    expect(nativeLibraryStatus().loaded).toBe(true); // the loaded backend stays loaded
  });

  it('loads the prebuilt package first, else the source build found walking up from src/ or dist/; FARSKIP_NO_NATIVE=1 disables it', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const sourceBuild = join(here, '..', '..', '..', 'native', 'cpu', 'build', 'libfarskip_cpu.so');
    expect(findLibrary(join(here, '..', 'src', 'backend', 'native'))).toBe(sourceBuild);
    expect(findLibrary(join(here, '..', 'dist'))).toBe(sourceBuild);
    expect(nativeLibraryStatus().path).toBe(findPrebuilt(join(here, '..', 'src', 'backend', 'native')) ?? sourceBuild);
    expect(findLibrary('/')).toBeNull();
    const prev = process.env.FARSKIP_NO_NATIVE;
    process.env.FARSKIP_NO_NATIVE = '1';
    try {
      expect(loadNativeBackend()).toBeNull();
      expect(nativeLibraryStatus()).toEqual({ loaded: false, reason: 'disabled by FARSKIP_NO_NATIVE=1' });
    } finally {
      if (prev === undefined) delete process.env.FARSKIP_NO_NATIVE; else process.env.FARSKIP_NO_NATIVE = prev;
    }
    expect(loadNativeBackend()).toBe(nb);
    expect(nativeLibraryStatus().loaded).toBe(true);
  });

  it('setIsa clamps to the supported ISA and rejects unknown names', () => {
    const before = nb.isa();
    const sup = nb.supportedIsa();
    expect(nb.setIsa('avx512-bf16')).toBe(sup);
    expect(nb.setIsa('scalar')).toBe('scalar');
    expect(() => nb.setIsa('sse' as never)).toThrow(/unknown ISA/);
    nb.setIsa(before as never);
    expect(nb.isa()).toBe(before);
  });
});

describe.skipIf(!native)(`native vs tsBackend: GEMM, elementwise${skipSuffix}`, () => {
  const nb = native!;
  afterAll(() => { if (originalIsa) nb.setIsa(originalIsa); });

  for (const isa of ISAS) {
    describe(`isa=${isa}`, () => {
      beforeEach(() => { expect(nb.setIsa(isa)).toBe(isa); });

      it('sgemm: 4 transpose combos, odd / large shapes, padded lds, beta (beta=0 ignores NaN C)', () => {
        const rng = mulberry32(500 + ISAS.indexOf(isa));
        const shapes: [number, number, number][] = [
          [1, 1, 1], [1, 17, 9], [7, 1, 13], [5, 3, 1], [16, 16, 16], [17, 33, 15], [64, 64, 64], [31, 97, 130],
          [128, 130, 257], [200, 96, 384], [3, 1000, 40], [513, 17, 65],
        ];
        for (const tA of [false, true]) for (const tB of [false, true]) for (const [M, N, K] of shapes) {
          for (const [alpha, beta] of [[1, 0], [0.5, 1.5]] as const) {
            const lda = (tA ? M : K) + randInt(rng, 0, 3), ldb = (tB ? K : N) + randInt(rng, 0, 3);
            const ldc = N + randInt(rng, 0, 3);
            const A = f32(rng, (tA ? K : M) * lda), B = f32(rng, (tB ? N : K) * ldb);
            const C = f32(rng, M * ldc);
            if (beta === 0) C.fill(NaN);
            const want = copy(C), got = copy(C);
            ts.sgemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, want, ldc);
            nb.sgemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, got, ldc);
            expectClose(got, want, gemmTol(K, alpha), `sgemm ${isa} tA=${tA} tB=${tB} ${M}x${N}x${K} a=${alpha} b=${beta} lda=${lda} ldb=${ldb} ldc=${ldc}`);
          }
        }
      });

      it('sgemm across every cache-blocking boundary (M > MC, N > NC, K > KC of every ISA)', () => {
        const [M, N, K] = [290, 2050, 400];
        for (const tA of [false, true]) for (const tB of [false, true]) {
          const key = `${tA}${tB}`;
          let ref = bigGemmRefs.get(key);
          if (!ref) {
            const rng = mulberry32(tA ? (tB ? 41 : 42) : (tB ? 43 : 44));
            const A = f32(rng, M * K), B = f32(rng, K * N), C = f32(rng, M * N), want = copy(C);
            ts.sgemm(tA, tB, M, N, K, 1, A, tA ? M : K, B, tB ? K : N, -0.5, want, N);
            ref = { A, B, C, want };
            bigGemmRefs.set(key, ref);
          }
          const got = copy(ref.C);
          nb.sgemm(tA, tB, M, N, K, 1, ref.A, tA ? M : K, ref.B, tB ? K : N, -0.5, got, N);
          expectClose(got, ref.want, gemmTol(K), `sgemm ${isa} tA=${tA} tB=${tB} ${M}x${N}x${K}`);
        }
      });

      it('sgemmBatched (strides, strideB=0 broadcast) and bgemm', () => {
        const rng = mulberry32(510 + ISAS.indexOf(isa));
        for (const tA of [false, true]) for (const tB of [false, true]) for (const bcast of [false, true]) {
          const [batch, M, N, K] = [4, 19, 37, 70];
          const sA = M * K + 3, sB = bcast ? 0 : K * N + 5, sC = M * N + 1;
          const A = f32(rng, batch * sA), B = f32(rng, batch * (K * N + 5)), C = f32(rng, batch * sC);
          const want = copy(C), got = copy(C);
          ts.sgemmBatched(batch, tA, tB, M, N, K, 0.7, A, tA ? M : K, sA, B, tB ? K : N, sB, 0.3, want, N, sC);
          nb.sgemmBatched(batch, tA, tB, M, N, K, 0.7, A, tA ? M : K, sA, B, tB ? K : N, sB, 0.3, got, N, sC);
          expectClose(got, want, gemmTol(K), `sgemmBatched ${isa} tA=${tA} tB=${tB} bcast=${bcast}`);
        }
        for (const [batch, M, N, K] of [[33, 8, 8, 8], [5, 1, 300, 64], [2, 150, 150, 150]] as const) {
          const A = f32(rng, batch * M * K), B = f32(rng, batch * K * N), C = new Float32Array(batch * M * N);
          const want = copy(C), got = copy(C);
          ts.sgemmBatched(batch, false, true, M, N, K, 1, A, K, M * K, B, K, K * N, 0, want, N, M * N);
          nb.sgemmBatched(batch, false, true, M, N, K, 1, A, K, M * K, B, K, K * N, 0, got, N, M * N);
          expectClose(got, want, gemmTol(K), `sgemmBatched ${isa} batch=${batch} ${M}x${N}x${K}`);
        }
        for (const tA of [false, true]) for (const tB of [false, true]) {
          for (const [M, N, K] of [[1, 1, 1], [5, 7, 3], [33, 65, 17], [64, 64, 64], [100, 130, 257],
            [1, 300, 1000], [1, 4200, 70], [1, 37, 2051], [700, 1, 130]] as const) { // + M / N == 1: GEMV paths
            for (const beta of [0, 0.5]) {
              const lda = (tA ? M : K) + (K % 2), ldb = (tB ? K : N) + 1;
              const A = new Uint16Array((tA ? K : M) * lda), B = new Uint16Array((tB ? N : K) * ldb);
              ts.f32ToBf16(A.length, f32(rng, A.length), A);
              ts.f32ToBf16(B.length, f32(rng, B.length), B);
              const C = f32(rng, M * N);
              if (beta === 0) C.fill(NaN);
              const want = copy(C), got = copy(C);
              ts.bgemm(tA, tB, M, N, K, 1.25, A, lda, B, ldb, beta, want, N);
              nb.bgemm(tA, tB, M, N, K, 1.25, A, lda, B, ldb, beta, got, N);
              expectClose(got, want, gemmTol(K, 1.25), `bgemm ${isa} tA=${tA} tB=${tB} ${M}x${N}x${K} beta=${beta}`);
            }
          }
        }
      });

      it('grouped expert GEMM fwd + wgrad (empty groups, both layouts, beta)', () => {
        const rng = mulberry32(520 + ISAS.indexOf(isa));
        const many = Array.from({ length: 64 }, () => randInt(rng, 0, 6));
        const cases = [[3, 0, 5, 1], [7], [0, 0, 0], [0, 40, 0, 2, 0, 129], [64, 64], many, [300, 0, 1]];
        for (const sizes of cases) for (const transW of [false, true]) for (const beta of [0, 1]) {
          for (const [N, K] of [[7, 5], [64, 48], [33, 130]] as const) {
            const E = sizes.length, offsets = new Int32Array(E + 1);
            for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + sizes[e]!;
            const rows = offsets[E]!;
            const X = f32(rng, rows * K), W = f32(rng, E * K * N), Y = f32(rng, rows * N);
            const yw = copy(Y), yg = copy(Y);
            ts.groupedSgemm(E, offsets, transW, N, K, X, W, beta, yw);
            nb.groupedSgemm(E, offsets, transW, N, K, X, W, beta, yg);
            const label = `${isa} sizes=${sizes} transW=${transW} beta=${beta} N=${N} K=${K}`;
            expectClose(yg, yw, gemmTol(K), `groupedSgemm ${label}`);
            const dY = f32(rng, rows * N), dW = f32(rng, E * K * N);
            const dww = copy(dW), dwg = copy(dW);
            ts.groupedSgemmWgrad(E, offsets, transW, N, K, X, dY, beta, dww);
            nb.groupedSgemmWgrad(E, offsets, transW, N, K, X, dY, beta, dwg);
            expectClose(dwg, dww, gemmTol(Math.max(...sizes, 1)), `groupedSgemmWgrad ${label}`);
          }
        }
      });

      it('elementwise, row / column broadcasts, sumAxis, silu / swiglu, embedding', () => {
        const rng = mulberry32(530 + ISAS.indexOf(isa));
        for (const n of [1, 7, 16, 33, 1000, 40_001]) {
          const a = f32(rng, n, 3), b = f32(rng, n, 3), d = f32(rng, n);
          const pairs: [string, (be: typeof ts, o: Float32Array, o2: Float32Array) => void][] = [
            ['axpby', (be, o) => be.axpby(n, 0.3, a, -1.7, b, o)],
            ['mul', (be, o) => be.mul(n, a, b, o)],
            ['scale', (be, o) => be.scale(n, a, -2.5, o)],
            ['siluFwd', (be, o) => be.siluFwd(n, a, o)],
            ['siluBwd', (be, o) => be.siluBwd(n, a, d, o)],
            ['swigluFwd', (be, o) => be.swigluFwd(n, a, b, o)],
            ['swigluBwd', (be, o, o2) => be.swigluBwd(n, a, b, d, o, o2)],
          ];
          for (const [name, run] of pairs) {
            const w1 = new Float32Array(n), w2 = new Float32Array(n), g1 = new Float32Array(n), g2 = new Float32Array(n);
            run(ts, w1, w2); run(nb, g1, g2);
            expectClose(g1, w1, { rtol: 1e-5, atol: 1e-6 }, `${name} ${isa} n=${n}`);
            expectClose(g2, w2, { rtol: 1e-5, atol: 1e-6 }, `${name} ${isa} n=${n} (2nd output)`);
          }
        }
        for (const [rows, cols] of [[1, 1], [3, 17], [64, 64], [7, 1001]] as const) {
          const a = f32(rng, rows * cols), r = f32(rng, cols);
          for (const name of ['addRow', 'mulRow'] as const) {
            const w = new Float32Array(rows * cols), g = new Float32Array(rows * cols);
            ts[name](rows, cols, a, r, w); nb[name](rows, cols, a, r, g);
            expectClose(g, w, EW, `${name} ${isa} ${rows}x${cols}`);
          }
        }
        for (const [rows, cols] of [[1, 1], [17, 3], [64, 64], [1001, 7], [300, 700]] as const) {
          const a = f32(rng, rows * cols), v = f32(rng, rows);
          for (const name of ['addCol', 'mulCol'] as const) {
            const w = new Float32Array(rows * cols), g = new Float32Array(rows * cols);
            ts[name](rows, cols, a, v, w); nb[name](rows, cols, a, v, g);
            expectClose(g, w, EW, `${name} ${isa} ${rows}x${cols}`);
          }
        }
        for (const [outer, dim, inner] of [[1, 1, 1], [3, 5, 7], [2, 1000, 1], [1, 4097, 3], [4, 33, 129], [1, 100000, 1]] as const) {
          const x = f32(rng, outer * dim * inner), w = new Float32Array(outer * inner), g = new Float32Array(outer * inner);
          ts.sumAxis(outer, dim, inner, x, w); nb.sumAxis(outer, dim, inner, x, g);
          expectClose(g, w, { rtol: 1e-5, atol: 1e-6 * Math.sqrt(dim) * Math.log2(dim + 1) }, `sumAxis ${isa} ${outer},${dim},${inner}`);
        }
        const [vocab, dim, n] = [50, 24, 77];
        const ids = randInts(rng, n, 0, vocab), table = f32(rng, vocab * dim);
        const w = new Float32Array(n * dim), g = new Float32Array(n * dim);
        ts.embeddingFwd(n, dim, ids, table, w); nb.embeddingFwd(n, dim, ids, table, g);
        expectClose(g, w, { rtol: 0, atol: 0 }, `embeddingFwd ${isa}`);
        const dout = f32(rng, n * dim), dt = f32(rng, vocab * dim), dtw = copy(dt), dtg = copy(dt);
        ts.embeddingBwd(n, dim, ids, dout, dtw); nb.embeddingBwd(n, dim, ids, dout, dtg);
        expectClose(dtg, dtw, EW, `embeddingBwd ${isa}`);
      });
    });
  }
});
