/* softmax.c - softmax(x) and log_softmax(x) over the last axis.
 *
 * [.., N] -> the same shape (rank >= 1; the last axis must be concrete, the
 * time axis of a sequence may be symbolic); f32 only; no parameters.
 * FLOPs per element: max 1, subtract 1, exp 4, sum 1, divide 1 = 8;
 * log_softmax adds one log (4) per row instead of the divisions.
 */
#include <stddef.h>

#include "autodiff.h"
#include "lower.h"
#include "ops.h"

static const ArgSpec softmax_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
};

static int softmax_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  Shape in = in_shape(g, n, 0);
  if (in.rank < 1 || in.d[in.rank - 1].sym) {
    char sb[160];
    diag_error(n->loc, "%s normalises over the last axis, which must have a fixed size; got %s",
               op_info(n->op)->name, shape_str(sb, sizeof sb, in, g->sym));
    op_note_value(g, n->in[0]);
    return -1;
  }
  return op_set_shape(g, n, in);
}

static SymCount softmax_flops(const Graph *g, const Node *n) {
  SymCount c = symcount_scale(shape_numel(n->shape), 8);
  if (n->op == OP_log_softmax) {
    int64_t last = n->shape.d[n->shape.rank - 1].n;
    SymCount rows = shape_numel(n->shape);
    rows.fixed /= last;
    rows.per_seq /= last;
    c = symcount_add(c, symcount_scale(rows, 4));
  }
  return c;
}

/* --- lowering ---
 *   R rows of N (the last axis): x [R, N], y [R, N]
 * Per row: the max (scalar), e = exp(x - max) stored into y (vectorized), the sum
 * (scalar), then y *= 1/sum (softmax) or y = (x - max) - log(sum) (log_softmax).
 */
static void lower_softmax(struct LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  int64_t N = n->shape.d[n->shape.rank - 1].n;
  SymCount rows = shape_numel(n->shape);
  rows.fixed /= N;
  rows.per_seq /= N;
  int x = lower_value(lc, n->in[0]), y = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int r = lvar(lp, "r"), i = lvar(lp, "i");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), lower_total(lc, rows));
  lr->parallel = 1;
  LStmt *rb = ls_body(lr);
  LExpr *at = le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, N)), le_var(lp, i));
  int m = ls_local(lp, rb, LT_F32, le_f32(lp, -__builtin_inf()));
  LStmt *l1 = ls_for(lp, rb, i, le_i64(lp, 0), le_i64(lp, N));
  ls_set(lp, ls_body(l1), m, le_bin(lp, LO_MAX, le_local(lp, m), le_load(lp, x, at)));
  LStmt *l2 = ls_for(lp, rb, i, le_i64(lp, 0), le_i64(lp, N));
  l2->vec = lp->vec_f32;
  ls_store(lp, ls_body(l2), y, at,
           le_un(lp, LO_EXP, le_bin(lp, LO_SUB, le_load(lp, x, at), le_local(lp, m))));
  /* the sum in chunks of 16, each summed apart and then added (rounding error) */
  int sum = ls_local(lp, rb, LT_F32, le_f32(lp, 0));
  int ic = lvar(lp, "ic");
  LStmt *lic = ls_for(lp, rb, ic, le_i64(lp, 0), le_i64(lp, (N + 15) / 16));
  int part = ls_local(lp, ls_body(lic), LT_F32, le_f32(lp, 0));
  LExpr *i0 = le_mul(lp, le_var(lp, ic), le_i64(lp, 16));
  LStmt *l3 = ls_for(lp, ls_body(lic), i, i0, le_bin(lp, LO_MIN, le_i64(lp, N), le_add(lp, i0, le_i64(lp, 16))));
  ls_set(lp, ls_body(l3), part, le_bin(lp, LO_ADD, le_local(lp, part), le_load(lp, y, at)));
  ls_set(lp, ls_body(lic), sum, le_bin(lp, LO_ADD, le_local(lp, sum), le_local(lp, part)));
  LExpr *v;
  if (n->op == OP_softmax) {
    int inv = ls_local(lp, rb, LT_F32, le_bin(lp, LO_DIV, le_f32(lp, 1.0), le_local(lp, sum)));
    v = le_bin(lp, LO_MUL, le_load(lp, y, at), le_local(lp, inv));
  } else {
    /* (x - max) - log(sum), not x - (max + log(sum)): at the maximum, log(sum) may be far
     * below max's rounding (PyTorch keeps it) */
    int ls = ls_local(lp, rb, LT_F32, le_un(lp, LO_LOG, le_local(lp, sum)));
    v = le_bin(lp, LO_SUB, le_bin(lp, LO_SUB, le_load(lp, x, at), le_local(lp, m)), le_local(lp, ls));
  }
  LStmt *l4 = ls_for(lp, rb, i, le_i64(lp, 0), le_i64(lp, N));
  l4->vec = lp->vec_f32;
  ls_store(lp, ls_body(l4), y, at, v);
}

