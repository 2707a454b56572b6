/* rt_idx_test.c - tests runtime/idx.c: plain and gzip IDX files (written here with
 * nncc_idx_write and by hand), every element type's conversion, ubyte images scaled to
 * [0, 1], labels as int32, several gzip members, and one case per kind of bad file: magic,
 * type, rank, truncated header / data (plain and gzip), bytes after the data, dimensions
 * whose product overflows, a gzip stream too small for its header, corrupt and trailing gzip
 * data, float labels.  Mutated and cut files never crash (ASan).  Usage: rt_idx_test DIR.
 * Driven by rt_idx.test. */
#include <math.h>
#include <zlib.h>

#include "idx.h"
#include "rt_test.h"

static const char *dir;
static char path_buf[4096];

static const char *at(const char *name) {
  snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
  return path_buf;
}

static void write_bytes(const char *name, const void *b, size_t n) {
  FILE *f = fopen(at(name), "wb");
  if (n) fwrite(b, 1, n, f);
  fclose(f);
}

static size_t read_bytes(const char *name, unsigned char *b, size_t cap) {
  FILE *f = fopen(at(name), "rb");
  size_t n = fread(b, 1, cap, f);
  fclose(f);
  return n;
}

/* n raw bytes as one gzip member appended to (append) or replacing the file. */
static void write_gz(const char *name, const void *b, size_t n, int append) {
  gzFile g = gzopen(at(name), append ? "ab" : "wb");
  if (n) gzwrite(g, b, (unsigned)n);
  gzclose(g);
}

static void bad(const char *name, const char *file, int want, int code, const char *msg) {
  nncc_npy a;
  int rc = nncc_idx_read(at(file), want, &a);
  expect_err(__FILE__, __LINE__, name, rc, code, msg);
  EXPECT(a.data == NULL && a.rank == 0, "case %s: the array is empty after a failure", name);
  nncc_npy_free(&a);
}

static void bad_bytes(const char *name, const void *b, size_t n, int gzip, int want, const char *msg) {
  char file[128];
  snprintf(file, sizeof file, "%s.idx%s", name, gzip ? ".gz" : "");
  if (gzip) write_gz(file, b, n, 0);
  else write_bytes(file, b, n);
  bad(name, file, want, NNCC_ERR_FORMAT, msg);
}

static const uint8_t pixels[12] = {0, 255, 128, 1, 2, 3, 4, 5, 6, 7, 8, 254};

static void check_images(const char *name, const char *file) {
  nncc_npy a;
  int rc = nncc_idx_read(at(file), NNCC_F32, &a);
  EXPECT(rc == 0, "%s: %s", name, nncc_last_error());
  if (rc) return;
  int ok = a.rank == 3 && a.dims[0] == 3 && a.dims[1] == 2 && a.dims[2] == 2 && a.numel == 12 &&
           a.dtype == NNCC_F32 && !strcmp(a.descr, "ubyte") && (uintptr_t)a.data % 64 == 0;
  for (int i = 0; ok && i < 12; i++) ok = ((float *)a.data)[i] == (float)pixels[i] / 255.0f;
  const float *f = a.data;
  printf("case %s: %s [%lld, %lld, %lld]: %.6g %.6g %.6g ... %.6g\n", name, a.descr, (long long)a.dims[0],
         (long long)a.dims[1], (long long)a.dims[2], f[0], f[1], f[2], f[11]);
  EXPECT(ok, "%s: ubyte images scaled to [0, 1]", name);
  nncc_npy_free(&a);
}

