/* evict.c - evicted convolution weights in generated code (evict.test): a model that evicts
 * them after packing and one that keeps them (a parameter pointer was handed out, so it never
 * evicts) must give the same numbers, bit for bit, through inference, save, parameter reads and
 * training; the evicting one grows by about 1.3 MiB less over its first forward.
 *
 *   evict DIR      prints one line per case and "N failures"; exit 1 on a failure
 */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evict.h"

enum { B = 3, IN = 3 * 16 * 16, OUT = 10 };

static int failures;

static void check(const char *what, int ok) {
  printf("%s: %s\n", what, ok ? "same" : "DIFFERENT");
  if (!ok) failures++;
}

static double rss_mib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  if (f) fclose(f);
  return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static unsigned char *slurp(const char *path, long *n) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  *n = -1;
  if (f && fseek(f, 0, SEEK_END) == 0 && (*n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (buf = malloc((size_t)*n + 1)) && fread(buf, 1, (size_t)*n, f) != (size_t)*n) {
    free(buf);
    buf = NULL;
  }
  if (f) fclose(f);
  return buf;
}

static int same_file(const char *a, const char *b) {
  long na, nb;
  unsigned char *pa = slurp(a, &na), *pb = slurp(b, &nb);
  int same = pa && pb && na == nb && !memcmp(pa, pb, (size_t)na);
  free(pa);
  free(pb);
  return same;
}

static void must(int rc, const char *what) {
  if (rc) {
    printf("%s failed: %s\n", what, nncc_last_error());
    exit(1);
  }
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  static float x[B * IN], ye[B * OUT], yk[B * OUT];
  static int32_t labels[B] = {3, 7, 0};
  uint32_t s = 12345;
  for (int i = 0; i < B * IN; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)((s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
  }
  /* warm-up: the library's code pages and the thread pool are in before the measurements */
  evict *w = evict_create();
  must(!w, "create");
  must(evict_forward(w, B, x, ye), "warm-up forward");
  evict_destroy(w);

  evict *k = evict_create(), *e = evict_create();
  must(!k || !e, "create");
  must(evict_init(k, 5) || evict_init(e, 5), "init");
  int64_t n;
  must(!evict_param(k, "c2.0.weight", &n), "param");   /* k keeps its parameters */
  double r0 = rss_mib();
  must(evict_forward(k, B, x, yk), "forward (kept)");
  double r1 = rss_mib();
  must(evict_forward(e, B, x, ye), "forward (evicting)");
  double r2 = rss_mib();
  double saved = (r1 - r0) - (r2 - r1);
  printf("evicted: %s\n", saved > 0.8 ? "yes" : "no");
  if (saved <= 0.8) {
    printf("  the evicting forward grew %.2f MiB, the keeping one %.2f MiB\n", r2 - r1, r1 - r0);
    failures++;
  }
  check("forward", !memcmp(ye, yk, sizeof ye));
  must(evict_forward(e, B, x, ye), "forward again");
  check("forward again", !memcmp(ye, yk, sizeof ye));

  char pk[4096], pe[4096];
  snprintf(pk, sizeof pk, "%s/kept.safetensors", dir);
  snprintf(pe, sizeof pe, "%s/evicted.safetensors", dir);
  must(evict_save(k, pk) || evict_save(e, pe), "save");
  check("save", same_file(pk, pe));

  /* training after an eviction: forward (evicts again), then steps */
  must(evict_forward(e, B, x, ye), "forward after save");
  for (int step = 0; step < 3; step++) {
    float lk, le;
    must(evict_train_step(k, B, x, labels, &lk) || evict_train_step(e, B, x, labels, &le), "train_step");
    char what[64];
    snprintf(what, sizeof what, "train_step %d loss", step);
    check(what, lk == le);
    must(evict_forward(k, B, x, yk) || evict_forward(e, B, x, ye), "forward after a step");
    snprintf(what, sizeof what, "forward after step %d", step);
    check(what, !memcmp(ye, yk, sizeof ye));
  }

  const char *names[] = {"c1.0.weight", "c2.0.weight", "cw.0.weight", "c3.0.weight", "c4.weight", "d.0.weight"};
  for (int i = 0; i < 6; i++) {
    int64_t nk, ne;
    float *a = evict_param(k, names[i], &nk), *b = evict_param(e, names[i], &ne);
    char what[64];
    snprintf(what, sizeof what, "param %s", names[i]);
    check(what, a && b && nk == ne && !memcmp(a, b, (size_t)nk * sizeof *a));
  }
  evict_destroy(k);
  evict_destroy(e);
  printf("%d failures\n", failures);
  return failures != 0;
}
