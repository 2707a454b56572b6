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
 *
 * Training (MODE_GRADIENTS): the forward also saves every step's activations per layer and
 * direction (saved_at), and the gradient rule is backpropagation through time, not an unrolled
 * graph: _recurrent_bptt runs each layer's reverse loop over time, top layer first, giving the
 * gate pre-activation gradients dG of every step (bptt = K cuts the carried gradient at steps
 * K, 2K, ...); _recurrent_dx and _recurrent_dw are then matrix products over batch x steps.
 * The carried state (M_step = MODE_STEP, stateful training) is read before a layer's first
 * step and written after its last (rstate_at); a stateful forward keeps the state it started
 * from (saved0_at) for BPTT's first step.
 */
#include <stddef.h>
#include <string.h>

#include "autodiff.h"
#include "gemm.h"
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
      checked_mul(w, width > in_max ? width : in_max, &w) ||
      checked_mul(w, 6 * n->a.layers, &w)) { /* the saved states and dG of a step (BPTT) */
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
 * features, D = directions, V = the vector width, UB = ceil(U / V) blocks of V units.  Both
 * products are gemm_bcast_groups (gemm.h): a tile keeps the G gates of its block of units for
 * several batch rows in registers, and the weights are packed once per update by prepare
 * kernels, transposed, one contiguous panel per unit block (pack_gates).  Per layer and
 * direction:
 *   1. the input projection of every step at once, over the rows r = b * seq + t in blocks:
 *      bias + x[r, :] W_ih^T into xp [seq, UB, batch, G, V], time-major so that a step's
 *      tiles read their gates from one run of memory.  bias = b_ih + b_hh (packed), except
 *      gru's n gate, whose b_hn sits inside r * (W_hn h + b_hn);
 *   2. the recurrence: a loop over steps s in order (t = s forward, seq-1-s backward); per
 *      step one product h_{t-1} W_hh^T whose tiles run the cell in their epilogue on the sums
 *      plus xp (step_cell), so the gate pre-activations are never stored and the gate math
 *      runs on threads with the product.  The hidden state h [batch, 2, U] is
 *      double-buffered: h[b, s%2, :] holds h_{t-1} and h[b, (s+1)%2, :] receives h_t (every
 *      tile reads the whole previous state); h_t also goes to the layer's output
 *      [batch, seq, D*U] at features d*U + u of step t.  The lstm cell state c [batch, U] is
 *      per unit, so it is updated in place.
 * Layer l reads the node's input (l = 0) or layer l-1's output; the last layer writes
 * the node's value, earlier ones alternate between two scratch sequences.
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

/* The time step of step s: s forward, seq - 1 - s backward. */
static LExpr *step_time(LoopProgram *lp, Dim seq, int s, int backward) {
  if (!backward) return le_var(lp, s);
  return le_sub(lp, le_sub(lp, le_dim(lp, seq), le_i64(lp, 1)), le_var(lp, s));
}

/* b * seq + t: the row of batch row b at step s in a [batch, seq, ...] buffer. */
static LExpr *step_row(LoopProgram *lp, Dim seq, LExpr *b, int s, int backward) {
  return le_add(lp, le_mul(lp, b, le_dim(lp, seq)), step_time(lp, seq, s, backward));
}

/* Index into the double-buffered state h [batch, 2, U]: half 0 holds h_{t-1}, half 1
 * receives h_t. */
static LExpr *state_at(LoopProgram *lp, int64_t units, LExpr *b, int s, int which, LExpr *unit) {
  LExpr *par = le_bin(lp, LO_MOD, le_var(lp, s), le_i64(lp, 2));
  if (which) par = le_sub(lp, le_i64(lp, 1), par);
  return le_add(lp, le_add(lp, le_mul(lp, b, le_i64(lp, 2 * units)),
                           le_mul(lp, par, le_i64(lp, units))),
                unit);
}

/* A packed copy of W [rows, cols] (BPTT's W_hh): packed[j * pitch + k], pitch = gemm_pitch(cols):
 * rows without cache-set aliasing for the products that walk them. */
static int pack_weight(LowerCtx *lc, const char *name, int w, int64_t rows, int64_t cols) {
  LoopProgram *lp = lc->lp;
  LStmt *prep;
  int64_t pitch = gemm_pitch(lp, cols);
  int p = lower_packed(lc, name, pitch * rows, &prep);
  int j = lvar(lp, "j"), k = lvar(lp, "k");
  LStmt *lj = ls_for(lp, prep, j, le_i64(lp, 0), le_i64(lp, rows));
  LStmt *lk = ls_for(lp, ls_body(lj), k, le_i64(lp, 0), le_i64(lp, cols));
  lk->vec = lp->vec_f32;
  ls_store(lp, ls_body(lk), p, mad(lp, le_var(lp, j), pitch, le_var(lp, k)),
           le_load(lp, w, mad(lp, le_var(lp, j), cols, le_var(lp, k))));
  return p;
}

/* W [G*U, cols] (W_ih or W_hh) packed for gemm_bcast_groups: transposed, in panels of V units,
 * the G gates of a panel side by side:
 *   packed[((u / V) * cols + k) * G*V + g * V + u % V] = W[g * U + u, k]
 * Each panel is one contiguous block that its tiles stream in order.  A lane past U in the last
 * panel is never read (the tiles mask it). */
static int pack_gates(LowerCtx *lc, const char *name, int w, RecurrentCell cell, int64_t un, int64_t cols) {
  LoopProgram *lp = lc->lp;
  LStmt *prep;
  int64_t G = gates(cell), V = lp->vec_f32;
  int p = lower_packed(lc, name, gemm_groups_blocks(lp, un) * cols * G * V, &prep);
  int g = lvar(lp, "g"), u = lvar(lp, "u"), k = lvar(lp, "k");
  LStmt *lg = ls_for(lp, prep, g, le_i64(lp, 0), le_i64(lp, G));
  LStmt *lu = ls_for(lp, ls_body(lg), u, le_i64(lp, 0), le_i64(lp, un));
  LStmt *lk = ls_for(lp, ls_body(lu), k, le_i64(lp, 0), le_i64(lp, cols));
  LExpr *panel = mad(lp, le_bin(lp, LO_DIV, le_var(lp, u), le_i64(lp, V)), cols, le_var(lp, k));
  LExpr *col = mad(lp, le_var(lp, g), V, le_bin(lp, LO_MOD, le_var(lp, u), le_i64(lp, V)));
  ls_store(lp, ls_body(lk), p, mad(lp, panel, G * V, col),
           le_load(lp, w, mad(lp, mad(lp, le_var(lp, g), un, le_var(lp, u)), cols, le_var(lp, k))));
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
  int l;                /* the layer */
  int sv;               /* MODE_GRADIENTS: the saved states (see saved_at), else -1 */
  int step;             /* the loop variable of the steps */
  int rs;               /* the carried state (M_step, stateful training), else -1 */
  int64_t rs_off, rs_row; /* this node's offset in a row of rs, and the row's floats */
  int s0;               /* stateful training: the saved initial state (saved0_at), else -1 */
  int ppart, spart;     /* the projection's and the steps' chunk sums (gemm.h), else -1 */
} RecPass;

/* What the training forward saves for BPTT, per step t, layer l and direction d: a record of
 * S slots of U floats, the step's activations (h last):
 *   rnn  [h]                    S = 1
 *   lstm [i, f, g, o, c, h]     S = 6   (gate activations, the cell state after the step)
 *   gru  [r, z, n, hn, h]       S = 5   (hn = W_hn h_{t-1} + b_hn)
 * saved [batch, seq, L, D, S, U], rows b * seq + t. */
static int64_t saved_slots(RecurrentCell c) { return c == CELL_LSTM ? 6 : c == CELL_GRU ? 5 : 1; }

static LExpr *saved_at(LoopProgram *lp, const Node *n, LExpr *row, int64_t l, int64_t d,
                       int64_t slot, LExpr *unit) {
  int64_t un = n->a.units, dirs = n->a.bidirectional ? 2 : 1, S = saved_slots(n->a.cell);
  int64_t rec = ((l * dirs + d) * S + slot) * un;
  return le_add(lp, mad(lp, row, n->a.layers * dirs * S * un, le_i64(lp, rec)), unit);
}

/* The matrix products of a pass, both gemm_bcast_groups over the units with the weights packed
 * by pack_gates (gemm.h's callbacks, ctx = the RecPass):
 *   the projection  xp = bias + src[b * seq + t, :] W_ih^T for all batch x seq rows at once (in
 *                   blocks of rows), into xp [seq, UB, batch, G, V] (UB = ceil(U / V) unit
 *                   blocks): a step's tile reads its rows' gates of one block from one
 *                   contiguous run of memory
 *   a step          h_{t-1} W_hh^T, with the cell (step_cell) as the tile's epilogue: it adds
 *                   xp there, so the gate sums never leave the registers and the tile does not
 *                   start by waiting for xp's loads.
 * gru's n gate keeps W_hn h + b_hn apart from W_in x + b_in. */
static LExpr *src_at(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *k) {
  (void)br;
  return mad(lp, m, ((const RecPass *)c)->kl, k);
}
/* a weight packed by pack_gates with cols = K: panel ub, row k, column n */
static LExpr *panel_at(LoopProgram *lp, const RecPass *p, int64_t cols, LExpr *ub, LExpr *n, LExpr *k) {
  return mad(lp, mad(lp, ub, cols, k), gates(p->n->a.cell) * lp->vec_f32, n);
}
static LExpr *wih_at(LoopProgram *lp, const void *c, LExpr *ub, LExpr *n, LExpr *k) {
  return panel_at(lp, c, ((const RecPass *)c)->kl, ub, n, k);
}
static LExpr *whh_at(LoopProgram *lp, const void *c, LExpr *ub, LExpr *n, LExpr *k) {
  return panel_at(lp, c, ((const RecPass *)c)->n->a.units, ub, n, k);
}
/* xp[t, ub, b, g, l] */
static LExpr *xp_at(LoopProgram *lp, const RecPass *p, LExpr *t, LExpr *ub, LExpr *b, int64_t g, LExpr *l) {
  int64_t G = gates(p->n->a.cell), V = lp->vec_f32;
  LExpr *blk = le_add(lp, le_mul(lp, t, le_i64(lp, gemm_groups_blocks(lp, p->n->a.units))), ub);
  return mad(lp, le_add(lp, le_mul(lp, blk, le_batch(lp)), b), G * V, le_add(lp, le_i64(lp, g * V), l));
}
static LExpr *unit_of(LoopProgram *lp, LExpr *ub, LExpr *l) { return mad(lp, ub, lp->vec_f32, l); }
static LExpr *proj_init(LoopProgram *lp, const void *c, LExpr *m, int gate, LExpr *ub, LExpr *l) {
  (void)m;
  const RecPass *p = c;
  return le_load(lp, p->bias, le_add(lp, le_i64(lp, gate * p->n->a.units), unit_of(lp, ub, l)));
}
/* the projection's sums of row m = b * seq + t into xp[t, ub, b] */
static void proj_store(LoopProgram *lp, const void *c, LStmt *blk, LExpr *m, LExpr *ub, LExpr *l,
                       const int *acc) {
  const RecPass *p = c;
  Dim seq = p->n->shape.d[0];
  int t = ls_local(lp, blk, LT_I64, le_bin(lp, LO_MOD, m, le_dim(lp, seq)));
  int b = ls_local(lp, blk, LT_I64, le_bin(lp, LO_DIV, m, le_dim(lp, seq)));
  for (int g = 0; g < gates(p->n->a.cell); g++)
    ls_store(lp, blk, p->xp, xp_at(lp, p, le_local(lp, t), ub, le_local(lp, b), g, l), le_local(lp, acc[g]));
}
/* h_{t-1}[b, k]: half s % 2 of the double buffer (state_at) */
static LExpr *hprev_at(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *k) {
  (void)br;
  const RecPass *p = c;
  return state_at(lp, p->n->a.units, m, p->step, 0, k);
}
/* The output's element of row (b * seq + t) and unit u: this direction's half of the row */
static LExpr *step_out_at(LoopProgram *lp, const RecPass *p, LExpr *row, LExpr *u) {
  int64_t un = p->n->a.units;
  return mad(lp, row, (p->n->a.bidirectional ? 2 : 1) * un, le_add(lp, le_i64(lp, p->d * un), u));
}
/* One step's cell for batch row b and the units u = ub * V + l (a vector over the lanes l), from
 * the sums of h_{t-1} W_hh^T. */
static void step_cell(LoopProgram *lp, const void *ctx, LStmt *blk, LExpr *b, LExpr *ub, LExpr *l,
                      const int *sums) {
  const RecPass *p = ctx;
  const Node *n = p->n;
  RecurrentCell cell = n->a.cell;
  int64_t un = n->a.units;
  Dim seq = n->shape.d[0];
  int s = p->step;
  LExpr *u = unit_of(lp, ub, l), *t = step_time(lp, seq, s, p->d);
  /* acc[g] = the gate's pre-activation: xp + the sum; gru's n gate: acc[2] = W_in x + b_in and
   * hn = W_hn h + b_hn */
  int acc[4] = {-1, -1, -1, -1}, hn = -1;
  for (int gi = 0; gi < gates(cell); gi++) {
    LExpr *xv = le_load(lp, p->xp, xp_at(lp, p, t, ub, b, gi, l));
    if (cell == CELL_GRU && gi == 2) {
      hn = ls_local(lp, blk, LT_F32, le_bin(lp, LO_ADD, le_local(lp, sums[gi]),
                                            le_load(lp, p->bhh, le_add(lp, le_i64(lp, 2 * un), u))));
      acc[gi] = ls_local(lp, blk, LT_F32, xv);
    } else {
      acc[gi] = ls_local(lp, blk, LT_F32, le_bin(lp, LO_ADD, le_local(lp, sums[gi]), xv));
    }
  }
  {
    int keep[6], nkeep = 0; /* the record's slots, h last (saved when training) */
    LExpr *h;
    if (cell == CELL_RNN) {
      h = n->a.act == OP_relu ? le_bin(lp, LO_MAX, le_local(lp, acc[0]), le_f32(lp, 0))
                              : le_un(lp, LO_TANH, le_local(lp, acc[0]));
    } else if (cell == CELL_LSTM) {
      int ig = ls_local(lp, blk, LT_F32, le_un(lp, LO_SIGMOID, le_local(lp, acc[0])));
      int fg = ls_local(lp, blk, LT_F32, le_un(lp, LO_SIGMOID, le_local(lp, acc[1])));
      int gg = ls_local(lp, blk, LT_F32, le_un(lp, LO_TANH, le_local(lp, acc[2])));
      int og = ls_local(lp, blk, LT_F32, le_un(lp, LO_SIGMOID, le_local(lp, acc[3])));
      LExpr *cprev = le_load(lp, p->cs, mad(lp, b, un, u));
      int c = ls_local(lp, blk, LT_F32, le_fma(lp, le_local(lp, fg), cprev,
                                               le_bin(lp, LO_MUL, le_local(lp, ig), le_local(lp, gg))));
      ls_store(lp, blk, p->cs, mad(lp, b, un, u), le_local(lp, c));
      h = le_bin(lp, LO_MUL, le_local(lp, og), le_un(lp, LO_TANH, le_local(lp, c)));
      keep[0] = ig, keep[1] = fg, keep[2] = gg, keep[3] = og, keep[4] = c, nkeep = 5;
    } else {
      int r = ls_local(lp, blk, LT_F32, le_un(lp, LO_SIGMOID, le_local(lp, acc[0])));
      int z = ls_local(lp, blk, LT_F32, le_un(lp, LO_SIGMOID, le_local(lp, acc[1])));
      int nv = ls_local(lp, blk, LT_F32,
                        le_un(lp, LO_TANH, le_fma(lp, le_local(lp, r), le_local(lp, hn),
                                                  le_local(lp, acc[2]))));
      LExpr *hp = le_load(lp, p->hs, state_at(lp, un, b, s, 0, u));
      /* (1 - z) * n + z * h_{t-1} = n + z * (h_{t-1} - n) */
      h = le_fma(lp, le_local(lp, z), le_bin(lp, LO_SUB, hp, le_local(lp, nv)), le_local(lp, nv));
      keep[0] = r, keep[1] = z, keep[2] = nv, keep[3] = hn, nkeep = 4;
    }
    int hv = ls_local(lp, blk, LT_F32, h);
    ls_store(lp, blk, p->hs, state_at(lp, un, b, s, 1, u), le_local(lp, hv));
    ls_store(lp, blk, p->dst, step_out_at(lp, p, step_row(lp, seq, b, s, p->d), u), le_local(lp, hv));
    if (p->sv >= 0) {
      keep[nkeep++] = hv;
      for (int k2 = 0; k2 < nkeep; k2++)
        ls_store(lp, blk, p->sv, saved_at(lp, n, step_row(lp, seq, b, s, p->d), p->l, p->d, k2, u),
                 le_local(lp, keep[k2]));
    }
  }
}
/* The lines step_cell of batch row b and block ub reads and writes far from L1: xp (written
 * for every step before the recurrence: megabytes), the output row and the training record
 * (each step's rows are new lines).  Prefetched into L2 while the tile's last chunk runs, an
 * LSTM of 256 units at batch 32 ran its training recurrence ~6% faster on an AMD Zen 5 (the
 * stores alone, or xp alone, gained little; prefetchw into L1 was slower: those lines evicted
 * the panel's). */
static void step_prefetch(LoopProgram *lp, const void *ctx, LStmt *blk, LExpr *b, LExpr *ub, LExpr *l) {
  const RecPass *p = ctx;
  const Node *n = p->n;
  Dim seq = n->shape.d[0];
  int s = p->step;
  LExpr *u = unit_of(lp, ub, l), *t = step_time(lp, seq, s, p->d);
  LExpr *row = step_row(lp, seq, b, s, p->d);
  for (int gi = 0; gi < gates(n->a.cell); gi++) ls_prefetch(lp, blk, p->xp, xp_at(lp, p, t, ub, b, gi, l));
  ls_prefetch(lp, blk, p->dst, step_out_at(lp, p, row, u));
  if (p->sv >= 0)
    for (int k = 0; k < saved_slots(n->a.cell); k++)
      ls_prefetch(lp, blk, p->sv, saved_at(lp, n, row, p->l, p->d, k, u));
}
static LExpr *all_rows(LoopProgram *lp, const RecPass *p) {
  return le_mul(lp, le_batch(lp), le_dim(lp, p->n->shape.d[0]));
}

/* One layer and direction: the projection, h_{-1} = 0 (c_{-1} = 0), the recurrence. */
/* The carried state (lower_rstate): per batch row, node after node, [L, D, C, U] with C = 2
 * for lstm (h, c), else 1 (h).  The saved initial state of a stateful training forward,
 * saved0 [batch, L, D, 2, U] (h, c), is what BPTT reads as h_{-1}, c_{-1}. */
static int is_recurrent(OpKind k) { return k == OP_rnn || k == OP_lstm || k == OP_gru; }

static int64_t node_state_floats(const Node *n) {
  return n->a.layers * (n->a.bidirectional ? 2 : 1) * (n->a.cell == CELL_LSTM ? 2 : 1) * n->a.units;
}

int64_t op_recurrent_state_floats(const Graph *g) {
  int limit = g->nfwd >= 0 ? g->nfwd : g->nnodes;
  int64_t total = 0;
  for (int i = 0; i < limit; i++) {
    const Node *n = &g->nodes[i];
    if (!is_recurrent(n->op)) continue;
    if (n->a.bidirectional) return 0;
    total += node_state_floats(n); /* each bounded by the shape rule; a few nodes */
  }
  return total;
}

int op_recurrent_streamable(const Graph *g) {
  return g->sym != NULL && op_recurrent_state_floats(g) > 0;
}

static int64_t state_offset(const Graph *g, const Node *n) {
  int64_t off = 0;
  for (int i = 0; i < n->id; i++)
    if (is_recurrent(g->nodes[i].op)) off += node_state_floats(&g->nodes[i]);
  return off;
}

/* rstate[b, off + ((l * D + d) * C + which) * U + u] */
static LExpr *rstate_at(LoopProgram *lp, const RecPass *p, LExpr *b, int64_t which, LExpr *unit) {
  const Node *n = p->n;
  int64_t un = n->a.units, c = n->a.cell == CELL_LSTM ? 2 : 1;
  int64_t at = p->rs_off + ((p->l * (n->a.bidirectional ? 2 : 1) + p->d) * c + which) * un;
  return le_add(lp, mad(lp, b, p->rs_row, le_i64(lp, at)), unit);
}

/* saved0[b, l, d, which, u] */
static LExpr *saved0_at(LoopProgram *lp, const Node *n, LExpr *b, int64_t l, int64_t d,
                        int64_t which, LExpr *unit) {
  int64_t un = n->a.units, dirs = n->a.bidirectional ? 2 : 1;
  return le_add(lp, mad(lp, b, n->a.layers * dirs * 2 * un, le_i64(lp, ((l * dirs + d) * 2 + which) * un)),
                unit);
}

/* One layer and direction: the projection, the initial state (zero, or the carried one), the
 * recurrence, and, when the state is carried, the final state back into rstate. */
/* The pass's two products (the steps' A reads state_at with p->step). */
static GemmSpec proj_spec(LoopProgram *lp, const RecPass *p) {
  return (GemmSpec){.M = all_rows(lp, p), .N = le_i64(lp, p->n->a.units), .K = le_i64(lp, p->kl), .a = p->src,
                    .b = p->wihT, .a_at = src_at, .b_at = wih_at, .row_block = 64, .ctx = p};
}
static GemmSpec step_spec(LoopProgram *lp, const RecPass *p) {
  int64_t un = p->n->a.units;
  return (GemmSpec){.M = le_batch(lp), .N = le_i64(lp, un), .K = le_i64(lp, un), .a = p->hs,
                    .b = p->whhT, .a_at = hprev_at, .b_at = whh_at, .ctx = p};
}

static void emit_pass(LoopProgram *lp, LStmt *body, const RecPass *p) {
  RecurrentCell cell = p->n->a.cell;
  int64_t un = p->n->a.units;
  GemmSpec proj = proj_spec(lp, p);
  GemmGroups projg = {.G = (int)gates(cell), .init = proj_init, .epilogue = proj_store, .part = p->ppart};
  gemm_bcast_groups(lp, body, &proj, &projg);

  int b0 = lvar(lp, "b"), u0 = lvar(lp, "u");
  LStmt *lb0 = ls_for(lp, body, b0, le_i64(lp, 0), le_batch(lp));
  LStmt *lu0 = ls_for(lp, ls_body(lb0), u0, le_i64(lp, 0), le_i64(lp, un));
  lu0->vec = lp->vec_f32;
  LStmt *ub0 = ls_body(lu0);
  for (int which = 0; which < (p->cs >= 0 ? 2 : 1); which++) {
    LExpr *v = p->rs >= 0 ? le_load(lp, p->rs, rstate_at(lp, p, le_var(lp, b0), which, le_var(lp, u0)))
                          : le_f32(lp, 0);
    int iv = ls_local(lp, ub0, LT_F32, v);
    if (which == 0)
      ls_store(lp, ub0, p->hs, mad(lp, le_var(lp, b0), 2 * un, le_var(lp, u0)), le_local(lp, iv));
    else
      ls_store(lp, ub0, p->cs, mad(lp, le_var(lp, b0), un, le_var(lp, u0)), le_local(lp, iv));
    if (p->s0 >= 0)
      ls_store(lp, ub0, p->s0, saved0_at(lp, p->n, le_var(lp, b0), p->l, p->d, which, le_var(lp, u0)),
               le_local(lp, iv));
  }

  Dim seq = p->n->shape.d[0];
  int s = p->step;
  LStmt *ls = ls_for(lp, body, s, le_i64(lp, 0), le_dim(lp, seq));
  ls->steps = 1;
  GemmSpec step = step_spec(lp, p);
  GemmGroups cellg = {.G = (int)gates(cell), .epilogue = step_cell, .part = p->spart, .prefetch = step_prefetch};
  gemm_bcast_groups(lp, ls_body(ls), &step, &cellg);

  if (p->rs < 0) return;
  /* the final state: h_{seq-1} is in half seq % 2 of the double buffer */
  int b1 = lvar(lp, "b"), u1 = lvar(lp, "u");
  LStmt *lb1 = ls_for(lp, body, b1, le_i64(lp, 0), le_batch(lp));
  LStmt *lu1 = ls_for(lp, ls_body(lb1), u1, le_i64(lp, 0), le_i64(lp, un));
  lu1->vec = lp->vec_f32;
  LExpr *half = le_bin(lp, LO_MOD, le_dim(lp, seq), le_i64(lp, 2));
  LExpr *hidx = le_add(lp, le_add(lp, le_mul(lp, le_var(lp, b1), le_i64(lp, 2 * un)),
                                  le_mul(lp, half, le_i64(lp, un))),
                       le_var(lp, u1));
  ls_store(lp, ls_body(lu1), p->rs, rstate_at(lp, p, le_var(lp, b1), 0, le_var(lp, u1)),
           le_load(lp, p->hs, hidx));
  if (p->cs >= 0)
    ls_store(lp, ls_body(lu1), p->rs, rstate_at(lp, p, le_var(lp, b1), 1, le_var(lp, u1)),
             le_load(lp, p->cs, mad(lp, le_var(lp, b1), un, le_var(lp, u1))));
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

  /* packed weights first: in the training entry points packing is a kernel of its own, which
   * must run before this one */
  int npass = nl * dirs;
  int *packs = arena_alloc(ar, (size_t)npass * 3 * sizeof(int));
  for (int l = 0; l < nl; l++) {
    int64_t kl = l == 0 ? in_shape(lc->g, n, 0).d[1].n : width;
    for (int d = 0; d < dirs; d++) {
      int pk = (l * dirs + d) * 4; /* weight_ih, weight_hh, bias_ih, bias_hh (params hook) */
      const Param *pw = &lc->g->params[n->first_param + pk];
      int *pp = &packs[(l * dirs + d) * 3];
      pp[0] = pack_gates(lc, arena_printf(ar, "%s.T", pw[0].name), lower_param(lc, n, pk), cell, un, kl);
      pp[1] = pack_gates(lc, arena_printf(ar, "%s.T", pw[1].name), lower_param(lc, n, pk + 1), cell, un, un);
      pp[2] = pack_bias(lc, arena_printf(ar, "%s.bias_l%d%s", n->name, l, d ? "_reverse" : ""),
                        lower_param(lc, n, pk + 2), lower_param(lc, n, pk + 3), gu,
                        cell == CELL_GRU ? 2 * un : gu);
    }
  }

  LStmt *body = lower_begin(lc, n);
  RecPass p = {.n = n};
  p.xp = lower_scratch(lc, arena_printf(ar, "%s.xp", n->name), LT_F32,
                       seq_elems(seq, gemm_groups_blocks(lp, un) * gates(cell) * lp->vec_f32), 1);
  p.hs = lower_scratch(lc, arena_printf(ar, "%s.h", n->name), LT_F32, (SymCount){2 * un, 0}, 1);
  p.cs = -1;
  if (cell == CELL_LSTM)
    p.cs = lower_scratch(lc, arena_printf(ar, "%s.c", n->name), LT_F32, (SymCount){un, 0}, 1);
  p.sv = -1;
  if (lc->mode == MODE_GRADIENTS) {
    int64_t per_step = n->a.layers * dirs * saved_slots(cell) * un; /* bounded by infer */
    p.sv = lower_scratch(lc, arena_printf(ar, "%s.saved", n->name), LT_F32,
                         seq_elems(seq, per_step), 1);
    lc->saved[n->id] = p.sv;
  }
  p.rs = p.s0 = -1;
  int carry = lc->mode == MODE_STEP || (lc->mode == MODE_GRADIENTS && lc->g->train.stateful);
  if (carry && op_recurrent_state_floats(lc->g) > 0) {
    p.rs = lower_rstate(lc);
    p.rs_off = state_offset(lc->g, n);
    p.rs_row = op_recurrent_state_floats(lc->g);
    if (lc->mode == MODE_GRADIENTS) {
      p.s0 = lower_scratch(lc, arena_printf(ar, "%s.saved0", n->name), LT_F32,
                           (SymCount){n->a.layers * dirs * 2 * un, 0}, 1);
      lc->saved0[n->id] = p.s0;
    }
  }
  /* the products' chunk sums (gemm.h): the projection's for the widest layer input, not
   * batched (row blocks); the steps' per batch row */
  {
    GemmGroups gg = {.G = (int)gates(cell)};
    int64_t proj_floats = 0, step_floats;
    for (int l = 0; l < nl; l++) {
      p.kl = l == 0 ? in_shape(lc->g, n, 0).d[1].n : width;
      GemmSpec ps = proj_spec(lp, &p);
      int64_t f = gemm_groups_part_floats(lp, &ps, &gg);
      if (f > proj_floats) proj_floats = f;
    }
    GemmSpec ss = step_spec(lp, &p);
    step_floats = gemm_groups_part_floats(lp, &ss, &gg);
    p.ppart = proj_floats > 0 ? lower_scratch(lc, arena_printf(ar, "%s.xpart", n->name), LT_F32,
                                              (SymCount){proj_floats, 0}, 0)
                              : -1;
    p.spart = step_floats > 0 ? lower_scratch(lc, arena_printf(ar, "%s.hpart", n->name), LT_F32,
                                              (SymCount){step_floats, 0}, 1)
                              : -1;
  }
  int inter[2] = {-1, -1};
  for (int i = 0; i < 2 && i < nl - 1; i++)
    inter[i] = lower_scratch(lc, arena_printf(ar, "%s.layer%d", n->name, i), LT_F32,
                             seq_elems(seq, width), 1);

  for (int l = 0; l < nl; l++) {
    p.src = l == 0 ? lower_value(lc, n->in[0]) : inter[(l - 1) % 2];
    p.dst = l == nl - 1 ? lower_value(lc, n->id) : inter[l % 2];
    p.kl = l == 0 ? in_shape(lc->g, n, 0).d[1].n : width;
    for (int d = 0; d < dirs; d++) {
      const int *pp = &packs[(l * dirs + d) * 3];
      p.d = d;
      p.l = l;
      p.bhh = lower_param(lc, n, (l * dirs + d) * 4 + 3);
      p.wihT = pp[0];
      p.whhT = pp[1];
      p.bias = pp[2];
      p.step = lvar(lp, "s");
      emit_pass(lp, body, &p);
    }
  }
}

/* --- the gradient rule: backpropagation through time ---
 *
 *   dG   = _recurrent_bptt(dy)      [seq, L*D*Gd*U]: every layer's gate pre-activation
 *                                   gradients, from the reverse loop over time
 *   dx   = _recurrent_dx(dG)        [seq, K]: dG W_ih_l0 over both directions
 *   dW_k = _recurrent_dw(dG, x)     one parameter's gradient (wrt = k): a matrix product over
 *                                   the batch x steps rows, after the reverse loop
 * dG holds Gd = G slots per unit and step (gru: 4, [r, z, n, hn]: the n gate's W_in x + b_in
 * and W_hn h + b_hn parts differ by the factor r); dG[b, t, l, d, slot, u], rows b * seq + t.
 * The training forward saved each step's activations (saved_at), so nothing is recomputed. */
static int64_t dgates(RecurrentCell c) { return gates(c) + (c == CELL_GRU); }
static int64_t ih_slot(int64_t g) { return g; }
static int64_t hh_slot(RecurrentCell c, int64_t g) { return c == CELL_GRU && g == 2 ? 3 : g; }

static LExpr *dg_at(LoopProgram *lp, const Node *n, LExpr *row, int64_t l, int64_t d,
                    int64_t slot, LExpr *unit) {
  int64_t un = n->a.units, dirs = n->a.bidirectional ? 2 : 1, gd = dgates(n->a.cell);
  return le_add(lp, mad(lp, row, n->a.layers * dirs * gd * un,
                        le_i64(lp, ((l * dirs + d) * gd + slot) * un)),
                unit);
}

static void grad_recurrent(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  const Node *f = &g->nodes[n];
  int x = f->in[0], np = f->nparams, first = f->first_param;
  const char *name = f->name;
  Shape s = {.rank = 2};
  s.d[0] = f->shape.d[0];
  s.d[1].n = f->a.layers * (f->a.bidirectional ? 2 : 1) * dgates(f->a.cell) * f->a.units;
  int bp = ad_node(ad, OP_recurrent_bptt, &dy, 1, n, 0, s, 1);
  if (ad_wants(ad, x)) ad_input_grad(ad, n, 0, ad_node_like(ad, OP_recurrent_dx, &bp, 1, n, 0, x));
  for (int k = 0; k < np; k++) {
    if (!ad_wants_param(ad, n, k)) continue;
    int in[2] = {bp, x};
    const Param *pa = &g->params[first + k];
    int id = ad_node(ad, OP_recurrent_dw, in, 2, n, k, pa->shape, 0);
    /* "dh/weight_hh_l0": which parameter, in the printed gradient program */
    g->nodes[id].name = arena_printf(g->arena, "d%s/%s", name, pa->name + strlen(name) + 1);
    ad_param_grad(ad, n, k, id);
  }
}

static int saved_of(LowerCtx *lc, const Node *f) {
  if (lc->saved[f->id] < 0) die("%s: the gradient reads states its forward did not save", f->name);
  return lc->saved[f->id];
}

/* The gradient's matrix products (gemm.h's callbacks, ctx = a RecGrad).  The reduction index
 * kk = g*U + j runs over a layer-direction's gate units; its dG slot is g (the input side) or
 * hh_slot(g) (the recurrent side: gru's n gate has its own slot 3). */
typedef struct RecGrad {
  const Node *f;
  int64_t l, d, pd;    /* layer, direction, the part (direction) of a lower layer's output */
  int64_t kl;          /* columns of the B operand / C */
  int64_t cols, coff;  /* C's row pitch and column offset (dW) */
  int hh;              /* the A operand is dG_hh (hh_slot) */
  int dst, w, x;       /* buffers the callbacks read or write */
  int t;               /* bptt: the local holding the time; dW hh: 1 forward, 0 backward */
  int64_t cut;         /* bptt = K, 0: none */
  int s0;              /* saved0, or -1 */
} RecGrad;

/* The dG slot of column kk of the hh side: gru's [r, z, hn] skip n (kk >= 2U moves on by U).
 * A select, not kk + kk / 2U * U: in the reduction of the backward recurrence the division
 * made LLVM spill the register tile's accumulators every iteration (docs/internals.md). */
static LExpr *kk_unit(LoopProgram *lp, const RecGrad *c, LExpr *kk) {
  int64_t un = c->f->a.units;
  if (!c->hh || c->f->a.cell != CELL_GRU) return kk;
  return le_add(lp, kk, le_select(lp, le_bin(lp, LO_GE, kk, le_i64(lp, 2 * un)), le_i64(lp, un), le_i64(lp, 0)));
}
/* dG[row, l, d, slot(kk)] for the row r = m (A of dx) */
static LExpr *rg_dg_row(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *kk) {
  (void)br;
  const RecGrad *g = c;
  return dg_at(lp, g->f, m, g->l, g->d, 0, kk_unit(lp, g, kk));
}
/* dG as A of dW: element (m = kk, r) */
static LExpr *rg_dg_col(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *r) {
  return rg_dg_row(lp, c, br, r, m);
}
/* B = W [G*U, kl]: element (n, kk) = W[kk, n] */
static LExpr *rg_w(LoopProgram *lp, const void *c, LExpr *br, LExpr *n, LExpr *kk) {
  (void)br;
  return mad(lp, kk, ((const RecGrad *)c)->kl, n);
}
/* C: [rows, kl] with pitch cols at column offset coff */
static LExpr *rg_c(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *n) {
  (void)br;
  const RecGrad *g = c;
  return le_add(lp, mad(lp, m, g->cols, le_i64(lp, g->coff)), n);
}
static LExpr *rg_c_init(LoopProgram *lp, const void *c, LExpr *m, LExpr *n) {
  return le_load(lp, ((const RecGrad *)c)->dst, rg_c(lp, c, NULL, m, n));
}

/* dst[r, k] = sum over directions d, gates g and units j of dG[r, l, d, g, j] W_ih_l{d}[g*U+j, k]
 * for the rows r = b * seq + t: the gradient of layer l's input [batch, seq, K_l]. */
static void input_grad(LowerCtx *lc, LStmt *body, const Node *f, int dg, int64_t l, int dst,
                       int64_t kl) {
  LoopProgram *lp = lc->lp;
  int64_t un = f->a.units, gn = gates(f->a.cell), dirs = f->a.bidirectional ? 2 : 1;
  for (int64_t d = 0; d < dirs; d++) {
    RecGrad rg = {.f = f, .l = l, .d = d, .kl = kl, .cols = kl};
    GemmSpec g = {.M = le_mul(lp, le_batch(lp), le_dim(lp, f->shape.d[0])), .N = le_i64(lp, kl),
                  .K = le_i64(lp, gn * un), .a = dg, .b = lower_param(lc, f, (int)((l * dirs + d) * 4)),
                  .c = dst, .a_at = rg_dg_row, .b_at = rg_w, .c_at = rg_c, .accumulate = d > 0,
                  .ctx = &rg};
    gemm_bcast(lp, body, &g);
  }
}

/* dG_hh[b * seq + t, l, d, kk] for batch row m at the step's time t (a local) */
static LExpr *bptt_dg(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *kk) {
  const RecGrad *g = c;
  LExpr *row = le_add(lp, le_mul(lp, m, le_dim(lp, g->f->shape.d[0])), le_local(lp, g->t));
  return rg_dg_row(lp, c, br, row, kk);
}
/* bptt = K: nothing flows into step t - 1 when t % K == 0 */
static LExpr *bptt_cut(LoopProgram *lp, const void *c, LExpr *v, LExpr *m, LExpr *n) {
  (void)m, (void)n;
  const RecGrad *g = c;
  if (!g->cut) return v;
  return le_select(lp, le_bin(lp, LO_EQ, le_bin(lp, LO_MOD, le_local(lp, g->t), le_i64(lp, g->cut)), le_i64(lp, 0)),
                   le_f32(lp, 0), v);
}

/* The reverse loop of layer l, direction d: steps s = 0 .. seq-1 visit the times the forward
 * visited last first (t = seq-1-s forward, s backward).  Per step:
 *   A (per batch row b, on threads, and unit u): dh = dY[b, t, d*U + u] + dh_next[b, u] gives
 *     the gate gradients dG and the part of dh_{t-1} that skips W_hh (gru: dh z; lstm:
 *     dc_{t-1} = dc f, kept in dc), stored in dh_next;
 *   B: dh_next[b, k] += sum_g,j dG_hh[b, t, g, j] W_hh[g*U + j, k], or 0 at a truncation cut
 *     (bptt = K, t % K == 0), as is lstm's dc.
 * A walks each saved record in order (B's tiles would read it a few lines at a time, every
 * read a miss).  The first step the forward took has no previous state (zero, or the carried
 * one): has_prev = s < seq - 1, and tp, the previous time, is clamped so its loads stay in
 * bounds; its dh_next flows nowhere, so the last step has no B. */
typedef struct BpttCtx {
  RecGrad rg;         /* first: the gemm callbacks read it as their RecGrad; also f, l, d, cut */
  LowerCtx *lc;
  int sv, dgb, dys, dh, dc;
  int s;              /* the loop variable of the steps */
  int ta, tpa;        /* locals: the step's time and its previous time */
} BpttCtx;

/* A for batch row b and units u */
static void bptt_cell(LoopProgram *lp, LStmt *ub, const BpttCtx *bc, LExpr *b, LExpr *u) {
  const Node *f = bc->rg.f;
  RecurrentCell cell = f->a.cell;
  int64_t un = f->a.units, dirs = f->a.bidirectional ? 2 : 1, l = bc->rg.l, d = bc->rg.d;
  int64_t S = saved_slots(cell);
  Dim seq = f->shape.d[0];
  int t = bc->ta, tp = bc->tpa, sv = bc->sv, dc = bc->dc;
  LExpr *step = le_var(lp, bc->s);
#define LAST() le_sub(lp, le_dim(lp, seq), le_i64(lp, 1))
#define ROW(tl) le_add(lp, le_mul(lp, b, le_dim(lp, seq)), le_local(lp, tl))
#define SAVED(tl, slot) le_load(lp, sv, saved_at(lp, f, ROW(tl), l, d, (slot), u))
#define HAS_PREV() le_bin(lp, LO_LT, step, LAST())
#define L(x) le_local(lp, x)
#define MUL(a, b2) le_bin(lp, LO_MUL, (a), (b2))
#define SUB(a, b2) le_bin(lp, LO_SUB, (a), (b2))
#define ONE le_f32(lp, 1)
  /* the state before the first step: zero, or the carried one a stateful forward saved */
  int s0 = bc->lc->saved0[f->id];
#define INIT(which) (s0 >= 0 ? le_load(lp, s0, saved0_at(lp, f, b, l, d, (which), u)) : le_f32(lp, 0))
  /* bptt = K: the state entering steps K, 2K, ... is detached: nothing flows from step t to
   * step t-1 when t % K == 0 (the forward direction's times; sema rejects bptt for
   * bidirectional layers) */
  int64_t K = bc->rg.cut;
#define CUT(x) (K > 0 ? le_select(lp, le_bin(lp, LO_EQ, le_bin(lp, LO_MOD, L(t), le_i64(lp, K)), \
                                            le_i64(lp, 0)), le_f32(lp, 0), (x)) : (x))
  LExpr *dyv = le_load(lp, bc->dys, mad(lp, ROW(t), dirs * un, le_add(lp, le_i64(lp, d * un), u)));
  int dhv = ls_local(lp, ub, LT_F32, le_bin(lp, LO_ADD, dyv, le_load(lp, bc->dh, mad(lp, b, un, u))));
  LExpr *gd[4];
  LExpr *direct = le_f32(lp, 0);
  if (cell == CELL_RNN) {
    int h = ls_local(lp, ub, LT_F32, SAVED(t, 0));
    gd[0] = f->a.act == OP_relu
                ? le_select(lp, le_bin(lp, LO_GT, L(h), le_f32(lp, 0)), L(dhv), le_f32(lp, 0))
                : MUL(L(dhv), SUB(ONE, MUL(L(h), L(h))));
  } else if (cell == CELL_LSTM) {
    int ig = ls_local(lp, ub, LT_F32, SAVED(t, 0));
    int fg = ls_local(lp, ub, LT_F32, SAVED(t, 1));
    int gg = ls_local(lp, ub, LT_F32, SAVED(t, 2));
    int og = ls_local(lp, ub, LT_F32, SAVED(t, 3));
    int tc = ls_local(lp, ub, LT_F32, le_un(lp, LO_TANH, SAVED(t, 4)));
    int cp = ls_local(lp, ub, LT_F32, le_select(lp, HAS_PREV(), SAVED(tp, 4), INIT(1)));
    /* dc = dc_next + dh o (1 - tanh^2 c) */
    int dcv = ls_local(lp, ub, LT_F32,
                       le_fma(lp, MUL(L(dhv), L(og)), SUB(ONE, MUL(L(tc), L(tc))),
                              le_load(lp, dc, mad(lp, b, un, u))));
    gd[0] = MUL(MUL(L(dcv), L(gg)), MUL(L(ig), SUB(ONE, L(ig))));
    gd[1] = MUL(MUL(L(dcv), L(cp)), MUL(L(fg), SUB(ONE, L(fg))));
    gd[2] = MUL(MUL(L(dcv), L(ig)), SUB(ONE, MUL(L(gg), L(gg))));
    gd[3] = MUL(MUL(L(dhv), L(tc)), MUL(L(og), SUB(ONE, L(og))));
    ls_store(lp, ub, dc, mad(lp, b, un, u), CUT(MUL(L(dcv), L(fg))));
  } else {
    int r = ls_local(lp, ub, LT_F32, SAVED(t, 0));
    int z = ls_local(lp, ub, LT_F32, SAVED(t, 1));
    int nv = ls_local(lp, ub, LT_F32, SAVED(t, 2));
    int hn = ls_local(lp, ub, LT_F32, SAVED(t, 3));
    int hp = ls_local(lp, ub, LT_F32, le_select(lp, HAS_PREV(), SAVED(tp, S - 1), INIT(0)));
    /* h = (1 - z) n + z h_prev;  n = tanh(W_in x + b_in + r hn) */
    int dn = ls_local(lp, ub, LT_F32, MUL(MUL(L(dhv), SUB(ONE, L(z))), SUB(ONE, MUL(L(nv), L(nv)))));
    gd[0] = MUL(MUL(L(dn), L(hn)), MUL(L(r), SUB(ONE, L(r))));
    gd[1] = MUL(MUL(L(dhv), SUB(L(hp), L(nv))), MUL(L(z), SUB(ONE, L(z))));
    gd[2] = L(dn);
    gd[3] = MUL(L(dn), L(r));
    direct = MUL(L(dhv), L(z));
  }
  for (int64_t gi = 0; gi < dgates(cell); gi++)
    ls_store(lp, ub, bc->dgb, dg_at(lp, f, ROW(t), l, d, gi, u), gd[gi]);
  ls_store(lp, ub, bc->dh, mad(lp, b, un, u), direct);
