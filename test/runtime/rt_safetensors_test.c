/* rt_safetensors_test.c - tests nncc_rt_save / nncc_rt_load and runtime/safetensors.c:
 * bitwise round trips, atomic saves, conversion from F64/F16/BF16, and one case per kind of
 * bad weight file (each generated here), checking the code, the message and that the
 * model's parameters are unchanged after the failure.
 * Usage: rt_safetensors_test DIR (a scratch directory).  Driven by rt_safetensors.test. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <sys/stat.h>

#include "rt_test.h"
#include "safetensors.h"

static const char *dir;
static char path_buf[4096];

static const char *at(const char *name) {
  snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
  return path_buf;
}

static void write_raw(const char *path, const void *bytes, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(bytes, 1, n, f) != n)) {
    printf("FAIL cannot write %s\n", path);
    exit(1);
  }
  fclose(f);
}

/* A safetensors file: header length `hlen` (the JSON's length when hlen < 0), the JSON, then
 * `n` bytes of data. */
static void write_st(const char *name, long long hlen, const char *json, const void *data, size_t n) {
  size_t jn = strlen(json);
  unsigned char *buf = malloc(8 + jn + n + 1);
  uint64_t h = hlen < 0 ? (uint64_t)jn : (uint64_t)hlen;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(h >> (8 * i));
  memcpy(buf + 8, json, jn);
  if (n) memcpy(buf + 8 + jn, data, n);
  write_raw(at(name), buf, 8 + jn + n);
  free(buf);
}

/* the dense model's tensors as JSON with the given pieces */
#define W_OK "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
#define B_OK "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}"

static const float good_data[16] = {1, 2, 3, 4, 5, 6, 7, 8};   /* room for an extra tensor */

static nncc_model *model;
static float saved[8];

/* A load that must fail with `code` and a message containing `want`; the params must stay. */
static void bad_load(const char *name, const char *file, int code, const char *want) {
  float *p = nncc_rt_param(model, "fc.weight", NULL);
  memcpy(saved, p, sizeof saved);
  int rc = nncc_rt_load(model, at(file));
  expect_err(__FILE__, __LINE__, name, rc, code, want);
  EXPECT(memcmp(saved, p, sizeof saved) == 0, "case %s: the parameters changed", name);
}

static void bad_st(const char *name, const char *json, size_t n, int code, const char *want) {
  char file[128];
  snprintf(file, sizeof file, "%s.safetensors", name);
  write_st(file, -1, json, good_data, n);
  bad_load(name, file, code, want);
}

static int count_tmp_files(void) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
  if (d) closedir(d);
  return n;
}

