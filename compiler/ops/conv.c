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

#include "autodiff.h"
#include "gemm.h"
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
 * contiguous when stride = 1, otherwise one per lane, stride floats apart. */
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
 * V = the target's f32 vector width.
 *   x [B, C, H, W] -> (p > 0: a zero-padded scratch copy xp [B, C, Hp, Wp]) -> y [B, F, OH, OW]
 * Two schedules, both general (any k, s, p, C, F):
 *   F >= V: direct convolution with a register tile (oneDNN style).  The filters go in
 *     blocks of NF vectors (NF * V filters); FP = F rounded up to a whole number of blocks.
 *     The input goes through a channel-blocked, zero-padded copy xb [B, C/cb, Hp, Wp, cb]
 *     (cb divides C, at most 16; see lower_conv2d_tiled), and a prepare kernel packs the
 *     weight as wp [FP/V, C/cb, k, k, cb, V] (filters past F are zero), so the cb channels
 *     that the innermost loop walks are contiguous in both.  The output plane is cut into
 *     tiles of RY rows x RX columns (smaller tiles at the right and bottom edges); a tile
 *     keeps NF * RY * RX vector accumulators (locals, so registers), and each (ky, kx, c)
 *     step loads NF weight vectors and broadcasts RY * RX input values, all at constant
 *     offsets from one base, into NF * RY * RX FMAs.  The loop order is
 *       b, filter block, lane (vectorized), row block, channel chunk, tile row, tile column,
 *         { acc = 0; for ky, kx (nounroll), for the chunk's channel blocks, for cl < cb:
 *             acc += x * w;
 *           t = (first chunk ? 0 : t) + acc }
 *     so one chunk's packed weights (CC * k * k * NF * V floats) stay in L1 over a row
 *     block, and the row block's part of t (<= ~128 KiB) in L2 over all chunks.  Each
 *     chunk's sum is formed apart and then added to the running total in t
 *     [B, F/(NF*V), OH, OW, NF*V] (blocked by filter block, so a tile's part is contiguous;
 *     a two-level sum: less rounding error over long reductions).  The ky and kx loops are
 *     marked nounroll: unrolled, LLVM keeps the broadcasts that neighbouring taps share live
 *     and spills accumulators.  A last loop writes y = epilogue(t + bias) in NCHW.
 *     Where the filters are few (one vector: ResNet-style 16-filter layers, LeNet-5's c3), a
 *     step of one tap is load bound (RY RX broadcasts + a weight vector for RY RX FMAs, and
 *     Intel issues two loads a cycle); there a step takes G neighbouring kx taps at once
 *     (NF G weight vectors in registers), and each input column the G taps of a tile row
 *     read is broadcast once for all of them: RY ((RX - 1) s + G) broadcasts for NF RY RX G
 *     FMAs (conv2d_tile_taps).  The kx loop then runs over groups of G taps (the rest in a
 *     last group).
 *     NF, RY, RX, G are chosen per layer by a small cost model (FMA issue, loads, FMA
 *     latency, edge tiles, padded filters).  No gathers in the main loop, whatever the
 *     stride.
 *   1x1 kernel, stride 1, no padding (any F): a GEMM in NCHW, y[b] = W x[b] (lower_conv2d_flat,
 *     no copy of the input and none of the output).
 *   F < V: vectorized over output columns, straight into y (lower_conv2d_cols): a block of
 *     output rows keeps every filter's sums in registers, each input row it reads is loaded
 *     once a kernel column for all of them (a lane at a time, s floats apart, at a stride).
 *     At stride 1 the flat GEMM instead (lower_conv2d_flat) where it computes fewer positions
 *     (rows much narrower than a vector) or needs no copies (1x1 without padding).
 */
enum {
  CONV2D_TERMS = 72,   /* a channel chunk holds about this many (c, ky, kx) terms */
  CONV2D_MAXNF = 4,    /* filter vectors per tile, at most */
  CONV2D_MAXRY = 8,    /* tile rows, at most */
  CONV2D_MAXRX = 28,   /* tile columns, at most */
  CONV2D_MAXK = 31,    /* kx taps a step, at most (the registers hold fewer) */
  CONV2D_MAXCB = 16,   /* channels per block of the blocked input, at most */
  CONV2D_PAR_BLOCKS = 16, /* (filter block, row block) pairs a batch row, at least (rows allowing) */
};

static int64_t round_up(int64_t a, int64_t m) { return (a + m - 1) / m * m; }

static LExpr *ix4(LoopProgram *lp, LExpr *a, LExpr *b, LExpr *c, LExpr *d, int64_t d1, int64_t d2,
                  int64_t d3) {
  LExpr *dims[4] = {NULL, le_i64(lp, d1), le_i64(lp, d2), le_i64(lp, d3)};
  LExpr *idx[4] = {a, b, c, d};
  return le_index(lp, 4, idx, dims);
}


/* The register-tile schedule of one layer (F >= V). */
typedef struct Conv2dPlan {
  int64_t C, k, s;      /* channels, kernel, stride */
  int64_t Hp, Wp;       /* the (padded) input copy's rows and row pitch */
  int64_t OH, OW;       /* the output plane */
  int64_t V, FP;        /* vector width; filters padded to whole blocks */
  int64_t cb, CB;       /* channels per block of the blocked input, and blocks (C / cb) */
  int64_t CC;           /* channels per chunk (a multiple of cb) */
  int nf, ry, rx;       /* tile: filter vectors, rows, columns */
  int g;                /* kernel columns (kx taps) per step, 1..k */
} Conv2dPlan;

/* The output column j < w that input column p (counted from the first output's first tap)
 * feeds through kernel tap q at stride s (p = j s + q), or -1 (the column sweeps of the tiles
 * with several taps a step, forward and weight gradient). */
static int64_t tap_output(int64_t p, int64_t q, int64_t s, int64_t w) {
  return p >= q && (p - q) % s == 0 && (p - q) / s < w ? (p - q) / s : -1;
}

/* Whether input column p feeds any of w outputs through one of g neighbouring taps. */
static int tap_column_used(int64_t p, int64_t g, int64_t s, int64_t w) {
  for (int64_t q = 0; q < g; q++)
    if (tap_output(p, q, s, w) >= 0) return 1;
  return 0;
}

/* The input columns a tile row of w outputs reads for g neighbouring kx taps at stride s:
 * the offsets p = j s + q (j < w, q < g) that occur, each broadcast once a step. */
static int64_t conv2d_step_columns(int64_t w, int64_t g, int64_t s) {
  int64_t n = 0;
  for (int64_t p = 0; p < (w - 1) * s + g; p++) n += tap_column_used(p, g, s, w);
  return n;
}

/* Relative cost of one (c, ky, g kx taps) step of an nf x h x w tile, in eighth-cycles, from
 * its FMAs (2 a cycle), its loads (nf g weight vectors and the broadcasts of the h rows' input
 * columns) and the FMA latency (each accumulator takes g dependent FMAs a step, 4 cycles each:
 * fewer than 8 accumulators stall).
 *
 * AVX-512 (pl->V >= 16): the FMAs' time (4 each, at least the latency floor 32 g) plus 3 a
 * load, at least 6 a load (two loads a cycle: a step with as many loads as FMAs is load
 * bound).  The loads add to the FMAs' time rather than hide under it: on one thread of an
 * Intel Xeon (Sapphire Rapids) with everything in L1, 28 FMAs beside 16 loads a step (a
 * 2 x 1 x 14 one-tap tile) ran at 88-90% of the FMA peak and 72 beside 20 (2 x 1 x 12, three
 * taps) at 94%.  With the larger of the two alone as the cost, the one-tap tiles of VGG-16's
 * and AlexNet's layers estimated within 2% of the three-tap ones and were kept; the three-tap
 * tiles run those layers 1.03-1.13x faster.  The loads come on top of the latency floor too:
 * a small edge tile (AlexNet conv5's 2 x 1 x 3 beside 2 x 1 x 10 on its 13 columns: 18 FMAs
 * on 6 accumulators, 11 loads) waits for its chains and then for its loads; counted as the
 * larger of the floor and FMAs + loads, 10 + 3 tied with 9 + 4, which ran the layer 1.05x
 * (batch 1) and 1.06x (batch 8) faster (codegen/conv_edge_tile.nn).
 *
 * AVX2: the larger of the FMAs (4 each) and the loads (6 each, as an FMA's operand from memory
 * costs more than one from registers): with 16 registers the tiles are small and the additive
 * estimate chose tiles that ran 3-10% slower (VGG-16, AlexNet, Inception, LeNet-5,
 * resnet_mini at -march=x86-64-v3 on the same Xeon). */
static int64_t conv2d_step_cost(const Conv2dPlan *pl, int64_t nf, int64_t h, int64_t w, int64_t g) {
  int64_t fmas = nf * h * w * g, loads = nf * g + h * conv2d_step_columns(w, g, pl->s);
  int64_t c = 4 * fmas;
  if (c < 32 * g) c = 32 * g;        /* the latency floor */
  if (pl->V >= 16) c += 3 * loads;   /* AVX-512: the loads on top */
  if (c < 6 * loads) c = 6 * loads;
  return c + 4; /* + loop and address overhead */
}

/* The cost of one tile's (c, ky) row of taps: k / g steps of g taps and one of the rest. */
static int64_t conv2d_taps_cost(const Conv2dPlan *pl, int64_t nf, int64_t h, int64_t w, int64_t g) {
  int64_t cost = pl->k / g * conv2d_step_cost(pl, nf, h, w, g);
  if (pl->k % g) cost += conv2d_step_cost(pl, nf, h, w, pl->k % g);
  return cost;
}

/* The cost of covering the plane with h x w tiles (and the edge tiles).  The rows left below
 * the whole tile rows count twice: they are a band of their own, a second parallel loop after
 * the first (lower_conv2d_tiled), one piece of work per batch row and filter block, so at
 * batch 1 one thread runs it while the others wait.  resnet_mini's 16-filter layers on 32 x 32:
 * 3 x 9 tiles (2 rows left) and 2 x 13 tiles (none) estimate within 1% of each other and run
 * as fast on one thread, but at batch 1 on two threads 2 x 13 is 1.22x faster. */
static int64_t conv2d_plane_cost(const Conv2dPlan *pl, int64_t nf, int64_t h, int64_t w, int64_t g) {
  int64_t OH = pl->OH, OW = pl->OW;
  int64_t ty = OH / h, ry = OH % h, tx = OW / w, rx = OW % w, cost = 0;
  cost += ty * tx * conv2d_taps_cost(pl, nf, h, w, g);
  if (rx) cost += ty * conv2d_taps_cost(pl, nf, h, rx, g);
  if (ry) cost += 2 * tx * conv2d_taps_cost(pl, nf, ry, w, g);
  if (ry && rx) cost += 2 * conv2d_taps_cost(pl, nf, ry, rx, g);
  return cost;
}

/* The vector registers an nf x h x w tile with g taps a step holds in its innermost loop: the
 * accumulators, nf g weight vectors and the live broadcasts.  One broadcast is live at a time
 * with one tap a step; with several, a column's broadcast still feeds its taps' FMAs while the
 * next one loads, so two: resnet_mini's 1 x 4 x 7 three-tap tile (28 + 3 + 1 = 32 counting
 * one) kept an accumulator on the stack, reloaded and stored at every step; its 1 x 2 x 13
 * tile now (26 + 3 + 2) runs without, resnet_mini inference 1.03-1.07x. */
static int conv2d_tile_regs(int nf, int h, int w, int g) {
  return nf * h * w + nf * g + (g > 1 ? 2 : 1);
}

/* Chooses nf, ry, rx, g (and FP) for the plan's plane: the lowest estimated cost over all
 * tiles that fit in the registers (conv2d_tile_regs; one more and LLVM spills an accumulator
 * to the stack in the innermost loop: seen as a third of the FMA rate on AlexNet's conv2 with
 * a 4 x 1 x 3 tile on AVX2). */
static void conv2d_choose(Conv2dPlan *pl, int64_t F) {
  int64_t V = pl->V, FV = (F + V - 1) / V;
  int regs = V >= 16 ? 32 : 16; /* AVX-512: 32 vector registers; AVX2 / SSE: 16 */
  int64_t best[2] = {-1, -1};  /* one tap a step; several */
  Conv2dPlan pick[2] = {*pl, *pl};
  for (int nf = 1; nf <= CONV2D_MAXNF && nf <= FV; nf++) {
    int64_t nblk = (FV + nf - 1) / nf;
    for (int g = 1; g <= pl->k; g++)
      for (int h = 1; h <= CONV2D_MAXRY && h <= pl->OH; h++)
        for (int w = 1; w <= CONV2D_MAXRX && w <= pl->OW; w++) {
          if (conv2d_tile_regs(nf, h, w, g) > regs) continue;
          int64_t cost = nblk * conv2d_plane_cost(pl, nf, h, w, g);
          /* AVX-512, several taps a step on one tile row: an accumulator's g FMAs come one
           * input column apart (nf g FMAs, less than the FMA latency); such tiles ran up to 4%
           * slower than their estimate beside two-row ones (VGG-16's layers: 2 x 1 x 12 against
           * 2 x 2 x 6), so they count 6% more */
          if (V >= 16 && h == 1 && g > 1) cost = cost * 106 / 100;
          int i = g > 1;
          Conv2dPlan *q = &pick[i];
          /* ties: the larger tile (fewer passes over the input) */
          if (best[i] < 0 || cost < best[i] || (cost == best[i] && nf * h * w > q->nf * q->ry * q->rx)) {
            best[i] = cost;
            q->nf = nf;
            q->ry = h;
            q->rx = w;
            q->g = g;
            q->FP = nblk * nf * V;
          }
        }
  }
  /* The lowest estimate on AVX-512.  On AVX2, several taps a step only where that saves at
   * least an eighth of the estimate: the layers whose best one-tap tile is load bound (few
   * filters: one vector of them), not those that are FMA bound either way, where the one-tap
   * tile measured as fast or faster. */
  int several = best[1] >= 0 && (V >= 16 ? best[1] < best[0] : best[1] * 8 < best[0] * 7);
  *pl = several ? pick[1] : pick[0];
}

/* The steps of one tile for the kernel row ky and the g taps kx0 .. kx0 + g - 1 (kx0 an
 * expression): for the chunk's channel blocks cbk, for cl < cb, load the nf g weight vectors,
 * then sweep the input columns of each tile row left to right, broadcasting each column once
 * into the FMAs of every (output column, tap) that reads it (so a broadcast is live for a
 * few FMAs only). */
static void conv2d_tile_taps(LowerCtx *lc, LStmt *blk, const Conv2dPlan *pl, int xp, int wp, int fl, int ky,
                             LExpr *kx0, int g, int xo, const int *wo, LExpr *k0,
                             int acc[CONV2D_MAXNF][CONV2D_MAXRY][CONV2D_MAXRX], int h, int w) {
  LoopProgram *lp = lc->lp;
  int64_t k = pl->k, s = pl->s, V = pl->V, cb = pl->cb, CB = pl->CB, BPC = pl->CC / cb;
  int nf = pl->nf;
  LStmt *kbody = blk;
  LExpr *xblk = le_i64(lp, 0), *wblk = le_i64(lp, 0); /* the block's offsets from the chunk's first */
  if (BPC > 1) {
    int cbk = lvar(lp, "cbk");
    LStmt *lcb = ls_for(lp, kbody, cbk, le_i64(lp, 0),
                        le_bin(lp, LO_MIN, le_i64(lp, BPC), le_sub(lp, le_i64(lp, CB), k0)));
    kbody = ls_body(lcb);
    xblk = le_mul(lp, le_var(lp, cbk), le_i64(lp, pl->Hp * pl->Wp * cb));
    wblk = le_mul(lp, le_var(lp, cbk), le_i64(lp, k * k * cb * V));
  }
  int cl = lvar(lp, "cl");
  LStmt *lcl = ls_for(lp, kbody, cl, le_i64(lp, 0), le_i64(lp, cb));
  LStmt *kb = ls_body(lcl);
  int wv[CONV2D_MAXNF][CONV2D_MAXK];
  for (int i = 0; i < nf; i++)
    for (int q = 0; q < g; q++) {
      /* wp[(((((fb * nf + i) * CB + c / cb) * k + ky) * k + kx0 + q) * cb + cl) * V + fl] */
      LExpr *kx = le_add(lp, kx0, le_i64(lp, q));
      LExpr *tap = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, ky), le_i64(lp, k)), kx), le_i64(lp, cb)),
                          le_var(lp, cl));
      LExpr *wi = le_add(lp, le_add(lp, le_local(lp, wo[i]), wblk),
                         le_add(lp, le_mul(lp, tap, le_i64(lp, V)), le_var(lp, fl)));
      wv[i][q] = ls_local(lp, kb, LT_F32, le_load(lp, wp, wi));
    }
  /* column by column, the tile rows inside: an accumulator's next FMA comes h g FMAs later,
   * not g (row by row, the g dependent FMAs of an accumulator would sit a few apart and wait
   * on the FMA latency) */
  for (int64_t p = 0; p < (w - 1) * s + g; p++)
    for (int r = 0; r < h; r++) {
      if (!tap_column_used(p, g, s, w)) continue;
      /* xb[(((b * CB + c / cb) * Hp + (oy0 + r) s + ky) * Wp + ox0 s + kx0 + p) * cb + cl] */
      LExpr *off = le_add(lp, le_mul(lp, le_add(lp, le_i64(lp, r * s), le_var(lp, ky)), le_i64(lp, pl->Wp * cb)),
                          le_add(lp, le_mul(lp, le_add(lp, le_i64(lp, p), kx0), le_i64(lp, cb)), le_var(lp, cl)));
      LExpr *xi = le_add(lp, le_add(lp, le_local(lp, xo), xblk), off);
      int xv = ls_local(lp, kb, LT_F32, le_load(lp, xp, xi));
      for (int q = 0; q < g; q++) {
        int j = (int)tap_output(p, q, s, w);
        if (j < 0) continue;
        for (int i = 0; i < nf; i++)
          ls_set(lp, kb, acc[i][r][j], le_fma(lp, le_local(lp, xv), le_local(lp, wv[i][q]), le_local(lp, acc[i][r][j])));
      }
    }
}

/* One h x w tile at output (oy0, ox0) of filter block fbx, batch row bx (expressions), lane fl
 * (the vectorized variable), channel chunk cc: accumulate into t. */
static void conv2d_tile(LowerCtx *lc, LStmt *blk, const Conv2dPlan *pl, int xp, int wp, int t,
                        LExpr *bx, LExpr *fbx, int fl, int cc, LExpr *oy0, LExpr *ox0, int h, int w) {
  LoopProgram *lp = lc->lp;
  int64_t k = pl->k, s = pl->s, V = pl->V, CC = pl->CC;
  int nf = pl->nf, g = pl->g;
  int acc[CONV2D_MAXNF][CONV2D_MAXRY][CONV2D_MAXRX];
  for (int i = 0; i < nf; i++)
    for (int r = 0; r < h; r++)
      for (int j = 0; j < w; j++) acc[i][r][j] = ls_local(lp, blk, LT_F32, le_f32(lp, 0));
  /* for ky, for the kx taps in groups of g (the rest in a last group), for the chunk's channel
   * blocks cbk, for cl < cb: one step (c = cbk cb + cl) */
  int ky = lvar(lp, "ky");
  int64_t cb = pl->cb, CB = pl->CB, BPC = CC / cb; /* blocks per chunk */
  /* The indices from bases set once per tile (i64 locals): the chunk's first block of the
   * input at the tile's corner, and of each filter vector's weights; the steps add constant
   * multiples of ky, kx, the block and cl.  (Written out in full, the index polynomials of the
   * 16 or so loads of every tile cost LLVM's IndVarSimplify more than the rest of the compile.) */
  LExpr *k0 = le_mul(lp, le_var(lp, cc), le_i64(lp, BPC));
  int xo = ls_local(lp, blk, LT_I64,
                    le_mul(lp, ix4(lp, le_add(lp, le_mul(lp, bx, le_i64(lp, CB)), k0),
                                   le_mul(lp, oy0, le_i64(lp, s)), le_mul(lp, ox0, le_i64(lp, s)), le_i64(lp, 0),
                                   pl->Hp, pl->Wp, 1),
                           le_i64(lp, cb)));
  int wo[CONV2D_MAXNF];
  for (int i = 0; i < nf; i++) {
    LExpr *fv = le_add(lp, le_mul(lp, fbx, le_i64(lp, nf)), le_i64(lp, i));
    wo[i] = ls_local(lp, blk, LT_I64, le_mul(lp, le_add(lp, le_mul(lp, fv, le_i64(lp, CB)), k0), le_i64(lp, k * k * cb * V)));
  }
  LStmt *lky = ls_for(lp, blk, ky, le_i64(lp, 0), le_i64(lp, k));
  lky->unroll = -1;
  int64_t ngr = k / g;
  if (ngr == 1) {
    conv2d_tile_taps(lc, ls_body(lky), pl, xp, wp, fl, ky, le_i64(lp, 0), g, xo, wo, k0, acc, h, w);
  } else { /* g <= k: ngr >= 1 */
    int kg = lvar(lp, g == 1 ? "kx" : "kg");
    LStmt *lkg = ls_for(lp, ls_body(lky), kg, le_i64(lp, 0), le_i64(lp, ngr));
    lkg->unroll = -1;
    conv2d_tile_taps(lc, ls_body(lkg), pl, xp, wp, fl, ky, le_mul(lp, le_var(lp, kg), le_i64(lp, g)), g, xo, wo,
                     k0, acc, h, w);
  }
  if (k % g)
    conv2d_tile_taps(lc, ls_body(lky), pl, xp, wp, fl, ky, le_i64(lp, ngr * g), (int)(k % g), xo, wo, k0, acc,
                     h, w);
  /* t[b, oy, ox, f] = (cc == 0 ? 0 : t[b, oy, ox, f]) + acc */
  LExpr *first = le_bin(lp, LO_EQ, le_var(lp, cc), le_i64(lp, 0));
  int64_t NB = nf * V, nblk = pl->FP / NB;
  for (int i = 0; i < nf; i++) {
    LExpr *f = le_add(lp, le_i64(lp, i * V), le_var(lp, fl));
    LExpr *bb = le_add(lp, le_mul(lp, bx, le_i64(lp, nblk)), fbx);
    for (int r = 0; r < h; r++)
      for (int j = 0; j < w; j++) {
        LExpr *ti = ix4(lp, bb, le_add(lp, oy0, le_i64(lp, r)), le_add(lp, ox0, le_i64(lp, j)), f,
                        pl->OH, pl->OW, NB);
        LExpr *old = le_select(lp, first, le_f32(lp, 0), le_load(lp, t, ti));
        ls_store(lp, blk, t, ti, le_bin(lp, LO_ADD, old, le_local(lp, acc[i][r][j])));
      }
  }
}

/* The rows [oy0, oy0 + h) (oy0 an expression) of the plane in tiles of h x rx, then the
 * right edge. */
static void conv2d_row_band(LowerCtx *lc, LStmt *blk, const Conv2dPlan *pl, int xp, int wp, int t,
                            LExpr *b, LExpr *fb, int fl, int cc, LExpr *oy0, int h) {
  LoopProgram *lp = lc->lp;
  int64_t ntx = pl->OW / pl->rx, rest = pl->OW % pl->rx;
  if (ntx > 0) {
    int tx = lvar(lp, "tx");
    LStmt *lt = ls_for(lp, blk, tx, le_i64(lp, 0), le_i64(lp, ntx));
    conv2d_tile(lc, ls_body(lt), pl, xp, wp, t, b, fb, fl, cc, oy0,
                le_mul(lp, le_var(lp, tx), le_i64(lp, pl->rx)), h, pl->rx);
  }
  if (rest > 0)
    conv2d_tile(lc, blk, pl, xp, wp, t, b, fb, fl, cc, oy0, le_i64(lp, ntx * pl->rx), h, (int)rest);
}

/* for v in [0, batch * nfb * nob) parallel, one (batch row, filter block, row block) each:
 * sets the i64 locals *bl, *fbl and *obl to them (obl NULL: one row block, nob == 1) (within a batch
 * row the longer of nfb and nob is the slower index), then for fl < V (vectorized), for
 * cc < nch; returns the body of the cc loop. */
static LStmt *conv2d_par_blocks(LoopProgram *lp, LStmt *body, const char *name, int64_t nfb, int64_t nob,
                                int fl, int cc, int64_t nch, int *bl, int *fbl, int *obl, LStmt **par_body) {
  int v = lvar(lp, name);
  LStmt *lv = ls_for(lp, body, v, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, nfb * nob)));
  lv->parallel = 1; /* disjoint parts of t; one wake of the pool per layer, whatever the batch */
  LStmt *vb = ls_body(lv);
  if (par_body) *par_body = vb;
  LExpr *pair = le_bin(lp, LO_MOD, le_var(lp, v), le_i64(lp, nfb * nob));
  *bl = ls_local(lp, vb, LT_I64, le_bin(lp, LO_DIV, le_var(lp, v), le_i64(lp, nfb * nob)));
  *fbl = ls_local(lp, vb, LT_I64, !obl ? pair
                                  : nob > nfb ? le_bin(lp, LO_MOD, pair, le_i64(lp, nfb))
                                              : le_bin(lp, LO_DIV, pair, le_i64(lp, nob)));
  if (obl)
    *obl = ls_local(lp, vb, LT_I64, nob > nfb ? le_bin(lp, LO_DIV, pair, le_i64(lp, nfb))
                                              : le_bin(lp, LO_MOD, pair, le_i64(lp, nob)));
  LStmt *lfl = ls_for(lp, vb, fl, le_i64(lp, 0), le_i64(lp, lp->vec_f32));
  lfl->vec = lp->vec_f32;
  return ls_body(ls_for(lp, ls_body(lfl), cc, le_i64(lp, 0), le_i64(lp, nch)));
}

/* Element pos of plane (b, ch), planes per batch row, plane floats apart: NCHW, and the flat
 * planes of the products below. */
static LExpr *plane_at(LoopProgram *lp, LExpr *b, int64_t planes, LExpr *ch, int64_t plane, LExpr *pos) {
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, b, le_i64(lp, planes)), ch), le_i64(lp, plane)), pos);
}

