/* trainer.c - `./model train`: the standalone executable's trainer (spec section 3).
 *
 *   ./model train --data NAME=FILE ... [--test NAME=FILE ...] [--epochs E] [--batch B]
 *                 [--lr LR] [--seed S] [--weights W] [--save W] [--log loss.csv] [--progress N]
 *
 * Each epoch visits every sample once, in the seeded order of nncc_data_shuffle (dataset.h),
 * in mini-batches of B (the last one smaller, as PyTorch's DataLoader; dropped for a stateful
 * recurrent model, whose batch must not change); each mini-batch is one nncc_rt_train_step.
 * After each epoch: the --test set is evaluated (nncc_rt_evaluate, in order, in batches of B;
 * accuracy = correct / labelled rows for a cross_entropy loss, else the mean loss), a summary
 * line goes to stdout, and --save writes the weights atomically (nncc_rt_save).
 *
 * Progress goes to stderr: on a terminal one line rewritten in place (\r) at most 10 times a
 * second; otherwise one line every --progress N steps (default 100; 0: none) and at the end of
 * each epoch.  --log writes "epoch,step,loss" with the global step (from 1) and the batch-mean
 * loss of that step, flushed line by line.
 *
 * Errors stop training with a message and exit status 1, before the next save: a weight file
 * saved after an earlier epoch (or by an earlier run) is left as it was.  A loss that is not
 * finite is such an error (saving NaN weights over good ones helps nobody).  Usage errors exit
 * with status 2.  Everything allocated is freed on every path.
 *
 * Data-parallel (a nncc_rt_dp from runtime/mpi_trainer.c, N processes, --batch B): every
 * process reads the whole training set and draws the same permutation; a step takes the
 * global batch of N*B samples (the last one smaller), process r the samples [r*B, (r+1)*B) of
 * it (possibly none in the last one).  Process r computes the gradient of its samples' mean
 * loss (nncc_rt_gradients), scales it by its count / the global count, and one in-place sum
 * over the processes of the whole gradient buffer gives every process the gradient of the
 * global batch's mean loss, which is what one process computes with --batch N*B (up to
 * rounding); every process then takes the same nncc_rt_update, so the parameters stay equal
 * without ever being sent.  The loss (times the count) and a failure flag are summed first, so
 * a failing step or a non-finite loss stops every process at the same step.  Process 0 alone
 * reads the test set, prints, logs and saves; its status after each epoch is shared too.
 */
#define _POSIX_C_SOURCE 200809L

#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dataset.h"
#include "rt_internal.h"

#define DEFAULT_BATCH 32
#define DEFAULT_PROGRESS 100

typedef struct Trainer {
  const char *prog;
  const nncc_model_desc *d;
  const nncc_train_desc *td;
  int n;                        /* inputs + targets */
  const char **data_path;       /* [n] */
  const char **test_path;       /* [n] */
  int64_t epochs, batch, progress;
  int batch_given, have_lr;
  double lr;
  uint64_t seed;
  const char *weights, *save, *log;
  const char *text;             /* --text FILE: a character model's training text */
  nncc_dataset train, test;
  nncc_model *m;
  void **buf;                   /* [n] one mini-batch of each tensor */
  const void **in, **tg;        /* views of buf: inputs, targets */
  int64_t *perm;
  FILE *logf;
  int tty;
  int progress_len;             /* characters of the progress line on the terminal */
  const nncc_rt_dp *dp;         /* data-parallel collectives, or NULL (one process) */
  int rank, size;               /* this process and the number of processes (0, 1 alone) */
  float *grads;                 /* the model's gradient buffer (dp): grad_floats floats */
  int64_t grad_floats;
  double wait_time;             /* dp: seconds of this epoch spent in the exchanges */
} Trainer;

static int complain(const Trainer *t, int status, const char *fmt, ...) {
  va_list ap;
  /* a usage error is the same in every process (same arguments): process 0 says it */
  if (status == 2 && t->rank != 0) return status;
  if (t->tty && t->progress_len) fputc('\n', stderr);
  /* one write per message, so that processes sharing a terminal do not interleave words */
  char msg[2048];
  int n = t->dp ? snprintf(msg, sizeof msg, "%s (process %d of %d): ", t->prog, t->rank, t->size)
                : snprintf(msg, sizeof msg, "%s: ", t->prog);
  if (n < 0 || (size_t)n >= sizeof msg) n = 0;
  va_start(ap, fmt);
  vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s\n", msg);
  if (status == 2) fprintf(stderr, "run '%s train --help' for usage\n", t->prog);
  fflush(stderr);
  return status;
}

/* argv[*i] as `--name VALUE` or `--name=VALUE` for one of opts[0..n): *opt is the option and
 * *val its value (NULL when argv[*i] is none of them; *i moves past a separate value).
 * Returns -1 when the option is the last argument and has no value. */
static int match_option(const char *const *opts, size_t n, int argc, char **argv, int *i,
                        const char **opt, const char **val) {
  const char *a = argv[*i];
  for (size_t k = 0; k < n; k++) {
    size_t len = strlen(opts[k]);
    if (!strncmp(a, opts[k], len) && (a[len] == 0 || a[len] == '=')) {
      *opt = opts[k];
      if (a[len] == '=') *val = a + len + 1;
      else if (*i + 1 < argc) *val = argv[++*i];
      else return -1;
      return 0;
    }
  }
  return 0;
}

