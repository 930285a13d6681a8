// Real-GPU smoke test of the nccl / rccl backends (run through nccl_smoke.sh, which bundles src/nccl first).
//
// Parent: checks that NCCL (RCCL) and a GPU are present (a clear message and exit 2 otherwise), creates one
// unique id per world and starts one child process per rank, one rank per GPU (NCCL rejects two ranks of a
// communicator on one device): world size 1 always, and world size = #GPUs when there are >= 2. Children run
// every collective against a host reference and time all-reduce; the parent prints one JSON document and exits
// 1 when any check failed.
//
// Env: FARSKIP_SMOKE_FLAVOR=nccl|rccl (default nccl), FARSKIP_SMOKE_RANKS (cap on the multi-GPU world),
// FARSKIP_SMOKE_MAX_MB (largest all-reduce, default 1024), the library overrides FARSKIP_NCCL_LIB etc.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bundle = process.argv[2];
if (!bundle) { console.error('usage: node nccl_smoke.mjs <bundled nccl module>'); process.exit(2); }
const m = await import(bundle);
const flavor = process.env.FARSKIP_SMOKE_FLAVOR === 'rccl' ? 'rccl' : 'nccl';
const gpuKind = flavor === 'nccl' ? 'cuda' : 'hip';
const init = flavor === 'nccl' ? m.initNccl : m.initRccl;

function fail(message) {
  console.log(JSON.stringify({ ok: false, flavor, error: message }, null, 2));
  console.error(`nccl_smoke: ${message}`);
  process.exit(2);
}

async function parent() {
  const available = flavor === 'nccl' ? m.ncclAvailable() : m.rcclAvailable();
  if (!available) {
    // say precisely what is missing: the collective library, the driver, or a device
    let why;
    try { await init({ rank: 0, size: 1, device: 0 }); why = 'no visible GPU'; } catch (e) { why = e.message; }
    fail(`${flavor.toUpperCase()} cannot run here: ${why}`);
  }
  const devices = m.gpuDeviceCount(gpuKind);
  if (devices < 1) fail(`no ${gpuKind} device visible (check nvidia-smi / rocm-smi, CUDA_VISIBLE_DEVICES, container --gpus)`);
  const cap = Number(process.env.FARSKIP_SMOKE_RANKS) || devices;
  const worlds = [1];
  if (Math.min(devices, cap) >= 2) worlds.push(Math.min(devices, cap));
  const runs = [];
  for (const size of worlds) {
    const id = Buffer.from(m.ncclUniqueId(flavor)).toString('hex');
    const ranks = await Promise.all(Array.from({ length: size }, (_, rank) => runChild(rank, size, id)));
    runs.push({ worldSize: size, ranks });
  }
  const checks = runs.flatMap((r) => r.ranks.flatMap((k) => k.checks ?? [{ name: 'child', ok: false, error: k.error }]));
  const ok = checks.every((c) => c.ok);
  console.log(JSON.stringify({
    ok, flavor, devices, worlds,
    note: devices < 2 ? 'one GPU: only world size 1 ran (NCCL needs one GPU per rank for a multi-rank test)' : undefined,
    failed: checks.filter((c) => !c.ok), runs,
  }, null, 2));
  process.exit(ok ? 0 : 1);
}

function runChild(rank, size, id) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), bundle], {
      env: { ...process.env, SMOKE_RANK: String(rank), SMOKE_SIZE: String(size), SMOKE_ID: id },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    const killer = setTimeout(() => p.kill('SIGKILL'), 300_000);
    p.on('close', (code) => {
      clearTimeout(killer);
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
      try { resolve(JSON.parse(line)); } catch { resolve({ rank, error: `rank ${rank} exited with ${code} and no result: ${out.slice(-2000)}` }); }
    });
  });
}

