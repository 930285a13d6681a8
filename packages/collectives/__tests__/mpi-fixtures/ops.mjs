// One MPI rank of the mpi backend suite (launched as `mpiexec -n k node ops.mjs SEED`): runs every operation on
// deterministic per-rank inputs (each rank can regenerate every other rank's input from the seed) and checks
// the results against a sequential reference computed here. Prints one JSON line:
// {rank, size, flavour, checks, failures: [...]}. Values are small integers so f32/f64/i32 results are exact.
const { initMpi, mpiInfo, CollectiveError } = await import(new URL('../../dist/index.js', import.meta.url).href);

const seed = Number(process.argv[2] ?? 1);
const world = initMpi({ timeoutMs: 30_000 });
const { rank, size } = world;
let checks = 0;
const failures = [];

function rng(s) {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const shared = rng(seed * 7919); // same stream on every rank: sizes, counts, roots
const randInt = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
const size0 = () => (shared() < 0.15 ? 0 : randInt(shared, 1, shared() < 0.2 ? 5000 : 40));

// f32 -> bf16 round-to-nearest-even, written independently of the backend's helper.
const f32b = new Float32Array(1);
const u32b = new Uint32Array(f32b.buffer);
function toBf16(x) {
  f32b[0] = x;
  const b = u32b[0];
  const lsb = (b >>> 16) & 1;
  return ((b + 0x7fff + lsb) >>> 16) & 0xffff;
}
function fromBf16(h) {
  u32b[0] = h << 16;
  return f32b[0];
}
const CTOR = { f32: Float32Array, f64: Float64Array, i32: Int32Array, bf16: Uint16Array, u8: Uint8Array };

/** Rank r's input #tag of n elements: small integers (u8: bytes), as the typed array of dtype. */
function input(dtype, tag, r, n) {
  const g = rng(seed * 1_000_003 + tag * 101 + r * 7);
  const a = new CTOR[dtype](n);
  for (let i = 0; i < n; i++) {
    const v = randInt(g, -50, 50);
    a[i] = dtype === 'bf16' ? toBf16(v) : dtype === 'u8' ? v & 0xff : v;
  }
  return a;
}
const val = (dtype, a, i) => (dtype === 'bf16' ? fromBf16(a[i]) : a[i]);

function reduce(dtype, op, vals) {
  let acc = vals[0];
  for (let k = 1; k < vals.length; k++) {
    acc = op === 'max' ? Math.max(acc, vals[k]) : op === 'min' ? Math.min(acc, vals[k]) : acc + vals[k];
  }
  if (op === 'avg') acc = dtype === 'i32' ? Math.trunc(acc / vals.length) : acc / vals.length;
  if (dtype === 'f32') return Math.fround(acc);
  if (dtype === 'bf16') return toBf16(acc);
  return acc;
}

function expectEq(what, got, want, tol = 0) {
  checks++;
  if (got.length !== want.length) {
    failures.push(`${what}: length ${got.length} != ${want.length}`);
    return;
  }
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    const ok = tol ? Math.abs(g - w) <= tol * Math.max(1, Math.abs(w)) : g === w || (Number.isNaN(g) && Number.isNaN(w));
    if (!ok) {
      failures.push(`${what}: [${i}] = ${g}, expected ${w}`);
      return;
    }
  }
}

async function expectError(what, work, kind) {
  checks++;
  try {
    await work.wait();
    failures.push(`${what}: resolved, expected a CollectiveError (${kind})`);
  } catch (e) {
    if (!(e instanceof CollectiveError) || e.kind !== kind) failures.push(`${what}: got ${e?.kind ?? ''} ${e?.message}`);
  }
}

