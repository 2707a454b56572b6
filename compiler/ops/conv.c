/* conv.c - conv2d and conv1d (PyTorch Conv2d / Conv1d, dilation 1, groups 1).
 *
 *   conv2d(x, filters, kernel, stride=1, pad=0, bias=true)
 *     x [C, H, W] -> [F, (H - k + 2p)/s + 1, (W - k + 2p)/s + 1]   (floored; warns)
 *     weight [F, C, k, k] (He uniform, fan_in C*k*k), bias [F] (zero)
 *   conv1d(x, filters, kernel, stride=1, pad=0, bias=true)
 *     x [C, L] -> [F, (L - k + 2p)/s + 1];  weight [F, C, k], bias [F]
 *
 * Attrs: units = F, kernel = k, stride, pad, bias.  The spatial axes must be
 * concrete: a window over the symbolic length is an error (window_out).
 */
#include <stddef.h>

#include "lower.h"
#include "ops.h"

static const ArgSpec conv_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
    {.name = "filters", .type = ARG_INT, .required = 1, .offset = offsetof(Attrs, units),
     .min = 1, .max = 1e18},
    {.name = "kernel", .type = ARG_INT, .required = 1, .offset = offsetof(Attrs, kernel),
     .min = 1, .max = 1e18},
    {.name = "stride", .type = ARG_INT, .dflt = 1, .offset = offsetof(Attrs, stride), .min = 1,
     .max = 1e18},
    {.name = "pad", .type = ARG_INT, .dflt = 0, .offset = offsetof(Attrs, pad), .min = 0},
    {.name = "bias", .type = ARG_BOOL, .dflt = 1, .offset = offsetof(Attrs, bias)},
};

/* The weight's element count must fit; diagnoses when it does not. */
static int check_weight(Graph *g, const Node *n, int64_t c, int64_t spatial) {
  int64_t w;
  if (checked_mul(n->a.units, c, &w) || checked_mul(w, spatial, &w)) {
    diag_error(n->loc, "%s: the weight [%lld, %lld, ...] is too large", op_info(n->op)->name,
               (long long)n->a.units, (long long)c);
    return -1;
  }
  return 0;
}

static int conv2d_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0) || op_require_rank(g, n, 0, 3, "[C, H, W]")) return -1;
  Shape in = in_shape(g, n, 0);
  if (in.d[0].sym) {
    diag_error(n->loc, "conv2d needs a fixed number of channels, not the symbolic '%s'", g->sym);
    op_note_value(g, n->in[0]);
    return -1;
  }
  Shape out = {.rank = 3};
  if (window_out2d(g, n, in.d[1], in.d[2], n->a.kernel, n->a.stride, n->a.pad, &out.d[1],
                   &out.d[2]))
    return -1;
  int64_t kk;
  if (checked_mul(n->a.kernel, n->a.kernel, &kk)) {
    diag_error(n->loc, "conv2d: kernel %lld is too large", (long long)n->a.kernel);
    return -1;
  }
  if (check_weight(g, n, in.d[0].n, kk)) return -1;
  out.d[0].n = n->a.units;
  return op_set_shape(g, n, out);
}

static int conv1d_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0) || op_require_rank(g, n, 0, 2, "[C, L]")) return -1;
  Shape in = in_shape(g, n, 0);
  if (in.d[0].sym) {
    diag_error(n->loc, "conv1d needs a fixed number of channels, not the symbolic '%s'", g->sym);
    diag_note(g->nodes[n->in[0]].loc,
              "conv1d reads [C, L] (channels first, as PyTorch); a sequence [seq, K] has time first");
    return -1;
  }
  Shape out = {.rank = 2};
  if (window_out(g, n, "length", in.d[1], n->a.kernel, n->a.stride, n->a.pad, &out.d[1]))
    return -1;
  if (check_weight(g, n, in.d[0].n, n->a.kernel)) return -1;
  out.d[0].n = n->a.units;
  return op_set_shape(g, n, out);
}

