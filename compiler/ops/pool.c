/* pool.c - maxpool2d, avgpool2d, global_avgpool (PyTorch MaxPool2d / AvgPool2d, ceil_mode=False).
 *
 *   maxpool2d(x, size, stride=size, pad=0)   [C, H, W] -> [C, (H - k + 2p)/s + 1, (W - ...)]
 *   avgpool2d(x, size, stride=size, pad=0)   same; padding counts (count_include_pad=True)
 *   global_avgpool(x)                        [C, H, W] -> [C]
 *
 * Attrs: kernel = size, stride, pad.  The stride's default "same as size" is
 * the sentinel 0, resolved here (n->a.stride is the real stride afterwards);
 * an explicit stride=0 is an error.  As in PyTorch, pad <= size/2: max pooling
 * ignores the padding, which must never fill a whole window.  No parameters.
 */
#include <stddef.h>

#include "autodiff.h"
#include "lower.h"
#include "ops.h"

enum { POOL_SIZE = 1, POOL_STRIDE = 2, POOL_PAD = 3 }; /* schema positions */

static const ArgSpec pool_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
    {.name = "size", .type = ARG_INT, .required = 1, .offset = offsetof(Attrs, kernel), .min = 1,
     .max = 1e18},
    /* 0: the default, "the window size" (resolved by the shape rule) */
    {.name = "stride", .type = ARG_INT, .dflt = 0, .offset = offsetof(Attrs, stride), .min = 0},
    {.name = "pad", .type = ARG_INT, .dflt = 0, .offset = offsetof(Attrs, pad), .min = 0},
};

static const ArgSpec global_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
};

static Loc arg_or_call(const Node *n, int i) { return n->arg_loc[i].file ? n->arg_loc[i] : n->loc; }

static int pool_infer(Graph *g, Node *n) {
  const char *op = op_info(n->op)->name;
  if (n->a.stride == 0) {
    if (n->arg_loc[POOL_STRIDE].file) {
      diag_error(n->arg_loc[POOL_STRIDE], "%s: stride must be at least 1", op);
      return -1;
    }
    n->a.stride = n->a.kernel;
  }
  if (n->a.pad > n->a.kernel / 2) {
    diag_error(arg_or_call(n, POOL_PAD), "%s: padding %lld is more than half the window size %lld",
               op, (long long)n->a.pad, (long long)n->a.kernel);
    diag_note((Loc){0}, "as in PyTorch, pad must be at most size/2 = %lld, so that no window "
              "holds only padding", (long long)(n->a.kernel / 2));
    return -1;
  }
  if (op_require_f32(g, n, 0) || op_require_rank(g, n, 0, 3, "[C, H, W]")) return -1;
  Shape in = in_shape(g, n, 0);
  Shape out = {.rank = 3};
  out.d[0] = in.d[0];
  if (window_out2d(g, n, in.d[1], in.d[2], n->a.kernel, n->a.stride, n->a.pad, &out.d[1],
                   &out.d[2]))
    return -1;
  return op_set_shape(g, n, out);
}

/* max: k*k compares per output; average: k*k adds and one division. */
static SymCount pool_flops(const Graph *g, const Node *n) {
  int64_t kk = n->a.kernel * n->a.kernel + (n->op == OP_avgpool2d);
  return symcount_scale(shape_numel(n->shape), kk);
}

static int global_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0) || op_require_rank(g, n, 0, 3, "[C, H, W]")) return -1;
  Shape in = in_shape(g, n, 0);
  if (shape_has_sym(in)) {
    char sb[160];
    diag_error(n->loc, "global_avgpool needs fixed sizes, got %s",
               shape_str(sb, sizeof sb, in, g->sym));
    op_note_value(g, n->in[0]);
    return -1;
  }
  Shape out = {.rank = 1};
  out.d[0] = in.d[0];
  return op_set_shape(g, n, out);
}

static SymCount global_flops(const Graph *g, const Node *n) {
  return symcount_add(shape_numel(in_shape(g, n, 0)), shape_numel(n->shape));
}

