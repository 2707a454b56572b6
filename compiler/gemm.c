/* gemm.c - the register-blocked matrix-product generator (see gemm.h). */
#include "gemm.h"

#include <stdlib.h>

#include "util.h"

enum { GEMM_MAX_MR = 8, GEMM_MAX_NC = 8,
       GEMM_TALL_MR = 28 /* rows of a tall tile (gemm_bcast with g->tall) */, GEMM_DOT_CHUNK = 32 /* vectors summed per partial */,
       GEMM_BCAST_SLICE = 256 /* k per slice of a gemm_bcast reduction */,
       GEMM_DOT_SLICE = 4096 /* k per slice of a gemm_dot batch-reduce */,
       GEMM_GROUP_PANEL = 16384 /* bytes of B a grouped product's tiles walk in one chunk */,
       GEMM_CHUNK_TILES = 8 /* row tiles a chunk of a run-time M (bcast_chunked) */ };

static LExpr *i64(LoopProgram *lp, int64_t v) { return le_i64(lp, v); }
static LExpr *var(LoopProgram *lp, int v) { return le_var(lp, v); }
static LExpr *min_(LoopProgram *lp, LExpr *a, LExpr *b) { return le_bin(lp, LO_MIN, a, b); }
static LExpr *div_(LoopProgram *lp, LExpr *a, int64_t d) { return le_bin(lp, LO_DIV, a, i64(lp, d)); }

static LExpr *c_at(LoopProgram *lp, const GemmSpec *g, LExpr *m, LExpr *n) {
  return g->c_at(lp, g->ctx, NULL, m, n);
}

/* for br in [lo, hi) (lo NULL: [0, BR)): returns the block to fill and sets *br (a constant 0
 * without BR) */
static LStmt *br_loop(LoopProgram *lp, LStmt *blk, const GemmSpec *g, LExpr *lo, LExpr *hi, LExpr **br) {
  if (!g->BR) {
    *br = i64(lp, 0);
    return blk;
  }
  int v = lvar(lp, "br");
  LStmt *l = ls_for(lp, blk, v, lo ? lo : i64(lp, 0), lo ? hi : g->BR);
  *br = var(lp, v);
  return ls_body(l);
}

/* A slice of the reduction: k in [klo, khi), br in [brlo, brhi) (NULL: all); first / last (bool
 * expressions, NULL: true) say whether it is the first slice (C starts at init) and the last
 * (the epilogue applies). */
typedef struct Slice {
  LExpr *klo, *khi, *brlo, *brhi, *first, *last;
} Slice;

/* pack_b: the row of the scratch holding B(br, :, k) of the slice */
static LExpr *pack_row(LoopProgram *lp, const GemmSpec *g, const Slice *sl, LExpr *br, LExpr *k) {
  LExpr *r = le_sub(lp, k, sl->klo);
  if (g->BR && sl->brlo) r = le_add(lp, le_mul(lp, le_sub(lp, br, sl->brlo), g->K), r);
  return r;
}

/* A(br, m, k): from A itself, or from the slice's packed copy */
static LExpr *a_load(LoopProgram *lp, const GemmSpec *g, const Slice *sl, LExpr *br, LExpr *m, LExpr *k) {
  if (!g->pack_a) return le_load(lp, g->a, g->a_at(lp, g->ctx, br, m, k));
  int64_t pitch = gemm_pitch(lp, g->M->ival);
  return le_load(lp, g->apack, le_add(lp, le_mul(lp, pack_row(lp, g, sl, br, k), i64(lp, pitch)), m));
}

/* B(br, n, k): from B itself, or from the slice's packed copy */
static LExpr *b_load(LoopProgram *lp, const GemmSpec *g, const Slice *sl, LExpr *br, LExpr *n, LExpr *k) {
  if (!g->pack_b) return le_load(lp, g->b, g->b_at(lp, g->ctx, br, n, k));
  int64_t pitch = gemm_pitch(lp, g->N->ival);
  return le_load(lp, g->bpack, le_add(lp, le_mul(lp, pack_row(lp, g, sl, br, k), i64(lp, pitch)), n));
}

static void check_spec(const GemmSpec *g) {
  if (!g->M || !g->N || !g->K || !g->a_at || !g->b_at || !g->c_at) die("gemm: incomplete spec");
  if (g->accumulate && (g->init || g->epilogue)) die("gemm: accumulate takes no init or epilogue");
}

/* --- gemm_bcast --- */

/* One k of a register tile: acc[i][j] += a[i] * b[j] (i < mr, j < nv), the loads a[i] (scalars
 * broadcast) and b[j] (vectors) into locals first.  a_first: all mr broadcasts stay live and
 * the B vectors come one at a time; else all nv B vectors stay live and the broadcasts come one
 * at a time.  Whichever operand has fewer values should stay live (a 3 x 4 tile on AVX2 needs
 * 12 accumulators + 4 registers of 16; loading its 4 B vectors first spilled them). */
static void tile_fmas(LoopProgram *lp, LStmt *kb, LExpr *const *a, int mr, LExpr *const *b, int nv,
                      int acc[][GEMM_MAX_NC], int a_first) {
  int av[GEMM_TALL_MR], bv[GEMM_MAX_NC];
  if (a_first) {
    for (int i = 0; i < mr; i++) av[i] = ls_local(lp, kb, LT_F32, a[i]);
    for (int j = 0; j < nv; j++) {
      int b1 = ls_local(lp, kb, LT_F32, b[j]);
      for (int i = 0; i < mr; i++)
        ls_set(lp, kb, acc[i][j], le_fma(lp, le_local(lp, av[i]), le_local(lp, b1), le_local(lp, acc[i][j])));
    }
    return;
  }
  for (int j = 0; j < nv; j++) bv[j] = ls_local(lp, kb, LT_F32, b[j]);
  for (int i = 0; i < mr; i++) {
    int a1 = ls_local(lp, kb, LT_F32, a[i]);
    for (int j = 0; j < nv; j++)
      ls_set(lp, kb, acc[i][j], le_fma(lp, le_local(lp, a1), le_local(lp, bv[j]), le_local(lp, acc[i][j])));
  }
}