static void usage(const Trainer *t) {
  const nncc_model_desc *d = t->d;
  if (t->rank != 0) return;
  printf("usage: %s train --data NAME=FILE ... [--test NAME=FILE ...] [--epochs E] [--batch B]\n"
         "       [--lr LR] [--seed S] [--weights W.safetensors] [--save W.safetensors]\n"
         "       [--log LOSS.csv] [--progress N]\n"
         "   or: %s train --text FILE [--epochs E] [--batch B] ... (a character model)\n"
         "Trains the model '%s' on IDX (gzip or plain) or .npy files, the first dimension being\n"
         "the sample.\n\nfed by --data / --test:\n", t->prog, t->prog, d->name);
  for (int k = 0; k < t->n; k++) {
    const nncc_tensor_desc *x = nncc_data_tensor(d, k);
    printf("  %-12s %s %s[", x->name, k < d->n_inputs ? "input " : "target",
           x->dtype == NNCC_F32 ? "f32" : x->dtype == NNCC_I32 ? "i32" : "label");
    for (int j = 0; j < x->rank; j++) {
      if (x->dims[j] < 0) printf("%sseq", j ? ", " : "");
      else printf("%s%lld", j ? ", " : "", (long long)x->dims[j]);
    }
    if (x->dtype == NNCC_LABEL) printf("%s%lld", x->rank ? ", " : "", (long long)x->classes);
    printf("]\n");
  }
  printf("\noptions:\n"
         "  --data NAME=FILE    a training file for the input or target NAME; every one is needed,\n"
         "                      all with the same number of samples (ubyte IDX images become\n"
         "                      floats in [0, 1]; labels stay integers)\n"
         "  --test NAME=FILE    the same for a test set, evaluated after every epoch: accuracy\n"
         "                      (classification) or the mean loss\n"
         "  --epochs E          passes over the data (default 1)\n"
         "  --batch B           samples per step (default %lld, from the train block)\n"
         "  --lr LR             the learning rate (default %g, from the train block)\n"
         "  --seed S            seeds the initialisation, the shuffle and dropout (default 0)\n"
         "  --weights FILE      start from these weights (fine-tuning) instead of the default\n"
         "                      initialisation\n"
         "  --save FILE         write the weights (safetensors) after every epoch, atomically\n"
         "  --log FILE          write the loss of every step as CSV: epoch,step,loss\n"
         "  --progress N        without a terminal, a progress line every N steps (default %d;\n"
         "                      0: none)\n"
         "  --text FILE         train a character model on a text file instead of --data: its\n"
         "                      bytes are the token ids (or, when they do not fit the model's\n"
         "                      classes, its distinct bytes in order of appearance, saved\n"
         "                      beside --save as FILE.vocab), in batch contiguous streams cut\n"
         "                      into chunks of bptt steps (50 without bptt), each chunk one\n"
         "                      step from the state the previous one ended with (stateful)\n"
         "  --help              show this text\n",
         (long long)(t->td && t->td->batch > 0 ? t->td->batch : DEFAULT_BATCH),
         t->td ? t->td->lr : 0.0, DEFAULT_PROGRESS);
  if (t->dp)
    printf("\nData-parallel (built with --mpi; this run: %d process%s): --batch B is per process,\n"
           "each step takes a global batch of N*B samples from the same seeded shuffle, process r\n"
           "the samples [r*B, (r+1)*B), and the gradients are averaged over the processes; process 0\n"
           "alone prints, logs, tests and saves.  NNCC_MPI_TIMEOUT=S (default %d) stops every\n"
           "process when one has not answered for S seconds.\n",
           t->size, t->size == 1 ? "" : "es", NNCC_DP_DEFAULT_TIMEOUT);
}

static int parse_int(const char *s, int64_t min, int64_t *v) {
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (errno || end == s || *end || x < min) return 0;
  *v = x;
  return 1;
}

/* NAME=FILE for one of the model's inputs and targets. */
static int bind(Trainer *t, const char *flag, const char *arg, const char **paths) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg) return complain(t, 2, "%s wants NAME=FILE, got '%s'", flag, arg);
  size_t len = (size_t)(eq - arg);
  for (int k = 0; k < t->n; k++) {
    const char *name = nncc_data_tensor(t->d, k)->name;
    if (strlen(name) == len && !strncmp(name, arg, len)) {
      if (paths[k]) return complain(t, 2, "%s %s is given twice", flag, name);
      if (!eq[1]) return complain(t, 2, "%s %s: the file name is empty", flag, arg);
      paths[k] = eq + 1;
      return 0;
    }
  }
  char names[512];
  size_t m = 0;
  names[0] = 0;
  for (int k = 0; k < t->n && m < sizeof names; k++)
    m += (size_t)snprintf(names + m, sizeof names - m, "%s%s", k ? ", " : "", nncc_data_tensor(t->d, k)->name);
  return complain(t, 2, "%s: the model has no input or target '%.*s' (it has: %s)", flag, (int)len, arg, names);
}

static int parse_args(Trainer *t, int argc, char **argv) {
  int n_data = 0, rc;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(t);
      return -1;
    }
    static const char *const opts[] = {"--data", "--test", "--epochs", "--batch", "--lr", "--seed",
                                       "--weights", "--save", "--log", "--progress", "--text"};
    const char *opt = NULL, *val = NULL;
    if (match_option(opts, sizeof opts / sizeof opts[0], argc, argv, &i, &opt, &val))
      return complain(t, 2, "%s needs a value", opt);
    if (!opt) {
      if (a[0] == '-') return complain(t, 2, "unknown option '%s'", a);
      return complain(t, 2, "unexpected argument '%s'", a);
    }
    if (!strcmp(opt, "--data")) {
      if ((rc = bind(t, "--data", val, t->data_path))) return rc;
      n_data++;
    } else if (!strcmp(opt, "--test")) {
      if ((rc = bind(t, "--test", val, t->test_path))) return rc;
    } else if (!strcmp(opt, "--epochs")) {
      /* bounded so that steps x epochs (the progress line's total) cannot overflow */
      if (!parse_int(val, 1, &t->epochs) || t->epochs > 1000000000)
        return complain(t, 2, "--epochs wants an integer in [1, 1000000000], got '%s'", val);
    } else if (!strcmp(opt, "--batch")) {
      if (!parse_int(val, 1, &t->batch) || t->batch > (1LL << 40))
        return complain(t, 2, "--batch wants an integer in [1, 2^40], got '%s'", val);
      t->batch_given = 1;
    } else if (!strcmp(opt, "--progress")) {
      if (!parse_int(val, 0, &t->progress)) return complain(t, 2, "--progress wants an integer >= 0, got '%s'", val);
    } else if (!strcmp(opt, "--lr")) {
      char *end;
      errno = 0;
      t->lr = strtod(val, &end);
      if (errno || end == val || *end || !(t->lr > 0) || !isfinite(t->lr))
        return complain(t, 2, "--lr wants a positive number, got '%s'", val);
      t->have_lr = 1;
    } else if (!strcmp(opt, "--seed")) {
      char *end;
      errno = 0;
      t->seed = strtoull(val, &end, 10);
      if (errno || end == val || *end || val[0] == '-')
        return complain(t, 2, "--seed wants an integer in [0, 2^64), got '%s'", val);
    } else if (!strcmp(opt, "--weights")) {
      if (t->weights) return complain(t, 2, "--weights is given twice");
      t->weights = val;
    } else if (!strcmp(opt, "--save")) {
      if (t->save) return complain(t, 2, "--save is given twice");
      t->save = val;
    } else if (!strcmp(opt, "--log")) {
      if (t->log) return complain(t, 2, "--log is given twice");
      t->log = val;
    } else {   /* --text */
      if (t->text) return complain(t, 2, "--text is given twice");
      t->text = val;
    }
  }
  if (t->text) {
    int n_test = 0;
    for (int k = 0; k < t->n; k++) n_test += t->test_path[k] != NULL;
    if (n_data || n_test)
      return complain(t, 2, "--text feeds the model by itself: give no --data or --test with it");
    return 0;
  }
  if (n_data == 0) return complain(t, 2, "no training data: give --data NAME=FILE for each input and target");
  for (int k = 0; k < t->n; k++)
    if (!t->data_path[k])
      return complain(t, 2, "missing --data %s=FILE (every input and target is needed)",
                      nncc_data_tensor(t->d, k)->name);
  int n_test = 0;
  for (int k = 0; k < t->n; k++) n_test += t->test_path[k] != NULL;
  for (int k = 0; n_test && k < t->n; k++)
    if (!t->test_path[k])
      return complain(t, 2, "missing --test %s=FILE (a test set needs every input and target)",
                      nncc_data_tensor(t->d, k)->name);
  return 0;
}