#undef CUT
#undef INIT
#undef LAST
#undef ROW
#undef SAVED
#undef HAS_PREV
#undef L
#undef MUL
#undef SUB
#undef ONE
}

/* The time of step s (an expression of the steps' variable) and its previous time, clamped */
static LExpr *bptt_time(LoopProgram *lp, Dim seq, int64_t d, LExpr *s) {
  LExpr *last = le_sub(lp, le_dim(lp, seq), le_i64(lp, 1));
  return d ? s : le_sub(lp, last, s);
}
static LExpr *bptt_prev(LoopProgram *lp, Dim seq, int64_t d, LExpr *s) {
  if (d) return le_bin(lp, LO_MIN, le_add(lp, s, le_i64(lp, 1)), le_sub(lp, le_dim(lp, seq), le_i64(lp, 1)));
  return le_bin(lp, LO_MAX, le_sub(lp, bptt_time(lp, seq, d, s), le_i64(lp, 1)), le_i64(lp, 0));
}

static void bptt_pass(LowerCtx *lc, LStmt *body, const Node *f, int sv, int dgb, int dys,
                      int dh, int dc, int whh, int64_t l, int64_t d) {
  LoopProgram *lp = lc->lp;
  int64_t un = f->a.units, gn = gates(f->a.cell);
  Dim seq = f->shape.d[0];
  BpttCtx bc = {.rg = {.f = f, .l = l, .d = d, .kl = gemm_pitch(lp, un), .cols = un, .hh = 1, .dst = dh,
                       .cut = lc->g->train.bptt},
                .lc = lc, .sv = sv, .dgb = dgb, .dys = dys, .dh = dh, .dc = dc};

  int bz = lvar(lp, "b"), uz = lvar(lp, "u");
  LStmt *lbz = ls_for(lp, body, bz, le_i64(lp, 0), le_batch(lp));
  lbz->parallel = 1;
  LStmt *luz = ls_for(lp, ls_body(lbz), uz, le_i64(lp, 0), le_i64(lp, un));
  luz->vec = lp->vec_f32;
  ls_store(lp, ls_body(luz), dh, mad(lp, le_var(lp, bz), un, le_var(lp, uz)), le_f32(lp, 0));
  if (dc >= 0) ls_store(lp, ls_body(luz), dc, mad(lp, le_var(lp, bz), un, le_var(lp, uz)), le_f32(lp, 0));

  /* the steps with a B, then the last one */
  LExpr *last = le_bin(lp, LO_MAX, le_sub(lp, le_dim(lp, seq), le_i64(lp, 1)), le_i64(lp, 0));
  for (int part = 0; part < 2; part++) {
    int s = lvar(lp, "s");
    LStmt *ls = part ? ls_for(lp, body, s, last, le_dim(lp, seq)) : ls_for(lp, body, s, le_i64(lp, 0), last);
    ls->steps = 1;
    LStmt *sb = ls_body(ls);
    bc.s = s;
    bc.ta = ls_local(lp, sb, LT_I64, bptt_time(lp, seq, d, le_var(lp, s)));
    bc.tpa = ls_local(lp, sb, LT_I64, bptt_prev(lp, seq, d, le_var(lp, s)));
    int rb = lvar(lp, "b"), u = lvar(lp, "u");
    LStmt *lb = ls_for(lp, sb, rb, le_i64(lp, 0), le_batch(lp));
    lb->parallel = 1;
    LStmt *lu = ls_for(lp, ls_body(lb), u, le_i64(lp, 0), le_i64(lp, un));
    lu->vec = lp->vec_f32;
    bptt_cell(lp, ls_body(lu), &bc, le_var(lp, rb), le_var(lp, u));
    if (part) break;
    bc.rg.t = bc.ta;
    GemmSpec g = {.M = le_batch(lp), .N = le_i64(lp, un), .K = le_i64(lp, gn * un), .a = dgb,
                  .b = whh, .c = dh, .a_at = bptt_dg, .b_at = rg_w, .c_at = rg_c,
                  .init = rg_c_init, .epilogue = bptt_cut, .ctx = &bc};
    gemm_bcast(lp, sb, &g);
  }
}