/* t[tb, q, lane] of a tiled layer's scratch: block tb of NB filters, pixel q of OHW */
static LExpr *tile_at(LoopProgram *lp, LExpr *tb, int64_t OHW, LExpr *q, int64_t NB, LExpr *lane) {
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, tb, le_i64(lp, OHW)), q), le_i64(lp, NB)), lane);
}

/* y[b, f, q] of a conv2d's value (OHW positions a plane) in its buffer: its own [B, F, OHW],
 * or its F planes from plane f0 of a concatenation's rows of `planes` (lower_placed) */
static LExpr *conv_y_at(LowerCtx *lc, const Node *n, LExpr *b, LExpr *f, int64_t OHW, LExpr *q) {
  LoopProgram *lp = lc->lp;
  int64_t pitch, off;
  if (!lower_placed(lc, n, &pitch, &off)) return plane_at(lp, b, n->a.units, f, OHW, q);
  if (pitch % OHW || off % OHW) die("conv_y_at: %s placed off the planes", n->name);
  return plane_at(lp, b, pitch / OHW, le_add(lp, f, le_i64(lp, off / OHW)), OHW, q);
}

/* A layer with F >= V filters takes the register-tile schedule (lower_conv2d_tiled), but a 1x1
 * kernel at stride 1 without padding, a GEMM in NCHW (flat below). */
static int conv2d_is_tiled(const Node *n, int64_t V) {
  return n->a.units >= V && !(n->a.kernel == 1 && n->a.stride == 1 && n->a.pad == 0);
}

/* The copy of its input that a tiled layer reads, xb [B, C / cb, H + 2p, Wp, cb] (zero-padded),
 * or its input itself (copy == 0: cb = 1 and no padding). */
typedef struct Conv2dInput {
  int64_t C, H, W, p; /* the input's channels and plane, the padding */
  int64_t cb, Wp;     /* channels per block, row pitch */
  int copy;
} Conv2dInput;

/* The cb channels a step walks are contiguous in xb, so a tile's broadcasts for one channel
 * block come from a few cache lines and a chunk's part of the input is a few sequential
 * streams (in NCHW they were CC planes apart: L3 traffic that other tenants of the cache
 * disturb).  cb = C's largest divisor <= CONV2D_MAXCB (1 when the copy would cost more than
 * 1/64 of the layer's multiply-adds); with cb = 1 the copy is NCHW and skipped when there is
 * no padding.  An odd row pitch Wp: with a multiple of 2^m, LLVM proves that a tile's column
 * offsets stay below 2^m, turns the index adds into ors and then cannot fold them into the
 * broadcasts' addresses (spills: seen at 14 x 14, pitch 16). */
static Conv2dInput conv2d_input(const Graph *g, const Node *n) {
  Shape in = in_shape(g, n, 0);
  int64_t F = n->a.units, k = n->a.kernel, s = n->a.stride, p = n->a.pad;
  Conv2dInput ci = {.C = in.d[0].n, .H = in.d[1].n, .W = in.d[2].n, .p = p, .cb = 1};
  /* the copy costs about a cycle per input element, the layer F k^2 / s^2 multiply-adds: a
   * 1x1 layer with few filters is faster in NCHW (no copy without padding) */
  if (F * k * k >= 64 * s * s)
    for (int64_t d = CONV2D_MAXCB; d > 1; d--)
      if (ci.C % d == 0) {
        ci.cb = d;
        break;
      }
  ci.copy = p > 0 || ci.cb > 1;
  ci.Wp = ci.copy ? (ci.W + 2 * p) | 1 : ci.W;
  return ci;
}

/* The conv2d whose lowering stores value v: v's producer (through its fused activation), or
 * the conv2d into which v's producer, a residual add, was fused (LowerCtx.fused_add); or -1. */
static int conv_storer(const LowerCtx *lc, int v) {
  int a = lower_producer(lc, v);
  const Node *an = &lc->g->nodes[a];
  if (an->op == OP_conv2d) return a;
  if (an->op == OP_add && an->nin == 2 && lc->fused_add)
    for (int side = 0; side < 2; side++)
      if (lc->fused_add[an->in[side]] == a) return an->in[side];
  return -1;
}

/* The readers of v other than node `except` that are residual adds fused into a tiled conv2d
 * of v's shape (which can read v from a chained copy: conv_residual). */
static int conv_residual_readers(const LowerCtx *lc, int v, int except) {
  const Graph *g = lc->g;
  const Node *vn = &g->nodes[v];
  int count = 0;
  for (int i = 0; i < g->nnodes; i++) {
    const Node *a = &g->nodes[i];
    if (i == except || a->op != OP_add || a->nin != 2 || (a->in[0] != v && a->in[1] != v) || a->in[0] == a->in[1])
      continue;
    const Node *c = &g->nodes[a->in[a->in[0] == v ? 1 : 0]];
    if (c->op == OP_conv2d && lc->fused_add[c->id] == i && conv2d_is_tiled(c, lc->lp->vec_f32) &&
        shape_equal(c->shape, vn->shape))
      count++;
  }
  return count;
}

/* OpInfo.plan: a tiled layer whose input is the value of another tiled layer (with its fused
 * activation, or its fused residual add and that add's activation) has that layer write it
 * straight into xb when its blocks are whole vectors (cb == V): the producer's write-back
 * fills xb from its t, vector for vector, instead of writing NCHW that this layer would copy
 * into xb (two passes over the tensor, one of them a transposition, become one plain one).
 * The value may also be the residual of adds fused into later tiled layers (a ResNet's
 * stream: each block's input is its first conv's input and its last conv's residual): those
 * read it from xb too (conv_residual).  Not for a value that is an output, that a gradient
 * reads, or that anything else reads (uses). */
static void plan_conv2d(LowerCtx *lc, const Node *n, const int *uses) {
  const Graph *g = lc->g;
  int64_t V = lc->lp->vec_f32;
  if (!conv2d_is_tiled(n, V) || conv2d_input(g, n).cb != V) return;
  int v = n->in[0], a = conv_storer(lc, v);
  const Node *vn = &g->nodes[v];
  if (a < 0 || vn->output_index >= 0 || (lc->grad_param && lc->grad_param[v] >= 0)) return;
  if (!conv2d_is_tiled(&g->nodes[a], V) || lc->chain_to[a] >= 0) return;
  if (uses[v] != 1 + conv_residual_readers(lc, v, n->id)) return;
  lc->chain_to[a] = n->id;
}

/* Element (b, f, oy, ox) of the blocked, padded copy xb [B, C / V, H + 2p, Wp, V] that
 * conv2d_input ci describes (cb == V), f = fv V + fl. */
static LExpr *xb_at(LoopProgram *lp, const Conv2dInput *ci, LExpr *b, LExpr *fv, LExpr *fl, LExpr *oy, LExpr *ox) {
  int64_t V = lp->vec_f32, plane = (ci->H + 2 * ci->p) * ci->Wp * V;
  LExpr *base = le_mul(lp, le_add(lp, le_mul(lp, b, le_i64(lp, ci->C / V)), fv), le_i64(lp, plane));
  LExpr *px = le_add(lp, le_mul(lp, le_add(lp, oy, le_i64(lp, ci->p)), le_i64(lp, ci->Wp)),
                     le_add(lp, ox, le_i64(lp, ci->p)));
  return le_add(lp, base, le_add(lp, le_mul(lp, px, le_i64(lp, V)), fl));
}

/* Where the residual that n's fused add adds lives when its producer was chained: the
 * consumer's xb (returned, -1 otherwise), described by *ci. */
static int conv_residual_xb(const LowerCtx *lc, const Node *n, Conv2dInput *ci) {
  int o = lower_fused_other(lc, n);
  int s = o >= 0 ? conv_storer(lc, o) : -1;
  int cn = s >= 0 ? lc->chain_to[s] : -1;
  if (cn < 0) return -1;
  *ci = conv2d_input(lc->g, &lc->g->nodes[cn]);
  if (lc->chain_buf[cn] < 0) die("conv_residual_xb: %s before %s's copy", n->name, lc->g->nodes[cn].name);
  return lc->chain_buf[cn];
}

/* v plus the residual of n's fused add at y[b, f, oy, ox] (f = fv V + fl), from its own
 * buffer [B, F, OH, OW] or from the chained copy that holds it (conv_residual_xb); v itself
 * when n has no fused add.  lower_epilogue_act then applies the activation. */
static LExpr *conv_residual(LowerCtx *lc, const Node *n, LExpr *v, LExpr *b, LExpr *fv, LExpr *fl, LExpr *oy,
                            LExpr *ox) {
  LoopProgram *lp = lc->lp;
  int o = lower_fused_other(lc, n);
  if (o < 0) return v;
  Conv2dInput ci;
  int xb = conv_residual_xb(lc, n, &ci);
  LExpr *at;
  if (xb >= 0) {
    at = xb_at(lp, &ci, b, fv, fl, oy, ox);
  } else {
    int64_t OH = n->shape.d[1].n, OW = n->shape.d[2].n;
    LExpr *f = le_add(lp, le_mul(lp, fv, le_i64(lp, lp->vec_f32)), fl);
    at = plane_at(lp, b, n->a.units, f, OH * OW, le_add(lp, le_mul(lp, oy, le_i64(lp, OW)), ox));
    xb = lower_value(lc, o);
  }
  return le_bin(lp, LO_ADD, v, le_load(lp, xb, at));
}

/* A layer chained to consumer cn (plan_conv2d) writes cn's xb, a row block at a time
 * (conv2d_chain_rows), frame and interior. */
typedef struct Conv2dChain {
  int xb;
  int64_t p, Wp, OW, OHW, FB, plane; /* cn's padding and row pitch, the plane, V-channel blocks */
} Conv2dChain;

static Conv2dChain conv2d_chain_begin(LowerCtx *lc, const Node *n, const Node *cn) {
  LoopProgram *lp = lc->lp;
  Conv2dInput ci = conv2d_input(lc->g, cn);
  int64_t V = lp->vec_f32;
  if (ci.cb != V || ci.C != n->a.units) die("conv2d_chain_begin: %s into %s", n->name, cn->name);
  Conv2dChain ch = {.p = ci.p, .Wp = ci.Wp, .OW = ci.W, .OHW = ci.H * ci.W, .FB = ci.C / V,
                    .plane = (ci.H + 2 * ci.p) * ci.Wp * V};
  ch.xb = lower_scratch(lc, arena_printf(lp->arena, "%s.pad", cn->name), LT_F32,
                        (SymCount){ch.FB * ch.plane, 0}, 1);
  lc->chain_buf[cn->id] = ch.xb;
  return ch;
}

/* Rows [oy0, oy1) of t's filter block fb (NB filters from fb NB) of batch row b into the
 * consumer's xb, right after their sums (that part of t is still in L2), with their frame (the
 * p columns left and the pitch's rest right; the p rows above with the first row, those below
 * and the plane's tail with the last):
 *   xb[b, f / V, oy + p, ox + p, f % V] = epilogue(t[b, f / NB, oy, ox, f % NB] + bias[f]) */
static void conv2d_chain_rows(LowerCtx *lc, const Node *n, const Conv2dChain *ch, LStmt *blk, int t, int bias,
                              int64_t NB, int64_t nblk, LExpr *b, LExpr *fb, LExpr *oy0, LExpr *oy1) {
  LoopProgram *lp = lc->lp;
  int64_t V = lp->vec_f32, per = NB / V, OH = ch->OHW / ch->OW, rowlen = ch->Wp * V;
  int fv = lvar(lp, "fv"), oy = lvar(lp, "oy"), ox = lvar(lp, "ox"), fl = lvar(lp, "fl");
  LExpr *fv0 = le_mul(lp, fb, le_i64(lp, per));
  LStmt *lfv = ls_for(lp, blk, fv, fv0, le_bin(lp, LO_MIN, le_i64(lp, ch->FB), le_add(lp, fv0, le_i64(lp, per))));
  LExpr *base = le_mul(lp, le_add(lp, le_mul(lp, b, le_i64(lp, ch->FB)), le_var(lp, fv)), le_i64(lp, ch->plane));
  lower_frame_ends(lp, ls_body(lfv), ch->xb, base, le_bin(lp, LO_EQ, oy0, le_i64(lp, 0)),
                   le_bin(lp, LO_EQ, oy1, le_i64(lp, OH)), OH, ch->p, rowlen, ch->plane, 0.0);
  LStmt *loy = ls_for(lp, ls_body(lfv), oy, oy0, oy1);
  LExpr *row = le_add(lp, base, le_mul(lp, le_add(lp, le_var(lp, oy), le_i64(lp, ch->p)), le_i64(lp, rowlen)));
  lower_fill(lp, ls_body(loy), ch->xb, row, 0, ch->p * V, 0.0);
  LStmt *lx = ls_for(lp, ls_body(loy), ox, le_i64(lp, 0), le_i64(lp, ch->OW));
  lower_fill(lp, ls_body(loy), ch->xb, row, (ch->p + ch->OW) * V, rowlen, 0.0);
  LStmt *lf = ls_for(lp, ls_body(lx), fl, le_i64(lp, 0), le_i64(lp, V));
  lf->vec = (int)V;
  LExpr *tb = le_add(lp, le_mul(lp, b, le_i64(lp, nblk)), fb);
  LExpr *q = le_add(lp, le_mul(lp, le_var(lp, oy), le_i64(lp, ch->OW)), le_var(lp, ox));
  LExpr *lane = le_add(lp, le_mul(lp, le_sub(lp, le_var(lp, fv), fv0), le_i64(lp, V)), le_var(lp, fl));
  LExpr *v = le_load(lp, t, tile_at(lp, tb, ch->OHW, q, NB, lane));
  if (bias >= 0)
    v = le_bin(lp, LO_ADD, v, le_load(lp, bias, le_add(lp, le_mul(lp, le_var(lp, fv), le_i64(lp, V)), le_var(lp, fl))));
  LExpr *dst = le_add(lp, row, le_add(lp, le_mul(lp, le_add(lp, le_var(lp, ox), le_i64(lp, ch->p)), le_i64(lp, V)),
                                      le_var(lp, fl)));
  v = conv_residual(lc, n, v, b, le_var(lp, fv), le_var(lp, fl), le_var(lp, oy), le_var(lp, ox));
  ls_store(lp, ls_body(lf), ch->xb, dst, lower_epilogue_act(lc, n, v));
}

/* y's V pixels from q0 by V filters from f0 (of batch row b, both multiples of V) from t, through
 * the registers: V loads of a pixel's V filters, a transpose (lower_transpose_lanes), V stores
 * of a filter's V pixels, each through the bias and the epilogue. */
static void conv2d_write_square(LowerCtx *lc, const Node *n, LStmt *blk, int t, int y, int bias, int64_t F,
                                int64_t OHW, int64_t NB, int64_t nblk, LExpr *b, LExpr *q0, LExpr *f0) {
  LoopProgram *lp = lc->lp;
  int64_t V = lp->vec_f32;
  int l = lvar(lp, "l"), rows[64];
  LStmt *ll = ls_for(lp, blk, l, le_i64(lp, 0), le_i64(lp, V));
  ll->vec = (int)V;
  LStmt *vb = ls_body(ll);
  /* t's block of filters f0.. and the lane offset of f0 in it */
  LExpr *tb = le_add(lp, le_mul(lp, b, le_i64(lp, nblk)), le_bin(lp, LO_DIV, f0, le_i64(lp, NB)));
  LExpr *lane0 = le_bin(lp, LO_MOD, f0, le_i64(lp, NB));
  /* a residual in a chained copy, blocked like t, is added (after the bias, as the epilogue
   * would) to pixel q0 + j's V filters before the transposition, a contiguous load each */
  Conv2dInput ci;
  int early = conv_residual_xb(lc, n, &ci) >= 0;
  int64_t OW = n->shape.d[2].n;
  for (int64_t j = 0; j < V; j++) {
    LExpr *q = le_add(lp, q0, le_i64(lp, j));
    LExpr *v = le_load(lp, t, tile_at(lp, tb, OHW, q, NB, le_add(lp, lane0, le_var(lp, l))));
    if (early) {
      if (bias >= 0) v = le_bin(lp, LO_ADD, v, le_load(lp, bias, le_add(lp, f0, le_var(lp, l))));
      v = conv_residual(lc, n, v, b, le_bin(lp, LO_DIV, f0, le_i64(lp, V)), le_var(lp, l),
                        le_bin(lp, LO_DIV, q, le_i64(lp, OW)), le_bin(lp, LO_MOD, q, le_i64(lp, OW)));
    }
    rows[j] = ls_local(lp, vb, LT_F32, v);
  }
  lower_transpose_lanes(lp, vb, l, rows);
  for (int64_t j = 0; j < V; j++) {
    LExpr *f = le_add(lp, f0, le_i64(lp, j)), *v = le_local(lp, rows[j]);
    LExpr *yi = conv_y_at(lc, n, b, f, OHW, le_add(lp, q0, le_var(lp, l)));
    if (early) {
      ls_store(lp, vb, y, yi, lower_epilogue_act(lc, n, v));
      continue;
    }
    if (bias >= 0) v = le_bin(lp, LO_ADD, v, le_load(lp, bias, f));
    ls_store(lp, vb, y, yi, lower_epilogue(lc, n, v, yi));
  }
}

/* y[b, f, q] = epilogue(t[b, f / NB, q, f % NB] + bias[f]), q = oy * OW + ox, for every f and
 * q (the write-back of a tiled layer to NCHW), in blocks of V pixels, every batch row in one
 * parallel loop over disjoint blocks of y.  With F a multiple of V, a whole block of V pixels
 * goes V channels at a time: V contiguous loads of t (a pixel's channels each), transposed in
 * registers (lower_transpose_lanes), V contiguous stores of y (a channel's pixels each); the
 * rest (the last, partial block, or every block when F is not a multiple of V) loads each
 * lane by itself, NB floats apart, the block's rows of t staying in L1 over every f. */
static void conv2d_write_nchw(LowerCtx *lc, const Node *n, LStmt *body, int t, int y, int bias,
                              int64_t F, int64_t OHW, int64_t NB, int64_t nblk) {
  LoopProgram *lp = lc->lp;
  int64_t V = lp->vec_f32, nqb = (OHW + V - 1) / V, first = 0;
  if (F % V == 0 && OHW >= V && V <= 64) { /* rows[] below holds V locals */
    int64_t nfull = OHW / V;
    int bq = lvar(lp, "bq"), fb = lvar(lp, "fb");
    LStmt *lbq = ls_for(lp, body, bq, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, nfull)));
    lbq->parallel = 1;
    int b2 = ls_local(lp, ls_body(lbq), LT_I64, le_bin(lp, LO_DIV, le_var(lp, bq), le_i64(lp, nfull)));
    int qb = ls_local(lp, ls_body(lbq), LT_I64, le_bin(lp, LO_MOD, le_var(lp, bq), le_i64(lp, nfull)));
    LStmt *lfb = ls_for(lp, ls_body(lbq), fb, le_i64(lp, 0), le_i64(lp, F / V));
    conv2d_write_square(lc, n, ls_body(lfb), t, y, bias, F, OHW, NB, nblk, le_local(lp, b2),
                        le_mul(lp, le_local(lp, qb), le_i64(lp, V)), le_mul(lp, le_var(lp, fb), le_i64(lp, V)));
    if (OHW % V == 0) return;
    first = nfull; /* the partial block below */
  }
  int bq = lvar(lp, "bq"), f2 = lvar(lp, "f"), ql = lvar(lp, "ql");
  LStmt *lbq = ls_for(lp, body, bq, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, nqb - first)));
  lbq->parallel = 1; /* disjoint pixel blocks of y, every batch row in one loop */
  int b2 = ls_local(lp, ls_body(lbq), LT_I64, le_bin(lp, LO_DIV, le_var(lp, bq), le_i64(lp, nqb - first)));
  int qb = ls_local(lp, ls_body(lbq), LT_I64,
                    le_add(lp, le_bin(lp, LO_MOD, le_var(lp, bq), le_i64(lp, nqb - first)), le_i64(lp, first)));
  LStmt *lf2 = ls_for(lp, ls_body(lbq), f2, le_i64(lp, 0), le_i64(lp, F));
  LExpr *q0 = le_mul(lp, le_local(lp, qb), le_i64(lp, V));
  LStmt *lq = ls_for(lp, ls_body(lf2), ql, le_i64(lp, 0),
                     le_bin(lp, LO_MIN, le_i64(lp, V), le_sub(lp, le_i64(lp, OHW), q0)));
  lq->vec = (int)V;
  LExpr *q = le_add(lp, q0, le_var(lp, ql));
  LExpr *tb = le_add(lp, le_mul(lp, le_local(lp, b2), le_i64(lp, nblk)),
                     le_bin(lp, LO_DIV, le_var(lp, f2), le_i64(lp, NB)));
  LExpr *v = le_load(lp, t, tile_at(lp, tb, OHW, q, NB, le_bin(lp, LO_MOD, le_var(lp, f2), le_i64(lp, NB))));
  if (bias >= 0) v = le_bin(lp, LO_ADD, v, le_load(lp, bias, le_var(lp, f2)));
  LExpr *yi = conv_y_at(lc, n, le_local(lp, b2), le_var(lp, f2), OHW, q);
  Conv2dInput ci;
  if (conv_residual_xb(lc, n, &ci) >= 0) { /* the residual from a chained copy, lane by lane */
    int64_t OW = n->shape.d[2].n;
    v = conv_residual(lc, n, v, le_local(lp, b2), le_bin(lp, LO_DIV, le_var(lp, f2), le_i64(lp, V)),
                      le_bin(lp, LO_MOD, le_var(lp, f2), le_i64(lp, V)), le_bin(lp, LO_DIV, q, le_i64(lp, OW)),
                      le_bin(lp, LO_MOD, q, le_i64(lp, OW)));
    ls_store(lp, ls_body(lq), y, yi, lower_epilogue_act(lc, n, v));
    return;
  }
  ls_store(lp, ls_body(lq), y, yi, lower_epilogue(lc, n, v, yi));
}