/* The tile: rows m0 + i (i < mr), columns n0 + j V + l (j < nv) for the lanes l < lanes. */
static void bcast_tile(LoopProgram *lp, LStmt *blk, const GemmSpec *g, const Slice *sl, LExpr *m0,
                       int mr, LExpr *n0, int nv, LExpr *lanes, LExpr *pf_n) {
  if (mr > GEMM_TALL_MR || nv > GEMM_MAX_NC) die("gemm_bcast: a %d x %d tile", mr, nv);
  int64_t V = lp->vec_f32;
  int l = lvar(lp, "l"), k = lvar(lp, "k");
  LStmt *ll = ls_for(lp, blk, l, i64(lp, 0), lanes);
  ll->vec = (int)V;
  LStmt *tb = ls_body(ll);
  LExpr *m[GEMM_TALL_MR], *n[GEMM_MAX_NC];
  int acc[GEMM_TALL_MR][GEMM_MAX_NC];
  for (int i = 0; i < mr; i++) m[i] = le_add(lp, m0, i64(lp, i));
  for (int j = 0; j < nv; j++) n[j] = le_add(lp, n0, le_add(lp, i64(lp, j * V), var(lp, l)));
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nv; j++)
      acc[i][j] = ls_local(lp, tb, LT_F32, g->init && !sl->first ? g->init(lp, g->ctx, m[i], n[j]) : le_f32(lp, 0));
  LExpr *br;
  LStmt *bb = br_loop(lp, tb, g, sl->brlo, sl->brhi, &br);
  LStmt *lk = ls_for(lp, bb, k, sl->klo, sl->khi);
  if (g->unroll_k) {
    if (g->K->kind != LE_CONST) die("gemm_bcast: unroll_k with a run-time K");
    lk->unroll = 1;
  }
  LExpr *a[GEMM_TALL_MR] = {0}, *b[GEMM_MAX_NC] = {0};
  for (int i = 0; i < mr; i++) a[i] = a_load(lp, g, sl, br, m[i], var(lp, k));
  for (int j = 0; j < nv; j++) b[j] = b_load(lp, g, sl, br, n[j], var(lp, k));
  tile_fmas(lp, ls_body(lk), a, mr, b, nv, acc, 0);
  /* pf_n: the column whose line of B at this k the tile prefetches (g->prefetch_b) */
  if (pf_n) ls_prefetch(lp, ls_body(lk), g->b, g->b_at(lp, g->ctx, br, pf_n, var(lp, k)));
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nv; j++) {
      LExpr *v = le_local(lp, acc[i][j]);
      if (g->accumulate) {
        ls_accumulate(lp, tb, g->c, c_at(lp, g, m[i], n[j]), v);
      } else {
        if (sl->first) /* a later slice adds to what the earlier ones left in C */
          v = le_bin(lp, LO_ADD, v, le_select(lp, sl->first, g->init ? g->init(lp, g->ctx, m[i], n[j]) : le_f32(lp, 0),
                                             le_load(lp, g->c, c_at(lp, g, m[i], n[j]))));
        if (g->epilogue) {
          LExpr *e = g->epilogue(lp, g->ctx, v, m[i], n[j]);
          v = sl->last ? le_select(lp, sl->last, e, v) : e;
        }
        ls_store(lp, tb, g->c, c_at(lp, g, m[i], n[j]), v);
      }
    }
}

static int bcast_regs(const LoopProgram *lp) { return lp->vec_f32 >= 16 ? 32 : 16; }

/* Whether the tiles prefetch B (GemmSpec.prefetch_b: AVX-512 only, B read where it is) */
static int bcast_prefetch(const LoopProgram *lp, const GemmSpec *g) {
  return g->prefetch_b && !g->pack_b && bcast_regs(lp) == 32;
}

/* Rows [mlo, mlo + mr * MB) in tiles of mr (MB: an expression), every column: panels of nv
 * vectors, then single vectors, the last one partial. */
static void bcast_rows(LoopProgram *lp, LStmt *blk, const GemmSpec *g, const Slice *sl, LExpr *mlo,
                       int mr, LExpr *MB, int nv) {
  int64_t V = lp->vec_f32, P = nv * V;
  /* panels no wider than the columns (a known N narrower than a panel) */
  if (g->N->kind == LE_CONST && g->N->ival < P) {
    nv = (int)(g->N->ival / V);
    P = nv * V;
  }
  LExpr *NP = nv ? div_(lp, g->N, P) : i64(lp, 0);
  LExpr *nfull = le_mul(lp, NP, i64(lp, P));
  if (nv) {
    int p = lvar(lp, "np"), mb = lvar(lp, "mb");
    LStmt *lpn = ls_for(lp, blk, p, i64(lp, 0), NP);
    lpn->parallel = g->parallel == GEMM_PAR_N;
    LExpr *n0 = le_mul(lp, var(lp, p), i64(lp, P));
    LExpr *mlo_pf = i64(lp, 0);
    if (bcast_prefetch(lp, g)) {
      /* row tile mb < nv prefetches the next panel's vector mb (past the last panel: the
       * columns after it, or lines past B, which a prefetch may name) */
      mlo_pf = min_(lp, MB, i64(lp, nv));
      int mp = lvar(lp, "mb");
      LStmt *lf = ls_for(lp, ls_body(lpn), mp, i64(lp, 0), mlo_pf);
      bcast_tile(lp, ls_body(lf), g, sl, le_add(lp, mlo, le_mul(lp, var(lp, mp), i64(lp, mr))), mr, n0, nv,
                 i64(lp, V), le_add(lp, le_add(lp, n0, i64(lp, P)), le_mul(lp, var(lp, mp), i64(lp, V))));
    }
    LStmt *lm = ls_for(lp, ls_body(lpn), mb, mlo_pf, MB);
    bcast_tile(lp, ls_body(lm), g, sl, le_add(lp, mlo, le_mul(lp, var(lp, mb), i64(lp, mr))), mr, n0, nv,
               i64(lp, V), NULL);
  }
  {
    /* the columns past the panels: ceil((N - nfull) / V) vectors */
    int q = lvar(lp, "nq"), mb = lvar(lp, "mb");
    LExpr *NQ = div_(lp, le_add(lp, le_sub(lp, g->N, nfull), i64(lp, V - 1)), V);
    LStmt *lq = ls_for(lp, blk, q, i64(lp, 0), NQ);
    lq->parallel = g->parallel == GEMM_PAR_N;
    LStmt *lm = ls_for(lp, ls_body(lq), mb, i64(lp, 0), MB);
    LExpr *n0 = le_add(lp, nfull, le_mul(lp, var(lp, q), i64(lp, V)));
    bcast_tile(lp, ls_body(lm), g, sl, le_add(lp, mlo, le_mul(lp, var(lp, mb), i64(lp, mr))), mr, n0, 1,
               min_(lp, i64(lp, V), le_sub(lp, g->N, n0)), NULL);
  }
}

/* The vectors of a tile of m rows as wide as the registers hold (m nv + nv + 1 of them). */
static int bcast_width(const LoopProgram *lp, int m) {
  int v = (bcast_regs(lp) - 1) / (m + 1);
  return v > GEMM_MAX_NC ? GEMM_MAX_NC : v;
}

static void bcast_shape(const LoopProgram *lp, const GemmSpec *g, int *mr, int *nv) {
  if (bcast_regs(lp) == 32) *mr = 6, *nv = 4;  /* 24 accumulators + 4 B vectors + 1 A of 32 */
  else *mr = 4, *nv = 3;                       /* 12 + 3 + 1 of 16 */
  /* a streamed B (prefetch_b): panels of 3 vectors, 8-row tiles.  A 1x1 convolution's panel
   * over 192 channels is then 36 KB and stays in L1 (48 KB) with the rows of A and the
   * prefetched lines, where 4 vectors (48 KB) filled it: 1.05-1.12x on its 16 to 96 filters
   * at batch 1 (B in L2), 1.01-1.10x at batch 8 (B from memory), Sapphire Rapids */
  if (bcast_prefetch(lp, g)) *mr = 8, *nv = 3;
  /* a known M of 2..8 that the tile does not divide (a convolution with 6 filters): one tile
   * of all M rows, as wide as the registers allow, rather than full tiles and then
   * single-row tiles that load a B vector for every FMA */
  if (g->M->kind == LE_CONST && g->M->ival >= 2 && g->M->ival <= GEMM_MAX_MR && g->M->ival % *mr) {
    *mr = (int)g->M->ival;
    *nv = bcast_width(lp, *mr);
  }
}

/* The slice's rows of an operand (A or B, cols = M or N, a constant) into dst, row after row:
 * row (br - brlo) * K + (k - klo) holds X(br, :, k) at a pitch of gemm_pitch(cols). */