static void test_round_trip(void) {
  nncc_model *a = nncc_rt_create(&dense_desc), *b = nncc_rt_create(&dense_desc);
  nncc_rt_init(a, 7);
  nncc_rt_init(b, 8);
  float *pa = nncc_rt_param(a, "fc.weight", NULL), *pb = nncc_rt_param(b, "fc.weight", NULL);
  pa[3] = -0.0f;   /* bit patterns survive, including -0 and a denormal */
  pa[4] = 1e-40f;
  EXPECT(nncc_rt_save(a, at("rt.safetensors")) == 0, "save: %s", nncc_last_error());
  EXPECT(memcmp(pa, pb, 32) != 0, "different seeds");
  EXPECT(nncc_rt_load(b, at("rt.safetensors")) == 0, "load: %s", nncc_last_error());
  EXPECT(memcmp(pa, pb, 32) == 0, "save -> load is bitwise");
  float x[3] = {0.5f, -1, 2}, ya[2], yb[2];
  const void *in[1] = {x};
  void *oa[1] = {ya}, *ob[1] = {yb};
  nncc_rt_forward(a, 1, 0, in, oa);
  nncc_rt_forward(b, 1, 0, in, ob);
  EXPECT(memcmp(ya, yb, sizeof ya) == 0, "a loaded model computes the same (and is re-packed)");

  /* the layout: 8 + N is a multiple of 8, the header is JSON padded with spaces */
  FILE *f = fopen(at("rt.safetensors"), "rb");
  unsigned char len[8];
  char hdr[512] = {0};
  uint64_t n = 0;
  EXPECT(f && fread(len, 1, 8, f) == 8, "read the length");
  for (int i = 7; i >= 0; i--) n = n << 8 | len[i];
  EXPECT(n < sizeof hdr && fread(hdr, 1, n, f) == n, "read the header");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fclose(f);
  printf("case save_layout: header %llu bytes: %s\n", (unsigned long long)n, hdr);
  EXPECT((8 + n) % 8 == 0 && hdr[0] == '{' && (size_t)size == 8 + n + 32, "8-byte aligned data, size %ld", size);
  EXPECT(strstr(hdr, "\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}") &&
             strstr(hdr, "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}") &&
             strstr(hdr, "\"__metadata__\":{\"format\":\"pt\"}"),
         "header fields");

  /* atomic save: over an existing file, then no temporary is left behind */
  nncc_rt_init(b, 9);
  EXPECT(nncc_rt_save(b, at("rt.safetensors")) == 0, "save over: %s", nncc_last_error());
  nncc_rt_load(a, at("rt.safetensors"));
  EXPECT(memcmp(pa, pb, 32) == 0, "saving over an existing file replaces it");
  EXPECT(count_tmp_files() == 0, "no temporary files left");

  /* a directory that does not exist: ERR_IO, and nothing is created */
  int rc = nncc_rt_save(a, at("no/such/dir/w.safetensors"));
  EXPECT_ERR("save_missing_directory", rc, NNCC_ERR_IO, "w.safetensors: No such file or directory");
  EXPECT(strstr(nncc_last_error(), "cannot save ") == nncc_last_error(), "starts with 'cannot save'");

  /* the rename fails (the target is a directory): the temporary is removed, the target stays */
  mkdir(at("target_is_dir"), 0755);
  rc = nncc_rt_save(a, at("target_is_dir"));
  EXPECT_ERR("save_rename_fails", rc, NNCC_ERR_IO, "target_is_dir: Is a directory");
  struct stat st;
  EXPECT(stat(at("target_is_dir"), &st) == 0 && S_ISDIR(st.st_mode), "the target is intact");
  EXPECT(count_tmp_files() == 0, "the temporary was removed after a failed save");

  /* a failed save leaves the previous file intact and loadable */
  EXPECT(nncc_rt_load(b, at("rt.safetensors")) == 0, "the old file still loads: %s", nncc_last_error());
  nncc_rt_destroy(a);
  nncc_rt_destroy(b);
}

static uint16_t f2h(float x) {   /* only for the exact values below */
  if (x == 1.0f) return 0x3C00;
  if (x == -2.0f) return 0xC000;
  if (x == 0.5f) return 0x3800;
  if (x == 65504.0f) return 0x7BFF;
  if (x == 0) return 0;
  return 0x0001;   /* the smallest subnormal, 2^-24 */
}