static void conv_params(Graph *g, Node *n) {
  Shape in = in_shape(g, n, 0);
  int64_t f = n->a.units, c = in.d[0].n, k = n->a.kernel;
  int64_t window = n->op == OP_conv2d ? k * k : k;
  Shape w = {.rank = n->op == OP_conv2d ? 4 : 3};
  w.d[0].n = f;
  w.d[1].n = c;
  w.d[2].n = k;
  w.d[3].n = k;
  graph_add_param(g, n, "weight", w, INIT_HE_UNIFORM, c * window, f * window);
  if (n->a.bias) {
    Shape b = {.rank = 1};
    b.d[0].n = f;
    graph_add_param(g, n, "bias", b, INIT_ZERO, c * window, f * window);
  }
}

/* 2*C*k^d multiply-adds per output element, plus one add per output for the bias. */
static SymCount conv_flops(const Graph *g, const Node *n) {
  Shape in = in_shape(g, n, 0);
  int64_t k = n->a.kernel;
  SymCount outs = shape_numel(n->shape);
  SymCount per = symcount_const(2);
  per = symcount_scale(per, in.d[0].n);
  per = symcount_scale(per, k);
  if (n->op == OP_conv2d) per = symcount_scale(per, k);
  SymCount total = symcount_scale(outs, per.fixed);
  if (n->a.bias) total = symcount_add(total, outs);
  return total;
}

/* conv1d lowering.  C = channels, L = length, F = filters, K = kernel, OL = output length.
 *   x [C, L] -> (pad > 0: a zero-padded scratch copy xp [C, L + 2*pad]) -> out [F, OL]
 *   for b, for a block of NB filters (4, then 1 for the rest), for ol (vectorized):
 *     acc_i = bias[f + i] (or 0);  for c, kk: acc_i += w[f + i, c, kk] * x[c, ol*stride + kk]
 * so one load of x feeds NB accumulators (the weights are broadcasts); the x loads are
 * contiguous when stride = 1, gathers otherwise. */
enum { CONV1D_BLOCK = 4 };

/* Filters fvar * mult + i, i < nb, of batch row b. */
static void conv1d_filters(LowerCtx *lc, const Node *n, LStmt *blk, int b, int fvar,
                           int64_t mult, int nb, int src, int64_t lp_len) {
  LoopProgram *lp = lc->lp;
  int64_t ch = in_shape(lc->g, n, 0).d[0].n, k = n->a.kernel, nf = n->a.units;
  int64_t ol_n = n->shape.d[1].n;
  int w = lower_param(lc, n, 0), bias = n->a.bias ? lower_param(lc, n, 1) : -1;
  int ol = lvar(lp, "ol"), c = lvar(lp, "c"), kk = lvar(lp, "kk");
  LStmt *lo = ls_for(lp, blk, ol, le_i64(lp, 0), le_i64(lp, ol_n));
  lo->vec = lp->vec_f32;
  LStmt *bo = ls_body(lo);
  int acc[CONV1D_BLOCK];
  for (int i = 0; i < nb; i++) {
    LExpr *f = le_add(lp, le_mul(lp, le_var(lp, fvar), le_i64(lp, mult)), le_i64(lp, i));
    acc[i] = ls_local(lp, bo, LT_F32, bias >= 0 ? le_load(lp, bias, f) : le_f32(lp, 0));
  }
  LStmt *lc_ = ls_for(lp, bo, c, le_i64(lp, 0), le_i64(lp, ch));
  LStmt *lk = ls_for(lp, ls_body(lc_), kk, le_i64(lp, 0), le_i64(lp, k));
  LExpr *xrow = le_add(lp, le_mul(lp, le_var(lp, b), le_i64(lp, ch)), le_var(lp, c));
  LExpr *xi = le_add(lp, le_mul(lp, xrow, le_i64(lp, lp_len)),
                     le_add(lp, le_mul(lp, le_var(lp, ol), le_i64(lp, n->a.stride)),
                            le_var(lp, kk)));
  int xv = ls_local(lp, ls_body(lk), LT_F32, le_load(lp, src, xi));
  for (int i = 0; i < nb; i++) {
    LExpr *f = le_add(lp, le_mul(lp, le_var(lp, fvar), le_i64(lp, mult)), le_i64(lp, i));
    LExpr *wi = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, f, le_i64(lp, ch)), le_var(lp, c)),
                                  le_i64(lp, k)),
                       le_var(lp, kk));
    ls_set(lp, ls_body(lk), acc[i], le_fma(lp, le_load(lp, w, wi), le_local(lp, xv),
                                            le_local(lp, acc[i])));
  }
  for (int i = 0; i < nb; i++) {
    LExpr *f = le_add(lp, le_mul(lp, le_var(lp, fvar), le_i64(lp, mult)), le_i64(lp, i));
    LExpr *oi = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, b), le_i64(lp, nf)), f),
                                  le_i64(lp, ol_n)),
                       le_var(lp, ol));
    ls_store(lp, bo, lower_value(lc, n->id), oi, le_local(lp, acc[i]));
  }
}

