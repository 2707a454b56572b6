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
#include "gemm.h"
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
 *   R = rows (batch, or batch * seq), K = in features, U = units
 *   x [R, K], weight [U, K] (PyTorch's layout), bias [U], y [R, U]
 * y = x W^T, two ways (gemm.h), the bias the tile's starting value and the fused activation
 * its epilogue either way:
 *   - inference (forward, step), when U >= DENSE_PACK_MIN_UNITS and the weight is at most
 *     DENSE_PACK_MAX_FLOATS: gemm_bcast on W^T, packed once by a prepare kernel into wt
 *     [K, gemm_pitch(U)] (an unpack kernel restores W from it, so the runtime may drop W's own
 *     pages): gemm_bcast's batch path, tiles of 6 rows x 4 vectors of units, per k 4 loads
 *     and 6 broadcasts for 24 FMAs and no sum across lanes (the MLP's 784 -> 256 layer at
 *     batch 64: 1.17x the dot tiles, batch 2 1.4x; at batch 1 a row of 4 vectors, 4 FMA chains,
 *     about 5% slower than the dot form's 8: kept, since a row's sums must not depend on the
 *     batch it came in, which runtime/threads.test checks bit for bit with the batch split);
 *   - else gemm_dot on W where it is: both operands contiguous in k, tiles of rows x units,
 *     k in chunks summed on their own, the lanes summed at the end.  Training keeps it (its
 *     weights change at every step: a transposed copy per call would cost more than it saves;
 *     its tiles are 3 rows x 8 units on AVX-512 when W fits in cache, GemmSpec.dot_wide),
 *     and so do small layers (fewer units than DENSE_PACK_MIN_UNITS: a few vectors of units
 *     leave the broadcast tiles load bound) and big ones (a weight past the L2 cache is
 *     streamed from memory at batch 1, which the dot form does at full bandwidth, and its
 *     packed copy would sit beside W until every prepare kernel has run: VGG-16's 123 M
 *     classifier weights).
 * At batch 1 either is a GEMV streaming the weights, the unit blocks shared between threads.
 */
enum { DENSE_PACK_MIN_UNITS = 64, DENSE_PACK_MAX_FLOATS = 1 << 20, DENSE_WIDE_MIN_UNITS = 32 };
typedef struct DenseGemm {
  LowerCtx *lc;
  const Node *n;
  int64_t K, U, pitch; /* pitch: wt's row (packed forward) */
  int bias;
} DenseGemm;

static LExpr *row_major(LoopProgram *lp, LExpr *r, int64_t cols, LExpr *c) {
  return le_add(lp, le_mul(lp, r, le_i64(lp, cols)), c);
}
/* The operands' indices (gemm.h's callbacks; no batch-reduce): [.., K] and [.., U] matrices
 * read by rows (element (row, col)) or by columns (element (col, row)). */
static LExpr *rows_k(LoopProgram *lp, const void *c, LExpr *br, LExpr *row, LExpr *col) {
  (void)br;
  return row_major(lp, row, ((const DenseGemm *)c)->K, col);
}
static LExpr *rows_u(LoopProgram *lp, const void *c, LExpr *br, LExpr *row, LExpr *col) {
  (void)br;
  return row_major(lp, row, ((const DenseGemm *)c)->U, col);
}
static LExpr *cols_k(LoopProgram *lp, const void *c, LExpr *br, LExpr *col, LExpr *row) {
  return rows_k(lp, c, br, row, col);
}
static LExpr *cols_u(LoopProgram *lp, const void *c, LExpr *br, LExpr *col, LExpr *row) {
  return rows_u(lp, c, br, row, col);
}
/* wt[k, u], k's row of the packed W^T */
static LExpr *packed_wt(LoopProgram *lp, const void *c, LExpr *br, LExpr *n, LExpr *k) {
  (void)br;
  return row_major(lp, k, ((const DenseGemm *)c)->pitch, n);
}
static LExpr *fwd_bias(LoopProgram *lp, const void *c, LExpr *m, LExpr *n) {
  (void)m;
  return le_load(lp, ((const DenseGemm *)c)->bias, n);
}
static LExpr *fwd_epilogue(LoopProgram *lp, const void *c, LExpr *v, LExpr *m, LExpr *n) {
  (void)lp, (void)m, (void)n;
  const DenseGemm *d = c;
  return lower_epilogue(d->lc, d->n, v, NULL); /* lower.c fuses no add into a dense */
}

static void lower_dense(struct LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  DenseGemm d = {.lc = lc, .n = n, .K = in.d[in.rank - 1].n, .U = n->a.units};
  int x = lower_value(lc, n->in[0]), y = lower_value(lc, n->id);
  int w = lower_param(lc, n, 0);
  d.bias = n->a.bias ? lower_param(lc, n, 1) : -1;
  LStmt *body = lower_begin(lc, n);
  SymCount rows = shape_numel(n->shape);  /* U per row */
  rows.fixed /= d.U;
  rows.per_seq /= d.U;
  /* x[m, k], W[n, k], y[m, n] */
  GemmSpec g = {.M = lower_total(lc, rows), .N = le_i64(lp, d.U), .K = le_i64(lp, d.K),
                .a = x, .b = w, .c = y, .a_at = rows_k, .b_at = rows_k, .c_at = rows_u,
                .init = d.bias >= 0 ? fwd_bias : NULL,
                .epilogue = lc->fused_act && lc->fused_act[n->id] >= 0 ? fwd_epilogue : NULL,
                .ctx = &d};
  if (!lower_packs_once(lc) || d.U < DENSE_PACK_MIN_UNITS || d.K * d.U > DENSE_PACK_MAX_FLOATS) {
    if (d.K * d.U > DENSE_PACK_MAX_FLOATS && gemm_dot_chunked(lp, d.K)) {
      /* a weight past the L2 cache at a batch of several row tiles: the row tiles a chunk of k
       * at a time, so each weight comes from memory once and from L1 for the other row tiles
       * (gemm.h, row_chunks); else every row tile after the first read a block's rows of W
       * from L2 again, with its rows of x: VGG-16's fc6 at batch 8 took 1.55x its batch-4 time */
      g.row_chunks = 1;
      g.dpart = lower_scratch(lc, arena_printf(lp->arena, "%s.dp", n->name), LT_F32,
                              (SymCount){rows.fixed * d.U * lp->vec_f32, rows.per_seq * d.U * lp->vec_f32}, 1);
    } else if (!lower_packs_once(lc) && d.K * d.U <= DENSE_PACK_MAX_FLOATS && d.U >= DENSE_WIDE_MIN_UNITS) {
      /* training: W from L2, x streamed past each block of W's rows; 3 x 8 tiles read a third
       * fewer x vectors per FMA than 4 x 4 (the MLP's 784 -> 256 forward at batch 64 ~15%
       * faster on an AMD Zen 5, its training step ~9%; the same bits).  Not for a few units:
       * the columns past the 8-unit blocks go one at a time */
      g.dot_wide = 1;
    }
    gemm_dot(lp, body, &g);
    return;
  }
  d.pitch = gemm_pitch(lp, d.U);
  LStmt *prep;
  int wt = lower_packed(lc, arena_printf(lp->arena, "%s.wt", n->name), d.K * d.pitch, &prep);
  {
    /* wt[k, u] = W[u, k] in blocks of 16 k, parallel over the blocks: each unit's 16 weights
     * are one line of W, and the block's 16 rows of wt stay in L1 while the units fill them
     * (a gather of a vector of units for each k walked all of W's rows a k: the first call of
     * a 1024 -> 1024 layer took 12.2 ms with it, 5.6 ms now, 3.1 ms without the packing) */
    int kb = lvar(lp, "kb"), u = lvar(lp, "u"), k = lvar(lp, "k");
    LStmt *lb = ls_for(lp, prep, kb, le_i64(lp, 0), le_i64(lp, (d.K + 15) / 16));
    lb->parallel = 1;
    LStmt *lu = ls_for(lp, ls_body(lb), u, le_i64(lp, 0), le_i64(lp, d.U));
    LExpr *k0 = le_mul(lp, le_var(lp, kb), le_i64(lp, 16));
    LStmt *lk = ls_for(lp, ls_body(lu), k, k0, le_bin(lp, LO_MIN, le_i64(lp, d.K), le_add(lp, k0, le_i64(lp, 16))));
    ls_store(lp, ls_body(lk), wt, packed_wt(lp, &d, NULL, le_var(lp, u), le_var(lp, k)),
             le_load(lp, w, rows_k(lp, &d, NULL, le_var(lp, u), le_var(lp, k))));
  }
  LStmt *unpack = lower_unpack(lc, arena_printf(lp->arena, "%s.wt", n->name), w);
  if (unpack) {
    /* W[u, k] = wt[k, u]: every weight, once, from where it was put */
    int u = lvar(lp, "u"), k = lvar(lp, "k");
    LStmt *lu = ls_for(lp, unpack, u, le_i64(lp, 0), le_i64(lp, d.U));
    lu->parallel = 1;
    LStmt *lk = ls_for(lp, ls_body(lu), k, le_i64(lp, 0), le_i64(lp, d.K));
    ls_store(lp, ls_body(lk), w, rows_k(lp, &d, NULL, le_var(lp, u), le_var(lp, k)),
             le_load(lp, wt, packed_wt(lp, &d, NULL, le_var(lp, u), le_var(lp, k))));
  }
  g.b = wt;
  g.b_at = packed_wt;
  gemm_bcast(lp, body, &g);
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

/* an _act_grad fused into dense_dx (lower.c): applied to element (m, n) of dx */
static LExpr *dx_epilogue(LoopProgram *lp, const void *c, LExpr *v, LExpr *m, LExpr *n) {
  (void)lp;
  const DenseGemm *d = c;
  return lower_grad_epilogue(d->lc, d->n, v, rows_k(d->lc->lp, c, NULL, m, n));
}

/* dx = dy W: gemm_bcast over k (W's rows and dx's rows contiguous in k), dy broadcast:
 *   C = dx [R, K] (m = r, n = k), A(m, u) = dy[r, u], B(n, u) = W[u, k] */
static void lower_dense_dx(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  DenseGemm d = {.lc = lc, .n = n};
  LExpr *R;
  dense_dims(lc, f, &d.K, &d.U, &R);
  int dy = lower_value(lc, n->in[0]), w = lower_value(lc, n->in[1]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  GemmSpec g = {.M = R, .N = le_i64(lp, d.K), .K = le_i64(lp, d.U), .a = dy, .b = w, .c = dx,
                .a_at = rows_u, .b_at = cols_k, .c_at = rows_k,
                .epilogue = lc->fused_grad && lc->fused_grad[n->id] >= 0 ? dx_epilogue : NULL, .ctx = &d};
  gemm_bcast(lp, body, &g);
}

/* dW = dy^T x: gemm_bcast over k (x's rows and dW's rows contiguous in k), dy broadcast; each
 * (u, k) summed over the rows in one fixed order, whatever the split between threads:
 *   C = dW [U, K] (m = u, n = k), A(m, r) = dy[r, u], B(n, r) = x[r, k] */
static void lower_dense_dw(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  DenseGemm d = {.lc = lc, .n = n};
  LExpr *R;
  dense_dims(lc, f, &d.K, &d.U, &R);
  int dy = lower_value(lc, n->in[0]), x = lower_value(lc, n->in[1]), dw = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  GemmSpec g = {.M = le_i64(lp, d.U), .N = le_i64(lp, d.K), .K = R, .a = dy, .b = x, .c = dw,
                .a_at = cols_u, .b_at = cols_k, .c_at = rows_k, .ctx = &d,
                /* x's rows are K apart and dy's U: copied slice by slice into rows without
                 * cache-set aliasing (1024 floats apart, a slice's rows share a few L1 sets) */
                .pack_a = 1, .pack_b = 1};
  g.apack = lower_scratch(lc, arena_printf(lp->arena, "%s.ap", n->name), LT_F32,
                          gemm_bcast_pack_a_size(lp, &g, (SymCount){0, 1}), 0);
  g.bpack = lower_scratch(lc, arena_printf(lp->arena, "%s.bp", n->name), LT_F32,
                          gemm_bcast_pack_size(lp, &g, (SymCount){0, 1}), 0);
  gemm_bcast(lp, body, &g);
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

OP_INTERNAL_FUSING(dense_dx, lower_dense_dx, op_fuses_always); /* gemm_bcast's epilogue */
OP_INTERNAL(dense_dw, lower_dense_dw);
OP_INTERNAL(dense_db, lower_dense_db);
