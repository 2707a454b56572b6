/* structural.c - ops that move or combine values without parameters.
 *
 *   _input              an `input` / `target` declaration: sema sets its shape, dtype, classes
 *   flatten(x)          [d0, d1, ...] -> [d0*d1*...]   (all dims concrete)
 *   dropout(x, p)       same shape; the identity at inference; 0 <= p < 1
 *   last(h)             [seq, K] -> [K]: the final step
 *   _add(a, b), _mul    `a + b`, `a * b`: identical shapes, elementwise
 *   concat(t, ...)      joins along the first per-sample axis: channels of [C, H, W],
 *                       elements of [K], features (the LAST axis) of [seq, K]
 *                       (op_concat_axis); every other axis must match.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "autodiff.h"
#include "lower.h"
#include "ops.h"

static const ArgSpec none_args[] = {{.name = "x", .type = ARG_TENSOR, .required = 1}};

static const ArgSpec dropout_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
    {.name = "p", .type = ARG_FLOAT, .required = 1, .offset = offsetof(Attrs, p), .min = 0,
     .max = 1, .max_exclusive = 1},
};

static const ArgSpec binary_args[] = {
    {.name = "a", .type = ARG_TENSOR, .required = 1},
    {.name = "b", .type = ARG_TENSOR, .required = 1},
};

static const ArgSpec concat_args[] = {
    {.name = "tensors", .type = ARG_TENSOR, .required = 1},
};

static SymCount zero_flops(const Graph *g, const Node *n) { return symcount_const(0); }

static SymCount elementwise_flops(const Graph *g, const Node *n) { return shape_numel(n->shape); }

/* _input: the declaration already carries its shape (sema); nothing to derive. */
static int input_infer(Graph *g, Node *n) { return 0; }

static int flatten_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  Shape in = in_shape(g, n, 0);
  char sb[160];
  shape_str(sb, sizeof sb, in, g->sym);
  if (in.rank < 1) {
    diag_error(n->loc, "flatten expects at least one axis, got the scalar %s", sb);
    op_note_value(g, n->in[0]);
    return -1;
  }
  if (shape_has_sym(in)) {
    diag_error(n->loc, "flatten cannot flatten %s: the symbolic length '%s' has no fixed size", sb,
               g->sym ? g->sym : "?");
    op_note_value(g, n->in[0]);
    if (in.rank == 2 && in.d[0].sym)
      diag_note((Loc){0}, "to reduce a sequence to one vector, take its final step with last(h)");
    return -1;
  }
  int64_t total = 1;
  for (int i = 0; i < in.rank; i++) {
    if (checked_mul(total, in.d[i].n, &total)) {
      diag_error(n->loc, "flatten: the product of %s is too large", sb);
      return -1;
    }
  }
  Shape out = {.rank = 1};
  out.d[0].n = total;
  return op_set_shape(g, n, out);
}

static int same_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  return op_set_shape(g, n, in_shape(g, n, 0));
}

static int last_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0) || op_require_rank(g, n, 0, 2, "a sequence [seq, K]")) return -1;
  Shape in = in_shape(g, n, 0);
  Shape out = {.rank = 1};
  out.d[0] = in.d[1];
  return op_set_shape(g, n, out);
}

static int binary_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0) || op_require_f32(g, n, 1)) return -1;
  Shape a = in_shape(g, n, 0), b = in_shape(g, n, 1);
  if (!shape_equal(a, b)) {
    char sa[160], sb[160];
    diag_error(n->loc, "cannot %s %s and %s: shapes differ", n->op == OP_add ? "add" : "multiply",
               shape_str(sa, sizeof sa, a, g->sym), shape_str(sb, sizeof sb, b, g->sym));
    op_note_value(g, n->in[0]);
    op_note_value(g, n->in[1]);
    return -1;
  }
  return op_set_shape(g, n, a);
}