/* --- lowering ---
 *   B = batch, C = channels, H x W input, k = window, s = stride, p = pad, OH x OW output
 *   x [B, C, H, W] -> y [B, C, OH, OW], read in place: no padded copy.  Along each axis the
 *   output positions split in three: those whose windows start in the padding, those whose
 *   windows lie inside the input, those whose windows end in the padding.  The inner rows and
 *   columns take every tap (the columns vectorized: contiguous loads when s = 1, s apart
 *   otherwise); the border ones take only the taps inside the input, which for max pooling
 *   is the padding's -inf left out and for average pooling its 0 (the sum still divided by
 *   k k: the padding counts).  Max pooling takes a tap that is greater or NaN, as PyTorch's
 *   kernel: a NaN in a window makes the window's maximum NaN.
 * global_avgpool: x [B, C, H*W] -> y [B, C], the B*C rows on threads, each a vector reduction.
 */

/* One axis of a pooling: N input positions, window k, stride s, padding p, O outputs. */
typedef struct PoolAxis {
  int64_t N, k, s, p, O;
} PoolAxis;

/* The outputs [lo, hi) whose windows lie inside the input: o s >= p and o s - p + k <= N. */
static void pool_inner(PoolAxis a, int64_t *lo, int64_t *hi) {
  int64_t l = (a.p + a.s - 1) / a.s, h = a.N + a.p - a.k >= 0 ? (a.N + a.p - a.k) / a.s + 1 : 0;
  l = l < a.O ? l : a.O;
  h = h < a.O ? h : a.O;
  *lo = l;
  *hi = h > l ? h : l;
}

/* The loop over the window's taps at output o along axis a: all k of them for an inner
 * position, else those inside the input, [max(0, p - o s), min(k, N + p - o s)). */
static LStmt *pool_taps(LoopProgram *lp, LStmt *block, int t, PoolAxis a, int o, int inner) {
  if (inner) return ls_for(lp, block, t, le_i64(lp, 0), le_i64(lp, a.k));
  LExpr *off = le_sub(lp, le_i64(lp, a.p), le_mul(lp, le_var(lp, o), le_i64(lp, a.s)));
  return ls_for(lp, block, t, le_bin(lp, LO_MAX, off, le_i64(lp, 0)),
                le_bin(lp, LO_MIN, le_add(lp, off, le_i64(lp, a.N)), le_i64(lp, a.k)));
}

/* The input position of tap t of output o: o s - p + t */
static LExpr *pool_at(LoopProgram *lp, PoolAxis a, int o, int t) {
  return le_add(lp, le_sub(lp, le_mul(lp, le_var(lp, o), le_i64(lp, a.s)), le_i64(lp, a.p)), le_var(lp, t));
}

/* The windows of plane r, in nine parts (rows and columns each before, inside, after the
 * inner range).  Max pooling: a tap replaces the maximum when greater (the first maximum
 * stays, as in PyTorch), and with nan_safe when NaN too (one vmaxps a tap without it, a
 * compare, an or and a blend with it, on the maximum's dependency chain). */
