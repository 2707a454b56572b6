/* threads.c - the thread pool behind the generated code's parallel loops.
 *
 * One pool per process (per artifact: each links its own copy of the runtime), started on
 * first use with NNCC_NUM_THREADS threads (default: the CPUs the process may run on,
 * sched_getaffinity), changed by nncc_set_num_threads().  The caller is one of the threads:
 * a pool of n runs n - 1 workers.
 *
 * nncc_rt_parallel_for(fn, ctx, lo, hi, work) splits [lo, hi) into T contiguous chunks,
 * chunk i = [lo + n*i/T, lo + n*(i+1)/T), runs chunk 0 on the caller and the others on
 * workers, and waits for all.  T = min(threads, hi - lo, 1 + work / NNCC_PAR_GRAIN): work is
 * the compiler's estimate of the loop's element operations, so tiny loops never wake a
 * worker.  The chunks depend only on T, never on timing; every iteration writes its own
 * outputs (the compiler marks only such loops parallel), so the result does not depend on
 * the thread count.
 *
 * Waiting: a worker spins briefly (NNCC_PAR_SPIN polls with a pause) for the next job, then
 * sleeps on a condition variable, so an idle pool costs nothing and a descheduled partner on
 * a busy 2-core machine is not spun against for long; the caller waits for its workers the
 * same way.  The pool serves one parallel loop at a time: a second thread calling in (two
 * model objects used from two threads at once) finds it busy and runs its loop on its own,
 * which is correct and never deadlocks.
 *
 * Errors: fn returns 0 or a negative code with a message in the calling thread's error slot.
 * A worker's message is copied to the caller, and the first failing chunk in chunk order
 * decides the code, as a serial loop would.
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

#include "rt_internal.h"

#define NNCC_MAX_THREADS 256
#define NNCC_PAR_GRAIN (1 << 19)   /* element operations per thread worth a wake-up; the
                                    * environment's NNCC_PAR_GRAIN overrides it (tests set 1
                                    * to split every parallel loop of a small model).  Waking
                                    * a sleeping worker on a busy 2-core machine costs tens of
                                    * microseconds: the mlp at batch 1 (200 k operations in
                                    * its largest layer) went from 16 to 143 us on two threads
                                    * with a grain of 2^16 */
#define NNCC_PAR_SPIN 2000

typedef struct Chunk {
  int rc;
  char msg[256];
} Chunk;

typedef struct Pool {
  pthread_mutex_t lock;        /* guards the fields below that are not atomic */
  pthread_cond_t work_cv;      /* workers wait here for a new generation */
  pthread_cond_t done_cv;      /* the caller waits here for pending == 0 */
  atomic_uint_fast64_t job;    /* generation << 16 | chunks: read together, so a worker
                                * that wakes late never runs a chunk of the next job as if
                                * it were its own */
  atomic_int pending;          /* workers still running the current job */
  atomic_flag busy;            /* a parallel loop is running */
  atomic_int nthreads;         /* the caller + workers */
  int nworkers;                /* started */
  int shutdown;
  /* the current job */
  nncc_par_fn fn;
  void *ctx;
  int64_t lo, n;
  Chunk chunk[NNCC_MAX_THREADS];
  pthread_t tid[NNCC_MAX_THREADS];
} Pool;

static Pool pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work_cv = PTHREAD_COND_INITIALIZER,
    .done_cv = PTHREAD_COND_INITIALIZER,
    .busy = ATOMIC_FLAG_INIT,
};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static int64_t grain = NNCC_PAR_GRAIN;
static atomic_int requested = 0;   /* nncc_set_num_threads before or after start */

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
  int64_t a = pool.lo + pool.n * i / chunks;
  int64_t b = pool.lo + pool.n * (i + 1) / chunks;
  int rc = pool.fn(pool.ctx, a, b);
  pool.chunk[i].rc = rc;
  if (rc) snprintf(pool.chunk[i].msg, sizeof pool.chunk[i].msg, "%s", nncc_last_error());
}

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;   /* 1 .. nworkers */
  uint_fast64_t seen = 0;
  for (;;) {
    uint_fast64_t v = atomic_load_explicit(&pool.job, memory_order_acquire);
    for (int s = 0; v >> 16 == seen && s < NNCC_PAR_SPIN; s++) {
      cpu_relax();
      v = atomic_load_explicit(&pool.job, memory_order_acquire);
    }
    if (v >> 16 == seen) {
      pthread_mutex_lock(&pool.lock);
      while ((v = atomic_load_explicit(&pool.job, memory_order_acquire)) >> 16 == seen &&
             !pool.shutdown)
        pthread_cond_wait(&pool.work_cv, &pool.lock);
      int stop = pool.shutdown;
      pthread_mutex_unlock(&pool.lock);
      if (stop) return NULL;
    }
    seen = v >> 16;
    int chunks = (int)(v & 0xffff);
    if (me < chunks) {
      run_chunk(me, chunks);
      if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_signal(&pool.done_cv);
        pthread_mutex_unlock(&pool.lock);
      }
    }
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
  int64_t t = pool.nthreads;
  if (t > n) t = n;
  if (work >= 0) {
    int64_t by_work = 1 + work / grain;
    if (t > by_work) t = by_work;
  }
  if (t <= 1 || atomic_flag_test_and_set_explicit(&pool.busy, memory_order_acquire))
    return fn(ctx, lo, hi);   /* tiny, or the pool serves another thread: run here */
  if (t > pool.nthreads) t = pool.nthreads;
  start_workers(pool.nthreads);
  if (t > pool.nworkers + 1) t = pool.nworkers + 1;
  if (t <= 1) {
    atomic_flag_clear_explicit(&pool.busy, memory_order_release);
    return fn(ctx, lo, hi);
  }
  pool.fn = fn;
  pool.ctx = ctx;
  pool.lo = lo;
  pool.n = n;
  int chunks = (int)t;
  /* every worker wakes for each generation; those with me >= chunks go back to sleep */
  atomic_store_explicit(&pool.pending, chunks - 1, memory_order_relaxed);
  pthread_mutex_lock(&pool.lock);
  uint_fast64_t gen = (atomic_load_explicit(&pool.job, memory_order_relaxed) >> 16) + 1;
  atomic_store_explicit(&pool.job, gen << 16 | (uint_fast64_t)chunks, memory_order_release);
  pthread_cond_broadcast(&pool.work_cv);
  pthread_mutex_unlock(&pool.lock);
  run_chunk(0, chunks);
  for (int s = 0; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0 && s < NNCC_PAR_SPIN; s++)
    cpu_relax();
  if (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0) {
    pthread_mutex_lock(&pool.lock);
    while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0)
      pthread_cond_wait(&pool.done_cv, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
  }
  int rc = 0;
  for (int i = 0; i < chunks && !rc; i++)
    if (pool.chunk[i].rc) {
      rc = pool.chunk[i].rc;
      if (i > 0) nncc_rt_fail(rc, "%s", pool.chunk[i].msg);
    }
  atomic_flag_clear_explicit(&pool.busy, memory_order_release);
  return rc;
}
