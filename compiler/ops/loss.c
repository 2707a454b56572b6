/* loss.c - cross_entropy(logits, label) and mse(y, target): scalar training objectives.
 *
 *   cross_entropy: logits [C] with a label (shape [], classes C: `target y : label[C]`),
 *                  or logits [seq, C] with a label per step (shape [seq], classes C:
 *                  `target y : label[seq, C]`).  Softmax + negative log-likelihood, the mean
 *                  over the batch (and over the steps).  Output: a scalar, shape [].
 *   mse:           y and target (f32) of the same shape; the mean over all elements.
 *
 * A label node's shape leaves out the class axis (its classes are Node.classes), so
 * label[seq, 4] is shape [seq] with classes 4.  No parameters.
 * FLOPs per row of logits: 8*C + 4 (log_softmax) + 2 (pick, accumulate); mse: 3 per element.
 */
#include <stdio.h>
#include <string.h>

#include "autodiff.h"
#include "lower.h"
#include "nncc_rt.h"
#include "ops.h"

static const ArgSpec ce_args[] = {
    {.name = "logits", .type = ARG_TENSOR, .required = 1},
    {.name = "label", .type = ARG_TENSOR, .required = 1},
};

static const ArgSpec mse_args[] = {
    {.name = "y", .type = ARG_TENSOR, .required = 1},
    {.name = "target", .type = ARG_TENSOR, .required = 1},
};

/* The label as declared: "label[seq, 4]" (its shape plus the class axis). */
static char *label_type(char *buf, size_t size, const Graph *g, const Node *v) {
  Shape s = v->shape;
  if (s.rank < MAX_RANK) {
    s.d[s.rank].sym = 0;
    s.d[s.rank].n = v->classes;
    s.rank++;
  }
  char sb[160];
  snprintf(buf, size, "label%s", shape_str(sb, sizeof sb, s, g->sym));
  return buf;
}

static int scalar(Graph *g, Node *n) {
  Shape out = {.rank = 0};
  return op_set_shape(g, n, out);
}

static int ce_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  const Node *lab = &g->nodes[n->in[1]];
  const char *lname = lab->name ? lab->name : "the label";
  if (lab->dtype != DT_LABEL) {
    diag_error(n->loc, "cross_entropy expects class labels as its second argument; '%s' is %s",
               lname, lab->dtype == DT_F32 ? "f32 values" : "i32 token ids");
    if (lab->dtype == DT_F32)
      diag_note(lab->loc, "declare it as `target %s : label[C]`, or use mse(y, %s) for "
                "real-valued targets", lname, lname);
    else
      diag_note(lab->loc, "declare class targets as `target %s : label[C]`", lname);
    return -1;
  }
  Shape lg = in_shape(g, n, 0);
  char sb[160], lb[160];
  shape_str(sb, sizeof sb, lg, g->sym);
  label_type(lb, sizeof lb, g, lab);
  if (lg.rank != 1 && lg.rank != 2) {
    diag_error(n->loc, "cross_entropy expects logits [C] or [seq, C], got %s", sb);
    op_note_value(g, n->in[0]);
    return -1;
  }
  Dim c = lg.d[lg.rank - 1];
  if (c.sym) {
    diag_error(n->loc, "cross_entropy needs a fixed number of classes, got logits %s", sb);
    op_note_value(g, n->in[0]);
    return -1;
  }
  if (lab->shape.rank != lg.rank - 1) {
    if (lg.rank == 1)
      diag_error(n->loc, "cross_entropy: logits %s are one prediction per sample, but '%s' is "
                 "%s, a label per step", sb, lname, lb);
    else
      diag_error(n->loc, "cross_entropy: logits %s are a prediction per step, but '%s' is %s; "
                 "a label per step is label[seq, %lld]", sb, lname, lb, (long long)c.n);
    diag_note(lab->loc, "'%s' is declared here", lname);
    return -1;
  }
  if (lg.rank == 2 && !op_dim_equal(lg.d[0], lab->shape.d[0])) {
    diag_error(n->loc, "cross_entropy: logits %s and '%s' (%s) have different numbers of steps",
               sb, lname, lb);
    op_note_value(g, n->in[0]);
    diag_note(lab->loc, "'%s' is declared here", lname);
    return -1;
  }
  if (lab->classes != c.n) {
    diag_error(n->loc, "cross_entropy: logits %s give %lld classes, but '%s' is %s, with %lld "
               "classes", sb, (long long)c.n, lname, lb, (long long)lab->classes);
    op_note_value(g, n->in[0]);
    diag_note(lab->loc, "'%s' is declared here", lname);
    return -1;
  }
  return scalar(g, n);
}

