/* standalone.c - the main() of a standalone model executable (`nncc model.nn -o model`).
 *
 *   ./model [--weights W.safetensors | --seed S] --input NAME=X.npy ... [--output NAME=Y.npy ...]
 *   ./model --bench N [--input ... | --batch B --seq S]   (after max(1, min(N/10, 10)) warm-ups)
 *   ./model --help
 *   ./model train ...   (runtime/trainer.c)
 *
 * The batch (and seq) come from the input arrays: input i must be [batch, ...dims_i] with
 * every -1 dim (the symbolic length) taking the file's value; all inputs must agree on both.
 * Every input is required; with --bench and no --input, all-zero inputs (token id 0) of
 * --batch B (default 1) and --seq S (default 1) are used.  Without --output, each output's
 * shape and first values are printed (unless benchmarking).
 *
 * Exit status: 0 success, 1 a run-time error (a bad file, a failing kernel: the message of
 * nncc_last_error() or of the check, prefixed with the program name), 2 a usage error.
 * Everything allocated is freed on every path (the tests run under LeakSanitizer).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "npy.h"
#include "rt_internal.h"
#include "trainer.h"

#define PRINT_VALUES 8   /* values shown per output without --output */
#define NNCC_MAX_BENCH 100000000LL   /* --bench: at most 1e8 runs (800 MB of timings) */
#define NNCC_MAX_DIM (1LL << 40)     /* --batch, --seq: beyond, no array fits in memory */

typedef struct Run {
  const char *prog;
  const nncc_model_desc *d;
  const char **in_path;   /* [n_inputs], NULL when not given */
  const char **out_path;  /* [n_outputs] */
  nncc_npy *in;           /* [n_inputs] */
  void **out;             /* [n_outputs] */
} Run;

static int complain(const Run *r, int status, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", r->prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (status == 2) fprintf(stderr, "run '%s --help' for usage\n", r->prog);
  return status;
}

static const char *dtype_name(int32_t dt) { return dt == NNCC_F32 ? "f32" : dt == NNCC_I32 ? "i32" : "label"; }

/* "[batch, 3, seq]" */
static void fmt_shape(char *buf, size_t size, const nncc_tensor_desc *t) {
  size_t n = (size_t)snprintf(buf, size, "[batch");
  for (int k = 0; k < t->rank && n < size; k++) {
    if (t->dims[k] < 0) n += (size_t)snprintf(buf + n, size - n, ", seq");
    else n += (size_t)snprintf(buf + n, size - n, ", %lld", (long long)t->dims[k]);
  }
  if (n < size) snprintf(buf + n, size - n, "]");
}

static void fmt_dims(char *buf, size_t size, int rank, const int64_t *dims) {
  size_t n = (size_t)snprintf(buf, size, "[");
  for (int k = 0; k < rank && n < size; k++)
    n += (size_t)snprintf(buf + n, size - n, "%s%lld", k ? ", " : "", (long long)dims[k]);
  if (n < size) snprintf(buf + n, size - n, "]");
}

