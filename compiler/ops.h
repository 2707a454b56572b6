/* ops.h - the table of operations: each op described once.
 *
 * compiler/ops/<file>.c defines `const OpInfo op_<id>` for every op that
 * ops.def lists: its argument schema (what sema accepts), its shape rule (with
 * the arithmetic kept for diagnostics), its parameters (PyTorch layout), its
 * FLOP count, and its forward lowering to loop IR.  The gradient rule joins
 * them here when autodiff arrives.  Adding an op = one file in ops/ plus a
 * line in ops.def plus its tests.
 */
#ifndef NNCC_OPS_H
#define NNCC_OPS_H

#include <stddef.h>

#include "ir.h"

struct LowerCtx;
struct AdCtx;

typedef enum ArgType {
  ARG_TENSOR,  /* a value of the graph: becomes an input of the node (in order) */
  ARG_INT,     /* int64 attr; `min` is checked by sema */
  ARG_FLOAT,   /* double attr (an integer literal is accepted) */
  ARG_BOOL,    /* true / false (int attr) */
  ARG_ACT,     /* an activation named by its op: tanh, relu (OpKind attr) */
  ARG_LAYER,   /* bidirectional's argument: a call of rnn / lstm / gru */
} ArgType;

typedef struct ArgSpec {
  const char *name;    /* keyword, and the position's name in messages */
  ArgType type;
  int required;        /* no default: sema diagnoses a missing argument */
  double dflt;         /* default (ints, floats, bools; OpKind for ARG_ACT) */
  size_t offset;       /* offsetof(Attrs, field); unused for ARG_TENSOR / ARG_LAYER */
  double min;          /* smallest accepted value (ARG_INT / ARG_FLOAT) */
  double max;          /* largest accepted value; 0 with min 0 means unbounded */
  int max_exclusive;   /* the max itself is not accepted (dropout p < 1) */
} ArgSpec;

typedef struct OpInfo {
  OpKind kind;
  const char *name;          /* spelling in the language (ops.def) */
  const char *doc;           /* one line: shape rule, for --help and docs */
  const ArgSpec *args;       /* in positional order */
  int nargs;
  int variadic;              /* concat: one or more tensors, no other arguments */
  int parametric;            /* has parameters (the naming rules of docs/language.md ("Parameter names")) */
  /* Shape rule: reads the inputs' shapes and n->a, sets n->shape, n->dtype
   * (and n->classes); on a violation diagnoses at n->loc / n->arg_loc with
   * notes giving the arithmetic, and returns -1.  Floored windows warn. */
  int (*infer)(Graph *g, Node *n);
  /* Declares the parameters with graph_add_param (NULL when none). */
  void (*params)(Graph *g, Node *n);
  /* FLOPs per sample (a multiply-add is 2). */
  SymCount (*flops)(const Graph *g, const Node *n);
  /* Lowering to loop IR (lower.h); NULL while not yet implemented. */
  void (*lower)(struct LowerCtx *lc, const Node *n);
  /* Before anything is lowered, called for each node the entry point computes (NULL: nothing
   * to arrange): may agree with its producer that the producer writes the value straight into
   * the copy this node's lowering would make of it (LowerCtx.chain_to; uses[i] counts the
   * computed nodes that read node i). */
  void (*plan)(struct LowerCtx *lc, const Node *n, const int *uses);
  /* Nonzero when n's lowering (with its fused activation, as planned so far) stores its value
   * only at the positions lower_placed (lower.h) gives, so that a consumer's plan may put the
   * value inside its own bigger buffer (LowerCtx.place_in).  NULL: never. */
  int (*can_place)(const struct LowerCtx *lc, const Node *n);
  /* Gradient rule (autodiff.h): given node n and dy, the node holding dLoss/d(n's value),
   * adds gradient nodes for the inputs and trained parameters that need one.  NULL: the op
   * cannot be differentiated (yet), which autodiff reports. */
  void (*grad)(struct AdCtx *ad, int n, int dy);
  /* Gradient ops: nonzero when the lowering of n writes each element of its value once, in
   * its last store, through lower_grad_epilogue (lower.h), so that an _act_grad reading n as
   * its dy can be computed there.  NULL: never. */
  int (*fuses_act_grad)(const Graph *g, const Node *n);
} OpInfo;

