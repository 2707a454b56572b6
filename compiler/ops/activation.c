/* activation.c - elementwise activations: relu, leaky_relu(x, slope=0.01), sigmoid, tanh.
 *
 * Any shape (symbolic lengths included) to the same shape; f32 only.  No
 * parameters.  FLOPs per element (ops.c's convention): relu 1 (a max),
 * leaky_relu 2 (a compare and a multiply), sigmoid and tanh 4 (transcendental).
 */
#include <stddef.h>

#include "autodiff.h"
#include "lower.h"
#include "ops.h"

static const ArgSpec unary_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
};

static const ArgSpec leaky_args[] = {
    {.name = "x", .type = ARG_TENSOR, .required = 1},
    {.name = "slope", .type = ARG_FLOAT, .dflt = 0.01, .offset = offsetof(Attrs, slope),
     .min = -1e300, .max = 1e300},
};

static int same_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  return op_set_shape(g, n, in_shape(g, n, 0));
}

static SymCount act_flops(const Graph *g, const Node *n) {
  int64_t per = n->op == OP_relu ? 1 : n->op == OP_leaky_relu ? 2 : 4;
  return symcount_scale(shape_numel(n->shape), per);
}

/* --- lowering: one vectorized loop over the flattened [batch, ...] tensor --- */

LExpr *op_activation_expr(LoopProgram *lp, const Node *act, LExpr *x) {
  switch (act->op) {
  case OP_relu: return le_bin(lp, LO_MAX, x, le_f32(lp, 0.0));
  case OP_leaky_relu:
    return le_select(lp, le_bin(lp, LO_GT, x, le_f32(lp, 0.0)), x,
                     le_bin(lp, LO_MUL, x, le_f32(lp, act->a.slope)));
  case OP_sigmoid: return le_un(lp, LO_SIGMOID, x);
  case OP_tanh: return le_un(lp, LO_TANH, x);
  default: die("%s is not an activation", act->name);
  }
}

/* y[i] = act(x[i]) for i in [0, batch * numel) */
static void lower_act(struct LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  int x = lower_value(lc, n->in[0]), y = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int i = lvar(lp, "i");
  LStmt *loop = ls_for(lp, body, i, le_i64(lp, 0), lower_total(lc, shape_numel(n->shape)));
  loop->vec = lp->vec_f32;
  ls_store(lp, ls_body(loop), y, le_var(lp, i),
           op_activation_expr(lp, n, le_load(lp, x, le_var(lp, i))));
}

/* --- the gradient rule: _act_grad(dy, v), v the activation's output y (wrt 0), from which
 * every derivative here follows (relu: y > 0; sigmoid: y (1 - y); tanh: 1 - y^2;
 * leaky_relu with slope > 0: y > 0 iff x > 0), or its input x (wrt 1: leaky_relu with
 * slope <= 0, where y does not tell the sign of x).  Reading y lets the activation stay fused
 * into the dense / conv before it: x is then never stored. */
static void grad_act(AdCtx *ad, int n, int dy) {
  Graph *g = ad_graph(ad);
  const Node *a = &g->nodes[n];
  int from_x = a->op == OP_leaky_relu && a->a.slope <= 0;
  int in[2] = {dy, from_x ? a->in[0] : n};
  ad_input_grad(ad, n, 0, ad_node_like(ad, OP_act_grad, in, 2, n, from_x, n));
}

LExpr *op_act_grad_expr(LoopProgram *lp, const Node *f, LExpr *g, LExpr *y) {
  LExpr *d, *pos = le_bin(lp, LO_GT, y, le_f32(lp, 0.0));
  switch (f->op) {
  case OP_relu: d = le_select(lp, pos, g, le_f32(lp, 0.0)); break;
  case OP_leaky_relu: d = le_select(lp, pos, g, le_bin(lp, LO_MUL, g, le_f32(lp, f->a.slope))); break;
  case OP_sigmoid:
    d = le_bin(lp, LO_MUL, g, le_bin(lp, LO_MUL, y, le_bin(lp, LO_SUB, le_f32(lp, 1.0), y)));
    break;
  case OP_tanh:
    d = le_bin(lp, LO_MUL, g, le_bin(lp, LO_SUB, le_f32(lp, 1.0), le_bin(lp, LO_MUL, y, y)));
    break;
  default: die("%s is not an activation", f->name);
  }
  return d;
}

static void lower_act_grad(struct LowerCtx *lc, const Node *n) {
  LoopProgram *lp = lc->lp;
  int dy = lower_value(lc, n->in[0]), v = lower_value(lc, n->in[1]), dx = lower_value(lc, n->id);
  LStmt *body = lower_begin(lc, n);
  int i = lvar(lp, "i");
  LStmt *loop = ls_for(lp, body, i, le_i64(lp, 0), lower_total(lc, shape_numel(n->shape)));
  loop->vec = lp->vec_f32;
  ls_store(lp, ls_body(loop), dx, le_var(lp, i),
           op_act_grad_expr(lp, &lc->g->nodes[n->fwd], le_load(lp, dy, le_var(lp, i)), le_load(lp, v, le_var(lp, i))));
}

const OpInfo op_relu = {
    .kind = OP_relu,
    .name = "relu",
    .doc = "relu(x): max(x, 0), same shape",
    .args = unary_args,
    .nargs = 1,
    .infer = same_infer,
    .flops = act_flops,
    .lower = lower_act,
    .grad = grad_act,
};

const OpInfo op_leaky_relu = {
    .kind = OP_leaky_relu,
    .name = "leaky_relu",
    .doc = "leaky_relu(x, slope=0.01): x if x > 0 else slope*x, same shape",
    .args = leaky_args,
    .nargs = sizeof leaky_args / sizeof leaky_args[0],
    .infer = same_infer,
    .flops = act_flops,
    .lower = lower_act,
    .grad = grad_act,
};

const OpInfo op_sigmoid = {
    .kind = OP_sigmoid,
    .name = "sigmoid",
    .doc = "sigmoid(x): 1/(1+exp(-x)), same shape",
    .args = unary_args,
    .nargs = 1,
    .infer = same_infer,
    .flops = act_flops,
    .lower = lower_act,
    .grad = grad_act,
};

const OpInfo op_tanh = {
    .kind = OP_tanh,
    .name = "tanh",
    .doc = "tanh(x): same shape",
    .args = unary_args,
    .nargs = 1,
    .infer = same_infer,
    .flops = act_flops,
    .lower = lower_act,
    .grad = grad_act,
};

/* --- the gradient program (ops.def) --- */
OP_INTERNAL(act_grad, lower_act_grad);
