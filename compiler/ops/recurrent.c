/* recurrent.c - rnn, lstm, gru (PyTorch RNN / LSTM / GRU, batch_first) and bidirectional.
 *
 *   rnn(x, units, activation=tanh, layers=1)   x [seq, K] -> [seq, units]: all hidden states
 *   lstm(x, units, layers=1)                   gates stacked i, f, g, o  (G = 4)
 *   gru(x, units, layers=1)                    gates stacked r, z, n     (G = 3)
 *   bidirectional(layer)                       [seq, 2*units]: forward then backward halves
 *
 * One node per layer stack (ir.h): Attrs units, layers, act (rnn: OP_tanh or
 * OP_relu), cell (set here from the op), bidirectional (set by sema, which
 * folds bidirectional(...) into the call it wraps; the bidirectional op itself
 * never reaches a shape rule).  seq may be symbolic; K must be concrete.
 *
 * Parameters, PyTorch's order and names, G = 1 (rnn), 4 (lstm), 3 (gru):
 *   for each layer l: weight_ih_l{l} [G*units, in_l], weight_hh_l{l} [G*units, units],
 *   bias_ih_l{l} [G*units], bias_hh_l{l} [G*units], then the same with "_reverse" when
 *   bidirectional;  in_0 = K, in_l = units * directions.  All U(-1/sqrt(units), +).
 *
 * FLOPs per step, layer and direction: 2*G*units*(in_l + units) for the two
 * matrix-vector products, 2*G*units for the biases, plus the gate math
 * (rnn: 4*units for tanh, units for relu; lstm: 24*units; gru: 17*units).
 */
#include <stddef.h>

#include "lower.h"
#include "ops.h"

enum { ARG_RNN_ACT = 2 }; /* the schema position of rnn's activation */

static const ArgSpec rnn_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
    {.name = "units", .type = ARG_INT, .required = 1, .offset = offsetof(Attrs, units), .min = 1,
     .max = 1e18},
    {.name = "activation", .type = ARG_ACT, .dflt = OP_tanh, .offset = offsetof(Attrs, act)},
    {.name = "layers", .type = ARG_INT, .dflt = 1, .offset = offsetof(Attrs, layers), .min = 1,
     .max = 1e18},
};

static const ArgSpec gated_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
    {.name = "units", .type = ARG_INT, .required = 1, .offset = offsetof(Attrs, units), .min = 1,
     .max = 1e18},
    {.name = "layers", .type = ARG_INT, .dflt = 1, .offset = offsetof(Attrs, layers), .min = 1,
     .max = 1e18},
};

static const ArgSpec bidirectional_args[] = {
    {.name = "layer", .type = ARG_LAYER, .required = 1},
};

static int64_t gates(RecurrentCell c) { return c == CELL_LSTM ? 4 : c == CELL_GRU ? 3 : 1; }

static int recurrent_infer(Graph *g, Node *n) {
  const char *op = op_info(n->op)->name;
  n->a.cell = n->op == OP_lstm ? CELL_LSTM : n->op == OP_gru ? CELL_GRU : CELL_RNN;
  if (n->op == OP_rnn) {
    if (n->a.act != OP_tanh && n->a.act != OP_relu) {
      Loc at = n->arg_loc[ARG_RNN_ACT].file ? n->arg_loc[ARG_RNN_ACT] : n->loc;
      const char *name = (int)n->a.act >= 0 && n->a.act < OP_COUNT ? op_info(n->a.act)->name : "?";
      diag_error(at, "rnn's activation must be tanh or relu, not %s", name);
      diag_note((Loc){0}, "as torch.nn.RNN's nonlinearity; for gated cells use lstm or gru");
      return -1;
    }
  } else {
    n->a.act = OP_tanh;
  }
  if (op_require_f32(g, n, 0)) return -1;
  Shape in = in_shape(g, n, 0);
  char sb[160];
  shape_str(sb, sizeof sb, in, g->sym);
  if (in.rank != 2) {
    diag_error(n->loc, "%s expects a sequence [seq, K], got %s", op, sb);
    op_note_value(g, n->in[0]);
    if (in.rank == 1)
      diag_note((Loc){0}, "a sequence has its time axis first, e.g. input x : f32[seq, %lld]; "
                "for a single vector use dense", (long long)in.d[0].n);
    return -1;
  }
  if (in.d[1].sym) {
    diag_error(n->loc, "%s needs a fixed number of input features, got %s", op, sb);
    op_note_value(g, n->in[0]);
    return -1;
  }
  if (n->a.layers > 1024) {
    Loc at = n->arg_loc[n->op == OP_rnn ? 3 : 2];
    diag_error(at.file ? at : n->loc, "%s: %lld layers is more than the 1024 supported", op,
               (long long)n->a.layers);
    return -1;
  }
  int64_t dirs = n->a.bidirectional ? 2 : 1, width, w;
  int64_t in_max = in.d[1].n;
  if (checked_mul(n->a.units, dirs, &width) || checked_mul(n->a.units, 4, &w) ||
      checked_mul(w, width > in_max ? width : in_max, &w)) {
    diag_error(n->loc, "%s: %lld units make weights too large", op, (long long)n->a.units);
    return -1;
  }
  Shape out = {.rank = 2};
  out.d[0] = in.d[0];
  out.d[1].n = width;
  return op_set_shape(g, n, out);
}