static void test_conversions(void) {
  nncc_model *m = nncc_rt_create(&dense_desc);
  float *p = nncc_rt_param(m, "fc.weight", NULL);
  /* F64 */
  double d[8] = {1.5, -2.25, 3, 1e-3, 0.1, 1e300, -1e300, 0};
  write_st("f64.safetensors", -1,
           "{\"fc.weight\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
           "\"fc.bias\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[48,64]}}",
           d, sizeof d);
  EXPECT(nncc_rt_load(m, at("f64.safetensors")) == 0, "f64: %s", nncc_last_error());
  EXPECT(p[0] == 1.5f && p[1] == -2.25f && p[3] == 1e-3f && p[4] == 0.1f && p[5] == INFINITY &&
             p[6] == -INFINITY && p[7] == 0,
         "f64 -> f32: %g %g %g %g %g %g", p[0], p[1], p[3], p[4], p[5], p[6]);
  /* F16 and BF16 in one file, bias first in the data */
  float hv[6] = {1, -2, 0.5f, 65504, 0, 1e-9f};
  unsigned char data[16];
  for (int i = 0; i < 6; i++) {
    uint16_t h = f2h(hv[i]);
    data[4 + 2 * i] = (unsigned char)h, data[5 + 2 * i] = (unsigned char)(h >> 8);
  }
  uint16_t bf[2] = {0x3FC0, 0xC0A0};   /* 1.5, -5 */
  for (int i = 0; i < 2; i++) data[2 * i] = (unsigned char)bf[i], data[2 * i + 1] = (unsigned char)(bf[i] >> 8);
  write_st("f16.safetensors", -1,
           "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"\\u00e9\\ud83d\\ude00\"},"
           "\"fc.bias\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4],\"extra\":[1,{\"a\":null}]},"
           "\"fc.\\u0077eight\":{\"data_offsets\":[4,16],\"shape\":[2,3],\"dtype\":\"F16\"}}   ",
           data, sizeof data);
  EXPECT(nncc_rt_load(m, at("f16.safetensors")) == 0, "f16: %s", nncc_last_error());
  EXPECT(p[0] == 1 && p[1] == -2 && p[2] == 0.5f && p[3] == 65504 && p[4] == 0 &&
             p[5] == ldexpf(1, -24) && p[6] == 1.5f && p[7] == -5,
         "f16/bf16 -> f32: %g %g %g %g %g %g %g %g", p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
  printf("case load_f64_f16_bf16: ok\n");
  /* F64 beyond the float range: as PyTorch's .float(), round to nearest (3.4028235e38 is
   * within half an ulp of FLT_MAX and rounds to it; 3.41e38 is +inf); NaN stays NaN */
  double r[8] = {3.4028235e38, -3.4028235e38, 3.41e38, -1e39, NAN, 1e-50, -0.0, 1};
  write_st("f64_range.safetensors", -1,
           "{\"fc.weight\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
           "\"fc.bias\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[48,64]}}",
           r, sizeof r);
  EXPECT(nncc_rt_load(m, at("f64_range.safetensors")) == 0, "f64 range: %s", nncc_last_error());
  printf("case f64_range: %.9g %.9g %g %g %g %g %g\n", p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
  EXPECT(p[0] == FLT_MAX && p[1] == -FLT_MAX && p[2] == INFINITY && p[3] == -INFINITY &&
             isnan(p[4]) && p[5] == 0 && signbit(p[6]), "f64 range");
  nncc_rt_destroy(m);
}

static void test_bad_files(void) {
  model = nncc_rt_create(&dense_desc);
  nncc_rt_init(model, 1);

  bad_load("missing_file", "does_not_exist.safetensors", NNCC_ERR_IO,
           "does_not_exist.safetensors: No such file or directory");
  bad_load("directory", ".", NNCC_ERR_IO, "cannot read");
  write_raw(at("empty.safetensors"), "", 0);
  bad_load("empty_file", "empty.safetensors", NNCC_ERR_FORMAT,
           "empty.safetensors is not a safetensors file: 0 bytes, shorter than the 8-byte header length");
  write_raw(at("short.safetensors"), "\x10\0\0\0\0", 5);
  bad_load("five_byte_file", "short.safetensors", NNCC_ERR_FORMAT,
           "short.safetensors is not a safetensors file: 5 bytes, shorter than the 8-byte header length");
  write_st("absurd.safetensors", 1LL << 40, "{}", NULL, 0);
  bad_load("absurd_header_length", "absurd.safetensors", NNCC_ERR_FORMAT,
           "absurd.safetensors is not a safetensors file: header length 1099511627776 is absurd");
  write_st("past_end.safetensors", 100, "{\"a\":1}", NULL, 0);
  bad_load("header_past_end", "past_end.safetensors", NNCC_ERR_FORMAT,
           "past_end.safetensors is truncated: header length 100 runs past the end of the file (15 bytes)");

  /* malformed JSON, one defect each */
  bad_st("json_not_object", "[1]", 0, NNCC_ERR_FORMAT, "malformed header: expected '{' at the start at byte 0");
  bad_st("json_empty_header", "", 0, NNCC_ERR_FORMAT, "malformed header: expected '{' at the start at byte 0");
  bad_st("json_missing_colon", "{\"fc.weight\" {}}", 0, NNCC_ERR_FORMAT,
         "malformed header: expected ':' after a key at byte 13");
  bad_st("json_unterminated", "{\"fc.weight\":{\"dtype\":\"F3", 0, NNCC_ERR_FORMAT,
         "malformed header: unterminated string");
  bad_st("json_unclosed_object", "{" W_OK "," B_OK, 32, NNCC_ERR_FORMAT,
         "malformed header: expected ',' or '}'");
  bad_st("json_trailing_text", "{" W_OK "," B_OK "} x", 32, NNCC_ERR_FORMAT,
         "malformed header: unexpected text after the closing '}'");
  bad_st("json_trailing_comma", "{" W_OK "," B_OK ",}", 32, NNCC_ERR_FORMAT,
         "malformed header: expected a string");
  bad_st("json_bad_escape", "{\"fc.w\\qeight\":{}}", 0, NNCC_ERR_FORMAT, "malformed header: bad escape in a string");
  bad_st("json_control_char", "{\"fc.\nweight\":{}}", 0, NNCC_ERR_FORMAT,
         "malformed header: control character in a string");
  bad_st("json_unpaired_surrogate", "{\"\\ud800x\":{}}", 0, NNCC_ERR_FORMAT,
         "malformed header: unpaired surrogate in \\u escape");
  bad_st("json_nul_escape", "{\"a\\u0000b\":{}}", 0, NNCC_ERR_FORMAT, "malformed header: NUL character in a string");
  bad_st("json_leading_zero", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[02,3],\"data_offsets\":[0,24]}}", 32,
         NNCC_ERR_FORMAT, "malformed header: leading zero in an integer");
  bad_st("json_negative_dim", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[-2,3],\"data_offsets\":[0,24]}}", 32,
         NNCC_ERR_FORMAT, "malformed header: expected a non-negative integer");
  bad_st("json_fractional_dim", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2.0,3],\"data_offsets\":[0,24]}}",
         32, NNCC_ERR_FORMAT, "malformed header: expected an integer, found a fraction");
  bad_st("json_huge_integer", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
         "\"data_offsets\":[0,24]}}", 32, NNCC_ERR_FORMAT, "malformed header: integer too large");
  bad_st("json_metadata_not_strings", "{\"__metadata__\":{\"a\":1}," W_OK "," B_OK "}", 32, NNCC_ERR_FORMAT,
         "malformed header: expected a string");
  char deep[300] = "{\"fc.weight\":{\"x\":";
  for (int i = 0; i < 70; i++) strcat(deep, "[");
  bad_st("json_nested_too_deeply", deep, 0, NNCC_ERR_FORMAT, "malformed header: nested too deeply");
  bad_st("json_tensor_not_object", "{\"fc.weight\":[0,24]}", 0, NNCC_ERR_FORMAT,
         "malformed header: expected '{' after a tensor's name at byte 13");
  bad_st("duplicate_tensor", "{" W_OK "," W_OK "}", 32, NNCC_ERR_FORMAT, "tensor 'fc.weight' appears twice");
  bad_st("duplicate_field", "{\"fc.weight\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", 0, NNCC_ERR_FORMAT,
         "tensor 'fc.weight' has two \"dtype\" fields");
  bad_st("missing_shape_field", "{\"fc.weight\":{\"dtype\":\"F32\",\"data_offsets\":[0,24]}}", 32,
         NNCC_ERR_FORMAT, "tensor 'fc.weight' has no \"shape\"");
  bad_st("missing_dtype_field", "{\"fc.weight\":{\"shape\":[2,3],\"data_offsets\":[0,24]}}", 32,
         NNCC_ERR_FORMAT, "tensor 'fc.weight' has no \"dtype\"");
  bad_st("too_many_dims", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
         "\"data_offsets\":[0,4]}}", 32, NNCC_ERR_FORMAT, "tensor 'fc.weight' has more than 8 dimensions");

  /* stricter than before, as strict as the reference implementation */
  bad_st("trailing_bytes", "{" W_OK "," B_OK "}", 36, NNCC_ERR_FORMAT,
         "trailing_bytes.safetensors: 4 bytes after the last tensor's data (the tensors end at "
         "byte 32 of 36): trailing bytes");
  bad_st("gap_between", "{" W_OK ",\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[28,36]}}",
         36, NNCC_ERR_FORMAT, "gap_between.safetensors: tensor 'fc.bias' starts at byte 28 of the "
         "data, but the tensors before it end at 24: a gap (the data must be contiguous)");
  bad_st("gap_first", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,28]},"
         "\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[28,36]}}",
         36, NNCC_ERR_FORMAT, "tensor 'fc.weight' starts at byte 4 of the data, but the tensors before it end at 0");
  bad_st("no_tensors_trailing", "{}", 8, NNCC_ERR_FORMAT, "8 bytes of data but no tensors: trailing bytes");
  bad_st("invalid_utf8_name", "{\"fc.\xff\":{}}", 0, NNCC_ERR_FORMAT,
         "malformed header: invalid UTF-8 at byte 5 of the JSON");
  bad_st("overlong_utf8", "{\"\xc0\xaf\":{}}", 0, NNCC_ERR_FORMAT, "invalid UTF-8 at byte 2");
  bad_st("surrogate_utf8", "{\"\xed\xa0\x80\":{}}", 0, NNCC_ERR_FORMAT, "invalid UTF-8 at byte 2");

  /* the tensors do not fit the model */
  bad_st("missing_tensor", "{" W_OK "}", 24, NNCC_ERR_FORMAT,
         "missing_tensor.safetensors has no tensor 'fc.bias' (the model needs [2])");
  bad_st("extra_tensor",
         "{" W_OK "," B_OK ",\"fc.extra\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[32,36]}}",
         36, NNCC_ERR_FORMAT, "extra_tensor.safetensors has a tensor 'fc.extra' that the model does not have");
  bad_st("wrong_shape", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}," B_OK "}",
         32, NNCC_ERR_FORMAT, "wrong_shape.safetensors: 'fc.weight' is [3, 2] in the file, the model needs [2, 3]");
  bad_st("wrong_rank", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}," B_OK "}",
         32, NNCC_ERR_FORMAT, "wrong_rank.safetensors: 'fc.weight' is [6] in the file, the model needs [2, 3]");
  bad_st("wrong_dtype", "{\"fc.weight\":{\"dtype\":\"I32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," B_OK "}",
         32, NNCC_ERR_FORMAT,
         "wrong_dtype.safetensors: 'fc.weight' has dtype I32; only F32, F64, F16 and BF16 weights can be loaded");
  bad_st("unknown_dtype", "{\"fc.weight\":{\"dtype\":\"F33\",\"shape\":[2,3],\"data_offsets\":[0,24]}," B_OK "}",
         32, NNCC_ERR_FORMAT, "unknown_dtype.safetensors: tensor 'fc.weight' has unknown dtype \"F33\"");

  /* data_offsets */
  bad_st("offsets_past_data", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[32,56]}," B_OK "}",
         32, NNCC_ERR_FORMAT,
         "offsets_past_data.safetensors is truncated: tensor 'fc.weight' has data_offsets [32, 56], but the "
         "file has only 32 bytes of data");
  bad_st("offsets_reversed", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,0]}," B_OK "}",
         32, NNCC_ERR_FORMAT, "tensor 'fc.weight' has data_offsets [24, 0], which end before they begin");
  bad_st("offsets_wrong_size", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}," B_OK "}",
         32, NNCC_ERR_FORMAT, "tensor 'fc.weight' has data_offsets [0, 20] (20 bytes), but F32 [2, 3] needs 24 bytes");
  bad_st("offsets_overlap", "{" W_OK ",\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
         32, NNCC_ERR_FORMAT, "tensors 'fc.weight' [0, 24] and 'fc.bias' [16, 24] overlap in the data");
  bad_st("offsets_three", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24,32]}}",
         32, NNCC_ERR_FORMAT, "tensor 'fc.weight' has more than 2 data_offsets");
  bad_st("offsets_one", "{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24]}}",
         32, NNCC_ERR_FORMAT, "tensor 'fc.weight' has 1 data_offsets, expected 2 ([begin, end])");
  bad_st("truncated_data", "{" W_OK "," B_OK "}", 30, NNCC_ERR_FORMAT,
         "truncated_data.safetensors is truncated: tensor 'fc.bias' has data_offsets [24, 32], but the file "
         "has only 30 bytes of data");

  /* after all that, a good file still loads */
  write_st("good.safetensors", -1, "{" B_OK "," W_OK "}", good_data, 32);
  int rc = nncc_rt_load(model, at("good.safetensors"));
  EXPECT(rc == 0, "a good file loads after the bad ones: %s", nncc_last_error());
  float *p = nncc_rt_param(model, "fc.weight", NULL);
  EXPECT(memcmp(p, good_data, 32) == 0, "the good file's values");
  nncc_rt_destroy(model);
}

