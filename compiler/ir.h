/* ir.h - the graph IR: a checked DAG of tensor operations.
 *
 * sema builds it from the AST (blocks inlined, pipes flattened, parameters
 * named), each op's shape rule fills in the shapes, and every later phase
 * (summary, autodiff, lowering) reads it.  Invariants (checked by ir_verify):
 *   - nodes[] is in topological order: every input of node i has an id < i;
 *   - node.id == its index; shapes are per sample (the batch is implicit and
 *     leading at run time); at most one symbolic length (`seq`) per graph;
 *   - a recurrent layer (rnn / lstm / gru, optionally bidirectional and
 *     stacked) is ONE node whose per-step cell is described by its attrs; it
 *     is lowered to a loop over time, never unrolled, so its gradient can be a
 *     reverse loop over time (BPTT) bounded by the train block's `bptt`.
 *   - parameters are concrete (no symbolic dims) and laid out one after
 *     another in declaration order in one float buffer (Param.offset).
 * The whole graph lives in one Arena.
 */
#ifndef NNCC_IR_H
#define NNCC_IR_H

#include <stdint.h>
#include <stdio.h>

#include "diag.h"
#include "util.h"

enum { MAX_RANK = 6, MAX_OP_ARGS = 12 };

typedef enum OpKind {
#define OP(id, spelling, file) OP_##id,
#include "ops.def"
#undef OP
  OP_COUNT
} OpKind;

/* A dimension: a constant, or the graph's symbolic length (`seq`). */
typedef struct Dim {
  int64_t n;      /* the size when !sym */
  int sym;        /* 1: the symbolic length named Graph.sym */
} Dim;

typedef struct Shape {
  int rank;
  Dim d[MAX_RANK];
} Shape;

/* A count that may grow with the symbolic length: fixed + per_seq * seq. */
typedef struct SymCount {
  int64_t fixed;
  int64_t per_seq;
} SymCount;

typedef enum DType {
  DT_F32,    /* float */
  DT_I32,    /* int32 token ids (range [0, classes)) */
  DT_LABEL,  /* int32 class indices (range [0, classes)); a training target */
} DType;

typedef enum InitKind {
  INIT_ZERO,         /* biases */
  INIT_HE_UNIFORM,   /* U(-b, b), b = sqrt(6 / fan_in): conv and dense weights */
  INIT_UNIFORM_FAN,  /* U(-b, b), b = 1 / sqrt(fan_in), fan_in = units: recurrent weights and
                      * biases (PyTorch) */
  INIT_NORMAL,       /* N(0, 1): embeddings (PyTorch) */
} InitKind;

typedef struct Param {
  const char *name;  /* state_dict name: "conv1.weight", "h.weight_ih_l0_reverse" */
  Shape shape;       /* PyTorch layout, concrete */
  int64_t numel;
  int64_t offset;    /* in floats, into the parameter buffer */
  InitKind init;
  int64_t fan_in, fan_out;
  int node;          /* the node that owns it */
  int trained;       /* gets a gradient and is updated (not frozen) */
  int64_t grad_offset; /* trained: in floats, into the gradient buffer (-1 when frozen) */
} Param;

typedef enum RecurrentCell { CELL_RNN, CELL_LSTM, CELL_GRU } RecurrentCell;

/* Attributes of all ops in one struct; each op's schema says which fields it uses. */
typedef struct Attrs {
  int64_t units;      /* conv filters, dense units, recurrent units, embedding dim */
  int64_t kernel;     /* conv kernel, pool size, lrn size */
  int64_t stride;
  int64_t pad;
  int64_t vocab;      /* embedding */
  int64_t layers;     /* recurrent */
  int bias;           /* conv, dense: has a bias */
  int bidirectional;  /* recurrent */
  OpKind act;         /* rnn activation: OP_tanh or OP_relu */
  RecurrentCell cell; /* rnn / lstm / gru */
  double slope;       /* leaky_relu */
  double p;           /* dropout */
  double alpha, beta, k;  /* lrn */
} Attrs;

