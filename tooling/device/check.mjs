// The GPU check of issue 9, run by tooling/device/check.sh on a machine with a CUDA GPU (bundled by prepare.sh into
// .device/check.mjs with esbuild, so it needs Node but no node_modules there). In one run:
//   1. the CUDA op tests (packages/kernels/__tests__/cuda-emu-*.test.ts, the same files CI runs under the CPU
//      emulation) on the GPU (FARSKIP_CUDA_RUNNER=gpu), each kernel against the plain-TS reference; then
//      cuda-ops-gpu.test.ts: cuda:0 tensors through the GPU ops (forward and backward) against the CPU ops;
//   2. GEMM TFLOP/s through our cuBLAS binding (bf16 in / f32 accumulate, and f32) beside torch.matmul on the same
//      shapes, and our grouped expert GEMM kernel beside cuBLAS's strided-batched GEMM on the same expert shapes;
//   3. bandwidth of our memory-bound kernels (axpby, RMSNorm, softmax) against the device-to-device copy bandwidth
//      measured here (the practical roofline) and PyTorch's equivalents;
// and writes summary.json + summary.md to $OUT (or tooling/device/out). Exit 0 all op tests passed, 1 a test failed,
// 2 no GPU (with the reason).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cublas, openGpu } from '@farskip/device';
// from source: the GPU module needs only @farskip/device (prepare.sh bundles both; the fatbin and manifest sit in
// .device/cuda beside the bundle, where module.ts looks for a published package's copy)
import { CudaKernelModule } from '../../packages/kernels/src/backend/cuda/module.ts';
import { runCollected } from './vitest-shim.mjs';

