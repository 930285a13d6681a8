/* threadpool.c: persistent fork/join pool (ISA independent, compiled once).
 *
 * Workers are detached pthreads, so they never keep a host process (Node) alive. A job is published by bumping
 * `gen`; workers spin on it for FS_SPIN_NS after their last job (back-to-back kernels from the JS side then
 * cost well under a microsecond to fork), then sleep on a condition variable so idle workers burn no CPU.
 * The caller always runs tid 0 itself and spins on `pending` for the join. One job runs at a time: a call made
 * while another thread's job holds the pool (several JS worker threads of one process, e.g. the ranks of the
 * threads backend, each calling kernels) runs serially on its own thread, as does a parallel call from inside a
 * job. Per-thread scratch (fs_scratch) keeps those concurrent serial calls independent. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "fs_internal.h"

#define FS_MAX_THREADS 256
#define FS_SPIN_NS 300000LL /* 0.3 ms of spinning after a job before sleeping */

#if defined(__x86_64__) || defined(__i386__)
#define FS_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define FS_PAUSE() __asm__ __volatile__("yield")
#else
#define FS_PAUSE() ((void)0)
#endif

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  _Atomic uint64_t gen;      /* job generation */
  _Atomic int pending;       /* workers still running the current job */
  _Atomic int sleepers;      /* workers blocked on cv */
  _Atomic int64_t last_job_ns;
  _Atomic int owned;         /* 1 while a caller's job (or warm-up) holds the pool */
  fs_team_fn fn;
  void *ctx;
  int job_nth;               /* threads taking part in the current job (incl. caller) */
  int nworkers;              /* spawned workers */
  int want;                  /* configured thread count (incl. caller) */
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static uint64_t start_gen[FS_MAX_THREADS + 1];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static __thread int tl_in_parallel;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *worker_main(void *arg) {
  int id = (int)(intptr_t)arg; /* 1..nworkers */
  uint64_t seen = start_gen[id]; /* gen when spawned: a job published before we ran is not missed */
  tl_in_parallel = 1;
  for (;;) {
    int64_t t0 = now_ns();
    uint64_t g;
    int spins = 0;
    while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen) {
      FS_PAUSE();
      if (++spins == 256) {
        spins = 0;
        if (now_ns() - t0 > FS_SPIN_NS) {
          pthread_mutex_lock(&P.mu);
          atomic_fetch_add(&P.sleepers, 1);
          while ((g = atomic_load(&P.gen)) == seen) pthread_cond_wait(&P.cv, &P.mu);
          atomic_fetch_sub(&P.sleepers, 1);
          pthread_mutex_unlock(&P.mu);
          break;
        }
      }
    }
    seen = g;
    if (id < P.job_nth) P.fn(P.ctx, id, P.job_nth);
    atomic_fetch_sub_explicit(&P.pending, 1, memory_order_acq_rel);
  }
  return NULL;
}

static int default_threads(void) {
  const char *e = getenv("FARSKIP_NUM_THREADS");
  if (e && *e) {
    int n = atoi(e);
    if (n > 0) return n > FS_MAX_THREADS ? FS_MAX_THREADS : n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  return n > FS_MAX_THREADS ? FS_MAX_THREADS : (int)n;
}

static void init_once(void) { P.want = default_threads(); }

/* spawn workers up to want-1 (only called between jobs) */
static void ensure_workers(void) {
  while (P.nworkers < P.want - 1) {
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 8u << 20);
    start_gen[P.nworkers + 1] = atomic_load(&P.gen);
    int ok = pthread_create(&t, &at, worker_main, (void *)(intptr_t)(P.nworkers + 1)) == 0;
    pthread_attr_destroy(&at);
    if (!ok) { P.want = P.nworkers + 1; break; }
    P.nworkers++;
  }
}

int fs_pool_size(void) {
  pthread_once(&once, init_once);
  return P.want;
}

int fs_in_parallel(void) { return tl_in_parallel; }

int fs_pool_hot(void) {
  return P.nworkers > 0 && atomic_load(&P.sleepers) == 0 && now_ns() - atomic_load(&P.last_job_ns) < FS_SPIN_NS / 2;
}

FS_API int fs_num_threads(void) { return fs_pool_size(); }
FS_API void fs_set_num_threads(int n) {
  pthread_once(&once, init_once);
  P.want = n <= 0 ? default_threads() : (n > FS_MAX_THREADS ? FS_MAX_THREADS : n);
}

