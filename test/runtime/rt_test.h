/* rt_test.h - shared by the runtime's C test programs (each test/runtime/NAME.c is its own
 * executable, so the helpers are static).
 *
 * Two hand-written models stand in for generated code:
 *   dense   input x f32[3], output y f32[2]; y = W x + b with fc.weight [2, 3] (He uniform,
 *           fan_in 3) and fc.bias [2] (uniform, fan_in 3).  prepare() packs W transposed,
 *           forward reads the packed copy, so a stale pack shows in the numbers; the
 *           workspace is batch * 2 floats and every float of it is written.
 *   seqdemo input ids i32[seq] (classes 5), input w f32[seq], output emb f32[seq, 2];
 *           emb[b, t, :] = embed.weight[ids[b, t], :] * w[b, t]; embed.weight [5, 2] normal.
 *           An id outside [0, 5) fails with NNCC_ERR_RANGE, as a generated kernel does.
 * Test output: every case prints one line ("case NAME: ..." with the error code and message),
 * failed expectations print "FAIL file:line: ...", and the summary is "N checks, M failures".
 */
#ifndef RT_TEST_H
#define RT_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nncc_rt.h"

static int n_checks, n_failures;

#define EXPECT(cond, ...)                                   \
  do {                                                      \
    n_checks++;                                             \
    if (!(cond)) {                                          \
      n_failures++;                                         \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      printf(__VA_ARGS__);                                  \
      printf("\n");                                         \
    }                                                       \
  } while (0)

static inline const char *code_name(int code) {
  switch (code) {
    case NNCC_OK: return "OK";
    case NNCC_ERR_ARG: return "ERR_ARG";
    case NNCC_ERR_IO: return "ERR_IO";
    case NNCC_ERR_FORMAT: return "ERR_FORMAT";
    case NNCC_ERR_RANGE: return "ERR_RANGE";
    case NNCC_ERR_NOMEM: return "ERR_NOMEM";
    case NNCC_ERR_BUSY: return "ERR_BUSY";
    default: return "?";
  }
}

/* One error case: the code must be `code` and the message must contain `want`. */
#define EXPECT_ERR(name, rc, code, want) expect_err(__FILE__, __LINE__, name, rc, code, want)
static inline void expect_err(const char *file, int line, const char *name, int rc, int code, const char *want) {
  const char *msg = nncc_last_error();
  printf("case %s: %s: %s\n", name, code_name(rc), msg);
  n_checks++;
  if (rc != code || !strstr(msg, want)) {
    n_failures++;
    printf("FAIL %s:%d: case %s: wanted %s with \"%s\"\n", file, line, name, code_name(code), want);
  }
}

static inline int finish(void) {
  printf("%d checks, %d failures\n", n_checks, n_failures);
  return n_failures ? 1 : 0;
}

/* ---- dense ------------------------------------------------------------------------------ */

static int dense_prepare_calls;
static float *dense_last_ws;
static int64_t dense_last_ws_floats;
static int dense_forward_calls;      /* forward calls (a batch split into slices: one a slice) */
static int64_t dense_rows_seen;      /* the rows they computed */
static float *dense_ws_log[64];      /* the workspace and the rows of the first 64 calls */
static int64_t dense_rows_log[64];

static void dense_prepare(const float *params, float *packed) {
  dense_prepare_calls++;
  for (int o = 0; o < 2; o++)
    for (int i = 0; i < 3; i++) packed[i * 2 + o] = params[o * 3 + i];   /* W^T [3, 2] */
}

static int64_t dense_ws(int64_t batch, int64_t seq) {
  (void)seq;
  return batch * 2;
}