/* Layers from the top down: each layer's reverse loops (both directions), then the gradient
 * of its input, which is the layer below's dY (two scratch sequences alternate). */
static void lower_recurrent_bptt(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Arena *ar = lp->arena;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t un = f->a.units, dirs = f->a.bidirectional ? 2 : 1, nl = f->a.layers;
  int sv = saved_of(lc, f);
  int dy = lower_value(lc, n->in[0]), dgb = lower_value(lc, n->id);
  /* every W_hh [G*U, U] at a row pitch without cache-set aliasing, packed at the start of the
   * call (a kernel of its own: before this one) */
  int64_t gn = gates(f->a.cell);
  int *whh = arena_alloc(ar, (size_t)(nl * dirs) * sizeof(int));
  for (int64_t i = 0; i < nl * dirs; i++)
    whh[i] = pack_weight(lc, arena_printf(ar, "%s.P", lc->g->params[f->first_param + i * 4 + 1].name),
                         lower_param(lc, f, (int)(i * 4 + 1)), gn * un, un);
  LStmt *body = lower_begin(lc, n);
  int dh = lower_scratch(lc, arena_printf(ar, "%s.dh", f->name), LT_F32, (SymCount){un, 0}, 1);
  int dc = -1;
  if (f->a.cell == CELL_LSTM)
    dc = lower_scratch(lc, arena_printf(ar, "%s.dc", f->name), LT_F32, (SymCount){un, 0}, 1);
  int dys[2] = {-1, -1};
  for (int i = 0; i < 2 && i < nl - 1; i++)
    dys[i] = lower_scratch(lc, arena_printf(ar, "%s.dlayer%d", f->name, i), LT_F32,
                           seq_elems(f->shape.d[0], dirs * un), 1);
  for (int64_t l = nl - 1; l >= 0; l--) {
    int src = l == nl - 1 ? dy : dys[l % 2];
    for (int64_t d = 0; d < dirs; d++) bptt_pass(lc, body, f, sv, dgb, src, dh, dc, whh[l * dirs + d], l, d);
    if (l > 0) input_grad(lc, body, f, dgb, l, dys[(l - 1) % 2], dirs * un);
  }
}