static void pool_windows(LoopProgram *lp, const Node *n, LStmt *block, int r, int x, int y, PoolAxis ay, PoolAxis ax,
                         int nan_safe) {
  int ismax = n->op == OP_maxpool2d;
  int64_t ylo, yhi, xlo, xhi;
  pool_inner(ay, &ylo, &yhi);
  pool_inner(ax, &xlo, &xhi);
  int64_t ycut[4] = {0, ylo, yhi, ay.O}, xcut[4] = {0, xlo, xhi, ax.O};
  for (int i = 0; i < 3; i++) {
    if (ycut[i + 1] <= ycut[i]) continue;
    int oy = lvar(lp, "oy");
    LStmt *loy = ls_for(lp, block, oy, le_i64(lp, ycut[i]), le_i64(lp, ycut[i + 1]));
    for (int j = 0; j < 3; j++) {
      if (xcut[j + 1] <= xcut[j]) continue;
      int ox = lvar(lp, "ox"), ky = lvar(lp, "ky"), kx = lvar(lp, "kx");
      LStmt *lox = ls_for(lp, ls_body(loy), ox, le_i64(lp, xcut[j]), le_i64(lp, xcut[j + 1]));
      if (j == 1) lox->vec = lp->vec_f32; /* the border columns are a few scalars */
      LStmt *ob = ls_body(lox);
      int acc = ls_local(lp, ob, LT_F32, le_f32(lp, ismax ? -__builtin_inf() : 0.0));
      LStmt *lky = pool_taps(lp, ob, ky, ay, oy, i == 1);
      LStmt *lkx = pool_taps(lp, ls_body(lky), kx, ax, ox, j == 1);
      LExpr *at = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, ay.N)), pool_at(lp, ay, oy, ky)),
                                    le_i64(lp, ax.N)),
                         pool_at(lp, ax, ox, kx));
      LStmt *kb = ls_body(lkx);
      if (ismax) {
        int v = ls_local(lp, kb, LT_F32, le_load(lp, x, at));
        LExpr *take = le_bin(lp, LO_GT, le_local(lp, v), le_local(lp, acc));
        if (nan_safe) take = le_bin(lp, LO_OR, take, le_bin(lp, LO_NE, le_local(lp, v), le_local(lp, v)));
        ls_set(lp, kb, acc, le_select(lp, take, le_local(lp, v), le_local(lp, acc)));
      } else {
        ls_set(lp, kb, acc, le_add(lp, le_local(lp, acc), le_load(lp, x, at)));
      }
      LExpr *res = le_local(lp, acc);
      if (!ismax) res = le_bin(lp, LO_MUL, res, le_f32(lp, 1.0 / (double)(ay.k * ax.k)));
      ls_store(lp, ob, y,
               le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, ay.O)), le_var(lp, oy)),
                                 le_i64(lp, ax.O)),
                      le_var(lp, ox)),
               res);
    }
  }
}

static void lower_pool(struct LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  int64_t C = in.d[0].n, H = in.d[1].n, W = in.d[2].n, k = n->a.kernel, s = n->a.stride, p = n->a.pad;
  PoolAxis ay = {H, k, s, p, n->shape.d[1].n}, ax = {W, k, s, p, n->shape.d[2].n};
  int x = lower_value(lc, n->in[0]), y = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int r = lvar(lp, "bc");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, C)));
  lr->parallel = 1; /* planes are independent */
  if (n->op != OP_maxpool2d) {
    pool_windows(lp, n, ls_body(lr), r, x, y, ay, ax, 0);
    return;
  }
  /* A plane with a NaN (or an infinity: x - x is NaN for both) takes the NaN-safe windows;
   * the check reads the plane once, which the windows then read from the cache. */
  int i = lvar(lp, "i");
  int odd = ls_local(lp, ls_body(lr), LT_F32, le_f32(lp, 0.0));
  LStmt *scan = ls_reduce(lp, ls_body(lr), i, le_i64(lp, 0), le_i64(lp, H * W), odd, LO_ADD);
  LExpr *xi = le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, H * W)), le_var(lp, i));
  ls_combine(lp, ls_body(scan), odd, LO_ADD, le_sub(lp, le_load(lp, x, xi), le_load(lp, x, xi)));
  LExpr *finite = le_bin(lp, LO_EQ, le_local(lp, odd), le_local(lp, odd));
  pool_windows(lp, n, ls_body(ls_if(lp, ls_body(lr), finite)), r, x, y, ay, ax, 0);
  pool_windows(lp, n, ls_body(ls_if(lp, ls_body(lr), le_bin(lp, LO_NE, le_local(lp, odd), le_local(lp, odd)))), r, x,
               y, ay, ax, 1);
}