static void pack_slice(LoopProgram *lp, LStmt *body, const GemmSpec *g, const Slice *sl, int src,
                       GemmAt at, LExpr *cols, int dst) {
  if (cols->kind != LE_CONST) die("gemm_bcast: packing needs a constant M or N");
  int64_t V = lp->vec_f32, pitch = gemm_pitch(lp, cols->ival);
  int r = lvar(lp, "pr"), n = lvar(lp, "pn");
  LExpr *rows = g->BR ? le_mul(lp, le_sub(lp, sl->brhi, sl->brlo), g->K) : le_sub(lp, sl->khi, sl->klo);
  LStmt *lr = ls_for(lp, body, r, i64(lp, 0), rows);
  lr->parallel = g->parallel == GEMM_PAR_N; /* threads only where the spec allows them */
  LExpr *br = g->BR ? le_add(lp, sl->brlo, le_bin(lp, LO_DIV, var(lp, r), g->K)) : i64(lp, 0);
  LExpr *k = g->BR ? le_bin(lp, LO_MOD, var(lp, r), g->K) : le_add(lp, sl->klo, var(lp, r));
  LStmt *ln = ls_for(lp, ls_body(lr), n, i64(lp, 0), cols);
  ln->vec = (int)V;
  ls_store(lp, ls_body(ln), dst, le_add(lp, le_mul(lp, var(lp, r), i64(lp, pitch)), var(lp, n)),
           le_load(lp, src, at(lp, g->ctx, br, var(lp, n), k)));
}

/* Whether k floats of reduction (a known K, or a bound on it) run in one slice: up to one and
 * a half slices of GEMM_BCAST_SLICE.  The slicing of gemm_bcast's loops and the size of a
 * packed slice both follow it. */
static int bcast_one_slice(int64_t k) { return k <= GEMM_BCAST_SLICE * 3 / 2; }

/* batch-reduce rows per slice: about GEMM_BCAST_SLICE k in all; one row of an unknown K when B
 * is packed (the scratch holds at most K rows then) */
static int64_t bcast_br_slice(const GemmSpec *g) {
  if (g->K->kind != LE_CONST) return g->pack_b || g->pack_a ? 1 : 4;
  if (g->K->ival >= GEMM_BCAST_SLICE) return 1;
  return GEMM_BCAST_SLICE / (g->K->ival ? g->K->ival : 1);
}

static SymCount pack_size(const LoopProgram *lp, const GemmSpec *g, LExpr *cols, SymCount kbound) {
  if (cols->kind != LE_CONST) die("gemm_bcast: packing needs a constant M or N");
  int64_t pitch = gemm_pitch(lp, cols->ival);
  if (g->K->kind == LE_CONST) kbound = (SymCount){g->K->ival, 0};
  if (!g->BR) {
    if (kbound.per_seq || !bcast_one_slice(kbound.fixed)) return (SymCount){GEMM_BCAST_SLICE * pitch, 0};
    return (SymCount){kbound.fixed * pitch, 0};
  }
  int64_t brc = bcast_br_slice(g);
  return (SymCount){brc * kbound.fixed * pitch, brc * kbound.per_seq * pitch};
}

SymCount gemm_bcast_pack_size(const LoopProgram *lp, const GemmSpec *g, SymCount kbound) {
  return pack_size(lp, g, g->N, kbound);
}

SymCount gemm_bcast_pack_a_size(const LoopProgram *lp, const GemmSpec *g, SymCount kbound) {
  return pack_size(lp, g, g->M, kbound);
}

/* for v in [0, max(ceil(total / size), 1)): the slice [*lo, *hi) of [0, total), and sl's first
 * / last conditions; returns the loop's body.  An empty reduction (a run-time total of 0, as
 * batch * (seq - 1) at seq 1) is one empty slice: C still gets init and the epilogue. */
static LStmt *slice_loop(LoopProgram *lp, LStmt *blk, const char *name, LExpr *total, int64_t size,
                         LExpr **lo, LExpr **hi, Slice *sl) {
  int v = lvar(lp, name);
  LExpr *n = div_(lp, le_add(lp, total, i64(lp, size - 1)), size);
  if (total->kind != LE_CONST) n = le_bin(lp, LO_MAX, n, i64(lp, 1));
  LStmt *body = ls_body(ls_for(lp, blk, v, i64(lp, 0), n));
  *lo = le_mul(lp, var(lp, v), i64(lp, size));
  *hi = min_(lp, total, le_add(lp, *lo, i64(lp, size)));
  sl->first = le_bin(lp, LO_EQ, var(lp, v), i64(lp, 0));
  sl->last = le_bin(lp, LO_EQ, var(lp, v), le_sub(lp, n, i64(lp, 1)));
  return body;
}

int gemm_tall_rows(const LoopProgram *lp, int64_t n) {
  int64_t V = lp->vec_f32;
  if (n < 1 || n > 2 * V) die("gemm_tall_rows: %lld columns", (long long)n);
  int nv = (int)((n + V - 1) / V);
  int mr = (bcast_regs(lp) - 1 - nv) / nv;
  return mr > GEMM_TALL_MR ? GEMM_TALL_MR : mr;
}

/* Tall tiles (g->tall): N, a constant, is one or two vectors (a convolution's filters in its
 * weight gradient): as many rows as the registers hold besides the nv B vectors (mr nv + nv +
 * 1 of them), the rows of a known M dealt into equal tiles (49 = 25 + 24), each tile summing
 * the whole reduction in registers (no slices: a tile loads one B vector per mr FMAs, which
 * the caches keep up with) and storing C once; the rows left over in one last tile. */
static void bcast_tall(LoopProgram *lp, LStmt *blk, const GemmSpec *g) {
  int64_t V = lp->vec_f32;
  if (g->N->kind != LE_CONST || g->accumulate) die("gemm_bcast: tall tiles need a constant N and no accumulate");
  int mr = gemm_tall_rows(lp, g->N->ival), nv = (int)((g->N->ival + V - 1) / V);
  if (g->M->kind == LE_CONST) {
    int64_t M = g->M->ival, tiles = (M + mr - 1) / mr;
    if (M < 1) return;
    mr = (int)((M + tiles - 1) / tiles);
  }
  Slice sl = {.klo = i64(lp, 0), .khi = g->K};
  LExpr *MB = div_(lp, g->M, mr), *mfull = le_mul(lp, MB, i64(lp, mr));
  bcast_rows(lp, blk, g, &sl, i64(lp, 0), mr, MB, nv);
  if (g->M->kind == LE_CONST) {
    if (g->M->ival % mr) bcast_rows(lp, blk, g, &sl, mfull, (int)(g->M->ival % mr), i64(lp, 1), nv);
    return;
  }
  bcast_rows(lp, blk, g, &sl, mfull, 1, le_sub(lp, g->M, mfull), nv);
}

/* A run-time M (the batch), no packing, no batch-reduce: one parallel loop over pairs of a
 * column panel (nv vectors; then the columns past the panels, a vector each, the last one
 * partial) and a chunk of GEMM_CHUNK_TILES row tiles, each pair running the whole reduction
 * slice by slice over its rows: full tiles of mr rows, then the rows the chunk leaves over in
 * tiles of the powers of two below mr (4, 2, 1 for mr = 6: a batch of 64 ends in a 4-row tile,
 * not 4 single rows that load a B vector per FMA).  One parallel region a product (the slices
 * inside it), and the rows shared between threads too when the columns are few panels. */
