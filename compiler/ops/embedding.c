/* embedding.c - embedding(ids, vocab, dim): PyTorch Embedding.
 *
 *   ids i32[seq] (or i32[n]) -> [seq, dim]:  out[t] = weight[ids[t]]
 *   weight [vocab, dim] (N(0, 1), as PyTorch)
 *
 * Attrs: vocab, units = dim.  The only op that reads i32 values.  The range
 * of the ids is a run-time matter: the lowering checks 0 <= id < vocab and
 * reports a bad id through nncc_last_error().  FLOPs: 0 (a gather).
 */
#include <stddef.h>

#include "autodiff.h"
#include "lower.h"
#include "ops.h"

static const ArgSpec embedding_args[] = {
    {.name = "ids", .type = ARG_TENSOR, .required = 1},
    {.name = "vocab", .type = ARG_INT, .required = 1, .offset = offsetof(Attrs, vocab), .min = 1,
     .max = 1e18},
    {.name = "dim", .type = ARG_INT, .required = 1, .offset = offsetof(Attrs, units), .min = 1,
     .max = 1e18},
};

static int embedding_infer(Graph *g, Node *n) {
  const Node *ids = &g->nodes[n->in[0]];
  if (ids->dtype != DT_I32) {
    const char *name = ids->name ? ids->name : "its input";
    diag_error(n->loc, "embedding expects i32 token ids; '%s' is %s", name,
               ids->dtype == DT_F32 ? "f32 values" : "class labels (a training target)");
    if (ids->dtype == DT_F32)
      diag_note(ids->loc, "declare the ids as integers: input %s : i32[seq]", name);
    else
      op_note_value(g, n->in[0]);
    return -1;
  }
  if (op_require_rank(g, n, 0, 1, "ids i32[seq]")) return -1;
  int64_t w;
  if (checked_mul(n->a.vocab, n->a.units, &w)) {
    diag_error(n->loc, "embedding: the weight [%lld, %lld] is too large", (long long)n->a.vocab,
               (long long)n->a.units);
    return -1;
  }
  /* the ids' declared range, shown in the interface (model.h, --help): the smallest
   * vocabulary that reads them; the kernel still checks every id */
  Node *src = &g->nodes[n->in[0]];
  if (src->op == OP_input && (src->classes == 0 || src->classes > n->a.vocab))
    src->classes = n->a.vocab;
  Shape out = {.rank = 2};
  out.d[0] = ids->shape.d[0];
  out.d[1].n = n->a.units;
  return op_set_shape(g, n, out);
}

static void embedding_params(Graph *g, Node *n) {
  Shape w = {.rank = 2};
  w.d[0].n = n->a.vocab;
  w.d[1].n = n->a.units;
  graph_add_param(g, n, "weight", w, INIT_NORMAL, n->a.vocab, n->a.units);
}

static SymCount embedding_flops(const Graph *g, const Node *n) { return symcount_const(0); }

/* Lowering: for each batch row b and position t (a scalar loop, so the check reports the
 * exact position), id = ids[b, t] is checked against [0, vocab) (NNCC_ERR_RANGE), then
 * out[b, t, :] = weight[id, :], a contiguous copy vectorized over the dim axis. */
enum { ERR_RANGE = -4 }; /* NNCC_ERR_RANGE, runtime/nncc.h */

