/* lrn.c - lrn(x, size, alpha=1e-4, beta=0.75, k=1): PyTorch LocalResponseNorm.
 *
 *   b[c] = a[c] / (k + alpha/size * sum_{c' in window(c)} a[c']^2)^beta
 * over the first per-sample axis (channels, PyTorch's dim 1), the window
 * running from c - size/2 to c + (size-1)/2, zero-padded.  The shape is kept
 * (rank >= 1, channels concrete); no parameters.  Attrs: kernel = size,
 * alpha, beta, k.  FLOPs per element: 2*size (a square and an add per
 * neighbour) + 8 (scale 1, add 1, pow 4, divide 1, spare 1).
 */
#include <stddef.h>

#include "autodiff.h"
#include "lower.h"
#include "ops.h"

static const ArgSpec lrn_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
    {.name = "size", .type = ARG_INT, .required = 1, .offset = offsetof(Attrs, kernel), .min = 1,
     .max = 1e18},
    {.name = "alpha", .type = ARG_FLOAT, .dflt = 1e-4, .offset = offsetof(Attrs, alpha)},
    {.name = "beta", .type = ARG_FLOAT, .dflt = 0.75, .offset = offsetof(Attrs, beta)},
    {.name = "k", .type = ARG_FLOAT, .dflt = 1.0, .offset = offsetof(Attrs, k)},
};

static int lrn_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  Shape in = in_shape(g, n, 0);
  if (in.rank < 1 || in.d[0].sym) {
    char sb[160];
    diag_error(n->loc, "lrn normalises across channels, the first axis, which must have a fixed "
               "size; got %s", shape_str(sb, sizeof sb, in, g->sym));
    op_note_value(g, n->in[0]);
    return -1;
  }
  return op_set_shape(g, n, in);
}

static SymCount lrn_flops(const Graph *g, const Node *n) {
  int64_t per = n->a.kernel > INT64_MAX / 4 ? INT64_MAX / 2 : 2 * n->a.kernel + 8;
  return symcount_scale(shape_numel(n->shape), per);
}

/* Lowering, per sample [C, S] with S the product of the other axes (S may hold seq):
 *   for b, c: for s (vectorized, contiguous):
 *     sum = sum of a[c', s]^2 over c' in [max(0, c - size/2), min(C, c + (size-1)/2 + 1))
 *     out[c, s] = a[c, s] / (k + alpha/size * sum)^beta
 * The divisor is always `size` (PyTorch averages the zero-padded window).  beta = 1, 0.5
 * and 0.75 (AlexNet) use square roots instead of pow. */

/* S: the product of the axes after the channels (fresh expression). */
static LExpr *spatial(LoopProgram *lp, const Node *n) {
  LExpr *e = le_i64(lp, 1);
  for (int i = 1; i < n->shape.rank; i++) e = le_mul(lp, e, le_dim(lp, n->shape.d[i]));
  return e;
}

/* The index of a[b, c, s]: (b * C + c) * S + s. */
static LExpr *lrn_at(LoopProgram *lp, const Node *n, int b, LExpr *c, int s) {
  LExpr *bc = le_add(lp, le_mul(lp, le_var(lp, b), le_i64(lp, n->shape.d[0].n)), c);
  return le_add(lp, le_mul(lp, bc, spatial(lp, n)), le_var(lp, s));
}

/* d^beta for the local d (d > 0). */
static LExpr *lrn_pow(LoopProgram *lp, int d, double beta) {
  if (beta == 1.0) return le_local(lp, d);
  if (beta == 0.5) return le_un(lp, LO_SQRT, le_local(lp, d));
  if (beta == 0.75)
    return le_bin(lp, LO_MUL, le_un(lp, LO_SQRT, le_local(lp, d)),
                  le_un(lp, LO_SQRT, le_un(lp, LO_SQRT, le_local(lp, d))));
  return le_bin(lp, LO_POW, le_local(lp, d), le_f32(lp, beta));
}

/* Appends to bs the local S = k + alpha/size * sum of in[b, w, s]^2 over the window of
 * channel c, w in [c - size/2, c + (size-1)/2] clipped to [0, C) (the forward's window, which
 * the gradient recomputes); returns the local.  n is the lrn node. */