static void test_good(void) {
  int64_t d3[3] = {3, 2, 2};
  EXPECT(nncc_idx_write(at("img.idx"), NNCC_IDX_U8, 3, d3, pixels, 0) == 0, "write: %s", nncc_last_error());
  EXPECT(nncc_idx_write(at("img.idx.gz"), NNCC_IDX_U8, 3, d3, pixels, 1) == 0, "write gz: %s", nncc_last_error());
  unsigned char b[256];
  size_t n = read_bytes("img.idx", b, sizeof b);
  EXPECT(n == 16 + 12 && b[0] == 0 && b[1] == 0 && b[2] == 8 && b[3] == 3 && b[7] == 3 && b[11] == 2,
         "the layout: magic 0x00000803, big-endian dims");
  check_images("plain_images", "img.idx");
  check_images("gzip_images", "img.idx.gz");
  n = read_bytes("img.idx.gz", b, sizeof b);
  EXPECT(b[0] == 0x1f && b[1] == 0x8b, "gzip magic");

  /* the header in one gzip member, the data in a second (like `cat a.gz b.gz`) */
  unsigned char raw[64];
  size_t rn = read_bytes("img.idx", raw, sizeof raw);
  write_gz("two_members.idx.gz", raw, 10, 0);
  write_gz("two_members.idx.gz", raw + 10, rn - 10, 1);
  check_images("gzip_two_members", "two_members.idx.gz");

  /* labels: ubyte -> int32 */
  const uint8_t labels[5] = {0, 9, 3, 255, 1};
  int64_t d1[1] = {5};
  EXPECT(nncc_idx_write(at("lab.idx.gz"), NNCC_IDX_U8, 1, d1, labels, 1) == 0, "write labels");
  nncc_npy a;
  EXPECT(nncc_idx_read(at("lab.idx.gz"), NNCC_LABEL, &a) == 0, "labels: %s", nncc_last_error());
  const int32_t *q = a.data;
  printf("case labels: %s [%lld]: %d %d %d %d %d\n", a.descr, (long long)a.dims[0], q[0], q[1], q[2], q[3], q[4]);
  EXPECT(a.dtype == NNCC_I32 && a.rank == 1 && q[0] == 0 && q[1] == 9 && q[3] == 255, "labels as int32");
  nncc_npy_free(&a);

  /* the other element types, big-endian on disk, by value */
  const int8_t i8[3] = {-128, 0, 127};
  const int16_t i16[3] = {-32768, 258, 32767};
  const int32_t i32[3] = {INT32_MIN, 16909060, INT32_MAX};
  const float f32[3] = {-1.5f, 1e-40f, 3.25f};
  const double f64[3] = {-2.5, 1e300, 0.1};
  const struct { const char *file; int type; const void *data; } t[] = {
    {"i8.idx", NNCC_IDX_I8, i8}, {"i16.idx", NNCC_IDX_I16, i16}, {"i32.idx", NNCC_IDX_I32, i32},
    {"f32.idx", NNCC_IDX_F32, f32}, {"f64.idx.gz", NNCC_IDX_F64, f64},
  };
  int64_t d[1] = {3};
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
    EXPECT(nncc_idx_write(at(t[k].file), t[k].type, 1, d, t[k].data, strstr(t[k].file, ".gz") != NULL) == 0,
           "write %s", t[k].file);
    EXPECT(nncc_idx_read(at(t[k].file), NNCC_F32, &a) == 0, "%s: %s", t[k].file, nncc_last_error());
    const float *f = a.data;
    printf("case type_%s: %s as f32: %.9g %.9g %.9g\n", a.descr, a.descr, f[0], f[1], f[2]);
    nncc_npy_free(&a);
    if (t[k].type == NNCC_IDX_F32 || t[k].type == NNCC_IDX_F64) continue;
    EXPECT(nncc_idx_read(at(t[k].file), NNCC_I32, &a) == 0, "%s: %s", t[k].file, nncc_last_error());
    q = a.data;
    printf("case type_%s: %s as i32: %d %d %d\n", a.descr, a.descr, q[0], q[1], q[2]);
    nncc_npy_free(&a);
  }
  /* more than one 64 KiB inflate chunk (3 full + a partial one), int16 so an element
   * straddles nothing: gzip and plain read the same */
  {
    int64_t dl[2] = {50, 2000};
    int16_t *v = malloc(100000 * sizeof *v);
    for (int i = 0; i < 100000; i++) v[i] = (int16_t)(i * 37 - 50000);
    nncc_idx_write(at("long.idx"), NNCC_IDX_I16, 2, dl, v, 0);
    nncc_idx_write(at("long.idx.gz"), NNCC_IDX_I16, 2, dl, v, 1);
    nncc_npy p, g;
    int rp = nncc_idx_read(at("long.idx"), NNCC_I32, &p), rg = nncc_idx_read(at("long.idx.gz"), NNCC_I32, &g);
    int same = !rp && !rg && p.numel == 100000 && g.numel == 100000 &&
               !memcmp(p.data, g.data, 100000 * 4) && ((int32_t *)g.data)[99999] == (int16_t)(99999 * 37 - 50000);
    printf("case multi_chunk: %s [%lld, %lld], gzip and plain %s\n", g.descr, (long long)g.dims[0],
           (long long)g.dims[1], same ? "agree" : "DIFFER");
    EXPECT(same, "multi-chunk gzip: %s", nncc_last_error());
    nncc_npy_free(&p);
    nncc_npy_free(&g);
    free(v);
  }

  /* no samples: fine here (the trainer rejects an empty data set) */
  int64_t d0[2] = {0, 7};
  EXPECT(nncc_idx_write(at("empty.idx"), NNCC_IDX_U8, 2, d0, pixels, 1) == 0, "write empty");
  EXPECT(nncc_idx_read(at("empty.idx"), NNCC_F32, &a) == 0 && a.numel == 0 && a.dims[1] == 7,
         "empty: %s", nncc_last_error());
  nncc_npy_free(&a);
}

