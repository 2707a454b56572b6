/* fuzz_idx.c - libFuzzer entry for the trainer's IDX reader (runtime/idx.c).
 *
 * Each input is parsed as it is (plain, or gzip when it starts with 1f 8b), for float inputs
 * and for labels; an input that is not gzip is also wrapped in a valid gzip stream and parsed
 * again, so the fuzzer explores the inflated-header and data paths too, not only deflate's
 * error handling.  A parsed array must be consistent (numel = product of dims, data
 * allocated, the gzip and plain readings identical); a failure must leave it empty.
 * Everything is freed, so LeakSanitizer sees a leak as a crash.
 *
 * Built and run by scripts/fuzz.sh idx; crashers go to test/fuzz/crashers/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int rc, const nncc_npy *a) {
  if (rc) {
    if (a->data || a->rank || a->numel) __builtin_trap();
    return;
  }
  int64_t numel = 1;
  for (int k = 0; k < a->rank; k++) numel *= a->dims[k];
  if (a->rank < 1 || a->rank > NNCC_NPY_MAX_RANK || numel != a->numel || !a->data) __builtin_trap();
}

/* data as one gzip member (NULL when zlib fails, which it should not) */
static unsigned char *gzip_wrap(const uint8_t *data, size_t size, size_t *out) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
  size_t cap = deflateBound(&z, (uLong)size) + 32;
  unsigned char *buf = malloc(cap);
  z.next_in = (unsigned char *)data;
  z.avail_in = (uInt)size;
  z.next_out = buf;
  z.avail_out = (uInt)cap;
  int zr = buf ? deflate(&z, Z_FINISH) : Z_MEM_ERROR;
  *out = cap - z.avail_out;
  deflateEnd(&z);
  if (zr != Z_STREAM_END) {
    free(buf);
    return NULL;
  }
  return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nncc_npy a, b;
  int rc = nncc_idx_parse("fuzz.idx", data, size, NNCC_F32, &a);
  check(rc, &a);
  int rc_lab = nncc_idx_parse("fuzz.idx", data, size, NNCC_LABEL, &b);
  check(rc_lab, &b);
  nncc_npy_free(&b);
  if (!nncc_idx_is_gzip(data, size)) {
    size_t gn = 0;
    unsigned char *gz = gzip_wrap(data, size, &gn);
    if (gz) {
      int rc_gz = nncc_idx_parse("fuzz.idx.gz", gz, gn, NNCC_F32, &b);
      check(rc_gz, &b);
      /* inflating must not change the outcome or the values */
      if ((rc == 0) != (rc_gz == 0)) __builtin_trap();
      if (!rc && (a.rank != b.rank || memcmp(a.dims, b.dims, sizeof a.dims) ||
                  memcmp(a.data, b.data, (size_t)a.numel * 4)))
        __builtin_trap();
      nncc_npy_free(&b);
      free(gz);
    }
  }
  nncc_npy_free(&a);
  return 0;
}
