/* dataset.c - the trainer's data pipeline: loading and checking data files, the seeded
 * shuffle, mini-batches.  See dataset.h. */
#define _POSIX_C_SOURCE 200809L

#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"
#include "rt_internal.h"

const nncc_tensor_desc *nncc_data_tensor(const nncc_model_desc *d, int k) {
  return k < d->n_inputs ? &d->inputs[k] : &d->targets[k - d->n_inputs];
}

int nncc_data_read(const char *path, int want, nncc_npy *a) {
  memset(a, 0, sizeof *a);
  FILE *fp = fopen(path, "rb");
  if (!fp) return nncc_rt_fail(NNCC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  unsigned char magic[6];
  size_t got = fread(magic, 1, sizeof magic, fp);
  fclose(fp);
  if (got == sizeof magic && !memcmp(magic, "\x93NUMPY", 6)) return nncc_npy_read(path, want, a);
  return nncc_idx_read(path, want, a);
}

void nncc_data_free(nncc_dataset *ds) {
  if (!ds) return;
  for (int k = 0; ds->arr && k < ds->n; k++) nncc_npy_free(&ds->arr[k]);
  free(ds->arr);
  free(ds->row);
  memset(ds, 0, sizeof *ds);
}

static void fmt_dims(char *buf, size_t size, int rank, const int64_t *dims) {
  size_t n = (size_t)snprintf(buf, size, "[");
  for (int k = 0; k < rank && n < size; k++)
    n += (size_t)snprintf(buf + n, size - n, "%s%lld", k ? ", " : "", (long long)dims[k]);
  if (n < size) snprintf(buf + n, size - n, "]");
}

/* "[batch, 1, 28, 28]", "[batch, seq]" */
static void fmt_want(char *buf, size_t size, const nncc_tensor_desc *t) {
  size_t n = (size_t)snprintf(buf, size, "[batch");
  for (int k = 0; k < t->rank && n < size; k++) {
    if (t->dims[k] < 0) n += (size_t)snprintf(buf + n, size - n, ", seq");
    else n += (size_t)snprintf(buf + n, size - n, ", %lld", (long long)t->dims[k]);
  }
  if (n < size) snprintf(buf + n, size - n, "]");
}

static const char *role(const nncc_model_desc *d, int k) { return k < d->n_inputs ? "input" : "target"; }

/* The shape of file k against tensor k; sets row[k] and the seq. */
static int check_shape(nncc_dataset *ds, const nncc_model_desc *d, int k, const char *path,
                       int *seq_from, const char *const *paths) {
  const nncc_tensor_desc *t = nncc_data_tensor(d, k);
  const nncc_npy *a = &ds->arr[k];
  char have[256], want[256];
  fmt_dims(have, sizeof have, a->rank, a->dims);
  fmt_want(want, sizeof want, t);
  if (a->rank < 1)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is a scalar; %s '%s' needs %s (the first dimension "
                        "is the sample)", path, role(d, k), t->name, want);
  int symbolic = 0;
  int64_t per = 1, file_per = 1;
  for (int j = 0; j < t->rank; j++) symbolic |= t->dims[j] < 0;
  for (int j = 1; j < a->rank; j++)   /* with no samples, numel does not bound the rest */
    if (!nncc_rt_mul_ok(file_per, a->dims[j], &file_per))
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is %s: absurdly large samples", path, have);
  if (!symbolic) {
    for (int j = 0; j < t->rank; j++) per *= t->dims[j];
    if (file_per != per)
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is %s, %lld value%s per sample; %s '%s' needs %s, "
                          "%lld value%s per sample", path, have, (long long)file_per,
                          file_per == 1 ? "" : "s", role(d, k), t->name, want, (long long)per,
                          per == 1 ? "" : "s");
  } else {
    int ok = a->rank == t->rank + 1;
    for (int j = 0; ok && j < t->rank; j++) {
      int64_t got = a->dims[j + 1];
      if (t->dims[j] >= 0) {
        ok = got == t->dims[j];
      } else if (*seq_from < 0) {
        ds->seq = got;
        *seq_from = k;
      } else if (got != ds->seq) {
        return nncc_rt_fail(NNCC_ERR_FORMAT, "%s has seq %lld (dimension %d), but %s has seq %lld",
                            path, (long long)got, j + 1, paths[*seq_from], (long long)ds->seq);
      }
    }
    if (!ok)
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is %s; %s '%s' needs %s (a sequence's files are "
                          "[samples, seq, ...] exactly)", path, have, role(d, k), t->name, want);
    if (ds->seq < 1)
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is %s: sequences of length 0", path, have);
  }
  ds->row[k] = file_per;
  return 0;
}