static void usage(const nncc_model_desc *d, const char *prog) {
  char shape[256];
  printf("usage: %s [--weights W.safetensors | --seed S] --input NAME=X.npy ... "
         "[--output NAME=Y.npy ...]\n"
         "       %s --bench N [--input NAME=X.npy ... | --batch B%s]\n"
         "Runs the model '%s' on NumPy arrays (batch first, C order).\n\ninputs:\n",
         prog, prog, d->has_seq ? " --seq S" : "", d->name);
  for (int i = 0; i < d->n_inputs; i++) {
    const nncc_tensor_desc *t = &d->inputs[i];
    fmt_shape(shape, sizeof shape, t);
    printf("  %-12s %s%s", t->name, dtype_name(t->dtype), shape);
    if (t->dtype != NNCC_F32 && t->classes > 0) printf("  (values in [0, %lld))", (long long)t->classes);
    printf("\n");
  }
  printf("outputs:\n");
  for (int i = 0; i < d->n_outputs; i++) {
    fmt_shape(shape, sizeof shape, &d->outputs[i]);
    printf("  %-12s %s%s\n", d->outputs[i].name, dtype_name(d->outputs[i].dtype), shape);
  }
  printf("\noptions:\n"
         "  --weights FILE      load the parameters from a safetensors file (default: the\n"
         "                      embedded weights, else the default initialisation, seed 0)\n"
         "  --seed S            initialise the parameters with seed S (without --weights)\n"
         "  --input NAME=FILE   an input array (.npy); every input is required; a model with\n"
         "                      one input also takes --input FILE\n"
         "  --output NAME=FILE  write an output array (.npy); without any --output, print each\n"
         "                      output's shape and first values\n"
         "  --bench N           time N forward passes after a warm-up; print the min, median\n"
         "                      and mean latency per call and the throughput\n"
         "  --batch B           the batch of the all-zero inputs --bench uses without --input\n"
         "%s"
         "  --help              show this text\n"
         "  train ...           train the model (%s train --help)\n"
         "%s%s%s",
         d->has_seq ? "  --seq S             the length of the all-zero inputs --bench uses\n" : "", prog,
         d->step ? "  sample ...          write text with a character model (" : "",
         d->step ? prog : "", d->step ? " sample --help)\n" : "");
}

/* NAME=PATH against the list of names; a bare PATH when there is exactly one. */
static int bind_file(const Run *r, const char *kind, const char *arg, int n,
                     const nncc_tensor_desc *t, const char **paths) {
  const char *eq = strchr(arg, '=');
  int idx = -1;
  if (!eq) {
    if (n != 1)
      return complain(r, 2, "--%s wants NAME=FILE.npy (the model has %d %ss), got '%s'", kind, n,
                      kind, arg);
    idx = 0;
  } else {
    for (int i = 0; i < n; i++)
      if (strlen(t[i].name) == (size_t)(eq - arg) && !strncmp(t[i].name, arg, (size_t)(eq - arg)))
        idx = i;
    if (idx < 0) {
      char names[512];
      size_t k = 0;
      names[0] = 0;
      for (int i = 0; i < n && k < sizeof names; i++)
        k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "", t[i].name);
      return complain(r, 2, "the model has no %s '%.*s' (its %ss: %s)", kind, (int)(eq - arg),
                      arg, kind, n ? names : "none");
    }
  }
  if (paths[idx]) return complain(r, 2, "%s '%s' is given twice", kind, t[idx].name);
  paths[idx] = eq ? eq + 1 : arg;
  if (!*paths[idx]) return complain(r, 2, "--%s %s: the file name is empty", kind, arg);
  return 0;
}

