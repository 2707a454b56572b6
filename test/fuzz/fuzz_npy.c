/* fuzz_npy.c - libFuzzer entry for the .npy reader (runtime/npy.c), which the standalone
 * executable uses for --input and the trainer for --data / --test.
 *
 * Each input is parsed for a float input and for integer ids / labels.  A parsed array must
 * be consistent (numel = product of dims, data allocated); a failure must leave it empty.
 * Everything is freed, so LeakSanitizer sees a leak as a crash.
 *
 * Built and run by scripts/fuzz.sh npy; crashers go to test/fuzz/crashers/.
 */
#include <stddef.h>
#include <stdint.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int rc, const nncc_npy *a) {
  if (rc) {
    if (a->data || a->rank || a->numel) __builtin_trap();
    return;
  }
  int64_t numel = 1;
  for (int k = 0; k < a->rank; k++) numel *= a->dims[k];
  if (a->rank < 0 || a->rank > NNCC_NPY_MAX_RANK || numel != a->numel || !a->data) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nncc_npy a;
  check(nncc_npy_parse("fuzz.npy", data, size, NNCC_F32, &a), &a);
  nncc_npy_free(&a);
  check(nncc_npy_parse("fuzz.npy", data, size, NNCC_I32, &a), &a);
  nncc_npy_free(&a);
  return 0;
}