static void lower_embedding(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  int64_t dim = n->a.units;
  Dim seq = n->shape.d[0];
  LStmt *body = lower_begin(lc, n);
  int ids = lower_value(lc, n->in[0]), out = lower_value(lc, n->id);
  int w = lower_param(lc, n, 0);
  int b = lvar(lp, "b"), t = lvar(lp, "t"), d = lvar(lp, "d");
  LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
  LStmt *lt = ls_for(lp, ls_body(lb), t, le_i64(lp, 0), le_dim(lp, seq));
  LStmt *bt = ls_body(lt);
  LExpr *row = le_add(lp, le_mul(lp, le_var(lp, b), le_dim(lp, seq)), le_var(lp, t));
  int id = ls_local(lp, bt, LT_I64, le_cast(lp, LT_I64, le_load(lp, ids, row)));
  LExpr *ok = le_bin(lp, LO_AND, le_bin(lp, LO_GE, le_local(lp, id), le_i64(lp, 0)),
                     le_bin(lp, LO_LT, le_local(lp, id), le_i64(lp, n->a.vocab)));
  LExpr *args[4] = {le_local(lp, id), le_var(lp, b), le_var(lp, t), le_i64(lp, n->a.vocab)};
  ls_check(lp, bt, ok, ERR_RANGE,
           arena_printf(lp->arena, "embedding '%s': token id %%lld at [batch %%lld, position "
                        "%%lld] is outside [0, %%lld)", n->name),
           4, args);
  LStmt *ld = ls_for(lp, bt, d, le_i64(lp, 0), le_i64(lp, dim));
  ld->vec = lp->vec_f32;
  LExpr *src = le_add(lp, le_mul(lp, le_local(lp, id), le_i64(lp, dim)), le_var(lp, d));
  LExpr *row2 = le_add(lp, le_mul(lp, le_var(lp, b), le_dim(lp, seq)), le_var(lp, t));
  LExpr *dst = le_add(lp, le_mul(lp, row2, le_i64(lp, dim)), le_var(lp, d));
  ls_store(lp, ls_body(ld), out, dst, le_load(lp, w, src));
}

/* --- the gradient rule ---
 *   dW[v, :] = sum of dy[b, t, :] over the positions with ids[b, t] == v  (_embedding_dw,
 *   [vocab, dim], unbatched); the ids (i32) have no gradient. */
static void grad_embedding(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  if (!ad_wants_param(ad, n, 0)) return;
  int in[2] = {dy, g->nodes[n].in[0]};
  ad_param_grad(ad, n, 0, ad_node(ad, OP_embedding_dw, in, 2, n, 0,
                                  g->params[g->nodes[n].first_param].shape, 0));
}

const OpInfo op_embedding = {
    .kind = OP_embedding,
    .name = "embedding",
    .doc = "embedding(ids, vocab, dim): i32[seq] -> [seq, dim]",
    .args = embedding_args,
    .nargs = sizeof embedding_args / sizeof embedding_args[0],
    .parametric = 1,
    .infer = embedding_infer,
    .params = embedding_params,
    .flops = embedding_flops,
    .lower = lower_embedding,
    .grad = grad_embedding,
};

/* --- the gradient program (ops.def) ---
 *   dy [R, dim], ids [R] (R = batch * seq); dW [vocab, dim].
 * dW is zeroed (vectorized), then a scatter-add over the rows in order: serial over the rows,
 * since repeated ids add into the same row of dW (never vectorized or parallel across rows),
 * vectorized over dim within a row.  The forward already checked every id; an id out of range
 * is skipped all the same, so a bad id can never write outside dW. */
static void lower_embedding_dw(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t dim = f->a.units, vocab = f->a.vocab;
  int dy = lower_value(lc, n->in[0]), ids = lower_value(lc, n->in[1]), dw = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int i = lvar(lp, "i"), r = lvar(lp, "r"), d = lvar(lp, "d");
  LStmt *lz = ls_for(lp, body, i, le_i64(lp, 0), le_i64(lp, vocab * dim));
  lz->vec = lp->vec_f32;
  ls_store(lp, ls_body(lz), dw, le_var(lp, i), le_f32(lp, 0));
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), lower_rows(lc, f->shape));
  LStmt *rb = ls_body(lr);
  int id = ls_local(lp, rb, LT_I64, le_cast(lp, LT_I64, le_load(lp, ids, le_var(lp, r))));
  LExpr *ok = le_bin(lp, LO_AND, le_bin(lp, LO_GE, le_local(lp, id), le_i64(lp, 0)),
                     le_bin(lp, LO_LT, le_local(lp, id), le_i64(lp, vocab)));
  LStmt *ok_body = ls_body(ls_if(lp, rb, ok));
  LStmt *ld = ls_for(lp, ok_body, d, le_i64(lp, 0), le_i64(lp, dim));
  ld->vec = lp->vec_f32;
  ls_accumulate(lp, ls_body(ld), dw, le_add(lp, le_mul(lp, le_local(lp, id), le_i64(lp, dim)), le_var(lp, d)),
                le_load(lp, dy, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, dim)), le_var(lp, d))));
}

OP_INTERNAL(embedding_dw, lower_embedding_dw);