// ---- one rank ------------------------------------------------------------------------------------------------
async function child() {
  const rank = Number(process.env.SMOKE_RANK), size = Number(process.env.SMOKE_SIZE);
  const uniqueId = Uint8Array.from(Buffer.from(process.env.SMOKE_ID, 'hex'));
  const result = { rank, checks: [], bandwidth: [] };
  let comm;
  try {
    comm = await init({ rank, size, device: rank, uniqueId, timeoutMs: 120_000 });
    result.library = comm.libraryPath;
    result.version = m.ncclVersionString(comm.ncclVersion);
    result.commStreamPriority = comm.commStreamPriority;
    await checks(comm, result.checks);
    await bandwidth(comm, result.bandwidth);
  } catch (e) {
    result.checks.push({ name: 'fatal', ok: false, error: String(e?.stack ?? e) });
  } finally {
    try { comm?.destroy(); } catch (e) { result.checks.push({ name: 'destroy', ok: false, error: String(e) }); }
  }
  console.log(JSON.stringify(result));
}

const HOST = { f32: Float32Array, i32: Int32Array, bf16: Uint16Array, f64: Float64Array, u8: Uint8Array };
const bf16 = (x) => { const f = new Float32Array([x]); const u = new Uint32Array(f.buffer)[0]; return ((u + 0x7fff + ((u >> 16) & 1)) >>> 16) & 0xffff; };
const unbf16 = (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0];

async function checks(comm, out) {
  const { rank, size } = comm;
  const rt = comm.runtime;
  const owned = [];
  const dev = (values, dtype = 'f32') => {
    const host = dtype === 'bf16' ? Uint16Array.from(values, bf16) : HOST[dtype].from(values);
    const ptr = rt.alloc(Math.max(4, host.byteLength));
    owned.push(ptr);
    rt.upload(ptr, host);
    return { device: comm.deviceName, ptr, length: host.length, dtype };
  };
  const read = (b) => {
    const h = new HOST[b.dtype](b.length);
    rt.download(h, b.ptr); // on the default stream, which Work.wait() ordered after the collective
    return b.dtype === 'bf16' ? [...h].map(unbf16) : [...h];
  };
  const check = async (name, fn) => {
    const t0 = performance.now();
    try {
      const { got, want } = await fn();
      let maxErr = 0;
      const ok = got.length === want.length && got.every((g, i) => { const e = Math.abs(g - want[i]); maxErr = Math.max(maxErr, e); return e <= 1e-5 * Math.max(1, Math.abs(want[i])); });
      out.push({ name, ok, maxErr, ms: +(performance.now() - t0).toFixed(3), ...(ok ? {} : { got: got.slice(0, 8), want: want.slice(0, 8) }) });
    } catch (e) {
      out.push({ name, ok: false, error: String(e?.message ?? e) });
    }
  };
  const n = 1000;
  const data = (r, len = n) => Array.from({ length: len }, (_, i) => ((r * 7 + i * 3) % 17) - 8); // small ints: exact in every dtype
  const reduce = (op, len = n) => {
    const rows = Array.from({ length: size }, (_, r) => data(r, len));
    return Array.from({ length: len }, (_, i) => {
      const v = rows.map((row) => row[i]);
      return op === 'sum' ? v.reduce((a, b) => a + b) : op === 'avg' ? v.reduce((a, b) => a + b) / size : op === 'max' ? Math.max(...v) : Math.min(...v);
    });
  };
  for (const [dtype, ops] of [['f32', ['sum', 'avg', 'max', 'min']], ['bf16', ['sum', 'max']], ['i32', ['sum', 'min']], ['f64', ['sum']]]) {
    for (const op of ops) {
      await check(`allReduce ${dtype} ${op}`, async () => {
        const b = dev(data(rank), dtype);
        await comm.allReduce(b, op).wait();
        const want = reduce(op);
        return { got: read(b), want: dtype === 'bf16' ? want.map((x) => unbf16(bf16(x))) : want };
      });
    }
  }
  await check('allGather f32', async () => {
    const i = dev(data(rank)), o = dev(new Array(n * size).fill(0));
    await comm.allGather(i, o).wait();
    return { got: read(o), want: Array.from({ length: size }, (_, r) => data(r)).flat() };
  });
  await check('reduceScatter f32 sum', async () => {
    const i = dev(data(rank, n * size)), o = dev(new Array(n).fill(0));
    await comm.reduceScatter(i, o).wait();
    return { got: read(o), want: reduce('sum', n * size).slice(rank * n, (rank + 1) * n) };
  });
  await check('broadcast f32', async () => {
    const root = size - 1;
    const b = dev(rank === root ? data(root) : new Array(n).fill(0));
    await comm.broadcast(b, root).wait();
    return { got: read(b), want: data(root) };
  });
  // uneven all-to-all: rank r sends (2r + p) % 3 + 1 elements to p, values tagged with sender and position
  const sc = (r) => Array.from({ length: size }, (_, p) => (2 * r + p) % 3 + 1);
  await check('allToAll uneven f32', async () => {
    const mine = sc(rank), rc = Array.from({ length: size }, (_, p) => sc(p)[rank]);
    const send = mine.flatMap((c, p) => Array.from({ length: c }, (_, k) => rank * 100 + p * 10 + k));
    const i = dev(send), o = dev(new Array(rc.reduce((a, b) => a + b)).fill(-1));
    await comm.allToAll(i, o, mine, rc).wait();
    return { got: read(o), want: rc.flatMap((c, p) => Array.from({ length: c }, (_, k) => p * 100 + rank * 10 + k)) };
  });
  if (size >= 2) {
    await check('send/recv ring f32', async () => {
      const s = dev(data(rank)), r = dev(new Array(n).fill(0));
      const next = (rank + 1) % size, prev = (rank + size - 1) % size;
      // even ranks send first: blocking send/recv pairs in opposite orders would deadlock
      const ws = rank % 2 === 0 ? [comm.send(s, next), comm.recv(r, prev)] : [comm.recv(r, prev), comm.send(s, next)];
      await Promise.all(ws.map((w) => w.wait()));
      return { got: read(r), want: data(prev) };
    });
  }
  await check('barrier', async () => { await comm.barrier().wait(); return { got: [], want: [] }; });
  await check('split', async () => {
    let sub;
    try { sub = comm.split(rank % 2, rank); } catch (e) { if (/not exported/.test(e.message)) return { got: [], want: [] }; throw e; }
    const b = dev([rank + 1]);
    await sub.allReduce(b).wait();
    const members = Array.from({ length: size }, (_, r) => r).filter((r) => r % 2 === rank % 2);
    const got = read(b);
    sub.destroy();
    return { got: [...got, sub.size], want: [members.reduce((a, r) => a + r + 1, 0), members.length] };
  });
  await check('host array rejected', async () => {
    try { comm.allReduce(new Float32Array(4)); return { got: [0], want: [1] }; } catch (e) { return { got: [e.kind === 'invalid-argument' ? 1 : 0], want: [1] }; }
  });
  rt.makeCurrent();
  for (const p of owned) rt.free(p);
}