static int concat_infer(Graph *g, Node *n) {
  if (n->nin < 1) {
    diag_error(n->loc, "concat needs at least one value");
    return -1;
  }
  for (int i = 0; i < n->nin; i++)
    if (op_require_f32(g, n, i)) return -1;
  Shape first = in_shape(g, n, 0);
  char s0[160], si[160];
  shape_str(s0, sizeof s0, first, g->sym);
  if (first.rank < 1) {
    diag_error(n->loc, "concat cannot join scalars");
    return -1;
  }
  int axis = op_concat_axis(first.rank);
  const char *axis_name = first.rank == 3 ? "channels" : first.rank == 2 ? "features" : "elements";
  Shape out = first;
  for (int i = 0; i < n->nin; i++) {
    Shape s = in_shape(g, n, i);
    shape_str(si, sizeof si, s, g->sym);
    int bad_axis = -1;
    if (s.rank != first.rank) {
      diag_error(n->loc, "concat cannot join %s and %s: ranks differ", s0, si);
    } else {
      for (int d = 0; d < s.rank; d++)
        if (bad_axis < 0 && d != axis && !op_dim_equal(s.d[d], first.d[d])) bad_axis = d;
      if (s.d[axis].sym) {
        diag_error(n->loc, "concat joins %s along axis %d, which is the symbolic length '%s'", si,
                   axis, g->sym ? g->sym : "?");
        op_note_value(g, n->in[i]);
        return -1;
      }
      if (bad_axis < 0) {
        if (i > 0 && checked_add(out.d[axis].n, s.d[axis].n, &out.d[axis].n)) {
          diag_error(n->loc, "concat: the joined size is too large");
          return -1;
        }
        continue;
      }
      diag_error(n->loc, "concat cannot join %s and %s: they differ in axis %d, and only axis %d "
                 "(%s) may differ", s0, si, bad_axis, axis, axis_name);
    }
    op_note_value(g, n->in[0]);
    op_note_value(g, n->in[i]);
    return -1;
  }
  return op_set_shape(g, n, out);
}

/* last lowering: out[b, k] = h[b, seq - 1, k], a contiguous copy vectorized over k. */
static void lower_last(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  int64_t k = in.d[1].n;
  LStmt *body = lower_begin(lc, n);
  int src = lower_value(lc, n->in[0]), out = lower_value(lc, n->id);
  int b = lvar(lp, "b"), j = lvar(lp, "k");
  LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
  LStmt *lk = ls_for(lp, ls_body(lb), j, le_i64(lp, 0), le_i64(lp, k));
  lk->vec = lp->vec_f32;
  LExpr *row = le_sub(lp, le_mul(lp, le_add(lp, le_var(lp, b), le_i64(lp, 1)),
                                 le_dim(lp, in.d[0])),
                      le_i64(lp, 1)); /* b * seq + seq - 1 */
  ls_store(lp, ls_body(lk), out, le_add(lp, le_mul(lp, le_var(lp, b), le_i64(lp, k)),
                                        le_var(lp, j)),
           le_load(lp, src, le_add(lp, le_mul(lp, row, le_i64(lp, k)), le_var(lp, j))));
}

/* The product of dims [from, to) of s (fresh expression; seq where symbolic). */
static LExpr *dims_product(LoopProgram *lp, Shape s, int from, int to) {
  LExpr *e = le_i64(lp, 1);
  for (int i = from; i < to; i++) e = le_mul(lp, e, le_dim(lp, s.d[i]));
  return e;
}

/* concat lowering: with O = the product of the axes before the joined one and I = after
 * it, input i ([O, a_i, I] per sample) is a run of a_i * I contiguous elements per
 * (b, o) row, copied to offset off_i * I of the output's row of A * I (vectorized). */

enum { COPY_BLOCK = 4096 };   /* elements of a row a thread copies at a time */

/* The axes after the joined one are fixed (the symbolic length comes first): their product. */
static int64_t inner_size(Shape s, int axis) {
  int64_t I = 1;
  for (int i = axis + 1; i < s.rank; i++) {
    if (s.d[i].sym) die("concat: a symbolic axis after the joined one");
    I *= s.d[i].n;
  }
  return I;
}

/* dst[r * dA + doff + j] = src[r * sA + soff + j] for r < R, j < J: every row in blocks of
 * COPY_BLOCK, the (row, block) pairs on threads (a batch-1 image's rows are one long run). */
