/* workspace_reuse.c - one model object, forwards of growing and shrinking (batch, seq):
 * each result must equal a fresh object's, bit for bit, and nothing outside the arrays
 * may change (a canary allocated between the calls, right after the small workspace).
 * Driven by workspace_reuse.test (also under valgrind / the sanitizers).
 *
 *   workspace_reuse        prints one line per call, "ok" at the end; exit 1 on a mismatch
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsr.h"

enum { K = 5, Y = 3, Z = 8, I = 9 * 6 * 6, C = 16 * 6 * 6, CANARY = 4096 };

static float *input(int64_t n, uint32_t s) {
  float *x = malloc((size_t)n * sizeof *x);
  for (int64_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
  }
  return x;
}

/* Runs (batch, seq) on m and on a fresh object; 0 when the outputs agree exactly. */
static int check(wsr *m, int64_t batch, int64_t seq, const unsigned char *canary) {
  float *x = input(batch * seq * K, (uint32_t)(batch * 7919 + seq));
  float *img = input(batch * I, (uint32_t)batch);
  size_t ny = (size_t)(batch * seq * Y), nz = (size_t)(batch * Z), nc = (size_t)(batch * C);
  float *y = calloc(ny, sizeof *y), *z = calloc(nz, sizeof *z), *c = calloc(nc, sizeof *c);
  float *y2 = calloc(ny, sizeof *y2), *z2 = calloc(nz, sizeof *z2), *c2 = calloc(nc, sizeof *c2);
  wsr *fresh = wsr_create();
  int bad = 0;
  if (!fresh || wsr_forward(m, batch, seq, x, img, y, z, c) ||
      wsr_forward(fresh, batch, seq, x, img, y2, z2, c2)) {
    printf("batch %lld seq %lld: forward failed: %s\n", (long long)batch, (long long)seq,
           nncc_last_error());
    bad = 1;
  } else if (memcmp(y, y2, ny * sizeof *y) || memcmp(z, z2, nz * sizeof *z) ||
             memcmp(c, c2, nc * sizeof *c)) {
    printf("batch %lld seq %lld: the reused object's outputs differ from a fresh object's\n",
           (long long)batch, (long long)seq);
    bad = 1;
  }
  if (canary)
    for (int i = 0; i < CANARY; i++)
      if (canary[i] != 0xA5) {
        printf("batch %lld seq %lld: the forward wrote outside its arrays (canary byte %d)\n",
               (long long)batch, (long long)seq, i);
        bad = 1;
        break;
      }
  if (!bad) printf("batch %lld seq %lld: same as a fresh object\n", (long long)batch, (long long)seq);
  wsr_destroy(fresh);
  free(x), free(img), free(y), free(z), free(c), free(y2), free(z2), free(c2);
  return bad;
}

int main(void) {
  wsr *m = wsr_create();
  if (!m) return printf("wsr_create failed: %s\n", nncc_last_error()), 1;
  int bad = check(m, 1, 2, NULL);
  /* allocated after the seq-2 workspace: a seq-400 forward that kept that workspace
   * writes over it */
  unsigned char *canary = malloc(CANARY);
  memset(canary, 0xA5, CANARY);
  bad |= check(m, 1, 400, canary);
  bad |= check(m, 1, 2, canary);
  bad |= check(m, 3, 2, canary);
  bad |= check(m, 3, 57, canary);
  bad |= check(m, 2, 400, canary);
  bad |= check(m, 1, 1, canary);
  free(canary);
  wsr_destroy(m);
  printf(bad ? "FAILED\n" : "ok\n");
  return bad;
}