static void test_bad(void) {
  bad("missing_file", "nope.idx", NNCC_F32, NNCC_ERR_IO, "cannot open");
  bad("directory", ".", NNCC_F32, NNCC_ERR_IO, "not a regular file");
  bad_bytes("empty_file", "", 0, 0, NNCC_F32, "shorter than the 4-byte magic number");
  bad_bytes("text_file", "hello world\n", 12, 0, NNCC_F32,
            "is not an IDX file: the magic number 0x68656c6c does not start with two zero bytes");
  bad_bytes("npy_as_idx", "\x93NUMPY\x01\x00", 8, 0, NNCC_F32, "is not an IDX file");
  bad_bytes("unknown_type", "\0\0\x0a\x01\0\0\0\0", 8, 0, NNCC_F32, "unknown IDX element type 0x0a");
  bad_bytes("rank_0", "\0\0\x08\x00", 4, 0, NNCC_F32, "has no dimensions");
  bad_bytes("rank_9", "\0\0\x08\x09", 4, 0, NNCC_F32, "9 dimensions (at most 8");
  bad_bytes("truncated_header", "\0\0\x08\x03\0\0\0\x02\0\0", 10, 0, NNCC_F32,
            "is truncated in its header: 3 dimensions need 16 bytes, the file has 10");
  bad_bytes("truncated_data", "\0\0\x08\x02\0\0\0\x02\0\0\0\x03" "abcde", 17, 0, NNCC_F32,
            "is truncated: its dimensions need 6 bytes of data, the file has 5");
  bad_bytes("extra_data", "\0\0\x08\x01\0\0\0\x02" "abc", 11, 0, NNCC_F32,
            "has 1 bytes after the data (its dimensions need 2)");
  bad_bytes("dims_overflow", "\0\0\x0e\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 16, 0, NNCC_F32,
            "the dimensions [4294967295, 4294967295, 4294967295] are absurdly large");
  bad_bytes("huge_dims_plain", "\0\0\x0c\x02\x10\0\0\0\0\0\0\x10", 12, 0, NNCC_F32,
            "is truncated: its dimensions need 17179869184 bytes of data, the file has 0");
  bad_bytes("float_labels", "\0\0\x0d\x01\0\0\0\x01\x3f\x80\0\0", 12, 0, NNCC_LABEL,
            "holds float values; labels and token ids need an integer type");
  bad_bytes("double_labels", "\0\0\x0e\x01\0\0\0\x00", 8, 1, NNCC_I32, "holds double values");

  /* gzip */
  bad_bytes("gz_empty_stream", "", 0, 1, NNCC_F32, "the data inflates to 0 bytes, shorter than the 4-byte IDX magic");
  bad_bytes("gz_bad_magic", "\x01\0\x08\x01\0\0\0\0", 8, 1, NNCC_F32, "is not an IDX file: the magic number 0x01000801");
  bad_bytes("gz_truncated_header", "\0\0\x08\x03\0\0\0\x02\0\0", 10, 1, NNCC_F32,
            "the data inflates to 10 bytes, but 3 dimensions need a 16-byte header");
  bad_bytes("gz_truncated_data", "\0\0\x08\x02\0\0\0\x02\0\0\0\x03" "abcde", 17, 1, NNCC_F32,
            "is truncated: its dimensions need 6 bytes of data, the file inflates to 5");
  bad_bytes("gz_extra_data", "\0\0\x08\x01\0\0\0\x02" "abc", 11, 1, NNCC_F32,
            "has 1 bytes after the data (its dimensions need 2)");
  bad_bytes("gz_dims_overflow", "\0\0\x08\x02\xff\xff\xff\xff\xff\xff\xff\xff", 12, 1, NNCC_F32,
            "are absurdly large");
  bad_bytes("gz_too_small_for_dims", "\0\0\x08\x03\0\0\x10\0\0\0\x10\0\0\0\x10\0", 16, 1, NNCC_F32,
            "is truncated: its dimensions need 68719476736 bytes of data, more than");

  /* a real gzip file, damaged */
  static uint8_t big[3000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7 + i / 13);
  int64_t dbig[2] = {30, 100};
  nncc_idx_write(at("big.idx.gz"), NNCC_IDX_U8, 2, dbig, big, 1);
  unsigned char gz[8192];
  size_t gn = read_bytes("big.idx.gz", gz, sizeof gz);
  write_bytes("gz_cut.idx.gz", gz, gn / 2);
  bad("gz_cut_stream", "gz_cut.idx.gz", NNCC_F32, NNCC_ERR_FORMAT, "is truncated");
  write_bytes("gz_no_trailer.idx.gz", gz, gn - 8);   /* the CRC-32 and length are missing */
  bad("gz_no_crc", "gz_no_trailer.idx.gz", NNCC_F32, NNCC_ERR_FORMAT, "is truncated: the gzip stream ends early");
  unsigned char bad_crc[8192];
  memcpy(bad_crc, gz, gn);
  bad_crc[gn - 8] ^= 0x55;
  write_bytes("gz_bad_crc.idx.gz", bad_crc, gn);
  bad("gz_bad_crc", "gz_bad_crc.idx.gz", NNCC_F32, NNCC_ERR_FORMAT, "corrupt gzip data (incorrect data check)");
  memcpy(bad_crc, gz, gn);
  memcpy(bad_crc + gn, "junk", 4);
  write_bytes("gz_trailing.idx.gz", bad_crc, gn + 4);
  bad("gz_trailing_junk", "gz_trailing.idx.gz", NNCC_F32, NNCC_ERR_FORMAT, "4 bytes of trailing data after the gzip stream");
  memcpy(bad_crc, gz, gn);
  bad_crc[3] = 0xE0;   /* reserved flag bits */
  write_bytes("gz_bad_flags.idx.gz", bad_crc, gn);
  bad("gz_bad_header", "gz_bad_flags.idx.gz", NNCC_F32, NNCC_ERR_FORMAT, "corrupt gzip data (unknown header flags set)");
}

