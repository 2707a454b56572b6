/* stream.c - M_step / M_reset and stateful training from C (stream_errors.test), under the
 * sanitizers in the sanitizer build: M_step step by step equals M_forward's slices; a batch
 * change without M_reset, a token id out of range, NULL arrays, batch 0 and seq 0 are errors
 * with messages; stateful M_gradients chains run and M_reset restarts them exactly. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "stream.h"

enum { B = 3, T = 11, C = 3 };

static int failures;

static void expect_error(const char *what, int rc, const char *needle) {
  const char *msg = nncc_last_error();
  int ok = rc < 0 && msg && strstr(msg, needle);
  printf("%s: %s: %s\n", what, ok ? "error" : "WRONG", msg ? msg : "(no message)");
  if (!ok) failures++;
}

int main(void) {
  stream *m = stream_create();
  if (!m) return 1;
  int32_t ids[B * T], tags[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % 6, tags[i] = (i * 5 + 1) % 3;
  static float full[B * T * C];
  if (stream_forward(m, B, T, ids, full)) return printf("forward: %s\n", nncc_last_error()), 1;

  /* step by step from a reset state: each step equals the whole forward's slice */
  double worst = 0;
  stream_reset(m);
  for (int t = 0; t < T; t++) {
    int32_t x[B];
    float y[B * C];
    for (int b = 0; b < B; b++) x[b] = ids[b * T + t];
    if (stream_step(m, B, x, y)) return printf("step: %s\n", nncc_last_error()), 1;
    for (int b = 0; b < B; b++)
      for (int c = 0; c < C; c++) {
        double d = fabs((double)y[b * C + c] - full[(b * T + t) * C + c]);
        if (d > worst) worst = d;
      }
  }
  printf("step vs forward: %s\n", worst <= 1e-5 ? "same" : "DIFFERENT");
  if (worst > 1e-5) failures++;

  int32_t x2[2] = {1, 2};
  float y2[2 * C];
  expect_error("step with batch 2 after batch 3", stream_step(m, 2, x2, y2), "stream_reset");
  stream_reset(m);
  if (stream_step(m, 2, x2, y2)) failures++, printf("step after reset: %s\n", nncc_last_error());
  int32_t bad[2] = {1, 6};
  expect_error("token id 6", stream_step(m, 2, bad, y2), "outside [0, 6)");
  expect_error("NULL input", stream_step(m, 2, NULL, y2), "NULL");
  expect_error("NULL output", stream_step(m, 2, x2, NULL), "NULL");
  expect_error("batch 0", stream_step(m, 0, x2, y2), "batch must be >= 1");
  expect_error("NULL model", stream_step(NULL, 2, x2, y2), "NULL");
  expect_error("NULL model reset", stream_reset(NULL), "NULL");

  /* stateful training: a chain of calls, then the same chain after a reset gives the same
   * losses; a batch change without a reset is an error */
  float loss[2][3];
  for (int round = 0; round < 2; round++) {
    stream_reset(m);
    for (int k = 0; k < 3; k++)
      if (stream_gradients(m, B, T - 3 * k, ids, tags, &loss[round][k]))
        return printf("gradients: %s\n", nncc_last_error()), 1;
  }
  int same = 1;
  for (int k = 0; k < 3; k++) same &= loss[0][k] == loss[1][k] && isfinite(loss[0][k]);
  printf("stateful chain after reset: %s\n", same ? "same" : "DIFFERENT");
  if (!same) failures++;
  printf("stateful chain carries the state: %s\n", loss[0][1] != loss[0][0] ? "yes" : "NO");
  float l;
  expect_error("gradients with batch 2", stream_gradients(m, 2, 4, ids, tags, &l), "batch 3");
  expect_error("gradients with seq 0", stream_gradients(m, B, 0, ids, tags, &l), "seq must be >= 1");
  stream_reset(m);
  if (stream_train_step(m, 2, 4, ids, tags, &l)) failures++, printf("train_step: %s\n", nncc_last_error());
  stream_destroy(m);
  printf(failures ? "FAILED\n" : "ok\n");
  return failures != 0;
}