static void copy_rows(LoopProgram *lp, LStmt *body, LExpr *R, int64_t J, int dst, int64_t dA,
                      int64_t doff, int src, int64_t sA, int64_t soff) {
  int64_t nb = (J + COPY_BLOCK - 1) / COPY_BLOCK;
  int rj = lvar(lp, "rj"), j = lvar(lp, "j");
  LStmt *l = ls_for(lp, body, rj, le_i64(lp, 0), le_mul(lp, R, le_i64(lp, nb)));
  l->parallel = 1;
  LStmt *lb = ls_body(l);
  LExpr *r = le_var(lp, rj), *lo = le_i64(lp, 0), *hi = le_i64(lp, J);
  if (nb > 1) {
    r = le_local(lp, ls_local(lp, lb, LT_I64, le_bin(lp, LO_DIV, le_var(lp, rj), le_i64(lp, nb))));
    lo = le_local(lp, ls_local(lp, lb, LT_I64, le_mul(lp, le_bin(lp, LO_MOD, le_var(lp, rj), le_i64(lp, nb)),
                                                       le_i64(lp, COPY_BLOCK))));
    /* `lo + COPY_BLOCK` with the loop's own lo: codegen's work estimate reads the block size */
    hi = le_bin(lp, LO_MIN, le_add(lp, lo, le_i64(lp, COPY_BLOCK)), le_i64(lp, J));
  }
  LStmt *lj = ls_for(lp, lb, j, lo, hi);
  lj->vec = lp->vec_f32;
  LExpr *di = le_add(lp, le_add(lp, le_mul(lp, r, le_i64(lp, dA)), le_i64(lp, doff)), le_var(lp, j));
  LExpr *si = le_add(lp, le_add(lp, le_mul(lp, r, le_i64(lp, sA)), le_i64(lp, soff)), le_var(lp, j));
  ls_store(lp, ls_body(lj), dst, di, le_load(lp, src, si));
}

/* OpInfo.plan: when the joined axis is the first (each input one run of every batch row: the
 * channels of [C, H, W], the elements of [K]), an input that nothing else reads, not an output,
 * of fixed size, whose producer can write it in place (OpInfo.can_place: a conv2d, through its
 * fused activation) is written straight into its part of the rows: no copy (Inception's four
 * branches).  lower_graph makes no kernel when every input is placed. */
static void plan_concat(LowerCtx *lc, const Node *n, const int *uses) {
  const Graph *g = lc->g;
  if (op_concat_axis(n->shape.rank) != 0 || shape_numel(n->shape).per_seq || !n->batched) return;
  int64_t off = 0;
  for (int i = 0; i < n->nin; i++) {
    int v = n->in[i];
    const Node *vn = &g->nodes[v], *an = &g->nodes[lower_producer(lc, v)];
    SymCount c = shape_numel(vn->shape);
    const OpInfo *info = an->info ? an->info : op_info(an->op);
    if (!c.per_seq && vn->batched && uses[v] == 1 && vn->output_index < 0 && lc->place_in[v] < 0 &&
        !(lc->grad_param && lc->grad_param[v] >= 0) && info && info->can_place && info->can_place(lc, an)) {
      lc->place_in[v] = n->id;
      lc->place_off[v] = off;
    }
    off += c.fixed;
  }
}

static void lower_concat(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  int axis = op_concat_axis(n->shape.rank);
  int64_t total = n->shape.d[axis].n, off = 0;
  LStmt *body = lower_begin(lc, n);
  int out = lower_value(lc, n->id);
  for (int i = 0; i < n->nin; i++) {
    Shape s = in_shape(lc->g, n, i);
    int64_t a = s.d[axis].n, I = inner_size(s, axis);
    if (lc->place_in[n->in[i]] == n->id) { /* its producer wrote it there (plan_concat) */
      off += a;
      continue;
    }
    /* out[(r * A + off) * I + j] = in[r * a * I + j] */
    copy_rows(lp, body, le_mul(lp, le_batch(lp), dims_product(lp, s, 0, axis)), a * I, out, total * I,
              off * I, lower_value(lc, n->in[i]), a * I, 0);
    off += a;
  }
}

/* --- gradient rules and the gradient program's structural ops ---
 *   flatten   dx = dy seen in x's shape (_reshape: the same buffer)
 *   dropout   dx = dy * mask / (1 - p), the forward's mask recomputed (_dropout_grad)
 *   a + b     da = db = dy;   a * b: da = dy * b, db = dy * a
 *   last      dx = dy at the last step, 0 elsewhere (_last_grad)
 *   concat    dx_i = the part of dy that came from input i (_slice)
 */
static void grad_flatten(AdCtx *ad, int n, int dy) {
  int x = ad_graph(ad)->nodes[n].in[0];
  ad_input_grad(ad, n, 0, ad_node_like(ad, OP_reshape, &dy, 1, n, 0, x));
}

