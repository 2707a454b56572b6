/* autodiff.c - reverse-mode differentiation of the graph IR (see autodiff.h).
 *
 * Three passes over the model's nodes:
 *   1. freezing: a parameter is trained unless its name lies under a `freeze` binding
 *      ("enc" freezes "enc.weight", "enc.0.weight", ...);
 *   2. wants[]: a node needs a gradient when a trained parameter feeds it, directly or
 *      through its inputs (forward order); on_path[]: the loss depends on it;
 *   3. the reverse walk: from the loss down, each node that is on the path, wants a
 *      gradient and received one calls its op's gradient rule with that gradient.  The
 *      loss's own rule starts it with dy = -1 (d loss / d loss = 1).
 * Gradient nodes are appended to the graph; they are named "d<name>/<op>" after the node
 * they differentiate, so --emit=grad reads like the derivation.
 */
#include "autodiff.h"

#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "ops.h"

struct AdCtx {
  Graph *g;
  char *wants;    /* per forward node */
  int *grad_of;   /* per forward node: the node holding its gradient so far, or -1 */
};

Graph *ad_graph(AdCtx *ad) { return ad->g; }

int ad_wants(const AdCtx *ad, int id) { return id >= 0 && id < ad->g->nfwd && ad->wants[id]; }

int ad_wants_param(const AdCtx *ad, int n, int k) {
  const Node *nd = &ad->g->nodes[n];
  return k >= 0 && k < nd->nparams && ad->g->params[nd->first_param + k].trained;
}

int ad_node(AdCtx *ad, OpKind op, const int *in, int nin, int fwd, int wrt, Shape shape,
            int batched) {
  Graph *g = ad->g;
  Loc loc = g->nodes[fwd].loc;
  int id = graph_add_node(g, op, in, nin, loc);
  Node *n = &g->nodes[id];
  const Node *f = &g->nodes[fwd];
  const char *opname = op_info(op)->name;
  if (*opname == '_') opname++;
  n->name = arena_printf(g->arena, "d%s/%s", f->name, opname);
  n->fwd = fwd;
  n->wrt = wrt;
  n->a = f->a;
  n->shape = shape;
  n->dtype = DT_F32;
  n->batched = batched;
  n->nparams = 0;
  n->first_param = 0;
  return id;
}

int ad_node_like(AdCtx *ad, OpKind op, const int *in, int nin, int fwd, int wrt, int like) {
  const Node *l = &ad->g->nodes[like];
  return ad_node(ad, op, in, nin, fwd, wrt, l->shape, l->batched);
}

int ad_param(AdCtx *ad, int n, int k) {
  Graph *g = ad->g;
  int pi = g->nodes[n].first_param + k;
  for (int i = g->nfwd; i < g->nnodes; i++)
    if (g->nodes[i].op == OP_param && g->nodes[i].param == pi) return i;
  int id = graph_add_node(g, OP_param, NULL, 0, g->nodes[n].loc);
  Node *p = &g->nodes[id];
  p->name = g->params[pi].name;
  p->param = pi;
  p->fwd = n;
  p->wrt = k;
  p->shape = g->params[pi].shape;
  p->dtype = DT_F32;
  p->batched = 0;
  p->first_param = 0;
  return id;
}

void ad_input_grad(AdCtx *ad, int n, int i, int grad) {
  Graph *g = ad->g;
  int in = g->nodes[n].in[i];
  if (!ad_wants(ad, in)) return;
  if (ad->grad_of[in] < 0) {
    ad->grad_of[in] = grad;
    return;
  }
  /* fan-out: the value feeds several nodes; its gradient is the sum */
  int pair[2] = {ad->grad_of[in], grad};
  int sum = ad_node_like(ad, OP_add, pair, 2, in, 0, in);
  g->nodes[sum].name = arena_printf(g->arena, "d%s/sum", g->nodes[in].name);
  ad->grad_of[in] = sum;
}

void ad_param_grad(AdCtx *ad, int n, int k, int grad) {
  Graph *g = ad->g;
  int pi = g->nodes[n].first_param + k;
  if (!g->params[pi].trained) return;
  if (g->param_grad[pi] >= 0) die("parameter %s has two gradients", g->params[pi].name);
  g->param_grad[pi] = grad;
}

/* Marks frozen parameters; -1 after diagnosing a freeze entry that names no parameter. */
static int apply_freeze(Graph *g) {
  int bad = 0;
  for (int p = 0; p < g->nparams; p++) g->params[p].trained = 1;
  for (int f = 0; f < g->train.nfreeze; f++) {
    const char *b = g->train.freeze[f];
    size_t len = strlen(b);
    int hits = 0;
    for (int p = 0; p < g->nparams; p++) {
      const char *name = g->params[p].name;
      if (!strncmp(name, b, len) && name[len] == '.') {
        g->params[p].trained = 0;
        hits++;
      }
    }
    if (!hits) {
      int found = 0;
      for (int i = 0; i < g->nnodes && !found; i++)
        if (g->nodes[i].name && !strcmp(g->nodes[i].name, b)) found = 1;
      diag_error(g->train.freeze_loc[f], found ? "freeze: '%s' has no parameters"
                                               : "freeze: the model has no binding '%s' with parameters", b);
      bad = 1;
    }
  }
  return bad ? -1 : 0;
}

