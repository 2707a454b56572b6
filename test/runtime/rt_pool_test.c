/* rt_pool_test.c - the thread pool (runtime/threads.c) on its own: nncc_set_num_threads
 * checks its argument; nncc_rt_parallel_for runs every iteration exactly once on 1, 2, 3 and
 * 7 threads, with every thread taking part, and on 2 after 7 with the others left out; the
 * caller returns only after the chunks workers took are done; tiny
 * work on the caller alone, an empty range not at all; a failing iteration returns its code
 * with the message of the first failing chunk in chunk order, even when a worker failed;
 * 20000 jobs back to back each run once; two threads calling in at once both get their whole
 * range done.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "rt_test.h"

#define N 1000
static atomic_int hits[N];
static atomic_int callers;   /* distinct threads that ran a chunk since `round` changed */
static atomic_int round_no;
static _Thread_local int counted_round = -1;

static int count_fn(void *ctx, int64_t lo, int64_t hi) {
  (void)ctx;
  if (counted_round != atomic_load(&round_no)) {
    counted_round = atomic_load(&round_no);
    atomic_fetch_add(&callers, 1);
  }
  for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&hits[i], 1);
  return 0;
}

/* count_fn, but a chunk waits (up to 10 s) until *ctx threads have run one: the caller takes
 * every chunk no worker has claimed yet, so without the wait a fast caller could do them all
 * and no test could see that each thread takes part */
static int gather_fn(void *ctx, int64_t lo, int64_t hi) {
  count_fn(NULL, lo, hi);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    if (atomic_load(&callers) >= *(const int *)ctx) break;
    sched_yield();
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while (t.tv_sec - t0.tv_sec < 10);
  return 0;
}

/* gather_fn that also notes where each thread's first chunk starts (firsts[] in order of
 * arrival, the caller's in caller_first): with every thread held in its first chunk until all
 * have one, no thread can take a chunk of another's range first */
static atomic_int nfirsts;
static int64_t firsts[16], caller_first = -1;
static _Thread_local int first_round = -1;
static _Thread_local int is_caller;
static int first_fn(void *ctx, int64_t lo, int64_t hi) {
  if (first_round != atomic_load(&round_no)) {
    first_round = atomic_load(&round_no);
    firsts[atomic_fetch_add(&nfirsts, 1) % 16] = lo;
    if (is_caller) caller_first = lo;
  }
  return gather_fn(ctx, lo, hi);
}

/* count_fn, a millisecond an iteration: time for every awake worker to come for a chunk */
static int slow_fn(void *ctx, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; i++) {
    struct timespec d = {0, 1000000};
    nanosleep(&d, NULL);
    count_fn(ctx, i, i + 1);
  }
  return 0;
}

/* two chunks: the one a worker runs sleeps 50 ms before it counts; the caller's waits (up to
 * 1 s) until a worker has started, then counts and returns at once, so the caller must wait
 * for the worker's chunk before its parallel_for returns */
static atomic_int worker_started;
static int lag_fn(void *ctx, int64_t lo, int64_t hi) {
  if (!is_caller) {
    atomic_store(&worker_started, 1);
    struct timespec d = {0, 50000000};
    nanosleep(&d, NULL);
  } else {
    for (int k = 0; k < 1000 && !atomic_load(&worker_started); k++) {
      struct timespec d = {0, 1000000};
      nanosleep(&d, NULL);
    }
  }
  return count_fn(ctx, lo, hi);
}

/* back-to-back jobs: each iteration adds its job's number, so a chunk run twice, missed, or
 * run with a late worker's stale job shows in the sums */
static atomic_long sums[64];
static int job_fn(void *ctx, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&sums[i], (long)(intptr_t)ctx);
  return 0;
}

static int exactly_once(int64_t lo, int64_t hi) {
  for (int64_t i = 0; i < N; i++)
    if (atomic_load(&hits[i]) != (i >= lo && i < hi)) return 0;
  return 1;
}

/* count_fn that also notes each chunk's bounds (in order of arrival) */
static atomic_int nchunks;
static int64_t chunk_lo[64], chunk_hi[64];
static int chunk_fn(void *ctx, int64_t lo, int64_t hi) {
  int k = atomic_fetch_add(&nchunks, 1);
  if (k < 64) chunk_lo[k] = lo, chunk_hi[k] = hi;
  return count_fn(ctx, lo, hi);
}
/* the chunks of one job over [lo, hi) as "lo-hi ..." in order of lo */
static void print_chunks(const char *name, int rc, int64_t lo, int64_t hi) {
  int n = atomic_load(&nchunks);
  printf("case %s: rc %d, exactly once %d, chunks %d:", name, rc, exactly_once(lo, hi), n);
  for (int64_t at = lo; at < hi;) {
    int k = 0;
    while (k < n && k < 64 && chunk_lo[k] != at) k++;
    if (k == n || k == 64) break;
    printf(" %lld-%lld", (long long)chunk_lo[k], (long long)chunk_hi[k]);
    at = chunk_hi[k];
  }
  printf("\n");
}

