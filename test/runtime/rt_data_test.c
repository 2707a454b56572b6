/* rt_data_test.c - tests runtime/dataset.c, the trainer's data pipeline: IDX (plain, gzip)
 * and .npy files bound to a model's inputs and targets (reshaped when the values per sample
 * agree; [samples, seq, ...] exactly for a sequence), sample counts, labels and token ids out
 * of range, the seeded shuffle (a permutation, the same for the same seed and epoch, another
 * for another epoch, unbiased), and mini-batches (the last one partial or dropped) gathered
 * in the shuffled order.  Usage: rt_data_test DIR.  Driven by rt_data.test, which also
 * checks the shuffle against a Python transcription of docs/training.md. */
#include "dataset.h"
#include "idx.h"
#include "rt_internal.h"
#include "rt_test.h"

static const char *dir;

static const char *at(const char *name) {
  static char buf[4][4096];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

/* image f32[1, 2, 2], digit label[3] */
static const nncc_tensor_desc img_inputs[] = {{"image", NNCC_F32, 3, {1, 2, 2}, 0}};
static const nncc_tensor_desc img_targets[] = {{"digit", NNCC_LABEL, 0, {0}, 3}};
static const nncc_model_desc img_desc = {
  .abi_version = NNCC_ABI_VERSION, .name = "img", .n_inputs = 1, .n_targets = 1,
  .inputs = img_inputs, .targets = img_targets,
};
/* ids i32[seq] (vocabulary 5), w f32[seq, 2]; tags label[seq, 4] */
static const nncc_tensor_desc seq_in[] = {{"ids", NNCC_I32, 1, {-1}, 5}, {"w", NNCC_F32, 2, {-1, 2}, 0}};
static const nncc_tensor_desc seq_tg[] = {{"tags", NNCC_LABEL, 1, {-1}, 4}};
static const nncc_model_desc seqm_desc = {
  .abi_version = NNCC_ABI_VERSION, .has_seq = 1, .name = "seqm", .n_inputs = 2, .n_targets = 1,
  .inputs = seq_in, .targets = seq_tg,
};

static void load_bad(const char *name, const nncc_model_desc *d, const char *p0, const char *p1,
                     const char *p2, int code, const char *msg) {
  const char *paths[3] = {p0, p1, p2};
  nncc_dataset ds;
  int rc = nncc_data_load(&ds, d, paths, "--data");
  expect_err(__FILE__, __LINE__, name, rc, code, msg);
  EXPECT(ds.arr == NULL && ds.samples == 0, "case %s: the data set is empty after a failure", name);
  nncc_data_free(&ds);
}

static void test_load(void) {
  uint8_t px[5 * 4];
  for (int i = 0; i < 20; i++) px[i] = (uint8_t)(i * 10);
  uint8_t lab[5] = {0, 1, 2, 0, 1}, lab_bad[5] = {0, 1, 2, 3, 1};
  int64_t d3[3] = {5, 2, 2}, d1[1] = {5}, d2[2] = {5, 4}, d4[1] = {4}, dwrong[2] = {5, 3};
  nncc_idx_write(at("x.idx.gz"), NNCC_IDX_U8, 3, d3, px, 1);
  nncc_idx_write(at("x_flat.idx"), NNCC_IDX_U8, 2, d2, px, 0);
  nncc_idx_write(at("x_wrong.idx"), NNCC_IDX_U8, 2, dwrong, px, 0);
  nncc_idx_write(at("y.idx"), NNCC_IDX_U8, 1, d1, lab, 0);
  nncc_idx_write(at("y4.idx"), NNCC_IDX_U8, 1, d4, lab, 0);
  nncc_idx_write(at("y_bad.idx.gz"), NNCC_IDX_U8, 1, d1, lab_bad, 1);
  int32_t lab32[5] = {2, 2, 1, 0, 0};
  nncc_npy_write(at("y.npy"), NNCC_I32, 1, d1, lab32);
  float xf[20];
  for (int i = 0; i < 20; i++) xf[i] = (float)i;
  nncc_npy_write(at("x.npy"), NNCC_F32, 3, d3, xf);
  nncc_npy_write(at("y_float.npy"), NNCC_F32, 1, d1, xf);

  const char *paths[2] = {at("x.idx.gz"), at("y.idx")};
  nncc_dataset ds;
  int rc = nncc_data_load(&ds, &img_desc, paths, "--data");
  EXPECT(rc == 0, "load: %s", nncc_last_error());
  if (!rc) {
    printf("case load_idx: %lld samples, rows %lld %lld, image[1] = %.4f .. %.4f, digit = %d %d %d\n",
           (long long)ds.samples, (long long)ds.row[0], (long long)ds.row[1],
           ((float *)ds.arr[0].data)[4], ((float *)ds.arr[0].data)[7], ((int32_t *)ds.arr[1].data)[0],
           ((int32_t *)ds.arr[1].data)[1], ((int32_t *)ds.arr[1].data)[2]);
    EXPECT(ds.samples == 5 && ds.row[0] == 4 && ds.row[1] == 1 && ds.seq == 1, "load_idx");
  }
  nncc_data_free(&ds);

  /* [5, 4] feeds [1, 2, 2] (4 values per sample); .npy mixes with IDX */
  const char *paths2[2] = {at("x_flat.idx"), at("y.npy")};
  rc = nncc_data_load(&ds, &img_desc, paths2, "--data");
  EXPECT(rc == 0 && ds.row[0] == 4 && ((int32_t *)ds.arr[1].data)[0] == 2, "reshape + npy: %s", nncc_last_error());
  nncc_data_free(&ds);
  const char *paths3[2] = {at("x.npy"), at("y.idx")};
  rc = nncc_data_load(&ds, &img_desc, paths3, "--data");
  EXPECT(rc == 0 && ((float *)ds.arr[0].data)[19] == 19.0f, "npy images unscaled: %s", nncc_last_error());
  nncc_data_free(&ds);

  load_bad("missing_target", &img_desc, at("x.idx.gz"), NULL, NULL, NNCC_ERR_ARG,
           "missing --data digit=FILE (every input and target is needed)");
  load_bad("missing_file", &img_desc, at("nope.idx"), at("y.idx"), NULL, NNCC_ERR_IO, "cannot open");
  load_bad("wrong_shape", &img_desc, at("x_wrong.idx"), at("y.idx"), NULL, NNCC_ERR_FORMAT,
           "x_wrong.idx is [5, 3], 3 values per sample; input 'image' needs [batch, 1, 2, 2], 4 values per sample");
  load_bad("labels_as_images", &img_desc, at("y.idx"), at("y.idx"), NULL, NNCC_ERR_FORMAT,
           "y.idx is [5], 1 value per sample; input 'image' needs [batch, 1, 2, 2], 4 values per sample");
  load_bad("images_as_labels", &img_desc, at("x.idx.gz"), at("x.idx.gz"), NULL, NNCC_ERR_FORMAT,
           "x.idx.gz is [5, 2, 2], 4 values per sample; target 'digit' needs [batch], 1 value per sample");
  load_bad("sample_counts", &img_desc, at("x.idx.gz"), at("y4.idx"), NULL, NNCC_ERR_FORMAT,
           "x.idx.gz has 5 (every --data file needs the same number)");
  load_bad("label_out_of_range", &img_desc, at("x.idx.gz"), at("y_bad.idx.gz"), NULL, NNCC_ERR_RANGE,
           "y_bad.idx.gz: label 3 at sample 3 is outside [0, 3) (target 'digit' has 3 classes)");
  load_bad("float_labels", &img_desc, at("x.idx.gz"), at("y_float.npy"), NULL, NNCC_ERR_FORMAT,
           "holds float32 values; integers (int32 or int64) are needed");
  FILE *f = fopen(at("corrupt.gz"), "wb");
  fwrite("\x1f\x8b\x08\x00garbage", 1, 11, f);
  fclose(f);
  load_bad("corrupt_gzip", &img_desc, at("corrupt.gz"), at("y.idx"), NULL, NNCC_ERR_FORMAT, "corrupt.gz");
  int64_t d0[3] = {0, 2, 2}, d0l[1] = {0};
  nncc_idx_write(at("x0.idx"), NNCC_IDX_U8, 3, d0, px, 0);
  nncc_idx_write(at("y0.idx"), NNCC_IDX_U8, 1, d0l, lab, 0);
  load_bad("no_samples", &img_desc, at("x0.idx"), at("y0.idx"), NULL, NNCC_ERR_FORMAT, "x0.idx has no samples");

  /* sequences: [samples, seq, ...] exactly, one seq for all files */
  int32_t ids[3 * 6], tags[3 * 6], ids_bad[3 * 6];
  float w[3 * 7 * 2];
  for (int i = 0; i < 18; i++) ids[i] = i % 5, tags[i] = i % 4, ids_bad[i] = i == 13 ? 5 : 0;
  for (int i = 0; i < 42; i++) w[i] = (float)i;
  int64_t ds2[2] = {3, 6}, ds3[3] = {3, 6, 2}, ds3b[3] = {3, 7, 2}, ds2f[2] = {3, 12};
  nncc_npy_write(at("ids.npy"), NNCC_I32, 2, ds2, ids);
  nncc_npy_write(at("ids_bad.npy"), NNCC_I32, 2, ds2, ids_bad);
  nncc_npy_write(at("tags.npy"), NNCC_I32, 2, ds2, tags);
  nncc_npy_write(at("w.npy"), NNCC_F32, 3, ds3, w);
  nncc_npy_write(at("w7.npy"), NNCC_F32, 3, ds3b, w);
  nncc_npy_write(at("wflat.npy"), NNCC_F32, 2, ds2f, w);
  const char *sp[3] = {at("ids.npy"), at("w.npy"), at("tags.npy")};
  rc = nncc_data_load(&ds, &seqm_desc, sp, "--data");
  EXPECT(rc == 0, "seq load: %s", nncc_last_error());
  if (!rc) printf("case load_seq: %lld samples, seq %lld, rows %lld %lld %lld\n", (long long)ds.samples,
                  (long long)ds.seq, (long long)ds.row[0], (long long)ds.row[1], (long long)ds.row[2]);
  nncc_data_free(&ds);
  load_bad("seq_mismatch", &seqm_desc, at("ids.npy"), at("w7.npy"), at("tags.npy"), NNCC_ERR_FORMAT,
           "w7.npy has seq 7 (dimension 1), but");
  load_bad("seq_flat", &seqm_desc, at("ids.npy"), at("wflat.npy"), at("tags.npy"), NNCC_ERR_FORMAT,
           "wflat.npy is [3, 12]; input 'w' needs [batch, seq, 2] (a sequence's files are [samples, seq, ...] exactly)");
  load_bad("token_out_of_range", &seqm_desc, at("ids_bad.npy"), at("w.npy"), at("tags.npy"), NNCC_ERR_RANGE,
           "ids_bad.npy: token id 5 at sample 2, element 1 is outside [0, 5) (input 'ids' has 5 classes)");
}

static int is_perm(const int64_t *p, int64_t n) {
  char *seen = calloc((size_t)n + 1, 1);
  int ok = 1;
  for (int64_t i = 0; i < n; i++) {
    if (p[i] < 0 || p[i] >= n || seen[p[i]]) ok = 0;
    else seen[p[i]] = 1;
  }
  free(seen);
  return ok;
}

static void test_shuffle(void) {
  int64_t a[10], b[10], c[10];
  nncc_data_shuffle(a, 10, 1, 0);
  nncc_data_shuffle(b, 10, 1, 0);
  nncc_data_shuffle(c, 10, 1, 1);
  /* the values the lit test compares with Python */
  for (int64_t e = 0; e < 3; e++) {
    nncc_data_shuffle(c, 10, 1, e);
    printf("case shuffle_seed1_epoch%lld:", (long long)e);
    for (int i = 0; i < 10; i++) printf(" %lld", (long long)c[i]);
    printf("\n");
  }
  nncc_data_shuffle(c, 10, 12345678901234567ull, 7);
  printf("case shuffle_seed12345678901234567_epoch7:");
  for (int i = 0; i < 10; i++) printf(" %lld", (long long)c[i]);
  printf("\n");
  EXPECT(is_perm(a, 10) && memcmp(a, b, sizeof a) == 0, "same seed and epoch, same permutation");
  nncc_data_shuffle(b, 10, 1, 1);
  EXPECT(memcmp(a, b, sizeof a) != 0, "another epoch, another permutation");
  nncc_data_shuffle(b, 10, 2, 0);
  EXPECT(memcmp(a, b, sizeof a) != 0, "another seed, another permutation");
  int64_t one[1];
  nncc_data_shuffle(one, 1, 5, 5);
  EXPECT(one[0] == 0, "one sample");
  nncc_data_shuffle(NULL, 0, 5, 5);

  /* unbiased: 24000 shuffles of 4 (seed 3, epochs 0..23999): every one of the 24 orders
   * within 15% of 1000 */
  int count[256] = {0}, lo = 1 << 30, hi = 0;
  for (int64_t e = 0; e < 24000; e++) {
    int64_t p[4];
    nncc_data_shuffle(p, 4, 3, e);
    count[p[0] * 64 + p[1] * 16 + p[2] * 4 + p[3]]++;
  }
  int orders = 0;
  for (int i = 0; i < 256; i++)
    if (count[i]) {
      orders++;
      lo = count[i] < lo ? count[i] : lo;
      hi = count[i] > hi ? count[i] : hi;
    }
  printf("case shuffle_uniform: %d orders of 4, each %d..%d times in 24000\n", orders, lo, hi);
  EXPECT(orders == 24 && lo > 850 && hi < 1150, "uniform");
  int64_t *big = malloc(100000 * sizeof *big);
  nncc_data_shuffle(big, 100000, 9, 2);
  EXPECT(is_perm(big, 100000), "a permutation of 100000");
  free(big);
}

static void test_batches(void) {
  EXPECT(nncc_data_batches(10, 4, 0) == 3 && nncc_data_batches(10, 4, 1) == 2, "10 by 4");
  EXPECT(nncc_data_batches(8, 4, 0) == 2 && nncc_data_batches(8, 4, 1) == 2, "8 by 4");
  EXPECT(nncc_data_batches(3, 4, 0) == 1 && nncc_data_batches(3, 4, 1) == 0, "3 by 4");
  EXPECT(nncc_data_batches(60000, 64, 0) == 938, "MNIST by 64");

  /* 10 samples of (x f32[1, 2, 2] = 4 values i*4.., label i % 3), shuffled, by 4 */
  uint8_t px[40], lab[10];
  for (int i = 0; i < 40; i++) px[i] = (uint8_t)i;
  for (int i = 0; i < 10; i++) lab[i] = (uint8_t)(i % 3);
  int64_t d3[3] = {10, 2, 2}, d1[1] = {10};
  nncc_idx_write(at("bx.idx"), NNCC_IDX_U8, 3, d3, px, 0);
  nncc_idx_write(at("by.idx"), NNCC_IDX_U8, 1, d1, lab, 0);
  const char *paths[2] = {at("bx.idx"), at("by.idx")};
  nncc_dataset ds;
  if (nncc_data_load(&ds, &img_desc, paths, "--data")) {
    EXPECT(0, "load: %s", nncc_last_error());
    return;
  }
  int64_t perm[10];
  nncc_data_shuffle(perm, 10, 1, 0);
  float *x = nncc_rt_alloc_floats(4 * 4);
  int32_t *y = (int32_t *)nncc_rt_alloc_floats(4);
  void *bufs[2] = {x, y};
  int seen[10] = {0}, ok = 1;
  int64_t nb = nncc_data_batches(ds.samples, 4, 0);
  for (int64_t b = 0; b < nb; b++) {
    int64_t first = b * 4, count = ds.samples - first < 4 ? ds.samples - first : 4;
    nncc_data_gather(&ds, perm, first, count, bufs);
    printf("case batch_%lld: %lld samples:", (long long)b, (long long)count);
    for (int64_t i = 0; i < count; i++) {
      int64_t s = perm[first + i];
      seen[s]++;
      printf(" %lld", (long long)s);
      for (int j = 0; j < 4; j++) ok &= x[i * 4 + j] == (float)(s * 4 + j) / 255.0f;
      ok &= y[i] == s % 3;
    }
    printf("\n");
  }
  for (int i = 0; i < 10; i++) ok &= seen[i] == 1;
  EXPECT(ok, "every sample once per epoch, its image and its label together");
  nncc_data_gather(&ds, NULL, 8, 2, bufs);   /* in order (evaluation) */
  EXPECT(y[0] == 8 % 3 && y[1] == 9 % 3 && x[0] == 32 / 255.0f, "unshuffled gather");
  free(x);
  free(y);
  nncc_data_free(&ds);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: rt_data_test DIR\n");
    return 2;
  }
  dir = argv[1];
  test_load();
  test_shuffle();
  test_batches();
  return finish();
}