static void add_layer(Graph *g, Node *n, int64_t l, const char *dir, int64_t in_l) {
  int64_t u = n->a.units, gu = gates(n->a.cell) * u;
  Shape wih = {.rank = 2}, whh = {.rank = 2}, b = {.rank = 1};
  wih.d[0].n = gu;
  wih.d[1].n = in_l;
  whh.d[0].n = gu;
  whh.d[1].n = u;
  b.d[0].n = gu;
  graph_add_param(g, n, arena_printf(g->arena, "weight_ih_l%lld%s", (long long)l, dir), wih,
                  INIT_UNIFORM_FAN, u, gu);
  graph_add_param(g, n, arena_printf(g->arena, "weight_hh_l%lld%s", (long long)l, dir), whh,
                  INIT_UNIFORM_FAN, u, gu);
  graph_add_param(g, n, arena_printf(g->arena, "bias_ih_l%lld%s", (long long)l, dir), b,
                  INIT_UNIFORM_FAN, u, gu);
  graph_add_param(g, n, arena_printf(g->arena, "bias_hh_l%lld%s", (long long)l, dir), b,
                  INIT_UNIFORM_FAN, u, gu);
}

static void recurrent_params(Graph *g, Node *n) {
  int64_t k = in_shape(g, n, 0).d[1].n;
  int64_t dirs = n->a.bidirectional ? 2 : 1;
  for (int64_t l = 0; l < n->a.layers; l++) {
    int64_t in_l = l == 0 ? k : n->a.units * dirs;
    add_layer(g, n, l, "", in_l);
    if (n->a.bidirectional) add_layer(g, n, l, "_reverse", in_l);
  }
}

static SymCount recurrent_flops(const Graph *g, const Node *n) {
  int64_t k = in_shape(g, n, 0).d[1].n;
  int64_t u = n->a.units, gu = gates(n->a.cell) * u;
  int64_t dirs = n->a.bidirectional ? 2 : 1;
  int64_t cell = n->a.cell == CELL_LSTM ? 24 : n->a.cell == CELL_GRU ? 17
                                                : n->a.act == OP_relu ? 1 : 4;
  SymCount step = symcount_const(0);
  for (int64_t l = 0; l < n->a.layers; l++) {
    int64_t in_l = l == 0 ? k : u * dirs;
    SymCount layer = symcount_scale(symcount_const(2 * gu), in_l + u); /* mat-vecs */
    layer = symcount_add(layer, symcount_const(2 * gu));                /* biases */
    layer = symcount_add(layer, symcount_scale(symcount_const(u), cell));
    step = symcount_add(step, symcount_scale(layer, dirs));
  }
  Dim seq = n->shape.d[0];
  if (seq.sym) {
    SymCount r = {0, step.fixed};
    return r;
  }
  return symcount_scale(step, seq.n);
}

static int bidirectional_infer(Graph *g, Node *n) {
  die("bidirectional reached a shape rule: sema folds it into the layer it wraps");
}

