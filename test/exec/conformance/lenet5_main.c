/* lenet5_main.c - a C program that links against lenet5.so through the generated lenet5.h.
 *
 * The shared-library acceptance test of run.py (case shared_lenet5_*):
 *
 *   nncc lenet5.nn -o lenet5.so                       # writes lenet5.so and lenet5.h
 *   cc -std=c11 -Wall -Wextra -Werror -I DIR lenet5_main.c DIR/lenet5.so -Wl,-rpath,DIR
 *
 *   lenet5_main run WEIGHTS IN.raw BATCH OUT.raw NOUT
 *       lenet5_create, lenet5_load(WEIGHTS), lenet5_forward on BATCH images read from IN.raw
 *       (raw little-endian float32, [BATCH, 1, 32, 32]), writes the NOUT = BATCH*10 logits to
 *       OUT.raw.  Exit 0, or 1 with nncc_last_error() on stderr.
 *   lenet5_main errors WEIGHTS
 *       the contract of docs/c-api.md ("Errors") for bad arguments: each must return a negative
 *       code with a non-empty nncc_last_error(), and never crash.  Exit 0 when all do, 1
 *       (naming the first that did not) otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lenet5.h"

static int fail(const char *what) {
  const char *e = nncc_last_error();
  fprintf(stderr, "%s failed: %s\n", what, e ? e : "(nncc_last_error() is NULL)");
  return 1;
}

static int run(const char *weights, const char *in_path, long batch, const char *out_path,
               long n_out) {
  size_t n_in = (size_t)batch * 32 * 32;
  float *in = malloc(n_in * sizeof *in);
  float *out = malloc((size_t)n_out * sizeof *out);
  if (!in || !out) return fprintf(stderr, "out of memory\n"), 1;
  FILE *f = fopen(in_path, "rb");
  if (!f || fread(in, sizeof *in, n_in, f) != n_in) {
    fprintf(stderr, "cannot read %zu floats from %s\n", n_in, in_path);
    return 1;
  }
  fclose(f);
  for (long i = 0; i < n_out; i++) out[i] = -12345.0f; /* shows outputs never written */

  lenet5 *m = lenet5_create();
  if (!m) return fail("lenet5_create");
  if (lenet5_load(m, weights) != 0) return fail("lenet5_load");
  if (lenet5_forward(m, (int64_t)batch, in, out) != 0) return fail("lenet5_forward");
  /* A second call must give the same numbers (no state left behind). */
  float *again = malloc((size_t)n_out * sizeof *again);
  if (!again) return fprintf(stderr, "out of memory\n"), 1;
  if (lenet5_forward(m, (int64_t)batch, in, again) != 0) return fail("lenet5_forward (2nd)");
  if (memcmp(out, again, (size_t)n_out * sizeof *out) != 0) {
    fprintf(stderr, "a second lenet5_forward on the same input gave different outputs\n");
    return 1;
  }
  lenet5_destroy(m);

  f = fopen(out_path, "wb");
  if (!f || fwrite(out, sizeof *out, (size_t)n_out, f) != (size_t)n_out || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", out_path);
    return 1;
  }
  free(in);
  free(out);
  free(again);
  return 0;
}

static int expect_error(int rc, const char *what) {
  if (rc >= 0) {
    fprintf(stderr, "%s: returned %d, expected a negative error code\n", what, rc);
    return 1;
  }
  const char *e = nncc_last_error();
  if (!e || !*e) {
    fprintf(stderr, "%s: returned %d but nncc_last_error() is empty\n", what, rc);
    return 1;
  }
  printf("%s -> %d: %s\n", what, rc, e);
  return 0;
}

static int errors(const char *weights) {
  static float in[2 * 32 * 32], out[2 * 10];
  lenet5 *m = lenet5_create();
  if (!m) return fail("lenet5_create");
  int bad = 0;
  bad |= expect_error(lenet5_load(m, "/nonexistent/weights.safetensors"), "load of a missing file");
  bad |= expect_error(lenet5_load(m, NULL), "load(NULL)");
  if (lenet5_load(m, weights) != 0) return fail("lenet5_load");
  bad |= expect_error(lenet5_forward(m, 0, in, out), "forward with batch 0");
  bad |= expect_error(lenet5_forward(m, -3, in, out), "forward with batch -3");
  bad |= expect_error(lenet5_forward(m, 1, NULL, out), "forward with a NULL input");
  bad |= expect_error(lenet5_forward(m, 1, in, NULL), "forward with a NULL output");
  if (lenet5_forward(m, 2, in, out) != 0) return fail("lenet5_forward after errors");
  lenet5_destroy(m);
  lenet5_destroy(NULL); /* like free(NULL) */
  return bad;
}

int main(int argc, char **argv) {
  if (argc == 7 && strcmp(argv[1], "run") == 0)
    return run(argv[2], argv[3], atol(argv[4]), argv[5], atol(argv[6]));
  if (argc == 3 && strcmp(argv[1], "errors") == 0) return errors(argv[2]);
  fprintf(stderr, "usage: lenet5_main run WEIGHTS IN.raw BATCH OUT.raw NOUT | errors WEIGHTS\n");
  return 2;
}