static int lrn_denominator(LoopProgram *lp, const Node *n, LStmt *bs, int in, int b, int c,
                           int s, int w) {
  int64_t ch = n->shape.d[0].n, size = n->a.kernel;
  int sum = ls_local(lp, bs, LT_F32, le_f32(lp, 0));
  LExpr *lo = le_bin(lp, LO_MAX, le_sub(lp, le_var(lp, c), le_i64(lp, size / 2)), le_i64(lp, 0));
  LExpr *hi = le_bin(lp, LO_MIN, le_add(lp, le_var(lp, c), le_i64(lp, (size - 1) / 2 + 1)),
                     le_i64(lp, ch));
  LStmt *lw = ls_for(lp, bs, w, lo, hi);
  LExpr *v1 = le_load(lp, in, lrn_at(lp, n, b, le_var(lp, w), s));
  LExpr *v2 = le_load(lp, in, lrn_at(lp, n, b, le_var(lp, w), s));
  ls_set(lp, ls_body(lw), sum, le_fma(lp, v1, v2, le_local(lp, sum)));
  return ls_local(lp, bs, LT_F32,
                  le_fma(lp, le_f32(lp, n->a.alpha / (double)size), le_local(lp, sum),
                         le_f32(lp, n->a.k)));
}

static void lower_lrn(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  int64_t ch = n->shape.d[0].n;
  LStmt *body = lower_begin(lc, n);
  int in = lower_value(lc, n->in[0]), out = lower_value(lc, n->id);
  int b = lvar(lp, "b"), c = lvar(lp, "c"), s = lvar(lp, "s"), w = lvar(lp, "w");
  LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
  lb->parallel = 1; /* batch rows are independent */
  LStmt *lch = ls_for(lp, ls_body(lb), c, le_i64(lp, 0), le_i64(lp, ch));
  LStmt *ls = ls_for(lp, ls_body(lch), s, le_i64(lp, 0), spatial(lp, n));
  ls->vec = lp->vec_f32;
  LStmt *bs = ls_body(ls);
  int d = lrn_denominator(lp, n, bs, in, b, c, s, w);
  ls_store(lp, bs, out, lrn_at(lp, n, b, le_var(lp, c), s),
           le_bin(lp, LO_DIV, le_load(lp, in, lrn_at(lp, n, b, le_var(lp, c), s)),
                  lrn_pow(lp, d, n->a.beta)));
}

/* --- the gradient rule ---
 *   b_j = x_j S_j^-beta,  S_j = k + alpha/size * sum_{c in W(j)} x_c^2,
 *   W(j) = [j - size/2, j + (size-1)/2] (clipped to [0, C)), so c is in W(j) exactly when
 *   j is in [c - (size-1)/2, c + size/2]:
 *   dx_c = dy_c S_c^-beta - (2 alpha beta / size) x_c sum_{j: c in W(j)} dy_j x_j S_j^(-beta-1)
 * One node, _lrn_grad(dy, x), recomputes S from x. */
static void grad_lrn(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  int x = g->nodes[n].in[0];
  if (!ad_wants(ad, x)) return;
  int in[2] = {dy, x};
  ad_input_grad(ad, n, 0, ad_node_like(ad, OP_lrn_grad, in, 2, n, 0, x));
}

const OpInfo op_lrn = {
    .kind = OP_lrn,
    .name = "lrn",
    .doc = "lrn(x, size, alpha=1e-4, beta=0.75, k=1): same shape, normalised across channels",
    .args = lrn_args,
    .nargs = sizeof lrn_args / sizeof lrn_args[0],
    .infer = lrn_infer,
    .flops = lrn_flops,
    .lower = lower_lrn,
    .grad = grad_lrn,
};

/* --- the gradient program (ops.def) ---
 * Per sample [C, S] (samples in parallel), two passes over (c, s), vectorized over s:
 *   1. S_c from the forward's window; p[c, s] = S_c^-beta, t[c, s] = dy_c x_c p / S_c
 *      (two per-sample scratch buffers);
 *   2. dx_c = dy_c p_c - (2 alpha beta / size) x_c sum_{j in [c - (size-1)/2, c + size/2]} t_j.
 * Both windows cost size per element, as the forward. */