static void lower_global_avgpool(struct LowerCtx *lc, const Node *n) {
  enum { CHUNK = 256 }; /* floats summed apart (in vector lanes), then added: the rounding error
                         * grows with CHUNK / V + HW / CHUNK terms, not with HW */
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, n, 0);
  int64_t C = in.d[0].n, HW = in.d[1].n * in.d[2].n;
  int x = lower_value(lc, n->in[0]), y = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  /* rows on threads; each row's plane read contiguously, a vector reduction per chunk (across
   * the rows, lanes were 784 floats apart at 28 x 28: a gather per element) */
  int r = lvar(lp, "bc"), ic = lvar(lp, "ic"), i = lvar(lp, "i");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, C)));
  lr->parallel = 1;
  int acc = ls_local(lp, ls_body(lr), LT_F32, le_f32(lp, 0));
  LStmt *lic = ls_for(lp, ls_body(lr), ic, le_i64(lp, 0), le_i64(lp, (HW + CHUNK - 1) / CHUNK));
  int part = ls_local(lp, ls_body(lic), LT_F32, le_f32(lp, 0));
  LExpr *i0 = le_mul(lp, le_var(lp, ic), le_i64(lp, CHUNK));
  LStmt *li = ls_reduce(lp, ls_body(lic), i, i0, le_bin(lp, LO_MIN, le_i64(lp, HW), le_add(lp, i0, le_i64(lp, CHUNK))),
                        part, LO_ADD);
  ls_combine(lp, ls_body(li), part, LO_ADD,
             le_load(lp, x, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, HW)), le_var(lp, i))));
  ls_set(lp, ls_body(lic), acc, le_bin(lp, LO_ADD, le_local(lp, acc), le_local(lp, part)));
  ls_store(lp, ls_body(lr), y, le_var(lp, r),
           le_bin(lp, LO_DIV, le_local(lp, acc), le_f32(lp, (double)HW)));
}

/* --- the gradient rules ---
 *   maxpool2d       dx = dy routed to the first maximal element of each window (_maxpool2d_grad)
 *   avgpool2d       dx = dy / (k k) spread over each window's elements in the input (_avgpool2d_grad)
 *   global_avgpool  dx = dy / (H W) at every position (_global_avgpool_grad)
 */
static void grad_maxpool(AdCtx *ad, int n, int dy) {
  int x = ad_graph(ad)->nodes[n].in[0];
  if (!ad_wants(ad, x)) return;
  int in[2] = {dy, x};
  ad_input_grad(ad, n, 0, ad_node_like(ad, OP_maxpool2d_grad, in, 2, n, 0, x));
}

static void grad_avgpool(AdCtx *ad, int n, int dy) {
  int x = ad_graph(ad)->nodes[n].in[0];
  if (!ad_wants(ad, x)) return;
  ad_input_grad(ad, n, 0, ad_node_like(ad, OP_avgpool2d_grad, &dy, 1, n, 0, x));
}

static void grad_global_avgpool(AdCtx *ad, int n, int dy) {
  int x = ad_graph(ad)->nodes[n].in[0];
  if (!ad_wants(ad, x)) return;
  ad_input_grad(ad, n, 0, ad_node_like(ad, OP_global_avgpool_grad, &dy, 1, n, 0, x));
}

const OpInfo op_maxpool2d = {
    .kind = OP_maxpool2d,
    .name = "maxpool2d",
    .doc = "maxpool2d(x, size, stride=size, pad=0): [C,H,W] -> [C, (H-k+2p)/s+1, (W-k+2p)/s+1]",
    .args = pool_args,
    .nargs = sizeof pool_args / sizeof pool_args[0],
    .infer = pool_infer,
    .flops = pool_flops,
    .lower = lower_pool,
    .grad = grad_maxpool,
};

const OpInfo op_avgpool2d = {
    .kind = OP_avgpool2d,
    .name = "avgpool2d",
    .doc = "avgpool2d(x, size, stride=size, pad=0): [C,H,W] -> [C, (H-k+2p)/s+1, (W-k+2p)/s+1], "
           "padding counted",
    .args = pool_args,
    .nargs = sizeof pool_args / sizeof pool_args[0],
    .infer = pool_infer,
    .flops = pool_flops,
    .lower = lower_pool,
    .grad = grad_avgpool,
};

const OpInfo op_global_avgpool = {
    .kind = OP_global_avgpool,
    .name = "global_avgpool",
    .doc = "global_avgpool(x): [C,H,W] -> [C], the mean of each channel",
    .args = global_args,
    .nargs = 1,
    .infer = global_infer,
    .flops = global_flops,
    .lower = lower_global_avgpool,
    .grad = grad_global_avgpool,
};

