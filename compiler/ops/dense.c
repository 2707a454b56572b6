/* dense.c - dense(x, units, bias=true): PyTorch Linear.
 *
 *   [K]      -> [units]
 *   [seq, K] -> [seq, units]      (applied at every step; seq may be symbolic)
 *   weight [units, K] (He uniform, fan_in K), bias [units] (zero)
 *
 * Attrs: units, bias.  K must be concrete.  Rank 3 (an image) is an error
 * that suggests flatten; rank 0 (a scalar) is an error.
 */
#include <stddef.h>

#include "autodiff.h"
#include "lower.h"
#include "ops.h"

static const ArgSpec dense_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
    {.name = "units", .type = ARG_INT, .required = 1, .offset = offsetof(Attrs, units), .min = 1,
     .max = 1e18},
    {.name = "bias", .type = ARG_BOOL, .dflt = 1, .offset = offsetof(Attrs, bias)},
};

static int dense_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  Shape in = in_shape(g, n, 0);
  char sb[160];
  shape_str(sb, sizeof sb, in, g->sym);
  if (in.rank != 1 && in.rank != 2) {
    diag_error(n->loc, "dense expects [K] or [seq, K], got %s", sb);
    op_note_value(g, n->in[0]);
    if (in.rank >= 3)
      diag_note((Loc){0}, "flatten it first: dense(flatten(x), %lld)", (long long)n->a.units);
    return -1;
  }
  Dim k = in.d[in.rank - 1];
  if (k.sym) {
    diag_error(n->loc, "dense needs a fixed number of input features, got %s", sb);
    op_note_value(g, n->in[0]);
    return -1;
  }
  int64_t w;
  if (checked_mul(k.n, n->a.units, &w)) {
    diag_error(n->loc, "dense: the weight [%lld, %lld] is too large", (long long)n->a.units,
               (long long)k.n);
    return -1;
  }
  Shape out = in;
  out.d[in.rank - 1].sym = 0;
  out.d[in.rank - 1].n = n->a.units;
  return op_set_shape(g, n, out);
}

static void dense_params(Graph *g, Node *n) {
  Shape in = in_shape(g, n, 0);
  int64_t k = in.d[in.rank - 1].n, u = n->a.units;
  Shape w = {.rank = 2};
  w.d[0].n = u;
  w.d[1].n = k;
  graph_add_param(g, n, "weight", w, INIT_HE_UNIFORM, k, u);
  if (n->a.bias) {
    Shape b = {.rank = 1};
    b.d[0].n = u;
    graph_add_param(g, n, "bias", b, INIT_ZERO, k, u);
  }
}

/* 2*K multiply-adds (+1 bias add) per output element; per step for sequences. */
static SymCount dense_flops(const Graph *g, const Node *n) {
  Shape in = in_shape(g, n, 0);
  int64_t k = in.d[in.rank - 1].n;
  SymCount per_out = symcount_const(2);
  per_out = symcount_scale(per_out, k);
  if (n->a.bias) per_out = symcount_add(per_out, symcount_const(1));
  return symcount_scale(shape_numel(n->shape), per_out.fixed);
}

/* --- lowering ---
 *   R = rows (batch, or batch * seq), K = in features, U = units, V = the f32 vector width,
 *   UV = ceil(U / V) unit vectors
 *   x [R, K], weight [U, K], bias [U], y [R, U]
 * A prepare kernel packs the weight as wt [UV, K, V] (unit vector uv, feature k, lane ul),
 * so the weights one vector of units needs are one contiguous strip, streamed in order
 * (at batch 1 the layer is bound by memory bandwidth: no strided walks, no TLB misses),
 * while x[r, k] is broadcast.  Rows run in blocks of 4 (four accumulators sharing each
 * weight vector); the remaining rows (all of them at batch 1) split K four ways instead,
 * so four independent FMA chains are in flight either way.  The lanes of a last, partial
 * unit vector run in the loop's scalar remainder.
 */
