/* rt_npy_test.c - tests runtime/npy.c: write -> read round trips, the header layout numpy
 * expects, conversions (float64, int64, big-endian, uint8, bool), and one case per kind of
 * bad .npy file (each generated here).  numpy's own files are tested from lit
 * (standalone*.test).  Usage: rt_npy_test DIR.  Driven by rt_npy.test. */
#include <math.h>

#include "npy.h"
#include "rt_test.h"

static const char *dir;
static char path_buf[4096];

static const char *at(const char *name) {
  snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
  return path_buf;
}

/* A .npy v1 file: magic, version major.minor, the header dict as given (padded with spaces
 * and '\n' to 64 unless raw), then n data bytes. */
static void write_npy(const char *name, int major, const char *dict, int raw, const void *data, size_t n) {
  char hdr[1024];
  size_t hn = strlen(dict), pre = major == 1 ? 10 : 12;
  memcpy(hdr, dict, hn);
  if (!raw) {
    while ((pre + hn + 1) % 64) hdr[hn++] = ' ';
    hdr[hn++] = '\n';
  }
  FILE *f = fopen(at(name), "wb");
  unsigned char p[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)major, 0,
                         (unsigned char)hn, (unsigned char)(hn >> 8), 0, 0};
  fwrite(p, 1, pre, f);
  fwrite(hdr, 1, hn, f);
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

static void bad(const char *name, const char *file, int want, int code, const char *msg) {
  nncc_npy a;
  int rc = nncc_npy_read(at(file), want, &a);
  expect_err(__FILE__, __LINE__, name, rc, code, msg);
  EXPECT(a.data == NULL && a.rank == 0, "case %s: the array is empty after a failure", name);
  nncc_npy_free(&a);
}

static void bad_dict(const char *name, const char *dict, size_t n, int want, int code, const char *msg) {
  static const unsigned char zeros[64];
  char file[128];
  snprintf(file, sizeof file, "%s.npy", name);
  write_npy(file, 1, dict, 0, zeros, n);
  bad(name, file, want, code, msg);
}

static void test_round_trip(void) {
  float x[6] = {1.5f, -2, 0, 1e-40f, 3.25f, -0.0f};
  int64_t dims[2] = {2, 3};
  EXPECT(nncc_npy_write(at("f.npy"), NNCC_F32, 2, dims, x) == 0, "write: %s", nncc_last_error());
  nncc_npy a;
  EXPECT(nncc_npy_read(at("f.npy"), NNCC_F32, &a) == 0, "read: %s", nncc_last_error());
  EXPECT(a.rank == 2 && a.dims[0] == 2 && a.dims[1] == 3 && a.numel == 6 && !strcmp(a.descr, "<f4") &&
             a.dtype == NNCC_F32 && memcmp(a.data, x, sizeof x) == 0 && (uintptr_t)a.data % 64 == 0,
         "f32 round trip");
  nncc_npy_free(&a);

  /* the header numpy writes: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } */
  FILE *f = fopen(at("f.npy"), "rb");
  unsigned char buf[256];
  size_t got = fread(buf, 1, sizeof buf, f);
  fclose(f);
  EXPECT(got == 128 + 24 && buf[6] == 1 && buf[7] == 0 && buf[8] + 10 == 128 && buf[127] == '\n',
         "v1.0, header padded to a multiple of 64 bytes: %zu bytes, hlen %d", got, buf[8]);
  printf("case npy_header: %.*s\n", 59, (const char *)buf + 10);
  EXPECT(!memcmp(buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 59), "the dict");

  int32_t ids[4] = {0, 7, -3, 2147483647};
  int64_t d1[1] = {4};
  EXPECT(nncc_npy_write(at("i.npy"), NNCC_I32, 1, d1, ids) == 0, "write i32: %s", nncc_last_error());
  EXPECT(nncc_npy_read(at("i.npy"), NNCC_I32, &a) == 0, "read i32: %s", nncc_last_error());
  EXPECT(a.rank == 1 && a.dims[0] == 4 && !strcmp(a.descr, "<i4") && memcmp(a.data, ids, sizeof ids) == 0,
         "i32 round trip (1-d)");
  nncc_npy_free(&a);
  f = fopen(at("i.npy"), "rb");
  got = fread(buf, 1, sizeof buf, f);
  fclose(f);
  EXPECT(got > 60 && strstr((char *)buf + 10, "'shape': (4,), }"), "1-d shape has a trailing comma");
  /* an i32 file read as float converts */
  EXPECT(nncc_npy_read(at("i.npy"), NNCC_F32, &a) == 0 && ((float *)a.data)[1] == 7.0f, "i32 -> f32");
  nncc_npy_free(&a);

  /* rank 0 and empty arrays */
  float s = 42;
  EXPECT(nncc_npy_write(at("s.npy"), NNCC_F32, 0, NULL, &s) == 0, "write scalar");
  EXPECT(nncc_npy_read(at("s.npy"), NNCC_F32, &a) == 0 && a.rank == 0 && a.numel == 1 &&
             ((float *)a.data)[0] == 42,
         "scalar round trip");
  nncc_npy_free(&a);
  int64_t d0[2] = {0, 5};
  EXPECT(nncc_npy_write(at("e.npy"), NNCC_F32, 2, d0, NULL) == 0, "write empty");
  EXPECT(nncc_npy_read(at("e.npy"), NNCC_F32, &a) == 0 && a.rank == 2 && a.numel == 0, "empty round trip");
  nncc_npy_free(&a);
  EXPECT_ERR("write_missing_dir", nncc_npy_write(at("no/dir/y.npy"), NNCC_F32, 2, dims, x), NNCC_ERR_IO,
             "no/dir/y.npy: No such file or directory");
}