static void bcast_chunked(LoopProgram *lp, LStmt *blk, const GemmSpec *g, int mr, int nv) {
  int64_t V = lp->vec_f32, RCH = (int64_t)mr * GEMM_CHUNK_TILES;
  if (g->N->kind == LE_CONST && g->N->ival < nv * V) nv = (int)(g->N->ival / V); /* no wider than N */
  int64_t P = nv ? nv * V : V;
  LExpr *RC = div_(lp, le_add(lp, g->M, i64(lp, RCH - 1)), RCH);
  LExpr *NP = nv ? div_(lp, g->N, P) : i64(lp, 0), *nfull = le_mul(lp, NP, i64(lp, P));
  LExpr *NQ = div_(lp, le_add(lp, le_sub(lp, g->N, nfull), i64(lp, V - 1)), V);
  for (int part = nv ? 0 : 1; part < 2; part++) {
    /* part 0: the panels; part 1: the single vectors past them */
    int t = lvar(lp, part ? "tq" : "tp");
    LStmt *lt = ls_for(lp, blk, t, i64(lp, 0), le_mul(lp, part ? NQ : NP, RC));
    lt->parallel = g->parallel == GEMM_PAR_N;
    LStmt *tb = ls_body(lt);
    /* the pair's first column n0 and first row m0, locals: the tiles' indices read them */
    LExpr *col = le_bin(lp, LO_DIV, var(lp, t), RC), *rc = le_bin(lp, LO_MOD, var(lp, t), RC);
    LExpr *n0 = le_local(lp, ls_local(lp, tb, LT_I64, part ? le_add(lp, nfull, le_mul(lp, col, i64(lp, V)))
                                                             : le_mul(lp, col, i64(lp, P))));
    LExpr *lanes = part ? min_(lp, i64(lp, V), le_sub(lp, g->N, n0)) : i64(lp, V);
    int w = part ? 1 : nv;
    LExpr *lo = le_local(lp, ls_local(lp, tb, LT_I64, le_mul(lp, rc, i64(lp, RCH))));
    LExpr *rows = min_(lp, i64(lp, RCH), le_sub(lp, g->M, lo));
    Slice sl = {.klo = i64(lp, 0), .khi = g->K};
    LStmt *body = tb;
    if (!(g->K->kind == LE_CONST && bcast_one_slice(g->K->ival))) {
      /* a known K in slices of one size (784: 4 x 196, not 3 x 256 and a last 16 that reads
       * and writes C for a few k) */
      int64_t size = GEMM_BCAST_SLICE;
      if (g->K->kind == LE_CONST) {
        int64_t ns = (g->K->ival + size - 1) / size;
        size = (g->K->ival + ns - 1) / ns;
      }
      body = slice_loop(lp, tb, "ks", g->K, size, &sl.klo, &sl.khi, &sl);
    }
    if (g->accumulate) sl.first = sl.last = NULL;
    int mb = lvar(lp, "mb");
    LExpr *MB = le_local(lp, ls_local(lp, body, LT_I64, div_(lp, rows, mr)));
    LStmt *lm = ls_for(lp, body, mb, i64(lp, 0), MB);
    bcast_tile(lp, ls_body(lm), g, &sl, le_add(lp, lo, le_mul(lp, var(lp, mb), i64(lp, mr))), mr, n0, w, lanes, NULL);
    LExpr *at = le_local(lp, ls_local(lp, body, LT_I64, le_add(lp, lo, le_mul(lp, MB, i64(lp, mr)))));
    LExpr *rest = le_local(lp, ls_local(lp, body, LT_I64, le_sub(lp, le_add(lp, lo, rows), at)));
    int p = 1;
    while (2 * p < mr) p *= 2;
    for (; p >= 1; p /= 2) {
      /* rest < mr <= 2p for the first p: a tile of p rows where rest's bit p is set */
      LExpr *bit = le_bin(lp, LO_MOD, p > 1 ? div_(lp, rest, p) : rest, i64(lp, 2));
      bcast_tile(lp, ls_body(ls_if(lp, body, le_bin(lp, LO_NE, bit, i64(lp, 0)))), g, &sl, at, p, n0, w, lanes, NULL);
      if (p > 1) at = le_local(lp, ls_local(lp, body, LT_I64, le_add(lp, at, le_mul(lp, bit, i64(lp, p)))));
    }
    if (g->N->kind == LE_CONST && g->N->ival % P == 0) break; /* no columns past the panels */
  }
}

void gemm_bcast(LoopProgram *lp, LStmt *blk, const GemmSpec *g) {
  check_spec(g);
  if (g->tall) {
    bcast_tall(lp, blk, g);
    return;
  }
  int mr, nv;
  bcast_shape(lp, g, &mr, &nv);
  if (g->M->kind != LE_CONST && !g->BR && !g->pack_a && !g->pack_b) {
    bcast_chunked(lp, blk, g, mr, nv);
    return;
  }
  /* The reduction in slices of about GEMM_BCAST_SLICE k (times br): a tile's strip of B (one
   * row of nv vectors per k) then stays in L1 over every row block, not only when K is small */
  Slice sl = {.klo = i64(lp, 0), .khi = g->K};
  LStmt *body = blk;
  int kconst = g->K->kind == LE_CONST;
  if (g->BR) {
    int64_t brc = bcast_br_slice(g);
    if (!(g->BR->kind == LE_CONST && g->BR->ival <= brc) || g->pack_b || g->pack_a)
      body = slice_loop(lp, blk, "bs", g->BR, brc, &sl.brlo, &sl.brhi, &sl);
  } else if (!(kconst && bcast_one_slice(g->K->ival))) {
    body = slice_loop(lp, blk, "ks", g->K, GEMM_BCAST_SLICE, &sl.klo, &sl.khi, &sl);
  }
  if (g->accumulate) sl.first = sl.last = NULL;
  if (g->pack_a) pack_slice(lp, body, g, &sl, g->a, g->a_at, g->M, g->apack);
  if (g->pack_b) pack_slice(lp, body, g, &sl, g->b, g->b_at, g->N, g->bpack);
  LExpr *MB = div_(lp, g->M, mr);
  bcast_rows(lp, body, g, &sl, i64(lp, 0), mr, MB, nv);
  /* the rows left over: one at a time, twice as many vectors wide (none when a known M is
   * a multiple of the tile) */
  if (g->M->kind == LE_CONST && g->M->ival % mr == 0) return;
  LExpr *mfull = le_mul(lp, MB, i64(lp, mr));
  if (g->M->kind == LE_CONST && g->M->ival % mr >= 2) {
    /* a known remainder of 2..mr-1 rows: one tile of them all, as wide as the registers
     * allow (16 input channels' gradient: 2 tiles of 6 and one of 4 x 6 vectors, where 4
     * single rows loaded a B vector per FMA, a third of the product's time) */
    int rem = (int)(g->M->ival % mr);
    bcast_rows(lp, body, g, &sl, mfull, rem, i64(lp, 1), bcast_width(lp, rem));
    return;
  }
  bcast_rows(lp, body, g, &sl, mfull, 1, le_sub(lp, g->M, mfull), 2 * nv < GEMM_MAX_NC ? 2 * nv : GEMM_MAX_NC);
}

int64_t gemm_pitch(const LoopProgram *lp, int64_t n) {
  int64_t V = lp->vec_f32, p = (n + V - 1) / V * V;
  return p % 256 ? p : p + 16;
}

/* --- gemm_dot --- */

int gemm_dot_chunked(const LoopProgram *lp, int64_t k) { return k / lp->vec_f32 > GEMM_DOT_CHUNK; }

/* Vectors of k per chunk: a known K in chunks of one size but the last, which is no more than
 * nk - 1 vectors short (32 + 32 + 32 + 2 would leave a short last chunk, that LLVM unrolls and
 * spills). */
static int64_t dot_chunk(const LoopProgram *lp, const GemmSpec *g) {
  int64_t csz = GEMM_DOT_CHUNK;
  if (g->K->kind == LE_CONST) {
    int64_t kvn = g->K->ival / lp->vec_f32, nk = (kvn + GEMM_DOT_CHUNK - 1) / GEMM_DOT_CHUNK;
    csz = (kvn + nk - 1) / nk;
  }
  return csz;
}

/* The k % V rest of the rows m[i] and columns n[j] (batch-reduce row br, or NULL): scalar, an
 * explicit fma (a contracted a * b + c would depend on -O), into C. */