/* --- the gradient rule ---
 *   softmax:      dx = y * (dy - sum(dy * y))   (_softmax_grad)
 *   log_softmax:  dx = dy - exp(y) * sum(dy)    (_log_softmax_grad)
 * the sums over the last axis (the row); both read the forward's output y, not x. */
static void grad_softmax(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  int x = g->nodes[n].in[0];
  if (!ad_wants(ad, x)) return;
  int in[2] = {dy, n};
  OpKind op = g->nodes[n].op == OP_softmax ? OP_softmax_grad : OP_log_softmax_grad;
  ad_input_grad(ad, n, 0, ad_node_like(ad, op, in, 2, n, 0, x));
}

const OpInfo op_softmax = {
    .kind = OP_softmax,
    .name = "softmax",
    .doc = "softmax(x): same shape, normalised over the last axis",
    .args = softmax_args,
    .nargs = 1,
    .infer = softmax_infer,
    .flops = softmax_flops,
    .lower = lower_softmax,
    .grad = grad_softmax,
};

const OpInfo op_log_softmax = {
    .kind = OP_log_softmax,
    .name = "log_softmax",
    .doc = "log_softmax(x): same shape, log of softmax over the last axis",
    .args = softmax_args,
    .nargs = 1,
    .infer = softmax_infer,
    .flops = softmax_flops,
    .lower = lower_softmax,
    .grad = grad_softmax,
};

/* --- the gradient program (ops.def) ---
 *   R rows of N: dy [R, N], y [R, N]; dx [R, N].  Per row (rows in parallel): the row's sum
 * (sum(dy * y) for softmax, sum(dy) for log_softmax) in chunks of 16 as in the forward, then
 * one vectorized pass for dx. */
static void lower_softmax_grad(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t N = f->shape.d[f->shape.rank - 1].n;
  int is_log = f->op == OP_log_softmax;
  int dy = lower_value(lc, n->in[0]), y = lower_value(lc, n->in[1]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int r = lvar(lp, "r"), i = lvar(lp, "i"), ic = lvar(lp, "ic");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), lower_rows(lc, f->shape));
  lr->parallel = 1;
  LStmt *rb = ls_body(lr);
  LExpr *at = le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, N)), le_var(lp, i));
  int sum = ls_local(lp, rb, LT_F32, le_f32(lp, 0));
  LStmt *lic = ls_for(lp, rb, ic, le_i64(lp, 0), le_i64(lp, (N + 15) / 16));
  int part = ls_local(lp, ls_body(lic), LT_F32, le_f32(lp, 0));
  LExpr *i0 = le_mul(lp, le_var(lp, ic), le_i64(lp, 16));
  LStmt *l1 = ls_for(lp, ls_body(lic), i, i0,
                     le_bin(lp, LO_MIN, le_i64(lp, N), le_add(lp, i0, le_i64(lp, 16))));
  ls_set(lp, ls_body(l1), part,
         is_log ? le_bin(lp, LO_ADD, le_local(lp, part), le_load(lp, dy, at))
             : le_fma(lp, le_load(lp, dy, at), le_load(lp, y, at), le_local(lp, part)));
  ls_set(lp, ls_body(lic), sum, le_bin(lp, LO_ADD, le_local(lp, sum), le_local(lp, part)));
  LStmt *l2 = ls_for(lp, rb, i, le_i64(lp, 0), le_i64(lp, N));
  l2->vec = lp->vec_f32;
  LExpr *v;
  if (is_log)
    v = le_fma(lp, le_un(lp, LO_NEG, le_un(lp, LO_EXP, le_load(lp, y, at))), le_local(lp, sum),
               le_load(lp, dy, at));
  else
    v = le_bin(lp, LO_MUL, le_load(lp, y, at),
               le_bin(lp, LO_SUB, le_load(lp, dy, at), le_local(lp, sum)));
  ls_store(lp, ls_body(l2), dx, at, v);
}

OP_INTERNAL(softmax_grad, lower_softmax_grad);
OP_INTERNAL(log_softmax_grad, lower_softmax_grad);