static void test_conversions(void) {
  nncc_npy a;
  double d[3] = {1.5, -1e300, 0.1};
  write_npy("f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 0, d, sizeof d);
  EXPECT(nncc_npy_read(at("f8.npy"), NNCC_F32, &a) == 0, "f8: %s", nncc_last_error());
  float *f = a.data;
  EXPECT(f[0] == 1.5f && f[1] == -INFINITY && f[2] == 0.1f, "f8 -> f32: %g %g %g", f[0], f[1], f[2]);
  nncc_npy_free(&a);

  int64_t l[4] = {0, 4, -1, 2147483647};
  write_npy("i8.npy", 1, "{\"shape\": (2, 2), \"fortran_order\": False, \"descr\": \"<i8\"}", 0, l, sizeof l);
  EXPECT(nncc_npy_read(at("i8.npy"), NNCC_I32, &a) == 0, "i8: %s", nncc_last_error());
  int32_t *i = a.data;
  EXPECT(a.dims[0] == 2 && a.dims[1] == 2 && i[1] == 4 && i[2] == -1 && i[3] == 2147483647,
         "i8 -> i32 (keys in another order, double quotes)");
  nncc_npy_free(&a);

  unsigned char be[8] = {0x3F, 0xC0, 0, 0, 0xC0, 0x20, 0, 0};   /* 1.5, -2.5 big-endian */
  write_npy("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2L,), }", 0, be, 8);
  EXPECT(nncc_npy_read(at("be.npy"), NNCC_F32, &a) == 0 && ((float *)a.data)[0] == 1.5f &&
             ((float *)a.data)[1] == -2.5f,
         "big-endian f4 (and Python 2's 2L): %s", nncc_last_error());
  nncc_npy_free(&a);

  unsigned char u[3] = {0, 200, 255};
  write_npy("u1.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,)}", 0, u, 3);
  EXPECT(nncc_npy_read(at("u1.npy"), NNCC_I32, &a) == 0 && ((int32_t *)a.data)[2] == 255, "u1 -> i32");
  nncc_npy_free(&a);
  signed char s1[2] = {-5, 5};
  write_npy("i1.npy", 2, "{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", 0, s1, 2);
  EXPECT(nncc_npy_read(at("i1.npy"), NNCC_I32, &a) == 0 && ((int32_t *)a.data)[0] == -5, "i1 (v2.0 file) -> i32: %s",
         nncc_last_error());
  nncc_npy_free(&a);
  unsigned char b1[2] = {1, 0};
  write_npy("b1.npy", 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", 0, b1, 2);
  EXPECT(nncc_npy_read(at("b1.npy"), NNCC_F32, &a) == 0 && ((float *)a.data)[0] == 1.0f, "bool -> f32");
  nncc_npy_free(&a);
}

static void test_bad_files(void) {
  bad("missing_file", "nope.npy", NNCC_F32, NNCC_ERR_IO, "cannot open");
  bad("directory", ".", NNCC_F32, NNCC_ERR_IO, "not a regular file");
  FILE *f = fopen(at("text.npy"), "wb");
  fputs("1 2 3\n", f);
  fclose(f);
  bad("not_npy", "text.npy", NNCC_F32, NNCC_ERR_FORMAT, "text.npy is not a .npy file (no \\x93NUMPY magic)");
  f = fopen(at("short.npy"), "wb");
  fwrite("\x93NUMPY\x01", 1, 7, f);
  fclose(f);
  bad("short_file", "short.npy", NNCC_F32, NNCC_ERR_FORMAT, "short.npy is not a .npy file");
  write_npy("past_end.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 1, NULL, 0);
  FILE *g = fopen(at("past_end.npy"), "r+b");
  fseek(g, 8, SEEK_SET);
  fputc(200, g);   /* header length 200, file much shorter */
  fclose(g);
  bad("header_past_end", "past_end.npy", NNCC_F32, NNCC_ERR_FORMAT, "past_end.npy is truncated: header length 200 "
      "runs past the end of the file");
  write_npy("v9.npy", 9, "{}", 0, NULL, 0);
  bad("version_9", "v9.npy", NNCC_F32, NNCC_ERR_FORMAT, "v9.npy: unsupported .npy version 9.0");

  bad_dict("fortran_order", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, NNCC_F32,
           NNCC_ERR_FORMAT, "fortran_order.npy is in Fortran order; save a C-order array (np.ascontiguousarray)");
  bad_dict("complex_dtype", "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, NNCC_F32,
           NNCC_ERR_FORMAT, "complex_dtype.npy: unsupported dtype '<c8'");
  bad_dict("half_dtype", "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4, NNCC_F32,
           NNCC_ERR_FORMAT, "half_dtype.npy: unsupported dtype '<f2'");
  bad_dict("object_dtype", "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16, NNCC_F32,
           NNCC_ERR_FORMAT, "object_dtype.npy: unsupported dtype '|O'");
  bad_dict("structured_dtype", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8,
           NNCC_F32, NNCC_ERR_FORMAT, "structured_dtype.npy: unsupported dtype (a structured array); save a plain numeric array");
  bad_dict("float_for_ids", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, NNCC_I32,
           NNCC_ERR_FORMAT, "float_for_ids.npy holds float32 values; integers (int32 or int64) are needed");
  bad_dict("missing_shape", "{'descr': '<f4', 'fortran_order': False, }", 4, NNCC_F32, NNCC_ERR_FORMAT,
           "missing_shape.npy: malformed .npy header: no 'shape'");
  bad_dict("unknown_key", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4, NNCC_F32,
           NNCC_ERR_FORMAT, "unknown_key.npy: malformed .npy header: unexpected key 'x'");
  bad_dict("duplicate_key", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4,
           NNCC_F32, NNCC_ERR_FORMAT, "duplicate_key.npy: malformed .npy header: unexpected key 'descr'");
  bad_dict("negative_dim", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 0, NNCC_F32,
           NNCC_ERR_FORMAT, "negative_dim.npy: malformed .npy header: 'shape' must hold non-negative integers");
  bad_dict("shape_not_tuple", "{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", 8, NNCC_F32,
           NNCC_ERR_FORMAT, "shape_not_tuple.npy: malformed .npy header: 'shape' must be a tuple");
  bad_dict("too_many_dims", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4,
           NNCC_F32, NNCC_ERR_FORMAT, "too_many_dims.npy: more than 8 dimensions");
  bad_dict("huge_shape", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 4,
           NNCC_F32, NNCC_ERR_FORMAT, "huge_shape.npy: the shape is absurdly large");
  bad_dict("bad_fortran_value", "{'descr': '<f4', 'fortran_order': maybe, 'shape': (1,), }", 4, NNCC_F32,
           NNCC_ERR_FORMAT, "'fortran_order' must be True or False");
  write_npy("unterminated.npy", 1, "{'descr", 1, NULL, 0);
  bad("unterminated_string", "unterminated.npy", NNCC_F32, NNCC_ERR_FORMAT,
      "unterminated.npy: malformed .npy header: unterminated string");
  bad_dict("long_descr", "{'descr': '<f4444444444', 'fortran_order': False, 'shape': (1,), }", 4, NNCC_F32,
           NNCC_ERR_FORMAT, "malformed .npy header: a string is too long or has an escape");
  bad_dict("text_after_dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } junk", 4, NNCC_F32,
           NNCC_ERR_FORMAT, "malformed .npy header: unexpected text after '}'");
  bad_dict("truncated_data", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, NNCC_F32,
           NNCC_ERR_FORMAT, "truncated_data.npy is truncated: the shape needs 24 bytes of data, the file has 20");
  bad_dict("extra_data", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28, NNCC_F32,
           NNCC_ERR_FORMAT, "extra_data.npy has 4 bytes after the data (the shape needs 24)");
  int64_t big[2] = {1, 5000000000LL};
  write_npy("big_id.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 0, big, sizeof big);
  bad("id_beyond_int32", "big_id.npy", NNCC_I32, NNCC_ERR_RANGE,
      "big_id.npy: element 1 is 5000000000, which does not fit in int32");
}

/* every byte of a good file's header replaced by a few others, and every truncation: the
 * parser never crashes or reads out of bounds (ASan), and what parses is consistent */
static void test_mutations(void) {
  float x[6] = {1, 2, 3, 4, 5, 6};
  int64_t dims[2] = {2, 3};
  nncc_npy_write(at("m.npy"), NNCC_F32, 2, dims, x);
  unsigned char buf[256];
  FILE *f = fopen(at("m.npy"), "rb");
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  static const unsigned char subst[] = {0, ' ', '\'', '(', ')', ',', ':', '9', 'L', '>', 0xFF};
  int parsed = 0, broken = 0, prefixes = 0;
  for (size_t k = 0; k < n - 24; k++)
    for (size_t v = 0; v < sizeof subst; v++) {
      unsigned char *mut = malloc(n);
      memcpy(mut, buf, n);
      mut[k] = subst[v];
      nncc_npy a;
      if (nncc_npy_parse("mut", mut, n, NNCC_F32, &a) == 0) {
        parsed++;
        int64_t numel = 1;
        for (int d = 0; d < a.rank; d++) numel *= a.dims[d];
        broken += numel != a.numel || !a.data;
      }
      nncc_npy_free(&a);
      free(mut);
    }
  for (size_t k = 0; k < n; k++) {
    unsigned char *cut = malloc(k ? k : 1);
    memcpy(cut, buf, k);
    nncc_npy a;
    prefixes += nncc_npy_parse("cut", cut, k, NNCC_F32, &a) != 0;
    nncc_npy_free(&a);
    free(cut);
  }
  printf("case mutated_headers: %d of %zu mutations parse\n", parsed, (n - 24) * sizeof subst);
  EXPECT(broken == 0, "%d parsed arrays are inconsistent", broken);
  EXPECT(prefixes == (int)n, "every strict prefix fails: %d of %zu", prefixes, n);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: rt_npy_test DIR\n");
    return 2;
  }
  dir = argv[1];
  test_round_trip();
  test_conversions();
  test_bad_files();
  test_mutations();
  return finish();
}