/* --- the gradient program (ops.def) ---
 *   dy [B, C, OH, OW], x and dx [B, C, H, W]; window (oy, ox) covers the input rows
 *   [oy s - p, oy s - p + k) and columns [ox s - p, ox s - p + k), clipped to the input.
 * _maxpool2d_grad: dx zeroed, then for each window (serially: windows overlap when s < k, so
 *   their scatter-adds collide) the first element, in row-major order, that is greater than
 *   every element before it (or NaN) receives dy, as PyTorch's CPU kernel does: the first
 *   maximum wins, and the padding (-inf in the forward) is never chosen.  Disjoint windows
 *   (no padding, stride >= size) run vectorized over ox instead, the same choice per lane.
 * _avgpool2d_grad: dx zeroed, then for each window offset (ky, kx) and the windows whose
 *   element there is inside the input, dx += dy / (k k): vectorized over ox, whose lanes
 *   write distinct columns (ox s + kx).
 * _global_avgpool_grad: dx[bc, i] = dy[bc] / (H W), vectorized over i. */
static void pool_dims(const LowerCtx *lc, const Node *f, int64_t *C, int64_t *H, int64_t *W,
                      int64_t *OH, int64_t *OW) {
  Shape in = in_shape(lc->g, f, 0);
  *C = in.d[0].n;
  *H = in.d[1].n;
  *W = in.d[2].n;
  *OH = f->shape.d[1].n;
  *OW = f->shape.d[2].n;
}

/* dx[i] = 0 for the whole value */
static void zero_value(LowerCtx *lc, LStmt *body, int dx, const Node *n) {
  LoopProgram *lp = lc->lp;
  int i = lvar(lp, "i");
  LStmt *l = ls_for(lp, body, i, le_i64(lp, 0), lower_total(lc, shape_numel(n->shape)));
  l->vec = lp->vec_f32;
  ls_store(lp, ls_body(l), dx, le_var(lp, i), le_f32(lp, 0));
}

/* One element of a window's scan: element idx of x becomes the window's choice (at takes id,
 * the element's name there: its index, or its tap) when it is greater than every element
 * before it or NaN: the first maximum wins, as in PyTorch. */
static int scan_max(LoopProgram *lp, LStmt *xb, int x, LExpr *idx, LExpr *id, int best, int at) {
  int v = ls_local(lp, xb, LT_F32, le_load(lp, x, idx));
  LExpr *take = le_bin(lp, LO_OR, le_bin(lp, LO_GT, le_local(lp, v), le_local(lp, best)),
                       le_bin(lp, LO_NE, le_local(lp, v), le_local(lp, v)));
  int t = ls_local(lp, xb, LT_BOOL, take);
  ls_set(lp, xb, best, le_select(lp, le_local(lp, t), le_local(lp, v), le_local(lp, best)));
  ls_set(lp, xb, at, le_select(lp, le_local(lp, t), id, le_local(lp, at)));
  return v;
}

/* dy[r, oy, ox] of a [B C, OH, OW] gradient */
static LExpr *window_dy(LoopProgram *lp, int r, int oy, int ox, int64_t OH, int64_t OW) {
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, OH)), le_var(lp, oy)), le_i64(lp, OW)),
                le_var(lp, ox));
}

/* Element (ky, kx) of window (oy, ox) at stride s, in the plane from `plane` with rows of W */
static LExpr *window_elem(LoopProgram *lp, LExpr *plane, int oy, int ox, int64_t s, int64_t W, LExpr *ky,
                          LExpr *kx) {
  return le_add(lp, plane, le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, oy), le_i64(lp, s)), ky), le_i64(lp, W)),
                                  le_add(lp, le_mul(lp, le_var(lp, ox), le_i64(lp, s)), kx)));
}

/* Disjoint windows that tile the input exactly (no padding, s = k, H = OH k, W = OW k): every
 * input element lies in one window, so the vectorized gradient below writes every element of
 * dx once, in its last store (and an activation's gradient after it can be fused there). */
static int windows_tile(const Graph *g, const Node *n) {
  const Node *f = &g->nodes[n->fwd];
  Shape in = in_shape(g, f, 0);
  int64_t k = f->a.kernel;
  return f->a.pad == 0 && f->a.stride == k && f->shape.d[1].n * k == in.d[1].n && f->shape.d[2].n * k == in.d[2].n;
}

/* Windows that neither overlap nor leave the input (no padding, s >= k; floor mode keeps the
 * last window inside): vectorized over ox, whose lanes hold distinct windows.  Each lane
 * finds its window's first maximum as above; then, when the windows tile the input exactly
 * (s = k, H = OH k, W = OW k: every input element in one window), every element of every
 * window is written, dy where it is the maximum and 0 elsewhere (no zeroing pass); otherwise
 * dx is zeroed and each lane adds dy at its maximum (distinct places). */