static int dense_forward_impl(const float *params, const float *packed, float *ws, int64_t batch,
                         int64_t seq, const void *const *in, void *const *out) {
  (void)seq;
  const float *x = in[0], *b = params + 6;
  float *y = out[0];
  dense_last_ws = ws;
  dense_last_ws_floats = dense_ws(batch, seq);
  if (dense_forward_calls < 64) {
    dense_ws_log[dense_forward_calls] = ws;
    dense_rows_log[dense_forward_calls] = batch;
  }
  dense_forward_calls++;
  dense_rows_seen += batch;
  if ((uintptr_t)ws % 64 || (uintptr_t)params % 64 || (uintptr_t)packed % 64)
    return nncc_rt_fail(NNCC_ERR_ARG, "dense_forward: a buffer is not 64-byte aligned");
  for (int64_t n = 0; n < batch; n++)
    for (int o = 0; o < 2; o++) {
      float s = 0;
      for (int i = 0; i < 3; i++) s += packed[i * 2 + o] * x[n * 3 + i];
      ws[n * 2 + o] = s;
    }
  for (int64_t n = 0; n < batch; n++)
    for (int o = 0; o < 2; o++) y[n * 2 + o] = ws[n * 2 + o] + b[o];
  return 0;
}

static const nncc_param_desc dense_params[] = {
  {"fc.weight", 2, NNCC_INIT_HE_UNIFORM, {2, 3}, 6, 0, 3, 2},
  {"fc.bias", 1, NNCC_INIT_UNIFORM_FAN, {2}, 2, 6, 3, 2},
};
static const nncc_tensor_desc dense_inputs[] = {{"x", NNCC_F32, 1, {3}, 0}};
static const nncc_tensor_desc dense_outputs[] = {{"y", NNCC_F32, 1, {2}, 0}};

/* the generated-code calling convention: one nncc_exec */
static int dense_forward(const nncc_exec *x) {
  return dense_forward_impl(x->params, x->packed, x->ws, x->batch, x->seq, x->in, x->out);
}

static const nncc_model_desc dense_desc = {
  NNCC_ABI_VERSION, 0, "dense", 2, 1, 0, 1, dense_params, dense_inputs, NULL, dense_outputs,
  8, 6, dense_ws, dense_prepare, dense_forward, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL,
};

/* ---- seqdemo ---------------------------------------------------------------------------- */

static int seq_forward_impl(const float *params, const float *packed, float *ws, int64_t batch,
                       int64_t seq, const void *const *in, void *const *out) {
  (void)packed;
  (void)ws;
  const int32_t *ids = in[0];
  const float *w = in[1];
  float *emb = out[0];
  for (int64_t n = 0; n < batch; n++)
    for (int64_t t = 0; t < seq; t++) {
      int32_t id = ids[n * seq + t];
      if (id < 0 || id >= 5)
        return nncc_rt_fail(NNCC_ERR_RANGE, "seqdemo_forward: token id %lld at [%lld, %lld] is "
                            "outside [0, %lld)", (long long)id, (long long)n, (long long)t, 5LL);
      for (int k = 0; k < 2; k++) emb[(n * seq + t) * 2 + k] = params[id * 2 + k] * w[n * seq + t];
    }
  return 0;
}

static const nncc_param_desc seq_params[] = {
  {"embed.weight", 2, NNCC_INIT_NORMAL, {5, 2}, 10, 0, 5, 2},
};
static const nncc_tensor_desc seq_inputs[] = {
  {"ids", NNCC_I32, 1, {-1}, 5},
  {"w", NNCC_F32, 1, {-1}, 0},
};
static const nncc_tensor_desc seq_outputs[] = {{"emb", NNCC_F32, 2, {-1, 2}, 0}};

/* the generated-code calling convention: one nncc_exec */
static int seq_forward(const nncc_exec *x) {
  return seq_forward_impl(x->params, x->packed, x->ws, x->batch, x->seq, x->in, x->out);
}

static const nncc_model_desc seq_desc = {
  NNCC_ABI_VERSION, 1, "seqdemo", 1, 2, 0, 1, seq_params, seq_inputs, NULL, seq_outputs,
  10, 0, NULL, NULL, seq_forward, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL,
};

#endif
