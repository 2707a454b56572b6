/* gemm.h - the register-blocked matrix-product generator: the one micro-kernel behind dense
 * (forward, dx, dW), the recurrent projections, steps and weight gradients, and conv's flat
 * forward (1x1 layers, fewer filters than a vector), input gradient and weight gradient.
 *
 * It writes loop IR (loops.h) for a batch-reduce GEMM in the spirit of LIBXSMM's and oneDNN's
 * BRGEMM:
 *
 *     C(m, n) = init(m, n) + sum_{br < BR} sum_{k < K} A(br, m, k) * B(br, n, k)
 *     C(m, n) = epilogue(C(m, n), m, n)
 *
 * for m < M, n < N.  The operands are buffers reached through index callbacks, so a caller
 * describes any layout (row-major, transposed, strided, a shifted convolution window) without
 * copying it.  Two register tilings, chosen by which operand is contiguous:
 *
 *   gemm_bcast   vectorized over n: B(br, n, k) is contiguous in n, A is broadcast.  A tile of
 *                MR rows x NR vectors of n keeps MR x NR vector accumulators in registers;
 *                per k it loads NR vectors of B and MR scalars of A for MR x NR FMAs.  The
 *                accumulators start at init and go through the epilogue straight into C.
 *   gemm_dot     vectorized over k: A(br, m, k) and B(br, n, k) are both contiguous in k
 *                (a matrix times a transposed one, a weight in PyTorch's [out, in] layout).
 *                A tile of MR rows x NU columns keeps MR x NU vector accumulators of lane
 *                partials, summed over chunks of k and then across the lanes as a pairwise tree;
 *                the k % V tail runs scalar.  No packing: weights are read where they are.
 *
 * The tiles come from the target's vector width (16 registers for AVX2: 4 x 3 tiles; 32 for
 * AVX-512: 6 x 4; a known M of 2..8 that the tile does not divide is one tile of all M rows);
 * rows left over by MR run as 1-row tiles twice as wide, so a batch-1 product (a GEMV) still
 * has 8 independent FMA chains streaming its weights.  gemm_bcast with a run-time M (the
 * batch) and neither packing nor batch-reduce is one parallel loop over pairs of a column
 * panel and a chunk of rows, the reduction's slices inside each, and the rows a chunk leaves
 * over in tiles of 4, 2 and 1 rows (2 and 1 on AVX2) as wide as the panel.  A third entry, gemm_bcast_groups (below),
 * tiles the recurrent layers' gate products and hands the sums to the cell.  Every output element is
 * summed in one fixed order that depends on the shapes and the vector width only: never on how
 * the work is split between threads.  The outer loop over column blocks is parallel (disjoint
 * outputs) unless the spec says otherwise.
 */
#ifndef NNCC_GEMM_H
#define NNCC_GEMM_H

#include "loops.h"

/* The index of an operand element: A(br, m, k), B(br, n, k), C(m, n) (br NULL for C). */
typedef LExpr *(*GemmAt)(LoopProgram *lp, const void *ctx, LExpr *br, LExpr *row, LExpr *k);
/* init(m, n): C's starting value (f32); epilogue(v, m, n): what is stored for the sum v. */
typedef LExpr *(*GemmInit)(LoopProgram *lp, const void *ctx, LExpr *m, LExpr *n);
typedef LExpr *(*GemmEpilogue)(LoopProgram *lp, const void *ctx, LExpr *v, LExpr *m, LExpr *n);

typedef enum GemmPar { GEMM_PAR_N, GEMM_PAR_NONE } GemmPar;

