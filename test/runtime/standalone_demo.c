/* standalone_demo.c - a standalone executable as nncc would generate one, with a hand-written
 * model: nncc_rt_main with the description of
 *   model demo { input x : f32[3]   input z : f32[2]
 *                output y = dense(x, 2) + z   output s = sum(y) : [1] }
 * (params fc.weight [2, 3], fc.bias [2]).  Driven by standalone*.test. */
#include "rt_test.h"

static int demo_forward_impl(const float *params, const float *packed, float *ws, int64_t batch,
                        int64_t seq, const void *const *in, void *const *out) {
  (void)packed, (void)ws, (void)seq;
  const float *x = in[0], *z = in[1], *w = params, *b = params + 6;
  float *y = out[0], *s = out[1];
  for (int64_t n = 0; n < batch; n++) {
    s[n] = 0;
    for (int o = 0; o < 2; o++) {
      float acc = b[o];
      for (int i = 0; i < 3; i++) acc += w[o * 3 + i] * x[n * 3 + i];
      y[n * 2 + o] = acc + z[n * 2 + o];
      s[n] += y[n * 2 + o];
    }
  }
  return 0;
}

static const nncc_tensor_desc demo_inputs[] = {
  {"x", NNCC_F32, 1, {3}, 0},
  {"z", NNCC_F32, 1, {2}, 0},
};
static const nncc_tensor_desc demo_outputs[] = {
  {"y", NNCC_F32, 1, {2}, 0},
  {"s", NNCC_F32, 1, {1}, 0},
};
/* the generated-code calling convention: one nncc_exec */
static int demo_forward(const nncc_exec *x) {
  return demo_forward_impl(x->params, x->packed, x->ws, x->batch, x->seq, x->in, x->out);
}

static const nncc_model_desc demo_desc = {
  NNCC_ABI_VERSION, 0, "demo", 2, 2, 0, 2, dense_params, demo_inputs, NULL, demo_outputs,
  8, 0, NULL, NULL, demo_forward, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL,
};

int main(int argc, char **argv) { return nncc_rt_main(argc, argv, &demo_desc); }