static void reset(void) {
  for (int i = 0; i < N; i++) atomic_store(&hits[i], 0);
}

/* fails at every index listed in ctx (-1 terminated) */
static int fail_fn(void *ctx, int64_t lo, int64_t hi) {
  const int64_t *bad = ctx;
  for (int64_t i = lo; i < hi; i++)
    for (int k = 0; bad[k] >= 0; k++)
      if (bad[k] == i) return nncc_rt_fail(NNCC_ERR_RANGE, "bad index %lld", (long long)i);
  return 0;
}

static void *concurrent(void *arg) {
  int64_t lo = (int64_t)(intptr_t)arg;
  return (void *)(intptr_t)nncc_rt_parallel_for(count_fn, NULL, lo, lo + N / 2, 1 << 30);
}

int main(void) {
  EXPECT_ERR("threads_zero", nncc_set_num_threads(0), NNCC_ERR_ARG,
             "nncc_set_num_threads: n must be >= 1, got 0");
  int threads[4] = {1, 2, 3, 7};
  for (int t = 0; t < 4; t++) {
    EXPECT(nncc_set_num_threads(threads[t]) == 0 && nncc_get_num_threads() == threads[t],
           "set/get %d threads", threads[t]);
    reset();
    atomic_store(&callers, 0);
    atomic_fetch_add(&round_no, 1);
    int rc = nncc_rt_parallel_for(gather_fn, &threads[t], 3, 997, 1 << 30);
    printf("case range_%d_threads: rc %d, exactly once %d, threads used %d\n", threads[t], rc,
           exactly_once(3, 997), atomic_load(&callers));
    EXPECT(rc == 0 && exactly_once(3, 997) && atomic_load(&callers) == threads[t], "%d threads", threads[t]);
  }
  /* each thread starts on its own contiguous range of chunks (3 threads, 12 chunks of 10:
   * the caller at 0, the workers at 40 and 80), so loops over the same range keep their
   * data on the same core */
  nncc_set_num_threads(3);
  reset();
  is_caller = 1;
  atomic_store(&callers, 0);
  atomic_store(&nfirsts, 0);
  atomic_fetch_add(&round_no, 1);
  int three = 3;
  int rcf = nncc_rt_parallel_for(first_fn, &three, 0, 120, 1 << 30);
  int64_t w[2] = {-1, -1};   /* the workers' first chunks, in order */
  for (int k = 0, j = 0; k < 3 && k < atomic_load(&nfirsts); k++)
    if (firsts[k] != caller_first && j < 2) w[j++] = firsts[k];
  if (w[0] > w[1]) {
    int64_t x = w[0];
    w[0] = w[1], w[1] = x;
  }
  printf("case own_range_first: rc %d, exactly once %d, caller at %lld, workers at %lld and %lld\n",
         rcf, exactly_once(0, 120), (long long)caller_first, (long long)w[0], (long long)w[1]);
  EXPECT(rcf == 0 && exactly_once(0, 120) && atomic_load(&nfirsts) == 3, "own ranges");
  /* at most NNCC_PAR_STATIC_ITEMS (8) iterations a thread: one chunk a thread (16 on 2
   * threads: 0-8 and 8-16); one more iteration: 4 chunks a thread (17: 8 chunks) */
  nncc_set_num_threads(2);
  reset();
  atomic_store(&nchunks, 0);
  int rcs = nncc_rt_parallel_for(chunk_fn, NULL, 0, 16, 1 << 30);
  print_chunks("static_split", rcs, 0, 16);
  EXPECT(rcs == 0 && exactly_once(0, 16) && atomic_load(&nchunks) == 2, "16 iterations on 2 threads");
  reset();
  atomic_store(&nchunks, 0);
  rcs = nncc_rt_parallel_for(chunk_fn, NULL, 0, 17, 1 << 30);
  print_chunks("claimed_split", rcs, 0, 17);
  EXPECT(rcs == 0 && exactly_once(0, 17) && atomic_load(&nchunks) == 8, "17 iterations on 2 threads");
  /* the caller returns only when the chunks workers took are done */
  nncc_set_num_threads(2);
  reset();
  int rcl = nncc_rt_parallel_for(lag_fn, NULL, 0, 2, 1 << 30);
  printf("case waits_for_workers: rc %d, exactly once on return %d\n", rcl, exactly_once(0, 2));
  EXPECT(rcl == 0 && exactly_once(0, 2), "returned before a worker's chunk was done");
  /* back from 7 threads to 2: the 5 workers beyond stay out, however long the chunks take */
  nncc_set_num_threads(2);
  reset();
  atomic_store(&callers, 0);
  atomic_fetch_add(&round_no, 1);
  int rc2 = nncc_rt_parallel_for(slow_fn, NULL, 0, 16, 1 << 30);
  printf("case fewer_threads: rc %d, exactly once %d, threads used at most 2: %d\n", rc2,
         exactly_once(0, 16), atomic_load(&callers) <= 2);
  EXPECT(rc2 == 0 && exactly_once(0, 16) && atomic_load(&callers) <= 2, "threads beyond the count ran");
  nncc_set_num_threads(7);
  /* 7 threads over 5 iterations: at most 5 chunks, still each once */
  reset();
  EXPECT(nncc_rt_parallel_for(count_fn, NULL, 0, 5, 1 << 30) == 0 && exactly_once(0, 5), "short range");
  /* tiny work: the caller alone */
  reset();
  atomic_store(&callers, 0);
  atomic_fetch_add(&round_no, 1);
  EXPECT(nncc_rt_parallel_for(count_fn, NULL, 0, N, 10) == 0 && exactly_once(0, N), "tiny work");
  printf("case tiny_work: threads used %d\n", atomic_load(&callers));
  EXPECT(atomic_load(&callers) == 1, "tiny work woke a worker");
  reset();
  EXPECT(nncc_rt_parallel_for(count_fn, NULL, 5, 5, 1 << 30) == 0 && exactly_once(0, 0), "empty range");
  EXPECT(nncc_rt_parallel_for(count_fn, NULL, 9, 2, 1 << 30) == 0 && exactly_once(0, 0), "reversed range");

  /* errors: 3 threads over [0, 300): 12 chunks of 25, claimed by any thread */
  nncc_set_num_threads(3);
  int64_t last_only[] = {250, -1}, two[] = {150, 260, -1}, first[] = {7, 280, -1};
  EXPECT_ERR("error_in_worker", nncc_rt_parallel_for(fail_fn, last_only, 0, 300, 1 << 30),
             NNCC_ERR_RANGE, "bad index 250");
  EXPECT_ERR("first_failing_chunk", nncc_rt_parallel_for(fail_fn, two, 0, 300, 1 << 30),
             NNCC_ERR_RANGE, "bad index 150");
  EXPECT_ERR("caller_chunk_first", nncc_rt_parallel_for(fail_fn, first, 0, 300, 1 << 30),
             NNCC_ERR_RANGE, "bad index 7");

  /* 20000 jobs back to back on 3 threads, some workers spinning, some asleep, some late */
  nncc_set_num_threads(3);
  int jobs_rc = 0;
  for (int j = 1; j <= 20000; j++) {
    jobs_rc |= nncc_rt_parallel_for(job_fn, (void *)(intptr_t)j, 0, 1 + j % 64, 1 << 30);
  }
  int sums_ok = 1;
  for (int i = 0; i < 64; i++) {
    long e = 0;
    for (int j = 1; j <= 20000; j++) e += (1 + j % 64 > i) ? j : 0;
    if (atomic_load(&sums[i]) != e) sums_ok = 0;
  }
  printf("case back_to_back_jobs: rc %d, sums right %d\n", jobs_rc, sums_ok);
  EXPECT(jobs_rc == 0 && sums_ok, "back-to-back jobs");

  /* two threads calling in at once: the pool serves one, the other runs its own loop */
  nncc_set_num_threads(2);
  reset();
  pthread_t a, b;
  pthread_create(&a, NULL, concurrent, (void *)(intptr_t)0);
  pthread_create(&b, NULL, concurrent, (void *)(intptr_t)(N / 2));
  void *ra, *rb;
  pthread_join(a, &ra);
  pthread_join(b, &rb);
  printf("case concurrent_callers: rc %d %d, exactly once %d\n", (int)(intptr_t)ra,
         (int)(intptr_t)rb, exactly_once(0, N));
  EXPECT(ra == 0 && rb == 0 && exactly_once(0, N), "concurrent callers");
  return finish();
}