static void lower_conv1d(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  int64_t ch = in.d[0].n, len = in.d[1].n, pad = n->a.pad, nf = n->a.units;
  LStmt *body = lower_begin(lc, n);
  int src = lower_value(lc, n->in[0]);
  int64_t lp_len = len;
  if (pad > 0) {
    lp_len = len + 2 * pad;
    int xp = lower_scratch(lc, arena_printf(lp->arena, "%s.pad", n->name), LT_F32,
                           (SymCount){ch * lp_len, 0}, 1);
    int r = lvar(lp, "r"), i = lvar(lp, "i"), i2 = lvar(lp, "i");
    LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, ch)));
    LStmt *lz = ls_for(lp, ls_body(lr), i, le_i64(lp, 0), le_i64(lp, lp_len));
    lz->vec = lp->vec_f32;
    ls_store(lp, ls_body(lz), xp,
             le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, lp_len)), le_var(lp, i)),
             le_f32(lp, 0));
    LStmt *lcp = ls_for(lp, ls_body(lr), i2, le_i64(lp, 0), le_i64(lp, len));
    lcp->vec = lp->vec_f32;
    ls_store(lp, ls_body(lcp), xp,
             le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, lp_len)),
                    le_add(lp, le_var(lp, i2), le_i64(lp, pad))),
             le_load(lp, src, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, len)),
                                     le_var(lp, i2))));
    src = xp;
  }
  int b = lvar(lp, "b");
  LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
  lb->parallel = 1; /* batch rows are independent */
  int64_t blocks = nf / CONV1D_BLOCK;
  if (blocks > 0) {
    int fb = lvar(lp, "fb");
    LStmt *lf = ls_for(lp, ls_body(lb), fb, le_i64(lp, 0), le_i64(lp, blocks));
    conv1d_filters(lc, n, ls_body(lf), b, fb, CONV1D_BLOCK, CONV1D_BLOCK, src, lp_len);
  }
  if (blocks * CONV1D_BLOCK < nf) {
    int f = lvar(lp, "f");
    LStmt *lf = ls_for(lp, ls_body(lb), f, le_i64(lp, blocks * CONV1D_BLOCK), le_i64(lp, nf));
    conv1d_filters(lc, n, ls_body(lf), b, f, 1, 1, src, lp_len);
  }
}

/* conv2d lowering.  B = batch, C = channels, H x W input, F = filters, k = kernel,
 * s = stride, p = pad, OH x OW output, Hp x Wp = the padded input (H + 2p, W + 2p),
 * V = the target's f32 vector width, FV = ceil(F / V) filter vectors.
 *   x [B, C, H, W] -> (p > 0: a zero-padded scratch copy xp [B, C, Hp, Wp]) -> y [B, F, OH, OW]
 * Two schedules, both general (any k, s, p, C, F):
 *   F >= V: vectorized over filters.  A prepare kernel packs the weight as
 *     wp [FV, C, k, k, V] (filters past F are zero), so each filter vector's weights are one
 *     contiguous strip.  For each filter vector, output row and block of up to CONV2D_OX
 *     output columns, that many accumulators take one weight vector per (c, ky, kx) times a
 *     broadcast input value, into t [B, OH, OW, FV*V]; a last loop writes
 *     y = epilogue(t + bias) in NCHW.  No gathers in the main loop, whatever the stride.
 *   F < V: vectorized over output columns, one accumulator per output, weights broadcast;
 *     the input loads are contiguous when s = 1, gathers otherwise.
 */