void fs_parallel_team(int nth, fs_team_fn fn, void *ctx) {
  pthread_once(&once, init_once);
  if (nth > P.want) nth = P.want;
  if (nth <= 1 || tl_in_parallel) { fn(ctx, 0, 1); return; }
  int free_ = 0;
  if (!atomic_compare_exchange_strong(&P.owned, &free_, 1)) { /* another thread's job holds the pool */
    tl_in_parallel = 1;
    fn(ctx, 0, 1);
    tl_in_parallel = 0;
    return;
  }
  ensure_workers();
  if (nth > P.nworkers + 1) nth = P.nworkers + 1;
  if (nth <= 1) { atomic_store(&P.owned, 0); fn(ctx, 0, 1); return; }
  /* an fs_pool_warm() wake-up may still be in flight: its acknowledgements must land before the job is set */
  while (atomic_load_explicit(&P.pending, memory_order_acquire) != 0) FS_PAUSE();
  P.fn = fn;
  P.ctx = ctx;
  P.job_nth = nth;
  /* every spawned worker acknowledges every job (those with id >= nth do nothing), so `seen` stays in sync */
  atomic_store(&P.pending, P.nworkers);
  atomic_fetch_add(&P.gen, 1); /* seq_cst: pairs with the worker's sleepers++ then gen re-check */
  if (atomic_load(&P.sleepers) > 0) {
    pthread_mutex_lock(&P.mu);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
  }
  tl_in_parallel = 1;
  fn(ctx, 0, nth);
  tl_in_parallel = 0;
  while (atomic_load_explicit(&P.pending, memory_order_acquire) != 0) FS_PAUSE();
  atomic_store(&P.last_job_ns, now_ns());
  atomic_store(&P.owned, 0);
}

/* Publish an empty job (job_nth = 1: no worker runs anything) and broadcast to sleepers, without waiting for
 * the acknowledgements: the workers wake in the background (tens of us on a VM) and then spin FS_SPIN_NS, so a
 * loop of mid-size GEMMs that starts cold turns parallel from its next call. fs_parallel_team waits for the
 * pending acknowledgements before publishing a real job. */
void fs_pool_warm(void) {
  pthread_once(&once, init_once);
  if (P.want <= 1 || tl_in_parallel) return;
  int free_ = 0;
  if (!atomic_compare_exchange_strong(&P.owned, &free_, 1)) return;
  ensure_workers();
  if (P.nworkers == 0 || atomic_load(&P.pending) != 0 ||
      (atomic_load(&P.sleepers) == 0 && now_ns() - atomic_load(&P.last_job_ns) < FS_SPIN_NS / 2)) {
    atomic_store(&P.owned, 0);
    return;
  }
  P.job_nth = 1;
  atomic_store(&P.pending, P.nworkers);
  atomic_fetch_add(&P.gen, 1);
  if (atomic_load(&P.sleepers) > 0) {
    pthread_mutex_lock(&P.mu);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
  }
  atomic_store(&P.last_job_ns, now_ns());
  atomic_store(&P.owned, 0);
}

/* ---- range helpers ---- */
typedef struct {
  fs_range_fn fn;
  void *ctx;
  int64_t n, grain;
  _Atomic int64_t next;
} range_job;

static void static_body(void *p, int tid, int nth) {
  range_job *j = (range_job *)p;
  int64_t b = j->n * tid / nth, e = j->n * (tid + 1) / nth;
  if (e > b) j->fn(j->ctx, b, e);
}

void fs_parallel_for(int64_t n, int64_t grain, fs_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = n / grain;
  int nth = fs_pool_size();
  if (chunks < nth) nth = (int)chunks;
  if (nth <= 1 || tl_in_parallel) { fn(ctx, 0, n); return; }
  range_job j = {fn, ctx, n, grain, 0};
  fs_parallel_team(nth, static_body, &j);
}

static void dyn_body(void *p, int tid, int nth) {
  (void)tid; (void)nth;
  range_job *j = (range_job *)p;
  for (;;) {
    int64_t b = atomic_fetch_add(&j->next, j->grain);
    if (b >= j->n) break;
    j->fn(j->ctx, b, b + j->grain < j->n ? b + j->grain : j->n);
  }
}

void fs_parallel_dyn(int64_t n, int64_t grain, fs_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = (n + grain - 1) / grain;
  int nth = fs_pool_size();
  if (chunks < nth) nth = (int)chunks;
  if (nth <= 1 || tl_in_parallel) { fn(ctx, 0, n); return; }
  range_job j = {fn, ctx, n, grain, 0};
  fs_parallel_team(nth, dyn_body, &j);
}

/* ---- thread-local scratch ---- */
static __thread void *tl_buf[4];
static __thread size_t tl_cap[4];

void *fs_scratch(int slot, size_t bytes) {
  if (bytes <= tl_cap[slot]) return tl_buf[slot];
  free(tl_buf[slot]);
  size_t cap = bytes + bytes / 4 + 4096;
  cap = (cap + 63) & ~(size_t)63;
  void *p = NULL;
  if (posix_memalign(&p, 64, cap) != 0) p = NULL;
  tl_buf[slot] = p;
  tl_cap[slot] = p ? cap : 0;
  return p;
}

void fs_barrier_wait(fs_barrier *b, int nth) {
  if (nth <= 1) return;
  int g = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
  if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == nth) {
    __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&b->gen, g + 1, __ATOMIC_RELEASE);
  } else {
    while (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == g) FS_PAUSE();
  }
}
