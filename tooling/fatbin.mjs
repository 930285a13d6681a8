// fatbin.mjs: list what a CUDA fatbin holds without cuobjdump (which a toolkit without the binary utilities, as
// on the dev VM, lacks): its ELF (SASS) and PTX images, their target architectures, and the kernels in each.
// The container layout is NVIDIA's fatbin format (not a documented ABI; as written by nvcc 11-13):
//   header   u32 magic 0xBA55ED50, u16 version, u16 headerSize, u64 size of the entries that follow
//   entry    u16 kind (1 PTX, 2 ELF), u16, u32 headerSize, u64 payloadSize, ..., u32 arch at +28 (e.g. 90),
//            u64 flags at +40 (0x2000 or 0x8000: compressed payload); payload at entry + headerSize
// Kernel names: an ELF image's `.text.<kernel>` sections; a PTX image's `.entry <kernel>` lines. Compressed images
// are listed without names (build with `nvcc --no-compress` to inspect them).
// Usage: node tooling/fatbin.mjs native/cuda/build/farskip_cuda.fatbin

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MAGIC = 0xba55ed50;
const COMPRESSED = 0x2000n | 0x8000n; // LZ4 (CUDA <= 12.3 style) | zstd (CUDA 12.4+)

/** Section names of an ELF64 little-endian image that start with `.text.` (one per kernel, SASS). */
function elfKernels(b) {
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return [];
  const shoff = Number(b.readBigUInt64LE(0x28)), shentsize = b.readUInt16LE(0x3a), shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  const sec = (i) => shoff + i * shentsize;
  const strOff = Number(b.readBigUInt64LE(sec(shstrndx) + 0x18));
  const names = [];
  for (let i = 0; i < shnum; i++) {
    const nameOff = b.readUInt32LE(sec(i));
    let end = strOff + nameOff;
    while (b[end] !== 0) end++;
    const name = b.toString('latin1', strOff + nameOff, end);
    if (name.startsWith('.text.')) names.push(name.slice(6));
  }
  return names.sort();
}

function ptxKernels(text) {
  return [...text.matchAll(/\.entry\s+([A-Za-z_$][\w$]*)/g)].map((m) => m[1]).sort();
}

/** Images of a fatbin: [{ kind: 'elf' | 'ptx', arch: 'sm_90', bytes, compressed, kernels }]. */
export function listFatbin(buf) {
  const out = [];
  let off = 0;
  while (off + 16 <= buf.length) {
    if (buf.readUInt32LE(off) !== MAGIC) throw new Error(`not a fatbin (magic at byte ${off})`);
    const hsize = buf.readUInt16LE(off + 6), size = Number(buf.readBigUInt64LE(off + 8));
    let e = off + hsize;
    const end = e + size;
    while (e < end) {
      const kind = buf.readUInt16LE(e), ehsize = buf.readUInt32LE(e + 4), psize = Number(buf.readBigUInt64LE(e + 8));
      const arch = buf.readUInt32LE(e + 28), flags = buf.readBigUInt64LE(e + 40);
      const payload = buf.subarray(e + ehsize, e + ehsize + psize);
      const compressed = (flags & COMPRESSED) !== 0n;
      const k = kind === 1 ? 'ptx' : kind === 2 ? 'elf' : `kind${kind}`;
      let kernels = [];
      if (!compressed) kernels = k === 'elf' ? elfKernels(payload) : k === 'ptx' ? ptxKernels(payload.toString('latin1')) : [];
      out.push({ kind: k, arch: `sm_${arch}`, bytes: psize, compressed, kernels });
      e += ehsize + psize;
    }
    off = end;
    while (off < buf.length && buf[off] === 0) off++; // padding between concatenated fatbins
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) { console.error('usage: node tooling/fatbin.mjs <file.fatbin>'); process.exit(2); }
  for (const im of listFatbin(readFileSync(file))) {
    console.log(`${im.kind.toUpperCase()} ${im.arch}: ${im.bytes} bytes${im.compressed ? ' (compressed)' : ''}, ` +
      `${im.compressed ? '?' : im.kernels.length} kernels`);
  }
}
