/* optim.c - the update program (MODE_UPDATE): one optimizer step, as torch.optim takes it.
 *
 *   kernel clip                     scale = min(1, clip_norm / (||g|| + 1e-6)) when
 *                                   clip_norm > 0 (torch.nn.utils.clip_grad_norm_), else 1;
 *                                   ||g|| over every trained parameter's gradient
 *   kernel update.<param>, each     g = grad * scale + weight_decay * p, then
 *     sgd      b = mom_buf * b + g (mom_buf = 0 at the first step: b = g);
 *              d = nesterov ? g + momentum * b : b;            p -= lr * d
 *     adagrad  s += g * g;                                     p -= lr * g / (sqrt(s) + eps)
 *     rmsprop  s = decay * s + (1 - decay) * g * g;            p -= lr * g / (sqrt(s) + eps)
 *     adam     m += (1 - beta1) (g - m);  v = beta2 v + (1 - beta2) g g;
 *              p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The step-dependent factors come from hyper[] (NNCC_H_*, runtime/nncc_rt.h), which the
 * runtime fills from the options and the step count before each update, so the kernels are
 * branch-free and every option can change at run time.  Optimizer state: NNCC_STATE_SLOTS
 * floats per trained float, slot j of parameter p at j * grad_floats + p's grad offset.
 * Frozen parameters have no gradient and are not touched.
 */
#include "lower.h"
#include "nncc_rt.h"

/* grads[offset, offset + numel), named grad.NAME */
static int grad_range(LowerCtx *lc, const char *name, int64_t offset, int64_t numel) {
  LoopProgram *lp = lc->lp;
  int b = loops_add_buf(lp, arena_printf(lp->arena, "grad.%s", name), BUF_GRAD, LT_F32);
  lp->bufs[b].offset = offset;
  lp->bufs[b].per_sample = (SymCount){numel, 0};
  return b;
}

static int grad_buf(LowerCtx *lc, const Param *p) { return grad_range(lc, p->name, p->grad_offset, p->numel); }

static int state_buf(LowerCtx *lc, const Param *p, int slot) {
  LoopProgram *lp = lc->lp;
  int b = loops_add_buf(lp, arena_printf(lp->arena, "state%d.%s", slot, p->name), BUF_STATE, LT_F32);
  lp->bufs[b].offset = slot * lc->g->grad_floats + p->grad_offset;
  lp->bufs[b].per_sample = (SymCount){p->numel, 0};
  return b;
}

