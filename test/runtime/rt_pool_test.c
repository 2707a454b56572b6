/* rt_pool_test.c - the thread pool (runtime/threads.c) on its own: nncc_set_num_threads
 * checks its argument; nncc_rt_parallel_for runs every iteration exactly once on 1, 2, 3 and
 * 7 threads, tiny work on the caller alone, an empty range not at all; a failing iteration
 * returns its code with the message of the first failing chunk in chunk order, even when a
 * worker failed; two threads calling in at once both get their whole range done.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

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

static int exactly_once(int64_t lo, int64_t hi) {
  for (int64_t i = 0; i < N; i++)
    if (atomic_load(&hits[i]) != (i >= lo && i < hi)) return 0;
  return 1;
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
    int rc = nncc_rt_parallel_for(count_fn, NULL, 3, 997, 1 << 30);
    printf("case range_%d_threads: rc %d, exactly once %d, threads used %d\n", threads[t], rc,
           exactly_once(3, 997), atomic_load(&callers));
    EXPECT(rc == 0 && exactly_once(3, 997) && atomic_load(&callers) == threads[t], "%d threads", threads[t]);
  }
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

  /* errors: 3 threads over [0, 300): chunks [0,100) [100,200) [200,300) */
  nncc_set_num_threads(3);
  int64_t last_only[] = {250, -1}, two[] = {150, 260, -1}, first[] = {7, 280, -1};
  EXPECT_ERR("error_in_worker", nncc_rt_parallel_for(fail_fn, last_only, 0, 300, 1 << 30),
             NNCC_ERR_RANGE, "bad index 250");
  EXPECT_ERR("first_failing_chunk", nncc_rt_parallel_for(fail_fn, two, 0, 300, 1 << 30),
             NNCC_ERR_RANGE, "bad index 150");
  EXPECT_ERR("caller_chunk_first", nncc_rt_parallel_for(fail_fn, first, 0, 300, 1 << 30),
             NNCC_ERR_RANGE, "bad index 7");

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