static void lower_conv2d_tiled(LowerCtx *lc, const Node *n, int x, int y, int w, int bias) {
  LoopProgram *lp = lc->lp;
  Conv2dInput ci = conv2d_input(lc->g, n);
  int64_t C = ci.C, H = ci.H, W = ci.W, cb = ci.cb, Wpitch = ci.Wp;
  int64_t F = n->a.units, k = n->a.kernel, s = n->a.stride, p = n->a.pad;
  int64_t OH = n->shape.d[1].n, OW = n->shape.d[2].n, OHW = OH * OW;
  Conv2dPlan pl = {.C = C, .k = k, .s = s, .Hp = H + 2 * p, .Wp = Wpitch, .OH = OH, .OW = OW,
                   .V = lp->vec_f32, .cb = cb, .CB = C / cb};
  /* chunks of about CONV2D_TERMS terms, whole channel blocks, all the same size but the last */
  int64_t bpc = CONV2D_TERMS / (k * k * cb) > 1 ? CONV2D_TERMS / (k * k * cb) : 1;
  int64_t nchunks = (pl.CB + bpc - 1) / bpc;
  pl.CC = (pl.CB + nchunks - 1) / nchunks * cb;
  conv2d_choose(&pl, F);
  int64_t V = pl.V, FP = pl.FP, FV = FP / V, CB = pl.CB;

  LStmt *prep;
  int wp = lower_packed(lc, arena_printf(lp->arena, "%s.wp", n->name), FP * C * k * k, &prep);
  {
    /* wp[fv, cbk, ky, kx, cl, fl] = f < F ? w[f, cbk * cb + cl, ky, kx] : 0, f = fv * V + fl
     * (f clamped to F - 1 for the load: the select does not guard it); one pass, parallel
     * over the filter vectors (a training step repacks after every update) */
    int fv = lvar(lp, "fv"), cbk = lvar(lp, "cbk"), ky = lvar(lp, "ky"), kx = lvar(lp, "kx"),
        cl = lvar(lp, "cl"), fl = lvar(lp, "fl");
    LStmt *l0 = ls_for(lp, prep, fv, le_i64(lp, 0), le_i64(lp, FV));
    l0->parallel = 1;
    LStmt *l1 = ls_for(lp, ls_body(l0), cbk, le_i64(lp, 0), le_i64(lp, CB));
    LStmt *l2 = ls_for(lp, ls_body(l1), ky, le_i64(lp, 0), le_i64(lp, k));
    LStmt *l3 = ls_for(lp, ls_body(l2), kx, le_i64(lp, 0), le_i64(lp, k));
    LStmt *l4 = ls_for(lp, ls_body(l3), cl, le_i64(lp, 0), le_i64(lp, cb));
    LStmt *l5 = ls_for(lp, ls_body(l4), fl, le_i64(lp, 0), le_i64(lp, V));
    l5->vec = (int)V; /* one gather per filter vector (and no unrolled scalar copies to compile) */
    LExpr *f = le_add(lp, le_mul(lp, le_var(lp, fv), le_i64(lp, V)), le_var(lp, fl));
    LExpr *c = le_add(lp, le_mul(lp, le_var(lp, cbk), le_i64(lp, cb)), le_var(lp, cl));
    LExpr *wi = ix4(lp, le_add(lp, le_mul(lp, le_var(lp, fv), le_i64(lp, CB)), le_var(lp, cbk)), le_var(lp, ky),
                    le_var(lp, kx), le_var(lp, cl), k, k, cb);
    LExpr *from = le_load(lp, w, ix4(lp, le_bin(lp, LO_MIN, f, le_i64(lp, F - 1)), c, le_var(lp, ky),
                                     le_var(lp, kx), C, k, k));
    ls_store(lp, ls_body(l5), wp, le_add(lp, le_mul(lp, wi, le_i64(lp, V)), le_var(lp, fl)),
             le_select(lp, le_bin(lp, LO_LT, f, le_i64(lp, F)), from, le_f32(lp, 0)));
  }
  LStmt *unpack = lower_unpack(lc, arena_printf(lp->arena, "%s.wp", n->name), w);
  if (unpack) {
    /* w[f, c, ky, kx] = wp[...] as above, f < F: every weight, once, from where it was put */
    int f = lvar(lp, "f"), c = lvar(lp, "c"), ky = lvar(lp, "ky"), kx = lvar(lp, "kx");
    LStmt *l0 = ls_for(lp, unpack, f, le_i64(lp, 0), le_i64(lp, F));
    l0->parallel = 1;
    LStmt *l1 = ls_for(lp, ls_body(l0), c, le_i64(lp, 0), le_i64(lp, C));
    LStmt *l2 = ls_for(lp, ls_body(l1), ky, le_i64(lp, 0), le_i64(lp, k));
    LStmt *l3 = ls_for(lp, ls_body(l2), kx, le_i64(lp, 0), le_i64(lp, k));
    LExpr *fvv = le_bin(lp, LO_DIV, le_var(lp, f), le_i64(lp, V));
    LExpr *cbk = le_bin(lp, LO_DIV, le_var(lp, c), le_i64(lp, cb));
    LExpr *wi = ix4(lp, le_add(lp, le_mul(lp, fvv, le_i64(lp, CB)), cbk), le_var(lp, ky), le_var(lp, kx),
                    le_bin(lp, LO_MOD, le_var(lp, c), le_i64(lp, cb)), k, k, cb);
    LExpr *at = le_add(lp, le_mul(lp, wi, le_i64(lp, V)), le_bin(lp, LO_MOD, le_var(lp, f), le_i64(lp, V)));
    ls_store(lp, ls_body(l3), w, ix4(lp, le_var(lp, f), le_var(lp, c), le_var(lp, ky), le_var(lp, kx), C, k, k),
             le_load(lp, wp, at));
  }
  LStmt *body = lower_begin(lc, n);
  int xp = lc->chain_buf[n->id] >= 0 ? lc->chain_buf[n->id] /* its producer wrote xb */
           : cb == 1                   ? lower_pad2d(lc, body, n, x, C, H, W, p, Wpitch, 0.0)
                                       : lower_pad2d_blocked(lc, body, n, x, C, H, W, p, Wpitch, cb, 0.0);
  int t = lower_scratch(lc, arena_printf(lp->arena, "%s.t", n->name), LT_F32,
                        (SymCount){OHW * FP, 0}, 1);
  int fl = lvar(lp, "fl"), cc = lvar(lp, "cc");
  /* Row blocks of tyb tile rows, chunks inside: a chunk's weights stay in L1 over a row
   * block, and the row block's part of t (at most ~128 KiB) in L2 over all chunks. */
  int64_t NB = pl.nf * V, nblk = FP / NB, nch = (C + pl.CC - 1) / pl.CC;
  int64_t nfb = FV / pl.nf;
  int64_t nty = pl.OH / pl.ry, resty = pl.OH % pl.ry;
  int64_t tyb = 128 * 1024 / (pl.ry * pl.OW * NB * 4);
  if (tyb < 1) tyb = 1;
  if (tyb > nty) tyb = nty;
  /* Threads share the (batch row, filter block, row block) triples, which write disjoint parts
   * of t, in one parallel loop (one wake-up of the pool per layer, whatever the batch): at
   * batch 1 too, so there should be CONV2D_PAR_BLOCKS of them a batch row even when the
   * filters make one block.  Small blocks also keep a block's part of t in L1 for its write
   * (chained, residual): resnet_mini's 16-filter layers in 16 blocks of 2 rows instead of 4 of
   * 8, inference 1.07x at batch 32 and 1.03-1.04x at batch 1 (one Intel thread; 1.06x and
   * 1.04x on two); inception, AlexNet and LeNet-5, whose layers change too, unchanged. */
  if (nty > 0 && nfb * ((nty + tyb - 1) / tyb) < CONV2D_PAR_BLOCKS) {
    int64_t want = (CONV2D_PAR_BLOCKS + nfb - 1) / nfb;
    if (want > nty) want = nty;
    tyb = (nty + want - 1) / want;
  }
  /* Each (batch row, filter block, row block) writes its part of y as soon as its sums are
   * done, while that part of t (<= ~128 KiB) is still in L2, when the row blocks are whole
   * vectors of pixels (every row in whole tile rows, ry * OW a multiple of V) and F whole
   * vectors: one pass over t less through memory (VGG-16's first blocks: 13 MB an image a
   * layer).  Otherwise the write follows all the sums.  A chained layer writes its consumer's
   * xb the same way, a row block at a time, at any width (no transposition there). */
  int chained = lc->chain_to[n->id] >= 0;
  int band_write = !chained && resty == 0 && nty > 0 && F % V == 0 && V <= 64 && (pl.ry * OW) % V == 0;
  Conv2dChain chain = {.xb = -1};
  if (chained) chain = conv2d_chain_begin(lc, n, &lc->g->nodes[lc->chain_to[n->id]]);
  if (nty > 0) {
    int64_t nob = (nty + tyb - 1) / tyb;
    int bl, fbl, obl, ty = lvar(lp, "ty");
    LStmt *par;
    LStmt *cb_ = conv2d_par_blocks(lp, body, "bfo", nfb, nob, fl, cc, nch, &bl, &fbl, &obl, &par);
    LExpr *ty0 = le_mul(lp, le_local(lp, obl), le_i64(lp, tyb));
    LExpr *ty1 = le_bin(lp, LO_MIN, le_i64(lp, nty), le_add(lp, ty0, le_i64(lp, tyb)));
    LStmt *lty = ls_for(lp, cb_, ty, ty0, ty1);
    conv2d_row_band(lc, ls_body(lty), &pl, xp, wp, t, le_local(lp, bl), le_local(lp, fbl), fl, cc,
                    le_mul(lp, le_var(lp, ty), le_i64(lp, pl.ry)), pl.ry);
    if (band_write) { /* the row block's pixel vectors [ty0 ry OW / V, ty1 ry OW / V) */
      int qv = lvar(lp, "qv"), fb = lvar(lp, "fb");
      int64_t per = pl.ry * OW / V; /* pixel vectors per tile row */
      LStmt *lq = ls_for(lp, par, qv, le_mul(lp, ty0, le_i64(lp, per)), le_mul(lp, ty1, le_i64(lp, per)));
      LExpr *fb0 = le_mul(lp, le_local(lp, fbl), le_i64(lp, NB / V));
      LStmt *lf = ls_for(lp, ls_body(lq), fb, fb0,
                         le_bin(lp, LO_MIN, le_i64(lp, F / V), le_add(lp, fb0, le_i64(lp, NB / V))));
      conv2d_write_square(lc, n, ls_body(lf), t, y, bias, F, OHW, NB, nblk, le_local(lp, bl),
                          le_mul(lp, le_var(lp, qv), le_i64(lp, V)), le_mul(lp, le_var(lp, fb), le_i64(lp, V)));
    }
    if (chained)
      conv2d_chain_rows(lc, n, &chain, par, t, bias, NB, nblk, le_local(lp, bl), le_local(lp, fbl),
                        le_mul(lp, ty0, le_i64(lp, pl.ry)), le_mul(lp, ty1, le_i64(lp, pl.ry)));
  }
  if (resty > 0) { /* the rows left below the whole tiles: one band per (batch row, filter block) */
    int bl, fbl, fl2 = lvar(lp, "fl"), cc2 = lvar(lp, "cc");
    LStmt *par;
    LStmt *cb_ = conv2d_par_blocks(lp, body, "bf", nfb, 1, fl2, cc2, nch, &bl, &fbl, NULL, &par);
    conv2d_row_band(lc, cb_, &pl, xp, wp, t, le_local(lp, bl), le_local(lp, fbl), fl2, cc2,
                    le_i64(lp, nty * pl.ry), (int)resty);
    if (chained)
      conv2d_chain_rows(lc, n, &chain, par, t, bias, NB, nblk, le_local(lp, bl), le_local(lp, fbl),
                        le_i64(lp, nty * pl.ry), le_i64(lp, OH));
  }
  if (!chained && !band_write) conv2d_write_nchw(lc, n, body, t, y, bias, F, OHW, NB, nblk);
}

/* --- Winograd F(2x2, 3x3): the forward of a 3x3 layer at stride 1 ---
 *
 * Each 2 x 2 block of outputs ("tile") of a filter comes from the 4 x 4 patch d of the padded
 * input under it (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
 *     Y = A^T [ sum_c (G g_c G^T) .* (B^T d_c B) ] A
 * with g_c the filter's 3 x 3 kernel of channel c and
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *     A^T = [1 1 1 0; 0 1 -1 -1].
 * The sum over c for each of the 16 points xi of the 4 x 4 transform is a matrix product,
 * M_xi [tiles, F] = V_xi [tiles, C] U_xi [C, F]: 16 multiply-adds per tile, channel and filter
 * where the direct convolution does 36 (2.25x fewer).  The schedule:
 *   prepare: wq [F / NB, C, 9, NB], the weight by blocks of NB filters (a permutation, packed
 *            once per update; the unpack restores the weight from it, so the runtime may drop
 *            the weight's pages as for the direct schedule: no memory beyond it);
 *   forward of a plane of more than WINO_LOCAL_TILES tiles, per filter block fb (in turn):
 *     U [16, C, NB] = G g G^T from wq (one parallel loop over the channels; 16/9 of the
 *       block's weights, a scratch of the call);
 *     the tiles in blocks of TB (row-major over the plane of tiles) in one parallel loop over
 *     WINO_WORKERS workers, each with its own scratch, taking a contiguous run of the items
 *     (batch row, tile block); per item, for each chunk of CC channels:
 *       V [16, TB, CC] = B^T d B from the layer's blocked copy xb (V channels a vector),
 *       for xi < 16: M_xi (+)= V_xi U_xi[chunk] (gemm_bcast: TB rows x NB filters, K = CC);
 *     then t[b, fb, oy, ox, f % NB] = A^T M A (a vector of V filters at a time);
 *   forward of a smaller plane ("local"): one parallel loop over the workers, the items
 *     (batch row, filter block, tile block), and each item makes its own U chunk by chunk
 *     into its worker's scratch, [16, CC, NB], right before the chunk's products (the shared
 *     U of a few items a block was read by every thread from the core that wrote it);
 *   then t goes to y or to the consumer's copy through the tiled schedule's write-backs (bias,
 *   fused residual and activation there).
 * Odd output sizes: the last tile row or column reads a clamped (repeated) input row or column,
 * which only feeds the output that does not exist, and its stores are clamped into the tile
 * in an order that leaves the real output last.  The result differs from the direct sum by
 * rounding only (the transforms' +-1 and 1/2 factors; measured against PyTorch's float64 in
 * test/exec/ops_conv.test); an infinite input makes NaN where the direct sum makes an infinity
 * (inf - inf in B^T d B), as in other Winograd convolutions.  Chosen (conv2d_winograd) for every
 * entry point's forward (the training step's too: its gradients are those of the same function,
 * and its forward then rounds as the evaluation's does), with at least two vectors of channels
 * and of filters, both whole vectors; the gradient kernels keep direct sums. */
enum {
  WINO_TB = 24,      /* tiles a block, at most (4 row tiles of the AVX-512 gemm_bcast's 6) */
  WINO_MR = 6,       /* a block's tiles: a multiple of this */
  WINO_ITEMS = 8,    /* tile blocks a batch row, at least, where the plane allows */
  WINO_CC = 128,     /* channels a chunk, at most */
  WINO_WORKERS = 8,  /* per-worker scratch: the parallel loop's iterations */
  WINO_LOCAL_TILES = 256, /* a plane of at most this many tiles: each item makes its own U */
  WINO_LOCAL_TB = 56,     /* tiles a block, at most, then */
  WINO_LOCAL_CC = 64,     /* channels a chunk, at most, then */
};

/* The filters a block: 4, 2 or 1 vectors (F a whole number of vectors) */
static int64_t wino_nb(int64_t F, int64_t V) { return F % (4 * V) == 0 ? 4 * V : F % (2 * V) == 0 ? 2 * V : V; }

static int conv2d_winograd(const LowerCtx *lc, const Node *n) {
  int64_t V = lc->lp->vec_f32;
  if (!lc->lp->winograd || V < 8) return 0;
  if (!conv2d_is_tiled(n, V) || n->a.kernel != 3 || n->a.stride != 1) return 0;
  Conv2dInput ci = conv2d_input(lc->g, n);
  int64_t F = n->a.units, OH = n->shape.d[1].n, OW = n->shape.d[2].n;
  return ci.cb % V == 0 && F % V == 0 && ci.C >= 2 * V && F >= 2 * V && OH >= 2 && OW >= 2;
}

typedef struct Wino {
  int64_t C, CC, NB, TB;
  int64_t VX, MX;      /* the floats from one point xi to the next in V and in M */
  int64_t UX;          /* local: the same in the worker's U chunk; 0: U is the call's, [16, C, NB] */
  int m;               /* M's buffer */
  LExpr *wk, *xi, *cc; /* the worker, the transform's point, the channel chunk */
} Wino;

/* Element (wk, xi, m, k) of a worker's scratch [16 points of xs floats, each rows of `row`]:
 * xs = TB row + a cache line, so that the 16 points' rows of one tile (which the transforms
 * store or load together) do not all fall in one set of L1 (TB CC floats are often a
 * multiple of 4 KiB: a 256 -> 256 layer ran 1.16x slower so) */
static LExpr *wino_scratch_at(LoopProgram *lp, LExpr *wk, LExpr *xi, int64_t xs, LExpr *m, int64_t row, LExpr *k) {
  LExpr *pt = le_add(lp, le_mul(lp, wk, le_i64(lp, 16)), xi);
  return le_add(lp, le_mul(lp, pt, le_i64(lp, xs)), le_add(lp, le_mul(lp, m, le_i64(lp, row)), k));
}
static int64_t wino_stride(int64_t TB, int64_t row) { return TB * row + 16; }

/* M [worker, 16, TB, NB]: C(m = tile, n = filter in the block) */
static LExpr *wino_c(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *n) {
  (void)br;
  const Wino *d = c;
  return wino_scratch_at(lp, d->wk, d->xi, d->MX, m, d->NB, n);
}
/* V [worker, 16, TB, CC]: A(m = tile, k = channel in the chunk) */
static LExpr *wino_a(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *k) {
  (void)br;
  const Wino *d = c;
  return wino_scratch_at(lp, d->wk, d->xi, d->VX, m, d->CC, k);
}
/* U [16, C, NB] (or the worker's chunk [16, CC, NB], UX apart): B(n = filter in the block,
 * k = channel in the chunk) */
static LExpr *wino_b(LoopProgram *lp, const void *c, LExpr *br, LExpr *n, LExpr *k) {
  (void)br;
  const Wino *d = c;
  if (d->UX) return wino_scratch_at(lp, d->wk, d->xi, d->UX, k, d->NB, n);
  LExpr *ch = le_add(lp, le_mul(lp, d->cc, le_i64(lp, d->CC)), k);
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, d->xi, le_i64(lp, d->C)), ch), le_i64(lp, d->NB)), n);
}
/* the first chunk starts from 0, the others from the sums so far */
static LExpr *wino_init(LoopProgram *lp, const void *c, LExpr *m, LExpr *n) {
  const Wino *d = c;
  return le_select(lp, le_bin(lp, LO_EQ, d->cc, le_i64(lp, 0)), le_f32(lp, 0),
                   le_load(lp, d->m, wino_c(lp, c, NULL, m, n)));
}

/* o[0..3] = the locals of G applied to (a, b, c): a, (a + b + c) / 2, (a - b + c) / 2, c */
static void wino_g(LoopProgram *lp, LStmt *blk, LExpr *a, LExpr *b, LExpr *c, int *o) {
  int ac = ls_local(lp, blk, LT_F32, le_add(lp, a, c));
  o[0] = ls_local(lp, blk, LT_F32, a);
  o[1] = ls_local(lp, blk, LT_F32, le_mul(lp, le_add(lp, le_local(lp, ac), b), le_f32(lp, 0.5)));
  o[2] = ls_local(lp, blk, LT_F32, le_mul(lp, le_sub(lp, le_local(lp, ac), b), le_f32(lp, 0.5)));
  o[3] = ls_local(lp, blk, LT_F32, c);
}
/* B^T applied to (d0, d1, d2, d3): d0 - d2, d1 + d2, d2 - d1, d1 - d3 */
static void wino_bt(LoopProgram *lp, LStmt *blk, LExpr *const *d, int *o) {
  o[0] = ls_local(lp, blk, LT_F32, le_sub(lp, d[0], d[2]));
  o[1] = ls_local(lp, blk, LT_F32, le_add(lp, d[1], d[2]));
  o[2] = ls_local(lp, blk, LT_F32, le_sub(lp, d[2], d[1]));
  o[3] = ls_local(lp, blk, LT_F32, le_sub(lp, d[1], d[3]));
}
/* A^T applied to (m0, m1, m2, m3): m0 + m1 + m2, m1 - m2 - m3 */
static void wino_at(LoopProgram *lp, LStmt *blk, LExpr *const *m, int *o) {
  o[0] = ls_local(lp, blk, LT_F32, le_add(lp, le_add(lp, m[0], m[1]), m[2]));
  o[1] = ls_local(lp, blk, LT_F32, le_sub(lp, le_sub(lp, m[1], m[2]), m[3]));
}
/* buf[at[4 a + s]] = (B^T d B)[a][s]: B^T down d's columns, then along each row, whose four
 * values are stored as soon as they are made */
static void wino_bt2_store(LoopProgram *lp, LStmt *blk, LExpr *const d[4][4], int buf, LExpr *const *at) {
  int rows[4][4]; /* B^T d: rows[a][col] */
  for (int s = 0; s < 4; s++) {
    LExpr *col[4] = {d[0][s], d[1][s], d[2][s], d[3][s]};
    int t[4];
    wino_bt(lp, blk, col, t);
    for (int a = 0; a < 4; a++) rows[a][s] = t[a];
  }
  for (int a = 0; a < 4; a++) {
    LExpr *row[4] = {le_local(lp, rows[a][0]), le_local(lp, rows[a][1]), le_local(lp, rows[a][2]),
                     le_local(lp, rows[a][3])};
    int o[4];
    wino_bt(lp, blk, row, o);
    for (int s = 0; s < 4; s++) ls_store(lp, blk, buf, at[a * 4 + s], le_local(lp, o[s]));
  }
}
/* for v in [0, n / V) { for l in [0, V) vec V {} }: returns the inner body, *at = v V + l */
static LStmt *vec_blocks(LoopProgram *lp, LStmt *blk, const char *name, int64_t n, LExpr **at) {
  int64_t V = lp->vec_f32;
  int v = lvar(lp, name), l = lvar(lp, "l");
  LStmt *lv = ls_for(lp, blk, v, le_i64(lp, 0), le_i64(lp, n / V));
  LStmt *ll = ls_for(lp, ls_body(lv), l, le_i64(lp, 0), le_i64(lp, V));
  ll->vec = (int)V;
  *at = le_add(lp, le_mul(lp, le_var(lp, v), le_i64(lp, V)), le_var(lp, l));
  return ls_body(ll);
}

/* ceil(wk n / P): worker wk of P takes [ceil(wk n / P), ceil((wk + 1) n / P)) of n items, so the
 * first worker has one whenever there is one (codegen estimates a parallel loop's work from its
 * first iteration: with floor bounds, 6 items over 8 workers left the first none, the estimate
 * was 0, and the loop ran on one thread) */
static LExpr *share_start(LoopProgram *lp, LExpr *wk, LExpr *n, int64_t P) {
  return le_bin(lp, LO_DIV, le_add(lp, le_mul(lp, wk, n), le_i64(lp, P - 1)), le_i64(lp, P));
}

/* The output transform of a worker's tiles: for each tile tb0 + i of the block that exists (i <
 * min(TB, T - tb0)), out[tb, q, lane] = (A^T M A) of M [wk, 16, TB, NB] (points MX floats
 * apart), NB lanes a vector loop named `name`, its 2 x 2 outputs at q = y OW + x of an OH x OW
 * plane (TW tiles a row); an odd plane's last tiles store their clamped outputs first and the
 * real ones last, where the two share a place. */
static void wino_out_tiles(LoopProgram *lp, LStmt *ib, int ms, LExpr *wk, int64_t MX, int64_t NB, int64_t TB,
                           int64_t T, int64_t TW, LExpr *tb0, int out, LExpr *tb, int64_t OH, int64_t OW,
                           const char *name) {
  int i = lvar(lp, "i");
  LStmt *li = ls_for(lp, ib, i, le_i64(lp, 0), le_bin(lp, LO_MIN, le_i64(lp, TB), le_sub(lp, le_i64(lp, T), tb0)));
  LStmt *tbk = ls_body(li);
  int tix = ls_local(lp, tbk, LT_I64, le_add(lp, tb0, le_var(lp, i)));
  int oy = ls_local(lp, tbk, LT_I64, le_mul(lp, le_bin(lp, LO_DIV, le_local(lp, tix), le_i64(lp, TW)), le_i64(lp, 2)));
  int ox = ls_local(lp, tbk, LT_I64, le_mul(lp, le_bin(lp, LO_MOD, le_local(lp, tix), le_i64(lp, TW)), le_i64(lp, 2)));
  LExpr *oy1 = le_add(lp, le_local(lp, oy), le_i64(lp, 1)), *ox1 = le_add(lp, le_local(lp, ox), le_i64(lp, 1));
  if (OH % 2) oy1 = le_bin(lp, LO_MIN, oy1, le_i64(lp, OH - 1));
  if (OW % 2) ox1 = le_bin(lp, LO_MIN, ox1, le_i64(lp, OW - 1));
  LExpr *lane;
  LStmt *vb = vec_blocks(lp, tbk, name, NB, &lane);
  LExpr *m[4][4];
  for (int a = 0; a < 4; a++)
    for (int s = 0; s < 4; s++) {
      LExpr *at = wino_scratch_at(lp, wk, le_i64(lp, a * 4 + s), MX, le_var(lp, i), NB, lane);
      m[a][s] = le_local(lp, ls_local(lp, vb, LT_F32, le_load(lp, ms, at)));
    }
  int sr[2][4]; /* A^T M: sr[r][col] */
  for (int s = 0; s < 4; s++) {
    LExpr *col[4] = {m[0][s], m[1][s], m[2][s], m[3][s]};
    int o[2];
    wino_at(lp, vb, col, o);
    sr[0][s] = o[0];
    sr[1][s] = o[1];
  }
  int yv[2][2];
  for (int r = 0; r < 2; r++) {
    LExpr *row[4] = {le_local(lp, sr[r][0]), le_local(lp, sr[r][1]), le_local(lp, sr[r][2]), le_local(lp, sr[r][3])};
    wino_at(lp, vb, row, yv[r]);
  }
  LExpr *oys[2] = {le_local(lp, oy), oy1}, *oxs[2] = {le_local(lp, ox), ox1};
  for (int r = 1; r >= 0; r--)
    for (int s = 1; s >= 0; s--) {
      LExpr *q = le_add(lp, le_mul(lp, oys[r], le_i64(lp, OW)), oxs[s]);
      ls_store(lp, vb, out, tile_at(lp, tb, OH * OW, q, NB, lane), le_local(lp, yv[r][s]));
    }
}

/* wq[fb, c, tap, nl] = w[fb NB + nl, c, tap]: the prepare kernel, and its inverse */
static int wino_pack(LowerCtx *lc, const Node *n, int w, int64_t C, int64_t F, int64_t NB) {
  LoopProgram *lp = lc->lp;
  int64_t V = lp->vec_f32, nfb = F / NB;
  const char *name = arena_printf(lp->arena, "%s.wq", n->name);
  LStmt *prep;
  int wq = lower_packed(lc, name, 9 * C * F, &prep);
  int fb = lvar(lp, "fb"), c = lvar(lp, "c"), tp = lvar(lp, "tap"), nl = lvar(lp, "nl");
  LStmt *l0 = ls_for(lp, prep, fb, le_i64(lp, 0), le_i64(lp, nfb));
  l0->parallel = 1;
  LStmt *l1 = ls_for(lp, ls_body(l0), c, le_i64(lp, 0), le_i64(lp, C));
  LStmt *l2 = ls_for(lp, ls_body(l1), tp, le_i64(lp, 0), le_i64(lp, 9));
  LStmt *l3 = ls_for(lp, ls_body(l2), nl, le_i64(lp, 0), le_i64(lp, NB));
  l3->vec = (int)V;
  LExpr *f = le_add(lp, le_mul(lp, le_var(lp, fb), le_i64(lp, NB)), le_var(lp, nl));
  LExpr *wi = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, f, le_i64(lp, C)), le_var(lp, c)), le_i64(lp, 9)),
                     le_var(lp, tp));
  LExpr *qi = ix4(lp, le_var(lp, fb), le_var(lp, c), le_var(lp, tp), le_var(lp, nl), C, 9, NB);
  ls_store(lp, ls_body(l3), wq, qi, le_load(lp, w, wi));
  LStmt *unpack = lower_unpack(lc, name, w);
  if (unpack) {
    int f2 = lvar(lp, "f"), c2 = lvar(lp, "c"), t2 = lvar(lp, "tap");
    LStmt *u0 = ls_for(lp, unpack, f2, le_i64(lp, 0), le_i64(lp, F));
    u0->parallel = 1;
    LStmt *u1 = ls_for(lp, ls_body(u0), c2, le_i64(lp, 0), le_i64(lp, C));
    LStmt *u2 = ls_for(lp, ls_body(u1), t2, le_i64(lp, 0), le_i64(lp, 9));
    LExpr *from = ix4(lp, le_bin(lp, LO_DIV, le_var(lp, f2), le_i64(lp, NB)), le_var(lp, c2), le_var(lp, t2),
                      le_bin(lp, LO_MOD, le_var(lp, f2), le_i64(lp, NB)), C, 9, NB);
    LExpr *to = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, f2), le_i64(lp, C)), le_var(lp, c2)),
                                  le_i64(lp, 9)),
                       le_var(lp, t2));
    ls_store(lp, ls_body(u2), w, to, le_load(lp, wq, from));
  }
  return wq;
}

/* u[xi, c, nl] = (G g G^T)[xi] of filter fb NB + nl, channel c0 + c, for c < count: the call's U
 * for every channel in one parallel loop (wk NULL), or a worker's chunk (wk: at u's point rows
 * UX apart from worker wk's first, serial) */
