/* lower.h - graph IR to loop IR.
 *
 * lower_graph() walks the nodes that the outputs need (the loss and the
 * targets are not part of inference), gives each node a buffer (inputs and
 * outputs are the caller's arrays; flatten and dropout alias their input;
 * everything else is a workspace temporary), asks each op's `lower` hook for
 * its kernel, and then makes the static memory plan: temporaries whose
 * lifetimes do not overlap share a slot.
 *
 * An op's lower hook sees a LowerCtx:
 *   lc->lp               the LoopProgram to build into (loops.h builders)
 *   lower_value(lc, id)  the buffer of node id's value, [batch, ...shape]
 *   lower_param(lc, n, k) the buffer of n's k-th parameter
 *   lower_begin(lc, n)   starts n's kernel and returns the block to fill
 *   lower_scratch(...)   a temporary used only inside n's kernel
 *   lower_packed(...)    a packed copy of weights, filled by a prepare kernel
 *   lower_unpack(...)    the inverse of a prepare kernel that only moves a parameter's values
 */
#ifndef NNCC_LOWER_H
#define NNCC_LOWER_H

#include "ir.h"
#include "loops.h"

typedef struct LowerCtx {
  LoopProgram *lp;
  const Graph *g;
  LowerMode mode;      /* which entry point is being built (loops.h) */
  int *grad_param;     /* per node: the parameter whose gradient it is, or -1 */
  int *value_buf;      /* per node: its buffer, -1 when not computed */
  int current_kernel;  /* index into lp->kernels of the kernel being built */
  int *fused_act;      /* per node: the activation node fused into its epilogue, or -1 */
  int *fused_add;      /* per node (conv2d): the add (a residual connection) that is its only
                        * consumer, fused into its epilogue after the bias: the add's other
                        * operand is added, then the add's fused activation applied; or -1 */
  int *fused_grad;     /* per node: the _act_grad fused into its last store, or -1 */
  int *saved;          /* per node: what its forward kernel saves for its gradient kernels
                        * (MODE_GRADIENTS: recurrent layers' per-step states), or -1 */
  int *saved0;         /* per node: the initial state its forward started from, when it was
                        * carried in (stateful training), or -1 (zero) */
  int *chain_to;       /* per node: the consumer (set by the consumer's OpInfo.plan) whose input
                        * copy the node's lowering writes its value into, in the consumer's
                        * layout, instead of its own buffer (never written then), or -1 */
  int *chain_buf;      /* per node: that copy of its input 0, made by the producer's lowering
                        * (which runs first), or -1 */
  int *place_in;       /* per node: the node whose buffer holds its value as a part of each batch
                        * row (a concatenation, set by its OpInfo.plan), or -1: its own buffer */
  int64_t *place_off;  /* per node: where that part starts in each row (elements) */
} LowerCtx;

int lower_value(LowerCtx *lc, int node);
/* The node whose lowering stores value v: v's producer when v is an activation fused into it
 * (LowerCtx.fused_act), else v itself. */
int lower_producer(const LowerCtx *lc, int v);
/* Where the value that node n's lowering stores (its fused activation's, when it has one) lives
 * in lower_value(n)'s buffer: 1 and *pitch, *off (the buffer's elements per batch row, and the
 * value's offset in each) when a bigger value holds it (LowerCtx.place_in: only for an op whose
 * OpInfo.can_place said yes), 0 when the buffer is the value's own. */
int lower_placed(const LowerCtx *lc, const Node *n, int64_t *pitch, int64_t *off);
int lower_param(LowerCtx *lc, const Node *n, int k);
LStmt *lower_begin(LowerCtx *lc, const Node *n);
/* Scratch of batch * per_sample elements (or per_sample alone when !batched), live only
 * during the current kernel. */
int lower_scratch(LowerCtx *lc, const char *name, LType elem, SymCount per_sample, int batched);
/* Whether this entry point's packed weights are made once per update (inference: forward and
 * step) rather than at the start of every call (the training entry points). */
int lower_packs_once(const LowerCtx *lc);
/* A packed-weights buffer of `numel` floats and the prepare block that must fill it. */
int lower_packed(LowerCtx *lc, const char *name, int64_t numel, LStmt **prepare_block);
/* For a packed copy that holds every value of parameter buffer `param` (a permutation, maybe
 * with padding): the block that must rewrite all of `param` from it, bit for bit, or NULL when
 * the entry point has none (only the forward has; the step shares it).  The runtime may then
 * drop the parameter's own pages during inference (runtime/model.c, "evicted") when no kernel
 * reads it: backend.c checks that, so an op need not. */
