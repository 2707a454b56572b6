/* denormals.c - the floating-point mode around an entry point (runtime/threads.c,
 * nncc_rt_fp_enter): inside, results and operands below FLT_MIN are flushed to zero (unless
 * NNCC_DENORMALS=keep), on the caller's thread and on the pool's workers, and products round
 * to nearest whatever the caller's rounding; the caller's own mode (here: no flushing,
 * rounding toward zero) is back when the call returns.
 * Driven by denormals.test; prints one line per case. */
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <xmmintrin.h>

#include "dnm.h"

/* the runtime's pool (runtime/nncc_rt.h, exported by the model's library) */
typedef int (*par_fn)(void *ctx, int64_t lo, int64_t hi);
int nncc_rt_parallel_for(par_fn fn, void *ctx, int64_t lo, int64_t hi, int64_t work);
static int nothing(void *ctx, int64_t lo, int64_t hi) {
  (void)ctx;
  (void)lo;
  (void)hi;
  return 0;
}

enum { B = 64, N = 256 };
static float a[B * N], b[B * N], p[B * N];

/* Runs p = a * b; prints how many products are 0, how many are denormal and the first. */
static int run(dnm *m, const char *what, float x, float y) {
  for (int i = 0; i < B * N; i++) {
    a[i] = x;
    b[i] = y;
    p[i] = -1.0f;
  }
  if (dnm_forward(m, B, a, b, p)) {
    printf("%s: forward failed: %s\n", what, nncc_last_error());
    return 1;
  }
  int zero = 0, sub = 0;
  for (int i = 0; i < B * N; i++) {
    zero += p[i] == 0.0f;
    sub += p[i] != 0.0f && p[i] > -FLT_MIN && p[i] < FLT_MIN;
  }
  printf("%s: %d zero, %d denormal of %d; p[0] = %g\n", what, zero, sub, B * N, (double)p[0]);
  return 0;
}

int main(void) {
  dnm *m = dnm_create();
  if (!m) {
    printf("create failed: %s\n", nncc_last_error());
    return 1;
  }
  /* the caller's mode: no flushing, rounding toward zero, every exception masked */
  unsigned mine = (_mm_getcsr() & ~0xe040u) | _MM_ROUND_TOWARD_ZERO;
  _mm_setcsr(mine);
  /* the pool's workers start here, outside any call: they are born in the caller's mode */
  if (nncc_rt_parallel_for(nothing, NULL, 0, 64, 1 << 30)) return 1;
  int bad = run(m, "tiny result", 1e-20f, 1e-20f);          /* 1e-40 */
  bad |= run(m, "tiny operand", 1e-40f, 1.0f);              /* a denormal input */
  bad |= run(m, "normal", 1e-18f, 1e-19f);                  /* 1e-37 >= FLT_MIN */
  /* 1.1f * 1.7f rounds to 1.87000012 to nearest, to 1.87 toward zero */
  volatile float u = 1.1f, v = 1.7f;
  float rz = u * v;
  bad |= run(m, "rounding", u, v);
  printf("rounding: %s\n", p[0] == rz ? "the caller's (toward zero)" : p[0] == 1.87000012f ? "to nearest" : "?");
  unsigned after = _mm_getcsr();
  printf("caller's mode after the calls: %s\n", (after & ~0x3fu) == (mine & ~0x3fu) ? "kept" : "changed");
  /* the caller's own arithmetic still keeps denormals */
  volatile float t = 1e-20f;
  float q = t * t;
  printf("caller's product: %s\n", q != 0.0f ? "denormal" : "flushed");
  dnm_destroy(m);
  return bad;
}