/* Labels and token ids in [0, classes). */
static int check_range(const nncc_dataset *ds, const nncc_model_desc *d, int k, const char *path) {
  const nncc_tensor_desc *t = nncc_data_tensor(d, k);
  if (t->dtype == NNCC_F32 || t->classes <= 0) return 0;
  const int32_t *v = ds->arr[k].data;
  int64_t n = ds->arr[k].numel;
  for (int64_t i = 0; i < n; i++)
    if (v[i] < 0 || v[i] >= t->classes) {
      int64_t s = i / ds->row[k], e = i % ds->row[k];
      char where[64] = "";
      if (ds->row[k] > 1) snprintf(where, sizeof where, ", element %lld", (long long)e);
      return nncc_rt_fail(NNCC_ERR_RANGE, "%s: %s %lld at sample %lld%s is outside [0, %lld) "
                          "(%s '%s' has %lld classes)", path,
                          t->dtype == NNCC_LABEL ? "label" : "token id", (long long)v[i],
                          (long long)s, where, (long long)t->classes, role(d, k), t->name,
                          (long long)t->classes);
    }
  return 0;
}

int nncc_data_load(nncc_dataset *ds, const nncc_model_desc *d, const char *const *paths,
                   const char *flag) {
  memset(ds, 0, sizeof *ds);
  int n = d->n_inputs + d->n_targets, rc = 0, seq_from = -1, samples_from = -1;
  for (int k = 0; k < n; k++)
    if (!paths[k])
      return nncc_rt_fail(NNCC_ERR_ARG, "missing %s %s=FILE (every input and target is needed)",
                          flag, nncc_data_tensor(d, k)->name);
  ds->n = n;
  ds->seq = 1;
  ds->arr = calloc((size_t)n + 1, sizeof *ds->arr);
  ds->row = calloc((size_t)n + 1, sizeof *ds->row);
  if (!ds->arr || !ds->row) rc = nncc_rt_fail(NNCC_ERR_NOMEM, "out of memory");
  for (int k = 0; !rc && k < n; k++) {
    const nncc_tensor_desc *t = nncc_data_tensor(d, k);
    if ((rc = nncc_data_read(paths[k], t->dtype, &ds->arr[k]))) break;
    if ((rc = check_shape(ds, d, k, paths[k], &seq_from, paths))) break;
    int64_t s = ds->arr[k].dims[0];
    if (samples_from < 0) {
      ds->samples = s;
      samples_from = k;
    } else if (s != ds->samples) {
      rc = nncc_rt_fail(NNCC_ERR_FORMAT, "%s has %lld samples, but %s has %lld (every %s file "
                        "needs the same number)", paths[k], (long long)s, paths[samples_from],
                        (long long)ds->samples, flag);
      break;
    }
    if ((rc = check_range(ds, d, k, paths[k]))) break;
  }
  if (!rc && n > 0 && ds->samples < 1)
    rc = nncc_rt_fail(NNCC_ERR_FORMAT, "%s has no samples", paths[0]);
  if (rc) nncc_data_free(ds);
  return rc;
}

/* ---- shuffling and batches ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void nncc_data_shuffle(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch) {
  uint64_t state = seed ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull);
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    uint64_t bound = (uint64_t)i + 1, threshold = (0 - bound) % bound, r;
    do r = splitmix64(&state);
    while (r < threshold);   /* unbiased: reject the short last interval */
    int64_t j = (int64_t)(r % bound), tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
}

int64_t nncc_data_batches(int64_t samples, int64_t batch, int drop_last) {
  if (samples < 1 || batch < 1) return 0;
  return drop_last ? samples / batch : samples / batch + (samples % batch != 0);
}

void nncc_data_gather(const nncc_dataset *ds, const int64_t *perm, int64_t first, int64_t count,
                      void *const *bufs) {
  for (int k = 0; k < ds->n; k++) {
    size_t row = (size_t)ds->row[k] * 4;
    const char *src = ds->arr[k].data;
    char *dst = bufs[k];
    for (int64_t i = 0; i < count; i++) {
      int64_t s = perm ? perm[first + i] : first + i;
      memcpy(dst + (size_t)i * row, src + (size_t)s * row, row);
    }
  }
}