static void lower_maxpool2d_grad_disjoint(LowerCtx *lc, const Node *n, LStmt *body, int dy, int x, int dx) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t C, H, W, OH, OW, k = f->a.kernel, s = f->a.stride;
  pool_dims(lc, f, &C, &H, &W, &OH, &OW);
  int tiles = windows_tile(lc->g, n);
  if (!tiles) zero_value(lc, body, dx, n);
  int r = lvar(lp, "bc"), oy = lvar(lp, "oy"), ox = lvar(lp, "ox");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, C)));
  lr->parallel = 1; /* planes are independent */
  LStmt *loy = ls_for(lp, ls_body(lr), oy, le_i64(lp, 0), le_i64(lp, OH));
  LStmt *lox = ls_for(lp, ls_body(loy), ox, le_i64(lp, 0), le_i64(lp, OW));
  lox->vec = lp->vec_f32;
  LStmt *ob = ls_body(lox);
  LExpr *plane = le_mul(lp, le_var(lp, r), le_i64(lp, H * W));
  int ky = lvar(lp, "ky"), kx = lvar(lp, "kx");
  LExpr *idx = window_elem(lp, plane, oy, ox, s, W, le_var(lp, ky), le_var(lp, kx));
  /* each lane's maximum as its window's tap number ky k + kx, held in an f32 (exact below
   * 2^24 taps): one vector a lane group where flat i64 indices took two, and the stores below
   * compare it with a number the same for every lane */
  int best = ls_local(lp, ob, LT_F32, le_f32(lp, -__builtin_inf()));
  int at = ls_local(lp, ob, LT_F32, le_f32(lp, 0));
  if (k * k >= (1 << 24)) die("maxpool2d_grad: a window of %lld taps", (long long)(k * k));
  if (tiles && k <= 4) {
    /* a small window unrolled: its elements loaded into locals once, scanned, and written
     * back as k runs of k neighbours, row by row, whose strided vector stores codegen writes
     * as k whole interleaved vectors (emit_store_run); a fused activation's gradient that
     * reads x (its output) takes the element from its local instead of loading it again */
    int v[16];
    LExpr *row[4];
    for (int64_t i = 0; i < k; i++) {
      row[i] = window_elem(lp, plane, oy, ox, s, W, le_i64(lp, i), le_i64(lp, 0));
      for (int64_t j = 0; j < k; j++)
        v[i * k + j] = scan_max(lp, ob, x, le_add(lp, row[i], le_i64(lp, j)), le_f32(lp, (double)(i * k + j)), best, at);
    }
    int g = ls_local(lp, ob, LT_F32, le_load(lp, dy, window_dy(lp, r, oy, ox, OH, OW)));
    int from_x = lower_grad_epilogue_buf(lc, n) == x;
    for (int64_t i = 0; i < k; i++)
      for (int64_t j = 0; j < k; j++) {
        LExpr *ei = le_add(lp, row[i], le_i64(lp, j));
        LExpr *d = le_select(lp, le_bin(lp, LO_EQ, le_f32(lp, (double)(i * k + j)), le_local(lp, at)), le_local(lp, g),
                             le_f32(lp, 0));
        ls_store(lp, ob, dx, ei,
                 from_x ? lower_grad_epilogue_of(lc, n, d, le_local(lp, v[i * k + j])) : lower_grad_epilogue(lc, n, d, ei));
      }
    return;
  }
  LExpr *tap = le_cast(lp, LT_F32, le_add(lp, le_mul(lp, le_var(lp, ky), le_i64(lp, k)), le_var(lp, kx)));
  {
    LStmt *lky = ls_for(lp, ob, ky, le_i64(lp, 0), le_i64(lp, k));
    LStmt *lkx = ls_for(lp, ls_body(lky), kx, le_i64(lp, 0), le_i64(lp, k));
    scan_max(lp, ls_body(lkx), x, idx, tap, best, at);
  }
  int g = ls_local(lp, ob, LT_F32, le_load(lp, dy, window_dy(lp, r, oy, ox, OH, OW)));
  if (!tiles) {
    /* the maximum's place: its tap's row and column in the window */
    LExpr *t = le_cast(lp, LT_I64, le_local(lp, at));
    ls_accumulate(lp, ob, dx,
                  window_elem(lp, plane, oy, ox, s, W, le_bin(lp, LO_DIV, t, le_i64(lp, k)), le_bin(lp, LO_MOD, t, le_i64(lp, k))),
                  le_local(lp, g));
    return;
  }
  LStmt *lky = ls_for(lp, ob, ky, le_i64(lp, 0), le_i64(lp, k));
  LStmt *lkx = ls_for(lp, ls_body(lky), kx, le_i64(lp, 0), le_i64(lp, k));
  ls_store(lp, ls_body(lkx), dx, idx,
           lower_grad_epilogue(lc, n, le_select(lp, le_bin(lp, LO_EQ, tap, le_local(lp, at)), le_local(lp, g), le_f32(lp, 0)),
                               idx));
}