static SymCount ce_flops(const Graph *g, const Node *n) {
  Shape lg = in_shape(g, n, 0);
  int64_t c = lg.d[lg.rank - 1].n;
  int64_t per_row = c > INT64_MAX / 16 ? INT64_MAX / 2 : 8 * c + 6;
  if (lg.rank == 1) return symcount_const(per_row);
  if (lg.d[0].sym) {
    SymCount r = {0, per_row};
    return r;
  }
  return symcount_scale(symcount_const(per_row), lg.d[0].n);
}

static int mse_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  const Node *t = &g->nodes[n->in[1]];
  const char *tname = t->name ? t->name : "the target";
  if (t->dtype != DT_F32) {
    char lb[160];
    if (t->dtype == DT_LABEL)
      diag_error(n->loc, "mse expects f32 targets; '%s' is %s, class labels", tname,
                 label_type(lb, sizeof lb, g, t));
    else
      diag_error(n->loc, "mse expects f32 targets; '%s' is i32 token ids", tname);
    diag_note(t->loc, "for class labels use cross_entropy(logits, %s)", tname);
    return -1;
  }
  Shape a = in_shape(g, n, 0), b = in_shape(g, n, 1);
  if (!shape_equal(a, b)) {
    char sa[160], sb[160];
    diag_error(n->loc, "mse: y is %s but '%s' is %s: shapes differ",
               shape_str(sa, sizeof sa, a, g->sym), tname, shape_str(sb, sizeof sb, b, g->sym));
    op_note_value(g, n->in[0]);
    op_note_value(g, n->in[1]);
    return -1;
  }
  return scalar(g, n);
}

static SymCount mse_flops(const Graph *g, const Node *n) {
  return symcount_scale(shape_numel(in_shape(g, n, 0)), 3);
}

/* --- lowering (training entry points only: the loss is not part of inference) ---
 *   R = rows (batch, or batch x steps), C = classes
 *   logits z [R, C], label [R] (int32), the loss: a scalar (BUF_SCALAR)
 * cross_entropy = (1/R) sum_r (m_r + log sum_c exp(z[r,c] - m_r) - z[r, label_r]), m_r the
 * row's maximum; a label outside [0, C) stops the call with NNCC_ERR_RANGE.  The evaluate
 * entry point also counts the rows whose first maximal logit is the label. */
static LStmt *ce_rows(LowerCtx *lc, const Node *n, LStmt *body, int *r, int *lab, int *m, int *s) {
  LoopProgram *lp = lc->lp;
  const Graph *g = lc->g;
  Shape lg = in_shape(g, n, 0);
  int64_t C = lg.d[lg.rank - 1].n;
  int z = lower_value(lc, n->in[0]), label = lower_value(lc, n->in[1]);
  *r = lvar(lp, "r");
  LStmt *lr = ls_for(lp, body, *r, le_i64(lp, 0), lower_rows(lc, lg));
  LStmt *rb = ls_body(lr);
  *lab = ls_local(lp, rb, LT_I64, le_cast(lp, LT_I64, le_load(lp, label, le_var(lp, *r))));
  LExpr *ok = le_bin(lp, LO_AND, le_bin(lp, LO_GE, le_local(lp, *lab), le_i64(lp, 0)),
                     le_bin(lp, LO_LT, le_local(lp, *lab), le_i64(lp, C)));
  const char *tname = g->nodes[n->in[1]].name;
  if (lg.rank == 2) {
    LExpr *steps = lower_count(lc, (SymCount){lg.d[0].sym ? 0 : lg.d[0].n, lg.d[0].sym ? 1 : 0});
    LExpr *args[4] = {le_local(lp, *lab), le_bin(lp, LO_DIV, le_var(lp, *r), steps),
                      le_bin(lp, LO_MOD, le_var(lp, *r), steps), le_i64(lp, C)};
    ls_check(lp, rb, ok, NNCC_ERR_RANGE,
             arena_printf(lp->arena, "%s: target '%s': label %%lld at [batch %%lld, step %%lld] "
                          "is outside [0, %%lld)", g->name, tname), 4, args);
  } else {
    LExpr *args[3] = {le_local(lp, *lab), le_var(lp, *r), le_i64(lp, C)};
    ls_check(lp, rb, ok, NNCC_ERR_RANGE,
             arena_printf(lp->arena, "%s: target '%s': label %%lld of sample %%lld is outside "
                          "[0, %%lld)", g->name, tname), 3, args);
  }
  LExpr *row = le_mul(lp, le_var(lp, *r), le_i64(lp, C));
  int c = lvar(lp, "c");
  *m = ls_local(lp, rb, LT_F32, le_load(lp, z, row));
  LStmt *lc1 = ls_reduce(lp, rb, c, le_i64(lp, 1), le_i64(lp, C), *m, LO_MAX);
  ls_combine(lp, ls_body(lc1), *m, LO_MAX, le_load(lp, z, le_add(lp, row, le_var(lp, c))));
  *s = ls_local(lp, rb, LT_F32, le_f32(lp, 0));
  int c2 = lvar(lp, "c");
  LStmt *lc2 = ls_reduce(lp, rb, c2, le_i64(lp, 0), le_i64(lp, C), *s, LO_ADD);
  ls_combine(lp, ls_body(lc2), *s, LO_ADD,
             le_un(lp, LO_EXP, le_bin(lp, LO_SUB, le_load(lp, z, le_add(lp, row, le_var(lp, c2))), le_local(lp, *m))));
  return rb;
}