LStmt *lower_unpack(LowerCtx *lc, const char *name, int param);

/* c.fixed + c.per_seq * seq, and batch times that. */
LExpr *lower_count(LowerCtx *lc, SymCount c);
LExpr *lower_total(LowerCtx *lc, SymCount c);
/* v with what lower.c fused into n's epilogue applied (v itself when nothing): a residual add's
 * other operand, read at `index` (the element of n's value, [batch, ...shape], that v is;
 * NULL: v is not stored in that layout, and no add may be fused), and an activation.  Ops that
 * call it (dense, conv2d) let lower.c fuse a following relu / leaky_relu / sigmoid / tanh:
 * then lower_value(n) is the activation's buffer and the activation makes no kernel (conv2d
 * also an add before it: lower_value(n) is then the add's, or its activation's, buffer). */
LExpr *lower_epilogue(LowerCtx *lc, const Node *n, LExpr *v, LExpr *index);
/* The value that the add fused into n's epilogue adds (the add's other operand), or -1. */
int lower_fused_other(const LowerCtx *lc, const Node *n);
/* The activation part of lower_epilogue: v (with the fused add's operand already added, when
 * there is one) through the add's activation, or n's own. */
LExpr *lower_epilogue_act(LowerCtx *lc, const Node *n, LExpr *v);
/* Whether lower_epilogue(n) changes anything (an op may then skip a plain store path). */
int lower_has_epilogue(const LowerCtx *lc, const Node *n);
/* activation.c: the activation node `act` applied to x (f32). */
LExpr *op_activation_expr(LoopProgram *lp, const Node *act, LExpr *x);
/* The same for a gradient op n whose last store writes element `index` of its value v once:
 * v, or, when lower.c fused into n the _act_grad that is its only consumer (as that node's
 * dy; the op's OpInfo.fuses_act_grad says n may), the activation's gradient of v, its y read
 * at `index`.  lower_value(n) is then the _act_grad's buffer, and it makes no kernel. */
LExpr *lower_grad_epilogue(LowerCtx *lc, const Node *n, LExpr *v, LExpr *index);
/* The buffer whose element at `index` lower_grad_epilogue reads (the fused _act_grad's second
 * operand), or -1 when n has no fused gradient: an op that loaded that element already passes
 * it to lower_grad_epilogue_of instead, which is lower_grad_epilogue with y given. */
int lower_grad_epilogue_buf(LowerCtx *lc, const Node *n);
LExpr *lower_grad_epilogue_of(LowerCtx *lc, const Node *n, LExpr *v, LExpr *y);
/* activation.c: dy times the derivative of activation `act`, from its output y (or its input
 * x for a leaky_relu of slope <= 0: _act_grad's second operand) */
LExpr *op_act_grad_expr(LoopProgram *lp, const Node *act, LExpr *dy, LExpr *y);

/* A scratch copy of src ([batch, C, H, W]) padded by p on both spatial axes and filled with
 * `fill` around it (0 for convolution and average pooling, -inf for max pooling), with rows
 * of Wp >= W + 2p floats (the columns past W + 2p hold `fill` too), written by loops appended
 * to body; returns the copy's buffer, or src itself when p == 0. */
int lower_pad2d(LowerCtx *lc, LStmt *body, const Node *n, int src, int64_t C, int64_t H,
                int64_t W, int64_t p, int64_t Wp, double fill);
/* The same in a channel-blocked layout [batch, C / cb, H + 2p, Wp, cb] (cb divides C; cb = 1:
 * the layout above), made even when p == 0. */
int lower_pad2d_blocked(LowerCtx *lc, LStmt *body, const Node *n, int src, int64_t C, int64_t H,
                        int64_t W, int64_t p, int64_t Wp, int64_t cb, double fill);
/* The same named `name` (lower_pad2d_blocked names it n's ".pad"): a kernel's second copy */
int lower_pad2d_blocked_as(LowerCtx *lc, LStmt *body, const char *name, int src, int64_t C, int64_t H, int64_t W,
                           int64_t p, int64_t Wp, int64_t cb, double fill);