/* ---- progress ---------------------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_duration(char *buf, size_t size, double s) {
  if (!(s >= 0) || s > 1e8) {
    snprintf(buf, size, "?");
    return;
  }
  long long x = (long long)(s + 0.5);
  if (x >= 3600) snprintf(buf, size, "%lldh%02lldm", x / 3600, x / 60 % 60);
  else if (x >= 60) snprintf(buf, size, "%lldm%02llds", x / 60, x % 60);
  else snprintf(buf, size, "%llds", x);
}

/* "epoch 2/10  step 420/938  loss 0.4123  5231 samples/s  1m12s left" */
static void progress(Trainer *t, int64_t epoch, int64_t step, int64_t steps, double mean_loss,
                     double samples_per_s, double left_s) {
  char left[32], line[256];
  fmt_duration(left, sizeof left, left_s);
  int n = snprintf(line, sizeof line, "epoch %lld/%lld  step %lld/%lld  loss %.4f  %.0f %s/s  %s left",
                   (long long)epoch + 1, (long long)t->epochs, (long long)step, (long long)steps,
                   mean_loss, samples_per_s, t->text ? "characters" : "samples", left);
  if (t->tty) {
    int pad = t->progress_len > n ? t->progress_len - n : 0;
    fprintf(stderr, "\r%s%*s", line, pad, "");
    t->progress_len = n;
  } else {
    fprintf(stderr, "%s\n", line);
  }
  fflush(stderr);
}

static void progress_end(Trainer *t) {
  if (t->tty && t->progress_len) {
    fprintf(stderr, "\r%*s\r", t->progress_len, "");
    fflush(stderr);
  }
  t->progress_len = 0;
}

/* ---- the steps ----------------------------------------------------------------------------- */

static int alloc_batches(Trainer *t) {
  const nncc_model_desc *d = t->d;
  t->buf = calloc((size_t)t->n + 1, sizeof *t->buf);
  t->in = calloc((size_t)d->n_inputs + 1, sizeof *t->in);
  t->tg = calloc((size_t)d->n_targets + 1, sizeof *t->tg);
  t->perm = malloc(((size_t)t->train.samples + 1) * sizeof *t->perm);
  if (!t->buf || !t->in || !t->tg || !t->perm) return complain(t, 1, "out of memory");
  for (int k = 0; k < t->n; k++) {
    int64_t row = t->train.row[k], floats;
    if (t->test.n && t->test.row[k] > row) row = t->test.row[k];
    if (!nncc_rt_mul_ok(row, t->batch, &floats) || !(t->buf[k] = nncc_rt_alloc_floats(floats)))
      return complain(t, 1, "out of memory for a batch of %lld samples of '%s'", (long long)t->batch,
                      nncc_data_tensor(t->d, k)->name);
    if (k < d->n_inputs) t->in[k] = t->buf[k];
    else t->tg[k - d->n_inputs] = t->buf[k];
  }
  return 0;
}

/* The --test set: *loss = mean over samples; *acc = correct / rows, or -1. */
static int evaluate(Trainer *t, double *loss, double *acc, int64_t *correct_out, int64_t *rows_out) {
  const nncc_dataset *ds = &t->test;
  double sum = 0;
  int64_t correct = 0, classify = 1;
  for (int64_t first = 0; first < ds->samples; first += t->batch) {
    int64_t count = ds->samples - first < t->batch ? ds->samples - first : t->batch, c = -1;
    float l = 0;
    nncc_data_gather(ds, NULL, first, count, t->buf);
    if (nncc_rt_evaluate(t->m, count, ds->seq, t->in, t->tg, &l, &c))
      return complain(t, 1, "evaluating the test set (samples %lld..%lld): %s", (long long)first,
                      (long long)(first + count - 1), nncc_last_error());
    sum += (double)l * (double)count;
    if (c < 0) classify = 0;
    else correct += c;
  }
  *loss = sum / (double)ds->samples;
  /* the rows a cross_entropy labels: the first label target's values per sample */
  int64_t rows = 0;
  for (int k = t->d->n_inputs; k < t->n; k++)
    if (nncc_data_tensor(t->d, k)->dtype == NNCC_LABEL) {
      rows = ds->samples * ds->row[k];
      break;
    }
  *acc = classify && rows > 0 ? (double)correct / (double)rows : -1;
  *correct_out = correct;
  *rows_out = rows;
  return 0;
}

/* Data-parallel: every process learns whether any process failed (status != 0 here); the
 * result is this process's status, 1 when another one failed, or 1 when they cannot agree. */
static int agree(Trainer *t, int status, const char *when) {
  if (!t->dp) return status;
  double v[1] = {status != 0};
  char err[512];
  if (t->dp->sum_f64(t->dp, v, 1, err, sizeof err))
    return complain(t, 1, "%s: %s", when, err);
  if (status) return status;
  if (v[0] > 0) {
    if (t->rank == 0) complain(t, 1, "%s: stopping, another process failed (its message is above)", when);
    return 1;
  }
  return 0;
}

/* One step: the batch-mean loss of samples [first, first + count) of the epoch's order into
 * *loss, and one optimizer update.  Data-parallel, [first, first + count) is the global batch:
 * this process takes its slice, and the gradients and the loss are averaged over all. */
