/* unit_unpack_test.c - loops_drop_read_unpacks (compiler/loops.c) on hand-built programs: a
 * parameter stays restorable from its packed copy (so the runtime may drop its pages) only
 * when no inference kernel reads it, through its own buffer or through another parameter
 * buffer that overlaps it, in the forward or in the step.  A read by a prepare kernel does not
 * count.  Prints the forward program; unit_unpack.test pins which unpack kernels remain. */
#include <stdio.h>

#include "loops.h"

static int param(LoopProgram *lp, const char *name, int64_t offset, int64_t numel) {
  int b = loops_add_buf(lp, name, BUF_PARAM, LT_F32);
  lp->bufs[b].offset = offset;
  lp->bufs[b].per_sample = (SymCount){numel, 0};
  return b;
}

/* kernel NAME { y[0] = buf[at] } */
static void reads(LoopProgram *lp, const char *name, int y, int buf, int64_t at) {
  Kernel *k = loops_add_kernel(lp, name, -1);
  ls_store(lp, k->body, y, le_i64(lp, 0), le_load(lp, buf, le_i64(lp, at)));
}

static void unpack(LoopProgram *lp, int p, int packed) {
  LStmt *body = loops_add_unpack(lp, lp->bufs[p].name, p)->body;
  ls_store(lp, body, p, le_i64(lp, 0), le_load(lp, packed, le_i64(lp, 0)));
}

int main(void) {
  LoopProgram *fwd = loops_new(NULL), *step = loops_new(NULL);
  fwd->vec_f32 = step->vec_f32 = 8;
  int a = param(fwd, "a", 0, 100), b = param(fwd, "b", 100, 100), c = param(fwd, "c", 200, 50);
  int d = param(fwd, "d", 300, 10), e = param(fwd, "e", 400, 10);
  int view = param(fwd, "view", 190, 20);   /* another parameter's buffer, overlapping c's start */
  int packed = loops_add_buf(fwd, "packed", BUF_PACKED, LT_F32);
  int y = loops_add_buf(fwd, "y", BUF_OUTPUT, LT_F32);
  reads(fwd, "reads_b", y, b, 5);
  reads(fwd, "reads_view", y, view, 0);
  Kernel *pk = loops_add_prepare(fwd, "packs_e");
  ls_store(fwd, pk->body, packed, le_i64(fwd, 0), le_load(fwd, e, le_i64(fwd, 0)));
  int sd = param(step, "d", 300, 10), sy = loops_add_buf(step, "y", BUF_OUTPUT, LT_F32);
  reads(step, "reads_d", sy, sd, 9);
  unpack(fwd, a, packed);
  unpack(fwd, b, packed);
  unpack(fwd, c, packed);
  unpack(fwd, d, packed);
  unpack(fwd, e, packed);
  const LoopProgram *readers[2] = {fwd, step};
  loops_drop_read_unpacks(fwd, readers, 2);
  loops_print(stdout, fwd);
  loops_free(fwd);
  loops_free(step);
  return 0;
}