enum { CONV2D_OX = 8, CONV2D_CCHUNK = 8 };

static LExpr *ix4(LoopProgram *lp, LExpr *a, LExpr *b, LExpr *c, LExpr *d, int64_t d1, int64_t d2,
                  int64_t d3) {
  LExpr *dims[4] = {NULL, le_i64(lp, d1), le_i64(lp, d2), le_i64(lp, d3)};
  LExpr *idx[4] = {a, b, c, d};
  return le_index(lp, 4, idx, dims);
}

/* xp = x zero-padded by p on both spatial axes; returns xp (or x when p == 0). */
static int conv2d_pad(LowerCtx *lc, LStmt *body, const Node *n, int src, int64_t C, int64_t H,
                      int64_t W, int64_t p) {
  LoopProgram *lp = lc->lp;
  if (p == 0) return src;
  int64_t Hp = H + 2 * p, Wp = W + 2 * p;
  int xp = lower_scratch(lc, arena_printf(lp->arena, "%s.pad", n->name), LT_F32,
                         (SymCount){C * Hp * Wp, 0}, 1);
  int i = lvar(lp, "i");
  LStmt *lz = ls_for(lp, body, i, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, C * Hp * Wp)));
  lz->vec = lp->vec_f32;
  ls_store(lp, ls_body(lz), xp, le_var(lp, i), le_f32(lp, 0));
  int r = lvar(lp, "bc"), y = lvar(lp, "y"), x = lvar(lp, "x");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, C)));
  LStmt *ly = ls_for(lp, ls_body(lr), y, le_i64(lp, 0), le_i64(lp, H));
  LStmt *lx = ls_for(lp, ls_body(ly), x, le_i64(lp, 0), le_i64(lp, W));
  lx->vec = lp->vec_f32;
  LExpr *dst = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, Hp)),
                                            le_add(lp, le_var(lp, y), le_i64(lp, p))),
                                 le_i64(lp, Wp)),
                      le_add(lp, le_var(lp, x), le_i64(lp, p)));
  LExpr *from = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, H)), le_var(lp, y)),
                                  le_i64(lp, W)),
                       le_var(lp, x));
  ls_store(lp, ls_body(lx), xp, dst, le_load(lp, src, from));
  return xp;
}

/* One block of nox output columns from ox0 (an expression), for filter vector fv, lane fl
 * (the vectorized variable), row oy, batch b: accumulate into t [B, OH, OW, FV*V]. */