static int step(Trainer *t, int64_t e, int64_t s, int64_t first, int64_t count, float *loss) {
  if (!t->dp) {
    nncc_data_gather(&t->train, t->perm, first, count, t->buf);
    if (nncc_rt_train_step(t->m, count, t->train.seq, t->in, t->tg, loss))
      return complain(t, 1, "epoch %lld, step %lld: %s", (long long)e + 1, (long long)s + 1,
                      nncc_last_error());
    return 0;
  }
  int64_t mine = count - (int64_t)t->rank * t->batch;   /* this process's share */
  mine = mine < 0 ? 0 : mine > t->batch ? t->batch : mine;
  float l = 0;
  int failed = 0;
  if (mine > 0) {
    nncc_data_gather(&t->train, t->perm, first + (int64_t)t->rank * t->batch, mine, t->buf);
    if (nncc_rt_gradients(t->m, mine, t->train.seq, t->in, t->tg, &l)) {
      complain(t, 1, "epoch %lld, step %lld: %s", (long long)e + 1, (long long)s + 1, nncc_last_error());
      failed = 1;
    }
  }
  /* the loss sum and the failures first: a failure anywhere stops everyone here */
  double v[2] = {failed ? 0.0 : (double)l * (double)mine, failed};
  char err[512];
  double t0 = now_s();
  int rc = t->dp->sum_f64(t->dp, v, 2, err, sizeof err);
  t->wait_time += now_s() - t0;
  if (rc)
    return complain(t, 1, "epoch %lld, step %lld: %s", (long long)e + 1, (long long)s + 1, err);
  if (failed) return 1;
  if (v[1] > 0) {
    if (t->rank == 0)
      complain(t, 1, "epoch %lld, step %lld: stopping, another process failed (its message is "
               "above)", (long long)e + 1, (long long)s + 1);
    return 1;
  }
  *loss = (float)(v[0] / (double)count);
  if (!isfinite(*loss)) return 0;   /* the caller stops every process at this step */
  /* this process's mean times mine / count, summed: the global batch's mean */
  if (mine == 0) {
    if (t->grad_floats > 0) memset(t->grads, 0, (size_t)t->grad_floats * sizeof(float));
  } else if (mine != count) {
    float scale = (float)((double)mine / (double)count);
    for (int64_t i = 0; i < t->grad_floats; i++) t->grads[i] *= scale;
  }
  t0 = now_s();
  rc = t->grad_floats > 0 && t->dp->sum_f32(t->dp, t->grads, t->grad_floats, err, sizeof err);
  t->wait_time += now_s() - t0;
  if (rc) return complain(t, 1, "epoch %lld, step %lld: %s", (long long)e + 1, (long long)s + 1, err);
  if (nncc_rt_update(t->m))
    return complain(t, 1, "epoch %lld, step %lld: %s", (long long)e + 1, (long long)s + 1,
                    nncc_last_error());
  return 0;
}

/* After an epoch, in process 0: the summary line, the test set and the save. */
static int epoch_end(Trainer *t, int64_t e, double loss_sum, int64_t seen, double secs) {
  printf("epoch %lld/%lld: loss %.4f, %.1f s, %.0f samples/s", (long long)e + 1,
         (long long)t->epochs, loss_sum / (double)seen, secs, (double)seen / (secs > 0 ? secs : 1e-9));
  if (t->dp)   /* the exchanges, including the wait for the slowest process */
    printf(" (%.0f%% exchanging gradients)", secs > 0 ? 100 * t->wait_time / secs : 0.0);
  fflush(stdout);
  if (t->test.n) {
    double tl = 0, acc = -1;
    int64_t correct = 0, rows = 0;
    if (evaluate(t, &tl, &acc, &correct, &rows)) {
      printf("\n");
      return 1;
    }
    if (acc >= 0)
      printf("; test: accuracy %.2f%% (%lld/%lld), loss %.4f", 100 * acc, (long long)correct,
             (long long)rows, tl);
    else
      printf("; test: loss %.4f", tl);
  }
  if (t->save) {
    if (nncc_rt_save(t->m, t->save)) {
      printf("\n");
      return complain(t, 1, "%s", nncc_last_error());
    }
    printf("; saved %s", t->save);
  }
  printf("\n");
  fflush(stdout);
  return 0;
}

static int train(Trainer *t) {
  const nncc_model_desc *d = t->d;
  int drop_last = d->has_seq && t->td->stateful;
  int64_t global = t->batch * t->size;   /* samples per step, over all the processes */
  int64_t steps = nncc_data_batches(t->train.samples, global, drop_last);
  if (steps == 0)
    return complain(t, 1, "%lld samples make no full batch of %lld (a stateful model keeps its "
                    "batch fixed); lower --batch", (long long)t->train.samples, (long long)global);
  int64_t total_steps = steps * t->epochs, done_steps = 0;
  double train_time = 0;   /* seconds spent in steps, for the rate and the time left */
  for (int64_t e = 0; e < t->epochs; e++) {
    double t_epoch = now_s(), last_draw = 0, loss_sum = 0;
    int64_t seen = 0;
    t->wait_time = 0;
    nncc_data_shuffle(t->perm, t->train.samples, t->seed, e);
    for (int64_t s = 0; s < steps; s++) {
      int64_t first = s * global;
      int64_t count = t->train.samples - first < global ? t->train.samples - first : global;
      double t0 = now_s();
      float loss = 0;
      if (step(t, e, s, first, count, &loss)) return 1;
      double t1 = now_s();
      train_time += t1 - t0;
      done_steps++;
      if (t->logf && fprintf(t->logf, "%lld,%lld,%.9g\n", (long long)e + 1, (long long)done_steps,
                             (double)loss) < 0)
        return complain(t, 1, "cannot write %s: %s", t->log, strerror(errno));
      if (t->logf) fflush(t->logf);
      if (!isfinite(loss))   /* data-parallel: the same loss, so the same decision, everywhere */
        return t->rank != 0 ? 1 :
               complain(t, 1, "epoch %lld, step %lld: the loss is %s; stopping (the weights "
                        "saved before are kept; a smaller --lr may help)", (long long)e + 1,
                        (long long)s + 1, isnan(loss) ? "nan" : "infinite");
      loss_sum += (double)loss * (double)count;
      seen += count;
      int last = s + 1 == steps;
      int draw = t->rank != 0 ? 0
               : t->tty ? (last || t1 - last_draw >= 0.1)
                        : (t->progress > 0 && ((s + 1) % t->progress == 0 || last));
      if (draw) {
        last_draw = t1;
        double rate = seen / (t1 - t_epoch > 0 ? t1 - t_epoch : 1e-9);
        double left = train_time / (double)done_steps * (double)(total_steps - done_steps);
        progress(t, e, s + 1, steps, loss_sum / (double)seen, rate, left);
      }
    }
    if (t->rank == 0) progress_end(t);
    double secs = now_s() - t_epoch;
    int rc = t->rank == 0 ? epoch_end(t, e, loss_sum, seen, secs) : 0;
    char when[64];
    snprintf(when, sizeof when, "after epoch %lld", (long long)e + 1);
    if ((rc = agree(t, rc, when))) return rc;
  }
  return 0;
}