enum { DENSE_ROWS = 4, DENSE_KSPLIT = 4, DENSE_KCHUNK = 64 };

/* wt index: (uv * K + k) * V + ul */
static LExpr *wt_index(LoopProgram *lp, int uv, LExpr *k, int ul, int64_t K) {
  int64_t V = lp->vec_f32;
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, uv), le_i64(lp, K)), k), le_i64(lp, V)),
                le_var(lp, ul));
}

/* for uv in [0, UV): for ul in [0, min(V, U - uv*V)) vec V: returns the ul loop's body */
static LStmt *unit_loops(LoopProgram *lp, LStmt *blk, int uv, int ul, int64_t U) {
  int64_t V = lp->vec_f32;
  LStmt *luv = ls_for(lp, blk, uv, le_i64(lp, 0), le_i64(lp, (U + V - 1) / V));
  LStmt *lul = ls_for(lp, ls_body(luv), ul, le_i64(lp, 0),
                      le_bin(lp, LO_MIN, le_i64(lp, V),
                             le_sub(lp, le_i64(lp, U), le_mul(lp, le_var(lp, uv), le_i64(lp, V)))));
  lul->vec = (int)V;
  return ls_body(lul);
}

static void lower_dense(struct LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  int64_t K = in.d[in.rank - 1].n, U = n->a.units, V = lp->vec_f32;
  int64_t UV = (U + V - 1) / V;
  int x = lower_value(lc, n->in[0]), y = lower_value(lc, n->id);
  int w = lower_param(lc, n, 0);
  int bias = n->a.bias ? lower_param(lc, n, 1) : -1;

  /* prepare: wt[uv, k, ul] = w[uv * V + ul, k] */
  LStmt *prep;
  int wt = lower_packed(lc, arena_printf(lp->arena, "%s.wt", n->name), UV * K * V, &prep);
  {
    int uv = lvar(lp, "uv"), k = lvar(lp, "k"), ul = lvar(lp, "ul");
    LStmt *luv = ls_for(lp, prep, uv, le_i64(lp, 0), le_i64(lp, UV));
    LStmt *lk = ls_for(lp, ls_body(luv), k, le_i64(lp, 0), le_i64(lp, K));
    LStmt *lul = ls_for(lp, ls_body(lk), ul, le_i64(lp, 0),
                        le_bin(lp, LO_MIN, le_i64(lp, V),
                               le_sub(lp, le_i64(lp, U), le_mul(lp, le_var(lp, uv), le_i64(lp, V)))));
    lul->vec = (int)V;
    LExpr *u = le_add(lp, le_mul(lp, le_var(lp, uv), le_i64(lp, V)), le_var(lp, ul));
    ls_store(lp, ls_body(lul), wt, wt_index(lp, uv, le_var(lp, k), ul, K),
             le_load(lp, w, le_add(lp, le_mul(lp, u, le_i64(lp, K)), le_var(lp, k))));
  }

  LStmt *body = lower_begin(lc, n);
  SymCount rows = shape_numel(n->shape);  /* U per row */
  rows.fixed /= U;
  rows.per_seq /= U;
  LExpr *R = lower_total(lc, rows);
  LExpr *nblocks = le_bin(lp, LO_DIV, R, le_i64(lp, DENSE_ROWS));

  /* K in chunks of DENSE_KCHUNK, each summed on its own and then added to the total: the
   * rounding error grows with the chunk and the chunk count, not with K (fc6 of VGG has
   * K = 25088) */
  int64_t NC = (K + DENSE_KCHUNK - 1) / DENSE_KCHUNK;

  /* blocks of DENSE_ROWS rows */
  {
    int rb = lvar(lp, "rb"), uv = lvar(lp, "uv"), ul = lvar(lp, "ul"), kc = lvar(lp, "kc"),
        k = lvar(lp, "k");
    LStmt *lrb = ls_for(lp, body, rb, le_i64(lp, 0), nblocks);
    lrb->parallel = 1;
    LStmt *ub = unit_loops(lp, ls_body(lrb), uv, ul, U);
    LExpr *u = le_add(lp, le_mul(lp, le_var(lp, uv), le_i64(lp, V)), le_var(lp, ul));
    int acc[DENSE_ROWS], part[DENSE_ROWS];
    LExpr *row[DENSE_ROWS];
    for (int j = 0; j < DENSE_ROWS; j++) {
      row[j] = le_add(lp, le_mul(lp, le_var(lp, rb), le_i64(lp, DENSE_ROWS)), le_i64(lp, j));
      acc[j] = ls_local(lp, ub, LT_F32, bias >= 0 ? le_load(lp, bias, u) : le_f32(lp, 0));
    }
    LStmt *lkc = ls_for(lp, ub, kc, le_i64(lp, 0), le_i64(lp, NC));
    LStmt *cb = ls_body(lkc);
    for (int j = 0; j < DENSE_ROWS; j++) part[j] = ls_local(lp, cb, LT_F32, le_f32(lp, 0));
    LExpr *k0 = le_mul(lp, le_var(lp, kc), le_i64(lp, DENSE_KCHUNK));
    LStmt *lk = ls_for(lp, cb, k, k0,
                       le_bin(lp, LO_MIN, le_i64(lp, K), le_add(lp, k0, le_i64(lp, DENSE_KCHUNK))));
    LStmt *kb = ls_body(lk);
    int wv = ls_local(lp, kb, LT_F32, le_load(lp, wt, wt_index(lp, uv, le_var(lp, k), ul, K)));
    for (int j = 0; j < DENSE_ROWS; j++)
      ls_set(lp, kb, part[j],
             le_fma(lp, le_load(lp, x, le_add(lp, le_mul(lp, row[j], le_i64(lp, K)), le_var(lp, k))),
                    le_local(lp, wv), le_local(lp, part[j])));
    for (int j = 0; j < DENSE_ROWS; j++)
      ls_set(lp, cb, acc[j], le_bin(lp, LO_ADD, le_local(lp, acc[j]), le_local(lp, part[j])));
    for (int j = 0; j < DENSE_ROWS; j++)
      ls_store(lp, ub, y, le_add(lp, le_mul(lp, row[j], le_i64(lp, U)), u),
               lower_epilogue(lc, n, le_local(lp, acc[j])));
  }
  /* the remaining rows, each chunk of K split DENSE_KSPLIT ways */
  {
    int r = lvar(lp, "r"), uv = lvar(lp, "uv"), ul = lvar(lp, "ul"), kc = lvar(lp, "kc"),
        kb = lvar(lp, "kb"), k = lvar(lp, "k");
    LStmt *lr = ls_for(lp, body, r, le_mul(lp, nblocks, le_i64(lp, DENSE_ROWS)), R);
    LStmt *ub = unit_loops(lp, ls_body(lr), uv, ul, U);
    /* batch 1 (a GEMV): the unit vectors are the work to share between threads */
    ls_body(lr)->body[ls_body(lr)->nbody - 1]->parallel = 1;
    LExpr *u = le_add(lp, le_mul(lp, le_var(lp, uv), le_i64(lp, V)), le_var(lp, ul));
    int total = ls_local(lp, ub, LT_F32, bias >= 0 ? le_load(lp, bias, u) : le_f32(lp, 0));
    LStmt *lkc = ls_for(lp, ub, kc, le_i64(lp, 0), le_i64(lp, NC));
    LStmt *cb = ls_body(lkc);
    LExpr *k0 = le_mul(lp, le_var(lp, kc), le_i64(lp, DENSE_KCHUNK));
    LExpr *len = le_bin(lp, LO_MIN, le_i64(lp, DENSE_KCHUNK), le_sub(lp, le_i64(lp, K), k0));
    int acc[DENSE_KSPLIT];
    for (int j = 0; j < DENSE_KSPLIT; j++) acc[j] = ls_local(lp, cb, LT_F32, le_f32(lp, 0));
    LStmt *lkb = ls_for(lp, cb, kb, le_i64(lp, 0), le_bin(lp, LO_DIV, len, le_i64(lp, DENSE_KSPLIT)));
    for (int j = 0; j < DENSE_KSPLIT; j++) {
      LExpr *kk = le_add(lp, k0, le_add(lp, le_mul(lp, le_var(lp, kb), le_i64(lp, DENSE_KSPLIT)), le_i64(lp, j)));
      ls_set(lp, ls_body(lkb), acc[j],
             le_fma(lp, le_load(lp, x, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, K)), kk)),
                    le_load(lp, wt, wt_index(lp, uv, kk, ul, K)), le_local(lp, acc[j])));
    }
    if (K % DENSE_KSPLIT) {
      LExpr *kt = le_add(lp, k0, le_mul(lp, le_bin(lp, LO_DIV, len, le_i64(lp, DENSE_KSPLIT)),
                                        le_i64(lp, DENSE_KSPLIT)));
      LStmt *lk = ls_for(lp, cb, k, kt, le_add(lp, k0, len));
      ls_set(lp, ls_body(lk), acc[0],
             le_fma(lp, le_load(lp, x, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, K)), le_var(lp, k))),
                    le_load(lp, wt, wt_index(lp, uv, le_var(lp, k), ul, K)), le_local(lp, acc[0])));
    }
    LExpr *sum = le_bin(lp, LO_ADD, le_bin(lp, LO_ADD, le_local(lp, acc[0]), le_local(lp, acc[1])),
                        le_bin(lp, LO_ADD, le_local(lp, acc[2]), le_local(lp, acc[3])));
    ls_set(lp, cb, total, le_bin(lp, LO_ADD, le_local(lp, total), sum));
    ls_store(lp, ub, y, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, U)), u),
             lower_epilogue(lc, n, le_local(lp, total)));
  }
}