static void dot_rest(LoopProgram *lp, LStmt *blk, const GemmSpec *g, LExpr *br, LExpr *const *m, int mr,
                     LExpr *const *n, int nu) {
  int k = lvar(lp, "kt");
  LStmt *lk = ls_for(lp, blk, k, le_mul(lp, div_(lp, g->K, lp->vec_f32), i64(lp, lp->vec_f32)), g->K);
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nu; j++)
      ls_store(lp, ls_body(lk), g->c, c_at(lp, g, m[i], n[j]),
               le_fma(lp, le_load(lp, g->a, g->a_at(lp, g->ctx, br, m[i], var(lp, k))),
                      le_load(lp, g->b, g->b_at(lp, g->ctx, br, n[j], var(lp, k))),
                      le_load(lp, g->c, c_at(lp, g, m[i], n[j]))));
}

/* C = init (or 0) at the rows m[i] and columns n[j]. */
static void dot_init(LoopProgram *lp, LStmt *blk, const GemmSpec *g, LExpr *const *m, int mr, LExpr *const *n,
                     int nu) {
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nu; j++)
      ls_store(lp, blk, g->c, c_at(lp, g, m[i], n[j]), g->init ? g->init(lp, g->ctx, m[i], n[j]) : le_f32(lp, 0));
}

/* One step of k (the vector at k, batch-reduce row br or NULL): the rows' and the columns'
 * vectors loaded once each, part[i][j] += A(m[i], k) B(n[j], k). */
static void dot_step(LoopProgram *lp, LStmt *kb, const GemmSpec *g, LExpr *br, LExpr *const *m, int mr,
                     LExpr *const *n, int nu, LExpr *k, int part[][GEMM_MAX_NC]) {
  int av[GEMM_MAX_MR];
  for (int i = 0; i < mr; i++) av[i] = ls_local(lp, kb, LT_F32, le_load(lp, g->a, g->a_at(lp, g->ctx, br, m[i], k)));
  for (int j = 0; j < nu; j++) {
    int bv = ls_local(lp, kb, LT_F32, le_load(lp, g->b, g->b_at(lp, g->ctx, br, n[j], k)));
    for (int i = 0; i < mr; i++)
      ls_set(lp, kb, part[i][j], le_fma(lp, le_local(lp, av[i]), le_local(lp, bv), le_local(lp, part[i][j])));
  }
}

/* C = epilogue(C) at the rows m[i] and columns n[j]. */
static void dot_epilogue(LoopProgram *lp, LStmt *blk, const GemmSpec *g, LExpr *const *m, int mr,
                         LExpr *const *n, int nu) {
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nu; j++)
      ls_store(lp, blk, g->c, c_at(lp, g, m[i], n[j]),
               g->epilogue(lp, g->ctx, le_load(lp, g->c, c_at(lp, g, m[i], n[j])), m[i], n[j]));
}

/* The tile: rows m0 + i (i < mr), columns n0 + j (j < nu). */
static void dot_tile(LoopProgram *lp, LStmt *blk, const GemmSpec *g, const Slice *sl, LExpr *m0, int mr,
                     LExpr *n0, int nu) {
  int64_t V = lp->vec_f32;
  LExpr *m[GEMM_MAX_MR], *n[GEMM_MAX_NC];
  for (int i = 0; i < mr; i++) m[i] = le_add(lp, m0, i64(lp, i));
  for (int j = 0; j < nu; j++) n[j] = le_add(lp, n0, i64(lp, j));
  if (!g->accumulate) { /* C starts at init (in the first slice of the batch-reduce) */
    dot_init(lp, sl->first ? ls_body(ls_if(lp, blk, sl->first)) : blk, g, m, mr, n, nu);
  }
  LExpr *KV = div_(lp, g->K, V); /* whole vectors of k */
  int single = g->K->kind == LE_CONST && !gemm_dot_chunked(lp, g->K->ival);
  {
    int l = lvar(lp, "l");
    LStmt *ll = ls_for(lp, blk, l, i64(lp, 0), i64(lp, V));
    ll->vec = (int)V;
    LStmt *tb = ls_body(ll);
    int acc[GEMM_MAX_MR][GEMM_MAX_NC], part[GEMM_MAX_MR][GEMM_MAX_NC];
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nu; j++) acc[i][j] = ls_local(lp, tb, LT_F32, le_f32(lp, 0));
    LExpr *br;
    LStmt *bb = br_loop(lp, tb, g, sl->brlo, sl->brhi, &br);
    /* chunks of GEMM_DOT_CHUNK vectors, each summed on its own and then added to the total:
     * the rounding error grows with the chunk and the chunk count, not with K */
    LStmt *cb = bb;
    LExpr *klo = i64(lp, 0), *khi = KV;
    if (!single) {
      int64_t csz = dot_chunk(lp, g);
      int kc = lvar(lp, "kc");
      LStmt *lkc = ls_for(lp, bb, kc, i64(lp, 0), div_(lp, le_add(lp, KV, i64(lp, csz - 1)), csz));
      cb = ls_body(lkc);
      klo = le_mul(lp, var(lp, kc), i64(lp, csz));
      khi = min_(lp, KV, le_add(lp, klo, i64(lp, csz)));
    }
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nu; j++) part[i][j] = single ? acc[i][j] : ls_local(lp, cb, LT_F32, le_f32(lp, 0));
    int kv = lvar(lp, "kv");
    LStmt *lk = ls_for(lp, cb, kv, klo, khi);
    LStmt *kb = ls_body(lk);
    dot_step(lp, kb, g, br, m, mr, n, nu, le_add(lp, le_mul(lp, var(lp, kv), i64(lp, V)), var(lp, l)), part);
    if (!single)
      for (int i = 0; i < mr; i++)
        for (int j = 0; j < nu; j++)
          ls_set(lp, cb, acc[i][j], le_bin(lp, LO_ADD, le_local(lp, acc[i][j]), le_local(lp, part[i][j])));
    /* the lanes, summed as a pairwise tree (codegen.c, reduce_add) into C */
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nu; j++) ls_accumulate(lp, tb, g->c, c_at(lp, g, m[i], n[j]), le_local(lp, acc[i][j]));
  }
  if (g->K->kind != LE_CONST || g->K->ival % V) {
    LExpr *br;
    LStmt *bb = br_loop(lp, blk, g, sl->brlo, sl->brhi, &br);
    dot_rest(lp, bb, g, br, m, mr, n, nu);
  }
  if (g->epilogue) dot_epilogue(lp, sl->last ? ls_body(ls_if(lp, blk, sl->last)) : blk, g, m, mr, n, nu);
}

/* Rows [mlo, mlo + mr * MB) in tiles of mr, every column: blocks of nu, then single columns.
 * rest: NULL, or the rows [mlo + mr * MB, mlo + mr * MB + rest) one at a time in each column
 * block right after its tiles, while the block's rows of B are still in L1. */
static void dot_rows(LoopProgram *lp, LStmt *blk, const GemmSpec *g, const Slice *sl, LExpr *mlo, int mr,
                     LExpr *MB, int nu, LExpr *rest) {
  LExpr *NB = div_(lp, g->N, nu);
  LExpr *nfull = le_mul(lp, NB, i64(lp, nu));
  LExpr *mrest = le_add(lp, mlo, le_mul(lp, MB, i64(lp, mr)));
  for (int single = 0; single < 2; single++) {
    int n = lvar(lp, single ? "n" : "nb"), mb = lvar(lp, "mb");
    LStmt *ln = ls_for(lp, blk, n, single ? nfull : i64(lp, 0), single ? g->N : NB);
    ln->parallel = g->parallel == GEMM_PAR_N;
    LExpr *n0 = single ? var(lp, n) : le_mul(lp, var(lp, n), i64(lp, nu));
    LStmt *lm = ls_for(lp, ls_body(ln), mb, i64(lp, 0), MB);
    dot_tile(lp, ls_body(lm), g, sl, le_add(lp, mlo, le_mul(lp, var(lp, mb), i64(lp, mr))), mr, n0, single ? 1 : nu);
    if (rest) {
      int r = lvar(lp, "m");
      LStmt *lr = ls_for(lp, ls_body(ln), r, i64(lp, 0), rest);
      dot_tile(lp, ls_body(lr), g, sl, le_add(lp, mrest, var(lp, r)), 1, n0, single ? 1 : nu);
    }
  }
}