static void lower_ce(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape lg = in_shape(lc->g, n, 0);
  int64_t C = lg.d[lg.rank - 1].n;
  int z = lower_value(lc, n->in[0]), loss = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int total = ls_local(lp, body, LT_F32, le_f32(lp, 0));
  int correct = ls_local(lp, body, LT_F32, le_f32(lp, 0));
  int r, lab, m, s;
  LStmt *rb = ce_rows(lc, n, body, &r, &lab, &m, &s);
  LExpr *row = le_mul(lp, le_var(lp, r), le_i64(lp, C));
  LExpr *picked = le_load(lp, z, le_add(lp, row, le_local(lp, lab)));
  ls_set(lp, rb, total, le_bin(lp, LO_ADD, le_local(lp, total),
         le_bin(lp, LO_SUB, le_bin(lp, LO_ADD, le_local(lp, m), le_un(lp, LO_LOG, le_local(lp, s))), picked)));
  if (lc->mode == MODE_EVALUATE) {
    /* the first class whose logit is the maximum (torch.argmax) */
    int best = ls_local(lp, rb, LT_I64, le_i64(lp, C));
    int c = lvar(lp, "c");
    LStmt *l = ls_for(lp, rb, c, le_i64(lp, 0), le_i64(lp, C));
    LExpr *hit = le_bin(lp, LO_AND, le_bin(lp, LO_EQ, le_load(lp, z, le_add(lp, row, le_var(lp, c))), le_local(lp, m)),
                        le_bin(lp, LO_EQ, le_local(lp, best), le_i64(lp, C)));
    ls_set(lp, ls_body(l), best, le_select(lp, hit, le_var(lp, c), le_local(lp, best)));
    ls_set(lp, rb, correct, le_bin(lp, LO_ADD, le_local(lp, correct),
           le_select(lp, le_bin(lp, LO_EQ, le_local(lp, best), le_local(lp, lab)), le_f32(lp, 1), le_f32(lp, 0))));
    int sc = lower_scalars(lc);
    ls_store(lp, body, sc, le_i64(lp, NNCC_S_CORRECT), le_local(lp, correct));
  }
  ls_store(lp, body, loss, le_i64(lp, 0),
           le_bin(lp, LO_DIV, le_local(lp, total), le_cast(lp, LT_F32, lower_rows(lc, lg))));
}

