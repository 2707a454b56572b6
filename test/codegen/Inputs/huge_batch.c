/* huge_batch.c - calls wide_forward with a batch whose arrays fit in int64 but whose
 * workspace does not: the generated size function must report the overflow (NNCC_ERR_ARG),
 * not wrap to a small workspace that the kernels overrun.  The arrays are never touched. */
#include <stdio.h>

#include "wide.h"

int main(void) {
  wide *m = wide_create();
  static float x[4], y[1];
  int64_t batches[2] = {576460752303423487LL, 1428084903888LL};
  for (int i = 0; i < 2; i++) {
    int rc = wide_forward(m, batches[i], x, y);
    printf("batch %lld: %d %s\n", (long long)batches[i], rc, nncc_last_error());
  }
  int rc = wide_forward(m, 1, x, y);
  printf("batch 1: %d\n", rc);
  wide_destroy(m);
  return 0;
}
