/* threads.c - the thread pool behind the generated code's parallel loops.
 *
 * One pool per process (per artifact: each links its own copy of the runtime), started on
 * first use with NNCC_NUM_THREADS threads (default: the CPUs the process may run on,
 * sched_getaffinity), changed by nncc_set_num_threads().  The caller is one of the threads:
 * a pool of n runs n - 1 workers.
 *
 * nncc_rt_parallel_for(fn, ctx, lo, hi, work) runs on T = min(threads, hi - lo, 1 + work /
 * NNCC_PAR_GRAIN) threads: work is the compiler's estimate of the loop's element operations,
 * so a tiny loop never publishes a job.  It splits [lo, hi) into C contiguous chunks, chunk
 * i = [lo + n*i/C, lo + n*(i+1)/C), C = min(NNCC_PAR_CHUNKS * T, hi - lo, 1 + work / grain)
 * but at least T; a loop of at most NNCC_PAR_STATIC_ITEMS iterations a thread gets C = T, one
 * chunk a thread.  (Measured on an Intel Xeon VM, 2 threads, against 4 chunks a thread:
 * resnet_mini at batch 1, whose layers are loops of 16 iterations of about 1 us, 1.06x; the
 * LSTM at batch 1, 128 jobs of 8 iterations a forward, 1.16x, and 1.57x with a busy loop on
 * one of the two CPUs; the GRU 1.03x; the larger rows within 1%.  On an AMD Zen 5 VM, finer
 * chunks for those loops, 2 iterations each, made resnet_mini at batch 1 slower, a median of
 * 74-84 us a call against 70-76.  There, one thread runs each quarter of a 16-band 3x3 layer
 * in 5.7-6.5 us, evenly; on two, the front half takes 13.0-13.8 us and the back half
 * 14.4-16.0, and with the halves' owners swapped the back half is still the slower: neither
 * the thread nor where the data were written explains it.  It is what holds that model at
 * ~70% of its 2-thread roofline, bench/results.md.)  Every iteration writes its
 * own outputs (the compiler marks only such loops
 * parallel), so the result depends neither on the chunks nor on which thread ran which.
 *
 * Claiming: thread r of the T a job runs on (the caller is 0) owns the contiguous chunks
 * [r C / T, (r + 1) C / T) and takes them in order from the front; when its own are gone it
 * takes the others' from the back (thread r + 1's first, and so on).  So a thread runs the
 * same part of every loop over the same rows (a layer's padded copy, its tiles, its
 * write-back), which stays in its own core's cache: a cache line another core wrote comes at
 * about DRAM speed (Zen 5: 25 GB/s against 100 GB/s from the own L2).  And a worker that is
 * asleep, slow to wake or not scheduled by a busy machine before it claims a chunk costs the
 * caller the wake-up call and no wait: the caller takes its chunks from the back, and a
 * thread that runs slower (a neighbour on its core) takes fewer of them.  Each range is one
 * word holding the job's generation, so a worker that wakes late can never take a chunk of
 * the next job.  The caller waits only for chunks a worker is running.
 *
 * Waiting: a worker spins (polling with a pause) for NNCC_PAR_SPIN_NS after its last job for
 * the next one, then sleeps on a condition variable, so an idle pool costs nothing once a
 * model stops being called, while the parallel loops of one call (a LeNet-5 training step
 * has dozens, with serial stretches between them) find the worker awake.  The caller takes
 * the lock and broadcasts only when a worker sleeps.  It waits for running chunks the same
 * way, with a shorter spin: a worker that was descheduled mid-chunk is not spun against for
 * long, and it signals the caller only when the caller sleeps.
 * The pool serves one parallel loop at a time: a second thread calling in (two model objects
 * used from two threads at once) finds it busy and runs its loop on its own, which is correct
 * and never deadlocks.
 *
 * Layout: what a worker reads to start on a job (the job word, the thread count, the loop's
 * function, context and bounds, the floating-point mode) shares one cache line, which the
 * caller writes before it publishes; the counters the threads update while a job runs have
 * a line of their own, and each thread's range word too.  A worker then fetches two lines
 * from the caller's core before its first chunk (the job's and its range's), not three:
 * measured on an Intel Xeon VM, the worker starts 0.42-0.52 us after the call instead of
 * 0.6-0.76 us, and at batch 1 on two threads resnet_mini and the LSTM run 1.03x faster,
 * the GRU 1.07-1.08x (resnet_mini at batch 32 and AlexNet at batch 8 unchanged).
 *
 * Denormals: every thread runs a job in the floating-point mode of the thread that published
 * it (pool.fpmode, MXCSR's control bits on x86-64), so the workers follow the caller's
 * flush-to-zero setting (nncc_rt_fp_enter, below) whatever their own was.
 *
 * Errors: fn returns 0 or a negative code with a message in the calling thread's error slot.
 * The first failing chunk in chunk order decides the code and the message, as a serial loop
 * would, whichever thread ran it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
/* MXCSR: bits 0-5 are the sticky exception flags, the rest the mode: FP_DEFAULT is every
 * exception masked and rounding to nearest; FTZ (bit 15: a result below FLT_MIN becomes 0)
 * and DAZ (bit 6: an operand below FLT_MIN reads as 0) make FP_FLUSH */
