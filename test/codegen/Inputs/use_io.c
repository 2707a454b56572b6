/* use_io.c - calls io_forward (header_clash.nn) and prints both outputs. */
#include <stdio.h>

#include "io.h"

int main(void) {
  float x[8], z[8], y[8];
  for (int i = 0; i < 8; i++) x[i] = (float)i - 3.5f;
  io *m = io_create();
  if (!m || io_forward(m, 2, x, z, y) != 0) {
    printf("error: %s\n", nncc_last_error());
    return 1;
  }
  for (int i = 0; i < 8; i++) printf("%g %g\n", z[i], y[i]);
  io_destroy(m);
  return 0;
}