static void wino_weights(LoopProgram *lp, LStmt *body, int wq, int u, LExpr *fb, int64_t C, int64_t NB, LExpr *wk,
                         LExpr *c0, int64_t count, int64_t UX) {
  int64_t V = lp->vec_f32;
  int c = lvar(lp, "c"), nl = lvar(lp, "nl");
  LStmt *l0 = ls_for(lp, body, c, le_i64(lp, 0), le_i64(lp, count));
  l0->parallel = !wk;
  LExpr *ch = le_add(lp, c0, le_var(lp, c));
  LStmt *l1 = ls_for(lp, ls_body(l0), nl, le_i64(lp, 0), le_i64(lp, NB));
  l1->vec = (int)V;
  LStmt *vb = ls_body(l1);
  LExpr *g[3][3];
  for (int ky = 0; ky < 3; ky++)
    for (int kx = 0; kx < 3; kx++)
      g[ky][kx] = le_local(lp, ls_local(lp, vb, LT_F32,
                                        le_load(lp, wq, ix4(lp, fb, ch, le_i64(lp, ky * 3 + kx),
                                                            le_var(lp, nl), C, 9, NB))));
  int gg[4][3]; /* G g: gg[i][kx] */
  for (int kx = 0; kx < 3; kx++) {
    int o[4];
    wino_g(lp, vb, g[0][kx], g[1][kx], g[2][kx], o);
    for (int i = 0; i < 4; i++) gg[i][kx] = o[i];
  }
  for (int i = 0; i < 4; i++) {
    int o[4];
    wino_g(lp, vb, le_local(lp, gg[i][0]), le_local(lp, gg[i][1]), le_local(lp, gg[i][2]), o);
    for (int j = 0; j < 4; j++) {
      LExpr *at = wk ? wino_scratch_at(lp, wk, le_i64(lp, i * 4 + j), UX, le_var(lp, c), NB, le_var(lp, nl))
                     : ix4(lp, le_i64(lp, 0), le_i64(lp, i * 4 + j), le_var(lp, c), le_var(lp, nl), 16, C, NB);
      ls_store(lp, vb, u, at, le_local(lp, o[j]));
    }
  }
}

static void lower_conv2d_winograd(LowerCtx *lc, const Node *n, int x, int y, int w, int bias) {
  LoopProgram *lp = lc->lp;
  Conv2dInput ci = conv2d_input(lc->g, n);
  int64_t C = ci.C, H = ci.H, W = ci.W, cb = ci.cb, Wp = ci.Wp, p = ci.p, Hp = H + 2 * p, CB = C / cb;
  int64_t F = n->a.units, OH = n->shape.d[1].n, OW = n->shape.d[2].n, OHW = OH * OW, V = lp->vec_f32;
  int64_t NB = wino_nb(F, V), nfb = F / NB, TW = (OW + 1) / 2, T = (OH + 1) / 2 * TW;
  int local = T <= WINO_LOCAL_TILES;
  int64_t TB, ntb;
  if (local) {
    /* a small plane: blocks of at most WINO_LOCAL_TB tiles, as even as can be */
    ntb = (T + WINO_LOCAL_TB - 1) / WINO_LOCAL_TB;
    TB = (T + ntb - 1) / ntb;
  } else {
    /* blocks of TB tiles, TB a multiple of WINO_MR up to WINO_TB: the fewest tiles computed
     * (counting an item's own cost as a tile's) among the sizes that give a batch row at
     * least WINO_ITEMS blocks (work for the threads at batch 1), or the smallest size when
     * none does */
    TB = WINO_MR, ntb = (T + TB - 1) / TB;
    for (int64_t tb = WINO_MR; tb <= WINO_TB; tb += WINO_MR) {
      int64_t nb = (T + tb - 1) / tb;
      if (nb >= WINO_ITEMS && nb * (tb + 1) <= ntb * (TB + 1)) TB = tb, ntb = nb;
    }
  }
  /* the fewest chunks of at most WINO_CC (local: WINO_LOCAL_CC) channels, all the same size
   * (whole vectors) */
  int64_t nch = 1, ccmax = local ? WINO_LOCAL_CC : WINO_CC;
  while ((C / V) % nch || C / nch > ccmax) nch++;
  int64_t CC = C / nch, P = WINO_WORKERS, plane = Hp * Wp * cb;

  int wq = wino_pack(lc, n, w, C, F, NB);
  LStmt *body = lower_begin(lc, n);
  int xp = lc->chain_buf[n->id] >= 0 ? lc->chain_buf[n->id]
                                     : lower_pad2d_blocked(lc, body, n, x, C, H, W, p, Wp, cb, 0.0);
  int t = lower_scratch(lc, arena_printf(lp->arena, "%s.t", n->name), LT_F32, (SymCount){OHW * F, 0}, 1);
  int64_t UX = local ? wino_stride(CC, NB) : 0, VX = wino_stride(TB, CC), MX = wino_stride(TB, NB);
  int u = lower_scratch(lc, arena_printf(lp->arena, "%s.wu", n->name), LT_F32,
                        (SymCount){local ? P * 16 * UX : 16 * C * NB, 0}, 0);
  int vs = lower_scratch(lc, arena_printf(lp->arena, "%s.wv", n->name), LT_F32, (SymCount){P * 16 * VX, 0}, 0);
  int ms = lower_scratch(lc, arena_printf(lp->arena, "%s.wm", n->name), LT_F32, (SymCount){P * 16 * MX, 0}, 0);

  /* shared U: per filter block in turn, its U for the call, then the workers over the (batch
   * row, tile block) items; local U (a small plane): the workers over the (batch row, filter
   * block, tile block) items at once, each making its U chunk by chunk */
  LStmt *outer = body;
  LExpr *fbx;
  int fb = lvar(lp, "fb");
  if (!local) {
    LStmt *lfb = ls_for(lp, body, fb, le_i64(lp, 0), le_i64(lp, nfb));
    outer = ls_body(lfb);
    wino_weights(lp, outer, wq, u, le_var(lp, fb), C, NB, NULL, le_i64(lp, 0), C, 0);
  }

  /* the workers: worker wk takes the items [ceil(wk NI / P), ceil((wk + 1) NI / P)) (share_start) */
  int wk = lvar(lp, "wk"), it = lvar(lp, "it");
  LStmt *lw = ls_for(lp, outer, wk, le_i64(lp, 0), le_i64(lp, P));
  lw->parallel = 1; /* disjoint tiles of t, each worker its own scratch */
  int64_t per_row = local ? nfb * ntb : ntb;
  LExpr *NI = le_mul(lp, le_batch(lp), le_i64(lp, per_row));
  LStmt *lit = ls_for(lp, ls_body(lw), it, share_start(lp, le_var(lp, wk), NI, P),
                      share_start(lp, le_add(lp, le_var(lp, wk), le_i64(lp, 1)), NI, P));
  LStmt *ib = ls_body(lit);
  int bl = ls_local(lp, ib, LT_I64, le_bin(lp, LO_DIV, le_var(lp, it), le_i64(lp, per_row)));
  int tb0 = ls_local(lp, ib, LT_I64, le_mul(lp, le_bin(lp, LO_MOD, le_var(lp, it), le_i64(lp, ntb)), le_i64(lp, TB)));
  fbx = local ? le_local(lp, ls_local(lp, ib, LT_I64, le_bin(lp, LO_MOD, le_bin(lp, LO_DIV, le_var(lp, it),
                                                                               le_i64(lp, ntb)),
                                                               le_i64(lp, nfb))))
              : le_var(lp, fb);
  int cc = lvar(lp, "cc");
  LStmt *lcc = ls_for(lp, ib, cc, le_i64(lp, 0), le_i64(lp, nch));
  LStmt *ccb = ls_body(lcc);
  if (local)
    wino_weights(lp, ccb, wq, u, fbx, C, NB, le_var(lp, wk), le_mul(lp, le_var(lp, cc), le_i64(lp, CC)), CC, UX);

  /* V[wk, xi, i, c] = (B^T d B)[xi] of tile tb0 + i (the plane's last tile for those past it),
   * channel cc CC + c */
  {
    int i = lvar(lp, "i"), cv = lvar(lp, "cv"), l = lvar(lp, "l");
    LStmt *li = ls_for(lp, ccb, i, le_i64(lp, 0), le_i64(lp, TB));
    LStmt *tbk = ls_body(li);
    int tix = ls_local(lp, tbk, LT_I64,
                       le_bin(lp, LO_MIN, le_add(lp, le_local(lp, tb0), le_var(lp, i)), le_i64(lp, T - 1)));
    LExpr *r0 = le_mul(lp, le_bin(lp, LO_DIV, le_local(lp, tix), le_i64(lp, TW)), le_i64(lp, 2));
    LExpr *c0 = le_mul(lp, le_bin(lp, LO_MOD, le_local(lp, tix), le_i64(lp, TW)), le_i64(lp, 2));
    int rowoff[4], coloff[4];
    for (int a = 0; a < 4; a++) {
      LExpr *r = le_add(lp, r0, le_i64(lp, a)), *col = le_add(lp, c0, le_i64(lp, a));
      if (OH % 2) r = le_bin(lp, LO_MIN, r, le_i64(lp, Hp - 1));
      if (OW % 2) col = le_bin(lp, LO_MIN, col, le_i64(lp, Wp - 1));
      rowoff[a] = ls_local(lp, tbk, LT_I64, le_mul(lp, r, le_i64(lp, Wp * cb)));
      coloff[a] = ls_local(lp, tbk, LT_I64, le_mul(lp, col, le_i64(lp, cb)));
    }
    LStmt *lcv = ls_for(lp, tbk, cv, le_i64(lp, 0), le_i64(lp, CC / V));
    LExpr *cin = le_add(lp, le_mul(lp, le_var(lp, cc), le_i64(lp, CC)), le_mul(lp, le_var(lp, cv), le_i64(lp, V)));
    LExpr *blk = le_bin(lp, LO_DIV, cin, le_i64(lp, cb));
    LExpr *inb = cb == V ? le_i64(lp, 0) : le_bin(lp, LO_MOD, cin, le_i64(lp, cb));
    int base = ls_local(lp, ls_body(lcv), LT_I64,
                        le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_local(lp, bl), le_i64(lp, CB)), blk),
                                          le_i64(lp, plane)),
                               inb));
    LStmt *ll = ls_for(lp, ls_body(lcv), l, le_i64(lp, 0), le_i64(lp, V));
    ll->vec = (int)V;
    LStmt *vb = ls_body(ll);
    LExpr *d[4][4];
    for (int a = 0; a < 4; a++)
      for (int s = 0; s < 4; s++)
        d[a][s] = le_local(lp, ls_local(lp, vb, LT_F32,
                                        le_load(lp, xp, le_add(lp, le_add(lp, le_local(lp, base), le_var(lp, l)),
                                                               le_add(lp, le_local(lp, rowoff[a]),
                                                                      le_local(lp, coloff[s]))))));
    LExpr *at[16], *k = le_add(lp, le_mul(lp, le_var(lp, cv), le_i64(lp, V)), le_var(lp, l));
    for (int xi = 0; xi < 16; xi++) at[xi] = wino_scratch_at(lp, le_var(lp, wk), le_i64(lp, xi), VX, le_var(lp, i), CC, k);
    wino_bt2_store(lp, vb, d, vs, at);
  }

  /* M_xi (+)= V_xi U_xi over the chunk */
  {
    int xi = lvar(lp, "xi");
    LStmt *lxi = ls_for(lp, ccb, xi, le_i64(lp, 0), le_i64(lp, 16));
    Wino wd = {.C = C, .CC = CC, .NB = NB, .TB = TB, .VX = VX, .MX = MX, .UX = UX, .m = ms, .wk = le_var(lp, wk), .xi = le_var(lp, xi),
               .cc = le_var(lp, cc)};
    GemmSpec g = {.M = le_i64(lp, TB), .N = le_i64(lp, NB), .K = le_i64(lp, CC), .a = vs, .b = u, .c = ms,
                  .a_at = wino_a, .b_at = wino_b, .c_at = wino_c, .init = nch > 1 ? wino_init : NULL,
                  .parallel = GEMM_PAR_NONE, .ctx = &wd, .name = "w",
                  /* one or two vectors of filters: rows of tiles as tall as the registers allow
                   * (6 x 1 vector tiles are latency bound) */
                  .tall = NB <= 2 * V};
    gemm_bcast(lp, ls_body(lxi), &g);
  }

  /* t[b, fb, oy, ox, fl] = (A^T M A) of each tile of the block that exists */
  wino_out_tiles(lp, ib, ms, le_var(lp, wk), MX, NB, TB, T, TW, le_local(lp, tb0), t,
                 le_add(lp, le_mul(lp, le_local(lp, bl), le_i64(lp, nfb)), fbx), OH, OW, "fv");

  /* the write-back: y (NCHW) or the consumer's copy, a block of rows of a filter block each */
  if (lc->chain_to[n->id] >= 0) {
    Conv2dChain chain = conv2d_chain_begin(lc, n, &lc->g->nodes[lc->chain_to[n->id]]);
    int64_t nrb = OH < 8 ? OH : 8, rb = (OH + nrb - 1) / nrb;
    nrb = (OH + rb - 1) / rb;
    int v = lvar(lp, "bfr");
    LStmt *lv = ls_for(lp, body, v, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, nfb * nrb)));
    lv->parallel = 1; /* disjoint rows of the copy */
    LStmt *vb = ls_body(lv);
    int b2 = ls_local(lp, vb, LT_I64, le_bin(lp, LO_DIV, le_var(lp, v), le_i64(lp, nfb * nrb)));
    int fb2 = ls_local(lp, vb, LT_I64,
                       le_bin(lp, LO_MOD, le_bin(lp, LO_DIV, le_var(lp, v), le_i64(lp, nrb)), le_i64(lp, nfb)));
    LExpr *r0 = le_mul(lp, le_bin(lp, LO_MOD, le_var(lp, v), le_i64(lp, nrb)), le_i64(lp, rb));
    conv2d_chain_rows(lc, n, &chain, vb, t, bias, NB, nfb, le_local(lp, b2), le_local(lp, fb2), r0,
                      le_bin(lp, LO_MIN, le_add(lp, r0, le_i64(lp, rb)), le_i64(lp, OH)));
    return;
  }
  conv2d_write_nchw(lc, n, body, t, y, bias, F, OHW, NB, nfb);
}

/* The flat planes' element under kernel tap t = ky * kw + kx, rows of `row` floats. */
static LExpr *tap_at(LoopProgram *lp, LExpr *b, int64_t planes, LExpr *ch, int64_t plane, LExpr *pos, LExpr *t,
                     int64_t kw, int64_t row) {
  LExpr *ky = le_bin(lp, LO_DIV, t, le_i64(lp, kw)), *kx = le_bin(lp, LO_MOD, t, le_i64(lp, kw));
  return plane_at(lp, b, planes, ch, plane, le_add(lp, pos, le_add(lp, le_mul(lp, ky, le_i64(lp, row)), kx)));
}

/* Where a per-batch-row product runs on threads: a row with less than CONV_ROW_PAR_MACS
 * multiply-adds is too little to split (and a parallel region per row wakes the pool once per
 * row: LeNet-5's c1 at batch 64 ran slower on 2 threads than on 1), so the batch loop is the
 * parallel one and the product inside runs serially; a larger row splits its column blocks. */
enum { CONV_ROW_PAR_MACS = 1 << 20 };
/* A 1x1 layer's input (a batch row) of at least this many floats (128 KB) prefetches (gemm.h,
 * prefetch_b): below it, it stays in L1 or L2 over the panels */
enum { CONV_PREFETCH_FLOATS = 1 << 15 };
static void batch_rows_parallel(LStmt *lb, GemmSpec *g, int64_t row_macs) {
  if (row_macs < CONV_ROW_PAR_MACS) {
    lb->parallel = 1;
    g->parallel = GEMM_PAR_NONE;
  }
}

/* Few filters (F < V) at stride 1, and any 1x1 layer at stride 1 without padding: a
 * batch-reduce gemm_bcast per batch row over the flat
 * padded plane, the output positions q = oy Wp + ox (q < (OH - 1) Wp + OW, so no read leaves
 * the padded input; the columns ox >= OW are computed and dropped):
 *   yq[f, q] = bias[f] + sum_c sum_{ky, kx} W[f, c, ky, kx] xp[b, c, q + ky Wp + kx]
 * rows f, columns q (vectors of positions), reduced over the channels (br) and the taps (k):
 * register tiles of filters x position vectors instead of one accumulator per vector; then
 * y[b, f, oy, ox] = epilogue(yq[f, oy Wp + ox]).  A 1x1 kernel without padding has no dropped
 * columns: a plain GEMM (K = C) writes y itself, the epilogue applied on the way. */
typedef struct ConvFlat {
  int64_t C, k, Hp, Wp, NQ, F;
  int b, bias;
  LowerCtx *lc;
  const Node *n;
} ConvFlat;

static LExpr *flat_w(LoopProgram *lp, const void *c, LExpr *ch, LExpr *f, LExpr *t) {
  const ConvFlat *d = c;
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, f, le_i64(lp, d->C)), ch), le_i64(lp, d->k * d->k)), t);
}
static LExpr *flat_x(LoopProgram *lp, const void *c, LExpr *ch, LExpr *q, LExpr *t) {
  const ConvFlat *d = c;
  return tap_at(lp, le_var(lp, d->b), d->C, ch, d->Hp * d->Wp, q, t, d->k, d->Wp);
}
/* the 1x1 case: A(m = f, k = c) = W[f, c], B(n = q, k = c) = x[b, c, q] */
static LExpr *flat1_w(LoopProgram *lp, const void *c, LExpr *br, LExpr *f, LExpr *ch) {
  (void)br;
  return le_add(lp, le_mul(lp, f, le_i64(lp, ((const ConvFlat *)c)->C)), ch);
}
static LExpr *flat1_x(LoopProgram *lp, const void *c, LExpr *br, LExpr *q, LExpr *ch) {
  (void)br;
  const ConvFlat *d = c;
  return plane_at(lp, le_var(lp, d->b), d->C, ch, d->NQ, q);
}
/* y[b, f, q] (NQ = OHW then, as conv_y_at wants), or the scratch yq's [B, F, NQ] */
static LExpr *flat_out(LoopProgram *lp, const void *c, LExpr *br, LExpr *f, LExpr *q) {
  (void)br;
  const ConvFlat *d = c;
  return conv_y_at(d->lc, d->n, le_var(lp, d->b), f, d->NQ, q);
}
static LExpr *flat_bias(LoopProgram *lp, const void *c, LExpr *f, LExpr *q) {
  (void)q;
  return le_load(lp, ((const ConvFlat *)c)->bias, f);
}
static LExpr *flat_epilogue(LoopProgram *lp, const void *c, LExpr *v, LExpr *f, LExpr *q) {
  const ConvFlat *d = c;
  return lower_epilogue(d->lc, d->n, v, flat_out(lp, c, NULL, f, q));
}

static void lower_conv2d_flat(LowerCtx *lc, const Node *n, LStmt *body, int xp, int y, int w, int bias) {
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  int64_t C = in.d[0].n, H = in.d[1].n, W = in.d[2].n, F = n->a.units, k = n->a.kernel, p = n->a.pad;
  int64_t OH = n->shape.d[1].n, OW = n->shape.d[2].n, Wp = W + 2 * p;
  ConvFlat cf = {.C = C, .k = k, .Hp = H + 2 * p, .Wp = Wp, .NQ = (OH - 1) * Wp + OW, .F = F, .bias = bias,
                 .lc = lc, .n = n};
  /* a 1x1 kernel without padding: the flat positions are y's own, so the product goes
   * straight into y through the epilogue (its part of a concatenation's planes too) */
  int direct = k == 1 && p == 0;
  int64_t pitch, off;
  if (!direct && lower_placed(lc, n, &pitch, &off)) die("lower_conv2d_flat: %s placed", n->name);
  int yq = direct ? y : lower_scratch(lc, arena_printf(lp->arena, "%s.q", n->name), LT_F32, (SymCount){F * cf.NQ, 0}, 1);
  cf.b = lvar(lp, "b");
  LStmt *lb = ls_for(lp, body, cf.b, le_i64(lp, 0), le_batch(lp));
  GemmSpec g = {.M = le_i64(lp, F), .N = le_i64(lp, cf.NQ), .K = le_i64(lp, k * k), .BR = le_i64(lp, C),
                .a = w, .b = xp, .c = yq, .a_at = flat_w, .b_at = flat_x, .c_at = flat_out,
                .init = bias >= 0 ? flat_bias : NULL, .ctx = &cf};
  batch_rows_parallel(lb, &g, F * cf.NQ * C * k * k);
  if (direct) {
    /* a plain GEMM over the channels (K = C): slices of K, not of a batch-reduce */
    g.K = le_i64(lp, C);
    g.BR = NULL;
    g.a_at = flat1_w;
    g.b_at = flat1_x;
    if (lower_has_epilogue(lc, n)) g.epilogue = flat_epilogue;
    /* an input past L1 (Inception's 192 x 28 x 28, 602 KB a batch row) streams from L2 or
     * memory through the panels, each a short run of every plane: prefetched */
    g.prefetch_b = C * cf.NQ >= CONV_PREFETCH_FLOATS;
    gemm_bcast(lp, ls_body(lb), &g);
    return;
  }
  gemm_bcast(lp, ls_body(lb), &g);
  int r = lvar(lp, "bf"), oy = lvar(lp, "oy"), ox = lvar(lp, "ox");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, F)));
  lr->parallel = 1; /* disjoint planes of y */
  LStmt *loy = ls_for(lp, ls_body(lr), oy, le_i64(lp, 0), le_i64(lp, OH));
  LStmt *lox = ls_for(lp, ls_body(loy), ox, le_i64(lp, 0), le_i64(lp, OW));
  lox->vec = lp->vec_f32;
  LExpr *from = le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, cf.NQ)),
                       le_add(lp, le_mul(lp, le_var(lp, oy), le_i64(lp, Wp)), le_var(lp, ox)));
  LExpr *yi = ix4(lp, le_i64(lp, 0), le_var(lp, r), le_var(lp, oy), le_var(lp, ox), 1, OH, OW);
  ls_store(lp, ls_body(lox), y, yi, lower_epilogue(lc, n, le_load(lp, yq, from), yi));
}

/* Few filters (F < V) with a kernel wider than 1 or padding: vectorized over the output
 * columns, straight into y in NCHW (lower_conv2d_cols) rather than through the flat GEMM, whose
 * sums have the padded row pitch and go through a copy into y.  Where the flat GEMM computes
 * fewer positions (narrow rows: an 8-column row takes a whole vector here), and for 1x1
 * layers without padding (a GEMM in place), the flat way; at a stride always this one. */
static int conv2d_by_cols(const LoopProgram *lp, const Node *n) {
  int64_t V = lp->vec_f32, k = n->a.kernel, s = n->a.stride, p = n->a.pad;
  if (s > 1) return 1;
  if (k == 1 && p == 0) return 0;
  int64_t OH = n->shape.d[1].n, OW = n->shape.d[2].n, Wp = OW + k - 1;
  int64_t flat = round_up((OH - 1) * Wp + OW, V), cols = (OW + V - 1) / V * V * OH;
  return cols * 8 <= flat * 9; /* the flat way's copy into y is worth about an eighth */
}

/* The output rows a block of lower_conv2d_cols: as many as the registers hold with the F R
 * accumulators, the block's (R - 1) s + k input rows (LLVM's scheduler loads them all up
 * front: with 6 filters x 4 rows, 24 accumulators and 8 rows spilled on AVX-512, and 3 rows
 * ran the LeNet-5 training step 1.07x faster) and a few more for a broadcast and addresses;
 * at most CONV2D_MAXRY and OH. */
static int64_t conv2d_cols_rows(const LoopProgram *lp, int64_t F, int64_t k, int64_t s, int64_t OH) {
  int64_t regs = lp->vec_f32 >= 16 ? 32 : 16, R = 1;
  while (R < CONV2D_MAXRY && R < OH && F * (R + 1) + R * s + k <= regs - 4) R++;
  return R;
}

/* R output rows from oy0 (an expression) of batch row b, all F filters, for the vector of
 * output columns at ox (lower_conv2d_cols). */
static void conv2d_cols_block(LowerCtx *lc, const Node *n, LStmt *blk, int xp, int y, int w, int bias, int b,
                              LExpr *oy0, int64_t R) { /* b: an i64 local */
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  int64_t C = in.d[0].n, F = n->a.units, k = n->a.kernel, s = n->a.stride, p = n->a.pad;
  int64_t Hp = in.d[1].n + 2 * p, Wp = in.d[2].n + 2 * p, OH = n->shape.d[1].n, OW = n->shape.d[2].n;
  int ox = lvar(lp, "ox"), c = lvar(lp, "c"), kx = lvar(lp, "kx");
  LStmt *lox = ls_for(lp, blk, ox, le_i64(lp, 0), le_i64(lp, OW));
  lox->vec = lp->vec_f32;
  LStmt *ob = ls_body(lox);
  int acc[CONV2D_MAXRY * 16];
  if (R * F > CONV2D_MAXRY * 16) die("conv2d_cols_block: %lld x %lld sums", (long long)R, (long long)F);
  for (int64_t r = 0; r < R; r++)
    for (int64_t f = 0; f < F; f++)
      acc[r * F + f] = ls_local(lp, ob, LT_F32, bias >= 0 ? le_load(lp, bias, le_i64(lp, f)) : le_f32(lp, 0));
  LStmt *lc_ = ls_for(lp, ob, c, le_i64(lp, 0), le_i64(lp, C));
  LStmt *lkx = ls_for(lp, ls_body(lc_), kx, le_i64(lp, 0), le_i64(lp, k));
  lkx->unroll = -1; /* a step is F R k FMAs already */
  LStmt *kb = ls_body(lkx);
  /* input row t of the block (row oy0 s + t) feeds output row r through kernel row t - r s */
  LExpr *row0 = le_mul(lp, oy0, le_i64(lp, s));
  LExpr *col = le_add(lp, le_mul(lp, le_var(lp, ox), le_i64(lp, s)), le_var(lp, kx));
  for (int64_t t = 0; t < (R - 1) * s + k; t++) {
    LExpr *xi = ix4(lp, le_local(lp, b), le_var(lp, c), le_add(lp, row0, le_i64(lp, t)), col, C, Hp, Wp);
    int xv = ls_local(lp, kb, LT_F32, le_load(lp, xp, xi));
    for (int64_t r = 0; r < R; r++) {
      int64_t ky = t - r * s;
      if (ky < 0 || ky >= k) continue;
      for (int64_t f = 0; f < F; f++) {
        LExpr *wi = ix4(lp, le_i64(lp, f), le_var(lp, c), le_i64(lp, ky), le_var(lp, kx), C, k, k);
        ls_set(lp, kb, acc[r * F + f], le_fma(lp, le_local(lp, xv), le_load(lp, w, wi), le_local(lp, acc[r * F + f])));
      }
    }
  }
  for (int64_t r = 0; r < R; r++)
    for (int64_t f = 0; f < F; f++) {
      LExpr *yi = ix4(lp, le_local(lp, b), le_i64(lp, f), le_add(lp, oy0, le_i64(lp, r)), le_var(lp, ox), F, OH, OW);
      ls_store(lp, ob, y, yi, lower_epilogue(lc, n, le_local(lp, acc[r * F + f]), yi));
    }
}

