/* ir.c - the graph IR: construction, parameters, shapes, the verifier.
 *
 * A Graph and everything it points to (nodes, inputs arrays, parameter names)
 * live in one Arena (the Graph struct itself included); graph_free releases it
 * at once.  Nodes and params are arrays grown with arena_push, so a Node* is
 * only valid until the next graph_add_node: hold node ids across additions.
 *
 * Parameters are laid out in the order they are declared (graph_add_param),
 * one after another in one float buffer: Param.offset is the running total,
 * Graph.param_floats the grand total.  A node's parameters are contiguous
 * (Node.first_param .. + nparams).  A parameter too large for int64 is a
 * user error (diagnosed at the node), never a silent overflow.
 */
#include "ir.h"

#include <string.h>

#include "ops.h"

Graph *graph_new(const char *name) {
  Arena *a = arena_new();
  Graph *g = arena_alloc(a, sizeof *g);
  g->arena = a;
  g->name = arena_strdup(a, name ? name : "model");
  g->loss = -1;
  g->train.optimizer = OPT_SGD;
  g->train.lr = 0.01;
  g->train.decay = 0.99;
  g->train.beta1 = 0.9;
  g->train.beta2 = 0.999;
  g->train.eps = 1e-8;
  g->train.batch = 32;
  g->nfwd = -1;
  return g;
}

void graph_free(Graph *g) {
  if (g) arena_free(g->arena); /* g itself lives in its arena */
}

int graph_add_node(Graph *g, OpKind op, const int *in, int nin, Loc loc) {
  if ((unsigned)op >= OP_COUNT) die("bad op kind %d", (int)op);
  for (int i = 0; i < nin; i++)
    if (in[i] < 0 || in[i] >= g->nnodes) die("node input %d out of range", in[i]);
  int id = g->nnodes;
  Node *n = arena_push(g->arena, &g->nodes, &g->nnodes, sizeof *n);
  n->id = id;
  n->op = op;
  n->info = op_info(op);
  n->loc = loc;
  n->input_index = -1;
  n->output_index = -1;
  n->batched = 1;
  n->param = -1;
  n->fwd = -1;
  n->first_param = g->nparams;
  if (nin > 0) {
    n->in = arena_alloc(g->arena, (size_t)nin * sizeof *n->in);
    memcpy(n->in, in, (size_t)nin * sizeof *n->in);
  }
  n->nin = nin;
  return id;
}

Param *graph_add_param(Graph *g, Node *n, const char *suffix, Shape shape, InitKind init,
                       int64_t fan_in, int64_t fan_out) {
  if (shape_has_sym(shape)) die("parameter %s of node %d has a symbolic dim", suffix, n->id);
  if (n->nparams > 0 && n->first_param + n->nparams != g->nparams)
    die("parameters of node %d are not contiguous", n->id);
  const char *prefix = n->param_prefix ? n->param_prefix : n->name;
  int64_t numel = 1, total = 0;
  int overflow = 0;
  for (int i = 0; i < shape.rank; i++) {
    if (shape.d[i].n < 0) die("parameter %s has a negative dim", suffix);
    if (checked_mul(numel, shape.d[i].n, &numel)) overflow = 1;
  }
  if (!overflow && checked_add(g->param_floats, numel, &total)) overflow = 1;
  const char *name = prefix ? arena_printf(g->arena, "%s.%s", prefix, suffix)
                            : arena_strdup(g->arena, suffix);
  if (overflow) {
    diag_error(n->loc, "parameter '%s' is too large (more than 2^63 numbers in all)", name);
    numel = 0;
    total = g->param_floats;
  }
  if (n->nparams == 0) n->first_param = g->nparams;
  Param *p = arena_push(g->arena, &g->params, &g->nparams, sizeof *p);
  p->name = name;
  p->shape = shape;
  p->numel = numel;
  p->offset = g->param_floats;
  p->init = init;
  p->fan_in = fan_in;
  p->fan_out = fan_out;
  p->node = n->id;
  n->nparams++;
  g->param_floats = total;
  return p;
}

/* --- shapes --- */

Shape shape_make(int rank, const int64_t *dims) {
  Shape s;
  memset(&s, 0, sizeof s);
  if (rank < 0 || rank > MAX_RANK) die("rank %d out of range", rank);
  s.rank = rank;
  for (int i = 0; i < rank; i++) s.d[i].n = dims[i];
  return s;
}

int shape_equal(Shape a, Shape b) {
  if (a.rank != b.rank) return 0;
  for (int i = 0; i < a.rank; i++) {
    if (a.d[i].sym != b.d[i].sym) return 0;
    if (!a.d[i].sym && a.d[i].n != b.d[i].n) return 0;
  }
  return 1;
}