/* Data-parallel: the model's gradient buffer, one block of grad_floats floats (model.c), from
 * any trained parameter's gradient and its offset in the block. */
static int find_grads(Trainer *t) {
  const nncc_train_desc *td = t->td;
  t->grad_floats = td->grad_floats;
  for (int i = 0; i < t->d->n_params && !t->grads; i++)
    if (td->grad_offset[i] >= 0) {
      float *g = nncc_rt_grad(t->m, t->d->params[i].name, NULL);
      if (!g) return complain(t, 1, "%s", nncc_last_error());
      t->grads = g - td->grad_offset[i];
    }
  if (!t->grads) t->grad_floats = 0;   /* nothing is trained: nothing to average */
  return 0;
}

/* Everything before the first step; data-parallel, process 0 alone reads the test set and
 * opens the log. */
static int setup(Trainer *t) {
  const nncc_model_desc *d = t->d;
  if (nncc_data_load(&t->train, d, t->data_path, "--data")) return complain(t, 1, "%s", nncc_last_error());
  if (t->rank == 0 && t->test_path[0] && nncc_data_load(&t->test, d, t->test_path, "--test"))
    return complain(t, 1, "%s", nncc_last_error());
  if (alloc_batches(t)) return 1;
  if (!(t->m = nncc_rt_create(d))) return complain(t, 1, "%s", nncc_last_error());
  /* init also seeds the dropout stream, so --seed matters when fine-tuning too */
  if (nncc_rt_init(t->m, t->seed) || (t->weights && nncc_rt_load(t->m, t->weights)))
    return complain(t, 1, "%s", nncc_last_error());
  if (t->have_lr && nncc_rt_set_option(t->m, "lr", t->lr)) return complain(t, 1, "--lr: %s", nncc_last_error());
  if (t->dp && find_grads(t)) return 1;
  if (t->log && t->rank == 0) {
    if (!(t->logf = fopen(t->log, "w"))) return complain(t, 1, "cannot write %s: %s", t->log, strerror(errno));
    fprintf(t->logf, "epoch,step,loss\n");
  }
  return 0;
}

/* ---- --text: a character model on a text file ---------------------------------------------
 * The model must take one input, token ids i32[seq] or one-hot f32[seq, V], and one target,
 * label[seq, V].  Token ids: the bytes themselves when every byte is below the classes of
 * both; otherwise the distinct bytes in order of first appearance (at most the classes),
 * written beside --save as <save>.vocab (the bytes, one each) for `sample`.  The N bytes make
 * B = --batch contiguous streams of L = (N - 1) / B steps (stream b: bytes [bL, bL + L), the
 * target of each the byte after it); step s of an epoch feeds bytes [sK, sK + K) of every
 * stream (the last chunk may be shorter), K = bptt (50 without), one nncc_rt_train_step each.
 * Every epoch starts from the zero state (nncc_rt_reset); a stateful model then carries it
 * from chunk to chunk. */

enum { TEXT_CHUNK = 50 };

typedef struct TextModel {
  int onehot;           /* input f32[seq, V] (else i32[seq] ids) */
  int64_t in_classes;   /* ids: the embedding's classes; one-hot: V */
  int64_t classes;      /* the target's */
} TextModel;

/* Whether the model fits --text / sample; fills *tm or says why (returns -1). */
static int text_model(const nncc_model_desc *d, int need_target, TextModel *tm, char *why,
                      size_t size) {
  const nncc_tensor_desc *x = d->n_inputs == 1 ? &d->inputs[0] : NULL;
  int ok = x && ((x->dtype == NNCC_I32 && x->rank == 1 && x->dims[0] < 0) ||
                 (x->dtype == NNCC_F32 && x->rank == 2 && x->dims[0] < 0 && x->dims[1] > 0));
  if (!ok) {
    snprintf(why, size, "a character model takes one input, token ids i32[seq] or one-hot "
             "f32[seq, V]");
    return -1;
  }
  tm->onehot = x->dtype == NNCC_F32;
  tm->in_classes = tm->onehot ? x->dims[1] : x->classes;
  if (need_target) {
    const nncc_tensor_desc *y = d->n_targets == 1 ? &d->targets[0] : NULL;
    if (!y || y->dtype != NNCC_LABEL || y->rank != 1 || y->dims[0] >= 0) {
      snprintf(why, size, "a character model has one target, the next character at every step: "
               "label[seq, V]");
      return -1;
    }
    tm->classes = y->classes;
  } else {
    tm->classes = tm->in_classes;
  }
  return 0;
}

static char *vocab_path(const char *weights) {
  size_t n = strlen(weights) + 7;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s.vocab", weights);
  return p;
}

/* Writes one step's ids into an input buffer: ids [B, k] or one-hot [B, k, V]. */
static void put_ids(const TextModel *tm, void *buf, const int32_t *ids, int64_t n) {
  if (!tm->onehot) {
    memcpy(buf, ids, (size_t)n * sizeof(int32_t));
    return;
  }
  float *f = buf;
  memset(f, 0, (size_t)(n * tm->in_classes) * sizeof(float));
  for (int64_t i = 0; i < n; i++) f[i * tm->in_classes + ids[i]] = 1.0f;
}

