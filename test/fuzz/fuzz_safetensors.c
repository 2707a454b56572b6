/* fuzz_safetensors.c - libFuzzer entry for the safetensors reader (runtime/safetensors.c).
 *
 * Each input is parsed as a whole file; when it parses, the invariants the loader relies on
 * are checked (every tensor's bytes inside the buffer, end - begin = numel x itemsize), and
 * the tensors are loaded into a small fixed model ("w" [2, 3], "b" [3]) whose buffer is
 * guarded on both sides: a load that fails must leave it untouched, and one that succeeds
 * must write only inside it.  Any violation aborts (a crash for libFuzzer).
 * Built and run by scripts/fuzz.sh safetensors (and scripts/fuzz-all.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const nncc_param_desc params[] = {
  {"w", 2, 0, {2, 3}, 6, 0, 3, 2},
  {"b", 1, 0, {3}, 3, 6, 3, 2},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nncc_st_file f;
  char err[256];
  if (nncc_st_parse("fuzz", data, size, &f, err, sizeof err) != 0) {
    if (f.n_tensors || f.tensors) abort();   /* a failed parse leaves *f empty */
    return 0;
  }
  for (int i = 0; i < f.n_tensors; i++) {
    const nncc_st_tensor *t = &f.tensors[i];
    if (t->data < data || t->data + (t->end - t->begin) > data + size) abort();
    if (t->end - t->begin != (uint64_t)t->numel * (uint64_t)t->itemsize) abort();
  }
  float buf[4 + 9 + 4];
  for (int i = 0; i < 17; i++) buf[i] = -7.0f;
  int rc = nncc_st_load_params(&f, 2, params, buf + 4, err, sizeof err);
  for (int i = 0; i < 4; i++)
    if (buf[i] != -7.0f || buf[13 + i] != -7.0f) abort();   /* written outside */
  if (rc)
    for (int i = 4; i < 13; i++)
      if (buf[i] != -7.0f) abort();   /* a failed load changed a parameter */
  nncc_st_free(&f);
  return 0;
}