int shape_has_sym(Shape s) {
  for (int i = 0; i < s.rank; i++)
    if (s.d[i].sym) return 1;
  return 0;
}

/* Saturates at INT64_MAX instead of wrapping (sema diagnoses shapes that large). */
SymCount shape_numel(Shape s) {
  int64_t prod = 1;
  int nsym = 0;
  for (int i = 0; i < s.rank; i++) {
    if (s.d[i].sym) {
      nsym++;
      continue;
    }
    if (checked_mul(prod, s.d[i].n, &prod)) prod = INT64_MAX;
  }
  if (nsym > 1) die("a shape with %d symbolic dims has no linear element count", nsym);
  SymCount c = {0, 0};
  if (nsym) c.per_seq = prod;
  else c.fixed = prod;
  return c;
}

char *shape_str(char *buf, size_t size, Shape s, const char *sym) {
  size_t used = 0;
  if (size == 0) return buf;
  buf[0] = '\0';
#define PUT(...)                                                              \
  do {                                                                        \
    int k_ = snprintf(buf + used, size - used, __VA_ARGS__);                  \
    if (k_ > 0) used = used + (size_t)k_ >= size ? size - 1 : used + (size_t)k_; \
  } while (0)
  PUT("[");
  for (int i = 0; i < s.rank; i++) {
    if (i) PUT(", ");
    if (s.d[i].sym) PUT("%s", sym ? sym : "seq");
    else PUT("%lld", (long long)s.d[i].n);
  }
  PUT("]");
#undef PUT
  return buf;
}

const char *dtype_name(DType t) {
  switch (t) {
  case DT_F32: return "f32";
  case DT_I32: return "i32";
  case DT_LABEL: return "label";
  }
  return "?";
}

/* --- the verifier --- */

void ir_verify(const Graph *g) {
  int64_t offset = 0;
  for (int i = 0; i < g->nparams; i++) {
    const Param *p = &g->params[i];
    if (p->offset != offset) die("param %s: offset %lld, expected %lld", p->name,
                                 (long long)p->offset, (long long)offset);
    if (p->node < 0 || p->node >= g->nnodes) die("param %s: bad owner %d", p->name, p->node);
    const Node *o = &g->nodes[p->node];
    if (i < o->first_param || i >= o->first_param + o->nparams)
      die("param %s is not in its node's range", p->name);
    if (shape_has_sym(p->shape)) die("param %s has a symbolic dim", p->name);
    offset += p->numel;
  }
  if (offset != g->param_floats) die("param_floats %lld, expected %lld",
                                     (long long)g->param_floats, (long long)offset);
  for (int i = 0; i < g->nnodes; i++) {
    const Node *n = &g->nodes[i];
    if (n->id != i) die("node %d has id %d", i, n->id);
    if ((unsigned)n->op >= OP_COUNT) die("node %d: bad op", i);
    if (!n->name) die("node %d has no name", i);
    for (int k = 0; k < n->nin; k++)
      if (n->in[k] < 0 || n->in[k] >= i) die("node %d (%s): input %d is not earlier", i, n->name,
                                             n->in[k]);
    if (n->shape.rank < 0 || n->shape.rank > MAX_RANK) die("node %d: rank %d", i, n->shape.rank);
    for (int k = 0; k < n->shape.rank; k++) {
      if (n->shape.d[k].sym && !g->sym) die("node %d: symbolic dim in a graph without one", i);
      if (!n->shape.d[k].sym && n->shape.d[k].n < 1) die("node %d (%s): dim %d is %lld", i,
                                                         n->name, k, (long long)n->shape.d[k].n);
    }
    if (n->nparams < 0 || n->first_param < 0 || n->first_param + n->nparams > g->nparams)
      die("node %d: bad parameter range", i);
    if (n->op == OP_input) {
      const int *list = n->is_target ? g->targets : g->inputs;
      int count = n->is_target ? g->ntargets : g->ninputs;
      if (n->input_index < 0 || n->input_index >= count || list[n->input_index] != i)
        die("input node %d (%s) is not in the interface list", i, n->name);
    } else if (n->input_index != -1) {
      die("node %d is not an input but has input_index %d", i, n->input_index);
    }
    if (n->output_index >= 0 &&
        (n->output_index >= g->noutputs || g->outputs[n->output_index] != i))
      die("node %d (%s) has a bad output_index", i, n->name);
  }
  for (int k = 0; k < g->noutputs; k++)
    if (g->outputs[k] < 0 || g->outputs[k] >= g->nnodes) die("output %d out of range", k);
  if (g->loss >= g->nnodes) die("loss node out of range");
  if (g->loss >= 0 && (g->nodes[g->loss].shape.rank != 0 || !g->nodes[g->loss].is_loss))
    die("the loss node is not a marked scalar");
}
