/* load_io_error.c - what M_load and M_load_checkpoint do when reading the weights fails after
 * the header was checked (they read the data straight from the file, with no copy of it).
 * Linked with -Wl,--wrap=pread: __wrap_pread below makes one read of the runtime fail with
 * EIO, or truncates the file just before it (a file that shrinks while being loaded).
 * Usage: load_io_error DIR (a scratch directory).  Driven by load_io_error.test, which
 * compiles Inputs/tiny_train.nn into tiny.a and tiny.h. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "tiny.h"

ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off);

static int reads;                  /* preads so far */
static int fail_at = -1;           /* the pread (counted from 1) that fails; -1: none */
static const char *shrink;         /* instead of failing it, truncate this file to its offset */

ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off) {
  if (++reads == fail_at) {
    if (!shrink) {
      errno = EIO;
      return -1;
    }
    if (truncate(shrink, off) != 0) perror("truncate");
  }
  return __real_pread(fd, buf, n, off);
}

static int n_checks, n_failures;
#define EXPECT(cond, what)                                              \
  do {                                                                  \
    n_checks++;                                                         \
    if (!(cond)) {                                                      \
      n_failures++;                                                     \
      printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #cond, what); \
    }                                                                   \
  } while (0)

static char path_w[4096], path_ck[4096];
static const char *const names[] = {"h.0.weight", "h.0.bias", "logits.weight", "logits.bias"};
enum { N_FLOATS = 32 + 8 + 24 + 3 };

/* every parameter, in names' order */
static void params_of(tiny *m, float *out) {
  for (int i = 0, at = 0; i < 4; i++) {
    int64_t n = 0;
    float *p = tiny_param(m, names[i], &n);
    memcpy(out + at, p, (size_t)n * sizeof(float));
    at += (int)n;
  }
}

static void report(const char *name, int rc) {
  printf("case %s: rc %d: %s\n", name, rc, rc ? nncc_last_error() : "ok");
}

/* a load through the wrapper, failing at pread `at` (-1: none), shrinking `file` if given */
static int load_failing(tiny *m, int checkpoint, const char *path, int at, const char *file) {
  reads = 0;
  fail_at = at;
  shrink = file;
  int rc = checkpoint ? tiny_load_checkpoint(m, path) : tiny_load(m, path);
  fail_at = -1;
  shrink = NULL;
  return rc;
}

static int forward(tiny *m) {
  float x[4] = {0.5f, -1, 0.25f, 2}, y[3];
  return tiny_forward(m, 1, x, y);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: load_io_error DIR\n");
    return 2;
  }
  snprintf(path_w, sizeof path_w, "%s/w.safetensors", argv[1]);
  snprintf(path_ck, sizeof path_ck, "%s/ck.safetensors", argv[1]);
  tiny *a = tiny_create(), *b = tiny_create();
  float pa[N_FLOATS], pb[N_FLOATS], before[N_FLOATS];
  tiny_init(a, 1);
  tiny_init(b, 2);
  params_of(a, pa);
  EXPECT(tiny_save(a, path_w) == 0, "save");

  /* a good load: the header (its length, then the JSON), then one read per F32 tensor */
  int rc = load_failing(b, 0, path_w, -1, NULL);
  params_of(b, pb);
  printf("case load_ok: rc %d, %d reads\n", rc, reads);
  EXPECT(rc == 0 && memcmp(pa, pb, sizeof pa) == 0, "the loaded parameters are the saved ones");

  /* the header's read fails: nothing was written, the model works on */
  tiny_init(b, 2);
  params_of(b, before);
  rc = load_failing(b, 0, path_w, 2, NULL);
  report("header_read_fails", rc);
  params_of(b, pb);
  EXPECT(rc == NNCC_ERR_IO && memcmp(before, pb, sizeof pb) == 0, "the parameters are unchanged");
  EXPECT(forward(b) == 0, "the model is still usable");

  /* the second tensor's read fails: the first tensor is new, the others old, and every call
   * that uses the parameters says so until init or a load succeeds */
  rc = load_failing(b, 0, path_w, 4, NULL);
  report("tensor_read_fails", rc);
  EXPECT(rc == NNCC_ERR_IO, "an I/O error");
  params_of(b, pb);
  EXPECT(memcmp(pb, pa, 32 * sizeof(float)) == 0 && memcmp(pb + 32, before + 32, 35 * sizeof(float)) == 0,
         "h.0.weight is new, the rest is as before");
  rc = forward(b);
  report("forward_after_torn_load", rc);
  EXPECT(rc == NNCC_ERR_IO, "forward refuses");
  float loss;
  float x[4] = {0};
  int32_t y[1] = {0};
  rc = tiny_train_step(b, 1, x, y, &loss);
  report("train_step_after_torn_load", rc);
  EXPECT(rc == NNCC_ERR_IO, "train_step refuses");
  rc = tiny_save(b, path_ck);
  report("save_after_torn_load", rc);
  EXPECT(rc == NNCC_ERR_IO && access(path_ck, F_OK) != 0, "save refuses and writes nothing");
  EXPECT(tiny_save_checkpoint(b, path_ck) == NNCC_ERR_IO, "save_checkpoint refuses");
  EXPECT(tiny_init(b, 2) == 0 && forward(b) == 0, "init makes the model usable again");

  /* the file shrinks between the checks and the data: a short read, the same state */
  char copy[4200];
  snprintf(copy, sizeof copy, "%s.shrinks", path_w);
  EXPECT(tiny_save(a, copy) == 0, "save a copy");
  rc = load_failing(b, 0, copy, 5, copy);
  report("file_shrinks", rc);
  EXPECT(rc == NNCC_ERR_IO && forward(b) == NNCC_ERR_IO, "a short read tears the parameters too");
  rc = load_failing(b, 0, path_w, -1, NULL);
  params_of(b, pb);
  EXPECT(rc == 0 && forward(b) == 0 && memcmp(pa, pb, sizeof pa) == 0, "a good load makes it usable again");
  /* truncated before the load: caught by the checks, nothing written */
  tiny_init(b, 2);
  params_of(b, before);
  rc = tiny_load(b, copy);
  report("file_shrunk_before", rc);
  params_of(b, pb);
  EXPECT(rc == NNCC_ERR_FORMAT && memcmp(before, pb, sizeof pb) == 0 && forward(b) == 0,
         "the parameters are unchanged");

  /* a checkpoint is read into a buffer of its own: a read error midway changes nothing */
  EXPECT(tiny_train_step(a, 1, x, y, &loss) == 0, "a step, so the checkpoint has state");
  EXPECT(tiny_save_checkpoint(a, path_ck) == 0, "save_checkpoint");
  params_of(a, pa);
  rc = load_failing(b, 1, path_ck, 5, NULL);
  report("checkpoint_read_fails", rc);
  params_of(b, pb);
  EXPECT(rc == NNCC_ERR_IO && memcmp(before, pb, sizeof pb) == 0 && forward(b) == 0,
         "the model is unchanged and usable");
  rc = load_failing(b, 1, path_ck, -1, NULL);
  params_of(b, pb);
  EXPECT(rc == 0 && memcmp(pa, pb, sizeof pa) == 0, "the checkpoint then loads");

  tiny_destroy(a);
  tiny_destroy(b);
  printf("%d checks, %d failures\n", n_checks, n_failures);
  return n_failures ? 1 : 0;
}