/** Run every operation on communicator c; tags keep inputs distinct. Returns after everything completed. */
async function suite(c, base) {
  const pending = [];
  let tag = base;
  const n = c.size;
  for (const dtype of ['f32', 'bf16', 'i32', 'f64']) {
    for (const op of ['sum', 'avg', 'max', 'min']) {
      const len = size0();
      const t = tag++;
      const buf = input(dtype, t, c.rank, len);
      const all = Array.from({ length: n }, (_, r) => input(dtype, t, r, len));
      const want = new CTOR[dtype](len);
      for (let i = 0; i < len; i++) want[i] = reduce(dtype, op, all.map((a) => val(dtype, a, i)));
      const tol = dtype === 'bf16' && op === 'avg' ? 1e-2 : 0;
      const wantV = dtype === 'bf16' ? Array.from(want, fromBf16) : want;
      const w = c.allReduce(buf, op);
      pending.push(w.wait().then(() => expectEq(`${c.name} allReduce ${dtype} ${op} n=${len}`, dtype === 'bf16' ? Array.from(buf, fromBf16) : buf, wantV, tol)));

      const m = size0();
      const t2 = tag++;
      const rin = input(dtype, t2, c.rank, m * n);
      const rout = new CTOR[dtype](m);
      const rall = Array.from({ length: n }, (_, r) => input(dtype, t2, r, m * n));
      const rwant = new CTOR[dtype](m);
      for (let i = 0; i < m; i++) rwant[i] = reduce(dtype, op, rall.map((a) => val(dtype, a, c.rank * m + i)));
      const rw = c.reduceScatter(rin, rout, op);
      pending.push(rw.wait().then(() => expectEq(`${c.name} reduceScatter ${dtype} ${op} n=${m}`,
        dtype === 'bf16' ? Array.from(rout, fromBf16) : rout, dtype === 'bf16' ? Array.from(rwant, fromBf16) : rwant, tol)));
    }
  }
  for (const dtype of ['f32', 'bf16', 'i32', 'u8']) {
    const len = size0();
    const t = tag++;
    const out = new CTOR[dtype](len * n);
    const w = c.allGather(input(dtype, t, c.rank, len), out);
    const want = new CTOR[dtype](len * n);
    for (let r = 0; r < n; r++) want.set(input(dtype, t, r, len), r * len);
    pending.push(w.wait().then(() => expectEq(`${c.name} allGather ${dtype} n=${len}`, out, want)));

    // uneven all-to-all: counts[src][dst] from the shared stream, some zero
    const counts = Array.from({ length: n }, () => Array.from({ length: n }, () => (shared() < 0.25 ? 0 : randInt(shared, 1, 9))));
    const withRecv = shared() < 0.5;
    const t3 = tag++;
    const send = counts[c.rank];
    const recv = counts.map((row) => row[c.rank]);
    const ain = input(dtype, t3, c.rank, send.reduce((a, b) => a + b, 0));
    const aout = new CTOR[dtype](recv.reduce((a, b) => a + b, 0));
    const aw = c.allToAll(ain, aout, send, withRecv ? recv : undefined);
    const awant = [];
    for (let p = 0; p < n; p++) {
      const pin = input(dtype, t3, p, counts[p].reduce((a, b) => a + b, 0));
      const off = counts[p].slice(0, c.rank).reduce((a, b) => a + b, 0);
      awant.push(...pin.subarray(off, off + counts[p][c.rank]));
    }
    pending.push(aw.wait().then(() => expectEq(`${c.name} allToAll ${dtype} counts=${JSON.stringify(send)}`, aout, awant)));

    // even all-to-all
    const e = randInt(shared, 0, 6);
    const t4 = tag++;
    const ein = input(dtype, t4, c.rank, e * n);
    const eout = new CTOR[dtype](e * n);
    const ew = c.allToAll(ein, eout);
    const ewant = new CTOR[dtype](e * n);
    for (let p = 0; p < n; p++) ewant.set(input(dtype, t4, p, e * n).subarray(c.rank * e, c.rank * e + e), p * e);
    pending.push(ew.wait().then(() => expectEq(`${c.name} allToAll even ${dtype} e=${e}`, eout, ewant)));

    const root = randInt(shared, 0, n - 1);
    const blen = size0();
    const t5 = tag++;
    const bbuf = c.rank === root ? input(dtype, t5, root, blen) : new CTOR[dtype](blen);
    const bw = c.broadcast(bbuf, root);
    pending.push(bw.wait().then(() => expectEq(`${c.name} broadcast ${dtype} root=${root}`, bbuf, input(dtype, t5, root, blen))));
  }
  // ring send/recv (size 1: to itself)
  const slen = size0();
  const t6 = tag++;
  const to = (c.rank + 1) % n;
  const from = (c.rank + n - 1) % n;
  const rbuf = new Float32Array(slen);
  const rw = c.recv(rbuf, from);
  const sw = c.send(input('f32', t6, c.rank, slen), to);
  pending.push(Promise.all([rw.wait(), sw.wait()]).then(() => expectEq(`${c.name} send/recv`, rbuf, input('f32', t6, from, slen))));
  pending.push(c.barrier().wait().then(() => void checks++));
  await Promise.all(pending);
  return tag;
}

