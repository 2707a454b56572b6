/* unit_split_flat_test.c - loops_split_flat (compiler/loops.c) on hand-built kernels: which
 * top-level loops it puts on threads in blocks of 4096 and which it must leave alone because
 * their iterations are not independent or there is nothing to split.  Prints the program;
 * unit_split_flat.test pins it. */
#include <stdio.h>

#include "loops.h"

/* kernel NAME { for i in [0, hi) vec 8 { dst[store_at] = value } } */
static LStmt *flat(LoopProgram *lp, const char *name, LExpr *hi, int *var) {
  Kernel *k = loops_add_kernel(lp, name, -1);
  *var = lvar(lp, "i");
  LStmt *l = ls_for(lp, k->body, *var, le_i64(lp, 0), hi);
  l->vec = 8;
  return l;
}

int main(void) {
  LoopProgram *lp = loops_new(NULL);
  lp->vec_f32 = 8;
  int x = loops_add_buf(lp, "x", BUF_INPUT, LT_F32), y = loops_add_buf(lp, "y", BUF_TEMP, LT_F32);
  int z = loops_add_buf(lp, "z", BUF_TEMP, LT_F32);
  LExpr *n = le_mul(lp, le_batch(lp), le_i64(lp, 10000));
  int i;
  /* split: y[i] = max(x[i], 0), y read and written at [i], two buffers written */
  LStmt *l = flat(lp, "relu", n, &i);
  ls_store(lp, ls_body(l), y, le_var(lp, i), le_bin(lp, LO_MAX, le_load(lp, x, le_var(lp, i)), le_f32(lp, 0)));
  l = flat(lp, "in_place", n, &i);
  int t = ls_local(lp, ls_body(l), LT_F32, le_load(lp, y, le_var(lp, i)));
  ls_store(lp, ls_body(l), z, le_var(lp, i), le_local(lp, t));
  ls_store(lp, ls_body(l), y, le_var(lp, i), le_mul(lp, le_local(lp, t), le_load(lp, x, le_i64(lp, 0))));
  /* split: 4097 constant trips */
  l = flat(lp, "const_4097", le_i64(lp, 4097), &i);
  ls_store(lp, ls_body(l), y, le_var(lp, i), le_load(lp, x, le_var(lp, i)));
  /* kept: 4096 constant trips, one block */
  l = flat(lp, "const_4096", le_i64(lp, 4096), &i);
  ls_store(lp, ls_body(l), y, le_var(lp, i), le_load(lp, x, le_var(lp, i)));
  /* kept: reads the buffer it writes at a neighbour's index */
  l = flat(lp, "neighbour", n, &i);
  ls_store(lp, ls_body(l), y, le_var(lp, i), le_load(lp, y, le_add(lp, le_var(lp, i), le_i64(lp, 1))));
  /* kept: writes at 2i */
  l = flat(lp, "strided_store", n, &i);
  ls_store(lp, ls_body(l), y, le_mul(lp, le_var(lp, i), le_i64(lp, 2)), le_load(lp, x, le_var(lp, i)));
  /* kept: an inner loop */
  l = flat(lp, "inner_loop", n, &i);
  int j = lvar(lp, "j");
  LStmt *lj = ls_for(lp, ls_body(l), j, le_i64(lp, 0), le_i64(lp, 3));
  ls_store(lp, ls_body(lj), y, le_var(lp, i), le_load(lp, x, le_var(lp, i)));
  /* kept: a reduction */
  Kernel *k = loops_add_kernel(lp, "reduction", -1);
  int acc = ls_local(lp, k->body, LT_F32, le_f32(lp, 0));
  i = lvar(lp, "i");
  LStmt *lr = ls_reduce(lp, k->body, i, le_i64(lp, 0), n, acc, LO_ADD);
  ls_combine(lp, ls_body(lr), acc, LO_ADD, le_load(lp, x, le_var(lp, i)));
  ls_store(lp, k->body, z, le_i64(lp, 0), le_local(lp, acc));
  /* kept: scalar, and already parallel */
  l = flat(lp, "scalar", n, &i);
  l->vec = 1;
  ls_store(lp, ls_body(l), y, le_var(lp, i), le_load(lp, x, le_var(lp, i)));
  l = flat(lp, "parallel", n, &i);
  l->parallel = 1;
  ls_store(lp, ls_body(l), y, le_var(lp, i), le_load(lp, x, le_var(lp, i)));
  /* kept: not at the kernel's top level */
  k = loops_add_kernel(lp, "nested", -1);
  int r = lvar(lp, "r");
  LStmt *lo = ls_for(lp, k->body, r, le_i64(lp, 0), le_batch(lp));
  i = lvar(lp, "i");
  l = ls_for(lp, ls_body(lo), i, le_i64(lp, 0), le_i64(lp, 10000));
  l->vec = 8;
  ls_store(lp, ls_body(l), y, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, 10000)), le_var(lp, i)),
           le_f32(lp, 0));
  loops_split_flat(lp);
  loops_print(stdout, lp);
  loops_free(lp);
  return 0;
}