/* Every single-byte change and every prefix of a plain and a gzip file: no crash, and what
 * parses is consistent. */
static void test_mutations(void) {
  static const unsigned char subst[] = {0, 1, 2, 3, 8, 9, 0x0d, 0x0e, 0x1f, 0x7f, 0x80, 0x8b, 0xff};
  const char *files[2] = {"img.idx", "big.idx.gz"};
  for (int f = 0; f < 2; f++) {
    unsigned char buf[8192];
    size_t n = read_bytes(files[f], buf, sizeof buf);
    int parsed = 0, broken = 0, prefixes = 0, tried = 0;
    size_t limit = f == 0 ? n : 64;   /* the gzip file: its header and first deflate bytes */
    for (size_t k = 0; k < limit && k < n; k++)
      for (size_t v = 0; v < sizeof subst; v++) {
        unsigned char *mut = malloc(n);
        memcpy(mut, buf, n);
        mut[k] = subst[v];
        nncc_npy a;
        tried++;
        if (nncc_idx_parse("mut", mut, n, NNCC_F32, &a) == 0) {
          parsed++;
          int64_t numel = 1;
          for (int d = 0; d < a.rank; d++) numel *= a.dims[d];
          broken += numel != a.numel || !a.data || a.rank < 1;
        } else {
          broken += a.data != NULL;
        }
        nncc_npy_free(&a);
        free(mut);
      }
    for (size_t k = 0; k < n; k++) {
      unsigned char *cut = malloc(k ? k : 1);
      memcpy(cut, buf, k);
      nncc_npy a;
      prefixes += nncc_idx_parse("cut", cut, k, NNCC_F32, &a) != 0;
      nncc_npy_free(&a);
      free(cut);
    }
    printf("case mutated_%s: %d of %d mutations parse\n", f ? "gzip" : "plain", parsed, tried);
    EXPECT(broken == 0, "%d parsed arrays are inconsistent", broken);
    EXPECT(prefixes == (int)n, "every strict prefix fails: %d of %zu", prefixes, n);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: rt_idx_test DIR\n");
    return 2;
  }
  dir = argv[1];
  test_good();
  test_bad();
  test_mutations();
  return finish();
}