let tag = await suite(world, 1);

// many operations in flight on one communicator: results stay right (MPI matches them in issue order)
{
  const works = [];
  for (let k = 0; k < 48; k++) {
    const len = randInt(shared, 1, 3000);
    const buf = input('f32', 10_000 + k, rank, len);
    const want = new Float32Array(len);
    for (let r = 0; r < size; r++) input('f32', 10_000 + k, r, len).forEach((v, i) => (want[i] += v));
    const w = k % 3 === 2 ? world.barrier() : world.allReduce(buf);
    works.push({ w, k, check: k % 3 === 2 ? null : () => expectEq(`in-flight #${k}`, buf, want) });
  }
  // matching follows issue order on every rank; completion may be observed in any order
  await Promise.all(works.map(({ w, check }) => w.wait().then(() => {
    checks++;
    check?.();
  })));
}

// sub-groups: color = rank % 2, key = -rank (reverse order); rank 0 of a 3+ rank world joins none
{
  const color = size >= 3 && rank === 0 ? -1 : rank % 2;
  const sub = world.split(color, -rank);
  checks++;
  if (color < 0) {
    if (sub !== null) failures.push('split with negative color returned a communicator');
  } else {
    const members = [];
    for (let r = 0; r < size; r++) if (r % 2 === color && !(size >= 3 && r === 0)) members.push(r);
    members.sort((a, b) => b - a);
    if (sub.size !== members.length || sub.rank !== members.indexOf(rank)) {
      failures.push(`split: got rank ${sub.rank}/${sub.size}, expected ${members.indexOf(rank)}/${members.length}`);
    }
    tag = await suite(sub, 20_000 + color * 1000);
    sub.destroy();
    sub.destroy(); // idempotent
    await expectError('op after destroy', sub.allReduce(new Float32Array(4)), 'destroyed');
  }
}

// argument errors (local, every rank)
await expectError('u8 allReduce', world.allReduce(new Uint8Array(4)), 'invalid-argument');
await expectError('device buffer', world.allReduce({ device: 'cuda:0', ptr: 0n, length: 4, dtype: 'f32' }), 'invalid-argument');
await expectError('allGather size', world.allGather(new Float32Array(3), new Float32Array(3 * size + 1)), 'invalid-argument');
// mismatched all-to-all counts: rank 0 expects one extra element from the last rank; every rank errors
if (size >= 2) {
  const send = new Array(size).fill(1);
  const recv = new Array(size).fill(1);
  if (rank === 0) recv[size - 1] = 2;
  const w = world.allToAll(new Float32Array(size), new Float32Array(size + 1), send, recv);
  await expectError('allToAll count mismatch', w, 'mismatch');
}
// still usable afterwards
{
  const b = new Int32Array([rank]);
  await world.allReduce(b).wait();
  expectEq('allReduce after errors', b, [(size * (size - 1)) / 2]);
}

console.log(JSON.stringify({ rank, size, flavour: mpiInfo().flavour, checks, failures: failures.slice(0, 20) }));
// no explicit exit: the process must end by itself (MPI_Finalize runs in the exit hook)
