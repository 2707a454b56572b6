/* loops.h - the lowered form: loop nests over flat buffers.
 *
 * lower.c turns the graph IR into a LoopProgram: one Kernel per graph node
 * (written by the op's `lower` hook in ops/<file>.c), run in order by the
 * generated forward function, plus a `prepare` kernel list that packs weights
 * once after they change.  codegen.c turns a LoopProgram into LLVM IR.
 *
 * The model of computation:
 *   - Buffers are flat arrays of f32 or i32, indexed by an i64 element index.
 *     Every node's value is a buffer [batch, ...shape], row-major.
 *   - Scalars are i64 (indices, sizes), f32 (values) or bool (conditions).
 *   - A loop `for v in [lo, hi)` with `vec = W` runs W iterations at once: every
 *     expression inside that depends on v is a <W x T> vector, loads and stores
 *     whose index moves by 1 with v become contiguous vector accesses, by 0
 *     uniform ones (broadcast), by anything else gathers/scatters.  The
 *     remainder (hi - lo) % W runs the same body scalar.  Inner loops inside a
 *     vectorized loop run normally; locals declared inside it are vectors.
 *   - `unroll` asks for full unrolling of a loop with constant bounds (-1: for none).
 *   - Locals are mutable scalars scoped to their block (accumulators); codegen
 *     makes them allocas that LLVM promotes to registers.
 *   - A CHECK statement returns an error code from the forward call with a
 *     message formatted by the runtime (bad token id, bad label).
 * Everything lives in the LoopProgram's arena.
 */
#ifndef NNCC_LOOPS_H
#define NNCC_LOOPS_H

#include <stdint.h>
#include <stdio.h>

#include "ir.h"
#include "util.h"

typedef enum LType { LT_I64, LT_I32, LT_F32, LT_BOOL } LType;

typedef enum LExprKind {
  LE_CONST,   /* ival (LT_I64 / LT_I32 / LT_BOOL) or fval (LT_F32) */
  LE_VAR,     /* a loop index (i64): var */
  LE_LOCAL,   /* the current value of a local: local */
  LE_BATCH,   /* the batch argument (i64) */
  LE_SEQ,     /* the symbolic length argument (i64) */
  LE_LOAD,    /* buf[a] */
  LE_BIN,     /* op(a, b) */
  LE_UN,      /* op(a) */
  LE_FMA,     /* a * b + c (f32) */
  LE_SELECT,  /* a ? b : c */
  LE_CAST,    /* a converted to type (i32<->i64, i64/i32 -> f32, f32 -> i64 truncating) */
  LE_RAND,    /* f32 uniform in [0, 1): a counter-based hash of (the call's seed, ival, a);
               * the same (seed, stream, index) always gives the same number, so a backward
               * kernel recomputes the forward's dropout mask instead of storing it */
  LE_SWAP,    /* f32, in a vector loop of whole vectors only: lane l takes a's lane l ^ ival
               * (a butterfly step of an in-register transposition, lower_transpose_lanes) */
} LExprKind;

typedef enum LOp {
  /* binary: both sides of the expression's type; comparisons give bool */
  LO_ADD, LO_SUB, LO_MUL, LO_DIV,  /* i64 division is floor division for non-negative operands */
  LO_MOD, LO_MIN, LO_MAX, LO_POW,  /* pow: f32 only */
  LO_LT, LO_LE, LO_GT, LO_GE, LO_EQ, LO_NE,
  LO_AND, LO_OR,                   /* bool */
  /* unary (f32) */
  LO_NEG, LO_EXP, LO_LOG, LO_TANH, LO_SIGMOID, LO_SQRT, LO_ABS, LO_NOT /* bool */,
} LOp;

typedef struct LExpr LExpr;
struct LExpr {
  LExprKind kind;
  LType type;
  LOp op;
  int64_t ival;
  double fval;
  int var;        /* LE_VAR */
  int local;      /* LE_LOCAL */
  int buf;        /* LE_LOAD */
  LExpr *a, *b, *c;
};