static void conv2d_block(LowerCtx *lc, LStmt *blk, const Node *n, int xp, int wp, int t, int b,
                         int fv, int fl, int oy, LExpr *ox0, int nox, int64_t C, int64_t Hp,
                         int64_t Wp, int64_t FP) {
  LoopProgram *lp = lc->lp;
  int64_t k = n->a.kernel, s = n->a.stride, V = lp->vec_f32;
  int64_t OH = n->shape.d[1].n, OW = n->shape.d[2].n;
  int acc[CONV2D_OX], part[CONV2D_OX];
  for (int j = 0; j < nox; j++) acc[j] = ls_local(lp, blk, LT_F32, le_f32(lp, 0));
  /* channels in chunks of CONV2D_CCHUNK, each summed apart and then added (rounding error) */
  int cc = lvar(lp, "cc"), c = lvar(lp, "c"), ky = lvar(lp, "ky"), kx = lvar(lp, "kx");
  LStmt *lch = ls_for(lp, blk, cc, le_i64(lp, 0), le_i64(lp, (C + CONV2D_CCHUNK - 1) / CONV2D_CCHUNK));
  LStmt *chb = ls_body(lch);
  for (int j = 0; j < nox; j++) part[j] = ls_local(lp, chb, LT_F32, le_f32(lp, 0));
  LExpr *c0 = le_mul(lp, le_var(lp, cc), le_i64(lp, CONV2D_CCHUNK));
  LStmt *lcc = ls_for(lp, chb, c, c0, le_bin(lp, LO_MIN, le_i64(lp, C), le_add(lp, c0, le_i64(lp, CONV2D_CCHUNK))));
  LStmt *lky = ls_for(lp, ls_body(lcc), ky, le_i64(lp, 0), le_i64(lp, k));
  LStmt *lkx = ls_for(lp, ls_body(lky), kx, le_i64(lp, 0), le_i64(lp, k));
  lkx->unroll = k <= 7; /* the kx steps share the broadcast input values */
  LStmt *kb = ls_body(lkx);
  /* wp[((((fv * C + c) * k + ky) * k + kx) * V + fl] */
  LExpr *wi = le_add(lp, le_mul(lp, ix4(lp, le_var(lp, fv), le_var(lp, c), le_var(lp, ky), le_var(lp, kx), C, k, k),
                                le_i64(lp, V)),
                     le_var(lp, fl));
  int wv = ls_local(lp, kb, LT_F32, le_load(lp, wp, wi));
  LExpr *iy = le_add(lp, le_mul(lp, le_var(lp, oy), le_i64(lp, s)), le_var(lp, ky));
  for (int j = 0; j < nox; j++) {
    LExpr *ix = le_add(lp, le_mul(lp, le_add(lp, ox0, le_i64(lp, j)), le_i64(lp, s)), le_var(lp, kx));
    LExpr *xv = le_load(lp, xp, ix4(lp, le_var(lp, b), le_var(lp, c), iy, ix, C, Hp, Wp));
    ls_set(lp, kb, part[j], le_fma(lp, xv, le_local(lp, wv), le_local(lp, part[j])));
  }
  for (int j = 0; j < nox; j++)
    ls_set(lp, chb, acc[j], le_bin(lp, LO_ADD, le_local(lp, acc[j]), le_local(lp, part[j])));
  LExpr *f = le_add(lp, le_mul(lp, le_var(lp, fv), le_i64(lp, V)), le_var(lp, fl));
  for (int j = 0; j < nox; j++)
    ls_store(lp, blk, t, ix4(lp, le_var(lp, b), le_var(lp, oy), le_add(lp, ox0, le_i64(lp, j)), f, OH, OW, FP),
             le_local(lp, acc[j]));
}