typedef struct Node {
  int id;                   /* == index in Graph.nodes */
  OpKind op;
  const struct OpInfo *info;
  const char *name;         /* what tests and people see: "conv1", "h1.0", "pool1.1" */
  const char *param_prefix; /* "conv1": parameters are prefix + ".weight"; NULL when none */
  int *in;                  /* input node ids */
  int nin;
  Attrs a;
  Loc loc;                  /* the call (or declaration) */
  Loc arg_loc[MAX_OP_ARGS]; /* each schema argument as written; .file == NULL when defaulted */
  Shape shape;              /* per sample, set by the op's shape rule */
  DType dtype;
  int64_t classes;          /* DT_I32 / DT_LABEL: values lie in [0, classes) */
  int first_param, nparams; /* Graph.params[first_param .. +nparams) */
  /* interface roles */
  int input_index;          /* OP_input: position among inputs (or targets), else -1 */
  int is_target;            /* OP_input: declared with `target` */
  int output_index;         /* position among outputs, else -1 */
  int is_loss;              /* the `loss` binding */
  /* the gradient program (autodiff.c) */
  int batched;              /* 1: a value per sample ([batch, ...shape]); 0: one value for the
                               whole call (parameters, weight gradients, the loss) */
  int param;                /* OP_param: index into Graph.params; else -1 */
  int fwd;                  /* a gradient node: the forward node whose derivative it computes
                               (its attrs and shapes drive the lowering); else -1 */
  int wrt;                  /* a gradient node: which input / parameter of fwd (op-specific) */
} Node;

typedef enum OptimizerKind { OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM } OptimizerKind;

typedef struct TrainConfig {
  int present;              /* a `train` block was given */
  OptimizerKind optimizer;  /* default: sgd */
  double lr;                /* default 0.01 */
  double momentum;          /* sgd */
  int nesterov;             /* sgd */
  double decay;             /* rmsprop, default 0.99 */
  double beta1, beta2, eps; /* adam: 0.9, 0.999, 1e-8 */
  double clip_norm;         /* 0: no clipping */
  int64_t bptt;             /* 0: full backpropagation through time */
  int64_t batch;            /* default 32 */
  double weight_decay;      /* L2 penalty added to the gradient (torch.optim weight_decay) */
  int stateful;             /* recurrent state carried across training calls */
  const char **freeze;      /* bindings whose parameters are not trained */
  Loc *freeze_loc;
  int nfreeze;
} TrainConfig;

typedef struct Graph {
  Arena *arena;
  const char *name;         /* the model's name */
  Loc loc;
  const char *sym;          /* the symbolic length's name ("seq"), NULL when none */
  Node *nodes;
  int nnodes;
  Param *params;
  int nparams;
  int64_t param_floats;     /* total floats of all parameters */
  int *inputs;  int ninputs;   /* `input` nodes, declaration order */
  int *targets; int ntargets;  /* `target` nodes, declaration order */
  int *outputs; int noutputs;  /* `output` nodes, declaration order */
  const char **output_names;   /* the `output` bindings' names, parallel to outputs (an output
                                  may be an input itself, which keeps its own node name) */
  int loss;                 /* the loss node, or -1 */
  TrainConfig train;
  /* after autodiff (autodiff.c): nodes [0, nfwd) are the model, [nfwd, nnodes) the gradient
   * program; param_grad[p] is the node computing parameter p's gradient (-1: frozen) */
  int nfwd;
  int *param_grad;
  int64_t grad_floats;      /* floats in the gradient buffer (trained parameters) */
} Graph;

/* --- ir.c --- */
Graph *graph_new(const char *name);
void graph_free(Graph *g);
/* Appends a node (inputs copied); returns its id. */
int graph_add_node(Graph *g, OpKind op, const int *in, int nin, Loc loc);
/* Adds a parameter "<node.param_prefix>.<suffix>" to node n (call from an op's params hook). */
Param *graph_add_param(Graph *g, Node *n, const char *suffix, Shape shape, InitKind init,
                       int64_t fan_in, int64_t fan_out);
/* Internal consistency (topological order, shapes set, params laid out); dies on violation. */
void ir_verify(const Graph *g);

Shape shape_make(int rank, const int64_t *dims);
int shape_equal(Shape a, Shape b);
int shape_has_sym(Shape s);
/* Number of elements, with seq counted symbolically. */
SymCount shape_numel(Shape s);
/* "[96, 55, 55]", "[seq, 128]" into buf; returns buf. */
char *shape_str(char *buf, size_t size, Shape s, const char *sym);
const char *dtype_name(DType t);

/* --- ir_print.c: the stable text form (--emit=ir), Graphviz (--emit=dot), --summary --- */
void ir_print(FILE *out, const Graph *g);
void ir_print_dot(FILE *out, const Graph *g);
void ir_print_summary(FILE *out, const Graph *g);

#endif
