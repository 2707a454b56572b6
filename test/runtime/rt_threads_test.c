/* rt_threads_test.c - one model object, one thread at a time (model.c model_enter): a second
 * thread calling into an object another thread is inside gets NNCC_ERR_BUSY instead of
 * sharing its workspace; the object works again once the first call returns; two objects
 * run in two threads at once.  A 'slow' model whose forward waits until the main thread has
 * made its concurrent call makes the overlap certain.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "rt_test.h"

static volatile int inside, release_it;

static int64_t slow_ws(int64_t batch, int64_t seq) { return batch + seq; }
static int slow_forward(const nncc_exec *x) {
  __atomic_store_n(&inside, 1, __ATOMIC_SEQ_CST);
  while (!__atomic_load_n(&release_it, __ATOMIC_SEQ_CST)) usleep(100);
  ((float *)x->out[0])[0] = 42.0f;
  return 0;
}
static const nncc_param_desc slow_params[] = {{"w", 1, NNCC_INIT_ZERO, {1}, 1, 0, 1, 1}};
static const nncc_tensor_desc slow_io[] = {{"x", NNCC_F32, 1, {1}, 0}};
static const nncc_model_desc slow_desc = {
  NNCC_ABI_VERSION, 0, "slow", 1, 1, 0, 1, slow_params, slow_io, NULL, slow_io,
  1, 0, slow_ws, NULL, slow_forward, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL,
};

static float x[1], y[1];
static const void *in[1] = {x};
static void *out[1] = {y};

static void *call_forward(void *m) {
  return (void *)(intptr_t)nncc_rt_forward(m, 1, 1, in, out);
}

int main(void) {
  nncc_model *m = nncc_rt_create(&slow_desc), *other = nncc_rt_create(&slow_desc);
  pthread_t t;
  pthread_create(&t, NULL, call_forward, m);
  while (!__atomic_load_n(&inside, __ATOMIC_SEQ_CST)) usleep(100);
  float y2[1];
  void *out2[1] = {y2};
  EXPECT_ERR("second_thread_forward", nncc_rt_forward(m, 1, 1, in, out2), NNCC_ERR_BUSY,
             "slow_forward: the model is in use by another thread");
  EXPECT_ERR("second_thread_load", nncc_rt_load(m, "/nonexistent"), NNCC_ERR_BUSY,
             "slow_load: the model is in use by another thread");
  EXPECT_ERR("second_thread_save", nncc_rt_save(m, "/nonexistent/x"), NNCC_ERR_BUSY,
             "slow_save: the model is in use by another thread");
  EXPECT_ERR("second_thread_init", nncc_rt_init(m, 1), NNCC_ERR_BUSY,
             "slow_init: the model is in use by another thread");
  /* another object is free to run meanwhile */
  __atomic_store_n(&release_it, 1, __ATOMIC_SEQ_CST);
  int rc_other = nncc_rt_forward(other, 1, 1, in, out2);
  void *ret;
  pthread_join(t, &ret);
  printf("case first_thread: %s, y = %g\n", code_name((int)(intptr_t)ret), (double)y[0]);
  EXPECT((intptr_t)ret == 0 && y[0] == 42.0f, "the first call failed");
  printf("case other_object: %s\n", code_name(rc_other));
  EXPECT(rc_other == 0, "two objects in two threads");
  int rc = nncc_rt_forward(m, 1, 1, in, out2);
  printf("case after_return: %s\n", code_name(rc));
  EXPECT(rc == 0, "the object stays busy");
  nncc_rt_destroy(m);
  nncc_rt_destroy(other);
  return finish();
}