/* conv2d with few filters (F < V), vectorized over output columns (conv2d_by_cols): for each
 * (batch row, block of R output rows), in parallel, and each vector of output columns (the
 * last one masked), F R accumulators start at the bias; for each channel c and kernel column
 * kx, each of the block's (R - 1) s + k input rows is loaded once (a vector; lane by lane at a
 * stride) and feeds, through the weights w[f, c, ky, kx] (broadcasts), the rows r it is kernel
 * row ky = t - r s of: F R k FMAs for (R - 1) s + k loads and F k broadcasts.  The sums go
 * through the epilogue straight into y.  OH % R rows left over make a last, smaller block. */
static void lower_conv2d_cols(LowerCtx *lc, const Node *n, LStmt *body, int xp, int y, int w, int bias) {
  LoopProgram *lp = lc->lp;
  int64_t F = n->a.units, OH = n->shape.d[1].n;
  int64_t R = conv2d_cols_rows(lp, F, n->a.kernel, n->a.stride, OH), NB = (OH + R - 1) / R, rest = OH % R;
  int br = lvar(lp, "br");
  LStmt *lb = ls_for(lp, body, br, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, NB)));
  lb->parallel = 1; /* disjoint rows of y */
  LStmt *bb = ls_body(lb);
  int b = ls_local(lp, bb, LT_I64, le_bin(lp, LO_DIV, le_var(lp, br), le_i64(lp, NB)));
  int rb = ls_local(lp, bb, LT_I64, le_bin(lp, LO_MOD, le_var(lp, br), le_i64(lp, NB)));
  LExpr *oy0 = le_mul(lp, le_local(lp, rb), le_i64(lp, R));
  if (!rest) {
    conv2d_cols_block(lc, n, bb, xp, y, w, bias, b, oy0, R);
    return;
  }
  LStmt *full = ls_if(lp, bb, le_bin(lp, LO_LT, le_local(lp, rb), le_i64(lp, NB - 1)));
  conv2d_cols_block(lc, n, ls_body(full), xp, y, w, bias, b, oy0, R);
  LStmt *last = ls_if(lp, bb, le_bin(lp, LO_EQ, le_local(lp, rb), le_i64(lp, NB - 1)));
  conv2d_cols_block(lc, n, ls_body(last), xp, y, w, bias, b, le_i64(lp, (NB - 1) * R), rest);
}

/* OpInfo.can_place: the tiled layers (conv2d_write_square, conv2d_write_nchw) and the 1x1 ones
 * that write y from their GEMM (lower_conv2d_flat) index y through conv_y_at; not one that
 * writes into its consumer's copy (chained) or adds a residual on the way. */
static int conv2d_can_place(const LowerCtx *lc, const Node *n) {
  if (lc->fused_add[n->id] >= 0 || lc->chain_to[n->id] >= 0) return 0;
  return conv2d_is_tiled(n, lc->lp->vec_f32) || (n->a.kernel == 1 && n->a.stride == 1 && n->a.pad == 0);
}

static void lower_conv2d(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  int64_t C = in.d[0].n, H = in.d[1].n, W = in.d[2].n, s = n->a.stride, p = n->a.pad, Wp = W + 2 * p;
  int x = lower_value(lc, n->in[0]), y = lower_value(lc, n->id);
  int w = lower_param(lc, n, 0), bias = n->a.bias ? lower_param(lc, n, 1) : -1;

  if (conv2d_winograd(lc, n)) {
    lower_conv2d_winograd(lc, n, x, y, w, bias);
    return;
  }
  /* a 1x1 kernel at stride 1 without padding is a GEMM in NCHW: no copies (flat below) */
  if (conv2d_is_tiled(n, lp->vec_f32)) {
    lower_conv2d_tiled(lc, n, x, y, w, bias);
    return;
  }

  LStmt *body = lower_begin(lc, n);
  int xp = lower_pad2d(lc, body, n, x, C, H, W, p, Wp, 0.0);
  if (s == 1 && !conv2d_by_cols(lp, n)) {
    lower_conv2d_flat(lc, n, body, xp, y, w, bias);
    return;
  }
  lower_conv2d_cols(lc, n, body, xp, y, w, bias);
}

/* --- the gradient rule (conv2d and conv1d) ---
 *   dx = the transposed convolution of dy with W   (_conv_dx, x's shape, when x needs one)
 *   dW = correlation of the padded x with dy       (_conv_dw, W's shape, unbatched)
 *   db = sum of dy over the batch and positions    (_conv_db, [F])
 * dy is the gradient of the conv's output; a fused activation's gradient was applied before
 * (its rule reads the activation's output), so the conv's own value is never read. */
static void grad_conv(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  int x = g->nodes[n].in[0];
  if (ad_wants(ad, x)) {
    int in[2] = {dy, ad_param(ad, n, 0)};
    ad_input_grad(ad, n, 0, ad_node_like(ad, OP_conv_dx, in, 2, n, 0, x));
  }
  if (ad_wants_param(ad, n, 0)) {
    int in[2] = {dy, x};
    ad_param_grad(ad, n, 0, ad_node(ad, OP_conv_dw, in, 2, n, 0,
                                    g->params[g->nodes[n].first_param].shape, 0));
  }
  if (g->nodes[n].a.bias && ad_wants_param(ad, n, 1))
    ad_param_grad(ad, n, 1, ad_node(ad, OP_conv_db, &dy, 1, n, 1,
                                    g->params[g->nodes[n].first_param + 1].shape, 0));
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
    .plan = plan_conv2d,
    .can_place = conv2d_can_place,
    .grad = grad_conv,
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
    .grad = grad_conv,
};

/* --- the gradient program (ops.def) ---
 * conv1d is conv2d with a height of 1: H = 1, kh = 1, sh = 1, ph = 0, W = L, kw = k, sw = s,
 * pw = p.  All sizes are constants.
 *   x [B, C, H, W], W [F, C, kh, kw], dy [B, F, OH, OW]
 * _conv_dx: the transposed convolution as a stride-1 correlation: dy is spread into a
 *   zeroed scratch dyp [B, F, H + kh - 1, W + kw - 1] (dilated by the stride, shifted by
 *   kh - 1 - ph rows and kw - 1 - pw columns; rows and columns of dy whose windows hold only
 *   padding are left out), then
 *     dx[b, c, iy, ix] = sum_{f, ky, kx} dyp[b, f, iy + ky, ix + kx] W[f, c, kh-1-ky, kw-1-kx]
 *   a batch-reduce gemm_bcast per batch row (gemm.h: vectorized over the flat positions,
 *   contiguous loads of dyp, W broadcast; reduced over the filters and the taps).  Input rows
 *   and columns that no window reads (floored windows) meet only zeros of dyp: gradient 0.
 * _conv_dw: dW[f, c, ky, kx] = sum_{b, oy, ox} dy[b, f, oy, ox] xp[b, c, oy sh + ky, ox sw + kx]
 *   (xp: x zero-padded): for 16 or 32 filters vectorized over the filters, dy transposed to
 *   [B, OH OW, F]: a gemm_bcast with tall tiles of (c, ky, kx) taps (lower_conv_dw_filters),
 *   or for one vector of filters, where that saves enough, several kx taps a step
 *   (lower_conv_dw_taps); else a batch-reduce gemm_dot (gemm.h) over flat planes, register
 *   tiles of filters x taps.
 * _conv_db: db[f] = sum_{b, q} dy[b, f, q] the same way. */
typedef struct ConvGeo {
  int64_t C, H, W, F, kh, kw, sh, sw, ph, pw, OH, OW;
} ConvGeo;

static ConvGeo conv_geo(const Graph *g, const Node *f) {
  Shape in = in_shape(g, f, 0);
  ConvGeo c = {.C = in.d[0].n, .F = f->a.units};
  if (f->op == OP_conv2d) {
    c.H = in.d[1].n;
    c.W = in.d[2].n;
    c.kh = c.kw = f->a.kernel;
    c.sh = c.sw = f->a.stride;
    c.ph = c.pw = f->a.pad;
    c.OH = f->shape.d[1].n;
    c.OW = f->shape.d[2].n;
  } else {
    c.H = 1;
    c.W = in.d[1].n;
    c.kh = 1;
    c.kw = f->a.kernel;
    c.sh = 1;
    c.sw = f->a.stride;
    c.ph = 0;
    c.pw = f->a.pad;
    c.OH = 1;
    c.OW = f->shape.d[1].n;
  }
  return c;
}

/* for r in [0, rows) parallel { dst[r len + i] = 0 for i < len; ... }: returns the loop, *r its
 * variable; the caller appends the row's copy, so each row is zeroed and filled while in cache
 * and the rows are shared by the threads */
static LStmt *zeroed_rows(LoopProgram *lp, LStmt *body, const char *name, int dst, LExpr *rows, int64_t len,
                          int *r) {
  *r = lvar(lp, name);
  int i = lvar(lp, "i");
  LStmt *lr = ls_for(lp, body, *r, le_i64(lp, 0), rows);
  lr->parallel = 1;
  LStmt *l = ls_for(lp, ls_body(lr), i, le_i64(lp, 0), le_i64(lp, len));
  l->vec = lp->vec_f32;
  ls_store(lp, ls_body(l), dst, le_add(lp, le_mul(lp, le_var(lp, *r), le_i64(lp, len)), le_var(lp, i)), le_f32(lp, 0));
  return lr;
}


/* dx as a batch-reduce product (gemm_bcast), per batch row b: rows c, columns q of the flat
 * planes, reduced over the filters f (br) and the taps t = (ky, kx) (k):
 *   A(f, c, t) = W[f, c, kh-1-ky, kw-1-kx],  B(f, q, t) = dyp[b, f, q + ky Wq + kx] */
typedef struct ConvDx {
  const ConvGeo *g;
  int b;               /* the batch row's loop variable */
  int64_t DPS, Wq, NQ;
} ConvDx;

static LExpr *dx_w(LoopProgram *lp, const void *c, LExpr *f, LExpr *ch, LExpr *t) {
  const ConvGeo *g = ((const ConvDx *)c)->g;
  LExpr *ky = le_bin(lp, LO_DIV, t, le_i64(lp, g->kw)), *kx = le_bin(lp, LO_MOD, t, le_i64(lp, g->kw));
  return ix4(lp, f, ch, le_sub(lp, le_i64(lp, g->kh - 1), ky), le_sub(lp, le_i64(lp, g->kw - 1), kx), g->C,
             g->kh, g->kw);
}
static LExpr *dx_dyp(LoopProgram *lp, const void *c, LExpr *f, LExpr *q, LExpr *t) {
  const ConvDx *d = c;
  return tap_at(lp, le_var(lp, d->b), d->g->F, f, d->DPS, q, t, d->g->kw, d->Wq);
}
static LExpr *dx_out(LoopProgram *lp, const void *c, LExpr *br, LExpr *ch, LExpr *q) {
  (void)br;
  const ConvDx *d = c;
  return plane_at(lp, le_var(lp, d->b), d->g->C, ch, d->NQ, q);
}

/* dW as a batch-reduce product (gemm_dot): rows f, columns n = (c, ky, kx), reduced over the
 * batch rows b and the positions q of the flat planes (see lower_conv_dw):
 *   A(b, f, q) = dyq[b, f, q],  B(b, n, q) = xp[b, c, s q + ky Wp + kx] */
typedef struct ConvDw {
  const ConvGeo *g;
  int64_t NQ, XPS, Wp;
} ConvDw;

static LExpr *dw_dy(LoopProgram *lp, const void *c, LExpr *b, LExpr *f, LExpr *q) {
  const ConvDw *d = c;
  return plane_at(lp, b, d->g->F, f, d->NQ, q);
}
static LExpr *dw_x(LoopProgram *lp, const void *c, LExpr *b, LExpr *n, LExpr *q) {
  const ConvDw *d = c;
  const ConvGeo *g = d->g;
  int64_t kk = g->kh * g->kw;
  return tap_at(lp, b, g->C, le_bin(lp, LO_DIV, n, le_i64(lp, kk)), d->XPS, le_mul(lp, q, le_i64(lp, g->sw)),
                le_bin(lp, LO_MOD, n, le_i64(lp, kk)), g->kw, d->Wp);
}
/* dW[f, n] with n = (c, ky, kx): W's own layout */
static LExpr *dw_w(LoopProgram *lp, const void *c, LExpr *br, LExpr *f, LExpr *n) {
  (void)br;
  const ConvGeo *g = ((const ConvDw *)c)->g;
  return le_add(lp, le_mul(lp, f, le_i64(lp, g->C * g->kh * g->kw)), n);
}

/* dst [B, planes, NQ] = src [B, planes, OH, OW] with rows of pitch floats: each row the OW values
 * of src, then zeros up to the pitch; zeros after the last row up to NQ (each element written
 * once).  A parallel loop over the planes. */
static void pitch_planes(LoopProgram *lp, LStmt *body, int dst, int src, int64_t planes, int64_t OH, int64_t OW,
                         int64_t pitch, int64_t NQ) {
  int64_t V = lp->vec_f32;
  int r = lvar(lp, "bf"), oy = lvar(lp, "oy"), ox = lvar(lp, "ox"), i = lvar(lp, "i");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, planes)));
  lr->parallel = 1; /* disjoint planes of dst */
  LExpr *base = le_mul(lp, le_var(lp, r), le_i64(lp, NQ));
  LStmt *loy = ls_for(lp, ls_body(lr), oy, le_i64(lp, 0), le_i64(lp, OH));
  LExpr *row = le_add(lp, base, le_mul(lp, le_var(lp, oy), le_i64(lp, pitch)));
  LStmt *lox = ls_for(lp, ls_body(loy), ox, le_i64(lp, 0), le_i64(lp, OW));
  lox->vec = (int)V;
  ls_store(lp, ls_body(lox), dst, le_add(lp, row, le_var(lp, ox)),
           le_load(lp, src, ix4(lp, le_i64(lp, 0), le_var(lp, r), le_var(lp, oy), le_var(lp, ox), 1, OH, OW)));
  if (pitch > OW) {
    LStmt *li = ls_for(lp, ls_body(loy), i, le_i64(lp, OW), le_i64(lp, pitch));
    li->vec = (int)V;
    ls_store(lp, ls_body(li), dst, le_add(lp, row, le_var(lp, i)), le_f32(lp, 0));
  }
  if (NQ > OH * pitch) {
    LStmt *lt = ls_for(lp, ls_body(lr), i, le_i64(lp, OH * pitch), le_i64(lp, NQ));
    lt->vec = (int)V;
    ls_store(lp, ls_body(lt), dst, le_add(lp, base, le_var(lp, i)), le_f32(lp, 0));
  }
}

/* _conv_dx at stride 1 the other way round, for a convolution whose correlation above would
 * mostly multiply padding (a valid convolution of a small plane: LeNet-5's c3, 10 x 10 from
 * 14 x 14 with 5 x 5 taps, spends 61% of its correlation's multiply-adds on the zeros around dy
 * and 22% more on the columns dropped by the pitch).  Each position of dy is multiplied by
 * every tap's weights and added where that tap puts it in the full plane dxs, (OH + kh - 1)
 * rows of pitch Wp = OW + kw - 1 (= the padded input's):
 *   dxs[b, c, (oy + ky) Wp + ox + kx] += sum_f W[f, c, ky, kx] dyq[b, f, oy Wp + ox]
 * dyq being dy with the same pitch (pitch_planes: the zero columns add zeros).  A gemm_bcast
 * per batch row: rows m = (ky, kx, c), columns n = oy Wp + ox (vectors), reduced over f, that
 * adds its sums into dxs (accumulate): a row's tiles run in order on one thread, so the
 * overlapping sums of neighbouring taps add up one after another, in an order fixed by the
 * shapes.  Tap-major rows: a tile's rows are channels of one tap, whose sums go to different
 * planes; with channel-major rows, each row's read of dxs overlapped the previous row's store
 * one column over, which the store buffer cannot forward (those stores took 40% of the time).
 * dx[b, c, iy, ix] = dxs[b, c, (iy + ph) Wp + ix + pw]. */
typedef struct ConvDxTaps {
  const ConvGeo *g;
  int b;
  int64_t NQ, Wp, DXS;
} ConvDxTaps;

static LExpr *dxt_w(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *f) {
  (void)br;
  const ConvGeo *g = ((const ConvDxTaps *)c)->g;
  int64_t kk = g->kh * g->kw;
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, f, le_i64(lp, g->C)), le_bin(lp, LO_MOD, m, le_i64(lp, g->C))),
                           le_i64(lp, kk)),
                le_bin(lp, LO_DIV, m, le_i64(lp, g->C)));
}
static LExpr *dxt_dy(LoopProgram *lp, const void *c, LExpr *br, LExpr *q, LExpr *f) {
  (void)br;
  const ConvDxTaps *d = c;
  return plane_at(lp, le_var(lp, d->b), d->g->F, f, d->NQ, q);
}
static LExpr *dxt_out(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *q) {
  (void)br;
  const ConvDxTaps *d = c;
  return tap_at(lp, le_var(lp, d->b), d->g->C, le_bin(lp, LO_MOD, m, le_i64(lp, d->g->C)), d->DXS, q,
                le_bin(lp, LO_DIV, m, le_i64(lp, d->g->C)), d->g->kw, d->Wp);
}

/* The correlation's multiply-adds per batch row against the taps' (with two more per sum for
 * adding it into dxs): the taps' way when it saves a fifth. */
static int conv_dx_by_taps(const ConvGeo *g, int64_t V) {
  if (g->sh != 1 || g->sw != 1) return 0;
  int64_t corr = g->F * round_up(g->H * (g->W + g->kw - 1), V);
  int64_t taps = (g->F + 2) * round_up(g->OH * (g->W + 2 * g->pw), V);
  return taps * 5 < corr * 4;
}

/* _conv_dx by taps with the batch in the vector lanes, for a valid convolution (no padding)
 * at a batch that fills the lanes.  The taps' way above runs its vectors over positions of
 * pitch Wp, whose columns OW .. Wp - 1 are zeros of dyq (LeNet-5's c3: 144 lanes for 100
 * positions, 31% of its multiply-adds); here a vector is one position of V batch rows, so
 * every lane counts.  Groups of V batch rows (a missing row of the last group reads the
 * batch's last row again; its lanes are never stored):
 *   dyT[grp, f, q, lane]  = dy[grp V + lane, f, q]                        (transposed in)
 *   dxsT[grp, c, (oy + ky) W + ox + kx, :] += sum_f W[f, c, ky, kx] dyT[grp, f, oy OW + ox, :]
 *   dx[grp V + lane, c, p] = dxsT[grp, c, p, lane]                       (transposed out)
 * The sums: a gemm_bcast per (group, oy), rows m = (ky, kx, c) tap-major as above, columns n
 * = (ox, lane), reduced over f, added into dxsT (accumulate); a group's rows oy run in order
 * on one thread, so the overlapping sums add up in an order fixed by the shapes.  The
 * transpositions go V x V in registers (lower_transpose_lanes); a plane's last block of V
 * positions starts at its end minus V (overlapping the one before: the same values again). */
typedef struct ConvDxLanes {
  const ConvGeo *g;
  LExpr *grp, *oy;
} ConvDxLanes;

/* Element [grp, pl, q, lane] of a lanes' layout [groups, planes, Q, V] */
static LExpr *lanes_at(LoopProgram *lp, LExpr *grp, int64_t planes, LExpr *pl, int64_t Q, LExpr *q, LExpr *lane) {
  return le_add(lp, le_mul(lp, plane_at(lp, grp, planes, pl, Q, q), le_i64(lp, lp->vec_f32)), lane);
}

static LExpr *dxl_w(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *f) {
  const ConvDxLanes *d = c;
  ConvDxTaps t = {.g = d->g};
  return dxt_w(lp, &t, br, m, f);
}
static LExpr *dxl_dy(LoopProgram *lp, const void *c, LExpr *br, LExpr *n, LExpr *f) {
  (void)br;
  const ConvDxLanes *d = c;
  const ConvGeo *g = d->g;
  return lanes_at(lp, d->grp, g->F, f, g->OH * g->OW, le_mul(lp, d->oy, le_i64(lp, g->OW)), n);
}
static LExpr *dxl_out(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *n) {
  (void)br;
  const ConvDxLanes *d = c;
  const ConvGeo *g = d->g;
  LExpr *t = le_bin(lp, LO_DIV, m, le_i64(lp, g->C)), *ch = le_bin(lp, LO_MOD, m, le_i64(lp, g->C));
  LExpr *p = le_add(lp, le_mul(lp, le_add(lp, d->oy, le_bin(lp, LO_DIV, t, le_i64(lp, g->kw))), le_i64(lp, g->W)),
                    le_bin(lp, LO_MOD, t, le_i64(lp, g->kw)));
  return lanes_at(lp, d->grp, g->C, ch, g->H * g->W, p, n);
}

/* Whether the lanes' way applies to the layer: a valid convolution (the taps' way chosen)
 * whose planes hold a block of V positions each, V a power of 2 the transposition takes. */
static int conv_dx_lanes_ok(const ConvGeo *g, int64_t V) {
  return g->ph == 0 && g->pw == 0 && g->OH * g->OW >= V && g->H * g->W >= V && V >= 2 && V <= 64 &&
         (V & (V - 1)) == 0;
}

/* ceil(batch / V), the groups of V batch rows */
static LExpr *lane_groups(LoopProgram *lp) {
  int64_t V = lp->vec_f32;
  return le_bin(lp, LO_DIV, le_add(lp, le_batch(lp), le_i64(lp, V - 1)), le_i64(lp, V));
}

/* At run time: the lanes' way when the batch fills at least one group and its multiply-adds
 * (G V OH OW a product row) are under four fifths of the taps' (batch NQ): a batch of 64
 * (LeNet-5's) or 32 (its slices on 2 threads) takes it, a batch of 17 does not. */
static LExpr *conv_dx_lanes_pay(LoopProgram *lp, const ConvGeo *g, int64_t NQ) {
  int64_t V = lp->vec_f32;
  LExpr *lanes = le_mul(lp, lane_groups(lp), le_i64(lp, V * g->OH * g->OW * 5));
  LExpr *taps = le_mul(lp, le_batch(lp), le_i64(lp, NQ * 4));
  return le_bin(lp, LO_AND, le_bin(lp, LO_GE, le_batch(lp), le_i64(lp, V)), le_bin(lp, LO_LT, lanes, taps));
}

/* The loops of a transposition between [batch, planes, Q] and [groups, planes, Q, V]: per
 * (group, plane) on threads (u named name: disjoint blocks of either side), Q's positions in
 * blocks of V from q0 = min(pb V, Q - V) (the last block overlapping the one before: the same
 * values again), a vector loop over the lanes l; returns its body, *grp, *pl and *q0 the
 * locals.  Q >= V. */
static LStmt *lanes_blocks(LoopProgram *lp, LStmt *body, const char *name, int64_t planes, int64_t Q, int *grp,
                           int *pl, int *q0, int *l) {
  int64_t V = lp->vec_f32;
  int u = lvar(lp, name), pb = lvar(lp, "pb");
  *l = lvar(lp, "l");
  LStmt *lu = ls_for(lp, body, u, le_i64(lp, 0), le_mul(lp, lane_groups(lp), le_i64(lp, planes)));
  lu->parallel = 1;
  LStmt *ub = ls_body(lu);
  *grp = ls_local(lp, ub, LT_I64, le_bin(lp, LO_DIV, le_var(lp, u), le_i64(lp, planes)));
  *pl = ls_local(lp, ub, LT_I64, le_bin(lp, LO_MOD, le_var(lp, u), le_i64(lp, planes)));
  LStmt *lpb = ls_for(lp, ub, pb, le_i64(lp, 0), le_i64(lp, (Q + V - 1) / V));
  *q0 = ls_local(lp, ls_body(lpb), LT_I64,
                 le_bin(lp, LO_MIN, le_mul(lp, le_var(lp, pb), le_i64(lp, V)), le_i64(lp, Q - V)));
  LStmt *ll = ls_for(lp, ls_body(lpb), *l, le_i64(lp, 0), le_i64(lp, V));
  ll->vec = (int)V;
  return ls_body(ll);
}

/* dst[grp, plane, q, lane] = src[grp V + lane, plane, q] for q < Q */
static void lanes_in(LoopProgram *lp, LStmt *body, int dst, int src, int64_t planes, int64_t Q) {
  int64_t V = lp->vec_f32;
  int grp, pl, q0, l, rows[64];
  LStmt *vb = lanes_blocks(lp, body, "gp", planes, Q, &grp, &pl, &q0, &l);
  LExpr *last = le_sub(lp, le_batch(lp), le_i64(lp, 1));
  for (int64_t j = 0; j < V; j++) {
    /* a missing row (past the batch, in the last group) reads the last row again: its lane
     * sums for itself and is never stored (lanes never mix) */
    LExpr *row = le_bin(lp, LO_MIN, le_add(lp, le_mul(lp, le_local(lp, grp), le_i64(lp, V)), le_i64(lp, j)), last);
    LExpr *at = plane_at(lp, row, planes, le_local(lp, pl), Q, le_add(lp, le_local(lp, q0), le_var(lp, l)));
    rows[j] = ls_local(lp, vb, LT_F32, le_load(lp, src, at));
  }
  lower_transpose_lanes(lp, vb, l, rows);
  for (int64_t j = 0; j < V; j++) {
    LExpr *q = le_add(lp, le_local(lp, q0), le_i64(lp, j));
    ls_store(lp, vb, dst, lanes_at(lp, le_local(lp, grp), planes, le_local(lp, pl), Q, q, le_var(lp, l)),
             le_local(lp, rows[j]));
  }
}