static int parse_count(const char *s, int64_t min, int64_t *v) {
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (errno || end == s || *end || x < min) return 0;
  *v = x;
  return 1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* The batch and seq implied by the input files; 0, or an exit status after a message. */
static int infer_shape(const Run *r, int64_t *batch, int64_t *seq, int batch_given, int seq_given) {
  const nncc_model_desc *d = r->d;
  int batch_from = -1, seq_from = -1;
  for (int i = 0; i < d->n_inputs; i++) {
    const nncc_tensor_desc *t = &d->inputs[i];
    const nncc_npy *a = &r->in[i];
    char have[256], want[256];
    fmt_dims(have, sizeof have, a->rank, a->dims);
    fmt_shape(want, sizeof want, t);
    if (a->rank != t->rank + 1)
      return complain(r, 1, "%s is %s; input '%s' needs %s%s", r->in_path[i], have, t->name, want,
                      a->rank == t->rank ? " (the first dimension is the batch: add one)" : "");
    if (batch_from < 0 && !batch_given) {
      *batch = a->dims[0];
      batch_from = i;
    } else if (a->dims[0] != *batch) {
      if (batch_from < 0)
        return complain(r, 1, "%s has batch %lld, but --batch is %lld", r->in_path[i],
                        (long long)a->dims[0], (long long)*batch);
      return complain(r, 1, "%s has batch %lld, but %s has batch %lld (every input's first "
                      "dimension is the batch)", r->in_path[i], (long long)a->dims[0],
                      r->in_path[batch_from], (long long)*batch);
    }
    for (int k = 0; k < t->rank; k++) {
      int64_t got = a->dims[k + 1];
      if (t->dims[k] >= 0) {
        if (got != t->dims[k])
          return complain(r, 1, "%s is %s; input '%s' needs %s", r->in_path[i], have, t->name, want);
      } else if (seq_from < 0 && !seq_given) {
        *seq = got;
        seq_from = i;
      } else if (got != *seq) {
        if (seq_from < 0)
          return complain(r, 1, "%s has seq %lld (dimension %d), but --seq is %lld", r->in_path[i],
                          (long long)got, k + 1, (long long)*seq);
        return complain(r, 1, "%s has seq %lld (dimension %d), but %s has seq %lld",
                        r->in_path[i], (long long)got, k + 1, r->in_path[seq_from], (long long)*seq);
      }
    }
  }
  if (*batch < 1) return complain(r, 1, "the inputs have batch 0; at least one sample is needed");
  if (d->has_seq && *seq < 1) return complain(r, 1, "the inputs have seq 0; at least one step is needed");
  return 0;
}

static void print_output(const nncc_tensor_desc *t, int rank, const int64_t *dims, const void *data,
                         int64_t numel) {
  char shape[256];
  fmt_dims(shape, sizeof shape, rank, dims);
  printf("%s %s%s:", t->name, dtype_name(t->dtype), shape);
  for (int64_t i = 0; i < numel && i < PRINT_VALUES; i++) {
    if (t->dtype == NNCC_F32) printf(" %.6g", (double)((const float *)data)[i]);
    else printf(" %" PRId32, ((const int32_t *)data)[i]);
  }
  if (numel > PRINT_VALUES) printf(" ... (%lld values)", (long long)numel);
  printf("\n");
}

static int run(Run *r, int argc, char **argv) {
  const nncc_model_desc *d = r->d;
  const char *weights = NULL;
  int64_t bench = 0, batch = 1, seq = 1;
  unsigned long long seed = 0;
  int have_seed = 0, batch_given = 0, seq_given = 0, n_in = 0, n_out = 0, rc;

  if (argc > 1 && !strcmp(argv[1], "train")) return nncc_rt_train_main(r->prog, argc - 1, argv + 1, d);
  if (argc > 1 && !strcmp(argv[1], "sample")) return nncc_rt_sample_main(r->prog, argc - 1, argv + 1, d);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(d, r->prog);
      return -1;   /* success, nothing more to do */
    }
    static const char *const with_value[] = {"--weights", "--input", "--output", "--bench",
                                             "--seed", "--batch", "--seq"};
    const char *opt = NULL, *val = NULL;
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) {
      size_t n = strlen(with_value[k]);
      if (!strncmp(a, with_value[k], n) && (a[n] == 0 || a[n] == '=')) {
        opt = with_value[k];
        if (a[n] == '=') {
          val = a + n + 1;
        } else {
          if (i + 1 >= argc) return complain(r, 2, "%s needs a value", opt);
          val = argv[++i];
        }
      }
    }
    if (!opt) {
      if (a[0] == '-') return complain(r, 2, "unknown option '%s'", a);
      return complain(r, 2, "unexpected argument '%s'", a);
    }
    if (!strcmp(opt, "--weights")) {
      if (weights) return complain(r, 2, "--weights is given twice");
      weights = val;
    } else if (!strcmp(opt, "--input")) {
      if ((rc = bind_file(r, "input", val, d->n_inputs, d->inputs, r->in_path))) return rc;
      n_in++;
    } else if (!strcmp(opt, "--output")) {
      if ((rc = bind_file(r, "output", val, d->n_outputs, d->outputs, r->out_path))) return rc;
      n_out++;
    } else if (!strcmp(opt, "--bench")) {
      /* the timings are kept (8 bytes a run): the count is bounded before any allocation */
      if (!parse_count(val, 1, &bench) || bench > NNCC_MAX_BENCH)
        return complain(r, 2, "--bench wants a number of runs in [1, %lld], got '%s'",
                        (long long)NNCC_MAX_BENCH, val);
    } else if (!strcmp(opt, "--seed")) {
      char *end;
      errno = 0;
      seed = strtoull(val, &end, 10);
      if (errno || end == val || *end || val[0] == '-')
        return complain(r, 2, "--seed wants an integer in [0, 2^64), got '%s'", val);
      have_seed = 1;
    } else if (!strcmp(opt, "--batch")) {
      if (!parse_count(val, 1, &batch) || batch > NNCC_MAX_DIM)
        return complain(r, 2, "--batch wants an integer in [1, 2^40], got '%s'", val);
      batch_given = 1;
    } else {
      if (!d->has_seq) return complain(r, 2, "--seq: the model '%s' has no symbolic length", d->name);
      if (!parse_count(val, 1, &seq) || seq > NNCC_MAX_DIM)
        return complain(r, 2, "--seq wants an integer in [1, 2^40], got '%s'", val);
      seq_given = 1;
    }
  }
  if (weights && have_seed) return complain(r, 2, "--seed and --weights exclude each other");
  if (n_in > 0 && n_in < d->n_inputs) {
    for (int i = 0; i < d->n_inputs; i++)
      if (!r->in_path[i])
        return complain(r, 2, "missing --input %s=FILE.npy (every input is required)", d->inputs[i].name);
  }
  if (n_in == 0 && d->n_inputs > 0 && !bench)
    return complain(r, 2, "missing --input %s=FILE.npy (or --bench N to time all-zero inputs)",
                    d->inputs[0].name);

  nncc_model *m = nncc_rt_create(d);
  if (!m) return complain(r, 1, "%s", nncc_last_error());
  int status = 0;
  if (weights && nncc_rt_load(m, weights)) status = complain(r, 1, "%s", nncc_last_error());
  if (!status && have_seed && nncc_rt_init(m, (uint64_t)seed)) status = complain(r, 1, "%s", nncc_last_error());

  /* inputs: the files, or zeros */
  for (int i = 0; !status && i < d->n_inputs; i++) {
    const nncc_tensor_desc *t = &d->inputs[i];
    if (n_in > 0) {
      if (nncc_npy_read(r->in_path[i], t->dtype, &r->in[i]))
        status = complain(r, 1, "input '%s': %s", t->name, nncc_last_error());
      continue;
    }
    nncc_npy *a = &r->in[i];
    a->dtype = t->dtype == NNCC_F32 ? NNCC_F32 : NNCC_I32;
    a->rank = t->rank + 1;
    a->dims[0] = batch;
    int64_t numel = batch;
    int ok = 1;
    for (int k = 0; k < t->rank; k++) {
      a->dims[k + 1] = t->dims[k] < 0 ? seq : t->dims[k];
      ok = ok && nncc_rt_mul_ok(numel, a->dims[k + 1], &numel);
    }
    a->numel = numel;
    a->data = ok ? nncc_rt_alloc_floats(numel) : NULL;
    if (!a->data) status = complain(r, 1, "out of memory for input '%s'", t->name);
    else memset(a->data, 0, (size_t)numel * 4);
  }
  if (!status && n_in > 0) status = infer_shape(r, &batch, &seq, batch_given, seq_given);

  /* outputs */
  int64_t (*odims)[NNCC_MAX_RANK + 1] = calloc((size_t)d->n_outputs + 1, sizeof *odims);
  int64_t *onumel = calloc((size_t)d->n_outputs + 1, sizeof *onumel);
  if (!odims || !onumel) status = status ? status : complain(r, 1, "out of memory");
  for (int i = 0; !status && i < d->n_outputs; i++) {
    const nncc_tensor_desc *t = &d->outputs[i];
    int64_t numel = batch;
    int ok = 1;
    odims[i][0] = batch;
    for (int k = 0; k < t->rank; k++) {
      odims[i][k + 1] = t->dims[k] < 0 ? seq : t->dims[k];
      ok = ok && nncc_rt_mul_ok(numel, odims[i][k + 1], &numel);
    }
    onumel[i] = numel;
    r->out[i] = ok ? nncc_rt_alloc_floats(numel) : NULL;
    if (!r->out[i]) status = complain(r, 1, "out of memory for output '%s' (%lld elements)", t->name, (long long)numel);
  }

  if (!status) {
    const void **in = calloc((size_t)d->n_inputs + 1, sizeof *in);
    if (!in) {
      status = complain(r, 1, "out of memory");
    } else {
      for (int i = 0; i < d->n_inputs; i++) in[i] = r->in[i].data;
      /* the real run, which is also the first warm-up run of a benchmark */
      if (nncc_rt_forward(m, batch, seq, in, r->out)) status = complain(r, 1, "%s", nncc_last_error());
      for (int64_t k = 1; !status && k < bench / 10 && k < 10; k++)   /* more warm-up */
        if (nncc_rt_forward(m, batch, seq, in, r->out)) status = complain(r, 1, "%s", nncc_last_error());
      if (!status && bench > 0) {
        double *t = malloc((size_t)bench * sizeof *t), sum = 0;
        if (!t) status = complain(r, 1, "out of memory");
        for (int64_t k = 0; !status && k < bench; k++) {
          double t0 = now_us();
          if (nncc_rt_forward(m, batch, seq, in, r->out)) status = complain(r, 1, "%s", nncc_last_error());
          t[k] = now_us() - t0;
          sum += t[k];
        }
        if (!status) {
          qsort(t, (size_t)bench, sizeof *t, cmp_double);
          double median = bench % 2 ? t[bench / 2] : (t[bench / 2 - 1] + t[bench / 2]) / 2;
          double mean = sum / (double)bench;
          printf("%s: batch %lld", d->name, (long long)batch);
          if (d->has_seq) printf(", seq %lld", (long long)seq);
          printf(", %lld runs: min %.2f us, median %.2f us, mean %.2f us per call; %.1f samples/s\n",
                 (long long)bench, t[0], median, mean, mean > 0 ? (double)batch * 1e6 / mean : 0.0);
        }
        free(t);
      }
      free(in);
    }
  }
  for (int i = 0; !status && i < d->n_outputs; i++) {
    const nncc_tensor_desc *t = &d->outputs[i];
    if (r->out_path[i]) {
      if (nncc_npy_write(r->out_path[i], t->dtype == NNCC_F32 ? NNCC_F32 : NNCC_I32, t->rank + 1,
                         odims[i], r->out[i]))
        status = complain(r, 1, "output '%s': %s", t->name, nncc_last_error());
    } else if (n_out == 0 && bench == 0) {
      print_output(t, t->rank + 1, odims[i], r->out[i], onumel[i]);
    }
  }
  free(odims);
  free(onumel);
  nncc_rt_destroy(m);
  return status;
}