static void lower_maxpool2d_grad(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t C, H, W, OH, OW, k = f->a.kernel, s = f->a.stride, p = f->a.pad;
  pool_dims(lc, f, &C, &H, &W, &OH, &OW);
  int dy = lower_value(lc, n->in[0]), x = lower_value(lc, n->in[1]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  if (p == 0 && s >= k) {
    lower_maxpool2d_grad_disjoint(lc, n, body, dy, x, dx);
    return;
  }
  zero_value(lc, body, dx, n);
  int r = lvar(lp, "bc"), oy = lvar(lp, "oy"), ox = lvar(lp, "ox"), iy = lvar(lp, "iy"), ix = lvar(lp, "ix");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, C)));
  lr->parallel = 1; /* planes are independent */
  LStmt *loy = ls_for(lp, ls_body(lr), oy, le_i64(lp, 0), le_i64(lp, OH));
  LStmt *lox = ls_for(lp, ls_body(loy), ox, le_i64(lp, 0), le_i64(lp, OW));
  LStmt *ob = ls_body(lox);
  LExpr *y0 = le_sub(lp, le_mul(lp, le_var(lp, oy), le_i64(lp, s)), le_i64(lp, p));
  LExpr *x0 = le_sub(lp, le_mul(lp, le_var(lp, ox), le_i64(lp, s)), le_i64(lp, p));
  LExpr *ylo = le_bin(lp, LO_MAX, y0, le_i64(lp, 0));
  LExpr *xlo = le_bin(lp, LO_MAX, x0, le_i64(lp, 0));
  LExpr *yhi = le_bin(lp, LO_MIN, le_add(lp, y0, le_i64(lp, k)), le_i64(lp, H));
  LExpr *xhi = le_bin(lp, LO_MIN, le_add(lp, x0, le_i64(lp, k)), le_i64(lp, W));
  LExpr *plane = le_mul(lp, le_var(lp, r), le_i64(lp, H * W));
  /* the first in-bounds element, as PyTorch (chosen only if every element is -inf) */
  int best = ls_local(lp, ob, LT_F32, le_f32(lp, -__builtin_inf()));
  int at = ls_local(lp, ob, LT_I64,
                    le_add(lp, plane, le_add(lp, le_mul(lp, ylo, le_i64(lp, W)), xlo)));
  LStmt *liy = ls_for(lp, ob, iy, ylo, yhi);
  LStmt *lix = ls_for(lp, ls_body(liy), ix, xlo, xhi);
  LExpr *idx = le_add(lp, plane, le_add(lp, le_mul(lp, le_var(lp, iy), le_i64(lp, W)), le_var(lp, ix)));
  scan_max(lp, ls_body(lix), x, idx, idx, best, at);
  ls_accumulate(lp, ob, dx, le_local(lp, at), le_load(lp, dy, window_dy(lp, r, oy, ox, OH, OW)));
}

