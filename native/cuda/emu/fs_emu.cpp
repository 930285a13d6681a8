// fs_emu.cpp: runtime of the CPU emulation (see fs_emu.h): memory, launch, barriers, shuffles, atomics.
// Blocks run one after another. The threads of a block are fibers (ucontext) on the calling OS thread, scheduled
// round-robin (in thread order in even blocks, reversed in odd blocks): a fiber runs until it reaches a barrier
// (__syncthreads, or the two barriers of a warp shuffle) or returns, then the next runnable fiber resumes. A barrier
// opens when every live thread of its scope (block or warp) has arrived; a returned thread leaves every barrier (as
// on Volta+). No runnable fiber while some have not returned = a deadlock in the kernel's control flow: reported,
// then abort(). The schedule is deterministic, so a run reproduces exactly.
// The launcher looks a kernel up by name in the table that tooling/build-cuda.mjs --emu generates from kernels.json
// and passes its arguments from 8-byte slots (int / float in the low bytes).
#include "fs_emu.h"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

fs_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

struct FsEmuEntry { const char *name; void (*call)(const uint64_t *); };
extern const FsEmuEntry fs_emu_table[];
extern const int fs_emu_table_size;

namespace {
struct Barrier { int alive = 0, arrived = 0; unsigned gen = 0; };
struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  bool done = false;
  Barrier *waitOn = nullptr;  // blocked until waitOn->gen != waitGen
  unsigned waitGen = 0;
};
const size_t kStack = 256 * 1024;
ucontext_t scheduler;
std::vector<Fiber> fibers;
int current = 0;
Barrier block;
std::vector<Barrier> warps;
std::vector<uint64_t> slots;  // one per thread
std::vector<float> dynSmem;
const FsEmuEntry *entry = nullptr;
const uint64_t *entryArgs = nullptr;

void wait(Barrier &b) {
  Fiber &f = fibers[current];
  if (++b.arrived >= b.alive) { b.arrived = 0; b.gen++; return; }  // last to arrive: open it and go on
  f.waitOn = &b;
  f.waitGen = b.gen;
  swapcontext(&f.ctx, &scheduler);
}

void leave(Barrier &b) {
  if (--b.alive > 0 && b.arrived > 0 && b.arrived >= b.alive) { b.arrived = 0; b.gen++; }
}

void fiberMain() {
  entry->call(entryArgs);
  leave(block);
  leave(warps[current / 32]);
  fibers[current].done = true;
  swapcontext(&fibers[current].ctx, &scheduler);
}

void setThreadIdx(int t) {
  threadIdx = {(unsigned)(t % blockDim.x), (unsigned)((t / blockDim.x) % blockDim.y), (unsigned)(t / (blockDim.x * blockDim.y))};
}
}  // namespace

void fs_emu_syncthreads() { wait(block); }

uint64_t fs_emu_shfl(uint64_t v, int m, bool isXor) {
  const int t = current, lane = t % 32, w = t / 32;
  slots[t] = v;
  wait(warps[w]);
  const uint64_t r = slots[w * 32 + ((isXor ? (lane ^ m) : m) & 31)];
  wait(warps[w]);
  return r;
}

float *fs_emu_dyn_smem() { return dynSmem.data(); }

void fs_emu_atomic_add(float *p, float v) { *p += v; }

extern "C" {
uint64_t fs_emu_alloc(uint64_t bytes) { return (uint64_t)(uintptr_t)calloc(1, bytes ? bytes : 1); }
void fs_emu_free(uint64_t p) { free((void *)(uintptr_t)p); }
void fs_emu_htod(uint64_t dst, const void *src, uint64_t bytes) { memcpy((void *)(uintptr_t)dst, src, bytes); }
void fs_emu_dtoh(void *dst, uint64_t src, uint64_t bytes) { memcpy(dst, (const void *)(uintptr_t)src, bytes); }

// 0 ok, -1 unknown kernel, -2 bad geometry
int fs_emu_launch(const char *name, int gx, int gy, int gz, int bx, int by, int bz, int sharedBytes,
                  const uint64_t *args) {
  entry = nullptr;
  for (int i = 0; i < fs_emu_table_size; i++) if (strcmp(fs_emu_table[i].name, name) == 0) entry = &fs_emu_table[i];
  if (!entry) return -1;
  const int nt = bx * by * bz;
  if (gx < 1 || gy < 1 || gz < 1 || nt < 1 || nt > 1024 || nt % 32 != 0 || sharedBytes < 0) return -2;
  entryArgs = args;
  gridDim = {(unsigned)gx, (unsigned)gy, (unsigned)gz};
  blockDim = {(unsigned)bx, (unsigned)by, (unsigned)bz};
  if ((int)fibers.size() < nt) fibers.resize(nt);
  for (int z = 0; z < gz; z++) for (int y = 0; y < gy; y++) for (int x = 0; x < gx; x++) {
    blockIdx = {(unsigned)x, (unsigned)y, (unsigned)z};
    block = Barrier();
    block.alive = nt;
    warps.assign(nt / 32, Barrier());
    for (auto &w : warps) w.alive = 32;
    slots.assign(nt, 0);
    dynSmem.assign(sharedBytes / 4 + 1, __uint_as_float(0x7fc00001u));  // NaN: uninitialised reads show up
    for (int t = 0; t < nt; t++) {
      Fiber &f = fibers[t];
      if (f.stack.empty()) f.stack.resize(kStack);
      f.done = false;
      f.waitOn = nullptr;
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack.data();
      f.ctx.uc_stack.ss_size = kStack;
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, fiberMain, 0);
    }
    // odd blocks run their threads in reverse order: a read of shared memory that lacks its barrier gives
    // different results under the two orders
    const bool reverse = ((x + y + z) & 1) != 0;
    int left = nt;
    while (left > 0) {
      bool progressed = false;
      for (int i = 0; i < nt; i++) {
        const int t = reverse ? nt - 1 - i : i;
        Fiber &f = fibers[t];
        if (f.done || (f.waitOn && f.waitOn->gen == f.waitGen)) continue;
        f.waitOn = nullptr;
        current = t;
        setThreadIdx(t);
        swapcontext(&scheduler, &f.ctx);
        progressed = true;
        if (f.done) left--;
      }
      if (!progressed) {
        fprintf(stderr, "fs_emu: %s deadlocked in block (%d,%d,%d): %d threads wait at barriers that cannot open\n",
                name, x, y, z, left);
        abort();
      }
    }
  }
  return 0;
}
}