#define FP_FLAGS 0x3fu
#define FP_DEFAULT 0x1f80u
#define FP_FLUSH 0x8040u
static unsigned fp_get(void) { return _mm_getcsr(); }
static void fp_set(unsigned v) { _mm_setcsr(v); }
#else /* other targets: the mode is left as it is */
#define FP_FLAGS 0u
#define FP_DEFAULT 0u
#define FP_FLUSH 0u
static unsigned fp_get(void) { return 0; }
static void fp_set(unsigned v) { (void)v; }
#endif
/* Sets the mode (the control bits of mode) when it differs, keeping the exception flags. */
static void fp_mode(unsigned mode) {
  unsigned cur = fp_get();
  if ((cur & ~FP_FLAGS) != (mode & ~FP_FLAGS)) fp_set((cur & FP_FLAGS) | (mode & ~FP_FLAGS));
}

#define NNCC_MAX_THREADS 256
#define NNCC_PAR_GRAIN (1 << 14)   /* element operations per thread worth a job; the
                                    * environment's NNCC_PAR_GRAIN overrides it (tests set 1
                                    * to split every parallel loop of a small model) */
#define NNCC_PAR_CHUNKS 4          /* chunks per thread, claimed as threads come free */
#define NNCC_PAR_STATIC_ITEMS 8    /* iterations a thread up to which a loop is one chunk a
                                    * thread (nncc_rt_parallel_for) */
#define NNCC_PAR_SPIN_NS 300000    /* a worker's spin for the next job before it sleeps */
#define NNCC_PAR_WAIT_NS 50000     /* the caller's spin for running chunks before it sleeps */

/* The job word: generation << 32 | chunks << 16. */
#define JOB_GEN(v) ((v) >> 32)
#define JOB_CHUNKS(v) ((int)(((v) >> 16) & 0xffff))

typedef struct Pool {
  /* what a worker reads to start on a job, in one cache line the caller writes before it
   * publishes the job word (in another line than the counters below, which the threads
   * write while a job runs) */
  _Alignas(64) _Atomic uint64_t job; /* the job word, above */
  atomic_int job_threads;      /* the threads the current job may use (written before it is
                                * published: a worker reads it after seeing the job) */
  unsigned fpmode;             /* the publishing thread's floating-point mode */
  /* the current job: written before its generation is published, read after a claim */
  nncc_par_fn fn;
  void *ctx;
  int64_t lo, n;
  /* the counters the threads update while a job runs, on a line of their own */
  _Alignas(64) atomic_int done; /* chunks of the current job finished */
  atomic_int sleepers;         /* workers asleep on work_cv */
  atomic_int caller_asleep;    /* the caller sleeps on done_cv */
  atomic_flag busy;            /* a parallel loop is running */
  atomic_int nthreads;         /* the caller + workers */
  int nworkers;                /* started */
  int shutdown;
  pthread_mutex_t lock;        /* guards the condition variables' waits */
  pthread_cond_t work_cv;      /* workers sleep here for a new generation */
  pthread_cond_t done_cv;      /* the caller sleeps here for done == chunks */
  /* its first failing chunk in chunk order (fail_chunk = chunks: none), under fail_lock */
  pthread_mutex_t fail_lock;
  int fail_chunk, fail_rc;
  char fail_msg[256];
  pthread_t tid[NNCC_MAX_THREADS];
  /* thread r's chunks of the current job (a range word, below), a cache line each */
  struct {
    _Alignas(64) _Atomic uint64_t w;
  } range[NNCC_MAX_THREADS];
} Pool;