int autodiff(Graph *g) {
  if (g->loss < 0) {
    diag_error(g->loc, "model '%s' has no loss: training needs `loss = cross_entropy(...)` or "
               "`loss = mse(...)`", g->name);
    return -1;
  }
  if (g->nfwd >= 0) die("autodiff: the graph already has a gradient program");
  if (apply_freeze(g)) return -1;
  for (int i = 0; i < g->nnodes && (g->train.bptt > 0 || g->train.stateful); i++) {
    const Node *n = &g->nodes[i];
    if (!(n->op == OP_rnn || n->op == OP_lstm || n->op == OP_gru) || !n->a.bidirectional) continue;
    if (g->train.bptt > 0) {
      diag_error(n->loc, "bptt = %lld cannot truncate the bidirectional layer '%s'",
                 (long long)g->train.bptt, n->name);
      diag_note((Loc){0}, "its backward direction reads the steps after each cut; train it "
                "on whole sequences (no bptt), or cut the data into sequences of %lld steps",
                (long long)g->train.bptt);
    } else {
      diag_error(n->loc, "stateful training cannot carry the state of the bidirectional layer "
                 "'%s'", n->name);
      diag_note((Loc){0}, "its backward direction starts from the end of each sequence, which "
                "the next call does not continue; train it with stateful = false");
    }
    return -1;
  }
  g->nfwd = g->nnodes;
  int nf = g->nfwd;
  AdCtx ad = {.g = g};
  ad.wants = xcalloc((size_t)nf + 1, 1);
  ad.grad_of = xcalloc((size_t)nf + 1, sizeof(int));
  char *on_path = xcalloc((size_t)nf + 1, 1);
  g->param_grad = arena_alloc(g->arena, ((size_t)g->nparams + 1) * sizeof(int));
  for (int p = 0; p < g->nparams; p++) g->param_grad[p] = -1;

  for (int i = 0; i < nf; i++) {
    const Node *n = &g->nodes[i];
    ad.grad_of[i] = -1;
    for (int k = 0; k < n->nparams; k++)
      if (g->params[n->first_param + k].trained) ad.wants[i] = 1;
    for (int k = 0; k < n->nin; k++)
      if (ad.wants[n->in[k]]) ad.wants[i] = 1;
  }
  on_path[g->loss] = 1;
  for (int i = nf - 1; i >= 0; i--)
    if (on_path[i])
      for (int k = 0; k < g->nodes[i].nin; k++) on_path[g->nodes[i].in[k]] = 1;

  int status = 0;
  for (int i = g->loss; i >= 0 && !status; i--) {
    if (!on_path[i] || !ad.wants[i]) continue;
    int dy = i == g->loss ? -1 : ad.grad_of[i];
    if (dy < 0 && i != g->loss) continue;
    const OpInfo *info = op_info(g->nodes[i].op);
    if (!info->grad) {
      diag_error(g->nodes[i].loc, "nncc cannot differentiate '%s' yet, so '%s' cannot be "
                 "trained through it", info->name, g->name);
      status = -1;
      break;
    }
    info->grad(&ad, i, dy);
  }
  /* the gradient buffer: trained parameters in declaration order */
  g->grad_floats = 0;
  for (int p = 0; p < g->nparams && !status; p++) {
    Param *pa = &g->params[p];
    pa->grad_offset = -1;
    if (!pa->trained) continue;
    if (g->param_grad[p] < 0) {
      /* trained but unreachable from the loss (an unused layer): its gradient is zero */
      pa->grad_offset = g->grad_floats;
      g->grad_floats += (pa->numel + 15) / 16 * 16;
      continue;
    }
    pa->grad_offset = g->grad_floats;
    g->grad_floats += (pa->numel + 15) / 16 * 16;
  }
  free(ad.wants);
  free(ad.grad_of);
  free(on_path);
  return status;
}

const char *autodiff_unsupported(const Graph *g) {
  if (g->loss < 0) return NULL;
  char *on_path = xcalloc((size_t)g->nnodes + 1, 1);
  const char *bad = NULL;
  on_path[g->loss] = 1;
  for (int i = g->loss; i >= 0; i--) {
    if (!on_path[i]) continue;
    const Node *n = &g->nodes[i];
    if (n->op != OP_input && !op_info(n->op)->grad && !bad) bad = op_info(n->op)->name;
    for (int k = 0; k < n->nin; k++) on_path[n->in[k]] = 1;
  }
  free(on_path);
  return bad;
}