/* --- the gradient rule ---
 *   dx = dy W          (_dense_dx, [.., K], when x needs a gradient)
 *   dW = sum_r dy^T x  (_dense_dw, [U, K], unbatched: summed over every row of the batch)
 *   db = sum_r dy      (_dense_db, [U])
 */
static void grad_dense(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  int x = g->nodes[n].in[0];
  if (ad_wants(ad, x)) {
    int in[2] = {dy, ad_param(ad, n, 0)};
    ad_input_grad(ad, n, 0, ad_node_like(ad, OP_dense_dx, in, 2, n, 0, x));
  }
  if (ad_wants_param(ad, n, 0)) {
    int in[2] = {dy, x};
    ad_param_grad(ad, n, 0, ad_node(ad, OP_dense_dw, in, 2, n, 0, g->params[g->nodes[n].first_param].shape, 0));
  }
  if (g->nodes[n].a.bias && ad_wants_param(ad, n, 1))
    ad_param_grad(ad, n, 1, ad_node(ad, OP_dense_db, &dy, 1, n, 1, g->params[g->nodes[n].first_param + 1].shape, 0));
}

const OpInfo op_dense = {
    .kind = OP_dense,
    .name = "dense",
    .doc = "dense(x, units, bias=true): [K] -> [units], [seq, K] -> [seq, units]",
    .args = dense_args,
    .nargs = sizeof dense_args / sizeof dense_args[0],
    .parametric = 1,
    .infer = dense_infer,
    .params = dense_params,
    .flops = dense_flops,
    .lower = lower_dense,
    .grad = grad_dense,
};