static void grad_dropout(AdCtx *ad, int n, int dy) {
  ad_input_grad(ad, n, 0, ad_node_like(ad, OP_dropout_grad, &dy, 1, n, 0, n));
}

static void grad_add(AdCtx *ad, int n, int dy) {
  ad_input_grad(ad, n, 0, dy);
  ad_input_grad(ad, n, 1, dy);
}

static void grad_mul(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  int a = g->nodes[n].in[0], b = g->nodes[n].in[1];
  if (ad_wants(ad, a)) {
    int in[2] = {dy, b};
    ad_input_grad(ad, n, 0, ad_node_like(ad, OP_mul, in, 2, n, 0, a));
  }
  if (ad_wants(ad, b)) {
    int in[2] = {dy, a};
    ad_input_grad(ad, n, 1, ad_node_like(ad, OP_mul, in, 2, n, 1, b));
  }
}

static void grad_last(AdCtx *ad, int n, int dy) {
  int x = ad_graph(ad)->nodes[n].in[0];
  ad_input_grad(ad, n, 0, ad_node_like(ad, OP_last_grad, &dy, 1, n, 0, x));
}

static void grad_concat(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  for (int i = 0; i < g->nodes[n].nin; i++) {
    int x = g->nodes[n].in[i];
    if (ad_wants(ad, x)) ad_input_grad(ad, n, i, ad_node_like(ad, OP_slice, &dy, 1, n, i, x));
  }
}

/* Training-mode dropout: y = x * (u >= p) / (1 - p), u = rand(stream = the node's id, element
 * index) from the call's seed; the backward recomputes the same u.  PyTorch draws its own
 * random numbers, so masks are not comparable with it, only their statistics. */
static void lower_dropout_mask(LowerCtx *lc, const Node *n, int src, int dst, int node_for_stream) {
  LoopProgram *lp = lc->lp;
  LStmt *body = lower_begin(lc, n);
  const Node *f = &lc->g->nodes[node_for_stream];
  int i = lvar(lp, "i");
  LStmt *loop = ls_for(lp, body, i, le_i64(lp, 0), lower_total(lc, shape_numel(f->shape)));
  loop->vec = lp->vec_f32;
  LExpr *keep = le_bin(lp, LO_GE, le_rand(lp, f->id, le_var(lp, i)), le_f32(lp, f->a.p));
  LExpr *scaled = le_bin(lp, LO_MUL, le_load(lp, src, le_var(lp, i)), le_f32(lp, 1.0 / (1.0 - f->a.p)));
  ls_store(lp, ls_body(loop), dst, le_var(lp, i), le_select(lp, keep, scaled, le_f32(lp, 0)));
}

static void lower_dropout(LowerCtx *lc, const Node *n) {
  lower_dropout_mask(lc, n, lower_value(lc, n->in[0]), lower_value(lc, n->id), n->id);
}

static void lower_dropout_grad(LowerCtx *lc, const Node *n) {
  lower_dropout_mask(lc, n, lower_value(lc, n->in[0]), lower_value(lc, n->id), n->fwd);
}