static int train_text(Trainer *t) {
  const nncc_model_desc *d = t->d;
  TextModel tm;
  char why[256];
  if (text_model(d, 1, &tm, why, sizeof why))
    return complain(t, 2, "--text: model '%s' is not a character model: %s", d->name, why);
  FILE *f = fopen(t->text, "rb");
  if (!f) return complain(t, 1, "cannot read %s: %s", t->text, strerror(errno));
  unsigned char *text = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 65536;
      unsigned char *p = nc > cap ? realloc(text, nc) : NULL;
      if (!p) {
        free(text);
        fclose(f);
        return complain(t, 1, "%s: out of memory", t->text);
      }
      text = p;
      cap = nc;
    }
    size_t got = fread(text + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  int status = 0;
  int32_t map[256];
  unsigned char vocab[256];
  int nvocab = 0, identity = 1;
  int64_t limit = tm.in_classes < tm.classes ? tm.in_classes : tm.classes;
  int32_t *ids = NULL, *next = NULL;
  if (bad) {
    status = complain(t, 1, "cannot read %s: %s", t->text, strerror(errno));
    goto done;
  }
  if (n < 2) {
    status = complain(t, 1, "%s: %zu bytes is too short (the model learns each byte's successor)",
                      t->text, n);
    goto done;
  }
  for (int i = 0; i < 256; i++) map[i] = -1;
  for (size_t i = 0; i < n; i++) {
    if (map[text[i]] < 0) map[text[i]] = nvocab, vocab[nvocab++] = text[i];
    if (text[i] >= limit) identity = 0;
  }
  if (identity) {
    for (int i = 0; i < 256; i++) map[i] = i;
  } else if (nvocab > limit) {
    status = complain(t, 1, "%s holds %d distinct bytes, more than the %lld classes of model '%s' "
                      "(a byte-level model needs 256)", t->text, nvocab, (long long)limit, d->name);
    goto done;
  }
  int64_t B = t->batch, K = t->td->bptt > 0 ? t->td->bptt : TEXT_CHUNK;
  int64_t L = (int64_t)(n - 1) / B;
  if (L < 1) {
    status = complain(t, 1, "%s: %zu bytes make no stream of a batch of %lld; lower --batch",
                      t->text, n, (long long)B);
    goto done;
  }
  int64_t steps = (L + K - 1) / K, floats;
  if (!nncc_rt_mul_ok(B, K, &floats) || !nncc_rt_mul_ok(floats, tm.onehot ? tm.in_classes : 1, &floats)) {
    status = complain(t, 1, "--batch %lld is too large", (long long)B);
    goto done;
  }
  ids = malloc((size_t)(B * K) * sizeof *ids);
  next = malloc((size_t)(B * K) * sizeof *next);
  void *inbuf = nncc_rt_alloc_floats(floats);
  t->buf = calloc(2, sizeof *t->buf);
  if (t->buf) t->buf[0] = inbuf;
  if (!ids || !next || !inbuf || !t->buf) {
    if (t->buf == NULL) free(inbuf);
    status = complain(t, 1, "out of memory");
    goto done;
  }
  if (!(t->m = nncc_rt_create(d)) || nncc_rt_init(t->m, t->seed) ||
      (t->weights && nncc_rt_load(t->m, t->weights))) {
    status = complain(t, 1, "%s", nncc_last_error());
    goto done;
  }
  if (t->have_lr && nncc_rt_set_option(t->m, "lr", t->lr)) {
    status = complain(t, 1, "--lr: %s", nncc_last_error());
    goto done;
  }
  if (t->log) {
    if (!(t->logf = fopen(t->log, "w"))) {
      status = complain(t, 1, "cannot write %s: %s", t->log, strerror(errno));
      goto done;
    }
    fprintf(t->logf, "epoch,step,loss\n");
  }
  if (!identity && t->save) {
    char *vp = vocab_path(t->save);
    FILE *vf = vp ? fopen(vp, "wb") : NULL;
    int werr = !vf || fwrite(vocab, 1, (size_t)nvocab, vf) != (size_t)nvocab;
    if (vf && fclose(vf) != 0) werr = 1;
    if (werr) status = complain(t, 1, "cannot write %s", vp ? vp : "the vocabulary");
    free(vp);
    if (status) goto done;
  }
  double lr = t->lr;
  if (!t->have_lr && nncc_rt_get_option(t->m, "lr", &lr)) lr = t->td->lr;
  printf("training %s on %s: %zu bytes, %s %d symbols, %lld streams of %lld steps in chunks of "
         "%lld, %lld epoch%s, lr %g, seed %llu%s%s\n", d->name, t->text, n,
         identity ? "bytes as ids," : "vocabulary of", identity ? (int)limit : nvocab,
         (long long)B, (long long)L, (long long)K, (long long)t->epochs, t->epochs == 1 ? "" : "s",
         lr, (unsigned long long)t->seed, t->weights ? ", from " : "", t->weights ? t->weights : "");
  fflush(stdout);
  int64_t total_steps = steps * t->epochs, done_steps = 0;
  double train_time = 0;
  const void *in[1] = {inbuf}, *tg[1] = {next};
  for (int64_t e = 0; e < t->epochs && !status; e++) {
    double t_epoch = now_s(), last_draw = 0, loss_sum = 0;
    int64_t seen = 0;
    nncc_rt_reset(t->m);
    for (int64_t s = 0; s < steps; s++) {
      int64_t k = L - s * K < K ? L - s * K : K;
      double t0 = now_s();
      for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < k; j++) {
          size_t pos = (size_t)(b * L + s * K + j);
          ids[b * k + j] = map[text[pos]];
          next[b * k + j] = map[text[pos + 1]];
        }
      put_ids(&tm, inbuf, ids, B * k);
      float loss = 0;
      if (nncc_rt_train_step(t->m, B, k, in, tg, &loss)) {
        status = complain(t, 1, "epoch %lld, step %lld: %s", (long long)e + 1, (long long)s + 1,
                          nncc_last_error());
        break;
      }
      double t1 = now_s();
      train_time += t1 - t0;
      done_steps++;
      if (t->logf && (fprintf(t->logf, "%lld,%lld,%.9g\n", (long long)e + 1, (long long)done_steps,
                              (double)loss) < 0 || fflush(t->logf) != 0)) {
        status = complain(t, 1, "cannot write %s: %s", t->log, strerror(errno));
        break;
      }
      if (!isfinite(loss)) {
        status = complain(t, 1, "epoch %lld, step %lld: the loss is %s; stopping (the weights "
                          "saved before are kept; a smaller --lr may help)", (long long)e + 1,
                          (long long)s + 1, isnan(loss) ? "nan" : "infinite");
        break;
      }
      loss_sum += (double)loss * (double)k;
      seen += k;
      int last = s + 1 == steps;
      int draw = t->tty ? (last || t1 - last_draw >= 0.1)
                        : (t->progress > 0 && ((s + 1) % t->progress == 0 || last));
      if (draw) {
        last_draw = t1;
        double rate = (double)(seen * B) / (t1 - t_epoch > 0 ? t1 - t_epoch : 1e-9);
        double left = train_time / (double)done_steps * (double)(total_steps - done_steps);
        progress(t, e, s + 1, steps, loss_sum / (double)seen, rate, left);
      }
    }
    if (status) break;
    progress_end(t);
    double secs = now_s() - t_epoch;
    printf("epoch %lld/%lld: loss %.4f, %.1f s, %.0f characters/s", (long long)e + 1,
           (long long)t->epochs, loss_sum / (double)seen, secs,
           (double)(seen * B) / (secs > 0 ? secs : 1e-9));
    if (t->save) {
      if (nncc_rt_save(t->m, t->save)) {
        printf("\n");
        status = complain(t, 1, "%s", nncc_last_error());
        break;
      }
      printf("; saved %s", t->save);
    }
    printf("\n");
    fflush(stdout);
  }