NNCC_API int nncc_rt_main(int argc, char **argv, const nncc_model_desc *d) {
  const char *prog = argc > 0 && argv[0] ? argv[0] : "model";
  const char *slash = strrchr(prog, '/');
  if (slash) prog = slash + 1;
  Run r = {prog, d, NULL, NULL, NULL, NULL};
  if (!d) {
    fprintf(stderr, "%s: no model\n", prog);
    return 1;
  }
  size_t ni = (size_t)d->n_inputs + 1, no = (size_t)d->n_outputs + 1;
  r.in_path = calloc(ni, sizeof *r.in_path);
  r.out_path = calloc(no, sizeof *r.out_path);
  r.in = calloc(ni, sizeof *r.in);
  r.out = calloc(no, sizeof *r.out);
  int status;
  if (!r.in_path || !r.out_path || !r.in || !r.out) {
    fprintf(stderr, "%s: out of memory\n", prog);
    status = 1;
  } else {
    status = run(&r, argc, argv);
    if (status < 0) status = 0;   /* --help */
  }
  for (int i = 0; r.in && i < d->n_inputs; i++) nncc_npy_free(&r.in[i]);
  for (int i = 0; r.out && i < d->n_outputs; i++) free(r.out[i]);
  free(r.in_path);
  free(r.out_path);
  free(r.in);
  free(r.out);
  fflush(stdout);
  return status;
}