typedef struct GemmSpec {
  LExpr *M, *N, *K;     /* i64 sizes; any of them may depend on the batch or seq */
  LExpr *BR;            /* the batch-reduce count; NULL: 1 */
  int a, b, c;          /* buffers */
  GemmAt a_at, b_at, c_at;
  GemmInit init;        /* NULL: 0 */
  GemmEpilogue epilogue;/* NULL: the sum itself */
  int accumulate;       /* C += the product (init and epilogue must be NULL) */
  GemmPar parallel;     /* which outer loop runs on threads (default: column blocks) */
  /* gemm_bcast: copy each slice of the reduction's B into the scratch buffer bpack first, as
   * rows of gemm_pitch(N) floats, so the tiles walk B without cache-set aliasing or TLB misses
   * whatever B's own layout (a row pitch of 4 KiB, rows of a larger record); N must be a
   * constant; bpack holds gemm_bcast_pack_size(lp, g, kbound) floats, not batched */
  int pack_b, bpack;
  /* the same for A (M must be a constant): A's slice as rows of gemm_pitch(M) floats */
  int pack_a, apack;
  /* gemm_bcast_groups: > 0, the rows in blocks of about this many, each done over every column
   * before the next: a block's rows of A and C stay in cache while the column panels pass,
   * where C's rows would otherwise be written a panel's width at a time over all of M */
  int64_t row_block;
  /* gemm_bcast: tall tiles for a narrow C (N a constant of one or two vectors): up to
   * gemm_tall_rows rows a tile, each tile summing the whole reduction (every br and k) in
   * registers and storing C once (accumulate unsupported) */
  int tall;
  /* gemm_bcast: fully unroll the k loop of the tiles (K a constant of a few steps whose
   * operand indices the callbacks derive by division: a convolution's kernel taps, where the
   * division and the multiplies of a rolled loop sit on every step's load addresses) */
  int unroll_k;
  /* gemm_bcast, B not packed: B streams from memory (a layer's input, too large or too long
   * ago to be in cache) through panels of nv vectors whose rows are short runs far apart
   * (a 1x1 convolution: nv * 64 bytes of each of C planes), which the hardware prefetchers
   * do not follow.  So the first nv row tiles of each panel prefetch the next panel's B, one
   * line a k step each (emitted as a separate copy of the tile; the other row tiles run
   * without), and the tiles are 8 rows x 3 vectors (bcast_shape).  AVX-512 only: with AVX2's
   * 4 x 3 tiles on the same Xeon, Inception ran as fast at batch 8 and 1% slower at batch 1. */
  int prefetch_b;
  /* gemm_dot, a run-time M over a constant K of several chunks (no batch-reduce, no
   * accumulate): the row tiles of a column block take the reduction a chunk at a time, every
   * row tile over one chunk before the next, each tile's lane sums parked between chunks in
   * the scratch dpart (M x N vectors: its element (m, n, lane) at (m N + n) V + lane) where a
   * tile would keep them in registers: a column block's B chunk is read from memory once for
   * all the row tiles and stays in L1 for the others, instead of every row tile streaming all
   * of B.  The same operations on each sum as without, so the same bits. */
  int row_chunks, dpart;
  /* gemm_dot on AVX-512, B (a few rows of k) from cache and A streamed past it (a dense
   * layer's forward while training: W from L2, a batch of x rows): tiles of 3 rows x 8
   * columns, where 4 x 4 tiles read an A vector for every 4 FMAs.  Each sum takes the same
   * operations either way: the same bits. */
  int dot_wide;
  const void *ctx;      /* passed to the callbacks */
  const char *name;     /* for the loop variables' names: "" */
} GemmSpec;

void gemm_bcast(LoopProgram *lp, LStmt *blk, const GemmSpec *g);
/* The most rows of a tall tile of n columns (1 <= n <= two vectors): as many accumulators as
 * the registers hold besides n's vectors of B and one broadcast, at most 28 (28 for 16 columns
 * on AVX-512, 14 for 32; 6 for 16 on AVX2). */
int gemm_tall_rows(const LoopProgram *lp, int64_t n);
/* The size of pack_b's scratch for g, K being at most kbound (a constant, or a multiple of
 * seq: the caller's bound on g->K when it is not a constant). */
