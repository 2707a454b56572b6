/* rt_api_test.c - tests the runtime's model API without files: the error slot, create,
 * deterministic initialisation by kind, nncc_rt_param, forward's argument checks, packing
 * and the workspace, batch slices.  Driven by rt_api.test (which checks every message). */
#define _POSIX_C_SOURCE 200809L   /* setenv */
#include <math.h>
#include <pthread.h>

#include "rt_test.h"

/* ---- the error slot --------------------------------------------------------------------- */

static void *thread_fail(void *arg) {
  (void)arg;
  nncc_rt_fail(NNCC_ERR_IO, "set by another thread");
  return (void *)(intptr_t)(strcmp(nncc_last_error(), "set by another thread") == 0);
}

static void test_error_slot(void) {
  EXPECT(strcmp(nncc_last_error(), "") == 0, "the slot starts empty, got '%s'", nncc_last_error());
  int rc = nncc_rt_fail(NNCC_ERR_RANGE, "token id %lld at [%lld, %lld] is outside [0, %lld)",
                        (long long)7, (long long)1, (long long)2, (long long)5);
  EXPECT_ERR("fail_formats_four_int64", rc, NNCC_ERR_RANGE, "token id 7 at [1, 2] is outside [0, 5)");
  /* thread-local: another thread's failure does not touch this thread's message */
  pthread_t th;
  void *ok = NULL;
  pthread_create(&th, NULL, thread_fail, NULL);
  pthread_join(th, &ok);
  EXPECT(ok != NULL, "the other thread saw its own message");
  EXPECT(strcmp(nncc_last_error(), "token id 7 at [1, 2] is outside [0, 5)") == 0,
         "this thread's message is unchanged: '%s'", nncc_last_error());
  /* a message longer than the slot is truncated, not overflowed */
  char big[5000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  rc = nncc_rt_fail(NNCC_ERR_ARG, "%s", big);
  EXPECT(rc == NNCC_ERR_ARG && strlen(nncc_last_error()) > 100 && strlen(nncc_last_error()) < 5000,
         "long message truncated to %zu", strlen(nncc_last_error()));
}

/* ---- create ----------------------------------------------------------------------------- */

static void test_create(void) {
  nncc_model *m = nncc_rt_create(NULL);
  EXPECT_ERR("create_null_desc", m ? 0 : NNCC_ERR_ARG, NNCC_ERR_ARG, "the model description is NULL");

  nncc_model_desc d = dense_desc;
  d.abi_version = 99;
  m = nncc_rt_create(&d);
  EXPECT_ERR("create_wrong_abi", m ? 0 : NNCC_ERR_ARG, NNCC_ERR_ARG,
             "dense: compiled for runtime ABI version 99, this runtime is version 3");

  d = dense_desc;
  d.forward = NULL;
  m = nncc_rt_create(&d);
  EXPECT_ERR("create_no_forward", m ? 0 : NNCC_ERR_ARG, NNCC_ERR_ARG,
             "dense: the model description is inconsistent");

  d = dense_desc;
  d.prepare = NULL;   /* packed floats but nothing fills them */
  m = nncc_rt_create(&d);
  EXPECT_ERR("create_packed_without_prepare", m ? 0 : NNCC_ERR_ARG, NNCC_ERR_ARG,
             "dense: the model description is inconsistent");

  /* embedded parameters are copied in */
  static const float embedded[8] = {1, 2, 3, 4, 5, 6, 0.5f, -0.5f};
  d = dense_desc;
  d.embedded_params = embedded;
  m = nncc_rt_create(&d);
  EXPECT(m != NULL, "create with embedded params: %s", nncc_last_error());
  int64_t n = 0;
  float *w = nncc_rt_param(m, "fc.weight", &n);
  float *b = nncc_rt_param(m, "fc.bias", &n);
  EXPECT(w && b && memcmp(w, embedded, 6 * 4) == 0 && memcmp(b, embedded + 6, 2 * 4) == 0,
         "embedded params are the model's params");
  float x[3] = {1, 1, 1}, y[2];
  const void *in[1] = {x};
  void *out[1] = {y};
  EXPECT(nncc_rt_forward(m, 1, 0, in, out) == 0, "%s", nncc_last_error());
  EXPECT(y[0] == 6.5f && y[1] == 14.5f, "embedded forward: %g %g", y[0], y[1]);
  nncc_rt_destroy(m);
  nncc_rt_destroy(NULL);   /* allowed */
}

/* ---- initialisation --------------------------------------------------------------------- */

static void test_init_determinism(void) {
  nncc_model *a = nncc_rt_create(&dense_desc), *b = nncc_rt_create(&dense_desc);
  float *pa = nncc_rt_param(a, "fc.weight", NULL), *pb = nncc_rt_param(b, "fc.weight", NULL);
  EXPECT(memcmp(pa, pb, 8 * 4) == 0, "two fresh models (seed 0) are identical");
  nncc_rt_init(a, 0);
  EXPECT(memcmp(pa, pb, 8 * 4) == 0, "create's default is init(seed 0)");
  nncc_rt_init(a, 42);
  nncc_rt_init(b, 42);
  EXPECT(memcmp(pa, pb, 8 * 4) == 0, "same seed, same values");
  nncc_rt_init(b, 43);
  EXPECT(memcmp(pa, pb, 6 * 4) != 0, "different seed, different weights");
  EXPECT(memcmp(pa + 6, pb + 6, 2 * 4) != 0, "different seed, different biases");
  int distinct = 1;
  for (int i = 0; i < 6; i++) {
    EXPECT(fabsf(pa[i]) <= sqrtf(6.0f / 3) && pa[i] != 0, "he_uniform weight %d = %g", i, pa[i]);
    for (int k = 0; k < i; k++) distinct &= pa[i] != pa[k];
  }
  EXPECT(distinct, "the six weights differ from each other");
  for (int i = 6; i < 8; i++) EXPECT(fabsf(pa[i]) <= 1 / sqrtf(2.0f), "uniform_fan bias = %g", pa[i]);
  printf("case init_seed_42: fc.weight[0] = %.9g, fc.bias[0] = %.9g\n", pa[0], pa[6]);
  nncc_rt_destroy(a);
  nncc_rt_destroy(b);
}

static int stub_forward_impl(const float *p, const float *k, float *ws, int64_t b, int64_t s,
                        const void *const *in, void *const *out) {
  (void)p, (void)k, (void)ws, (void)b, (void)s, (void)in, (void)out;
  return 0;
}

enum { BIG = 200001 };
static const nncc_param_desc kind_params[] = {
  {"zero", 1, NNCC_INIT_ZERO, {1000}, 1000, 0, 1, 1},
  {"he", 1, NNCC_INIT_HE_UNIFORM, {BIG}, BIG, 1000, 50, 7},
  {"fan", 1, NNCC_INIT_UNIFORM_FAN, {BIG}, BIG, 1000 + BIG, 7, 16},
  {"normal", 1, NNCC_INIT_NORMAL, {BIG}, BIG, 1000 + 2 * BIG, 1, 1},
};
/* the generated-code calling convention: one nncc_exec */
static int stub_forward(const nncc_exec *x) {
  return stub_forward_impl(x->params, x->packed, x->ws, x->batch, x->seq, x->in, x->out);
}

static const nncc_model_desc kind_desc = {
  NNCC_ABI_VERSION, 0, "kinds", 4, 0, 0, 0, kind_params, NULL, NULL, NULL,
  1000 + 3 * BIG, 0, NULL, NULL, stub_forward, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL,
};

static void stats(const float *x, int64_t n, double *mean, double *var, double *lo, double *hi) {
  double s = 0, s2 = 0;
  *lo = INFINITY, *hi = -INFINITY;
  for (int64_t i = 0; i < n; i++) {
    s += x[i];
    s2 += (double)x[i] * x[i];
    if (x[i] < *lo) *lo = x[i];
    if (x[i] > *hi) *hi = x[i];
  }
  *mean = s / (double)n;
  *var = s2 / (double)n - *mean * *mean;
}

static void test_init_kinds(void) {
  nncc_model *m = nncc_rt_create(&kind_desc);
  EXPECT(m != NULL, "%s", nncc_last_error());
  nncc_rt_init(m, 5);
  double mean, var, lo, hi;
  int64_t n;
  float *z = nncc_rt_param(m, "zero", &n);
  stats(z, n, &mean, &var, &lo, &hi);
  EXPECT(lo == 0 && hi == 0, "zero init: [%g, %g]", lo, hi);

  double b = sqrt(6.0 / 50);   /* He uniform: sqrt(6 / fan_in) */
  stats(nncc_rt_param(m, "he", &n), n, &mean, &var, &lo, &hi);
  printf("case init_he_uniform: bound %.4f, min %.4f, max %.4f, var/(b^2/3) %.3f\n", b, lo, hi, var / (b * b / 3));
  EXPECT(lo >= -b && hi <= b && lo < -0.99 * b && hi > 0.99 * b, "he range [%g, %g] vs %g", lo, hi, b);
  EXPECT(fabs(mean) < 0.01 * b && fabs(var / (b * b / 3) - 1) < 0.02, "he mean %g var %g", mean, var);

  b = 1.0 / sqrt(7.0);    /* 1 / sqrt(fan_in): the hidden size, for recurrent layers */
  stats(nncc_rt_param(m, "fan", &n), n, &mean, &var, &lo, &hi);
  printf("case init_uniform_fan: bound %.4f, min %.4f, max %.4f, var/(b^2/3) %.3f\n", b, lo, hi, var / (b * b / 3));
  EXPECT(lo >= -b && hi <= b && lo < -0.99 * b && hi > 0.99 * b, "fan range [%g, %g] vs %g", lo, hi, b);
  EXPECT(fabs(mean) < 0.01 * b && fabs(var / (b * b / 3) - 1) < 0.02, "fan mean %g var %g", mean, var);

  float *nrm = nncc_rt_param(m, "normal", &n);
  stats(nrm, n, &mean, &var, &lo, &hi);
  int64_t within1 = 0;
  for (int64_t i = 0; i < n; i++) within1 += fabsf(nrm[i]) < 1;
  printf("case init_normal: mean %.3f, var %.3f, P(|x|<1) %.3f\n", mean, var, (double)within1 / (double)n);
  EXPECT(fabs(mean) < 0.01 && fabs(var - 1) < 0.02, "normal mean %g var %g", mean, var);
  EXPECT(fabs((double)within1 / (double)n - 0.6827) < 0.01, "normal P(|x|<1) = %g", (double)within1 / (double)n);
  EXPECT(isfinite(lo) && isfinite(hi) && nrm[n - 1] != 0, "normal: finite, odd last element set");

  /* per-parameter streams: "fan" and "he" do not share values */
  float *he = nncc_rt_param(m, "he", NULL), *fan = nncc_rt_param(m, "fan", NULL);
  EXPECT(fabsf(he[0] / (float)sqrt(6.0 / 50) - fan[0] / 0.25f) > 1e-6f, "distinct streams per parameter");
  nncc_rt_destroy(m);
}

/* ---- params ----------------------------------------------------------------------------- */

static void test_param(void) {
  nncc_model *m = nncc_rt_create(&dense_desc);
  int64_t n = -1;
  float *w = nncc_rt_param(m, "fc.weight", &n);
  EXPECT(w != NULL && n == 6, "fc.weight: %p, numel %lld", (void *)w, (long long)n);
  EXPECT(((uintptr_t)w % 64) == 0, "params are 64-byte aligned");
  float *b = nncc_rt_param(m, "fc.bias", &n);
  EXPECT(b == w + 6 && n == 2, "fc.bias at offset 6, numel %lld", (long long)n);
  EXPECT(nncc_rt_param(m, "fc.bias", NULL) == b, "numel may be NULL");
  n = 99;
  float *p = nncc_rt_param(m, "fc.nope", &n);
  EXPECT_ERR("param_unknown_name", p ? 0 : NNCC_ERR_ARG, NNCC_ERR_ARG,
             "dense_param: the model has no parameter 'fc.nope'");
  EXPECT(n == 0, "numel is 0 for an unknown name");
  p = nncc_rt_param(m, NULL, &n);
  EXPECT_ERR("param_null_name", p ? 0 : NNCC_ERR_ARG, NNCC_ERR_ARG, "dense_param: the name is NULL");
  p = nncc_rt_param(NULL, "fc.weight", &n);
  EXPECT_ERR("param_null_model", p ? 0 : NNCC_ERR_ARG, NNCC_ERR_ARG, "nncc_rt_param: the model is NULL");
  EXPECT_ERR("init_null_model", nncc_rt_init(NULL, 1), NNCC_ERR_ARG, "nncc_rt_init: the model is NULL");
  EXPECT_ERR("load_null_model", nncc_rt_load(NULL, "x"), NNCC_ERR_ARG, "nncc_rt_load: the model is NULL");
  EXPECT_ERR("load_null_path", nncc_rt_load(m, NULL), NNCC_ERR_ARG, "dense_load: the path is NULL");
  EXPECT_ERR("save_null_model", nncc_rt_save(NULL, "x"), NNCC_ERR_ARG, "nncc_rt_save: the model is NULL");
  EXPECT_ERR("save_null_path", nncc_rt_save(m, NULL), NNCC_ERR_ARG, "dense_save: the path is NULL");
  nncc_rt_destroy(m);
}

/* ---- forward ---------------------------------------------------------------------------- */

static void test_forward(void) {
  nncc_model *m = nncc_rt_create(&dense_desc);
  float *w = nncc_rt_param(m, "fc.weight", NULL), *b = nncc_rt_param(m, "fc.bias", NULL);
  static const float W[6] = {1, 2, 3, -1, 0.5f, 2}, B[2] = {0.25f, -1};
  memcpy(w, W, sizeof W);
  memcpy(b, B, sizeof B);
  float x[9] = {1, 0, 0, 0, 1, 0, 1, 2, 3}, y[6];
  const void *in[1] = {x};
  void *out[1] = {y};
  int before = dense_prepare_calls;
  EXPECT(nncc_rt_forward(m, 3, 0, in, out) == 0, "forward: %s", nncc_last_error());
  static const float want[6] = {1.25f, -2, 2.25f, -0.5f, 14.25f, 5};
  EXPECT(memcmp(y, want, sizeof want) == 0, "y = %g %g %g %g %g %g", y[0], y[1], y[2], y[3], y[4], y[5]);
  EXPECT(dense_prepare_calls == before + 1, "prepare ran once");
  /* a parameter pointer was handed out: the caller may write through it at any time, so
   * every call re-packs (a kept pointer's writes take effect at the next call) */
  nncc_rt_forward(m, 3, 0, in, out);
  EXPECT(dense_prepare_calls == before + 2, "an exposed model re-packs at every call");
  w[0] = 10;   /* the pointer kept from before the first forward */
  nncc_rt_forward(m, 3, 0, in, out);
  EXPECT(dense_prepare_calls == before + 3 && y[0] == 10.25f, "after a write: prepare %d, y[0] = %g",
         dense_prepare_calls - before, y[0]);

  /* a model whose parameters were never handed out packs once, and again after init */
  nncc_model *q = nncc_rt_create(&dense_desc);
  int q0 = dense_prepare_calls;
  nncc_rt_forward(q, 3, 0, in, out);
  nncc_rt_forward(q, 3, 0, in, out);
  EXPECT(dense_prepare_calls == q0 + 1, "prepare does not run again while params are unchanged");
  nncc_rt_init(q, 3);
  nncc_rt_forward(q, 3, 0, in, out);
  EXPECT(dense_prepare_calls == q0 + 2, "init marks the pack dirty");
  nncc_rt_destroy(q);

  /* the workspace: allocated for batch 4, reused for 2 and 4, grown for 8 */
  float x8[24] = {0}, y8[16];
  const void *in8[1] = {x8};
  void *out8[1] = {y8};
  nncc_rt_forward(m, 4, 0, in8, out8);
  float *ws4 = dense_last_ws;
  nncc_rt_forward(m, 2, 0, in8, out8);
  EXPECT(dense_last_ws == ws4, "batch 2 after batch 4 reuses the workspace");
  nncc_rt_forward(m, 4, 0, in8, out8);
  EXPECT(dense_last_ws == ws4, "batch 4 again reuses the workspace");
  EXPECT(nncc_rt_forward(m, 8, 0, in8, out8) == 0 && dense_last_ws_floats == 16,
         "batch 8 grows it: %s", nncc_last_error());
  float *ws8 = dense_last_ws;
  nncc_rt_forward(m, 1, 0, in8, out8);
  EXPECT(dense_last_ws == ws8, "batch 1 after batch 8 reuses the grown workspace");

  /* bad arguments: a code, a message, no crash */
  const void *in_null[1] = {NULL};
  void *out_null[1] = {NULL};
  EXPECT_ERR("forward_null_model", nncc_rt_forward(NULL, 1, 0, in, out), NNCC_ERR_ARG,
             "nncc_rt_forward: the model is NULL");
  EXPECT_ERR("forward_batch_0", nncc_rt_forward(m, 0, 0, in, out), NNCC_ERR_ARG,
             "dense_forward: batch must be >= 1, got 0");
  EXPECT_ERR("forward_batch_negative", nncc_rt_forward(m, -5, 0, in, out), NNCC_ERR_ARG,
             "dense_forward: batch must be >= 1, got -5");
  EXPECT_ERR("forward_null_input_array", nncc_rt_forward(m, 1, 0, NULL, out), NNCC_ERR_ARG,
             "dense_forward: the input array is NULL");
  EXPECT_ERR("forward_null_output_array", nncc_rt_forward(m, 1, 0, in, NULL), NNCC_ERR_ARG,
             "dense_forward: the output array is NULL");
  EXPECT_ERR("forward_null_input", nncc_rt_forward(m, 1, 0, in_null, out), NNCC_ERR_ARG,
             "dense_forward: input 'x' is NULL");
  EXPECT_ERR("forward_null_output", nncc_rt_forward(m, 1, 0, in, out_null), NNCC_ERR_ARG,
             "dense_forward: output 'y' is NULL");
  EXPECT_ERR("forward_batch_overflow", nncc_rt_forward(m, INT64_MAX / 2, 0, in, out), NNCC_ERR_ARG,
             "dense_forward: input 'x' would have more elements than fit in memory");
  nncc_rt_destroy(m);
}

static void test_forward_seq(void) {
  nncc_model *m = nncc_rt_create(&seq_desc);
  int32_t ids[6] = {0, 1, 2, 3, 4, 0};
  float w[6] = {1, 1, 1, 2, 2, 2}, emb[12];
  const void *in[2] = {ids, w};
  void *out[1] = {emb};
  float *table = nncc_rt_param(m, "embed.weight", NULL);
  EXPECT(nncc_rt_forward(m, 2, 3, in, out) == 0, "%s", nncc_last_error());
  EXPECT(emb[6] == 2 * table[6] && emb[11] == 2 * table[1], "emb = table[ids] * w");
  EXPECT_ERR("forward_seq_0", nncc_rt_forward(m, 2, 0, in, out), NNCC_ERR_ARG,
             "seqdemo_forward: seq must be >= 1, got 0");
  EXPECT_ERR("forward_seq_negative", nncc_rt_forward(m, 1, -3, in, out), NNCC_ERR_ARG,
             "seqdemo_forward: seq must be >= 1, got -3");
  EXPECT_ERR("forward_seq_overflow", nncc_rt_forward(m, 1 << 20, INT64_MAX / 1000, in, out),
             NNCC_ERR_ARG, "seqdemo_forward: input 'ids' would have more elements than fit in memory");
  const void *in_null[2] = {ids, NULL};
  EXPECT_ERR("forward_second_input_null", nncc_rt_forward(m, 2, 3, in_null, out), NNCC_ERR_ARG,
             "seqdemo_forward: input 'w' is NULL");
  ids[4] = 9;
  EXPECT_ERR("forward_kernel_range_error", nncc_rt_forward(m, 2, 3, in, out), NNCC_ERR_RANGE,
             "seqdemo_forward: token id 9 at [1, 1] is outside [0, 5)");
  nncc_rt_destroy(m);
}

/* NNCC_BATCH_SLICES=n splits a forward call's batch into n slices (runtime/model.c, "batch
 * slices"), each a call of its own on its rows with its own workspace: the same outputs; a
 * failing slice's message still counts rows from the batch's first. */
static void test_slices(void) {
  setenv("NNCC_BATCH_SLICES", "3", 1);
  nncc_model *m = nncc_rt_create(&dense_desc);
  float x[24], y1[16], y3[16];
  for (int i = 0; i < 24; i++) x[i] = (float)i / 7;
  const void *in[1] = {x};
  void *out1[1] = {y1}, *out3[1] = {y3};
  setenv("NNCC_BATCH_SLICES", "1", 1);
  int calls = dense_forward_calls;
  EXPECT(nncc_rt_forward(m, 8, 0, in, out1) == 0 && dense_forward_calls == calls + 1,
         "one slice: one call");
  setenv("NNCC_BATCH_SLICES", "3", 1);
  calls = dense_forward_calls;
  int64_t rows = dense_rows_seen;
  EXPECT(nncc_rt_forward(m, 8, 0, in, out3) == 0, "%s", nncc_last_error());
  EXPECT(dense_forward_calls == calls + 3 && dense_rows_seen == rows + 8,
         "3 slices of a batch of 8: %d calls, %lld rows", dense_forward_calls - calls,
         (long long)(dense_rows_seen - rows));
  EXPECT(memcmp(y1, y3, sizeof y1) == 0, "3 slices give the outputs of one");
  nncc_rt_destroy(m);

  m = nncc_rt_create(&seq_desc);
  int32_t ids[6] = {0, 1, 2, 3, 9, 0};
  float w[6] = {1, 1, 1, 2, 2, 2}, emb[12];
  const void *sin[2] = {ids, w};
  void *sout[1] = {emb};
  setenv("NNCC_BATCH_SLICES", "2", 1);
  EXPECT_ERR("forward_sliced_range_error", nncc_rt_forward(m, 2, 3, sin, sout), NNCC_ERR_RANGE,
             "seqdemo_forward: token id 9 at [1, 1] is outside [0, 5)");
  nncc_rt_destroy(m);
  unsetenv("NNCC_BATCH_SLICES");
}

/* A batch whose workspace outgrows the cache (NNCC_CACHE_BYTES, read by create) runs as
 * slices one after the other in one workspace, each doing at least 3 times the parameters'
 * work (runtime/model.c, slice_plan): dense's 2 floats a row against 8 parameters, a cache of
 * 16 floats, a batch of 48 on one thread: 4 slices of 12 rows, the same workspace each, the
 * outputs of one call. */
static void test_cache_slices(void) {
  int threads = nncc_get_num_threads();
  nncc_set_num_threads(1);
  setenv("NNCC_CACHE_BYTES", "64", 1);
  nncc_model *m = nncc_rt_create(&dense_desc);
  float x[48 * 3], y1[48 * 2], y4[48 * 2];
  for (int i = 0; i < 48 * 3; i++) x[i] = (float)(i % 11) / 5 - 1;
  const void *in[1] = {x};
  void *out1[1] = {y1}, *out4[1] = {y4};
  setenv("NNCC_BATCH_SLICES", "1", 1);
  EXPECT(nncc_rt_forward(m, 48, 0, in, out1) == 0, "%s", nncc_last_error());
  unsetenv("NNCC_BATCH_SLICES");
  int calls = dense_forward_calls;
  EXPECT(nncc_rt_forward(m, 48, 0, in, out4) == 0, "%s", nncc_last_error());
  EXPECT(dense_forward_calls == calls + 4, "cache slices: %d calls", dense_forward_calls - calls);
  for (int k = calls; k < dense_forward_calls && k < 64; k++)
    EXPECT(dense_rows_log[k] == 12 && dense_ws_log[k] == dense_ws_log[calls],
           "slice %d: %lld rows, workspace %+td floats from the first's", k - calls,
           (long long)dense_rows_log[k], dense_ws_log[k] - dense_ws_log[calls]);
  EXPECT(memcmp(y1, y4, sizeof y1) == 0, "4 cache slices give the outputs of one");
  nncc_rt_destroy(m);
  /* a cache that holds the batch's workspace: one call */
  setenv("NNCC_CACHE_BYTES", "1024", 1);
  m = nncc_rt_create(&dense_desc);
  calls = dense_forward_calls;
  EXPECT(nncc_rt_forward(m, 48, 0, in, out4) == 0 && dense_forward_calls == calls + 1,
         "a batch that fits the cache: %d calls", dense_forward_calls - calls);
  nncc_rt_destroy(m);
  unsetenv("NNCC_CACHE_BYTES");
  nncc_set_num_threads(threads);
}

int main(void) {
  test_error_slot();
  test_create();
  test_init_determinism();
  test_init_kinds();
  test_param();
  test_forward();
  test_forward_seq();
  test_slices();
  test_cache_slices();
  return finish();
}
