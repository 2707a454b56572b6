/* lenet5_demo.c - using a model compiled by nncc from C.
 *
 *   nncc examples/lenet5.nn -o lenet5.so      # writes lenet5.so and lenet5.h
 *   cc lenet5_demo.c -I. ./lenet5.so -Wl,-rpath,'$ORIGIN' -o lenet5_demo
 *   ./lenet5_demo [weights.safetensors]
 *
 * Draws a digit-like stroke into a 32x32 image, runs the network (with its
 * default initialisation, or the weights given), prints the ten class scores
 * and the time per call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lenet5.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  lenet5 *m = lenet5_create();
  if (!m) {
    fprintf(stderr, "lenet5_create: %s\n", nncc_last_error());
    return 1;
  }
  if (argc > 1 && lenet5_load(m, argv[1]) != 0) {
    fprintf(stderr, "lenet5_load: %s\n", nncc_last_error());
    lenet5_destroy(m);
    return 1;
  }
  static float image[1][1][32][32]; /* batch 1, one channel, 32x32 */
  for (int y = 6; y < 26; y++) image[0][0][y][15] = image[0][0][y][16] = 1.0f; /* a "1" */
  float logits[1][10];
  if (lenet5_forward(m, 1, &image[0][0][0][0], &logits[0][0]) != 0) {
    fprintf(stderr, "lenet5_forward: %s\n", nncc_last_error());
    lenet5_destroy(m);
    return 1;
  }
  printf("logits:");
  for (int k = 0; k < 10; k++) printf(" %.4f", logits[0][k]);
  printf("\n");
  enum { RUNS = 2000 };
  double t0 = now_us();
  for (int i = 0; i < RUNS; i++) lenet5_forward(m, 1, &image[0][0][0][0], &logits[0][0]);
  printf("%.2f us per forward pass (batch 1, mean of %d)\n", (now_us() - t0) / RUNS, RUNS);
  lenet5_destroy(m);
  return 0;
}