SymCount gemm_bcast_pack_size(const LoopProgram *lp, const GemmSpec *g, SymCount kbound);
/* pack_a's: the same with M's pitch */
SymCount gemm_bcast_pack_a_size(const LoopProgram *lp, const GemmSpec *g, SymCount kbound);
/* The row pitch (floats) for a packed operand of n columns that gemm_bcast walks row by row:
 * n rounded up to the vector width, plus one cache line when the pitch is a multiple of 1 KiB
 * (rows 4 KiB apart share an L1 set: a 256 x 24 panel would not stay in L1). */
int64_t gemm_pitch(const LoopProgram *lp, int64_t n);
void gemm_dot(LoopProgram *lp, LStmt *blk, const GemmSpec *g);
/* Whether gemm_dot sums a known reduction of k floats in several chunks of vectors (a
 * GemmSpec.row_chunks product needs several) */
int gemm_dot_chunked(const LoopProgram *lp, int64_t k);

/* gemm_bcast over gate groups: the recurrent layers' products, with the cell in the tile.
 * C's N = U columns are units, each with G gate columns; the tile holds every gate of its units
 * in registers and hands them to the group epilogue instead of storing C, so the gate math runs
 * on the sums where they are and no G*U-wide C is written.  The units come in blocks of V
 * lanes: the unit u = ub*V + l of block ub and lane l.  B is packed by blocks, each block's
 * G*V columns a panel of its own that the tiles stream in order: b_at(lp, ctx, ub, n, k) gets
 * the block ub (in the place of br) and the column n = j*V + l of gate j (B padded to
 * ceil(U/V) blocks: the last block's lanes past U are masked).  N (= U) must be a constant and
 * BR NULL; row_block is honoured; c, c_at, init, epilogue and accumulate are unused.  The
 * reduction runs in chunks of k when the tiles' panels of B for all of K would not stay in L1
 * (gemm_groups_chunks): the sums wait between chunks in the scratch buffer part, which holds
 * gemm_groups_part_floats(lp, g, gr) floats, times M when g->row_block is 0 (each unit block
 * has its own run of it, so the blocks on threads never share a place); the order of the
 * additions is that of one piece.  The blocks run on threads
 * (every unit's outputs in one tile: disjoint writes). */
typedef struct GemmGroups {
  int G; /* gates (vectors) per unit block, 1..4 */
  /* the gate's starting value for row m and the units of block ub, lane l; NULL: 0 */
  LExpr *(*init)(LoopProgram *lp, const void *ctx, LExpr *m, int gate, LExpr *ub, LExpr *l);
  /* the sums acc[j] (locals, j < G) of row m and the units of block ub, lane l: emits what
   * they become into blk */
  void (*epilogue)(LoopProgram *lp, const void *ctx, LStmt *blk, LExpr *m, LExpr *ub, LExpr *l,
                   const int *acc);
  int part; /* the chunks' sums (gemm_groups_part_floats > 0), else unused (-1) */
  /* NULL, or emits into blk prefetches of the lines the epilogue of row m and block ub will
   * read or write (ls_prefetch: into L2); the tile issues them before the last (or only)
   * chunk of its reduction, whose FMAs then hide the misses */
  void (*prefetch)(LoopProgram *lp, const void *ctx, LStmt *blk, LExpr *m, LExpr *ub, LExpr *l);
} GemmGroups;
void gemm_bcast_groups(LoopProgram *lp, LStmt *blk, const GemmSpec *g, const GemmGroups *gr);
/* B's unit blocks for gemm_bcast_groups: ceil(U / V) */
int64_t gemm_groups_blocks(const LoopProgram *lp, int64_t units);
/* The chunks a grouped product of G = gr->G gates splits a reduction of K (constant) into: 1,
 * or more when the panel would not stay in L1. */
int64_t gemm_groups_chunks(const LoopProgram *lp, const GemmGroups *gr, int64_t K);
/* 0 when g runs in one piece; else the floats of gr->part per row of M (g->row_block == 0), or
 * in all (g->row_block > 0). */
int64_t gemm_groups_part_floats(const LoopProgram *lp, const GemmSpec *g, const GemmGroups *gr);

#endif