/* --- lowering ---
 *
 * One kernel for the whole stack.  U = units, G = gates (1, 4, 3), K_l = layer l's input
 * features, D = directions.  Per layer and direction:
 *   1. the input projection of every step at once, a GEMM-like nest over the rows
 *      r = b * seq + t:  xp[r, j] = bias[j] + sum_k x[r, k] * WihT[k, j]   (xp [batch, seq, G*U])
 *      vectorized over j with WihT = W_ih^T [K_l, G*U] packed once by a prepare kernel, so
 *      the weight loads are contiguous and x[r, k] is a broadcast; RB rows at a time share
 *      each weight load.  bias = b_ih + b_hh (packed), except gru's n gate, whose b_hn
 *      sits inside r * (W_hn h + b_hn);
 *   2. the recurrence: a loop over steps s in order (t = s forward, seq-1-s backward);
 *      per step, vectorized over units u, then over blocks of BB batch rows, G accumulators
 *      per row start from xp and add W_hh h_{t-1} from WhhT = W_hh^T [U, G*U] (packed; a
 *      weight load serves BB rows), and the gate math follows in the same pass.  The hidden
 *      state h [batch, 2, U] is double-buffered: h[b, s%2, :] holds h_{t-1} and
 *      h[b, (s+1)%2, :] receives h_t (every lane reads the whole previous state); h_t also
 *      goes to the layer's output [batch, seq, D*U] at features d*U + u of step t.  The
 *      lstm cell state c [batch, U] is per unit, so it is updated in place.
 * Layer l reads the node's input (l = 0) or layer l-1's output; the last layer writes
 * the node's value, earlier ones alternate between two scratch sequences.  A row block
 * runs n/B times, then single rows finish the rest.  Expressions are built fresh for
 * every use (the loop IR is a tree).
 */

/* seq * m elements per sample. */
static SymCount seq_elems(Dim seq, int64_t m) {
  SymCount c = {0, 0};
  if (seq.sym) c.per_seq = m;
  else c.fixed = seq.n * m;
  return c;
}

/* a * m + b (i64). */
static LExpr *mad(LoopProgram *lp, LExpr *a, int64_t m, LExpr *b) {
  return le_add(lp, le_mul(lp, a, le_i64(lp, m)), b);
}

/* A row of a block: var * mult + i. */
typedef struct RowRef {
  int var;       /* the block's loop variable */
  int64_t mult;  /* rows per block (1: the remainder loop) */
  int64_t i;     /* the row within the block */
} RowRef;

static LExpr *row_of(LoopProgram *lp, RowRef r) {
  return mad(lp, le_var(lp, r.var), r.mult, le_i64(lp, r.i));
}

/* The time step of step s: s forward, seq - 1 - s backward. */
static LExpr *step_time(LoopProgram *lp, Dim seq, int s, int backward) {
  if (!backward) return le_var(lp, s);
  return le_sub(lp, le_sub(lp, le_dim(lp, seq), le_i64(lp, 1)), le_var(lp, s));
}

/* b * seq + t: the row of batch row b at step s in a [batch, seq, ...] buffer. */
static LExpr *step_row(LoopProgram *lp, Dim seq, RowRef b, int s, int backward) {
  return le_add(lp, le_mul(lp, row_of(lp, b), le_dim(lp, seq)), step_time(lp, seq, s, backward));
}

/* Index into the double-buffered state h [batch, 2, U]: half 0 holds h_{t-1}, half 1
 * receives h_t. */
static LExpr *state_at(LoopProgram *lp, int64_t units, RowRef b, int s, int which, LExpr *unit) {
  LExpr *par = le_bin(lp, LO_MOD, le_var(lp, s), le_i64(lp, 2));
  if (which) par = le_sub(lp, le_i64(lp, 1), par);
  return le_add(lp, le_add(lp, le_mul(lp, row_of(lp, b), le_i64(lp, 2 * units)),
                           le_mul(lp, par, le_i64(lp, units))),
                unit);
}

/* A packed copy of W [rows, cols] transposed: packed[k * rows + j] = W[j * cols + k]. */
static int pack_transposed(LowerCtx *lc, const char *name, int w, int64_t rows, int64_t cols) {
  LoopProgram *lp = lc->lp;
  LStmt *prep;
  int p = lower_packed(lc, name, rows * cols, &prep);
  int j = lvar(lp, "j"), k = lvar(lp, "k");
  LStmt *lj = ls_for(lp, prep, j, le_i64(lp, 0), le_i64(lp, rows));
  LStmt *lk = ls_for(lp, ls_body(lj), k, le_i64(lp, 0), le_i64(lp, cols));
  ls_store(lp, ls_body(lk), p, mad(lp, le_var(lp, k), rows, le_var(lp, j)),
           le_load(lp, w, mad(lp, le_var(lp, j), cols, le_var(lp, k))));
  return p;
}