/* d loss / d z[r, c] = (softmax(z[r])_c - [c == label_r]) / R */
static void lower_ce_grad(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  Shape lg = in_shape(lc->g, f, 0);
  int64_t C = lg.d[lg.rank - 1].n;
  int z = lower_value(lc, n->in[0]), dz = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int inv = ls_local(lp, body, LT_F32, le_bin(lp, LO_DIV, le_f32(lp, 1), le_cast(lp, LT_F32, lower_rows(lc, lg))));
  int r, lab, m, s;
  LStmt *rb = ce_rows(lc, f, body, &r, &lab, &m, &s);
  LExpr *row = le_mul(lp, le_var(lp, r), le_i64(lp, C));
  int scale = ls_local(lp, rb, LT_F32, le_bin(lp, LO_DIV, le_local(lp, inv), le_local(lp, s)));
  int c = lvar(lp, "c");
  LStmt *l = ls_for(lp, rb, c, le_i64(lp, 0), le_i64(lp, C));
  l->vec = lp->vec_f32;
  LExpr *e = le_un(lp, LO_EXP, le_bin(lp, LO_SUB, le_load(lp, z, le_add(lp, row, le_var(lp, c))), le_local(lp, m)));
  LExpr *onehot = le_select(lp, le_bin(lp, LO_EQ, le_var(lp, c), le_local(lp, lab)), le_local(lp, inv), le_f32(lp, 0));
  ls_store(lp, ls_body(l), dz, le_add(lp, row, le_var(lp, c)),
           le_bin(lp, LO_SUB, le_bin(lp, LO_MUL, e, le_local(lp, scale)), onehot));
}

static void grad_ce(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  int in[2] = {g->nodes[n].in[0], g->nodes[n].in[1]};
  ad_input_grad(ad, n, 0, ad_node_like(ad, OP_ce_grad, in, 2, n, 0, in[0]));
}

/* mse = (1/N) sum (y - t)^2 over N = batch x elements; d/dy = 2 (y - t) / N (and minus that
 * for the target when it needs a gradient) */
static void lower_mse(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape s = in_shape(lc->g, n, 0);
  int y = lower_value(lc, n->in[0]), t = lower_value(lc, n->in[1]), loss = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  LExpr *N = lower_total(lc, shape_numel(s));
  int total = ls_local(lp, body, LT_F32, le_f32(lp, 0));
  int i = lvar(lp, "i");
  LStmt *l = ls_reduce(lp, body, i, le_i64(lp, 0), N, total, LO_ADD);
  LExpr *d = le_bin(lp, LO_SUB, le_load(lp, y, le_var(lp, i)), le_load(lp, t, le_var(lp, i)));
  ls_combine(lp, ls_body(l), total, LO_ADD, le_bin(lp, LO_MUL, d, d));
  ls_store(lp, body, loss, le_i64(lp, 0), le_bin(lp, LO_DIV, le_local(lp, total), le_cast(lp, LT_F32, N)));
}

static void lower_mse_grad(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  Shape s = in_shape(lc->g, f, 0);
  int y = lower_value(lc, n->in[0]), t = lower_value(lc, n->in[1]), dy = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  LExpr *N = lower_total(lc, shape_numel(s));
  int k = ls_local(lp, body, LT_F32, le_bin(lp, LO_DIV, le_f32(lp, n->wrt ? -2 : 2), le_cast(lp, LT_F32, N)));
  int i = lvar(lp, "i");
  LStmt *l = ls_for(lp, body, i, le_i64(lp, 0), N);
  l->vec = lp->vec_f32;
  LExpr *d = le_bin(lp, LO_SUB, le_load(lp, y, le_var(lp, i)), le_load(lp, t, le_var(lp, i)));
  ls_store(lp, ls_body(l), dy, le_var(lp, i), le_bin(lp, LO_MUL, d, le_local(lp, k)));
}

static void grad_mse(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  int in[2] = {g->nodes[n].in[0], g->nodes[n].in[1]};
  for (int w = 0; w < 2; w++)
    if (ad_wants(ad, in[w])) ad_input_grad(ad, n, w, ad_node_like(ad, OP_mse_grad, in, 2, n, w, in[w]));
}

const OpInfo op_cross_entropy = {
    .kind = OP_cross_entropy,
    .name = "cross_entropy",
    .doc = "cross_entropy(logits, label): logits [C] or [seq, C] with label[C] / label[seq, C] "
           "-> scalar",
    .args = ce_args,
    .nargs = 2,
    .infer = ce_infer,
    .flops = ce_flops,
    .lower = lower_ce,
    .grad = grad_ce,
};

const OpInfo op_mse = {
    .kind = OP_mse,
    .name = "mse",
    .doc = "mse(y, target): same shapes -> scalar, the mean squared error",
    .args = mse_args,
    .nargs = 2,
    .infer = mse_infer,
    .flops = mse_flops,
    .lower = lower_mse,
    .grad = grad_mse,
};

/* --- the gradient program (ops.def) --- */
OP_INTERNAL(ce_grad, lower_ce_grad);
OP_INTERNAL(mse_grad, lower_mse_grad);