/* buf[base + i] = fill for i in [lo, hi), vectorized (nothing when the range is empty) */
void lower_fill(LoopProgram *lp, LStmt *blk, int buf, LExpr *base, int64_t lo, int64_t hi, double fill);
/* The fill above and below the interior of a padded plane at base (planes of `plane` floats,
 * rows of `rowlen`, H interior rows from row p), appended to blk: the p rows above in an
 * `if first`, the rows below and the plane's tail in an `if last` (the caller's rows include
 * the plane's first / last interior row); nothing for an empty part.  Each interior row's
 * sides are the caller's (lower_pad2d_frame, conv.c's chained write-back). */
void lower_frame_ends(LoopProgram *lp, LStmt *blk, int xp, LExpr *base, LExpr *first, LExpr *last, int64_t H,
                      int64_t p, int64_t rowlen, int64_t plane, double fill);

/* The frame of a blocked copy xp [batch, C / cb] planes of `plane` floats, rows of Wp cb:
 * one parallel loop appended to body over the batch * (C / cb) * H interior rows, which
 * writes `fill` around them (p rows above and below, the plane's tail, the p cb floats left of
 * each row and those right of its W cb); returns the loop's body, where the caller writes the
 * row's interior at *row + (x + p) cb + cl; *r and *y: i64 locals, the plane (batch row times
 * C / cb plus the channel block) and the row. */
LStmt *lower_pad2d_frame(LowerCtx *lc, LStmt *body, int xp, int64_t C, int64_t H, int64_t W, int64_t p,
                         int64_t Wp, int64_t cb, int64_t plane, double fill, int *r, int *y, LExpr **row);
/* In the body vb of a vector loop over [0, V) (V = lp->vec_f32 lanes, variable lane) whose
 * f32 locals rows[j] (j < V) hold a V x V block, row j in lanes l: replaces rows[] by locals
 * that hold its transposition (rows[j] lane l = the old rows[l] lane j), in log2(V) butterfly
 * stages of swap and select (a few shuffles per vector where a strided access moved each lane
 * by itself).  V a power of 2, at most 64. */
void lower_transpose_lanes(LoopProgram *lp, LStmt *vb, int lane, int *rows);
/* lower_pad2d's layout (cb = 1) with planes of `plane` >= (H + 2p) Wp floats, the tail of each
 * filled too (room for the over-reads of a flat-plane product), named name; made even when
 * p == 0.  Each element is written once (a zeroed plane with the copy on top writes the
 * interior twice). */
int lower_pad2d_planes(LowerCtx *lc, LStmt *body, const char *name, int src, int64_t C, int64_t H,
                       int64_t W, int64_t p, int64_t Wp, int64_t plane, double fill);

/* Builds the inference program; returns NULL after diagnosing when an op has no lowering. */
LoopProgram *lower_graph(const Graph *g);
/* The same for a target whose f32 vectors hold vec_f32 lanes (lower_graph assumes 16). */
LoopProgram *lower_graph_target(const Graph *g, int vec_f32);
/* One entry point of a differentiated graph (autodiff.h): MODE_FORWARD is lower_graph_target
 * (with winograd: conv.c may compute a 3x3 convolution at stride 1 by Winograd's transforms);
 * MODE_GRADIENTS the forward in training mode, the loss and the gradient program (gradients
 * straight into the model's gradient buffer); MODE_EVALUATE the forward in inference mode and
 * the loss; MODE_UPDATE the optimizer (optim.c). */
LoopProgram *lower_program(const Graph *g, LowerMode mode, int vec_f32, int winograd);

/* --- optim.c: the update program (clipping, weight decay, the optimizer) --- */
void lower_update(LowerCtx *lc);
/* Run-time scalars and results for kernels: hyper[k] (NNCC_H_*) and the scalars buffer. */
LExpr *lower_hyper(LowerCtx *lc, int k);
int lower_scalars(LowerCtx *lc);
/* The carried recurrent state (BUF_RSTATE, [batch, op_recurrent_state_floats(g)]). */
int lower_rstate(LowerCtx *lc);
/* Rows of a per-sample shape: batch * (numel / last dim), the last axis being the row. */
LExpr *lower_rows(LowerCtx *lc, Shape s);

#endif