typedef enum BufKind {
  BUF_PARAM,   /* params + offset (floats); read-only in forward */
  BUF_PACKED,  /* packed weights: packed + offset; written by prepare kernels */
  BUF_INPUT,   /* in[index] */
  BUF_OUTPUT,  /* out[index] */
  BUF_TEMP,    /* workspace, placed by the memory plan */
  BUF_TARGET,  /* targets[index] (training) */
  BUF_GRAD,    /* grads + offset: parameter gradients, held by the model object */
  BUF_STATE,   /* state + offset: optimizer state, held by the model object */
  BUF_HYPER,   /* hyper[]: the update's run-time scalars (NNCC_H_*), read-only */
  BUF_SCALAR,  /* scalars + offset: the loss, the gradient norm (NNCC_S_*) */
  BUF_RSTATE,  /* rstate: the carried recurrent state [batch, rstate floats], held by the model
                * object (M_step, stateful training) */
} BufKind;

typedef struct LBuf {
  const char *name;   /* for printing: "conv1", "conv1.weight", "conv1.pad" */
  BufKind kind;
  LType elem;         /* LT_F32 or LT_I32 */
  int index;          /* BUF_INPUT / BUF_OUTPUT: argument position */
  int64_t offset;     /* BUF_PARAM / BUF_PACKED: in elements */
  /* size in elements = batch * (per_sample.fixed + per_sample.per_seq * seq), or, when
   * !batched, per_sample itself (packed weights, per-call scratch that is not per sample) */
  SymCount per_sample;
  int batched;
  /* BUF_TEMP: set by the memory plan: first and last kernel that touch it, and its slot */
  int first_use, last_use;
  int slot;
} LBuf;

typedef enum LStmtKind {
  LS_BLOCK,   /* body[] in order */
  LS_FOR,     /* for var in [lo, hi): body */
  LS_STORE,   /* buf[index] = value  (accumulate: buf[index] += value) */
  LS_LOCAL,   /* declare local = value (scoped to the enclosing block) */
  LS_SET,     /* local = value */
  LS_IF,      /* if cond: body (a block); else_body may be NULL */
  LS_CHECK,   /* if !cond: fail with code and message(args) */
  LS_PREFETCH,/* a hint: fetch the cache line of buf[index] into L2 for a later read (no
               * effect on the results; an index past the buffer is allowed: a prefetch
               * never faults).  In a vector loop, the line of the first lane's element. */
} LStmtKind;

typedef struct LStmt LStmt;
struct LStmt {
  LStmtKind kind;
  /* LS_BLOCK, LS_FOR, LS_IF (then) */
  LStmt **body;
  int nbody;
  /* LS_FOR */
  int var;
  LExpr *lo, *hi;
  int vec;        /* vector width, 0 or 1 = scalar */
  int unroll;     /* 1: fully unroll (constant bounds); -1: never unroll (keeps a
                   * register tile's loads from being shared across iterations) */
  int parallel;   /* iterations may run on threads (a hint; see codegen) */
  int steps;      /* a recurrence's time steps: iteration s needs the results of s - 1, so
                   * it runs in order and every parallel loop inside it is one job a step
                   * (codegen weighs their work down; see emit_parallel) */
  int reduce;     /* a reduction loop (ls_reduce): 1 + the local it reduces into, 0: none */
  LOp reduce_op;  /* LO_ADD or LO_MAX; also on the LS_SET of ls_combine */
  /* LS_STORE, LS_PREFETCH */
  int buf;
  LExpr *index;
  LExpr *value;   /* also LS_LOCAL, LS_SET */
  int accumulate; /* LS_STORE: buf[index] += value; LS_SET: local = local reduce_op value */
  /* LS_LOCAL, LS_SET */
  int local;
  /* LS_IF, LS_CHECK */
  LExpr *cond;
  LStmt *else_body;
  /* LS_CHECK: message is a printf format taking up to 4 int64 (%lld) arguments */
  int code;
  const char *message;
  LExpr *args[4];
  int nargs;
};