/* A loop over the row tiles mb in [0, MB) in blk: returns its body, and the tile's rows in
 * m[0 .. mr). */
static LStmt *row_tiles(LoopProgram *lp, LStmt *blk, LExpr *MB, int mr, LExpr **m) {
  int mb = lvar(lp, "mb");
  LStmt *body = ls_body(ls_for(lp, blk, mb, i64(lp, 0), MB));
  for (int i = 0; i < mr; i++) m[i] = le_add(lp, le_mul(lp, var(lp, mb), i64(lp, mr)), i64(lp, i));
  return body;
}

/* The parked sum of (m, n) in g->dpart, lane l. */
static LExpr *dpart_at(LoopProgram *lp, const GemmSpec *g, LExpr *m, LExpr *n, int l) {
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, m, g->N), n), i64(lp, lp->vec_f32)), var(lp, l));
}

/* g->row_chunks: the columns [n0, n0 + nu) of the rows [0, MB mr), the row tiles a chunk of
 * k at a time (GemmSpec.row_chunks).  Each sum takes dot_tile's operations in dot_tile's
 * order: the chunk's lane partials from 0, added to the sum so far (0 before the first chunk),
 * the lanes summed into C (init) at the end, then the k % V rest and the epilogue. */
static void dot_tiles_chunked(LoopProgram *lp, LStmt *blk, const GemmSpec *g, int mr, LExpr *MB, LExpr *n0,
                              int nu) {
  int64_t V = lp->vec_f32;
  LExpr *m[GEMM_MAX_MR], *n[GEMM_MAX_NC];
  for (int j = 0; j < nu; j++) n[j] = le_add(lp, n0, i64(lp, j));
  dot_init(lp, row_tiles(lp, blk, MB, mr, m), g, m, mr, n, nu);
  int l = lvar(lp, "l"), kc = lvar(lp, "kc"), kv = lvar(lp, "kv");
  LStmt *ll = ls_for(lp, blk, l, i64(lp, 0), i64(lp, V));
  ll->vec = (int)V;
  LExpr *KV = div_(lp, g->K, V);
  int64_t csz = dot_chunk(lp, g);
  LStmt *lkc = ls_for(lp, ls_body(ll), kc, i64(lp, 0), div_(lp, le_add(lp, KV, i64(lp, csz - 1)), csz));
  LExpr *first = le_bin(lp, LO_EQ, var(lp, kc), i64(lp, 0));
  LExpr *klo = le_mul(lp, var(lp, kc), i64(lp, csz)), *khi = min_(lp, KV, le_add(lp, klo, i64(lp, csz)));
  {
    LStmt *tb = row_tiles(lp, ls_body(lkc), MB, mr, m);
    int part[GEMM_MAX_MR][GEMM_MAX_NC];
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nu; j++) part[i][j] = ls_local(lp, tb, LT_F32, le_f32(lp, 0));
    LStmt *kb = ls_body(ls_for(lp, tb, kv, klo, khi));
    dot_step(lp, kb, g, NULL, m, mr, n, nu, le_add(lp, le_mul(lp, var(lp, kv), i64(lp, V)), var(lp, l)), part);
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nu; j++) {
        LExpr *at = dpart_at(lp, g, m[i], n[j], l);
        LExpr *sofar = le_select(lp, first, le_f32(lp, 0), le_load(lp, g->dpart, at));
        ls_store(lp, tb, g->dpart, at, le_bin(lp, LO_ADD, sofar, le_local(lp, part[i][j])));
      }
  }
  /* the lanes, summed as a pairwise tree (codegen.c, reduce_add) into C */
  LStmt *sb = row_tiles(lp, ls_body(ll), MB, mr, m);
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nu; j++)
      ls_accumulate(lp, sb, g->c, c_at(lp, g, m[i], n[j]), le_load(lp, g->dpart, dpart_at(lp, g, m[i], n[j], l)));
  if (g->K->ival % V) dot_rest(lp, row_tiles(lp, blk, MB, mr, m), g, NULL, m, mr, n, nu);
  if (g->epilogue) dot_epilogue(lp, row_tiles(lp, blk, MB, mr, m), g, m, mr, n, nu);
}

/* g->row_chunks: rows [0, MB mr) of every column, blocks of nu, then single columns. */
static void dot_rows_chunked(LoopProgram *lp, LStmt *blk, const GemmSpec *g, int mr, LExpr *MB, int nu) {
  LExpr *NB = div_(lp, g->N, nu);
  int nb = lvar(lp, "nb"), n = lvar(lp, "n");
  LStmt *ln = ls_for(lp, blk, nb, i64(lp, 0), NB);
  ln->parallel = g->parallel == GEMM_PAR_N;
  dot_tiles_chunked(lp, ls_body(ln), g, mr, MB, le_mul(lp, var(lp, nb), i64(lp, nu)), nu);
  LStmt *l1 = ls_for(lp, blk, n, le_mul(lp, NB, i64(lp, nu)), g->N);
  l1->parallel = g->parallel == GEMM_PAR_N;
  dot_tiles_chunked(lp, ls_body(l1), g, mr, MB, var(lp, n), 1);
}

static void dot_shape(const LoopProgram *lp, const GemmSpec *g, int *mr, int *nu) {
  if (lp->vec_f32 >= 16) *mr = 4, *nu = 4;  /* 16 accumulators + 4 A + 4 B of 32 */
  else *mr = 3, *nu = 4;                    /* 12 + 3 + 1 of 16 */
  /* 24 accumulators + 3 A + 1 B of 32: a third fewer loads of A per FMA (GemmSpec.dot_wide) */
  if (g->dot_wide && lp->vec_f32 >= 16 && !g->row_chunks) *mr = 3, *nu = 8;
  /* a known M of 2..8 that the tile does not divide (the weight gradient of a convolution
   * with 6 filters): one tile of all M rows, as many columns wide (2 to 4) as the registers
   * hold beside its M A vectors and one B, rather than full tiles and then 1-row tiles that
   * load an A and a B vector for every FMA */
  if (g->M->kind == LE_CONST && g->M->ival >= 2 && g->M->ival <= GEMM_MAX_MR && g->M->ival % *mr) {
    int M = (int)g->M->ival, fit = (bcast_regs(lp) - 1 - M) / M;
    if (fit >= 2) {
      *mr = M;
      *nu = fit < *nu ? fit : *nu;
    }
  }
}

