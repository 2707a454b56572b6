/* default_init.c - saves the default initialisation of the initm model (default_init.nn)
 * through the C interface: initm_create (seed 0), then initm_init with seeds 7 and 0.
 *
 *   default_init CREATE.safetensors SEED7.safetensors SEED0.safetensors
 */
#include <stdio.h>

#include "initm.h"

int main(int argc, char **argv) {
  if (argc != 4) return fprintf(stderr, "usage: %s CREATE SEED7 SEED0\n", argv[0]), 2;
  initm *m = initm_create();
  if (!m || initm_save(m, argv[1]) || initm_init(m, 7) || initm_save(m, argv[2]) ||
      initm_init(m, 0) || initm_save(m, argv[3])) {
    fprintf(stderr, "default_init: %s\n", nncc_last_error());
    return 1;
  }
  initm_destroy(m);
  return 0;
}