static Pool pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work_cv = PTHREAD_COND_INITIALIZER,
    .done_cv = PTHREAD_COND_INITIALIZER,
    .fail_lock = PTHREAD_MUTEX_INITIALIZER,
    .busy = ATOMIC_FLAG_INIT,
};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static int64_t grain = NNCC_PAR_GRAIN;
static atomic_int requested = 0;   /* nncc_set_num_threads before or after start */

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static int default_threads(void) {
  const char *e = getenv("NNCC_NUM_THREADS");
  if (e && *e) {
    char *end;
    errno = 0;
    long v = strtol(e, &end, 10);
    if (!errno && *end == '\0' && v >= 1) return v > NNCC_MAX_THREADS ? NNCC_MAX_THREADS : (int)v;
    fprintf(stderr, "nncc: NNCC_NUM_THREADS='%s' is not a number >= 1; using the CPUs available\n", e);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n >= 1) return n > NNCC_MAX_THREADS ? NNCC_MAX_THREADS : n;
  }
  return 1;
}

static void run_chunk(int i, int chunks) {
  /* the job's fields are read after a claim (a later job is published only when this one's
   * chunks are all done); the caller's own mode is the job's already */
  fp_mode(pool.fpmode);
  int64_t a = pool.lo + pool.n * i / chunks;
  int64_t b = pool.lo + pool.n * (i + 1) / chunks;
  int rc = pool.fn(pool.ctx, a, b);
  if (rc) {
    pthread_mutex_lock(&pool.fail_lock);
    if (i < pool.fail_chunk) {
      pool.fail_chunk = i;
      pool.fail_rc = rc;
      snprintf(pool.fail_msg, sizeof pool.fail_msg, "%s", nncc_last_error());
    }
    pthread_mutex_unlock(&pool.fail_lock);
  }
}

/* A range word: generation << 32 | next chunk to claim from the front << 16 | end (one past
 * the last chunk not yet claimed from the back). */
#define RANGE_LO(v) ((int)(((v) >> 16) & 0xffff))
#define RANGE_HI(v) ((int)((v) & 0xffff))

/* Takes a chunk of generation gen for thread me of t: the next one from the front of its own
 * range, else the last one of another thread's range (the others in turn, from me + 1);
 * returns -1 when that job has none left (or is over: a later generation is published only
 * after all of gen's chunks are done).  Before it looks into other threads' ranges it reads
 * the count of chunks done: when all `chunks` are (the others finished first, the common case
 * of a balanced loop), there is nothing to take, and the ranges' cache lines, which the other
 * threads wrote last, are not fetched: each is a transfer between cores (about 0.2 us on the
 * 2-core hosts we measure), on the way out of every parallel region. */
static int claim(uint64_t gen, int chunks, int me, int t) {
  for (int k = 0; k < t; k++) {
    if (k == 1 && atomic_load_explicit(&pool.done, memory_order_acquire) >= chunks) return -1;
    int r = (me + k) % t;
    _Atomic uint64_t *w = &pool.range[r].w;
    uint64_t v = atomic_load_explicit(w, memory_order_acquire);
    while (JOB_GEN(v) == gen && RANGE_LO(v) < RANGE_HI(v)) {
      uint64_t nv = k == 0 ? v + (1u << 16) : v - 1;
      if (atomic_compare_exchange_weak_explicit(w, &v, nv, memory_order_acq_rel, memory_order_acquire))
        return k == 0 ? RANGE_LO(v) : RANGE_HI(v) - 1;
    }
  }
  return -1;
}