static void lower_conv2d(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  int64_t C = in.d[0].n, H = in.d[1].n, W = in.d[2].n;
  int64_t F = n->a.units, k = n->a.kernel, s = n->a.stride, p = n->a.pad;
  int64_t OH = n->shape.d[1].n, OW = n->shape.d[2].n, Hp = H + 2 * p, Wp = W + 2 * p;
  int x = lower_value(lc, n->in[0]), y = lower_value(lc, n->id);
  int w = lower_param(lc, n, 0), bias = n->a.bias ? lower_param(lc, n, 1) : -1;
  int64_t V = lp->vec_f32;

  if (F >= V) {
    int64_t FV = (F + V - 1) / V, FP = FV * V;
    LStmt *prep;
    int wp = lower_packed(lc, arena_printf(lp->arena, "%s.wp", n->name), FP * C * k * k, &prep);
    {
      /* wp[fv, c, ky, kx, fl] = f < F ? w[f, c, ky, kx] : 0, f = fv * V + fl */
      int fv = lvar(lp, "fv"), c = lvar(lp, "c"), ky = lvar(lp, "ky"), kx = lvar(lp, "kx"),
          fl = lvar(lp, "fl");
      LStmt *z = ls_for(lp, prep, fv, le_i64(lp, 0), le_i64(lp, FP * C * k * k));
      z->vec = lp->vec_f32;
      ls_store(lp, ls_body(z), wp, le_var(lp, fv), le_f32(lp, 0));
      int fv2 = lvar(lp, "fv");
      LStmt *l0 = ls_for(lp, prep, fv2, le_i64(lp, 0), le_i64(lp, FV));
      LStmt *l1 = ls_for(lp, ls_body(l0), c, le_i64(lp, 0), le_i64(lp, C));
      LStmt *l2 = ls_for(lp, ls_body(l1), ky, le_i64(lp, 0), le_i64(lp, k));
      LStmt *l3 = ls_for(lp, ls_body(l2), kx, le_i64(lp, 0), le_i64(lp, k));
      LExpr *f0 = le_mul(lp, le_var(lp, fv2), le_i64(lp, V));
      LStmt *l4 = ls_for(lp, ls_body(l3), fl, le_i64(lp, 0),
                         le_bin(lp, LO_MIN, le_i64(lp, V), le_sub(lp, le_i64(lp, F), f0)));
      LExpr *f = le_add(lp, f0, le_var(lp, fl));
      ls_store(lp, ls_body(l4), wp,
               le_add(lp, le_mul(lp, ix4(lp, le_var(lp, fv2), le_var(lp, c), le_var(lp, ky), le_var(lp, kx), C, k, k),
                                 le_i64(lp, V)),
                      le_var(lp, fl)),
               le_load(lp, w, ix4(lp, f, le_var(lp, c), le_var(lp, ky), le_var(lp, kx), C, k, k)));
    }
    LStmt *body = lower_begin(lc, n);
    int xp = conv2d_pad(lc, body, n, x, C, H, W, p);
    int t = lower_scratch(lc, arena_printf(lp->arena, "%s.t", n->name), LT_F32,
                          (SymCount){OH * OW * FP, 0}, 1);
    int b = lvar(lp, "b"), fv = lvar(lp, "fv"), oy = lvar(lp, "oy"), fl = lvar(lp, "fl");
    LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
    LStmt *lfv = ls_for(lp, ls_body(lb), fv, le_i64(lp, 0), le_i64(lp, FV));
    lfv->parallel = 1;
    LStmt *lfl = ls_for(lp, ls_body(lfv), fl, le_i64(lp, 0), le_i64(lp, V));
    lfl->vec = (int)V;
    LStmt *loy = ls_for(lp, ls_body(lfl), oy, le_i64(lp, 0), le_i64(lp, OH));
    int64_t nblk = OW / CONV2D_OX, rest = OW - nblk * CONV2D_OX;
    if (nblk > 0) {
      int oxb = lvar(lp, "oxb");
      LStmt *lo = ls_for(lp, ls_body(loy), oxb, le_i64(lp, 0), le_i64(lp, nblk));
      conv2d_block(lc, ls_body(lo), n, xp, wp, t, b, fv, fl, oy,
                   le_mul(lp, le_var(lp, oxb), le_i64(lp, CONV2D_OX)), CONV2D_OX, C, Hp, Wp, FP);
    }
    if (rest > 0)
      conv2d_block(lc, ls_body(loy), n, xp, wp, t, b, fv, fl, oy, le_i64(lp, nblk * CONV2D_OX),
                   (int)rest, C, Hp, Wp, FP);
    /* y[b, f, q] = epilogue(t[b, q, f] + bias[f]), q = oy * OW + ox: tiled by V pixels so
     * the V rows of t that a gather reads stay in L1 for every f */
    int64_t OHW = OH * OW;
    int b2 = lvar(lp, "b"), qb = lvar(lp, "qb"), f2 = lvar(lp, "f"), ql = lvar(lp, "ql");
    LStmt *lb2 = ls_for(lp, body, b2, le_i64(lp, 0), le_batch(lp));
    LStmt *lqb = ls_for(lp, ls_body(lb2), qb, le_i64(lp, 0), le_i64(lp, (OHW + V - 1) / V));
    LStmt *lf2 = ls_for(lp, ls_body(lqb), f2, le_i64(lp, 0), le_i64(lp, F));
    LExpr *q0 = le_mul(lp, le_var(lp, qb), le_i64(lp, V));
    LStmt *lq = ls_for(lp, ls_body(lf2), ql, le_i64(lp, 0),
                       le_bin(lp, LO_MIN, le_i64(lp, V), le_sub(lp, le_i64(lp, OHW), q0)));
    lq->vec = (int)V;
    LExpr *q = le_add(lp, q0, le_var(lp, ql));
    LExpr *v = le_load(lp, t, le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, b2), le_i64(lp, OHW)), q),
                                              le_i64(lp, FP)),
                                     le_var(lp, f2)));
    if (bias >= 0) v = le_bin(lp, LO_ADD, v, le_load(lp, bias, le_var(lp, f2)));
    ls_store(lp, ls_body(lq), y,
             le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, b2), le_i64(lp, F)), le_var(lp, f2)),
                               le_i64(lp, OHW)),
                    q),
             lower_epilogue(lc, n, v));
    return;
  }

  /* few filters: vectorized over output columns */
  LStmt *body = lower_begin(lc, n);
  int xp = conv2d_pad(lc, body, n, x, C, H, W, p);
  int b = lvar(lp, "b"), f = lvar(lp, "f"), oy = lvar(lp, "oy"), ox = lvar(lp, "ox");
  int c = lvar(lp, "c"), ky = lvar(lp, "ky"), kx = lvar(lp, "kx");
  LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
  LStmt *lf = ls_for(lp, ls_body(lb), f, le_i64(lp, 0), le_i64(lp, F));
  LStmt *loy = ls_for(lp, ls_body(lf), oy, le_i64(lp, 0), le_i64(lp, OH));
  LStmt *lox = ls_for(lp, ls_body(loy), ox, le_i64(lp, 0), le_i64(lp, OW));
  lox->vec = lp->vec_f32;
  LStmt *ob = ls_body(lox);
  int acc = ls_local(lp, ob, LT_F32, bias >= 0 ? le_load(lp, bias, le_var(lp, f)) : le_f32(lp, 0));
  LStmt *lcc = ls_for(lp, ob, c, le_i64(lp, 0), le_i64(lp, C));
  LStmt *lky = ls_for(lp, ls_body(lcc), ky, le_i64(lp, 0), le_i64(lp, k));
  LStmt *lkx = ls_for(lp, ls_body(lky), kx, le_i64(lp, 0), le_i64(lp, k));
  LExpr *iy = le_add(lp, le_mul(lp, le_var(lp, oy), le_i64(lp, s)), le_var(lp, ky));
  LExpr *ix = le_add(lp, le_mul(lp, le_var(lp, ox), le_i64(lp, s)), le_var(lp, kx));
  ls_set(lp, ls_body(lkx), acc,
         le_fma(lp, le_load(lp, xp, ix4(lp, le_var(lp, b), le_var(lp, c), iy, ix, C, Hp, Wp)),
                le_load(lp, w, ix4(lp, le_var(lp, f), le_var(lp, c), le_var(lp, ky), le_var(lp, kx), C, k, k)),
                le_local(lp, acc)));
  ls_store(lp, ob, y, ix4(lp, le_var(lp, b), le_var(lp, f), le_var(lp, oy), le_var(lp, ox), F, OH, OW),
           lower_epilogue(lc, n, le_local(lp, acc)));
}

const OpInfo op_conv2d = {
    .kind = OP_conv2d,
    .name = "conv2d",
    .doc = "conv2d(x, filters, kernel, stride=1, pad=0, bias=true): [C,H,W] -> "
           "[F, (H-k+2p)/s+1, (W-k+2p)/s+1]",
    .args = conv_args,
    .nargs = sizeof conv_args / sizeof conv_args[0],
    .parametric = 1,
    .infer = conv2d_infer,
    .params = conv_params,
    .flops = conv_flops,
    .lower = lower_conv2d,
};

const OpInfo op_conv1d = {
    .kind = OP_conv1d,
    .name = "conv1d",
    .doc = "conv1d(x, filters, kernel, stride=1, pad=0, bias=true): [C,L] -> [F, (L-k+2p)/s+1]",
    .args = conv_args,
    .nargs = sizeof conv_args / sizeof conv_args[0],
    .parametric = 1,
    .infer = conv1d_infer,
    .params = conv_params,
    .flops = conv_flops,
    .lower = lower_conv1d,
};