typedef struct Kernel {
  const char *name;   /* the node's name, sanitised for LLVM: "conv1", "h1.0" */
  int node;           /* the graph node it computes, -1 for prepare kernels */
  LStmt *body;        /* an LS_BLOCK */
  int restores;       /* unpack kernels: the BUF_PARAM it rewrites from its packed copy; -1 */
} Kernel;

typedef enum LowerMode {
  MODE_FORWARD,    /* M_forward: inference, outputs into the caller's arrays */
  MODE_GRADIENTS,  /* M_gradients: forward in training mode, loss, backward into grads */
  MODE_EVALUATE,   /* the trainer's test pass: forward (inference), loss, correct count */
  MODE_UPDATE,     /* M_update: clipping, weight decay, the optimizer */
  MODE_STEP,       /* M_step: the inference forward at seq = 1 from the carried recurrent state,
                    * which it updates; shares the forward's packed weights */
} LowerMode;

typedef struct LoopProgram {
  Arena *arena;
  const Graph *graph;
  LowerMode mode;
  const char *entry;  /* "forward", "gradients", ...: names the generated functions */
  LBuf *bufs;       int nbufs;
  Kernel *kernels;  int nkernels;    /* forward, in order */
  Kernel *prepare;  int nprepare;    /* run after parameters change */
  /* inverse of prepare kernels that are permutations (forward only): each rewrites one
   * parameter exactly from its packed copy, so the runtime may drop that parameter's pages
   * while the model only runs inference (runtime/model.c, "evicted") */
  Kernel *unpack;   int nunpack;
  int nvars;                         /* loop variables are numbered program-wide */
  LType *local_types; int nlocals;   /* locals too */
  const char **var_names;            /* for printing: "b", "f", "oy" */
  int64_t packed_floats;             /* size of the packed-weights buffer */
  /* the memory plan: slot s holds batch * (slot_size[s].fixed + per_seq * seq) elements,
   * rounded up to 16, at the offset that is the sum of the slots before it */
  SymCount *slot_size; int nslots;
  char *slot_batched;                /* per slot: its size is multiplied by the batch */
  int symbolic_seq;                  /* the forward function takes seq */
  int vec_f32;                       /* the target's f32 vector width (16 AVX-512, 8 AVX2,
                                      * 4 SSE); set before lowering, read by op lowerings */
  int winograd;                      /* 3x3 convolutions' forward may take the Winograd
                                      * schedule (--no-winograd clears it) */
} LoopProgram;

/* --- loops.c: construction --- */
LoopProgram *loops_new(const Graph *g);
void loops_free(LoopProgram *lp);
int loops_add_buf(LoopProgram *lp, const char *name, BufKind kind, LType elem);
Kernel *loops_add_kernel(LoopProgram *lp, const char *name, int node);  /* body: empty block */
Kernel *loops_add_prepare(LoopProgram *lp, const char *name);
Kernel *loops_add_unpack(LoopProgram *lp, const char *name, int param);
/* A parameter the forward restores from its packed copy may have its pages dropped during
 * inference only if no inference kernel reads it (readers: the forward and the step programs):
 * unpack kernels of the others get restores = -1, and are neither printed nor emitted. */
void loops_drop_read_unpacks(LoopProgram *lp, const LoopProgram *const *readers, int nreaders);