done:
  free(text);
  free(ids);
  free(next);
  return status;
}

static int run(Trainer *t, int argc, char **argv) {
  const nncc_model_desc *d = t->d;
  if (!t->td)
    return complain(t, 2, "the model '%s' is not trainable (it has no loss, or it was compiled "
                    "with --no-train)", d->name);
  int rc = parse_args(t, argc, argv);
  if (rc) return rc;
  if (!t->batch_given) t->batch = t->td->batch > 0 ? t->td->batch : DEFAULT_BATCH;
  if (t->text) {
    if (t->dp) return complain(t, 2, "--text is not data-parallel yet: run it without mpirun");
    return train_text(t);
  }
  if (t->dp && t->batch > (1LL << 40) / t->size)
    return complain(t, 2, "--batch %lld x %d processes is more than 2^40 samples per step",
                    (long long)t->batch, t->size);
  /* every process must be ready (its files read) before the first collective step */
  if ((rc = agree(t, setup(t), "before training"))) return rc;
  if (t->rank != 0) return train(t);
  double lr = t->lr;
  if (!t->have_lr && nncc_rt_get_option(t->m, "lr", &lr)) lr = t->td->lr;
  printf("training %s: %lld samples", d->name, (long long)t->train.samples);
  if (d->has_seq) printf(" of %lld steps", (long long)t->train.seq);
  if (t->test.n) printf(" (test: %lld)", (long long)t->test.samples);
  printf(", %lld epoch%s, batch %lld", (long long)t->epochs, t->epochs == 1 ? "" : "s",
         (long long)t->batch);
  if (t->dp)
    printf(" x %d process%s (global batch %lld)", t->size, t->size == 1 ? "" : "es",
           (long long)t->batch * t->size);
  printf(", lr %g, seed %llu%s%s\n", lr, (unsigned long long)t->seed,
         t->weights ? ", from " : "", t->weights ? t->weights : "");
  fflush(stdout);
  return train(t);
}

int nncc_rt_train_main(const char *prog, int argc, char **argv, const nncc_model_desc *d) {
  return nncc_rt_train_main_dp(prog, argc, argv, d, NULL);
}

int nncc_rt_train_main_dp(const char *prog, int argc, char **argv, const nncc_model_desc *d,
                          const nncc_rt_dp *dp) {
  Trainer t;
  memset(&t, 0, sizeof t);
  t.prog = prog;
  t.dp = dp;
  t.rank = dp ? dp->rank : 0;
  t.size = dp ? dp->size : 1;
  t.d = d;
  t.td = d->train;
  t.n = d->n_inputs + d->n_targets;
  t.epochs = 1;
  t.progress = DEFAULT_PROGRESS;
  t.tty = isatty(fileno(stderr));
  t.data_path = calloc((size_t)t.n + 1, sizeof *t.data_path);
  t.test_path = calloc((size_t)t.n + 1, sizeof *t.test_path);
  int status;
  if (!t.data_path || !t.test_path) status = complain(&t, 1, "out of memory");
  else status = run(&t, argc, argv);
  if (status < 0) status = 0;   /* --help */
  if (t.logf && fclose(t.logf) != 0 && status == 0) status = complain(&t, 1, "cannot write %s", t.log);
  for (int k = 0; t.buf && k < t.n; k++) free(t.buf[k]);
  free(t.buf);
  free(t.in);
  free(t.tg);
  free(t.perm);
  nncc_rt_destroy(t.m);
  nncc_data_free(&t.train);
  nncc_data_free(&t.test);
  free(t.data_path);
  free(t.test_path);
  fflush(stdout);
  return status;
}

/* ---- sample: text from a character model ----------------------------------------------------
 *   ./model sample [--weights W] [--prime TEXT] [--length N] [--temperature T] [--seed S]
 * Streams the prime through M_step from the zero state (batch 1), then N times draws the next
 * symbol from softmax(logits / T) of the first output's last step (T = 0: the arg-max; an
 * output that already holds probabilities, each in [0, 1] and summing to 1, is read as their
 * logarithms) with SplitMix64 seeded by S, prints it and feeds it back.  The symbols are bytes,
 * or the vocabulary W.vocab that `train --text` wrote beside the weights.  The prime and the
 * sampled text go to stdout. */