// All-reduce bus bandwidth as nccl-tests reports it: busbw = algbw x 2(n-1)/n, algbw = bytes / time.
async function bandwidth(comm, out) {
  const rt = comm.runtime;
  const maxMb = Number(process.env.FARSKIP_SMOKE_MAX_MB) || 1024;
  for (let mb = 1; mb <= maxMb; mb *= 8) {
    const bytes = mb * 2 ** 20;
    const ptr = rt.alloc(bytes);
    const b = { device: comm.deviceName, ptr, length: bytes / 4, dtype: 'f32' };
    const iters = mb >= 512 ? 10 : 20;
    for (let i = 0; i < 5; i++) comm.allReduce(b);
    await comm.barrier().wait();
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) comm.allReduce(b);
    rt.syncStream(comm.commStream); // host waits for the device: time covers the collectives, not the enqueues
    const s = (performance.now() - t0) / 1000 / iters;
    await comm.barrier().wait();
    const algbw = bytes / s / 1e9;
    out.push({ bytes, iters, usPerOp: +(s * 1e6).toFixed(1), algbwGBs: +algbw.toFixed(2), busbwGBs: +(algbw * 2 * (comm.size - 1) / comm.size).toFixed(2) });
    rt.makeCurrent();
    rt.free(ptr);
  }
}

// last: the helpers above must be initialised before top-level await runs a rank
if (process.env.SMOKE_RANK !== undefined) await child();
else await parent();