/* Runs chunks of generation gen as thread me of t until none is left; counts them done. */
static void run_claimed(uint64_t gen, int chunks, int me, int t) {
  int i;
  while ((i = claim(gen, chunks, me, t)) >= 0) {
    run_chunk(i, chunks);
    /* sequentially consistent, against the caller's caller_asleep = 1 then done load */
    if (atomic_fetch_add(&pool.done, 1) + 1 == chunks && atomic_load(&pool.caller_asleep)) {
      pthread_mutex_lock(&pool.lock);
      pthread_cond_signal(&pool.done_cv);
      pthread_mutex_unlock(&pool.lock);
    }
  }
}

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;   /* 1 .. nworkers */
  uint64_t seen = 0;             /* the last generation this worker looked at */
  int took_part = 0;             /* in that job: else it sleeps at once */
  for (;;) {
    uint64_t v = atomic_load_explicit(&pool.job, memory_order_acquire);
    if (JOB_GEN(v) == seen && took_part) {
      int64_t until = now_ns() + NNCC_PAR_SPIN_NS;
      for (int s = 1; JOB_GEN(v) == seen; s++) {
        cpu_relax();
        v = atomic_load_explicit(&pool.job, memory_order_acquire);
        if (s % 64 == 0 && now_ns() > until) break;
      }
    }
    if (JOB_GEN(v) == seen) {
      pthread_mutex_lock(&pool.lock);
      atomic_fetch_add(&pool.sleepers, 1);
      while (JOB_GEN(v = atomic_load(&pool.job)) == seen && !pool.shutdown)
        pthread_cond_wait(&pool.work_cv, &pool.lock);
      atomic_fetch_sub(&pool.sleepers, 1);
      int stop = pool.shutdown;
      pthread_mutex_unlock(&pool.lock);
      if (stop) return NULL;
    }
    seen = JOB_GEN(v);
    /* a job runs on its first job_threads threads: after nncc_set_num_threads(n) lowered the
     * count, the workers beyond it stay out (and asleep) */
    int t = atomic_load_explicit(&pool.job_threads, memory_order_relaxed);
    took_part = me < t;
    if (took_part) run_claimed(seen, JOB_CHUNKS(v), me, t);
  }
}

static void start_workers(int nthreads) {
  /* called with pool.busy held and no job running */
  pool.nthreads = nthreads;
  while (pool.nworkers < nthreads - 1) {
    int id = pool.nworkers + 1;
    if (pthread_create(&pool.tid[id], NULL, worker, (void *)(intptr_t)id) != 0) {
      pool.nthreads = pool.nworkers + 1;   /* run with the threads we have */
      return;
    }
    pool.nworkers++;
  }
}

static void pool_init(void) {
  int n = atomic_load(&requested);
  if (n < 1) n = default_threads();
  const char *g = getenv("NNCC_PAR_GRAIN");
  if (g && *g) {
    char *end;
    long long v = strtoll(g, &end, 10);
    if (*end == '\0' && v >= 1) grain = v;
  }
  pool.nthreads = n;   /* workers start on the first parallel loop that wants them */
}

NNCC_API int nncc_set_num_threads(int n) {
  if (n < 1) return nncc_rt_fail(NNCC_ERR_ARG, "nncc_set_num_threads: n must be >= 1, got %d", n);
  if (n > NNCC_MAX_THREADS) n = NNCC_MAX_THREADS;
  pthread_once(&pool_once, pool_init);
  atomic_store(&requested, n);
  /* takes effect at the next parallel loop; extra workers stay asleep */
  while (atomic_flag_test_and_set_explicit(&pool.busy, memory_order_acquire)) sched_yield();
  pool.nthreads = n;
  atomic_flag_clear_explicit(&pool.busy, memory_order_release);
  return NNCC_OK;
}

NNCC_API int nncc_get_num_threads(void) {
  pthread_once(&pool_once, pool_init);
  return pool.nthreads;
}