/* --- the gradient program (ops.def) --- */
/*   R = rows (batch x steps), K = in features, U = units
 *   dy [R, U], W [U, K], x [R, K];  dx [R, K], dW [U, K], db [U] */
static void dense_dims(LowerCtx *lc, const Node *f, int64_t *K, int64_t *U, LExpr **R) {
  Shape in = in_shape(lc->g, f, 0);
  *K = in.d[in.rank - 1].n;
  *U = f->a.units;
  *R = lower_rows(lc, f->shape);
}

/* dx[r, k] = sum_u dy[r, u] W[u, k]: vectorized over k, W's rows streamed */
static void lower_dense_dx(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t K, U;
  LExpr *R;
  dense_dims(lc, f, &K, &U, &R);
  int dy = lower_value(lc, n->in[0]), w = lower_value(lc, n->in[1]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int r = lvar(lp, "r"), k = lvar(lp, "k"), u = lvar(lp, "u");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), R);
  lr->parallel = 1;
  LStmt *lk = ls_for(lp, ls_body(lr), k, le_i64(lp, 0), le_i64(lp, K));
  lk->vec = lp->vec_f32;
  LStmt *kb = ls_body(lk);
  int acc = ls_local(lp, kb, LT_F32, le_f32(lp, 0));
  LStmt *lu = ls_for(lp, kb, u, le_i64(lp, 0), le_i64(lp, U));
  ls_set(lp, ls_body(lu), acc,
         le_fma(lp, le_load(lp, dy, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, U)), le_var(lp, u))),
                le_load(lp, w, le_add(lp, le_mul(lp, le_var(lp, u), le_i64(lp, K)), le_var(lp, k))),
                le_local(lp, acc)));
  ls_store(lp, kb, dx, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, K)), le_var(lp, k)), le_local(lp, acc));
}