void gemm_dot(LoopProgram *lp, LStmt *blk, const GemmSpec *g) {
  check_spec(g);
  int mr, nu;
  dot_shape(lp, g, &mr, &nu);
  /* A batch-reduce runs slice by slice, every tile over one slice of br (about GEMM_DOT_SLICE
   * floats of k in all) before the next: the slice's rows of A and B stay in L2 while all the
   * tiles read them, instead of every tile streaming all of A and B.  C starts at init in the
   * first slice; the epilogue runs in the last. */
  Slice sl = {0};
  LStmt *body = blk;
  if (g->BR) {
    int64_t brc = 1;
    if (g->K->kind == LE_CONST && g->K->ival > 0 && g->K->ival < GEMM_DOT_SLICE) brc = GEMM_DOT_SLICE / g->K->ival;
    if (!(g->BR->kind == LE_CONST && g->BR->ival <= brc))
      body = slice_loop(lp, blk, "bs", g->BR, brc, &sl.brlo, &sl.brhi, &sl);
  }
  LExpr *MB = div_(lp, g->M, mr);
  if (g->row_chunks) {
    if (g->BR || g->accumulate || g->K->kind != LE_CONST || g->N->kind != LE_CONST ||
        !gemm_dot_chunked(lp, g->K->ival))
      die("gemm_dot: row chunks need a constant N, a constant K of several chunks, no batch-reduce and no accumulate");
    /* one row tile (a batch of 4 to 7 rows) has no other to share a chunk of B with: there
     * the parked sums only add their loads and stores (VGG-16's fc6 at batch 4 3% slower) */
    LExpr *several = le_bin(lp, LO_GE, MB, i64(lp, 2));
    dot_rows_chunked(lp, ls_body(ls_if(lp, body, several)), g, mr, MB, nu);
    dot_rows(lp, ls_body(ls_if(lp, body, le_bin(lp, LO_LT, MB, i64(lp, 2)))), g, &sl, i64(lp, 0), mr, MB, nu, NULL);
  } else if (nu == 8) { /* only dot_wide's tiles are 8 columns wide (dot_shape) */
    /* dot_wide: the rows the tiles leave (1 or 2 of 3) in each column block after its tiles,
     * while its 8 rows of B are in L1, not in a pass of their own that reads all of B again
     * (a batch of 32 in 3-row tiles leaves 2) */
    dot_rows(lp, body, g, &sl, i64(lp, 0), mr, MB, nu, le_sub(lp, g->M, le_mul(lp, MB, i64(lp, mr))));
    return;
  } else {
    dot_rows(lp, body, g, &sl, i64(lp, 0), mr, MB, nu, NULL);
  }
  /* the rows left over (every row of a batch-1 product): one at a time, 8 columns wide, so
   * 8 independent FMA chains stream 8 rows of B */
  LExpr *mfull = le_mul(lp, MB, i64(lp, mr));
  dot_rows(lp, body, g, &sl, mfull, 1, le_sub(lp, g->M, mfull), 8, NULL);
}

/* --- gemm_bcast_groups --- */

int64_t gemm_groups_blocks(const LoopProgram *lp, int64_t units) {
  return (units + lp->vec_f32 - 1) / lp->vec_f32;
}

/* A chunk of a grouped product's reduction: k in [klo, khi).  The sums start at init (first
 * NULL), or from the partial sums parked in gr->part (first the constant 0), or from either as
 * the bool expression first says; the last chunk hands them to the epilogue, the others park
 * them.  part holds [UB, prows, G, V] floats, the rows counted from prow0: one block's rows
 * are one contiguous run (with a row pitch of UB*G*V floats, 4 KiB at 256 units, every row
 * of a block would fall in the same L1 set). */
typedef struct GroupChunk {
  LExpr *klo, *khi, *first;
  int last;
  LExpr *prow0, *prows;
} GroupChunk;

static LExpr *part_at(LoopProgram *lp, const GemmGroups *gr, const GroupChunk *ck, LExpr *m, LExpr *ub,
                      int gate, LExpr *l) {
  LExpr *row = le_add(lp, le_mul(lp, ub, ck->prows), le_sub(lp, m, ck->prow0));
  return le_add(lp, le_mul(lp, row, i64(lp, gr->G * lp->vec_f32)), le_add(lp, i64(lp, gate * lp->vec_f32), l));
}

/* The tile: rows m0 + i (i < mr), unit blocks ub0 + q (q < nb), lanes l < lanes; one chunk. */
static void group_tile(LoopProgram *lp, LStmt *blk, const GemmSpec *g, const GemmGroups *gr, LExpr *m0,
                       int mr, LExpr *ub0, int nb, LExpr *lanes, const GroupChunk *ck) {
  if (mr > GEMM_MAX_MR || nb * gr->G > GEMM_MAX_NC) die("gemm_bcast_groups: a %d x %d tile", mr, nb * gr->G);
  int G = gr->G, nv = nb * G;
  int l = lvar(lp, "l"), k = lvar(lp, "k");
  LStmt *ll = ls_for(lp, blk, l, i64(lp, 0), lanes);
  ll->vec = lp->vec_f32;
  LStmt *tb = ls_body(ll);
  LExpr *m[GEMM_MAX_MR], *ubs[GEMM_MAX_NC];
  int acc[GEMM_MAX_MR][GEMM_MAX_NC];
  for (int i = 0; i < mr; i++) m[i] = le_add(lp, m0, i64(lp, i));
  for (int q = 0; q < nb; q++) ubs[q] = le_add(lp, ub0, i64(lp, q));
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nv; j++) {
      LExpr *start = gr->init ? gr->init(lp, g->ctx, m[i], j % G, ubs[j / G], var(lp, l)) : le_f32(lp, 0);
      if (ck->first) {
        LExpr *parked = le_load(lp, gr->part, part_at(lp, gr, ck, m[i], ubs[j / G], j % G, var(lp, l)));
        start = ck->first->kind == LE_CONST ? parked : le_select(lp, ck->first, start, parked);
      }
      acc[i][j] = ls_local(lp, tb, LT_F32, start);
    }
  if (ck->last && gr->prefetch)
    for (int i = 0; i < mr; i++)
      for (int q = 0; q < nb; q++) gr->prefetch(lp, g->ctx, tb, m[i], ubs[q], var(lp, l));
  LStmt *lk = ls_for(lp, tb, k, ck->klo, ck->khi);
  /* B(ub, gate j's column j*V + l, k) */
  LExpr *a[GEMM_MAX_MR] = {0}, *b[GEMM_MAX_NC] = {0};
  for (int i = 0; i < mr; i++) a[i] = le_load(lp, g->a, g->a_at(lp, g->ctx, i64(lp, 0), m[i], var(lp, k)));
  for (int j = 0; j < nv; j++)
    b[j] = le_load(lp, g->b, g->b_at(lp, g->ctx, ubs[j / G], le_add(lp, i64(lp, j % G * lp->vec_f32), var(lp, l)), var(lp, k)));
  tile_fmas(lp, ls_body(lk), a, mr, b, nv, acc, mr <= nv);
  for (int i = 0; i < mr; i++)
    for (int q = 0; q < nb; q++) {
      if (ck->last) {
        gr->epilogue(lp, g->ctx, tb, m[i], ubs[q], var(lp, l), &acc[i][q * G]);
        continue;
      }
      for (int j = 0; j < G; j++)
        ls_store(lp, tb, gr->part, part_at(lp, gr, ck, m[i], ubs[q], j, var(lp, l)), le_local(lp, acc[i][q * G + j]));
    }
}

/* The unit blocks [b0, b0 + nb1) for the rows [mlo, mlo + rows), one chunk: tiles of mr rows
 * and nb blocks, then single rows with all nb1 blocks. */
static void group_rows_chunk(LoopProgram *lp, LStmt *blk, const GemmSpec *g, const GemmGroups *gr, LExpr *mlo,
                             LExpr *rows, int mr, LExpr *b0, int nb, int nb1, LExpr *lanes, const GroupChunk *ck) {
  /* the tiles of mr rows over the nb1 / nb groups of nb blocks: a loop, not copies (each copy
   * of a tile holds mr copies of the epilogue, the cell's transcendentals) */
  LStmt *sub = blk;
  LExpr *bq = b0;
  if (nb1 > nb) {
    int q = lvar(lp, "sb");
    sub = ls_body(ls_for(lp, blk, q, i64(lp, 0), i64(lp, nb1 / nb)));
    bq = le_add(lp, b0, le_mul(lp, var(lp, q), i64(lp, nb)));
  }
  int mb = lvar(lp, "mb");
  LStmt *lm = ls_for(lp, sub, mb, i64(lp, 0), div_(lp, rows, mr));
  group_tile(lp, ls_body(lm), g, gr, le_add(lp, mlo, le_mul(lp, var(lp, mb), i64(lp, mr))), mr, bq, nb, lanes, ck);
  int r = lvar(lp, "m");
  LStmt *lr = ls_for(lp, blk, r, le_mul(lp, div_(lp, rows, mr), i64(lp, mr)), rows);
  group_tile(lp, ls_body(lr), g, gr, le_add(lp, mlo, var(lp, r)), 1, b0, nb1, lanes, ck);
}