/* dx[b, t, k] = t == seq - 1 ? dy[b, k] : 0 */
static void lower_last_grad(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape in = n->shape;
  int64_t k = in.d[1].n;
  int dy = lower_value(lc, n->in[0]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int b = lvar(lp, "b"), t = lvar(lp, "t"), j = lvar(lp, "k");
  LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
  LStmt *lt = ls_for(lp, ls_body(lb), t, le_i64(lp, 0), le_dim(lp, in.d[0]));
  LStmt *lk = ls_for(lp, ls_body(lt), j, le_i64(lp, 0), le_i64(lp, k));
  lk->vec = lp->vec_f32;
  LExpr *is_last = le_bin(lp, LO_EQ, le_var(lp, t), le_sub(lp, le_dim(lp, in.d[0]), le_i64(lp, 1)));
  LExpr *row = le_add(lp, le_mul(lp, le_var(lp, b), le_dim(lp, in.d[0])), le_var(lp, t));
  ls_store(lp, ls_body(lk), dx, le_add(lp, le_mul(lp, row, le_i64(lp, k)), le_var(lp, j)),
           le_select(lp, is_last, le_load(lp, dy, le_add(lp, le_mul(lp, le_var(lp, b), le_i64(lp, k)), le_var(lp, j))),
                     le_f32(lp, 0)));
}

/* The inverse of lower_concat's copy for input wrt: dx[r * a * I + j] = dy[(r * A + off) * I + j] */
static void lower_slice(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int axis = op_concat_axis(f->shape.rank);
  int64_t total = f->shape.d[axis].n, off = 0;
  for (int i = 0; i < n->wrt; i++) off += in_shape(lc->g, f, i).d[axis].n;
  Shape s = n->shape;
  int64_t a = s.d[axis].n, I = inner_size(s, axis);
  int dy = lower_value(lc, n->in[0]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  copy_rows(lp, body, le_mul(lp, le_batch(lp), dims_product(lp, s, 0, axis)), a * I, dx, a * I, 0, dy,
            total * I, off * I);
}

const OpInfo op_input = {
    .kind = OP_input,
    .name = "_input",
    .doc = "an input or target declaration",
    .args = NULL,
    .nargs = 0,
    .infer = input_infer,
    .flops = zero_flops,
    .lower = NULL,
};

const OpInfo op_flatten = {
    .kind = OP_flatten,
    .name = "flatten",
    .doc = "flatten(x): [d0, d1, ...] -> [d0*d1*...]",
    .args = none_args,
    .nargs = 1,
    .infer = flatten_infer,
    .flops = zero_flops,
    .lower = NULL,
    .grad = grad_flatten,
};

const OpInfo op_dropout = {
    .kind = OP_dropout,
    .name = "dropout",
    .doc = "dropout(x, p): same shape; zeroes a fraction p in training, the identity at inference",
    .args = dropout_args,
    .nargs = sizeof dropout_args / sizeof dropout_args[0],
    .infer = same_infer,
    .flops = zero_flops,
    .lower = lower_dropout,
    .grad = grad_dropout,
};

const OpInfo op_last = {
    .kind = OP_last,
    .name = "last",
    .doc = "last(h): [seq, K] -> [K], the final step",
    .args = none_args,
    .nargs = 1,
    .infer = last_infer,
    .flops = zero_flops,
    .lower = lower_last,
    .grad = grad_last,
};

/* a + b, a * b: one vectorized loop over the flattened [batch, ...] tensors, with the
 * activation that is its only consumer fused (a residual block's add + relu: one pass). */
static void lower_binary(struct LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  int a = lower_value(lc, n->in[0]), b = lower_value(lc, n->in[1]), y = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int i = lvar(lp, "i");
  LStmt *loop = ls_for(lp, body, i, le_i64(lp, 0), lower_total(lc, shape_numel(n->shape)));
  loop->vec = lp->vec_f32;
  LExpr *v = le_bin(lp, n->op == OP_add ? LO_ADD : LO_MUL, le_load(lp, a, le_var(lp, i)), le_load(lp, b, le_var(lp, i)));
  ls_store(lp, ls_body(loop), y, le_var(lp, i), lower_grad_epilogue(lc, n, lower_epilogue(lc, n, v, le_var(lp, i)), le_var(lp, i)));
}

const OpInfo op_add = {
    .kind = OP_add,
    .name = "_add",
    .doc = "a + b: elementwise, identical shapes",
    .args = binary_args,
    .nargs = 2,
    .infer = binary_infer,
    .flops = elementwise_flops,
    .lower = lower_binary,
    .grad = grad_add,
    .fuses_act_grad = op_fuses_always, /* a gradient sum before an activation's gradient */
};

const OpInfo op_mul = {
    .kind = OP_mul,
    .name = "_mul",
    .doc = "a * b: elementwise, identical shapes",
    .args = binary_args,
    .nargs = 2,
    .infer = binary_infer,
    .flops = elementwise_flops,
    .lower = lower_binary,
    .grad = grad_mul,
    .fuses_act_grad = op_fuses_always, /* a gradient sum before an activation's gradient */
};

const OpInfo op_concat = {
    .kind = OP_concat,
    .name = "concat",
    .doc = "concat(t, ...): joins channels of [C,H,W], elements of [K], features of [seq, K]",
    .args = concat_args,
    .nargs = 1,
    .variadic = 1,
    .infer = concat_infer,
    .flops = zero_flops,
    .lower = lower_concat,
    .plan = plan_concat,
    .grad = grad_concat,
};

/* --- the gradient program (ops.def) --- */
OP_INTERNAL(param, NULL);
OP_INTERNAL(reshape, NULL);
OP_INTERNAL(dropout_grad, lower_dropout_grad);
OP_INTERNAL(last_grad, lower_last_grad);
OP_INTERNAL(slice, lower_slice);