/* The bias folded into the input projection: b_ih + b_hh for j < summed, b_ih beyond. */
static int pack_bias(LowerCtx *lc, const char *name, int bih, int bhh, int64_t gu,
                     int64_t summed) {
  LoopProgram *lp = lc->lp;
  LStmt *prep;
  int p = lower_packed(lc, name, gu, &prep);
  int j = lvar(lp, "j");
  LStmt *l1 = ls_for(lp, prep, j, le_i64(lp, 0), le_i64(lp, summed));
  ls_store(lp, ls_body(l1), p, le_var(lp, j),
           le_bin(lp, LO_ADD, le_load(lp, bih, le_var(lp, j)), le_load(lp, bhh, le_var(lp, j))));
  if (summed < gu) {
    int j2 = lvar(lp, "j");
    LStmt *l2 = ls_for(lp, prep, j2, le_i64(lp, summed), le_i64(lp, gu));
    ls_store(lp, ls_body(l2), p, le_var(lp, j2), le_load(lp, bih, le_var(lp, j2)));
  }
  return p;
}

enum { MAX_BLOCK = 8 };  /* rows per block, at most */

/* What one layer and direction reads and writes. */
typedef struct RecPass {
  const Node *n;
  int d;                /* direction: 0 forward, 1 backward */
  int64_t kl;           /* input features */
  int src, dst;         /* the layer's input [batch, seq, K_l] and output [batch, seq, D*U] */
  int wihT, whhT, bias; /* packed weights */
  int bhh;              /* b_hh (gru's b_hn) */
  int xp, hs, cs;       /* scratch: projected inputs, hidden state, cell state (lstm, else -1) */
} RecPass;

/* xp[r, :] for the nr rows r = rv * nr + i of one block (see above). */
static void projection_rows(LoopProgram *lp, LStmt *blk, const RecPass *p, int rv, int nr) {
  int64_t gu = gates(p->n->a.cell) * p->n->a.units;
  int j = lvar(lp, "j"), k = lvar(lp, "k");
  LStmt *lj = ls_for(lp, blk, j, le_i64(lp, 0), le_i64(lp, gu));
  lj->vec = lp->vec_f32;
  LStmt *bj = ls_body(lj);
  int acc[MAX_BLOCK];
  for (int i = 0; i < nr; i++)
    acc[i] = ls_local(lp, bj, LT_F32, le_load(lp, p->bias, le_var(lp, j)));
  LStmt *bk = ls_body(ls_for(lp, bj, k, le_i64(lp, 0), le_i64(lp, p->kl)));
  int w = ls_local(lp, bk, LT_F32, le_load(lp, p->wihT, mad(lp, le_var(lp, k), gu, le_var(lp, j))));
  for (int i = 0; i < nr; i++) {
    RowRef r = {rv, nr, i};
    LExpr *x = le_load(lp, p->src, mad(lp, row_of(lp, r), p->kl, le_var(lp, k)));
    ls_set(lp, bk, acc[i], le_fma(lp, x, le_local(lp, w), le_local(lp, acc[i])));
  }
  for (int i = 0; i < nr; i++) {
    RowRef r = {rv, nr, i};
    ls_store(lp, bj, p->xp, mad(lp, row_of(lp, r), gu, le_var(lp, j)), le_local(lp, acc[i]));
  }
}