/* The same over the whole reduction: in one piece when the blocks' panels of B for all of K fit
 * in about GEMM_GROUP_PANEL bytes, else in chunks of k that do: every tile of the rows walks
 * the chunk's panel, which then stays in L1 (a 256 x 32 panel of 32 KiB, read again by every
 * tile, went to L2: the tiles ran at ~60% of the FMA peak).  The chunks park their sums in
 * gr->part between them; the order of the additions is the same either way. */
static void group_rows(LoopProgram *lp, LStmt *blk, const GemmSpec *g, const GemmGroups *gr, LExpr *mlo,
                       LExpr *rows, LExpr *prows, int mr, LExpr *b0, int nb, int nb1, LExpr *lanes) {
  int64_t K = g->K->kind == LE_CONST ? g->K->ival : 0;
  int64_t nk = gemm_groups_chunks(lp, gr, K);
  GroupChunk ck = {.klo = i64(lp, 0), .khi = g->K, .last = 1, .prow0 = mlo, .prows = prows};
  if (nk <= 1) {
    group_rows_chunk(lp, blk, g, gr, mlo, rows, mr, b0, nb, nb1, lanes, &ck);
    return;
  }
  int64_t kc = (K + nk - 1) / nk;
  /* chunks 0 .. nk-2 park their sums (the first starts at init), the last finishes them */
  int kv = lvar(lp, "kc");
  LStmt *lk = ls_for(lp, blk, kv, i64(lp, 0), i64(lp, nk - 1));
  lk->unroll = -1;
  GroupChunk park = {.klo = le_mul(lp, var(lp, kv), i64(lp, kc)), .khi = le_mul(lp, le_add(lp, var(lp, kv), i64(lp, 1)), i64(lp, kc)),
                     .first = le_bin(lp, LO_EQ, var(lp, kv), i64(lp, 0)), .last = 0, .prow0 = mlo, .prows = prows};
  if (nk == 2) park.first = NULL; /* the only parking chunk is the first */
  group_rows_chunk(lp, ls_body(lk), g, gr, mlo, rows, mr, b0, nb, nb1, lanes, &park);
  ck.klo = i64(lp, (nk - 1) * kc);
  ck.first = le_i64(lp, 0);
  group_rows_chunk(lp, blk, g, gr, mlo, rows, mr, b0, nb, nb1, lanes, &ck);
}

/* The tile shape for G gates: nb unit blocks per tile of mr rows, nb1 in a single row's tile.
 * Registers: 12 accumulators of 16 (AVX2), 24 of 32 (AVX-512); a single row's tile has twice
 * as many blocks (a batch-1 step still has 6-8 FMA chains). */
static void group_shape(const LoopProgram *lp, int G, int *nb, int *mr, int *nb1) {
  int wide = lp->vec_f32 >= 16;
  *nb = G >= (wide ? 4 : 3) ? 1 : (wide ? 4 : 3) / G;
  *mr = (wide ? 24 : 12) / (*nb * G);
  if (*mr > GEMM_MAX_MR) *mr = GEMM_MAX_MR;
  *nb1 = 2 * *nb * G <= GEMM_MAX_NC ? 2 * *nb : *nb;
}

/* The bytes of B per chunk: GEMM_GROUP_PANEL, or the environment's NNCC_GEMM_PANEL (a tuning
 * and testing knob: the chunks give the same sums whatever their size). */
static int64_t group_panel_bytes(void) {
  const char *env = getenv("NNCC_GEMM_PANEL");
  if (env && *env) {
    char *end;
    long long v = strtoll(env, &end, 10);
    if (*end == '\0' && v > 0) return v;
  }
  return GEMM_GROUP_PANEL;
}

int64_t gemm_groups_chunks(const LoopProgram *lp, const GemmGroups *gr, int64_t K) {
  int nb, mr, nb1;
  group_shape(lp, gr->G, &nb, &mr, &nb1);
  int64_t per_k = (int64_t)nb * gr->G * lp->vec_f32 * 4; /* bytes of the tiles' panel per k */
  int64_t panel = group_panel_bytes();
  if (K <= 0 || K <= panel / per_k) return 1;
  int64_t kc = panel / per_k;
  if (kc < 8) kc = 8;
  return (K + kc - 1) / kc;
}

int64_t gemm_groups_part_floats(const LoopProgram *lp, const GemmSpec *g, const GemmGroups *gr) {
  if (g->K->kind != LE_CONST || gemm_groups_chunks(lp, gr, g->K->ival) <= 1) return 0;
  int nb, mr, nb1;
  group_shape(lp, gr->G, &nb, &mr, &nb1);
  int64_t row = gemm_groups_blocks(lp, g->N->ival) * gr->G * lp->vec_f32;
  return g->row_block > 0 ? row * ((g->row_block + mr - 1) / mr * mr) : row;
}

void gemm_bcast_groups(LoopProgram *lp, LStmt *blk, const GemmSpec *g, const GemmGroups *gr) {
  if (!g->M || !g->N || !g->K || !g->a_at || !g->b_at || !gr->epilogue) die("gemm: incomplete spec");
  if (g->N->kind != LE_CONST || g->BR || gr->G < 1 || gr->G > 4) die("gemm_bcast_groups: bad spec");
  if (gemm_groups_part_floats(lp, g, gr) > 0 && gr->part < 0) die("gemm_bcast_groups: no buffer for the chunks' sums");
  int64_t V = lp->vec_f32, U = g->N->ival;
  int nb, mr, nb1;
  group_shape(lp, gr->G, &nb, &mr, &nb1);
  int64_t full = U / V, UB = (U + V - 1) / V, NP = full / nb1;
  LExpr *mlo = i64(lp, 0), *rows = g->M, *prows = g->M;
  if (g->row_block > 0) { /* blocks of about row_block rows, each over every unit block */
    int64_t mc = (g->row_block + mr - 1) / mr * mr;
    int v = lvar(lp, "mc");
    blk = ls_body(ls_for(lp, blk, v, i64(lp, 0), div_(lp, le_add(lp, g->M, i64(lp, mc - 1)), mc)));
    mlo = le_mul(lp, var(lp, v), i64(lp, mc));
    rows = min_(lp, i64(lp, mc), le_sub(lp, g->M, le_mul(lp, var(lp, v), i64(lp, mc))));
    prows = i64(lp, mc);
  }
  if (NP > 0) { /* panels of nb1 whole blocks */
    int p = lvar(lp, "np");
    LStmt *lpn = ls_for(lp, blk, p, i64(lp, 0), i64(lp, NP));
    lpn->parallel = g->parallel == GEMM_PAR_N;
    group_rows(lp, ls_body(lpn), g, gr, mlo, rows, prows, mr, le_mul(lp, var(lp, p), i64(lp, nb1)), nb, nb1, i64(lp, V));
  }
  if (NP * nb1 < UB) { /* the blocks left, one at a time; the last may be partial */
    int q = lvar(lp, "nq");
    LStmt *lq = ls_for(lp, blk, q, i64(lp, NP * nb1), i64(lp, UB));
    lq->parallel = g->parallel == GEMM_PAR_N;
    LExpr *lanes = min_(lp, i64(lp, V), le_sub(lp, i64(lp, U), le_mul(lp, var(lp, q), i64(lp, V))));
    group_rows(lp, ls_body(lq), g, gr, mlo, rows, prows, mr, var(lp, q), 1, 1, lanes);
  }
}