/* dW[u, k] = sum_r dy[r, u] x[r, k]: vectorized over k; each (u, k) summed over the rows in
 * one fixed order, so the result does not depend on how the work is split */
static void lower_dense_dw(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t K, U;
  LExpr *R;
  dense_dims(lc, f, &K, &U, &R);
  int dy = lower_value(lc, n->in[0]), x = lower_value(lc, n->in[1]), dw = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int u = lvar(lp, "u"), k = lvar(lp, "k"), r = lvar(lp, "r");
  LStmt *lu = ls_for(lp, body, u, le_i64(lp, 0), le_i64(lp, U));
  lu->parallel = 1;
  LStmt *lk = ls_for(lp, ls_body(lu), k, le_i64(lp, 0), le_i64(lp, K));
  lk->vec = lp->vec_f32;
  LStmt *kb = ls_body(lk);
  int acc = ls_local(lp, kb, LT_F32, le_f32(lp, 0));
  LStmt *lr = ls_for(lp, kb, r, le_i64(lp, 0), R);
  ls_set(lp, ls_body(lr), acc,
         le_fma(lp, le_load(lp, dy, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, U)), le_var(lp, u))),
                le_load(lp, x, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, K)), le_var(lp, k))),
                le_local(lp, acc)));
  ls_store(lp, kb, dw, le_add(lp, le_mul(lp, le_var(lp, u), le_i64(lp, K)), le_var(lp, k)), le_local(lp, acc));
}

/* db[u] = sum_r dy[r, u]: vectorized over u */
static void lower_dense_db(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t K, U;
  LExpr *R;
  dense_dims(lc, f, &K, &U, &R);
  int dy = lower_value(lc, n->in[0]), db = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int u = lvar(lp, "u"), r = lvar(lp, "r");
  LStmt *lu = ls_for(lp, body, u, le_i64(lp, 0), le_i64(lp, U));
  lu->vec = lp->vec_f32;
  LStmt *ub = ls_body(lu);
  int acc = ls_local(lp, ub, LT_F32, le_f32(lp, 0));
  LStmt *lr = ls_for(lp, ub, r, le_i64(lp, 0), R);
  ls_set(lp, ls_body(lr), acc, le_bin(lp, LO_ADD, le_local(lp, acc),
         le_load(lp, dy, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, U)), le_var(lp, u)))));
  ls_store(lp, ub, db, le_var(lp, u), le_local(lp, acc));
}

OP_INTERNAL(dense_dx, lower_dense_dx);
OP_INTERNAL(dense_dw, lower_dense_dw);
OP_INTERNAL(dense_db, lower_dense_db);