static void lower_conv_dx_lanes(LowerCtx *lc, const Node *n, const ConvGeo *g, LStmt *body, int dy, int w,
                                int dx) {
  LoopProgram *lp = lc->lp;
  int64_t V = lp->vec_f32, kk = g->kh * g->kw, OHW = g->OH * g->OW, HW = g->H * g->W;
  /* G V <= 2 batch when batch >= V (conv_dx_lanes_pay): two rows' room a batch row */
  int dyt = lower_scratch(lc, arena_printf(lp->arena, "%s.dyt", n->name), LT_F32, (SymCount){2 * g->F * OHW, 0}, 1);
  int dxt = lower_scratch(lc, arena_printf(lp->arena, "%s.dxt", n->name), LT_F32, (SymCount){2 * g->C * HW, 0}, 1);
  lanes_in(lp, body, dyt, dy, g->F, OHW);
  /* the sums, a group at a time on threads */
  int gv = lvar(lp, "grp"), i = lvar(lp, "i"), oy = lvar(lp, "oy");
  LStmt *lg = ls_for(lp, body, gv, le_i64(lp, 0), lane_groups(lp));
  lg->parallel = 1; /* a group's sums overlap: its products run on one thread */
  LStmt *gb = ls_body(lg);
  LStmt *lz = ls_for(lp, gb, i, le_i64(lp, 0), le_i64(lp, g->C * HW * V));
  lz->vec = (int)V;
  ls_store(lp, ls_body(lz), dxt, le_add(lp, le_mul(lp, le_var(lp, gv), le_i64(lp, g->C * HW * V)), le_var(lp, i)),
           le_f32(lp, 0));
  LStmt *loy = ls_for(lp, gb, oy, le_i64(lp, 0), le_i64(lp, g->OH));
  ConvDxLanes cd = {.g = g, .grp = le_var(lp, gv), .oy = le_var(lp, oy)};
  GemmSpec gm = {.M = le_i64(lp, g->C * kk), .N = le_i64(lp, g->OW * V), .K = le_i64(lp, g->F), .a = w, .b = dyt,
                 .c = dxt, .a_at = dxl_w, .b_at = dxl_dy, .c_at = dxl_out, .accumulate = 1,
                 .parallel = GEMM_PAR_NONE, .ctx = &cd};
  gemm_bcast(lp, ls_body(loy), &gm);
  /* out: per (group, channel), V x V blocks; a missing batch row is not stored */
  int grp, ch, q0, l, rows[64];
  LStmt *vb = lanes_blocks(lp, body, "gc", g->C, HW, &grp, &ch, &q0, &l);
  for (int64_t j = 0; j < V; j++) {
    LExpr *q = le_add(lp, le_local(lp, q0), le_i64(lp, j));
    rows[j] = ls_local(lp, vb, LT_F32,
                       le_load(lp, dxt, lanes_at(lp, le_local(lp, grp), g->C, le_local(lp, ch), HW, q, le_var(lp, l))));
  }
  lower_transpose_lanes(lp, vb, l, rows);
  for (int64_t j = 0; j < V; j++) {
    LExpr *row = le_add(lp, le_mul(lp, le_local(lp, grp), le_i64(lp, V)), le_i64(lp, j));
    LStmt *has = ls_if(lp, vb, le_bin(lp, LO_LT, row, le_batch(lp)));
    LExpr *at = plane_at(lp, row, g->C, le_local(lp, ch), HW, le_add(lp, le_local(lp, q0), le_var(lp, l)));
    ls_store(lp, ls_body(has), dx, at, lower_grad_epilogue(lc, n, le_local(lp, rows[j]), at));
  }
}

static void lower_conv_dx_taps(LowerCtx *lc, const Node *n, const ConvGeo *g, int dy, int w, int dx) {
  LoopProgram *lp = lc->lp;
  LStmt *body = lower_begin(lc, n);
  int64_t V = lp->vec_f32, kk = g->kh * g->kw;
  int64_t Wp = g->W + 2 * g->pw, Hp = g->H + 2 * g->ph;
  int64_t NQ = round_up(g->OH * Wp, V);
  /* the last column vector's sums land up to (kh - 1) Wp + kw - 1 past NQ */
  int64_t DXS = round_up(NQ + (g->kh - 1) * Wp + g->kw - 1 > Hp * Wp ? NQ + (g->kh - 1) * Wp + g->kw - 1 : Hp * Wp, V);
  if (conv_dx_lanes_ok(g, V)) {
    /* the batch in the lanes when it pays at this call's batch, else the taps below */
    LExpr *pay = conv_dx_lanes_pay(lp, g, NQ);
    lower_conv_dx_lanes(lc, n, g, ls_body(ls_if(lp, body, pay)), dy, w, dx);
    body = ls_body(ls_if(lp, body, le_un(lp, LO_NOT, pay)));
  }
  int dyq = lower_scratch(lc, arena_printf(lp->arena, "%s.dyq", n->name), LT_F32, (SymCount){g->F * NQ, 0}, 1);
  int dxs = lower_scratch(lc, arena_printf(lp->arena, "%s.dxs", n->name), LT_F32, (SymCount){g->C * DXS, 0}, 1);
  pitch_planes(lp, body, dyq, dy, g->F, g->OH, g->OW, Wp, NQ);
  int b = lvar(lp, "b"), i = lvar(lp, "i");
  LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
  lb->parallel = 1; /* a batch row's sums overlap: its product runs on one thread */
  LStmt *bb = ls_body(lb);
  LStmt *lz = ls_for(lp, bb, i, le_i64(lp, 0), le_i64(lp, g->C * DXS));
  lz->vec = (int)V;
  ls_store(lp, ls_body(lz), dxs, le_add(lp, le_mul(lp, le_var(lp, b), le_i64(lp, g->C * DXS)), le_var(lp, i)),
           le_f32(lp, 0));
  ConvDxTaps cd = {.g = g, .b = b, .NQ = NQ, .Wp = Wp, .DXS = DXS};
  GemmSpec gm = {.M = le_i64(lp, g->C * kk), .N = le_i64(lp, NQ), .K = le_i64(lp, g->F), .a = w, .b = dyq,
                 .c = dxs, .a_at = dxt_w, .b_at = dxt_dy, .c_at = dxt_out, .accumulate = 1,
                 .parallel = GEMM_PAR_NONE, .ctx = &cd};
  gemm_bcast(lp, bb, &gm);
  /* the copy out, while the row is in cache; without padding, dxs's rows have dx's pitch: one
   * vector loop over the plane (a row of 14 would be 14 scalars) */
  int c = lvar(lp, "c"), iy = lvar(lp, "iy"), ix = lvar(lp, "ix");
  LStmt *lc_ = ls_for(lp, bb, c, le_i64(lp, 0), le_i64(lp, g->C));
  if (g->ph == 0 && g->pw == 0) {
    int q = lvar(lp, "q");
    LStmt *lq = ls_for(lp, ls_body(lc_), q, le_i64(lp, 0), le_i64(lp, g->H * g->W));
    lq->vec = (int)V;
    LExpr *at = plane_at(lp, le_var(lp, b), g->C, le_var(lp, c), g->H * g->W, le_var(lp, q));
    ls_store(lp, ls_body(lq), dx, at,
             lower_grad_epilogue(lc, n, le_load(lp, dxs, plane_at(lp, le_var(lp, b), g->C, le_var(lp, c), DXS,
                                                                  le_var(lp, q))),
                                 at));
    return;
  }
  LStmt *liy = ls_for(lp, ls_body(lc_), iy, le_i64(lp, 0), le_i64(lp, g->H));
  LStmt *lix = ls_for(lp, ls_body(liy), ix, le_i64(lp, 0), le_i64(lp, g->W));
  lix->vec = (int)V;
  LExpr *si = plane_at(lp, le_var(lp, b), g->C, le_var(lp, c), DXS,
                       le_add(lp, le_mul(lp, le_add(lp, le_var(lp, iy), le_i64(lp, g->ph)), le_i64(lp, Wp)),
                              le_add(lp, le_var(lp, ix), le_i64(lp, g->pw))));
  LExpr *at = ix4(lp, le_var(lp, b), le_var(lp, c), le_var(lp, iy), le_var(lp, ix), g->C, g->H, g->W);
  ls_store(lp, ls_body(lix), dx, at, lower_grad_epilogue(lc, n, le_load(lp, dxs, si), at));
}

/* _conv_dx by Winograd's F(2x2, 3x3) for a 3x3 kernel at stride 1: the input gradient is the
 * forward correlation of dy, padded by 2 - p, with the kernel turned half a turn and its channel
 * axes swapped, w'[c, f, ky, kx] = W[f, c, 2 - ky, 2 - kx], and goes as lower_conv2d_winograd
 * goes (its transforms, the same shapes of work) with dy's F channels summed and dx's C as the
 * outputs:
 *   - dq: dy padded by 3 - p (one more, as lower_conv_dw_winograd's operands: every tile's
 *     patch in range), channels last;
 *   - U [16, F, C] = G w' G^T for the call (the weights change every step), a vector of
 *     channels c a step (W's c axis 9 floats apart), one parallel loop over f;
 *   - WDX_WORKERS workers over the (batch row, block of NB channels of dx, block of tiles)
 *     items, ceil bounds: per chunk of dy's channels the input transform into the worker's
 *     scratch and 16 gemm_bcast products (tall tiles for blocks of one or two vectors), summed
 *     over the chunks; then A^T M A into dxt [B, C / NB, H, W, NB], the clamped outputs of an
 *     odd plane's last tiles first, the real ones last;
 *   - the write-back: dx[b, c, q] from dxt, V x V blocks transposed in registers, through
 *     lower_grad_epilogue (a plane's last block overlaps the one before: the same values).
 * The same bits on any thread count (every sum inside one item). */
enum {
  WDX_TB = 24,       /* tiles a block, at most */
  WDX_CC = 128,      /* dy's channels a chunk, at most */
  WDX_WORKERS = 8,   /* per-worker scratch: the parallel loop's iterations */
};

static int conv_dx_winograd(const LoopProgram *lp, const ConvGeo *g) {
  int64_t V = lp->vec_f32;
  return lp->winograd && V >= 8 && V <= 64 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 &&
         g->ph == g->pw && g->ph <= 2 && g->H >= 2 && g->W >= 2 && g->H * g->W >= V && g->C % V == 0 &&
         g->F % V == 0 && g->C >= 2 * V && g->F >= 2 * V && 16 * g->F * g->C <= ((int64_t)1 << 22);
}

/* The forward's products' context (wino_a, wino_c, wino_init read it: vs, M and the chunk `cc`
 * = dy's chunk fc) and what B adds: U [16, F, C] at dx's channel block cbx */
typedef struct WinoDx {
  Wino w; /* first: the forward's callbacks take a WinoDx as their Wino */
  int64_t F, C;
  LExpr *cbx;
} WinoDx;

/* B(n = dx's channel in the block, k = dy's channel in the chunk) = U[xi, fc CC + k, cbx NB + n] */
static LExpr *wdx_b(LoopProgram *lp, const void *c, LExpr *br, LExpr *n, LExpr *k) {
  (void)br;
  const WinoDx *d = c;
  LExpr *f = le_add(lp, le_mul(lp, d->w.cc, le_i64(lp, d->w.CC)), k);
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, d->w.xi, le_i64(lp, d->F)), f), le_i64(lp, d->C)),
                le_add(lp, le_mul(lp, d->cbx, le_i64(lp, d->w.NB)), n));
}

static void lower_conv_dx_winograd(LowerCtx *lc, const Node *n, const ConvGeo *g, int dy, int w, int dx) {
  LoopProgram *lp = lc->lp;
  LStmt *body = lower_begin(lc, n);
  int64_t V = lp->vec_f32, C = g->C, F = g->F, H = g->H, W = g->W, HW = H * W;
  int64_t NB = wino_nb(C, V), ncb = C / NB, TW = (W + 1) / 2, T = (H + 1) / 2 * TW;
  int64_t ntb = (T + WDX_TB - 1) / WDX_TB, TB = (T + ntb - 1) / ntb;
  int64_t nch = 1;
  while ((F / V) % nch || F / nch > WDX_CC) nch++;
  int64_t CC = F / nch, P = WDX_WORKERS, pp = 3 - g->ph, Hq = g->OH + 2 * pp, Wq = g->OW + 2 * pp;
  int64_t VX = wino_stride(TB, CC), MX = wino_stride(TB, NB);
  int dq = lower_pad2d_blocked_as(lc, body, arena_printf(lp->arena, "%s.dq", n->name), dy, F, g->OH, g->OW, pp, Wq,
                                  F, 0.0);
  int u = lower_scratch(lc, arena_printf(lp->arena, "%s.wu", n->name), LT_F32, (SymCount){16 * F * C, 0}, 0);
  int vs = lower_scratch(lc, arena_printf(lp->arena, "%s.wv", n->name), LT_F32, (SymCount){P * 16 * VX, 0}, 0);
  int ms = lower_scratch(lc, arena_printf(lp->arena, "%s.wm", n->name), LT_F32, (SymCount){P * 16 * MX, 0}, 0);
  int dxt = lower_scratch(lc, arena_printf(lp->arena, "%s.t", n->name), LT_F32, (SymCount){HW * C, 0}, 1);

  /* U[xi, f, c] = (G w' G^T)[xi], w'[ky][kx] = W[f, c, 2 - ky, 2 - kx] */
  {
    int f = lvar(lp, "f");
    LStmt *lf = ls_for(lp, body, f, le_i64(lp, 0), le_i64(lp, F));
    lf->parallel = 1; /* disjoint rows of U */
    LExpr *c;
    LStmt *vb = vec_blocks(lp, ls_body(lf), "cv", C, &c);
    LExpr *gk[3][3];
    for (int ky = 0; ky < 3; ky++)
      for (int kx = 0; kx < 3; kx++)
        gk[ky][kx] = le_local(lp, ls_local(lp, vb, LT_F32,
                                           le_load(lp, w, ix4(lp, le_var(lp, f), c, le_i64(lp, 2 - ky),
                                                              le_i64(lp, 2 - kx), C, 3, 3))));
    int gg[4][3]; /* G w': gg[i][kx] */
    for (int kx = 0; kx < 3; kx++) {
      int o[4];
      wino_g(lp, vb, gk[0][kx], gk[1][kx], gk[2][kx], o);
      for (int i = 0; i < 4; i++) gg[i][kx] = o[i];
    }
    for (int i = 0; i < 4; i++) {
      int o[4];
      wino_g(lp, vb, le_local(lp, gg[i][0]), le_local(lp, gg[i][1]), le_local(lp, gg[i][2]), o);
      for (int j = 0; j < 4; j++)
        ls_store(lp, vb, u, ix4(lp, le_i64(lp, 0), le_i64(lp, i * 4 + j), le_var(lp, f), c, 16, F, C),
                 le_local(lp, o[j]));
    }
  }

  /* the workers: worker wk takes the items [ceil(wk NI / P), ceil((wk + 1) NI / P)) */
  int wk = lvar(lp, "wk"), it = lvar(lp, "it");
  LStmt *lw = ls_for(lp, body, wk, le_i64(lp, 0), le_i64(lp, P));
  lw->parallel = 1; /* disjoint tiles of dxt, each worker its own scratch */
  LExpr *NI = le_mul(lp, le_batch(lp), le_i64(lp, ncb * ntb));
  LStmt *lit = ls_for(lp, ls_body(lw), it, share_start(lp, le_var(lp, wk), NI, P),
                      share_start(lp, le_add(lp, le_var(lp, wk), le_i64(lp, 1)), NI, P));
  LStmt *ib = ls_body(lit);
  int bl = ls_local(lp, ib, LT_I64, le_bin(lp, LO_DIV, le_var(lp, it), le_i64(lp, ncb * ntb)));
  int cbx = ls_local(lp, ib, LT_I64,
                     le_bin(lp, LO_MOD, le_bin(lp, LO_DIV, le_var(lp, it), le_i64(lp, ntb)), le_i64(lp, ncb)));
  int tb0 = ls_local(lp, ib, LT_I64, le_mul(lp, le_bin(lp, LO_MOD, le_var(lp, it), le_i64(lp, ntb)), le_i64(lp, TB)));
  int fc = lvar(lp, "fc");
  LStmt *lfc = ls_for(lp, ib, fc, le_i64(lp, 0), le_i64(lp, nch));
  LStmt *fcb = ls_body(lfc);

  /* V[wk, xi, i, k] = (B^T d B)[xi] of tile tb0 + i (the plane's last tile for those past it),
   * dy's channel fc CC + k; the tile's patch at row 2 ty + 1, column 2 tx + 1 of dq */
  {
    int i = lvar(lp, "i");
    LStmt *li = ls_for(lp, fcb, i, le_i64(lp, 0), le_i64(lp, TB));
    LStmt *tbk = ls_body(li);
    int tix = ls_local(lp, tbk, LT_I64,
                       le_bin(lp, LO_MIN, le_add(lp, le_local(lp, tb0), le_var(lp, i)), le_i64(lp, T - 1)));
    LExpr *r0 = le_add(lp, le_mul(lp, le_bin(lp, LO_DIV, le_local(lp, tix), le_i64(lp, TW)), le_i64(lp, 2)), le_i64(lp, 1));
    LExpr *q0 = le_add(lp, le_mul(lp, le_bin(lp, LO_MOD, le_local(lp, tix), le_i64(lp, TW)), le_i64(lp, 2)), le_i64(lp, 1));
    int base = ls_local(lp, tbk, LT_I64,
                        le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_local(lp, bl), le_i64(lp, Hq)), r0),
                                                               le_i64(lp, Wq)),
                                                    q0),
                                          le_i64(lp, F)),
                               le_mul(lp, le_var(lp, fc), le_i64(lp, CC))));
    LExpr *k;
    LStmt *vb = vec_blocks(lp, tbk, "kv", CC, &k);
    LExpr *d[4][4], *at[16];
    for (int a = 0; a < 4; a++)
      for (int s = 0; s < 4; s++)
        d[a][s] = le_local(lp, ls_local(lp, vb, LT_F32,
                                        le_load(lp, dq, le_add(lp, le_local(lp, base),
                                                               le_add(lp, le_i64(lp, (a * Wq + s) * F), k)))));
    for (int xi = 0; xi < 16; xi++) at[xi] = wino_scratch_at(lp, le_var(lp, wk), le_i64(lp, xi), VX, le_var(lp, i), CC, k);
    wino_bt2_store(lp, vb, d, vs, at);
  }
  /* M_xi (+)= V_xi U_xi over the chunk */
  {
    int xi = lvar(lp, "xi");
    LStmt *lxi = ls_for(lp, fcb, xi, le_i64(lp, 0), le_i64(lp, 16));
    WinoDx wd = {.w = {.CC = CC, .NB = NB, .TB = TB, .VX = VX, .MX = MX, .m = ms, .wk = le_var(lp, wk),
                       .xi = le_var(lp, xi), .cc = le_var(lp, fc)},
                 .F = F, .C = C, .cbx = le_local(lp, cbx)};
    GemmSpec gm = {.M = le_i64(lp, TB), .N = le_i64(lp, NB), .K = le_i64(lp, CC), .a = vs, .b = u, .c = ms,
                   .a_at = wino_a, .b_at = wdx_b, .c_at = wino_c, .init = nch > 1 ? wino_init : NULL,
                   .parallel = GEMM_PAR_NONE, .ctx = &wd, .name = "w", .tall = NB <= 2 * V};
    gemm_bcast(lp, ls_body(lxi), &gm);
  }
  /* dxt[b, cbx, y, x, n] = (A^T M A) of each tile of the block that exists */
  wino_out_tiles(lp, ib, ms, le_var(lp, wk), MX, NB, TB, T, TW, le_local(lp, tb0), dxt,
                 le_add(lp, le_mul(lp, le_local(lp, bl), le_i64(lp, ncb)), le_local(lp, cbx)), H, W, "nv");
  /* dx[b, c, q] = dxt[b, c / NB, q, c % NB]: per (batch row, block of V positions), V channels
   * at a time, V x V transposed in registers */
  {
    int64_t nqb = (HW + V - 1) / V;
    int bq = lvar(lp, "bq"), l = lvar(lp, "l"), rows[64];
    LStmt *lbq = ls_for(lp, body, bq, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, nqb)));
    lbq->parallel = 1; /* disjoint positions of dx */
    LStmt *qb = ls_body(lbq);
    int b2 = ls_local(lp, qb, LT_I64, le_bin(lp, LO_DIV, le_var(lp, bq), le_i64(lp, nqb)));
    int q0 = ls_local(lp, qb, LT_I64,
                      le_bin(lp, LO_MIN, le_mul(lp, le_bin(lp, LO_MOD, le_var(lp, bq), le_i64(lp, nqb)), le_i64(lp, V)),
                             le_i64(lp, HW - V)));
    int cv = lvar(lp, "cv");
    LStmt *lcv = ls_for(lp, qb, cv, le_i64(lp, 0), le_i64(lp, C / V));
    LStmt *ll = ls_for(lp, ls_body(lcv), l, le_i64(lp, 0), le_i64(lp, V));
    ll->vec = (int)V;
    LStmt *vb = ls_body(ll);
    /* the channels cv V + l: one block of NB (V divides NB), lanes from (cv V) % NB on */
    LExpr *c0 = le_mul(lp, le_var(lp, cv), le_i64(lp, V));
    LExpr *tb = le_add(lp, le_mul(lp, le_local(lp, b2), le_i64(lp, ncb)), le_bin(lp, LO_DIV, c0, le_i64(lp, NB)));
    LExpr *lane = le_add(lp, le_bin(lp, LO_MOD, c0, le_i64(lp, NB)), le_var(lp, l));
    for (int64_t j = 0; j < V; j++)
      rows[j] = ls_local(lp, vb, LT_F32,
                         le_load(lp, dxt, tile_at(lp, tb, HW, le_add(lp, le_local(lp, q0), le_i64(lp, j)), NB, lane)));
    lower_transpose_lanes(lp, vb, l, rows);
    for (int64_t j = 0; j < V; j++) {
      LExpr *c = le_add(lp, le_mul(lp, le_var(lp, cv), le_i64(lp, V)), le_i64(lp, j));
      LExpr *at = plane_at(lp, le_local(lp, b2), C, c, HW, le_add(lp, le_local(lp, q0), le_var(lp, l)));
      ls_store(lp, vb, dx, at, lower_grad_epilogue(lc, n, le_local(lp, rows[j]), at));
    }
  }
}

/* _conv_dx.  Flat planes so that the vector loop runs over whole vectors of a contiguous
 * axis: dyp [B, F, DPS] holds the dilated, shifted dy as Hq rows of pitch Wq (DPS leaves
 * room for the reads of the last vector), dxs [B, C, NQ] the result with the same pitch Wq,
 * NQ = H Wq rounded up to the vector width; its columns >= W are discarded by the copy into
 * dx.  dxs[q] = sum_{f, ky, kx} dyp[q + ky Wq + kx] W[f, c, kh-1-ky, kw-1-kx]. */
static void lower_conv_dx(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  ConvGeo g = conv_geo(lc->g, &lc->g->nodes[n->fwd]);
  int dy = lower_value(lc, n->in[0]), w = lower_value(lc, n->in[1]), dx = lower_value(lc, n->id);
  int64_t V = lp->vec_f32;
  if (conv_dx_winograd(lp, &g)) {
    lower_conv_dx_winograd(lc, n, &g, dy, w, dx);
    return;
  }
  if (conv_dx_by_taps(&g, V)) {
    lower_conv_dx_taps(lc, n, &g, dy, w, dx);
    return;
  }
  LStmt *body = lower_begin(lc, n);
  int64_t Hq = g.H + g.kh - 1, Wq = g.W + g.kw - 1;
  int64_t NQ = round_up(g.H * Wq, V), DPS = round_up(Hq * Wq + V + g.kw, V);
  int64_t ty = g.kh - 1 - g.ph, tx = g.kw - 1 - g.pw; /* dy row oy goes to dyp row oy sh + ty */
  /* the rows of dy that land inside dyp: 0 <= oy sh + ty < Hq (the others only meet padding) */
  int64_t oy_lo = ty >= 0 ? 0 : (-ty + g.sh - 1) / g.sh;
  int64_t oy_hi = (Hq - 1 - ty) / g.sh + 1;
  if (oy_hi > g.OH) oy_hi = g.OH;
  int64_t ox_lo = tx >= 0 ? 0 : (-tx + g.sw - 1) / g.sw;
  int64_t ox_hi = (Wq - 1 - tx) / g.sw + 1;
  if (ox_hi > g.OW) ox_hi = g.OW;
  int dxs = lower_scratch(lc, arena_printf(lp->arena, "%s.dxs", n->name), LT_F32,
                          (SymCount){g.C * NQ, 0}, 1);
  int dyp;
  if (g.sh == 1 && g.sw == 1 && ty == tx && ty >= 0) {
    /* stride 1: dyp is dy padded by ty on every side (Hq = OH + 2 ty, Wq = OW + 2 tx), each
     * element written once */
    dyp = lower_pad2d_planes(lc, body, arena_printf(lp->arena, "%s.dyp", n->name), dy, g.F, g.OH, g.OW, ty, Wq,
                             DPS, 0.0);
  } else {
    dyp = lower_scratch(lc, arena_printf(lp->arena, "%s.dyp", n->name), LT_F32, (SymCount){g.F * DPS, 0}, 1);
    int r, oy = lvar(lp, "oy"), ox = lvar(lp, "ox");
    LStmt *lr = zeroed_rows(lp, body, "bf", dyp, le_mul(lp, le_batch(lp), le_i64(lp, g.F)), DPS, &r);
    LStmt *loy = ls_for(lp, ls_body(lr), oy, le_i64(lp, oy_lo), le_i64(lp, oy_hi));
    LStmt *lox = ls_for(lp, ls_body(loy), ox, le_i64(lp, ox_lo), le_i64(lp, ox_hi));
    lox->vec = (int)V;
    LExpr *qy = le_add(lp, le_mul(lp, le_var(lp, oy), le_i64(lp, g.sh)), le_i64(lp, ty));
    LExpr *qx = le_add(lp, le_mul(lp, le_var(lp, ox), le_i64(lp, g.sw)), le_i64(lp, tx));
    LExpr *di = le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, DPS)),
                       le_add(lp, le_mul(lp, qy, le_i64(lp, Wq)), qx));
    ls_store(lp, ls_body(lox), dyp, di,
             le_load(lp, dy, ix4(lp, le_i64(lp, 0), le_var(lp, r), le_var(lp, oy), le_var(lp, ox),
                                 1, g.OH, g.OW)));
  }
  {
    int b = lvar(lp, "b");
    LStmt *lb = ls_for(lp, body, b, le_i64(lp, 0), le_batch(lp));
    ConvDx cd = {.g = &g, .b = b, .DPS = DPS, .Wq = Wq, .NQ = NQ};
    /* the taps unrolled up to 3 x 3: each tap's offset a constant, where a rolled loop
     * divided k by kw on every step (resnet_mini's input gradients ~12% faster on an Intel
     * thread); a larger kernel keeps the loop (code size) */
    GemmSpec gm = {.M = le_i64(lp, g.C), .N = le_i64(lp, NQ), .K = le_i64(lp, g.kh * g.kw),
                   .BR = le_i64(lp, g.F), .a = w, .b = dyp, .c = dxs, .a_at = dx_w, .b_at = dx_dyp,
                   .c_at = dx_out, .unroll_k = g.kh * g.kw <= 9, .ctx = &cd};
    batch_rows_parallel(lb, &gm, g.C * NQ * g.F * g.kh * g.kw);
    gemm_bcast(lp, ls_body(lb), &gm);
  }
  {
    int r = lvar(lp, "bc"), iy = lvar(lp, "iy"), ix = lvar(lp, "ix");
    LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, g.C)));
    lr->parallel = 1; /* disjoint planes of dx */
    LStmt *liy = ls_for(lp, ls_body(lr), iy, le_i64(lp, 0), le_i64(lp, g.H));
    LStmt *lix = ls_for(lp, ls_body(liy), ix, le_i64(lp, 0), le_i64(lp, g.W));
    lix->vec = (int)V;
    LExpr *si = le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, NQ)),
                       le_add(lp, le_mul(lp, le_var(lp, iy), le_i64(lp, Wq)), le_var(lp, ix)));
    LExpr *at = ix4(lp, le_i64(lp, 0), le_var(lp, r), le_var(lp, iy), le_var(lp, ix), 1, g.H, g.W);
    ls_store(lp, ls_body(lix), dx, at, lower_grad_epilogue(lc, n, le_load(lp, dxs, si), at));
  }
}