/* One step for the nr batch rows b = bv * nr + i, inside the loop over units u. */
static void step_rows(LoopProgram *lp, LStmt *blk, const RecPass *p, int s, int u, int bv,
                      int nr) {
  const Node *n = p->n;
  RecurrentCell cell = n->a.cell;
  int64_t un = n->a.units, gn = gates(cell), gu = gn * un;
  int64_t width = (n->a.bidirectional ? 2 : 1) * un;
  Dim seq = n->shape.d[0];
  /* acc[i][g] = xp[b_i, t, g*U + u]; gru's n gate keeps W_hn h + b_hn apart in hn[i] */
  int acc[MAX_BLOCK][4], hn[MAX_BLOCK];
  for (int i = 0; i < nr; i++) {
    RowRef b = {bv, nr, i};
    for (int gi = 0; gi < gn; gi++) {
      LExpr *at = mad(lp, step_row(lp, seq, b, s, p->d), gu,
                      le_add(lp, le_i64(lp, gi * un), le_var(lp, u)));
      acc[i][gi] = ls_local(lp, blk, LT_F32, le_load(lp, p->xp, at));
    }
    if (cell == CELL_GRU)
      hn[i] = ls_local(lp, blk, LT_F32,
                       le_load(lp, p->bhh, le_add(lp, le_i64(lp, 2 * un), le_var(lp, u))));
  }
  int k = lvar(lp, "k");
  LStmt *bk = ls_body(ls_for(lp, blk, k, le_i64(lp, 0), le_i64(lp, un)));
  int w[4];
  for (int gi = 0; gi < gn; gi++)
    w[gi] = ls_local(lp, bk, LT_F32,
                     le_load(lp, p->whhT, mad(lp, le_var(lp, k), gu,
                                              le_add(lp, le_i64(lp, gi * un), le_var(lp, u)))));
  for (int i = 0; i < nr; i++) {
    RowRef b = {bv, nr, i};
    int hk = ls_local(lp, bk, LT_F32, le_load(lp, p->hs, state_at(lp, un, b, s, 0, le_var(lp, k))));
    for (int gi = 0; gi < gn; gi++) {
      int a = cell == CELL_GRU && gi == 2 ? hn[i] : acc[i][gi];
      ls_set(lp, bk, a, le_fma(lp, le_local(lp, hk), le_local(lp, w[gi]), le_local(lp, a)));
    }
  }
  for (int i = 0; i < nr; i++) {
    RowRef b = {bv, nr, i};
    LExpr *h;
    if (cell == CELL_RNN) {
      h = n->a.act == OP_relu ? le_bin(lp, LO_MAX, le_local(lp, acc[i][0]), le_f32(lp, 0))
                              : le_un(lp, LO_TANH, le_local(lp, acc[i][0]));
    } else if (cell == CELL_LSTM) {
      LExpr *ig = le_un(lp, LO_SIGMOID, le_local(lp, acc[i][0]));
      LExpr *fg = le_un(lp, LO_SIGMOID, le_local(lp, acc[i][1]));
      LExpr *gg = le_un(lp, LO_TANH, le_local(lp, acc[i][2]));
      LExpr *cprev = le_load(lp, p->cs, mad(lp, row_of(lp, b), un, le_var(lp, u)));
      int c = ls_local(lp, blk, LT_F32, le_fma(lp, fg, cprev, le_bin(lp, LO_MUL, ig, gg)));
      ls_store(lp, blk, p->cs, mad(lp, row_of(lp, b), un, le_var(lp, u)), le_local(lp, c));
      h = le_bin(lp, LO_MUL, le_un(lp, LO_SIGMOID, le_local(lp, acc[i][3])),
                 le_un(lp, LO_TANH, le_local(lp, c)));
    } else {
      LExpr *r = le_un(lp, LO_SIGMOID, le_local(lp, acc[i][0]));
      LExpr *z = le_un(lp, LO_SIGMOID, le_local(lp, acc[i][1]));
      int nv = ls_local(lp, blk, LT_F32,
                        le_un(lp, LO_TANH, le_fma(lp, r, le_local(lp, hn[i]),
                                                  le_local(lp, acc[i][2]))));
      LExpr *hp = le_load(lp, p->hs, state_at(lp, un, b, s, 0, le_var(lp, u)));
      /* (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n) */
      h = le_fma(lp, z, le_bin(lp, LO_SUB, hp, le_local(lp, nv)), le_local(lp, nv));
    }
    int hv = ls_local(lp, blk, LT_F32, h);
    ls_store(lp, blk, p->hs, state_at(lp, un, b, s, 1, le_var(lp, u)), le_local(lp, hv));
    ls_store(lp, blk, p->dst,
             mad(lp, step_row(lp, seq, b, s, p->d), width,
                 le_add(lp, le_i64(lp, p->d * un), le_var(lp, u))),
             le_local(lp, hv));
  }
}