void lower_update(LowerCtx *lc) {
  const Graph *g = lc->g;
  LoopProgram *lp = lc->lp;
  int sc = lower_scalars(lc);

  /* the global norm and the clipping factor */
  Kernel *kc = loops_add_kernel(lp, "clip", -1);
  ls_store(lp, kc->body, sc, le_i64(lp, NNCC_S_SUMSQ), le_f32(lp, 0));
  ls_store(lp, kc->body, sc, le_i64(lp, NNCC_S_SCALE), le_f32(lp, 1));
  LStmt *clip = ls_body(ls_if(lp, kc->body, le_bin(lp, LO_GT, lower_hyper(lc, NNCC_H_CLIP), le_f32(lp, 0))));
  /* the sum of squares: one reduction per run of gradients that lie end to end in the buffer
   * (each starts at a multiple of 16 floats: those of a multiple of 16 floats join the next),
   * into one local, lane partials folded in order.  One loop per run, not per tensor: a deep
   * model's 400 tensors in one function took LLVM a third of the compile. */
  int sumsq = ls_local(lp, clip, LT_F32, le_f32(lp, 0));
  for (int p = 0; p < g->nparams;) {
    const Param *pa = &g->params[p];
    if (!pa->trained) {
      p++;
      continue;
    }
    int64_t from = pa->grad_offset, to = from + pa->numel;
    const char *first = pa->name;
    for (p++; p < g->nparams; p++) {
      const Param *q = &g->params[p];
      if (!q->trained || q->grad_offset != to) break;
      to += q->numel;
    }
    int gb = grad_range(lc, arena_printf(lp->arena, "%s%s", first, to - from > pa->numel ? "..." : ""),
                        from, to - from);
    int i = lvar(lp, "i");
    LStmt *l = ls_reduce(lp, clip, i, le_i64(lp, 0), le_i64(lp, to - from), sumsq, LO_ADD);
    LExpr *gv = le_load(lp, gb, le_var(lp, i));
    ls_combine(lp, ls_body(l), sumsq, LO_ADD, le_bin(lp, LO_MUL, gv, gv));
  }
  ls_store(lp, clip, sc, le_i64(lp, NNCC_S_SUMSQ), le_local(lp, sumsq));
  LExpr *norm = le_un(lp, LO_SQRT, le_local(lp, sumsq));
  LExpr *coef = le_bin(lp, LO_DIV, lower_hyper(lc, NNCC_H_CLIP), le_bin(lp, LO_ADD, norm, le_f32(lp, 1e-6)));
  ls_store(lp, clip, sc, le_i64(lp, NNCC_S_SCALE), le_bin(lp, LO_MIN, coef, le_f32(lp, 1)));

  for (int p = 0; p < g->nparams; p++) {
    const Param *pa = &g->params[p];
    if (!pa->trained) continue;
    Kernel *k = loops_add_kernel(lp, arena_printf(lp->arena, "update.%s", pa->name), -1);
    int gb = grad_buf(lc, pa), pb = lower_param(lc, &g->nodes[pa->node], p - g->nodes[pa->node].first_param);
    int s0 = state_buf(lc, pa, 0);
    int i = lvar(lp, "i");
    LStmt *l = ls_for(lp, k->body, i, le_i64(lp, 0), le_i64(lp, pa->numel));
    l->vec = lp->vec_f32;
    LStmt *b = ls_body(l);
    LExpr *iv = le_var(lp, i);
    int pv = ls_local(lp, b, LT_F32, le_load(lp, pb, iv));
    LExpr *scaled = le_bin(lp, LO_MUL, le_load(lp, gb, iv), le_load(lp, sc, le_i64(lp, NNCC_S_SCALE)));
    int gv = ls_local(lp, b, LT_F32, le_fma(lp, lower_hyper(lc, NNCC_H_WD), le_local(lp, pv), scaled));
    LExpr *G = le_local(lp, gv), *P = le_local(lp, pv);
    LExpr *step;   /* what p loses */
    switch (g->train.optimizer) {
    case OPT_SGD: {
      int bv = ls_local(lp, b, LT_F32, le_fma(lp, lower_hyper(lc, NNCC_H_MOM_BUF), le_load(lp, s0, iv), G));
      ls_store(lp, b, s0, iv, le_local(lp, bv));
      LExpr *d = g->train.nesterov ? le_fma(lp, lower_hyper(lc, NNCC_H_MOM), le_local(lp, bv), G)
                                   : le_local(lp, bv);
      step = le_bin(lp, LO_MUL, lower_hyper(lc, NNCC_H_LR), d);
      break;
    }
    case OPT_ADAGRAD: {
      int sv = ls_local(lp, b, LT_F32, le_fma(lp, G, G, le_load(lp, s0, iv)));
      ls_store(lp, b, s0, iv, le_local(lp, sv));
      LExpr *den = le_bin(lp, LO_ADD, le_un(lp, LO_SQRT, le_local(lp, sv)), lower_hyper(lc, NNCC_H_EPS));
      step = le_bin(lp, LO_MUL, lower_hyper(lc, NNCC_H_STEP), le_bin(lp, LO_DIV, G, den));
      break;
    }
    case OPT_RMSPROP: {
      LExpr *old = le_bin(lp, LO_MUL, lower_hyper(lc, NNCC_H_B2), le_load(lp, s0, iv));
      int sv = ls_local(lp, b, LT_F32, le_fma(lp, le_bin(lp, LO_MUL, G, G), lower_hyper(lc, NNCC_H_1MB2), old));
      ls_store(lp, b, s0, iv, le_local(lp, sv));
      LExpr *den = le_bin(lp, LO_ADD, le_un(lp, LO_SQRT, le_local(lp, sv)), lower_hyper(lc, NNCC_H_EPS));
      step = le_bin(lp, LO_MUL, lower_hyper(lc, NNCC_H_STEP), le_bin(lp, LO_DIV, G, den));
      break;
    }
    case OPT_ADAM:
    default: {
      int s1 = state_buf(lc, pa, 1);
      int mv = ls_local(lp, b, LT_F32, le_load(lp, s0, iv));
      ls_set(lp, b, mv, le_fma(lp, lower_hyper(lc, NNCC_H_1MB1), le_bin(lp, LO_SUB, G, le_local(lp, mv)), le_local(lp, mv)));
      LExpr *old = le_bin(lp, LO_MUL, lower_hyper(lc, NNCC_H_B2), le_load(lp, s1, iv));
      int vv = ls_local(lp, b, LT_F32, le_fma(lp, le_bin(lp, LO_MUL, G, G), lower_hyper(lc, NNCC_H_1MB2), old));
      ls_store(lp, b, s0, iv, le_local(lp, mv));
      ls_store(lp, b, s1, iv, le_local(lp, vv));
      LExpr *den = le_bin(lp, LO_ADD, le_bin(lp, LO_DIV, le_un(lp, LO_SQRT, le_local(lp, vv)),
                                             lower_hyper(lc, NNCC_H_BC2SQRT)),
                          lower_hyper(lc, NNCC_H_EPS));
      step = le_bin(lp, LO_MUL, lower_hyper(lc, NNCC_H_STEP), le_bin(lp, LO_DIV, le_local(lp, mv), den));
      break;
    }
    }
    ls_store(lp, b, pb, iv, le_bin(lp, LO_SUB, P, step));
  }
}