/* x zero-padded into planes of XPS >= Hp Wp floats, rows of pitch Wp (the tail of each plane
 * zero too), named n's ".xp" */
static int padded_planes(LowerCtx *lc, LStmt *body, const Node *n, const ConvGeo *g, int x, int64_t Wp,
                         int64_t XPS) {
  LoopProgram *lp = lc->lp;
  const char *name = arena_printf(lp->arena, "%s.xp", n->name);
  /* the same padding on both axes (conv2d): each element of xp written once */
  if (g->ph == g->pw) return lower_pad2d_planes(lc, body, name, x, g->C, g->H, g->W, g->pw, Wp, XPS, 0.0);
  int xp = lower_scratch(lc, name, LT_F32, (SymCount){g->C * XPS, 0}, 1);
  int r, y = lvar(lp, "y"), xx = lvar(lp, "x");
  LStmt *lr = zeroed_rows(lp, body, "bc", xp, le_mul(lp, le_batch(lp), le_i64(lp, g->C)), XPS, &r);
  LStmt *ly = ls_for(lp, ls_body(lr), y, le_i64(lp, 0), le_i64(lp, g->H));
  LStmt *lx = ls_for(lp, ls_body(ly), xx, le_i64(lp, 0), le_i64(lp, g->W));
  lx->vec = lp->vec_f32;
  LExpr *dst = le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, XPS)),
                      le_add(lp, le_mul(lp, le_add(lp, le_var(lp, y), le_i64(lp, g->ph)), le_i64(lp, Wp)),
                             le_add(lp, le_var(lp, xx), le_i64(lp, g->pw))));
  ls_store(lp, ls_body(lx), xp, dst,
           le_load(lp, x, ix4(lp, le_i64(lp, 0), le_var(lp, r), le_var(lp, y), le_var(lp, xx), 1, g->H, g->W)));
  return xp;
}

/* _conv_dw vectorized over the filters, for F of one or two vectors (LeNet-5's c3, every
 * ResNet-style layer of 16 or 32 filters), where the flat-plane product below sums over
 * positions padded to the row pitch (c3: 144 for 100) and then across the lanes: dy is
 * transposed into dyt [B, OH OW, F] (lower_pad2d_blocked: F channels a block, no padding), and
 *   dW[f, c, ky, kx] = sum_{b, oy} sum_{ox} x[b, c, oy s + ky, ox s + kx] dyt[b, oy OW + ox, f]
 * a batch-reduce gemm_bcast with tall tiles (gemm.h) per group of G input channels (on
 * threads): rows the G kh kw taps m = (c, ky, kx) of the group, the filters in one or two
 * vectors, reduced over br = (b, oy) and k = ox.  x is broadcast from itself (zero-padded into
 * xp first when the layer pads).  Each tap's x sits at a constant offset from the group's
 * plane (a group is whole channels), so a tile's loads share one address register; no
 * padding in the sums and no lane sums: every FMA is a whole vector of filters. */
typedef struct ConvDwF {
  const ConvGeo *g;
  int64_t XPS, Wp;
  LExpr *c0; /* the group's first channel */
} ConvDwF;

static LExpr *dwf_x(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *k) {
  const ConvDwF *d = c;
  const ConvGeo *g = d->g;
  int64_t kk = g->kh * g->kw;
  LExpr *b = le_bin(lp, LO_DIV, br, le_i64(lp, g->OH)), *oy = le_bin(lp, LO_MOD, br, le_i64(lp, g->OH));
  LExpr *ch = le_add(lp, d->c0, le_bin(lp, LO_DIV, m, le_i64(lp, kk))), *t = le_bin(lp, LO_MOD, m, le_i64(lp, kk));
  LExpr *y = le_add(lp, le_mul(lp, oy, le_i64(lp, g->sh)), le_bin(lp, LO_DIV, t, le_i64(lp, g->kw)));
  LExpr *x = le_add(lp, le_mul(lp, k, le_i64(lp, g->sw)), le_bin(lp, LO_MOD, t, le_i64(lp, g->kw)));
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, b, le_i64(lp, g->C)), ch), le_i64(lp, d->XPS)),
                le_add(lp, le_mul(lp, y, le_i64(lp, d->Wp)), x));
}
static LExpr *dwf_dy(LoopProgram *lp, const void *c, LExpr *br, LExpr *f, LExpr *k) {
  const ConvGeo *g = ((const ConvDwF *)c)->g;
  /* dyt[((b OH + oy) OW + ox) F + f] with br = b OH + oy */
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, br, le_i64(lp, g->OW)), k), le_i64(lp, g->F)), f);
}
static LExpr *dwf_w(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *f) {
  (void)br;
  const ConvDwF *d = c;
  const ConvGeo *g = d->g;
  int64_t kk = g->kh * g->kw;
  return le_add(lp, le_mul(lp, f, le_i64(lp, g->C * kk)), le_add(lp, le_mul(lp, d->c0, le_i64(lp, kk)), m));
}

/* Whether dW goes over the filters: F a whole number of vectors, at most two (tall tiles) */
static int conv_dw_by_filters(const ConvGeo *g, int64_t V) {
  return g->F % V == 0 && g->F <= 2 * V && (g->OH == 1 || g->sh == g->sw);
}

/* The operands of dW over the filters (both ways): x zero-padded into planes of Hp Wp when
 * the layer pads (else x itself) into *xp, and the blocked copy of dy's planes as rows of
 * OH OW pixels, unpadded, F channels a block, into *dyt. */
static void conv_dw_filters_operands(LowerCtx *lc, LStmt *body, const Node *n, const ConvGeo *g, int dy, int x,
                                     int *xp, int *dyt) {
  int64_t Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw;
  *xp = g->ph || g->pw ? padded_planes(lc, body, n, g, x, Wp, Hp * Wp) : x;
  *dyt = lower_pad2d_blocked(lc, body, n, dy, g->F, 1, g->OH * g->OW, 0, g->OH * g->OW, g->F, 0.0);
}

/* The tall tile's channels a group: the most whose taps fit one tile, and a divisor of C
 * (equal groups for the threads). */
static int64_t conv_dw_tall_group(const LoopProgram *lp, const ConvGeo *g) {
  int64_t G = gemm_tall_rows(lp, g->F) / (g->kh * g->kw);
  if (G < 1) G = 1;
  while (g->C % G) G--;
  return G;
}

static void lower_conv_dw_filters(LowerCtx *lc, const Node *n, const ConvGeo *g, int dy, int x, int dw) {
  LoopProgram *lp = lc->lp;
  LStmt *body = lower_begin(lc, n);
  int64_t Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw, kk = g->kh * g->kw;
  int xp, dyt;
  conv_dw_filters_operands(lc, body, n, g, dy, x, &xp, &dyt);
  int64_t G = conv_dw_tall_group(lp, g);
  int cg = lvar(lp, "cg");
  LStmt *lg = ls_for(lp, body, cg, le_i64(lp, 0), le_i64(lp, g->C / G));
  lg->parallel = 1; /* disjoint taps of dW */
  ConvDwF cd = {.g = g, .XPS = Hp * Wp, .Wp = Wp, .c0 = le_mul(lp, le_var(lp, cg), le_i64(lp, G))};
  GemmSpec gm = {.M = le_i64(lp, G * kk), .N = le_i64(lp, g->F), .K = le_i64(lp, g->OW),
                 .BR = le_mul(lp, le_batch(lp), le_i64(lp, g->OH)), .a = xp, .b = dyt, .c = dw,
                 .a_at = dwf_x, .b_at = dwf_dy, .c_at = dwf_w, .tall = 1, .parallel = GEMM_PAR_NONE, .ctx = &cd};
  gemm_bcast(lp, ls_body(lg), &gm);
}

/* _conv_dw over one vector of filters, several kx taps a step: where the tall tile above
 * broadcasts x once per (tap, ox) into the vector of filters (one load per FMA: load bound
 * where two loads issue a cycle), a tile of the taps of G channels takes U neighbouring output
 * columns at a time: their U dy vectors sit in registers, and each input column those U
 * columns read under the kernel row is broadcast once, into the FMAs of every (column, kx)
 * pair that reads it: per step U dy loads and G kh ((U - 1) s + kw) broadcasts for G kh kw U
 * FMAs.  (Two vectors of filters: the tall tile does two FMAs a broadcast, FMA bound
 * already.)  Every accumulator still sums over (b, oy) and then ox in ascending order, as the
 * tall tile does: the same bits. */
typedef struct ConvDwTaps {
  int64_t G, U; /* channels a tile, output columns a step */
} ConvDwTaps;

/* The relative cost of one (b, oy) row of a tile's steps (U columns a step, the rest in a
 * last step), in quarter-cycles as conv2d_step_cost: FMAs 2 each, loads 3 each. */
static int64_t conv_dw_taps_cost(const ConvGeo *g, int64_t G, int64_t U) {
  int64_t cost = 0;
  for (int part = 0; part < 2; part++) {
    int64_t u = part ? g->OW % U : U, steps = part ? (u > 0) : g->OW / U;
    if (!steps) continue;
    int64_t fm = 2 * G * g->kh * g->kw * u, ld = 3 * (u + G * g->kh * ((u - 1) * g->sw + g->kw));
    cost += steps * ((fm > ld ? fm : ld) + 2);
  }
  return cost;
}

/* Chooses G (a divisor of C) and U for the taps tile, for one vector of filters, when it
 * saves at least an eighth of the tall tile's estimate (R = its rows); 0: the tall tile. */
static int conv_dw_taps_plan(const LoopProgram *lp, const ConvGeo *g, ConvDwTaps *t) {
  int64_t V = lp->vec_f32, kk = g->kh * g->kw, regs = V >= 16 ? 32 : 16;
  if (g->F != V || g->sw >= g->kw || g->OW < 2) return 0;
  int64_t R = gemm_tall_rows(lp, g->F), Gt = conv_dw_tall_group(lp, g);
  int64_t rows = Gt * kk, tiles = (rows + R - 1) / R;
  int64_t fm = 2 * (rows < R ? rows : R), ld = 3 * (1 + (rows < R ? rows : R));
  int64_t tall = g->C / Gt * tiles * g->OW * ((fm > ld ? fm : ld) + 2), best = -1;
  for (int64_t G = 1; G <= g->C; G++) {
    if (g->C % G || G * kk + 2 > regs) continue;
    for (int64_t U = 2; U <= g->OW && G * kk + U + 1 <= regs; U++) {
      int64_t cost = g->C / G * conv_dw_taps_cost(g, G, U);
      if (best < 0 || cost < best) {
        best = cost;
        t->G = G;
        t->U = U;
      }
    }
  }
  return best >= 0 && best * 8 < tall * 7;
}

/* One step of the taps tile: the u output columns from ox0 (an expression) of row (xrow,
 * dyrow) (i64 locals), into acc[c kk + ky kw + kx] (fewer than 32 of them, and u < 32: the
 * plan keeps them and the dy vectors in the registers). */
static void conv_dw_taps_step(LoopProgram *lp, LStmt *blk, const ConvGeo *g, int xp, int dyt, int64_t XPS,
                              int64_t Wp, int64_t G, int l, int xrow, int dyrow, LExpr *ox0, int64_t u,
                              const int *acc) {
  int64_t s = g->sw, P = (u - 1) * s + g->kw;
  int dv[32];
  for (int64_t j = 0; j < u; j++) /* dyt[(br OW + ox0 + j) F + l] */
    dv[j] = ls_local(lp, blk, LT_F32,
                     le_load(lp, dyt, le_add(lp, le_local(lp, dyrow),
                                             le_add(lp, le_mul(lp, le_add(lp, ox0, le_i64(lp, j)), le_i64(lp, g->F)),
                                                    le_var(lp, l)))));
  /* column by column, the (channel, kernel row) pairs inside: an accumulator's next FMA
   * comes about G kh kw FMAs later (pair by pair, its u dependent FMAs would sit kw apart and
   * wait on the FMA latency: measured slower than the tall tile) */
  for (int64_t p = 0; p < P; p++)
    for (int64_t c = 0; c < G; c++)
      for (int64_t ky = 0; ky < g->kh; ky++) {
        if (!tap_column_used(p, g->kw, s, u)) continue;
        /* xp[row base + c XPS + ky Wp + ox0 s + p] */
        LExpr *xi = le_add(lp, le_local(lp, xrow),
                           le_add(lp, le_i64(lp, c * XPS + ky * Wp + p), le_mul(lp, ox0, le_i64(lp, s))));
        int xv = ls_local(lp, blk, LT_F32, le_load(lp, xp, xi));
        for (int64_t kx = 0; kx < g->kw; kx++) {
          int64_t j = tap_output(p, kx, s, u), m = (c * g->kh + ky) * g->kw + kx;
          if (j >= 0) ls_set(lp, blk, acc[m], le_fma(lp, le_local(lp, xv), le_local(lp, dv[j]), le_local(lp, acc[m])));
        }
      }
}

static void lower_conv_dw_taps(LowerCtx *lc, const Node *n, const ConvGeo *g, const ConvDwTaps *t, int dy, int x,
                               int dw) {
  LoopProgram *lp = lc->lp;
  LStmt *body = lower_begin(lc, n);
  int64_t V = lp->vec_f32, Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw, kk = g->kh * g->kw;
  int64_t XPS = Hp * Wp, G = t->G, U = t->U;
  int xp, dyt;
  conv_dw_filters_operands(lc, body, n, g, dy, x, &xp, &dyt);
  int cg = lvar(lp, "cg"), l = lvar(lp, "l"), br = lvar(lp, "br"), ob = lvar(lp, "ob");
  LStmt *lg = ls_for(lp, body, cg, le_i64(lp, 0), le_i64(lp, g->C / G));
  lg->parallel = 1; /* disjoint taps of dW */
  LStmt *ll = ls_for(lp, ls_body(lg), l, le_i64(lp, 0), le_i64(lp, V));
  ll->vec = (int)V;
  LStmt *tb = ls_body(ll);
  int acc[32];
  for (int64_t m = 0; m < G * kk; m++) acc[m] = ls_local(lp, tb, LT_F32, le_f32(lp, 0));
  LExpr *c0 = le_mul(lp, le_var(lp, cg), le_i64(lp, G));
  LStmt *lb = ls_for(lp, tb, br, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, g->OH)));
  LStmt *bb = ls_body(lb);
  /* the group's first plane at row oy s of batch row b (br = b OH + oy), and dy's row */
  LExpr *b = le_bin(lp, LO_DIV, le_var(lp, br), le_i64(lp, g->OH));
  LExpr *oy = le_bin(lp, LO_MOD, le_var(lp, br), le_i64(lp, g->OH));
  int xrow = ls_local(lp, bb, LT_I64,
                      le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, b, le_i64(lp, g->C)), c0), le_i64(lp, XPS)),
                             le_mul(lp, oy, le_i64(lp, g->sh * Wp))));
  int dyrow = ls_local(lp, bb, LT_I64, le_mul(lp, le_var(lp, br), le_i64(lp, g->OW * g->F)));
  int64_t nob = g->OW / U, rest = g->OW % U;
  if (nob == 1) {
    conv_dw_taps_step(lp, bb, g, xp, dyt, XPS, Wp, G, l, xrow, dyrow, le_i64(lp, 0), U, acc);
  } else {
    LStmt *lo = ls_for(lp, bb, ob, le_i64(lp, 0), le_i64(lp, nob));
    lo->unroll = -1; /* a step is a whole tile's worth of FMAs already */
    conv_dw_taps_step(lp, ls_body(lo), g, xp, dyt, XPS, Wp, G, l, xrow, dyrow,
                      le_mul(lp, le_var(lp, ob), le_i64(lp, U)), U, acc);
  }
  if (rest)
    conv_dw_taps_step(lp, bb, g, xp, dyt, XPS, Wp, G, l, xrow, dyrow, le_i64(lp, nob * U), rest, acc);
  /* dW[f, c0 + c, ky, kx] with f = l: a lane per filter */
  for (int64_t m = 0; m < G * kk; m++)
    ls_store(lp, tb, dw,
             le_add(lp, le_mul(lp, le_var(lp, l), le_i64(lp, g->C * kk)),
                    le_add(lp, le_mul(lp, c0, le_i64(lp, kk)), le_i64(lp, m))),
             le_local(lp, acc[m]));
}

/* _conv_dw for fewer filters than a vector (LeNet-5's c1) at stride 1 with output rows of at
 * least a vector, vectorized over the output columns (lower_conv_dw_cols), where the flat-plane
 * product below needs dy copied into planes of the padded row pitch (c1: 1.2 MB read and
 * 1.4 MB written a step, about a third of its time) and its tiles re-read each slice of dy
 * from L2 for every block of taps:
 *   dW[f, c, ky, kx] = sum_b sum_oy sum_ox dy[b, f, oy, ox] xp[b, c, oy + ky, ox + kx]
 * Items (c, block of NF filters, block of KX kernel columns) run on threads, each a whole sum
 * (the same order on any thread count).  Inside an item, lane l of the vectors: for each batch
 * row, and each kernel row ky, NF KX vector sums in registers over the rows oy and the column
 * vectors ox = ov V + l (a row's last vector is the row's last V columns, its lanes that the
 * one before already counted zeroed: no read past a row, nothing masked); per step NF loads
 * of dy and KX of x for NF KX FMAs.  The batch row's sums are added into part [items, kh,
 * NF KX, V] (a two-level sum), so its planes of x and dy stay in L1 over the kernel rows; at
 * the end each of part's vectors is summed across its lanes into dW. */
typedef struct ConvDwCols {
  int64_t NF, KX, NFB, KXB; /* filters and kernel columns a block; blocks of each */
} ConvDwCols;

static int conv_dw_by_cols(const LoopProgram *lp, const ConvGeo *g, ConvDwCols *t) {
  int64_t V = lp->vec_f32, regs = V >= 16 ? 32 : 16;
  if (g->F >= V || g->sw != 1 || (g->OH > 1 && g->sh != 1) || g->OW < V) return 0;
  /* NF KX sums, NF dy vectors, an x vector and two more for addresses fit in the registers */
  int64_t KX = g->kw < regs - 4 ? g->kw : regs - 4;
  t->KXB = (g->kw + KX - 1) / KX;
  t->KX = (g->kw + t->KXB - 1) / t->KXB;
  int64_t NF = (regs - 3) / (t->KX + 1);
  if (NF > g->F) NF = g->F;
  if (NF < 1) NF = 1;
  t->NFB = (g->F + NF - 1) / NF;
  t->NF = (g->F + t->NFB - 1) / t->NFB;
  return 1;
}

/* Lane l of part's vector m after the item's first, pbase (an i64 local): the item's sums for
 * kernel row ky and block entry j are its vector ky nj + j (nj = the block's nf nkx). */
static LExpr *dw_cols_part_at(LoopProgram *lp, int pbase, LExpr *m, int l) {
  return le_add(lp, le_mul(lp, le_add(lp, le_local(lp, pbase), m), le_i64(lp, lp->vec_f32)), le_var(lp, l));
}

/* dW[f, c, ky, kx] in W's own layout */
static LExpr *dw_cols_w_at(LoopProgram *lp, const ConvGeo *g, LExpr *f, LExpr *c, LExpr *ky, LExpr *kx) {
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, f, le_i64(lp, g->C)), c), le_i64(lp, g->kh * g->kw)),
                le_add(lp, le_mul(lp, ky, le_i64(lp, g->kw)), kx));
}

/* One item's sums for nf filters from f0 and nkx kernel columns from kx0 (i64 locals), into
 * part from vector pbase (an i64 local) on, in the lane loop's body blk (lane l). */
static void conv_dw_cols_item(LoopProgram *lp, LStmt *blk, const ConvGeo *g, int xp, int dy, int part, int c,
                              int f0, int kx0, int pbase, int l, int64_t nf, int64_t nkx, int64_t Wp,
                              int64_t XPS) {
  int64_t V = lp->vec_f32, NJ = nf * nkx, full = g->OW / V, rem = g->OW % V;
  int i = lvar(lp, "i"), b = lvar(lp, "b"), ky = lvar(lp, "ky"), oy = lvar(lp, "oy"), ov = lvar(lp, "ov");
  /* part's vectors of this item start at 0 */
  LStmt *li = ls_for(lp, blk, i, le_i64(lp, 0), le_i64(lp, g->kh * NJ));
  ls_store(lp, ls_body(li), part, dw_cols_part_at(lp, pbase, le_var(lp, i), l), le_f32(lp, 0));
  LStmt *lb = ls_for(lp, blk, b, le_i64(lp, 0), le_batch(lp));
  LStmt *lk = ls_for(lp, ls_body(lb), ky, le_i64(lp, 0), le_i64(lp, g->kh));
  LStmt *kb = ls_body(lk);
  int acc[32], d[32];
  if (NJ > 32 || nf > 32) die("conv_dw_cols_item: %lld x %lld sums", (long long)nf, (long long)nkx);
  for (int64_t j = 0; j < NJ; j++) acc[j] = ls_local(lp, kb, LT_F32, le_f32(lp, 0));
  LStmt *lo = ls_for(lp, kb, oy, le_i64(lp, 0), le_i64(lp, g->OH));
  LStmt *ob = ls_body(lo);
  /* x's row oy + ky from column kx0, dy's row oy of filter f0, in batch row b */
  int xrow = ls_local(lp, ob, LT_I64,
                      le_add(lp, plane_at(lp, le_var(lp, b), g->C, le_local(lp, c), XPS,
                                          le_mul(lp, le_add(lp, le_var(lp, oy), le_var(lp, ky)), le_i64(lp, Wp))),
                             le_local(lp, kx0)));
  int dyrow = ls_local(lp, ob, LT_I64,
                       plane_at(lp, le_var(lp, b), g->F, le_local(lp, f0), g->OH * g->OW,
                                le_mul(lp, le_var(lp, oy), le_i64(lp, g->OW))));
  for (int last = 0; last < 2; last++) {
    if (last && !rem) break;
    LStmt *sb = ob;
    LExpr *ox;
    if (!last) {
      LStmt *lv = ls_for(lp, ob, ov, le_i64(lp, 0), le_i64(lp, full));
      sb = ls_body(lv);
      ox = le_add(lp, le_mul(lp, le_var(lp, ov), le_i64(lp, V)), le_var(lp, l));
    } else {
      ox = le_add(lp, le_i64(lp, g->OW - V), le_var(lp, l));
    }
    for (int64_t f = 0; f < nf; f++) {
      LExpr *v = le_load(lp, dy, le_add(lp, le_local(lp, dyrow), le_add(lp, le_i64(lp, f * g->OH * g->OW), ox)));
      if (last) /* lanes below V - rem: columns the full vectors counted */
        v = le_select(lp, le_bin(lp, LO_GE, le_var(lp, l), le_i64(lp, V - rem)), v, le_f32(lp, 0));
      d[f] = ls_local(lp, sb, LT_F32, v);
    }
    for (int64_t kx = 0; kx < nkx; kx++) {
      int xv = ls_local(lp, sb, LT_F32, le_load(lp, xp, le_add(lp, le_local(lp, xrow), le_add(lp, ox, le_i64(lp, kx)))));
      for (int64_t f = 0; f < nf; f++)
        ls_set(lp, sb, acc[f * nkx + kx], le_fma(lp, le_local(lp, d[f]), le_local(lp, xv), le_local(lp, acc[f * nkx + kx])));
    }
  }
  for (int64_t j = 0; j < NJ; j++) {
    LExpr *pi = dw_cols_part_at(lp, pbase, le_add(lp, le_mul(lp, le_var(lp, ky), le_i64(lp, NJ)), le_i64(lp, j)), l);
    ls_store(lp, kb, part, pi, le_bin(lp, LO_ADD, le_load(lp, part, pi), le_local(lp, acc[j])));
  }
}

