/* use_mlp.c - a tiny program against the generated mlp.h: create, forward at batch 2,
 * look up a parameter, check that bad arguments fail with a message, destroy. */
#include <stdio.h>

#include "mlp.h"

int main(void) {
  mlp *m = mlp_create();
  if (!m) {
    printf("create failed: %s\n", nncc_last_error());
    return 1;
  }
  static float x[2][784], y[2][10];
  for (int i = 0; i < 784; i++) x[0][i] = x[1][i] = (float)(i % 7) * 0.1f;
  int rc = mlp_forward(m, 2, &x[0][0], &y[0][0]);
  printf("forward: %d\n", rc);
  int same = 1;
  for (int k = 0; k < 10; k++) same &= y[0][k] == y[1][k];
  printf("rows equal: %d\n", same);
  int64_t n = 0;
  float *w = mlp_param(m, "h1.0.weight", &n);
  printf("h1.0.weight: %s %lld\n", w ? "found" : "missing", (long long)n);
  printf("absent: %s\n", mlp_param(m, "nope", &n) ? "found" : "NULL");
  rc = mlp_forward(m, 0, &x[0][0], &y[0][0]);
  printf("batch 0: %d %s\n", rc, nncc_last_error());
  /* run-time messages name the function the user called */
  rc = mlp_forward(NULL, 1, &x[0][0], &y[0][0]);
  printf("null model: %d %s\n", rc, nncc_last_error());
  printf("null name: %s %s\n", mlp_param(m, NULL, &n) ? "found" : "NULL", nncc_last_error());
  printf("null path: %d %s\n", mlp_load(m, NULL), nncc_last_error());
  mlp_destroy(m);
  return 0;
}