/* `for v in [0, total / nb): emit(v, nb)` then `for v in [total / nb * nb, total): emit(v, 1)`
 * (nb > 1), or one loop of single rows; `parallel` marks the loops (rows independent). */
typedef void (*RowsFn)(LoopProgram *lp, LStmt *blk, const RecPass *p, int a, int b, int v,
                       int nr);

static void blocked_rows(LoopProgram *lp, LStmt *blk, const RecPass *p, int a, int b,
                         LExpr *(*total)(LoopProgram *, const RecPass *), int nb, RowsFn emit,
                         const char *name, int parallel) {
  int v1 = lvar(lp, name);
  LExpr *lo = le_i64(lp, 0);
  if (nb > 1) {
    int vb = lvar(lp, name);
    LExpr *nblocks = le_bin(lp, LO_DIV, total(lp, p), le_i64(lp, nb));
    LStmt *lb = ls_for(lp, blk, vb, le_i64(lp, 0), nblocks);
    lb->parallel = parallel;
    emit(lp, ls_body(lb), p, a, b, vb, nb);
    lo = le_mul(lp, le_bin(lp, LO_DIV, total(lp, p), le_i64(lp, nb)), le_i64(lp, nb));
  }
  LStmt *l1 = ls_for(lp, blk, v1, lo, total(lp, p));
  l1->parallel = parallel;
  emit(lp, ls_body(l1), p, a, b, v1, 1);
}

static LExpr *all_rows(LoopProgram *lp, const RecPass *p) {
  return le_mul(lp, le_batch(lp), le_dim(lp, p->n->shape.d[0]));
}

static LExpr *batch_rows(LoopProgram *lp, const RecPass *p) { return le_batch(lp); }

static void projection_fn(LoopProgram *lp, LStmt *blk, const RecPass *p, int a, int b, int v,
                          int nr) {
  projection_rows(lp, blk, p, v, nr);
}

static void step_fn(LoopProgram *lp, LStmt *blk, const RecPass *p, int s, int u, int v, int nr) {
  step_rows(lp, blk, p, s, u, v, nr);
}

/* Rows per block: as many as keep the accumulators (G per row, plus hn) in registers. */
static int rows_per_block(const LoopProgram *lp, int per_row) {
  int regs = lp->vec_f32 >= 16 ? 20 : 10; /* of 32 (AVX-512) or 16 vector registers */
  int nb = regs / per_row;
  return nb < 1 ? 1 : nb > MAX_BLOCK ? MAX_BLOCK : nb;
}

/* One layer and direction: the projection, h_{-1} = 0 (c_{-1} = 0), the recurrence. */
static void emit_pass(LoopProgram *lp, LStmt *body, const RecPass *p) {
  RecurrentCell cell = p->n->a.cell;
  int64_t un = p->n->a.units;
  blocked_rows(lp, body, p, -1, -1, all_rows, rows_per_block(lp, 2), projection_fn, "r", 1);

  int b0 = lvar(lp, "b"), u0 = lvar(lp, "u");
  LStmt *lb0 = ls_for(lp, body, b0, le_i64(lp, 0), le_batch(lp));
  LStmt *lu0 = ls_for(lp, ls_body(lb0), u0, le_i64(lp, 0), le_i64(lp, un));
  lu0->vec = lp->vec_f32;
  ls_store(lp, ls_body(lu0), p->hs, mad(lp, le_var(lp, b0), 2 * un, le_var(lp, u0)),
           le_f32(lp, 0));
  if (p->cs >= 0)
    ls_store(lp, ls_body(lu0), p->cs, mad(lp, le_var(lp, b0), un, le_var(lp, u0)), le_f32(lp, 0));

  int s = lvar(lp, "s"), u = lvar(lp, "u");
  LStmt *ls = ls_for(lp, body, s, le_i64(lp, 0), le_dim(lp, p->n->shape.d[0])); /* in order */
  LStmt *lu = ls_for(lp, ls_body(ls), u, le_i64(lp, 0), le_i64(lp, un));
  lu->vec = lp->vec_f32;
  int per_row = (int)gates(cell) + (cell == CELL_GRU) + 1;
  blocked_rows(lp, ls_body(lu), p, s, u, batch_rows, rows_per_block(lp, per_row), step_fn, "b",
               0);
}