static void lower_conv_dw_cols(LowerCtx *lc, const Node *n, const ConvGeo *g, const ConvDwCols *t, int dy, int x,
                               int dw) {
  LoopProgram *lp = lc->lp;
  LStmt *body = lower_begin(lc, n);
  int64_t V = lp->vec_f32, Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw, XPS = Hp * Wp;
  int64_t NF = t->NF, KX = t->KX, NFB = t->NFB, KXB = t->KXB, items = g->C * NFB * KXB;
  int64_t NJ = NF * KX, lastf = g->F - (NFB - 1) * NF, lastk = g->kw - (KXB - 1) * KX;
  int xp = g->ph || g->pw ? padded_planes(lc, body, n, g, x, Wp, XPS) : x;
  int part = lower_scratch(lc, arena_printf(lp->arena, "%s.part", n->name), LT_F32,
                           (SymCount){items * g->kh * NJ * V, 0}, 0);
  int it = lvar(lp, "it"), l = lvar(lp, "l"), ky = lvar(lp, "ky"), j = lvar(lp, "j");
  LStmt *lit = ls_for(lp, body, it, le_i64(lp, 0), le_i64(lp, items));
  lit->parallel = 1; /* disjoint entries of dW, each a whole sum */
  LStmt *ib = ls_body(lit);
  /* it = (c NFB + fb) KXB + kb */
  int c = ls_local(lp, ib, LT_I64, le_bin(lp, LO_DIV, le_var(lp, it), le_i64(lp, NFB * KXB)));
  int fb = ls_local(lp, ib, LT_I64, le_bin(lp, LO_MOD, le_bin(lp, LO_DIV, le_var(lp, it), le_i64(lp, KXB)),
                                           le_i64(lp, NFB)));
  int kb = ls_local(lp, ib, LT_I64, le_bin(lp, LO_MOD, le_var(lp, it), le_i64(lp, KXB)));
  int f0 = ls_local(lp, ib, LT_I64, le_mul(lp, le_local(lp, fb), le_i64(lp, NF)));
  int kx0 = ls_local(lp, ib, LT_I64, le_mul(lp, le_local(lp, kb), le_i64(lp, KX)));
  int pbase = ls_local(lp, ib, LT_I64, le_mul(lp, le_var(lp, it), le_i64(lp, g->kh * NJ)));
  { /* the item's entries of dW start at 0 (the lane sums are added in) */
    int f = lvar(lp, "f"), kx = lvar(lp, "kx");
    LStmt *lf = ls_for(lp, ib, f, le_local(lp, f0), le_bin(lp, LO_MIN, le_add(lp, le_local(lp, f0), le_i64(lp, NF)),
                                                          le_i64(lp, g->F)));
    LStmt *lky = ls_for(lp, ls_body(lf), ky, le_i64(lp, 0), le_i64(lp, g->kh));
    LStmt *lkx = ls_for(lp, ls_body(lky), kx, le_local(lp, kx0),
                        le_bin(lp, LO_MIN, le_add(lp, le_local(lp, kx0), le_i64(lp, KX)), le_i64(lp, g->kw)));
    ls_store(lp, ls_body(lkx), dw, dw_cols_w_at(lp, g, le_var(lp, f), le_local(lp, c), le_var(lp, ky), le_var(lp, kx)),
             le_f32(lp, 0));
  }
  LStmt *ll = ls_for(lp, ib, l, le_i64(lp, 0), le_i64(lp, V));
  ll->vec = (int)V;
  LStmt *lb = ls_body(ll);
  /* the blocks' sizes: the last filter block and the last column block may be smaller */
  for (int lf = 0; lf < 2; lf++)
    for (int lk = 0; lk < 2; lk++) {
      int64_t nf = lf ? lastf : NF, nkx = lk ? lastk : KX;
      if ((lf && lastf == NF) || (lk && lastk == KX)) continue;
      LExpr *cf = lastf == NF ? NULL
                              : le_bin(lp, lf ? LO_EQ : LO_LT, le_local(lp, fb), le_i64(lp, NFB - 1));
      LExpr *ck = lastk == KX ? NULL
                              : le_bin(lp, lk ? LO_EQ : LO_LT, le_local(lp, kb), le_i64(lp, KXB - 1));
      LExpr *cond = cf && ck ? le_bin(lp, LO_AND, cf, ck) : cf ? cf : ck;
      LStmt *blk = cond ? ls_body(ls_if(lp, lb, cond)) : lb;
      conv_dw_cols_item(lp, blk, g, xp, dy, part, c, f0, kx0, pbase, l, nf, nkx, Wp, XPS);
      /* dW[f0 + f, c, ky, kx0 + kx] = the lanes of its vector of part, summed */
      LStmt *lky = ls_for(lp, blk, ky, le_i64(lp, 0), le_i64(lp, g->kh));
      LStmt *lj = ls_for(lp, ls_body(lky), j, le_i64(lp, 0), le_i64(lp, nf * nkx));
      LExpr *f = le_add(lp, le_local(lp, f0), le_bin(lp, LO_DIV, le_var(lp, j), le_i64(lp, nkx)));
      LExpr *kx = le_add(lp, le_local(lp, kx0), le_bin(lp, LO_MOD, le_var(lp, j), le_i64(lp, nkx)));
      LExpr *pi = dw_cols_part_at(lp, pbase, le_add(lp, le_mul(lp, le_var(lp, ky), le_i64(lp, nf * nkx)), le_var(lp, j)), l);
      ls_accumulate(lp, ls_body(lj), dw, dw_cols_w_at(lp, g, f, le_local(lp, c), le_var(lp, ky), kx),
                    le_load(lp, part, pi));
    }
}

/* _conv_dw by Winograd's F(3x3, 2x2) for a 3x3 kernel at stride 1 (the weight gradient's
 * counterpart of lower_conv2d_winograd): a 2 x 2 block of dy's positions (a tile) and the
 * 4 x 4 patch of padded x under it give their part of the 3 x 3 taps as
 *   A^T [(G dy G^T) . (B^T x B)] A,   B^T as the forward's (wino_bt),
 *   G = [1 0; 1/2 1/2; 1/2 -1/2; 0 1],   A^T = [1 1 1 0; 0 1 -1 0; 0 1 1 -1],
 * so the sum over every tile of the batch is 16 products (channels x filters, summed over the
 * tiles) and one inverse transform at the end: 16 multiply-adds a tile, channel and filter
 * where the taps take 36.  G is applied without its halves (exact powers of two, multiplied
 * into the 16 sums at the end instead of into every tile).
 *
 * The operands: x padded by one more than the layer pads and dy by one, both channels last
 * ([B, Hp, Wp, C], [B, OH + 2, OW + 2, F]): a tile's patch is in range and a plane's odd last
 * row or column of tiles reads zeros of dy (x's row past the layer's padding multiplies only
 * transform row 3 of dy, which is then exactly 0).  The tiles of the batch are dealt into
 * WDW_SLICES slices (ceil bounds, as the forward's items), whatever the thread count: a slice
 * on a thread transforms its tiles TB at a time into its own scratch (x's 16 points as rows
 * of channels, dy's as rows of filters) and adds each point's product over the chunk into its
 * partial sums part[slice, point, c, f] (gemm_bcast's tall tiles: the channels broadcast into
 * blocks of two vectors of filters).  Then per channel, on threads: the slices' sums in slice
 * order, the halves, A^T M A, dW.  The same bits on any thread count.
 *
 * Filters in whole pairs of vectors: a tile's broadcast then feeds two multiply-adds.  With one
 * vector (16 -> 16 on AVX-512) every multiply-add loads its own broadcast and the products ran
 * at about three quarters of the peak: with the transforms, as slow as the taps tile.  At
 * least 16 tiles a chunk (C + F <= 128): with 8 or 10 (64 -> 128, 128 -> 128 on 16 x 16) the
 * partial sums' loads and stores around each chunk's products made a VGG-style training step
 * 1.09x slower than direct sums.  A training step of two such layers on 32 x 32 at batch 32,
 * one thread: 16 -> 32 1.06x faster, 32 -> 32 1.08x, 64 -> 64 1.13x; on AVX2 resnet_mini's
 * 1.14x. */
enum {
  WDW_SLICES = 8,       /* partial sums; the parallel loop's iterations */
  WDW_TB = 32,          /* tiles a chunk, at most */
  WDW_FLOATS = 32768,   /* a slice's transformed chunk (x's and dy's), at most about */
};

static int conv_dw_winograd(const LoopProgram *lp, const ConvGeo *g) {
  int64_t V = lp->vec_f32;
  return lp->winograd && V >= 8 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->ph == g->pw &&
         g->OH >= 2 && g->OW >= 2 && g->C % V == 0 && g->F % (2 * V) == 0 &&
         16 * 16 * (g->C + g->F) <= WDW_FLOATS;
}

typedef struct ConvDwW {
  int64_t C, F, NB, XS, DS; /* channels, filters, filters a block; the floats from one point to the
                             * next in xs and ds */
  int part;
  LExpr *wk, *xi, *ck, *fb; /* the slice, the point, the chunk, the filter block */
} ConvDwW;

/* A(m = channel, k = tile of the chunk) = xs[wk, xi, k, m] */
static LExpr *dww_x(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *k) {
  (void)br;
  const ConvDwW *d = c;
  return wino_scratch_at(lp, d->wk, d->xi, d->XS, k, d->C, m);
}
/* B(n = filter, k) = ds[wk, xi, k, n] */
static LExpr *dww_dy(LoopProgram *lp, const void *c, LExpr *br, LExpr *n, LExpr *k) {
  (void)br;
  const ConvDwW *d = c;
  return wino_scratch_at(lp, d->wk, d->xi, d->DS, k, d->F, le_add(lp, le_mul(lp, d->fb, le_i64(lp, d->NB)), n));
}
/* C(m = channel, n = filter) = part[wk, xi, m, n] */
static LExpr *dww_part(LoopProgram *lp, const void *c, LExpr *br, LExpr *m, LExpr *n) {
  (void)br;
  const ConvDwW *d = c;
  LExpr *pt = le_add(lp, le_mul(lp, d->wk, le_i64(lp, 16)), d->xi);
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, pt, le_i64(lp, d->C)), m), le_i64(lp, d->F)),
                le_add(lp, le_mul(lp, d->fb, le_i64(lp, d->NB)), n));
}
/* the slice's first chunk starts from 0, the others from its sums so far */
static LExpr *dww_init(LoopProgram *lp, const void *c, LExpr *m, LExpr *n) {
  const ConvDwW *d = c;
  return le_select(lp, le_bin(lp, LO_EQ, d->ck, le_i64(lp, 0)), le_f32(lp, 0),
                   le_load(lp, d->part, dww_part(lp, c, NULL, m, n)));
}

/* o[0..3] = G without its halves applied to (a, b): a, a + b, a - b, b */
static void wino_g2(LoopProgram *lp, LStmt *blk, LExpr *a, LExpr *b, int *o) {
  o[0] = ls_local(lp, blk, LT_F32, a);
  o[1] = ls_local(lp, blk, LT_F32, le_add(lp, a, b));
  o[2] = ls_local(lp, blk, LT_F32, le_sub(lp, a, b));
  o[3] = ls_local(lp, blk, LT_F32, b);
}
/* F(3, 2)'s A^T applied to (m0, m1, m2, m3): m0 + m1 + m2, m1 - m2, m1 + m2 - m3 (the last
 * term's sign for wino_bt's last row, the negative of the usual one) */
static void wino_at3(LoopProgram *lp, LStmt *blk, LExpr *const *m, int *o) {
  int s12 = ls_local(lp, blk, LT_F32, le_add(lp, m[1], m[2]));
  o[0] = ls_local(lp, blk, LT_F32, le_add(lp, m[0], le_local(lp, s12)));
  o[1] = ls_local(lp, blk, LT_F32, le_sub(lp, m[1], m[2]));
  o[2] = ls_local(lp, blk, LT_F32, le_sub(lp, le_local(lp, s12), m[3]));
}

static void lower_conv_dw_winograd(LowerCtx *lc, const Node *n, const ConvGeo *g, int dy, int x, int dw) {
  LoopProgram *lp = lc->lp;
  LStmt *body = lower_begin(lc, n);
  int64_t V = lp->vec_f32, C = g->C, F = g->F, S = WDW_SLICES;
  int64_t TW = (g->OW + 1) / 2, T = (g->OH + 1) / 2 * TW;
  int64_t TB = WDW_FLOATS / (16 * (C + F));
  if (TB > WDW_TB) TB = WDW_TB;
  int64_t px = g->ph + 1, Hx = g->H + 2 * px, Wx = g->W + 2 * px, Hd = g->OH + 2, Wd = g->OW + 2;
  int64_t XS = wino_stride(TB, C), DS = wino_stride(TB, F);
  int xq = lower_pad2d_blocked_as(lc, body, arena_printf(lp->arena, "%s.xq", n->name), x, C, g->H, g->W, px, Wx,
                                  C, 0.0);
  int dq = lower_pad2d_blocked_as(lc, body, arena_printf(lp->arena, "%s.dq", n->name), dy, F, g->OH, g->OW, 1, Wd,
                                  F, 0.0);
  int xs = lower_scratch(lc, arena_printf(lp->arena, "%s.wx", n->name), LT_F32, (SymCount){S * 16 * XS, 0}, 0);
  int ds = lower_scratch(lc, arena_printf(lp->arena, "%s.wd", n->name), LT_F32, (SymCount){S * 16 * DS, 0}, 0);
  int part = lower_scratch(lc, arena_printf(lp->arena, "%s.wp", n->name), LT_F32, (SymCount){S * 16 * C * F, 0}, 0);

  /* slice wk: the tiles [ceil(wk NT / S), ceil((wk + 1) NT / S)) of the batch's NT */
  int wk = lvar(lp, "wk"), ck = lvar(lp, "ck"), j = lvar(lp, "j");
  LStmt *lw = ls_for(lp, body, wk, le_i64(lp, 0), le_i64(lp, S));
  lw->parallel = 1; /* each slice its own scratch and sums */
  LStmt *wb = ls_body(lw);
  LExpr *NT = le_mul(lp, le_batch(lp), le_i64(lp, T));
  int lo = ls_local(lp, wb, LT_I64, share_start(lp, le_var(lp, wk), NT, S));
  int hi = ls_local(lp, wb, LT_I64, share_start(lp, le_add(lp, le_var(lp, wk), le_i64(lp, 1)), NT, S));
  {
    /* a slice without tiles (fewer tiles than slices) sums to 0 */
    int i = lvar(lp, "i");
    LStmt *lz = ls_for(lp, ls_body(ls_if(lp, wb, le_bin(lp, LO_EQ, le_local(lp, lo), le_local(lp, hi)))), i,
                       le_i64(lp, 0), le_i64(lp, 16 * C * F));
    lz->vec = (int)V;
    ls_store(lp, ls_body(lz), part, le_add(lp, le_mul(lp, le_var(lp, wk), le_i64(lp, 16 * C * F)), le_var(lp, i)),
             le_f32(lp, 0));
  }
  LStmt *lck = ls_for(lp, wb, ck, le_i64(lp, 0),
                      le_bin(lp, LO_DIV, le_add(lp, le_sub(lp, le_local(lp, hi), le_local(lp, lo)), le_i64(lp, TB - 1)),
                             le_i64(lp, TB)));
  LStmt *cb = ls_body(lck);
  int u0 = ls_local(lp, cb, LT_I64, le_add(lp, le_local(lp, lo), le_mul(lp, le_var(lp, ck), le_i64(lp, TB))));
  int cnt = ls_local(lp, cb, LT_I64, le_bin(lp, LO_MIN, le_i64(lp, TB), le_sub(lp, le_local(lp, hi), le_local(lp, u0))));

  /* the chunk's tiles j: x's B^T d B into xs[wk, xi, j, c], dy's G d G^T into ds[wk, xi, j, f] */
  LStmt *lj = ls_for(lp, cb, j, le_i64(lp, 0), le_local(lp, cnt));
  LStmt *jb = ls_body(lj);
  LExpr *u = le_add(lp, le_local(lp, u0), le_var(lp, j));
  int bt = ls_local(lp, jb, LT_I64, le_bin(lp, LO_DIV, u, le_i64(lp, T)));
  int t = ls_local(lp, jb, LT_I64, le_bin(lp, LO_MOD, u, le_i64(lp, T)));
  LExpr *r0 = le_add(lp, le_mul(lp, le_bin(lp, LO_DIV, le_local(lp, t), le_i64(lp, TW)), le_i64(lp, 2)), le_i64(lp, 1));
  LExpr *q0 = le_add(lp, le_mul(lp, le_bin(lp, LO_MOD, le_local(lp, t), le_i64(lp, TW)), le_i64(lp, 2)), le_i64(lp, 1));
  int xrow = ls_local(lp, jb, LT_I64,
                      le_mul(lp, le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_local(lp, bt), le_i64(lp, Hx)), r0),
                                                   le_i64(lp, Wx)),
                                        q0),
                             le_i64(lp, C)));
  int drow = ls_local(lp, jb, LT_I64,
                      le_mul(lp, le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_local(lp, bt), le_i64(lp, Hd)), r0),
                                                   le_i64(lp, Wd)),
                                        q0),
                             le_i64(lp, F)));
  {
    LExpr *ch;
    LStmt *vb = vec_blocks(lp, jb, "cv", C, &ch);
    LExpr *d[4][4];
    for (int a = 0; a < 4; a++)
      for (int s = 0; s < 4; s++)
        d[a][s] = le_local(lp, ls_local(lp, vb, LT_F32,
                                        le_load(lp, xq, le_add(lp, le_local(lp, xrow),
                                                               le_add(lp, le_i64(lp, (a * Wx + s) * C), ch)))));
    LExpr *at[16];
    for (int xi = 0; xi < 16; xi++) at[xi] = wino_scratch_at(lp, le_var(lp, wk), le_i64(lp, xi), XS, le_var(lp, j), C, ch);
    wino_bt2_store(lp, vb, d, xs, at);
  }
  {
    LExpr *f;
    LStmt *vb = vec_blocks(lp, jb, "fv", F, &f);
    LExpr *e[2][2];
    for (int a = 0; a < 2; a++)
      for (int s = 0; s < 2; s++)
        e[a][s] = le_local(lp, ls_local(lp, vb, LT_F32,
                                        le_load(lp, dq, le_add(lp, le_local(lp, drow),
                                                               le_add(lp, le_i64(lp, (a * Wd + s) * F), f)))));
    int gc[4][2]; /* G dy: gc[i][col] */
    for (int s = 0; s < 2; s++) {
      int o[4];
      wino_g2(lp, vb, e[0][s], e[1][s], o);
      for (int i = 0; i < 4; i++) gc[i][s] = o[i];
    }
    for (int i = 0; i < 4; i++) {
      int o[4];
      wino_g2(lp, vb, le_local(lp, gc[i][0]), le_local(lp, gc[i][1]), o);
      for (int s = 0; s < 4; s++)
        ls_store(lp, vb, ds, wino_scratch_at(lp, le_var(lp, wk), le_i64(lp, i * 4 + s), DS, le_var(lp, j), F, f),
                 le_local(lp, o[s]));
    }
  }
  /* part[wk, xi] (+)= the chunk's product at point xi */
  {
    int xi = lvar(lp, "xi"), fb = lvar(lp, "fb");
    LStmt *lxi = ls_for(lp, cb, xi, le_i64(lp, 0), le_i64(lp, 16));
    LStmt *lfb = ls_for(lp, ls_body(lxi), fb, le_i64(lp, 0), le_i64(lp, F / (2 * V)));
    ConvDwW cd = {.C = C, .F = F, .NB = 2 * V, .XS = XS, .DS = DS, .part = part, .wk = le_var(lp, wk),
                  .xi = le_var(lp, xi), .ck = le_var(lp, ck), .fb = le_var(lp, fb)};
    GemmSpec gm = {.M = le_i64(lp, C), .N = le_i64(lp, 2 * V), .K = le_local(lp, cnt), .a = xs, .b = ds, .c = part,
                   .a_at = dww_x, .b_at = dww_dy, .c_at = dww_part, .init = dww_init, .tall = 1,
                   .parallel = GEMM_PAR_NONE, .ctx = &cd, .name = "w"};
    gemm_bcast(lp, ls_body(lfb), &gm);
  }

  /* dW[f, c, ky, kx] = A^T M A with M = the slices' sums in order, times G's halves (each
   * filter a lane: dW's filters are C 9 floats apart) */
  {
    static const double half[4] = {1, 0.5, 0.5, 1};
    int c = lvar(lp, "c");
    LStmt *lc_ = ls_for(lp, body, c, le_i64(lp, 0), le_i64(lp, C));
    lc_->parallel = 1; /* disjoint taps of dW */
    LExpr *f;
    LStmt *vb = vec_blocks(lp, ls_body(lc_), "fv", F, &f);
    LExpr *m[4][4];
    for (int a = 0; a < 4; a++)
      for (int s = 0; s < 4; s++) {
        LExpr *sum = NULL;
        for (int64_t w = 0; w < S; w++) {
          LExpr *at = le_add(lp, le_mul(lp, le_add(lp, le_i64(lp, (w * 16 + a * 4 + s) * C), le_var(lp, c)),
                                        le_i64(lp, F)),
                             f);
          LExpr *v = le_load(lp, part, at);
          sum = sum ? le_add(lp, sum, v) : v;
        }
        double h = half[a] * half[s];
        m[a][s] = le_local(lp, ls_local(lp, vb, LT_F32, h == 1 ? sum : le_mul(lp, sum, le_f32(lp, h))));
      }
    int sr[3][4]; /* A^T M: sr[r][col] */
    for (int s = 0; s < 4; s++) {
      LExpr *col[4] = {m[0][s], m[1][s], m[2][s], m[3][s]};
      int o[3];
      wino_at3(lp, vb, col, o);
      for (int r = 0; r < 3; r++) sr[r][s] = o[r];
    }
    for (int r = 0; r < 3; r++) {
      LExpr *row[4] = {le_local(lp, sr[r][0]), le_local(lp, sr[r][1]), le_local(lp, sr[r][2]), le_local(lp, sr[r][3])};
      int o[3];
      wino_at3(lp, vb, row, o);
      for (int k = 0; k < 3; k++)
        ls_store(lp, vb, dw, le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, f, le_i64(lp, C)), le_var(lp, c)), le_i64(lp, 9)),
                                    le_i64(lp, r * 3 + k)),
                 le_local(lp, o[k]));
    }
  }
}

/* _conv_dw.  Flat planes again: xp [B, C, XPS] is x zero-padded, Hp rows of pitch Wp, and
 * dyq [B, F, NQ] is dy with the same pitch Wp (zero in columns >= OW and past OH Wp, NQ a
 * whole number of vectors), so that with q = oy Wp + ox the input element under kernel tap
 * (ky, kx) is xp[s q + ky Wp + kx] (sh = sw for conv2d; conv1d has one row).  Then
 *   dW[f, c, ky, kx] = sum_b sum_q dyq[b, f, q] xp[b, c, s q + ky Wp + kx]
 * a batch-reduce gemm_dot (rows f, columns (c, ky, kx), reduced over b and q: ConvDw). */
static void lower_conv_dw(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  ConvGeo g = conv_geo(lc->g, &lc->g->nodes[n->fwd]);
  int dy = lower_value(lc, n->in[0]), x = lower_value(lc, n->in[1]), dw = lower_value(lc, n->id);
  if (conv_dw_winograd(lp, &g)) {
    lower_conv_dw_winograd(lc, n, &g, dy, x, dw);
    return;
  }
  ConvDwCols tc;
  if (conv_dw_by_cols(lp, &g, &tc)) {
    lower_conv_dw_cols(lc, n, &g, &tc, dy, x, dw);
    return;
  }
  if (conv_dw_by_filters(&g, lp->vec_f32)) {
    ConvDwTaps t;
    if (conv_dw_taps_plan(lp, &g, &t))
      lower_conv_dw_taps(lc, n, &g, &t, dy, x, dw);
    else
      lower_conv_dw_filters(lc, n, &g, dy, x, dw);
    return;
  }
  LStmt *body = lower_begin(lc, n);
  int64_t V = lp->vec_f32, s = g.sw;
  if (g.OH > 1 && g.sh != g.sw) die("conv_dw: unequal strides");
  int64_t Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw;
  int64_t NQ = round_up(g.OH * Wp, V);
  int64_t XPS = round_up(Hp * Wp > s * NQ + g.kh * Wp + g.kw ? Hp * Wp : s * NQ + g.kh * Wp + g.kw, V);
  int dyq = lower_scratch(lc, arena_printf(lp->arena, "%s.dyq", n->name), LT_F32,
                          (SymCount){g.F * NQ, 0}, 1);
  int xp = padded_planes(lc, body, n, &g, x, Wp, XPS);
  pitch_planes(lp, body, dyq, dy, g.F, g.OH, g.OW, Wp, NQ);
  ConvDw cd = {.g = &g, .NQ = NQ, .XPS = XPS, .Wp = Wp};
  GemmSpec gm = {.M = le_i64(lp, g.F), .N = le_i64(lp, g.C * g.kh * g.kw), .K = le_i64(lp, NQ),
                 .BR = le_batch(lp), .a = dyq, .b = xp, .c = dw, .a_at = dw_dy, .b_at = dw_x,
                 .c_at = dw_w, .ctx = &cd};
  gemm_dot(lp, body, &gm);
}

static void lower_conv_db(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  ConvGeo g = conv_geo(lc->g, &lc->g->nodes[n->fwd]);
  int dy = lower_value(lc, n->in[0]), db = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int64_t Q = g.OH * g.OW;
  int f = lvar(lp, "f"), q = lvar(lp, "q"), b = lvar(lp, "b");
  LStmt *lf = ls_for(lp, body, f, le_i64(lp, 0), le_i64(lp, g.F));
  lf->parallel = 1;   /* each filter's sum on one thread, in the same order on any count */
  LStmt *fb = ls_body(lf);
  int acc = ls_local(lp, fb, LT_F32, le_f32(lp, 0));
  /* plane after plane, each read as one sequential stream (with the batch rows innermost,
   * every vector of q would touch a page of every row: more streams than the prefetcher
   * follows); each plane's lanes are folded into the sum before the next plane */
  LStmt *lb = ls_for(lp, fb, b, le_i64(lp, 0), le_batch(lp));
  LStmt *lq = ls_reduce(lp, ls_body(lb), q, le_i64(lp, 0), le_i64(lp, Q), acc, LO_ADD);
  LExpr *di = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, b), le_i64(lp, g.F)), le_var(lp, f)),
                                le_i64(lp, Q)),
                     le_var(lp, q));
  ls_combine(lp, ls_body(lq), acc, LO_ADD, le_load(lp, dy, di));
  ls_store(lp, fb, db, le_var(lp, f), le_local(lp, acc));
}

OP_INTERNAL_FUSING(conv_dx, lower_conv_dx, op_fuses_always); /* the copy out of dxs */
OP_INTERNAL(conv_dw, lower_conv_dw);
OP_INTERNAL(conv_db, lower_conv_db);