static uint64_t sample_next64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static int sample_fail(const char *prog, int status, const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  fprintf(stderr, "%s: ", prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (status == 2) fprintf(stderr, "run '%s sample --help' for usage\n", prog);
  return status;
}

int nncc_rt_sample_main(const char *prog, int argc, char **argv, const nncc_model_desc *d) {
  const char *weights = NULL, *prime = NULL;
  int64_t length = 200;
  double temperature = 1.0;
  unsigned long long seed = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: %s sample [--weights W.safetensors] [--prime TEXT] [--length N]\n"
             "       [--temperature T] [--seed S]\n"
             "Writes text with the character model '%s': the prime, then N characters, each drawn\n"
             "from the model's distribution for the next one given everything before it (M_step).\n\n"
             "options:\n"
             "  --weights FILE      the weights (default: the embedded ones, else the default\n"
             "                      initialisation); FILE.vocab, when present, maps the classes\n"
             "                      to bytes (train --text writes it), else class k is byte k\n"
             "  --prime TEXT        the text to start from (default: the first symbol)\n"
             "  --length N          characters to write after the prime (default 200)\n"
             "  --temperature T     divides the logits before the softmax (default 1; 0: always\n"
             "                      the most likely character)\n"
             "  --seed S            seeds the draws (default 0)\n", prog, d->name);
      return 0;
    }
    static const char *const opts[] = {"--weights", "--prime", "--length", "--temperature", "--seed"};
    const char *opt = NULL, *val = NULL;
    if (match_option(opts, sizeof opts / sizeof opts[0], argc, argv, &i, &opt, &val))
      return sample_fail(prog, 2, "%s needs a value", opt);
    if (!opt) return sample_fail(prog, 2, "%s '%s'", a[0] == '-' ? "unknown option" : "unexpected argument", a);
    char *end;
    errno = 0;
    if (!strcmp(opt, "--weights")) weights = val;
    else if (!strcmp(opt, "--prime")) prime = val;
    else if (!strcmp(opt, "--length")) {
      long long v = strtoll(val, &end, 10);
      if (errno || end == val || *end || v < 0 || v > 1000000000)
        return sample_fail(prog, 2, "--length wants an integer in [0, 1000000000], got '%s'", val);
      length = v;
    } else if (!strcmp(opt, "--temperature")) {
      temperature = strtod(val, &end);
      if (errno || end == val || *end || !(temperature >= 0) || !isfinite(temperature))
        return sample_fail(prog, 2, "--temperature wants a number >= 0, got '%s'", val);
    } else {
      seed = strtoull(val, &end, 10);
      if (errno || end == val || *end || val[0] == '-')
        return sample_fail(prog, 2, "--seed wants an integer in [0, 2^64), got '%s'", val);
    }
  }
  TextModel tm;
  char why[256];
  if (!d->step)
    return sample_fail(prog, 2, "model '%s' cannot sample: it has no M_step (it needs recurrent "
                       "layers, all unidirectional, over a symbolic length)", d->name);
  if (text_model(d, 0, &tm, why, sizeof why))
    return sample_fail(prog, 2, "model '%s' is not a character model: %s", d->name, why);
  const nncc_tensor_desc *y = d->n_outputs > 0 ? &d->outputs[0] : NULL;
  int seq_out = y && y->rank == 2 && y->dims[0] < 0;
  if (!y || y->dtype != NNCC_F32 || !(seq_out || y->rank == 1))
    return sample_fail(prog, 2, "model '%s' cannot sample: its first output must be the next "
                       "character's scores, f32[seq, V] or f32[V]", d->name);
  int64_t V = seq_out ? y->dims[1] : y->dims[0];
  /* the symbols: W.vocab, else bytes */
  unsigned char vocab[256];
  int nvocab = 0;
  if (weights) {
    char *vp = vocab_path(weights);
    FILE *vf = vp ? fopen(vp, "rb") : NULL;
    if (vf) {
      nvocab = (int)fread(vocab, 1, sizeof vocab, vf);
      fclose(vf);
      if (nvocab < 1) {
        free(vp);
        return sample_fail(prog, 1, "%s.vocab is empty", weights);
      }
    }
    free(vp);
  }
  int64_t symbols = nvocab ? nvocab : (V < 256 ? V : 256);
  if (symbols > V || symbols > tm.in_classes) symbols = V < tm.in_classes ? V : tm.in_classes;
  int32_t map[256];
  for (int i = 0; i < 256; i++) map[i] = nvocab ? -1 : (i < symbols ? i : -1);
  for (int i = 0; i < nvocab; i++) map[vocab[i]] = i;
  if (!prime || !*prime) {
    static char first[2];
    first[0] = (char)(nvocab ? vocab[0] : 0);
    prime = first;
    if (!nvocab) prime = "";
  }
  for (const unsigned char *p = (const unsigned char *)prime; *p; p++)
    if (map[*p] < 0)
      return sample_fail(prog, 1, "--prime: the byte 0x%02x ('%c') is not in the model's "
                         "vocabulary of %lld symbols", *p, *p >= 32 && *p < 127 ? *p : '?',
                         (long long)symbols);
  if (!*prime) return sample_fail(prog, 2, "--prime: give the text to start from");
  nncc_model *m = nncc_rt_create(d);
  if (!m) return sample_fail(prog, 1, "%s", nncc_last_error());
  int status = 0;
  float *in = malloc((size_t)(tm.onehot ? tm.in_classes : 1) * sizeof(float));
  void **out = calloc((size_t)d->n_outputs, sizeof *out);
  double *p = malloc((size_t)V * sizeof *p);
  for (int i = 0; out && i < d->n_outputs; i++) {
    int64_t numel = 1;
    for (int k = 0; k < d->outputs[i].rank; k++) numel *= d->outputs[i].dims[k] < 0 ? 1 : d->outputs[i].dims[k];
    if (!(out[i] = malloc((size_t)numel * 4))) status = 1;
  }
  if (!in || !out || !p || status) {
    status = sample_fail(prog, 1, "out of memory");
    goto done;
  }
  if (weights && nncc_rt_load(m, weights)) {
    status = sample_fail(prog, 1, "%s", nncc_last_error());
    goto done;
  }
  uint64_t rng = seed;
  const void *inp[1] = {in};
  fputs(prime, stdout);
  int32_t id = 0;
  for (const unsigned char *c = (const unsigned char *)prime; *c; c++) {
    id = map[*c];
    put_ids(&tm, in, &id, 1);
    if (nncc_rt_step(m, 1, inp, out)) {
      status = sample_fail(prog, 1, "%s", nncc_last_error());
      goto done;
    }
  }
  for (int64_t k = 0; k < length; k++) {
    const float *z = out[0];
    int probs = 1;
    double sum = 0;
    for (int64_t v = 0; v < symbols; v++) {
      if (!(z[v] >= 0 && z[v] <= 1)) probs = 0;
      sum += z[v];
    }
    if (fabs(sum - 1) > 1e-3) probs = 0;
    int64_t best = 0;
    double mx = -INFINITY;
    for (int64_t v = 0; v < symbols; v++) {
      p[v] = probs ? log(z[v] > 0 ? (double)z[v] : 1e-45) : (double)z[v];
      if (p[v] > mx) mx = p[v], best = v;
    }
    int64_t pick = best;
    if (temperature > 0) {
      double tot = 0;
      for (int64_t v = 0; v < symbols; v++) tot += (p[v] = exp((p[v] - mx) / temperature));
      double u = (double)(sample_next64(&rng) >> 11) * (1.0 / 9007199254740992.0) * tot;
      for (pick = 0; pick < symbols - 1 && u >= p[pick]; pick++) u -= p[pick];
    }
    int byte = nvocab ? vocab[pick] : (int)pick;
    putchar(byte);
    id = (int32_t)pick;
    put_ids(&tm, in, &id, 1);
    if (nncc_rt_step(m, 1, inp, out)) {
      status = sample_fail(prog, 1, "%s", nncc_last_error());
      goto done;
    }
  }
  putchar('\n');
done:
  fflush(stdout);
  for (int i = 0; out && i < d->n_outputs; i++) free(out[i]);
  free(out);
  free(in);
  free(p);
  nncc_rt_destroy(m);
  return status;
}