int lvar(LoopProgram *lp, const char *name);              /* a new loop variable */
LExpr *le_i64(LoopProgram *lp, int64_t v);
LExpr *le_f32(LoopProgram *lp, double v);
LExpr *le_bool(LoopProgram *lp, int v);
LExpr *le_var(LoopProgram *lp, int var);
LExpr *le_local(LoopProgram *lp, int local);
LExpr *le_batch(LoopProgram *lp);
LExpr *le_seq(LoopProgram *lp);
LExpr *le_dim(LoopProgram *lp, Dim d);                    /* a constant or seq */
LExpr *le_load(LoopProgram *lp, int buf, LExpr *index);
LExpr *le_bin(LoopProgram *lp, LOp op, LExpr *a, LExpr *b);
LExpr *le_un(LoopProgram *lp, LOp op, LExpr *a);
LExpr *le_fma(LoopProgram *lp, LExpr *a, LExpr *b, LExpr *c);
LExpr *le_select(LoopProgram *lp, LExpr *c, LExpr *a, LExpr *b);
LExpr *le_cast(LoopProgram *lp, LType t, LExpr *a);
LExpr *le_rand(LoopProgram *lp, int64_t stream, LExpr *index);
LExpr *le_swap(LoopProgram *lp, LExpr *a, int64_t mask);
/* Shorthands (constant-folding where both sides are constants). */
LExpr *le_add(LoopProgram *lp, LExpr *a, LExpr *b);
LExpr *le_sub(LoopProgram *lp, LExpr *a, LExpr *b);
LExpr *le_mul(LoopProgram *lp, LExpr *a, LExpr *b);
/* Row-major flat index: ((i0 * d1 + i1) * d2 + i2) ... of n indices and n dims. */
LExpr *le_index(LoopProgram *lp, int n, LExpr *const *idx, LExpr *const *dims);

/* Statements are appended to a block (LS_BLOCK) and returned. */
LStmt *ls_for(LoopProgram *lp, LStmt *block, int var, LExpr *lo, LExpr *hi);  /* returns the loop; its body is loop->body block: use ls_body(loop) */
LStmt *ls_body(LStmt *loop_or_if);                                           /* the block to append to */
LStmt *ls_store(LoopProgram *lp, LStmt *block, int buf, LExpr *index, LExpr *value);
LStmt *ls_accumulate(LoopProgram *lp, LStmt *block, int buf, LExpr *index, LExpr *value);
LStmt *ls_prefetch(LoopProgram *lp, LStmt *block, int buf, LExpr *index);
int ls_local(LoopProgram *lp, LStmt *block, LType t, LExpr *init);            /* returns the local's id */
LStmt *ls_set(LoopProgram *lp, LStmt *block, int local, LExpr *value);
/* A reduction: for var in [lo, hi) vec lp->vec_f32 whose body folds values into `local` (declared
 * outside the loop) with op (LO_ADD or LO_MAX) through ls_combine, and reads or sets it nowhere
 * else.  Vectorized, each lane keeps a partial (starting at 0 for LO_ADD, at the local's value
 * for LO_MAX); after the main loop the partials are folded into the local in lane order
 * 0, 1, ..., W-1, then the remainder runs in scalar code.  The result depends on the vector
 * width and the trip count only: the same program gives the same bits on every run.  Returns
 * the loop (its body: ls_body). */
LStmt *ls_reduce(LoopProgram *lp, LStmt *block, int var, LExpr *lo, LExpr *hi, int local, LOp op);
/* local = local op value, inside the body of the ls_reduce loop of that local. */
LStmt *ls_combine(LoopProgram *lp, LStmt *block, int local, LOp op, LExpr *value);
LStmt *ls_if(LoopProgram *lp, LStmt *block, LExpr *cond);
LStmt *ls_check(LoopProgram *lp, LStmt *block, LExpr *cond, int code, const char *message,
                int nargs, LExpr *const *args);

/* --- loops.c: the readable text form (--emit=loops) --- */
void loops_print(FILE *out, const LoopProgram *lp);

/* Splits every elementwise loop at a kernel's top level (vectorized, every store and every
 * load of a stored buffer at [i]) into a parallel loop over blocks of 4096 elements. */
void loops_split_flat(LoopProgram *lp);

#endif