static void lower_avgpool2d_grad(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  const Node *f = &lc->g->nodes[n->fwd];
  int64_t C, H, W, OH, OW, k = f->a.kernel, s = f->a.stride, p = f->a.pad;
  pool_dims(lc, f, &C, &H, &W, &OH, &OW);
  int dy = lower_value(lc, n->in[0]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  zero_value(lc, body, dx, n);
  int r = lvar(lp, "bc"), ky = lvar(lp, "ky"), oy = lvar(lp, "oy"), kx = lvar(lp, "kx"), ox = lvar(lp, "ox");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, C)));
  lr->parallel = 1;
  LStmt *lky = ls_for(lp, ls_body(lr), ky, le_i64(lp, 0), le_i64(lp, k));
  /* oy s - p + ky in [0, H): oy in [ceil(max(p - ky, 0) / s), floor((H - 1 + p - ky) / s) + 1) */
  LExpr *oylo = le_bin(lp, LO_DIV,
                       le_add(lp, le_bin(lp, LO_MAX, le_sub(lp, le_i64(lp, p), le_var(lp, ky)), le_i64(lp, 0)),
                              le_i64(lp, s - 1)),
                       le_i64(lp, s));
  LExpr *oyhi = le_bin(lp, LO_MIN, le_i64(lp, OH),
                       le_bin(lp, LO_DIV,
                              le_bin(lp, LO_MAX, le_sub(lp, le_i64(lp, H - 1 + p + s), le_var(lp, ky)),
                                     le_i64(lp, 0)),
                              le_i64(lp, s)));
  LStmt *loy = ls_for(lp, ls_body(lky), oy, oylo, oyhi);
  LStmt *lkx = ls_for(lp, ls_body(loy), kx, le_i64(lp, 0), le_i64(lp, k));
  LExpr *oxlo = le_bin(lp, LO_DIV,
                       le_add(lp, le_bin(lp, LO_MAX, le_sub(lp, le_i64(lp, p), le_var(lp, kx)), le_i64(lp, 0)),
                              le_i64(lp, s - 1)),
                       le_i64(lp, s));
  LExpr *oxhi = le_bin(lp, LO_MIN, le_i64(lp, OW),
                       le_bin(lp, LO_DIV,
                              le_bin(lp, LO_MAX, le_sub(lp, le_i64(lp, W - 1 + p + s), le_var(lp, kx)),
                                     le_i64(lp, 0)),
                              le_i64(lp, s)));
  LStmt *lox = ls_for(lp, ls_body(lkx), ox, oxlo, oxhi);
  lox->vec = lp->vec_f32;
  LExpr *iy = le_add(lp, le_mul(lp, le_var(lp, oy), le_i64(lp, s)), le_sub(lp, le_var(lp, ky), le_i64(lp, p)));
  LExpr *ix = le_add(lp, le_mul(lp, le_var(lp, ox), le_i64(lp, s)), le_sub(lp, le_var(lp, kx), le_i64(lp, p)));
  LExpr *di = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, H)), iy), le_i64(lp, W)), ix);
  LExpr *oi = le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, OH)), le_var(lp, oy)),
                                le_i64(lp, OW)),
                     le_var(lp, ox));
  ls_accumulate(lp, ls_body(lox), dx, di,
                le_bin(lp, LO_MUL, le_load(lp, dy, oi), le_f32(lp, 1.0 / (double)(k * k))));
}

static void lower_global_avgpool_grad(LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  Shape in = in_shape(lc->g, &lc->g->nodes[n->fwd], 0);
  int64_t C = in.d[0].n, HW = in.d[1].n * in.d[2].n;
  int dy = lower_value(lc, n->in[0]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int r = lvar(lp, "bc"), i = lvar(lp, "i");
  LStmt *lr = ls_for(lp, body, r, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, C)));
  lr->parallel = 1;
  LStmt *li = ls_for(lp, ls_body(lr), i, le_i64(lp, 0), le_i64(lp, HW));
  li->vec = lp->vec_f32;
  ls_store(lp, ls_body(li), dx, le_add(lp, le_mul(lp, le_var(lp, r), le_i64(lp, HW)), le_var(lp, i)),
           le_bin(lp, LO_DIV, le_load(lp, dy, le_var(lp, r)), le_f32(lp, (double)HW)));
}

OP_INTERNAL_FUSING(maxpool2d_grad, lower_maxpool2d_grad, windows_tile);
OP_INTERNAL(avgpool2d_grad, lower_avgpool2d_grad);
OP_INTERNAL(global_avgpool_grad, lower_global_avgpool_grad);