NNCC_API int nncc_rt_parallel_for(nncc_par_fn fn, void *ctx, int64_t lo, int64_t hi, int64_t work) {
  if (hi <= lo) return 0;
  pthread_once(&pool_once, pool_init);
  int64_t n = hi - lo;
  int64_t t = pool.nthreads, by_work = work >= 0 ? 1 + work / grain : INT64_MAX;
  if (t > n) t = n;
  if (t > by_work) t = by_work;
  if (t <= 1 || atomic_flag_test_and_set_explicit(&pool.busy, memory_order_acquire))
    return fn(ctx, lo, hi);   /* tiny, or the pool serves another thread: run here */
  start_workers(pool.nthreads);
  if (t > pool.nworkers + 1) t = pool.nworkers + 1;
  if (t <= 1) {
    atomic_flag_clear_explicit(&pool.busy, memory_order_release);
    return fn(ctx, lo, hi);
  }
  /* NNCC_PAR_CHUNKS chunks a thread where the work allows: a thread that runs slower (a
   * neighbour on its core, a late wake-up) then takes fewer of them.  But a loop of at most
   * NNCC_PAR_STATIC_ITEMS iterations a thread is one chunk a thread: its chunks would be an
   * iteration or two, as coarse as the imbalance they fix, and each costs a claim and a
   * call; and every such loop then splits the same way, so a thread reads the rows it wrote
   * in the loop before (a worker not started yet still loses its whole range to the caller) */
  int64_t chunks64 = t * (n <= t * NNCC_PAR_STATIC_ITEMS ? 1 : NNCC_PAR_CHUNKS);
  if (chunks64 > n) chunks64 = n;
  if (chunks64 > by_work) chunks64 = by_work;
  if (chunks64 < t) chunks64 = t;
  int chunks = (int)chunks64;
  pool.fn = fn;
  pool.ctx = ctx;
  pool.lo = lo;
  pool.n = n;
  pool.fpmode = fp_get() & ~FP_FLAGS;
  pool.fail_chunk = chunks;
  atomic_store_explicit(&pool.job_threads, (int)t, memory_order_relaxed);
  atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
  uint64_t gen = JOB_GEN(atomic_load_explicit(&pool.job, memory_order_relaxed)) + 1;
  gen &= 0xffffffffu;   /* wraps; a worker that slept through 2^32 jobs only misses one */
  /* thread r of t starts on chunks [r C / t, (r + 1) C / t) */
  for (int r = 0; r < t; r++)
    atomic_store_explicit(&pool.range[r].w,
                          gen << 32 | (uint64_t)(chunks * r / t) << 16 | (uint64_t)(chunks * (r + 1) / t),
                          memory_order_relaxed);
  /* publish (sequentially consistent, against a worker's sleepers++ then job load) */
  atomic_store(&pool.job, gen << 32 | (uint64_t)chunks << 16);
  if (atomic_load(&pool.sleepers) > 0) {
    pthread_mutex_lock(&pool.lock);
    pthread_cond_broadcast(&pool.work_cv);
    pthread_mutex_unlock(&pool.lock);
  }
  run_claimed(gen, chunks, 0, (int)t);
  /* every chunk is claimed; wait for those workers are running */
  if (atomic_load_explicit(&pool.done, memory_order_acquire) < chunks) {
    int64_t until = now_ns() + NNCC_PAR_WAIT_NS;
    for (int s = 1; atomic_load_explicit(&pool.done, memory_order_acquire) < chunks; s++) {
      cpu_relax();
      if (s % 64 == 0 && now_ns() > until) break;
    }
  }
  if (atomic_load_explicit(&pool.done, memory_order_acquire) < chunks) {
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.caller_asleep, 1);
    while (atomic_load(&pool.done) < chunks) pthread_cond_wait(&pool.done_cv, &pool.lock);
    atomic_store(&pool.caller_asleep, 0);
    pthread_mutex_unlock(&pool.lock);
  }
  int rc = 0;
  if (pool.fail_chunk < chunks) rc = nncc_rt_fail(pool.fail_rc, "%s", pool.fail_msg);   /* whichever thread ran it */
  atomic_flag_clear_explicit(&pool.busy, memory_order_release);
  return rc;
}

/* ---- denormals ------------------------------------------------------------------------- */

static atomic_int flush_mode = -1;   /* 1: flush (default), 0: NNCC_DENORMALS=keep; -1: unread */

static int denormals_flushed(void) {
  int f = atomic_load_explicit(&flush_mode, memory_order_relaxed);
  if (f < 0) {
    const char *e = getenv("NNCC_DENORMALS");
    f = !(e && strcmp(e, "keep") == 0);
    atomic_store_explicit(&flush_mode, f, memory_order_relaxed);
  }
  return f;
}

unsigned nncc_rt_fp_enter(void) {
  unsigned old = fp_get();
  fp_mode(FP_DEFAULT | (denormals_flushed() ? FP_FLUSH : 0));
  return old;
}

void nncc_rt_fp_leave(unsigned saved) { fp_mode(saved); }