static void lower_recurrent_dx(LowerCtx *lc, const Node *n) {
  const Node *f = &lc->g->nodes[n->fwd];
  int dgb = lower_value(lc, n->in[0]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  input_grad(lc, body, f, dgb, 0, dx, in_shape(lc->g, f, 0).d[1].n);
}

/* dW's B operands (element (n = k, r)): the layer input X_l[r, k] (x, or the lower layer's
 * saved h of direction pd) */
static LExpr *dw_input(LoopProgram *lp, const void *c, LExpr *br, LExpr *n, LExpr *r) {
  (void)br;
  const RecGrad *g = c;
  const Node *f = g->f;
  if (g->l == 0) return mad(lp, r, g->kl, n);
  return saved_at(lp, f, r, g->l - 1, g->pd, saved_slots(f->a.cell) - 1, n);
}
/* the steps with a previous one: k < seq - 1 is t = k + 1 (forward; previous row -1) or t = k
 * (backward; previous row +1) */
static LExpr *dw_row(LoopProgram *lp, const RecGrad *g, LExpr *b, LExpr *k, int prev) {
  LExpr *row = le_add(lp, le_mul(lp, b, le_dim(lp, g->f->shape.d[0])), k);
  if (g->t) return prev ? row : le_add(lp, row, le_i64(lp, 1));
  return prev ? le_add(lp, row, le_i64(lp, 1)) : row;
}
static LExpr *dw_dg_step(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *k) {
  return rg_dg_row(lp, c, NULL, dw_row(lp, c, br, k, 0), m);
}
static LExpr *dw_hprev(LoopProgram *lp, const void *c, LExpr *br, LExpr *n, LExpr *k) {
  const RecGrad *g = c;
  return saved_at(lp, g->f, dw_row(lp, g, br, k, 1), g->l, g->d, saved_slots(g->f->a.cell) - 1, n);
}
/* the first step (t = 0) of batch row k, and its carried h_{-1} */
static LExpr *dw_dg_first(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *k) {
  const RecGrad *g = c;
  return rg_dg_row(lp, c, br, le_mul(lp, k, le_dim(lp, g->f->shape.d[0])), m);
}
static LExpr *dw_h0(LoopProgram *lp, const void *c, LExpr *br, LExpr *n, LExpr *k) {
  (void)br;
  const RecGrad *g = c;
  return saved0_at(lp, g->f, k, g->l, g->d, 0, n);
}

/* Parameter wrt = (l * D + d) * 4 + which of the forward node:
 *   weight_ih [G*U, K_l]: dW[g*U + j, k] = sum_r dG[r, l, d, g, j] X_l[r, k]  (X_0 = x, else
 *                         layer l-1's saved h, direction by direction)
 *   weight_hh [G*U, U]:   dW[g*U + j, k] = sum over (b, t) with a previous step of
 *                         dG_hh[b, t, l, d, g, j] h_prev[b, k]
 *   bias_ih, bias_hh:     db[g*U + j] = sum_r dG[r, l, d, slot, j] (bias_hh's copied from
 *                         bias_ih's for the gates whose two slots are one)
 * Each sum runs over the rows in one fixed order; the j loops of the weights run on threads. */
static void lower_recurrent_dw(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  RecurrentCell cell = f->a.cell;
  int64_t un = f->a.units, gn = gates(cell), dirs = f->a.bidirectional ? 2 : 1;
  int64_t l = n->wrt / (4 * dirs), d = (n->wrt / 4) % dirs, which = n->wrt % 4;
  int64_t K = in_shape(lc->g, f, 0).d[1].n;
  Dim seq = f->shape.d[0];
  int sv = saved_of(lc, f);
  int dgb = lower_value(lc, n->in[0]), x = lower_value(lc, n->in[1]), dw = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  if (which >= 2) {
    /* biases: db[g*U + j] = 0, then += dG[r, slot(g), j] row after row (each element summed
     * over the rows in order), so dG is read as it lies, a row's gates one contiguous run after
     * another (the prefetcher streams them; blocks of units on threads would read a few lines
     * of every 4 KiB row, each a miss); blocks of JB units when U is larger */
    int64_t JB = 1024, nblk = (un + JB - 1) / JB;
    /* bias_hh's gradient for a gate whose hh slot is its ih slot (every gate of an rnn or an
     * lstm, r and z of a gru) is bias_ih's, summed over the same rows in the same order: a
     * copy of it when that one was computed before (not frozen), not another pass over dG */
    int same = -1, summed = 0;
    if (which == 3)
      for (int i = 0; i < n->id; i++) {
        const Node *o = &lc->g->nodes[i];
        if (o->op == OP_recurrent_dw && o->fwd == n->fwd && o->wrt == n->wrt - 1 && lc->value_buf[i] >= 0)
          same = lc->value_buf[i];
      }
    for (int64_t gi = 0; gi < gn; gi++) summed |= !(same >= 0 && hh_slot(cell, gi) == ih_slot(gi));
    int jb = lvar(lp, "jb"), r = lvar(lp, "r");
    LStmt *ljb = ls_for(lp, body, jb, le_i64(lp, 0), le_i64(lp, nblk));
    ljb->parallel = 1;
    LExpr *jlo = le_mul(lp, le_var(lp, jb), le_i64(lp, JB));
    LExpr *jhi = le_bin(lp, LO_MIN, le_i64(lp, un), le_add(lp, le_mul(lp, le_var(lp, jb), le_i64(lp, JB)), le_i64(lp, JB)));
    for (int pass = 0; pass < 1 + summed; pass++) { /* 0: zero (or copy); 1: the rows */
      LStmt *rb = ls_body(ljb);
      if (pass) rb = ls_body(ls_for(lp, rb, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_dim(lp, seq))));
      for (int64_t gi = 0; gi < gn; gi++) {
        int64_t slot = which == 3 ? hh_slot(cell, gi) : ih_slot(gi);
        int copy = same >= 0 && slot == ih_slot(gi);
        if (pass && copy) continue;
        int j = lvar(lp, "j");
        LStmt *lj = ls_for(lp, rb, j, jlo, jhi);
        lj->vec = lp->vec_f32;
        LExpr *at = le_add(lp, le_i64(lp, gi * un), le_var(lp, j));
        if (pass)
          ls_accumulate(lp, ls_body(lj), dw, at, le_load(lp, dgb, dg_at(lp, f, le_var(lp, r), l, d, slot, le_var(lp, j))));
        else
          ls_store(lp, ls_body(lj), dw, at, copy ? le_load(lp, same, at) : le_f32(lp, 0));
      }
    }
    return;
  }
  /* weights: gemm_bcast over the input features k, dG broadcast, rows m = g*U + j of dW:
   *   weight_ih  dW[m, pd*width + k] = sum_r dG[r, l, d, m] X_l[r, pd*width + k], one product per
   *              part pd (the directions of a lower bidirectional layer's output)
   *   weight_hh  dW[m, k] = sum_b sum_t dG_hh[b*seq + t, m] h[b*seq + t -+ 1, k] over the steps
   *              with a previous one (a batch-reduce over b), plus the carried h_{-1} of a
   *              stateful forward at the first step */
  int64_t parts = which == 0 && l > 0 ? dirs : 1;
  int64_t width = which == 0 && l == 0 ? K : un;
  for (int64_t pd = 0; pd < parts; pd++) {
    RecGrad rg = {.f = f, .l = l, .d = d, .pd = pd, .kl = width, .cols = parts * width,
                  .coff = pd * width, .hh = which == 1, .x = which == 0 && l == 0 ? x : sv, .t = d == 0};
    GemmSpec g = {.M = le_i64(lp, gn * un), .N = le_i64(lp, width), .a = dgb, .b = rg.x, .c = dw,
                  .a_at = rg_dg_col, .b_at = dw_input, .c_at = rg_c, .ctx = &rg};
    if (which == 0) {
      g.K = le_mul(lp, le_batch(lp), le_dim(lp, seq));
    } else {
      g.BR = le_batch(lp);
      g.K = le_sub(lp, le_dim(lp, seq), le_i64(lp, 1));
      g.a_at = dw_dg_step;
      g.b_at = dw_hprev;
    }
    /* A's rows (dG) and B's (the saved record or x) are steps of records a multiple of 1 KiB
     * long: copy each slice into rows of a pitch without cache-set aliasing first */
    g.pack_a = g.pack_b = 1;
    g.apack = lower_scratch(lc, arena_printf(lp->arena, "%s.ap%lld", n->name, (long long)pd), LT_F32,
                            gemm_bcast_pack_a_size(lp, &g, (SymCount){0, 1}), 0);
    g.bpack = lower_scratch(lc, arena_printf(lp->arena, "%s.bp%lld", n->name, (long long)pd), LT_F32,
                            gemm_bcast_pack_size(lp, &g, (SymCount){0, 1}), 0);
    gemm_bcast(lp, body, &g);
    if (which == 1 && lc->saved0[f->id] >= 0) {
      rg.x = lc->saved0[f->id];
      GemmSpec g0 = {.M = le_i64(lp, gn * un), .N = le_i64(lp, width), .K = le_batch(lp), .a = dgb,
                     .b = rg.x, .c = dw, .a_at = dw_dg_first, .b_at = dw_h0, .c_at = rg_c,
                     .accumulate = 1, .ctx = &rg};
      gemm_bcast(lp, body, &g0);
    }
  }
}

OP_INTERNAL(recurrent_bptt, lower_recurrent_bptt);
OP_INTERNAL(recurrent_dx, lower_recurrent_dx);
OP_INTERNAL(recurrent_dw, lower_recurrent_dw);

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
    .grad = grad_recurrent,
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
    .grad = grad_recurrent,
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
    .grad = grad_recurrent,
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