/* the API the compiler uses: parse from memory, find, convert */
static void test_parse_api(void) {
  char err[256] = "";
  nncc_st_file f;
  unsigned char buf[200];
  const char *json = "{" W_OK "," B_OK "}";
  size_t n = strlen(json);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
  memcpy(buf + 8, json, n);
  memcpy(buf + 8 + n, good_data, 32);
  int rc = nncc_st_parse("mem", buf, 8 + n + 32, &f, err, sizeof err);
  EXPECT(rc == 0 && f.n_tensors == 2, "parse from memory: %s", err);
  const nncc_st_tensor *t = nncc_st_find(&f, "fc.bias");
  float b[2];
  EXPECT(t && t->rank == 1 && t->dims[0] == 2 && t->numel == 2 && t->dtype == NNCC_ST_F32 &&
             nncc_st_to_f32(&f, t, b, err, sizeof err) == 0 && b[0] == 7 && b[1] == 8,
         "find + to_f32");
  EXPECT(nncc_st_find(&f, "nope") == NULL, "find of an absent name");
  nncc_st_free(&f);
  rc = nncc_st_parse("mem", buf, 7, &f, err, sizeof err);
  EXPECT(rc == NNCC_ERR_FORMAT && strstr(err, "mem is not a safetensors file"), "short buffer: %s", err);
  nncc_st_free(&f);
  /* every truncation of a good file fails cleanly (ASan watches the reads) */
  int failures = 0;
  for (size_t k = 0; k < 8 + n + 32; k++) {
    unsigned char *cut = malloc(k ? k : 1);
    memcpy(cut, buf, k);
    failures += nncc_st_parse("cut", cut, k, &f, NULL, 0) != 0;
    nncc_st_free(&f);
    free(cut);
  }
  EXPECT(failures == (int)(8 + n + 32), "every strict prefix fails: %d of %zu", failures, 8 + n + 32);
  /* every byte of the header replaced by a few others: parse never crashes or reads out of
   * bounds (ASan), and whatever parses still satisfies the invariants */
  static const unsigned char subst[] = {0, ' ', '"', '\\', '{', '}', '[', ']', ',', ':', '9', 0xFF};
  int parsed = 0, broken = 0;
  for (size_t k = 0; k < 8 + n; k++)
    for (size_t v = 0; v < sizeof subst; v++) {
      unsigned char *mut = malloc(8 + n + 32);
      memcpy(mut, buf, 8 + n + 32);
      mut[k] = subst[v];
      if (nncc_st_parse("mut", mut, 8 + n + 32, &f, NULL, 0) == 0) {
        parsed++;
        for (int i = 0; i < f.n_tensors; i++) {
          const nncc_st_tensor *u = &f.tensors[i];
          broken += u->end > 32 || u->end - u->begin != (uint64_t)u->numel * (uint64_t)u->itemsize;
        }
      }
      nncc_st_free(&f);
      free(mut);
    }
  printf("case mutated_headers: %d of %zu mutations parse\n", parsed, (8 + n) * sizeof subst);
  EXPECT(broken == 0, "%d parsed tensors break the invariants", broken);
}