/* An internal operation of the gradient program (ops.def): no schema, no shape rule (autodiff
 * sets its shape), only a lowering. */
#define OP_INTERNAL(id, lowering) \
  const OpInfo op_##id = {.kind = OP_##id, .name = "_" #id, .doc = "", .lower = (lowering)}
/* The same for an op whose lowering can take a following _act_grad (OpInfo.fuses_act_grad) */
#define OP_INTERNAL_FUSING(id, lowering, fuses) \
  const OpInfo op_##id = {.kind = OP_##id, .name = "_" #id, .doc = "", .lower = (lowering), .fuses_act_grad = (fuses)}

#define OP(id, spelling, file) extern const OpInfo op_##id;
#include "ops.def"
#undef OP

/* ops.c */
const OpInfo *op_info(OpKind k);
const OpInfo *op_lookup(const char *name);   /* user-callable ops only; NULL when unknown */
/* The closest user-callable op name (edit distance), for "did you mean"; NULL if none is close. */
const char *op_suggest(const char *name);

/* OpInfo.fuses_act_grad of an op whose lowering always writes its value whole through
 * lower_grad_epilogue (conv_dx, dense_dx, add, mul) (ops.c). */
int op_fuses_always(const Graph *g, const Node *n);

/* Helpers shared by shape rules (ops.c). */
Shape in_shape(const Graph *g, const Node *n, int i);
/* Output size of a conv/pool window along one axis.  On success returns 0 and *out; if the
 * window does not fit returns -1 after diagnosing.  If (len + 2*pad - k) % stride != 0 it warns
 * which rows/columns are never read.  `axis_name` is "height", "width" or "length". */
int window_out(Graph *g, const Node *n, const char *axis_name, Dim len, int64_t k, int64_t stride,
               int64_t pad, Dim *out);

/* --- Added by the shape engineer (additive). --- */
/* Notes (diag_note) with the arithmetic behind n's shape: per-axis window sums for conv / pool,
 * the product for flatten, the sum for concat, ...  sema calls it right after reporting an
 * annotation mismatch for n.  A no-op for ops with nothing to explain. */
void op_explain_shape(const Graph *g, const Node *n);
/* Both spatial axes of a 2-D window (conv2d, pools), as window_out, but a square input floored
 * the same way on both axes gives one warning, not two. */
int window_out2d(Graph *g, const Node *n, Dim h, Dim w, int64_t k, int64_t stride, int64_t pad,
                 Dim *oh, Dim *ow);
/* The axis concat joins for inputs of this per-sample rank: 1 (features) for [seq, K], else 0. */
int op_concat_axis(int rank);
/* Checks shared by shape rules: each diagnoses at n->loc, adds a note on where input i came
 * from, and returns -1; 0 when fine. */
int op_require_f32(Graph *g, const Node *n, int i);
int op_require_rank(Graph *g, const Node *n, int i, int rank, const char *layout);
/* A note at node `id`'s location: "'f5' is [120]". */
void op_note_value(const Graph *g, int id);
/* Sets n's shape (dtype f32, no classes) after checking its size fits in int64; -1 if not. */
int op_set_shape(Graph *g, Node *n, Shape s);
int op_dim_equal(Dim a, Dim b);
/* recurrent.c: the carried recurrent state (M_step, stateful training), per batch row: every
 * recurrent node's h per layer and direction (and lstm's c), nodes in order.  0 when the
 * model has no recurrent layer or a bidirectional one (then nothing is carried). */
int64_t op_recurrent_state_floats(const Graph *g);
/* Whether the model gets M_step: recurrent layers, all unidirectional, over the symbolic
 * length. */
int op_recurrent_streamable(const Graph *g);
/* Saturating SymCount arithmetic for FLOP counts. */
SymCount symcount_scale(SymCount c, int64_t k);
SymCount symcount_add(SymCount a, SymCount b);
SymCount symcount_const(int64_t k);

#endif