static void lower_recurrent(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Arena *ar = lp->arena;
  RecurrentCell cell = n->a.cell;
  int64_t un = n->a.units, gu = gates(cell) * un;
  int dirs = n->a.bidirectional ? 2 : 1;
  int64_t width = dirs * un;
  Dim seq = n->shape.d[0];
  int nl = (int)n->a.layers;

  LStmt *body = lower_begin(lc, n);
  RecPass p = {.n = n};
  p.xp = lower_scratch(lc, arena_printf(ar, "%s.xp", n->name), LT_F32, seq_elems(seq, gu), 1);
  p.hs = lower_scratch(lc, arena_printf(ar, "%s.h", n->name), LT_F32, (SymCount){2 * un, 0}, 1);
  p.cs = -1;
  if (cell == CELL_LSTM)
    p.cs = lower_scratch(lc, arena_printf(ar, "%s.c", n->name), LT_F32, (SymCount){un, 0}, 1);
  int inter[2] = {-1, -1};
  for (int i = 0; i < 2 && i < nl - 1; i++)
    inter[i] = lower_scratch(lc, arena_printf(ar, "%s.layer%d", n->name, i), LT_F32,
                             seq_elems(seq, width), 1);

  for (int l = 0; l < nl; l++) {
    p.src = l == 0 ? lower_value(lc, n->in[0]) : inter[(l - 1) % 2];
    p.dst = l == nl - 1 ? lower_value(lc, n->id) : inter[l % 2];
    p.kl = l == 0 ? in_shape(lc->g, n, 0).d[1].n : width;
    for (int d = 0; d < dirs; d++) {
      int pk = (l * dirs + d) * 4; /* weight_ih, weight_hh, bias_ih, bias_hh (params hook) */
      const Param *pw = &lc->g->params[n->first_param + pk];
      int wih = lower_param(lc, n, pk), whh = lower_param(lc, n, pk + 1);
      int bih = lower_param(lc, n, pk + 2);
      p.d = d;
      p.bhh = lower_param(lc, n, pk + 3);
      p.wihT = pack_transposed(lc, arena_printf(ar, "%s.T", pw[0].name), wih, gu, p.kl);
      p.whhT = pack_transposed(lc, arena_printf(ar, "%s.T", pw[1].name), whh, gu, un);
      p.bias = pack_bias(lc, arena_printf(ar, "%s.bias_l%d%s", n->name, l, d ? "_reverse" : ""),
                         bih, p.bhh, gu, cell == CELL_GRU ? 2 * un : gu);
      emit_pass(lp, body, &p);
    }
  }
}

const OpInfo op_rnn = {
    .kind = OP_rnn,
    .name = "rnn",
    .doc = "rnn(x, units, activation=tanh, layers=1): [seq, K] -> [seq, units]",
    .args = rnn_args,
    .nargs = sizeof rnn_args / sizeof rnn_args[0],
    .parametric = 1,
    .infer = recurrent_infer,
    .params = recurrent_params,
    .flops = recurrent_flops,
    .lower = lower_recurrent,
};

const OpInfo op_lstm = {
    .kind = OP_lstm,
    .name = "lstm",
    .doc = "lstm(x, units, layers=1): [seq, K] -> [seq, units]",
    .args = gated_args,
    .nargs = sizeof gated_args / sizeof gated_args[0],
    .parametric = 1,
    .infer = recurrent_infer,
    .params = recurrent_params,
    .flops = recurrent_flops,
    .lower = lower_recurrent,
};

const OpInfo op_gru = {
    .kind = OP_gru,
    .name = "gru",
    .doc = "gru(x, units, layers=1): [seq, K] -> [seq, units]",
    .args = gated_args,
    .nargs = sizeof gated_args / sizeof gated_args[0],
    .parametric = 1,
    .infer = recurrent_infer,
    .params = recurrent_params,
    .flops = recurrent_flops,
    .lower = lower_recurrent,
};

const OpInfo op_bidirectional = {
    .kind = OP_bidirectional,
    .name = "bidirectional",
    .doc = "bidirectional(rnn/lstm/gru(...)): [seq, 2*units], forward then backward halves",
    .args = bidirectional_args,
    .nargs = 1,
    .parametric = 1,
    .infer = bidirectional_infer,
    .lower = NULL,
};