const outDir = process.env.OUT || join(process.cwd(), 'tooling/device/out');
mkdirSync(outDir, { recursive: true });
const summary = { date: new Date().toISOString(), gpu: null, opTests: null, gemm: [], grouped: [], bandwidth: [], torch: null, notes: [] };
const write = () => {
  writeFileSync(join(outDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  writeFileSync(join(outDir, 'summary.md'), markdown(summary));
};

let rt;
try {
  rt = openGpu('cuda', Number(process.env.FARSKIP_CUDA_DEVICE ?? '0'));
  summary.gpu = rt.properties();
} catch (e) {
  summary.notes.push(`no CUDA GPU: ${e.message}`);
  write();
  console.error(`check: no CUDA GPU: ${e.message}`);
  process.exit(2);
}
console.log(`GPU: ${summary.gpu.name}, ${summary.gpu.multiprocessors} SMs, ${(summary.gpu.totalMemory / 2 ** 30).toFixed(0)} GiB, sm_${summary.gpu.computeCapability.join('')}`);

// ---- 1. op tests on the GPU --------------------------------------------------------------------------------------
process.env.FARSKIP_CUDA_RUNNER = 'gpu';
await import('../../packages/kernels/__tests__/cuda-emu-rows.test.ts');
await import('../../packages/kernels/__tests__/cuda-emu-attention-moe.test.ts');
// cuda:0 tensors of @farskip/tensor through the GPU ops of @farskip/kernels (kernels + cuBLAS), against the CPU ops
await import('../../packages/kernels/__tests__/cuda-ops-gpu.test.ts');
const results = await runCollected();
summary.opTests = { passed: results.filter((r) => r.status === 'passed').length, failed: results.filter((r) => r.status === 'failed').length,
  skipped: results.filter((r) => r.status === 'skipped').length, failures: results.filter((r) => r.status === 'failed') };
write();

// ---- timing helpers ----------------------------------------------------------------------------------------------
const stream = rt.createStream();
const t0 = rt.createEvent({ timing: true }), t1 = rt.createEvent({ timing: true });
/** ms per call of fn (enqueued on `stream`), the median of 5 timed batches after a warm-up. */
function timeMs(fn, iters = 20) {
  for (let i = 0; i < 3; i++) fn();
  rt.syncStream(stream);
  const batches = [];
  for (let b = 0; b < 5; b++) {
    rt.record(t0, stream);
    for (let i = 0; i < iters; i++) fn();
    rt.record(t1, stream);
    rt.syncEvent(t1);
    batches.push(rt.elapsedMs(t0, t1) / iters);
  }
  return batches.sort((a, b) => a - b)[2];
}
const bytesOf = (dt) => (dt === 'bf16' ? 2 : 4);
const buffers = [];
const alloc = (bytes) => { const p = rt.alloc(bytes); buffers.push(p); rt.memsetD8Async(p, 0, bytes, stream); return p; };

// ---- 2. GEMM ----------------------------------------------------------------------------------------------------
const blas = new Cublas(rt, { stream });
const SHAPES = [[4096, 4096, 4096], [8192, 8192, 8192], [16384, 2048, 7168], [2048, 7168, 2048]];
for (const dt of ['bf16', 'f32']) {
  for (const [M, N, K] of SHAPES) {
    const A = alloc(M * K * bytesOf(dt)), B = alloc(K * N * bytesOf(dt)), C = alloc(M * N * 4);
    const ms = timeMs(() => blas.gemm('N', 'N', M, N, K, 1, A, K, B, N, 0, C, N, { a: dt, b: dt, c: 'f32' }));
    summary.gemm.push({ dtype: dt, M, N, K, ms, tflops: (2 * M * N * K) / (ms * 1e9) });
    console.log(`gemm ${dt} ${M}x${N}x${K}: ${(2 * M * N * K / (ms * 1e9)).toFixed(1)} TFLOP/s`);
  }
}
// grouped expert GEMM: E experts, `rows` tokens each, X [E·rows, K] · W[e] [K, N] (transW 0), ours vs cuBLAS batched
const kernels = new CudaKernelModule(rt);
for (const dt of ['bf16', 'f32']) {
  for (const [E, rows, N, K] of [[8, 2048, 2048, 7168], [64, 256, 2048, 7168], [16, 1024, 1408, 2048]]) {
    const X = alloc(E * rows * K * bytesOf(dt)), W = alloc(E * K * N * bytesOf(dt)), Y = alloc(E * rows * N * bytesOf(dt)), Yc = alloc(E * rows * N * 4);
    const offsets = alloc((E + 1) * 4);
    rt.upload(offsets, Int32Array.from({ length: E + 1 }, (_, e) => e * rows));
    const flops = 2 * E * rows * N * K;
    const ours = timeMs(() => kernels.launch(`fs_grouped_gemm_${dt}`, { E, offsets: { addr: offsets }, transW: 0, N, K, X: { addr: X }, W: { addr: W }, beta: 0, Y: { addr: Y } },
      { stream, extra: { totalRows: E * rows } }), 5);
    const cublas = timeMs(() => blas.gemmStridedBatched('N', 'N', rows, N, K, 1, X, K, rows * K, W, N, K * N, 0, Yc, N, rows * N, E, { a: dt, b: dt, c: 'f32' }), 5);
    summary.grouped.push({ dtype: dt, E, rows, N, K, oursMs: ours, cublasMs: cublas, oursTflops: flops / (ours * 1e9), cublasTflops: flops / (cublas * 1e9), ratio: cublas / ours });
    console.log(`grouped ${dt} E=${E} rows=${rows} ${N}x${K}: ours ${(flops / (ours * 1e9)).toFixed(1)} vs cuBLAS batched ${(flops / (cublas * 1e9)).toFixed(1)} TFLOP/s`);
  }
}

// ---- 3. memory-bound kernels against the copy bandwidth ----------------------------------------------------------
const n = 1 << 28; // 256 Mi elements: 1 GiB in f32
const src = alloc(n * 4), dst = alloc(n * 4), third = alloc(n * 4);
const copyMs = timeMs(() => rt.copyAsync(dst, src, n * 4, stream), 5);
const copyGBs = (2 * n * 4) / (copyMs * 1e6);
summary.bandwidth.push({ kernel: 'device-to-device copy (roofline)', dtype: 'f32', GBs: copyGBs, ofCopy: 1 });
const rows = 1 << 16, cols = 4096; // 256 Mi elements as [rows, cols]
const w = alloc(cols * 4), rstd = alloc(rows * 4);
for (const dt of ['f32', 'bf16']) {
  const b = bytesOf(dt);
  const cases = [
    ['axpby', 3 * n * b, () => kernels.launch(`fs_axpby_${dt}`, { n, alpha: 1, a: { addr: src }, beta: 2, b: { addr: dst }, out: { addr: third } }, { stream })],
    ['rmsnorm_fwd', 2 * n * b, () => kernels.launch(`fs_rmsnorm_fwd_${dt}`, { rows, cols, x: { addr: src }, w: { addr: w }, eps: 1e-6, y: { addr: dst }, rstd: { addr: rstd } }, { stream })],
    ['softmax_fwd', 2 * n * b, () => kernels.launch(`fs_softmax_fwd_${dt}`, { rows, cols, x: { addr: src }, y: { addr: dst } }, { stream })],
  ];
  for (const [name, bytes, fn] of cases) {
    const ms = timeMs(fn, 5);
    const GBs = bytes / (ms * 1e6);
    summary.bandwidth.push({ kernel: name, dtype: dt, ms, GBs, ofCopy: GBs / copyGBs });
    console.log(`${name} ${dt}: ${GBs.toFixed(0)} GB/s (${(100 * GBs / copyGBs).toFixed(0)} % of the copy's ${copyGBs.toFixed(0)})`);
  }
}
for (const p of buffers) rt.free(p);
write();

// ---- PyTorch on the same shapes, in the same run ------------------------------------------------------------------
const py = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import torch; assert torch.cuda.is_available()']).status === 0);
if (py) {
  const r = spawnSync(py, [join(import.meta.dirname ?? '.', 'torch_ref.py')], { encoding: 'utf8', env: { ...process.env, PYTHONUNBUFFERED: '1' } });
  try { summary.torch = JSON.parse(r.stdout.trim().split('\n').pop()); } catch { summary.notes.push(`torch_ref.py failed: ${(r.stderr || r.stdout).slice(-500)}`); }
} else summary.notes.push('PyTorch with CUDA not found: no PyTorch columns');
summary.notes.push('Not run here: a FarSkip MoE layer\'s prefill with overlap on the GPU — only the first GPU ops exist for cuda:N tensors (elementwise, silu/swiglu, rmsNorm, softmax, matmul); attention, routing and MoE ops are CPU-only.');
write();
console.log(`op tests: ${summary.opTests.passed} passed, ${summary.opTests.failed} failed, ${summary.opTests.skipped} skipped; summary in ${outDir}`);
process.exit(summary.opTests.failed ? 1 : 0);

function markdown(s) {
  const L = [`# GPU check — ${s.gpu?.name ?? 'no GPU'} (${s.date})`, ''];
  if (s.opTests) L.push(`Op tests (each CUDA kernel against the plain-TS reference): ${s.opTests.passed} passed, ${s.opTests.failed} failed, ${s.opTests.skipped} skipped.`, '');
  for (const f of s.opTests?.failures ?? []) L.push(`- FAIL ${f.suite} > ${f.test}: ${f.error.split('\n')[0]}`);
  const torchGemm = (dt, M, N, K) => s.torch?.gemm?.find((g) => g.dtype === dt && g.M === M && g.N === N && g.K === K);
  if (s.gemm.length) {
    L.push('', '| GEMM | M×N×K | ours (cuBLAS via koffi) TFLOP/s | torch.matmul TFLOP/s | ours / torch |', '| --- | --- | ---: | ---: | ---: |');
    for (const g of s.gemm) { const t = torchGemm(g.dtype, g.M, g.N, g.K); L.push(`| ${g.dtype} | ${g.M}×${g.N}×${g.K} | ${g.tflops.toFixed(1)} | ${t ? t.tflops.toFixed(1) : '—'} | ${t ? (g.tflops / t.tflops).toFixed(2) : '—'} |`); }
  }
  if (s.grouped.length) {
    L.push('', '| grouped expert GEMM | E, rows, N×K | ours TFLOP/s | cuBLAS strided-batched TFLOP/s | ours / cuBLAS |', '| --- | --- | ---: | ---: | ---: |');
    for (const g of s.grouped) L.push(`| ${g.dtype} | ${g.E}, ${g.rows}, ${g.N}×${g.K} | ${g.oursTflops.toFixed(1)} | ${g.cublasTflops.toFixed(1)} | ${(g.oursTflops / g.cublasTflops).toFixed(2)} |`);
  }
  if (s.bandwidth.length) {
    L.push('', '| memory-bound kernel | dtype | GB/s | of the D2D copy | torch GB/s |', '| --- | --- | ---: | ---: | ---: |');
    for (const b of s.bandwidth) { const t = s.torch?.bandwidth?.find((x) => x.kernel === b.kernel && x.dtype === b.dtype); L.push(`| ${b.kernel} | ${b.dtype} | ${b.GBs.toFixed(0)} | ${(100 * b.ofCopy).toFixed(0)} % | ${t ? t.GBs.toFixed(0) : '—'} |`); }
  }
  if (s.notes.length) L.push('', ...s.notes.map((x) => `- ${x}`));
  return L.join('\n') + '\n';
}