static void lower_lrn_grad(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t ch = f->shape.d[0].n, size = f->a.kernel;
  int dy = lower_value(lc, n->in[0]), in = lower_value(lc, n->in[1]), dx = lower_value(lc, n->id);
  SymCount per = shape_numel(f->shape);
  int pb = lower_scratch(lc, arena_printf(lp->arena, "%s.p", n->name), LT_F32, per, 1);
  int tb = lower_scratch(lc, arena_printf(lp->arena, "%s.t", n->name), LT_F32, per, 1);
  LStmt *body = lower_begin(lc, n);
  int b = lvar(lp, "b");
  LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
  lb->parallel = 1;
  /* pass 1 */
  {
    int c = lvar(lp, "c"), s = lvar(lp, "s"), w = lvar(lp, "w");
    LStmt *lch = ls_for(lp, ls_body(lb), c, le_i64(lp, 0), le_i64(lp, ch));
    LStmt *ls = ls_for(lp, ls_body(lch), s, le_i64(lp, 0), spatial(lp, f));
    ls->vec = lp->vec_f32;
    LStmt *bs = ls_body(ls);
    int d = lrn_denominator(lp, f, bs, in, b, c, s, w);
    int p = ls_local(lp, bs, LT_F32, le_bin(lp, LO_DIV, le_f32(lp, 1.0), lrn_pow(lp, d, f->a.beta)));
    ls_store(lp, bs, pb, lrn_at(lp, f, b, le_var(lp, c), s), le_local(lp, p));
    LExpr *t = le_bin(lp, LO_MUL,
                      le_bin(lp, LO_MUL, le_load(lp, dy, lrn_at(lp, f, b, le_var(lp, c), s)),
                             le_load(lp, in, lrn_at(lp, f, b, le_var(lp, c), s))),
                      le_bin(lp, LO_DIV, le_local(lp, p), le_local(lp, d)));
    ls_store(lp, bs, tb, lrn_at(lp, f, b, le_var(lp, c), s), t);
  }
  /* pass 2 */
  {
    int c = lvar(lp, "c"), s = lvar(lp, "s"), j = lvar(lp, "j");
    LStmt *lch = ls_for(lp, ls_body(lb), c, le_i64(lp, 0), le_i64(lp, ch));
    LStmt *ls = ls_for(lp, ls_body(lch), s, le_i64(lp, 0), spatial(lp, f));
    ls->vec = lp->vec_f32;
    LStmt *bs = ls_body(ls);
    int sum = ls_local(lp, bs, LT_F32, le_f32(lp, 0));
    LExpr *lo = le_bin(lp, LO_MAX, le_sub(lp, le_var(lp, c), le_i64(lp, (size - 1) / 2)), le_i64(lp, 0));
    LExpr *hi = le_bin(lp, LO_MIN, le_add(lp, le_var(lp, c), le_i64(lp, size / 2 + 1)),
                       le_i64(lp, ch));
    LStmt *lj = ls_for(lp, bs, j, lo, hi);
    ls_set(lp, ls_body(lj), sum, le_bin(lp, LO_ADD, le_local(lp, sum),
                                        le_load(lp, tb, lrn_at(lp, f, b, le_var(lp, j), s))));
    double coef = 2.0 * f->a.alpha * f->a.beta / (double)size;
    LExpr *at = lrn_at(lp, f, b, le_var(lp, c), s);
    LExpr *v = le_fma(lp, le_load(lp, dy, at), le_load(lp, pb, lrn_at(lp, f, b, le_var(lp, c), s)),
                      le_bin(lp, LO_MUL, le_f32(lp, -coef),
                             le_bin(lp, LO_MUL, le_load(lp, in, lrn_at(lp, f, b, le_var(lp, c), s)),
                                    le_local(lp, sum))));
    ls_store(lp, bs, dx, lrn_at(lp, f, b, le_var(lp, c), s), v);
  }
}

OP_INTERNAL(lrn_grad, lower_lrn_grad);