/* Tests that nncc_st_open (the data read from the file, F32 straight into place and the
 * other dtypes through the NNCC_ST_CHUNK buffer) gives the same bits as nncc_st_parse (the
 * whole file in memory): one tensor per dtype larger than the chunk, whose elements run
 * through every bit pattern class (every F16 / BF16 value, random F32 / F64 bits: NaN
 * payloads, infinities, subnormals, F64 beyond the float range), then pieces of it that
 * straddle the chunk's boundaries; and that the streamed reader rejects a cut file. */
static void test_streamed(void) {
  enum { N = 600000 };   /* 1.2 MB even in F16: more than NNCC_ST_CHUNK */
  static const struct { const char *name; int size; } kinds[] = {{"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}};
  static const nncc_param_desc pd[] = {
    {"big", 1, 0, {N}, N, 0, 1, 1},
    {"small", 2, 0, {3, 1}, 3, N, 1, 1},
  };
  EXPECT(N * 2 > NNCC_ST_CHUNK, "the tensor is larger than the chunk");
  float *ref = malloc((N + 3) * sizeof(float)), *got = malloc((N + 3) * sizeof(float));
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    size_t bytes = (size_t)(N + 3) * (size_t)kinds[k].size;
    char json[256];
    snprintf(json, sizeof json, "{\"big\":{\"dtype\":\"%s\",\"shape\":[%d],\"data_offsets\":[0,%zu]},"
             "\"small\":{\"dtype\":\"%s\",\"shape\":[3,1],\"data_offsets\":[%zu,%zu]}}", kinds[k].name, N,
             (size_t)N * kinds[k].size, kinds[k].name, (size_t)N * kinds[k].size, bytes);
    unsigned char *data = malloc(bytes);
    uint64_t x = 0x9E3779B97F4A7C15ull * (k + 1);
    for (size_t i = 0; i < bytes; i++) {
      if (kinds[k].size == 2 && i % 2 == 0) {   /* every 16-bit pattern, in order */
        data[i] = (unsigned char)(i / 2);
        data[i + 1] = (unsigned char)(i / 2 >> 8);
        i++;
        continue;
      }
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      data[i] = (unsigned char)(x >> 56);
    }
    char file[64];
    snprintf(file, sizeof file, "streamed_%s.safetensors", kinds[k].name);
    write_st(file, -1, json, data, bytes);
    size_t jn = strlen(json), total = 8 + jn + bytes;
    unsigned char *whole = malloc(total);
    FILE *fp = fopen(at(file), "rb");
    EXPECT(fp && fread(whole, 1, total, fp) == total, "read %s back", file);
    if (fp) fclose(fp);

    char err[512] = "";
    nncc_st_file mem, disk;
    memset(ref, 0, (N + 3) * sizeof(float));
    memset(got, 0xA5, (N + 3) * sizeof(float));
    int rc1 = nncc_st_parse("mem", whole, total, &mem, err, sizeof err);
    if (!rc1) rc1 = nncc_st_load_params(&mem, 2, pd, ref, err, sizeof err);
    int rc2 = nncc_st_open(at(file), &disk, err, sizeof err);
    EXPECT(rc2 || disk.streamed, "nncc_st_open streams");
    EXPECT(rc2 || (disk.chunk != NULL) == (kinds[k].size != 4), "a chunk only to convert");
    if (!rc2) rc2 = nncc_st_load_params(&disk, 2, pd, got, err, sizeof err);
    EXPECT(rc1 == 0 && rc2 == 0, "%s: %s", kinds[k].name, err);
    int same = memcmp(ref, got, (N + 3) * sizeof(float)) == 0;
    EXPECT(same, "%s: streamed and in-memory conversions differ", kinds[k].name);
    /* and both as the compiler converts (NaNs: the quiet bit may differ) */
    int64_t wrong = 0;
    for (int64_t i = 0; i < N + 3 && kinds[k].size != 4; i++) {
      const unsigned char *e = data + i * kinds[k].size;
      float want;
      if (kinds[k].size == 8) {
        double d;
        memcpy(&d, e, 8);
        want = (float)d;
      } else if (!strcmp(kinds[k].name, "F16")) {
        _Float16 h;
        memcpy(&h, e, 2);
        want = (float)h;
      } else {
        uint32_t bits = (uint32_t)(e[0] | e[1] << 8) << 16;
        memcpy(&want, &bits, 4);
      }
      wrong += isnan(want) ? !isnan(got[i]) : memcmp(&want, &got[i], 4) != 0;
    }
    EXPECT(wrong == 0, "%s: %lld elements differ from the C compiler's conversion", kinds[k].name, (long long)wrong);
    /* pieces across the chunk's boundaries, from both readers */
    const nncc_st_tensor *tm = nncc_st_find(&mem, "big"), *td = nncc_st_find(&disk, "big");
    int64_t per = NNCC_ST_CHUNK / kinds[k].size;
    const int64_t piece[][2] = {{per - 1, 3}, {1, N - 2}, {N - 1, 1}, {per, per + 7}, {5, 0}};
    int pieces_ok = 1;
    for (size_t q = 0; q < sizeof piece / sizeof piece[0]; q++) {
      int64_t first = piece[q][0], count = piece[q][1];
      if (first + count > N) continue;
      memset(got, 0xA5, (N + 3) * sizeof(float));
      rc1 = nncc_st_to_f32_range(&disk, td, first, count, got, err, sizeof err);
      pieces_ok &= rc1 == 0 && memcmp(got, ref + first, (size_t)count * sizeof(float)) == 0 &&
                   ((const unsigned char *)got)[count * 4] == 0xA5;   /* nothing beyond */
      memset(got, 0xA5, (N + 3) * sizeof(float));
      rc1 = nncc_st_to_f32_range(&mem, tm, first, count, got, err, sizeof err);
      pieces_ok &= rc1 == 0 && memcmp(got, ref + first, (size_t)count * sizeof(float)) == 0;
    }
    EXPECT(pieces_ok, "%s: pieces", kinds[k].name);
    printf("case streamed_%s: %d + 3 floats through %s, %s as from memory; pieces %s\n", kinds[k].name, N,
           kinds[k].size == 4 ? "no chunk" : "the chunk", same ? "bitwise the same" : "DIFFERENT",
           pieces_ok ? "ok" : "WRONG");
    nncc_st_free(&mem);
    nncc_st_free(&disk);
    EXPECT(disk.streamed == 0 && disk.chunk == NULL, "freed");

    /* the same file missing its last byte: rejected by the header's check, before any read */
    if (kinds[k].size == 2) {
      char cut[64];
      snprintf(cut, sizeof cut, "cut_%s.safetensors", kinds[k].name);
      write_st(cut, -1, json, data, bytes - 1);
      rc2 = nncc_st_open(at(cut), &disk, err, sizeof err);
      printf("case streamed_cut_%s: %s\n", kinds[k].name, rc2 ? err : "opened");
      EXPECT(rc2 == NNCC_ERR_FORMAT && disk.n_tensors == 0 && !disk.streamed, "a cut file fails cleanly");
      nncc_st_free(&disk);
    }
    free(whole);
    free(data);
  }
  free(ref);
  free(got);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: rt_safetensors_test DIR\n");
    return 2;
  }
  dir = argv[1];
  test_round_trip();
  test_conversions();
  test_bad_files();
  test_parse_api();
  test_streamed();
  return finish();
}
