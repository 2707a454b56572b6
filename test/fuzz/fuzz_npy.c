/* fuzz_npy.c - libFuzzer entry for the .npy reader (runtime/npy.c).
 *
 * Each input is parsed twice, as float32 and as int32 wanted; when it parses, the result
 * must be consistent: numel = product(dims), every element readable (the data buffer holds
 * numel elements: ASan checks the reads).  A failed parse must leave the array empty.
 * Built and run by scripts/fuzz.sh npy (and scripts/fuzz-all.sh).
 */
#include <stdint.h>
#include <stdlib.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int wants[2] = {NNCC_F32, NNCC_I32};
  for (int w = 0; w < 2; w++) {
    nncc_npy a;
    if (nncc_npy_parse("fuzz.npy", data, size, wants[w], &a) != 0) {
      if (a.data) abort();
      continue;
    }
    int64_t n = 1;
    for (int k = 0; k < a.rank; k++) n *= a.dims[k];
    if (n != a.numel || a.rank < 0 || a.rank > NNCC_NPY_MAX_RANK) abort();
    volatile uint32_t sum = 0;
    for (int64_t i = 0; i < a.numel; i++) sum += ((const uint32_t *)a.data)[i];
    nncc_npy_free(&a);
  }
  return 0;
}
