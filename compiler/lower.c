/* lower.c - graph IR to loop IR, and the static memory plan.
 *
 * lower_graph() marks the nodes the outputs depend on (the loss and the targets
 * are not part of inference), then walks them in topological order:
 *   - `input` nodes are the caller's arrays (BUF_INPUT), outputs write straight
 *     into the caller's arrays (BUF_OUTPUT), everything else is a workspace
 *     temporary (BUF_TEMP) created on first request by lower_value();
 *   - flatten and dropout (inference) are aliases: their value IS their input's
 *     buffer, unless the node is an output, when a copy kernel fills the output;
 *   - an output that is an input node itself gets a copy kernel too;
 *   - every other node calls its op's `lower` hook, which starts its kernel with
 *     lower_begin() and fills it with loops.h builders.
 * The memory plan then scans every kernel for the buffers it touches (first and
 * last kernel index), and assigns temporaries to slots greedily in order of
 * first use: a slot is free again after the last kernel of its occupant; among
 * free slots the one that already fits (smallest), else the largest, which
 * grows.  Slot sizes are SymCounts per sample; the workspace is
 * sum(round_up_16(batch * size)) floats (codegen computes it at run time).
 */
#include "lower.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "nncc_rt.h"
#include "ops.h"

/* The entry points that run the model for its outputs (M_forward, M_step). */
static int inference(LowerMode m) { return m == MODE_FORWARD || m == MODE_STEP; }

static int buf_for_node(LowerCtx *lc, const Node *n, BufKind kind, int index) {
  LoopProgram *lp = lc->lp;
  int b = loops_add_buf(lp, n->name, kind, n->dtype == DT_F32 ? LT_F32 : LT_I32);
  lp->bufs[b].index = index;
  lp->bufs[b].per_sample = shape_numel(n->shape);
  lp->bufs[b].batched = 1;
  return b;
}

int lower_value(LowerCtx *lc, int node) {
  if (node < 0 || node >= lc->g->nnodes) die("lower_value: bad node %d", node);
  if (lc->value_buf[node] >= 0) return lc->value_buf[node];
  const Node *n = &lc->g->nodes[node];
  LoopProgram *lp = lc->lp;
  int b;
  if (lc->place_in && lc->place_in[node] >= 0) {
    b = lower_value(lc, lc->place_in[node]); /* a part of each row of that buffer */
  } else if (n->op == OP_input) {
    b = buf_for_node(lc, n, n->is_target ? BUF_TARGET : BUF_INPUT, n->input_index);
  } else if (n->op == OP_param) {
    b = lower_param(lc, &lc->g->nodes[n->fwd], n->wrt);
  } else if (n->is_loss && !inference(lc->mode)) {
    b = buf_for_node(lc, n, BUF_SCALAR, 0);
    lp->bufs[b].offset = NNCC_S_LOSS;
    lp->bufs[b].per_sample = (SymCount){1, 0};
    lp->bufs[b].batched = 0;
  } else if (lc->grad_param && lc->grad_param[node] >= 0) {
    const Param *p = &lc->g->params[lc->grad_param[node]];
    b = loops_add_buf(lp, arena_printf(lp->arena, "grad.%s", p->name), BUF_GRAD, LT_F32);
    lp->bufs[b].offset = p->grad_offset;
    lp->bufs[b].per_sample = (SymCount){p->numel, 0};
    lp->bufs[b].batched = 0;
  } else if (n->output_index >= 0 && inference(lc->mode)) {
    b = buf_for_node(lc, n, BUF_OUTPUT, n->output_index);
  } else {
    b = buf_for_node(lc, n, BUF_TEMP, 0);
    lp->bufs[b].batched = n->batched;
  }
  lc->value_buf[node] = b;
  return b;
}

int lower_producer(const LowerCtx *lc, int v) {
  const Node *vn = &lc->g->nodes[v];
  return vn->nin == 1 && lc->fused_act && lc->fused_act[vn->in[0]] == v ? vn->in[0] : v;
}

int lower_placed(const LowerCtx *lc, const Node *n, int64_t *pitch, int64_t *off) {
  int v = lc->fused_act && lc->fused_act[n->id] >= 0 ? lc->fused_act[n->id] : n->id;
  int c = lc->place_in ? lc->place_in[v] : -1;
  if (c < 0) return 0;
  SymCount rows = shape_numel(lc->g->nodes[c].shape);
  if (rows.per_seq) die("lower_placed: %s in a value of symbolic size", n->name);
  *pitch = rows.fixed;
  *off = lc->place_off[v];
  return 1;
}

LExpr *lower_hyper(LowerCtx *lc, int k) {
  LoopProgram *lp = lc->lp;
  int b = -1;
  for (int i = 0; i < lp->nbufs; i++)
    if (lp->bufs[i].kind == BUF_HYPER) b = i;
  if (b < 0) {
    b = loops_add_buf(lp, "hyper", BUF_HYPER, LT_F32);
    lp->bufs[b].per_sample = (SymCount){NNCC_H_COUNT, 0};
  }
  return le_load(lp, b, le_i64(lp, k));
}

int lower_scalars(LowerCtx *lc) {
  LoopProgram *lp = lc->lp;
  for (int i = 0; i < lp->nbufs; i++)
    if (lp->bufs[i].kind == BUF_SCALAR && lp->bufs[i].offset == 0 &&
        !strcmp(lp->bufs[i].name, "scalars"))
      return i;
  int b = loops_add_buf(lp, "scalars", BUF_SCALAR, LT_F32);
  lp->bufs[b].per_sample = (SymCount){NNCC_S_COUNT, 0};
  return b;
}

int lower_rstate(LowerCtx *lc) {
  LoopProgram *lp = lc->lp;
  for (int i = 0; i < lp->nbufs; i++)
    if (lp->bufs[i].kind == BUF_RSTATE) return i;
  int b = loops_add_buf(lp, "rstate", BUF_RSTATE, LT_F32);
  lp->bufs[b].per_sample = (SymCount){op_recurrent_state_floats(lc->g), 0};
  lp->bufs[b].batched = 1;
  return b;
}

LExpr *lower_rows(LowerCtx *lc, Shape s) {
  SymCount c = shape_numel(s);
  int64_t last = s.rank ? s.d[s.rank - 1].n : 1;
  if (s.rank && s.d[s.rank - 1].sym) die("lower_rows: a symbolic last axis");
  c.fixed /= last;
  c.per_seq /= last;
  return lower_total(lc, c);
}

/* Parameter buffers are made once per parameter (cached in param_buf). */
static int *param_buf;

int lower_param(LowerCtx *lc, const Node *n, int k) {
  if (k < 0 || k >= n->nparams) die("lower_param: %s has no parameter %d", n->name, k);
  int pi = n->first_param + k;
  if (param_buf[pi] >= 0) return param_buf[pi];
  const Param *p = &lc->g->params[pi];
  int b = loops_add_buf(lc->lp, p->name, BUF_PARAM, LT_F32);
  lc->lp->bufs[b].offset = p->offset;
  lc->lp->bufs[b].per_sample = (SymCount){p->numel, 0};
  lc->lp->bufs[b].batched = 0;
  param_buf[pi] = b;
  return b;
}

LStmt *lower_begin(LowerCtx *lc, const Node *n) {
  Kernel *k = loops_add_kernel(lc->lp, n->name, n->id);
  lc->current_kernel = lc->lp->nkernels - 1;
  return k->body;
}

int lower_scratch(LowerCtx *lc, const char *name, LType elem, SymCount per_sample, int batched) {
  int b = loops_add_buf(lc->lp, name, BUF_TEMP, elem);
  lc->lp->bufs[b].per_sample = per_sample;
  lc->lp->bufs[b].batched = batched;
  return b;
}

int lower_packs_once(const LowerCtx *lc) { return inference(lc->mode); }

int lower_packed(LowerCtx *lc, const char *name, int64_t numel, LStmt **prepare_block) {
  LoopProgram *lp = lc->lp;
  if (!inference(lc->mode)) {
    /* training entry points pack their weights at the start of the call (the parameters
     * change at every update): an unbatched temporary filled by a kernel of its own */
    int b = lower_scratch(lc, name, LT_F32, (SymCount){numel, 0}, 0);
    Kernel *k = loops_add_kernel(lp, name, -1);
    *prepare_block = k->body;
    return b;
  }
  int b = loops_add_buf(lp, name, BUF_PACKED, LT_F32);
  lp->bufs[b].offset = lp->packed_floats;
  lp->bufs[b].per_sample = (SymCount){numel, 0};
  lp->bufs[b].batched = 0;
  lp->packed_floats += (numel + 15) / 16 * 16;
  Kernel *k = loops_add_prepare(lp, name);
  *prepare_block = k->body;
  return b;
}

LStmt *lower_unpack(LowerCtx *lc, const char *name, int param) {
  LoopProgram *lp = lc->lp;
  if (lc->mode != MODE_FORWARD) return NULL;
  if (lp->bufs[param].kind != BUF_PARAM) die("unpacking into %s, which is not a parameter", lp->bufs[param].name);
  return loops_add_unpack(lp, name, param)->body;
}

LExpr *lower_count(LowerCtx *lc, SymCount c) {
  LoopProgram *lp = lc->lp;
  if (!c.per_seq) return le_i64(lp, c.fixed);
  return le_add(lp, le_i64(lp, c.fixed), le_mul(lp, le_i64(lp, c.per_seq), le_seq(lp)));
}

LExpr *lower_total(LowerCtx *lc, SymCount c) {
  return le_mul(lc->lp, le_batch(lc->lp), lower_count(lc, c));
}

int lower_fused_other(const LowerCtx *lc, const Node *n) {
  int add = lc->fused_add ? lc->fused_add[n->id] : -1;
  if (add < 0) return -1;
  const Node *a = &lc->g->nodes[add];
  return a->in[a->in[0] == n->id ? 1 : 0];
}

LExpr *lower_epilogue_act(LowerCtx *lc, const Node *n, LExpr *v) {
  int add = lc->fused_add ? lc->fused_add[n->id] : -1;
  int act = add >= 0 ? lc->fused_act[add] : lc->fused_act ? lc->fused_act[n->id] : -1;
  if (act < 0) return v;
  return op_activation_expr(lc->lp, &lc->g->nodes[act], v);
}

LExpr *lower_epilogue(LowerCtx *lc, const Node *n, LExpr *v, LExpr *index) {
  int other = lower_fused_other(lc, n);
  if (other >= 0) {
    if (!index) die("lower_epilogue: %s has a fused add and no index", n->name);
    v = le_bin(lc->lp, LO_ADD, v, le_load(lc->lp, lower_value(lc, other), index));
  }
  return lower_epilogue_act(lc, n, v);
}

int lower_has_epilogue(const LowerCtx *lc, const Node *n) {
  return (lc->fused_act && lc->fused_act[n->id] >= 0) || (lc->fused_add && lc->fused_add[n->id] >= 0);
}

LExpr *lower_grad_epilogue(LowerCtx *lc, const Node *n, LExpr *v, LExpr *index) {
  int c = lc->fused_grad ? lc->fused_grad[n->id] : -1;
  if (c < 0) return v;
  return lower_grad_epilogue_of(lc, n, v, le_load(lc->lp, lower_grad_epilogue_buf(lc, n), index));
}

int lower_grad_epilogue_buf(LowerCtx *lc, const Node *n) {
  int c = lc->fused_grad ? lc->fused_grad[n->id] : -1;
  return c < 0 ? -1 : lower_value(lc, lc->g->nodes[c].in[1]);
}

LExpr *lower_grad_epilogue_of(LowerCtx *lc, const Node *n, LExpr *v, LExpr *y) {
  int c = lc->fused_grad ? lc->fused_grad[n->id] : -1;
  if (c < 0) return v;
  return op_act_grad_expr(lc->lp, &lc->g->nodes[lc->g->nodes[c].fwd], v, y);
}

static int is_activation(OpKind k) {
  return k == OP_relu || k == OP_leaky_relu || k == OP_sigmoid || k == OP_tanh;
}

/* A copy kernel dst[i] = src[i] over the node's whole value (aliases that are outputs). */
static void copy_kernel(LowerCtx *lc, const Node *n, int src, int dst) {
  LoopProgram *lp = lc->lp;
  LStmt *body = lower_begin(lc, n);
  SymCount c = shape_numel(n->shape);
  LExpr *per = le_add(lp, le_i64(lp, c.fixed), le_mul(lp, le_i64(lp, c.per_seq), le_seq(lp)));
  if (!c.per_seq) per = le_i64(lp, c.fixed);
  int i = lvar(lp, "i");
  LStmt *loop = ls_for(lp, body, i, le_i64(lp, 0), le_mul(lp, le_batch(lp), per));
  loop->vec = lp->vec_f32;
  ls_store(lp, ls_body(loop), dst, le_var(lp, i), le_load(lp, src, le_var(lp, i)));
}

/* --- liveness and the memory plan --- */

static void touch(LoopProgram *lp, int buf, int k) {
  LBuf *b = &lp->bufs[buf];
  if (b->first_use < 0 || k < b->first_use) b->first_use = k;
  if (k > b->last_use) b->last_use = k;
}

static void scan_expr(LoopProgram *lp, const LExpr *e, int k) {
  if (!e) return;
  if (e->kind == LE_LOAD) touch(lp, e->buf, k);
  scan_expr(lp, e->a, k);
  scan_expr(lp, e->b, k);
  scan_expr(lp, e->c, k);
}

static void scan_stmt(LoopProgram *lp, const LStmt *s, int k) {
  if (!s) return;
  for (int i = 0; i < s->nbody; i++) scan_stmt(lp, s->body[i], k);
  scan_stmt(lp, s->else_body, k);
  if (s->kind == LS_STORE || s->kind == LS_PREFETCH) touch(lp, s->buf, k);
  scan_expr(lp, s->lo, k);
  scan_expr(lp, s->hi, k);
  scan_expr(lp, s->index, k);
  scan_expr(lp, s->value, k);
  scan_expr(lp, s->cond, k);
  for (int i = 0; i < s->nargs; i++) scan_expr(lp, s->args[i], k);
}

static int fits(SymCount need, SymCount have) {
  return need.fixed <= have.fixed && need.per_seq <= have.per_seq;
}

static int64_t weight(SymCount c) { return c.fixed + c.per_seq * 64; }

static void plan_memory(LoopProgram *lp) {
  for (int k = 0; k < lp->nkernels; k++) scan_stmt(lp, lp->kernels[k].body, k);
  int *order = xcalloc((size_t)lp->nbufs + 1, sizeof(int));
  int n = 0;
  for (int i = 0; i < lp->nbufs; i++)
    if (lp->bufs[i].kind == BUF_TEMP && lp->bufs[i].first_use >= 0) order[n++] = i;
  /* sort by first use (stable insertion sort; the counts are small) */
  for (int i = 1; i < n; i++) {
    int v = order[i], j = i - 1;
    while (j >= 0 && lp->bufs[order[j]].first_use > lp->bufs[v].first_use) {
      order[j + 1] = order[j];
      j--;
    }
    order[j + 1] = v;
  }
  int *slot_free_after = xcalloc((size_t)n + 1, sizeof(int)); /* last kernel of its occupant */
  for (int i = 0; i < n; i++) {
    LBuf *b = &lp->bufs[order[i]];
    SymCount need = b->per_sample;
    int best = -1;
    for (int s = 0; s < lp->nslots; s++) {
      if (slot_free_after[s] >= b->first_use) continue;
      if (lp->slot_batched[s] != b->batched) continue;  /* per-call scratch is not x batch */
      if (best < 0) { best = s; continue; }
      int fs = fits(need, lp->slot_size[s]), fb = fits(need, lp->slot_size[best]);
      if (fs && (!fb || weight(lp->slot_size[s]) < weight(lp->slot_size[best]))) best = s;
      else if (!fs && !fb && weight(lp->slot_size[s]) > weight(lp->slot_size[best])) best = s;
    }
    if (best < 0) {
      int nb = lp->nslots;
      char *sb = arena_push(lp->arena, &lp->slot_batched, &nb, 1);
      *sb = (char)b->batched;
      SymCount *sz = arena_push(lp->arena, &lp->slot_size, &lp->nslots, sizeof(SymCount));
      *sz = need;
      best = lp->nslots - 1;
    } else {
      SymCount *sz = &lp->slot_size[best];
      if (need.fixed > sz->fixed) sz->fixed = need.fixed;
      if (need.per_seq > sz->per_seq) sz->per_seq = need.per_seq;
    }
    b->slot = best;
    slot_free_after[best] = b->last_use;
  }
  free(slot_free_after);
  free(order);
}

/* --- the driver --- */

static void mark_needed(const Graph *g, int id, char *needed) {
  if (needed[id]) return;
  needed[id] = 1;
  const Node *n = &g->nodes[id];
  for (int i = 0; i < n->nin; i++) mark_needed(g, n->in[i], needed);
}

/* A kernel that zeroes the gradient of a trained parameter the loss does not depend on. */
static void zero_grad_kernel(LowerCtx *lc, int p) {
  LoopProgram *lp = lc->lp;
  const Param *pa = &lc->g->params[p];
  int b = loops_add_buf(lp, arena_printf(lp->arena, "grad.%s", pa->name), BUF_GRAD, LT_F32);
  lp->bufs[b].offset = pa->grad_offset;
  lp->bufs[b].per_sample = (SymCount){pa->numel, 0};
  Kernel *k = loops_add_kernel(lp, arena_printf(lp->arena, "zero.%s", pa->name), -1);
  int i = lvar(lp, "i");
  LStmt *l = ls_for(lp, k->body, i, le_i64(lp, 0), le_i64(lp, pa->numel));
  l->vec = lp->vec_f32;
  ls_store(lp, ls_body(l), b, le_var(lp, i), le_f32(lp, 0));
}

static const char *mode_entry(LowerMode m) {
  switch (m) {
  case MODE_FORWARD: return "forward";
  case MODE_GRADIENTS: return "gradients";
  case MODE_EVALUATE: return "evaluate";
  case MODE_UPDATE: return "update";
  case MODE_STEP: return "step";
  }
  return "?";
}

LoopProgram *lower_program(const Graph *g, LowerMode mode, int vec_f32, int winograd) {
  LoopProgram *lp = loops_new(g);
  lp->mode = mode;
  lp->entry = mode_entry(mode);
  lp->vec_f32 = vec_f32 > 0 ? vec_f32 : 16;
  lp->winograd = winograd;
  lp->symbolic_seq = g->sym != NULL;
  LowerCtx lc = {.lp = lp, .g = g, .current_kernel = -1, .mode = mode};
  lc.value_buf = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  lc.saved = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  lc.saved0 = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  for (int i = 0; i < g->nnodes; i++) lc.saved[i] = lc.saved0[i] = -1;
  param_buf = xcalloc((size_t)g->nparams + 1, sizeof(int));
  for (int i = 0; i < g->nnodes; i++) lc.value_buf[i] = -1;
  for (int i = 0; i < g->nparams; i++) param_buf[i] = -1;
  if (!inference(mode) && g->nfwd < 0) die("lower_program: the graph has no gradient program");
  if (mode == MODE_UPDATE) {
    lower_update(&lc);
    free(param_buf);
    param_buf = NULL;
    free(lc.value_buf);
    free(lc.saved);
    free(lc.saved0);
    loops_split_flat(lp);
    plan_memory(lp);
    return lp;
  }
  if (mode == MODE_GRADIENTS) {
    lc.grad_param = xcalloc((size_t)g->nnodes + 1, sizeof(int));
    for (int i = 0; i < g->nnodes; i++) lc.grad_param[i] = -1;
    for (int p = 0; p < g->nparams; p++)
      if (g->param_grad[p] >= 0) lc.grad_param[g->param_grad[p]] = p;
  }
  char *needed = xcalloc((size_t)g->nnodes + 1, 1);
  int limit = g->nfwd >= 0 ? g->nfwd : g->nnodes;  /* the model's own nodes */
  if (inference(mode)) {
    for (int i = 0; i < g->noutputs; i++) mark_needed(g, g->outputs[i], needed);
  } else {
    mark_needed(g, g->loss, needed);
    if (mode == MODE_GRADIENTS)
      for (int p = 0; p < g->nparams; p++)
        if (g->param_grad[p] >= 0) mark_needed(g, g->param_grad[p], needed);
    limit = g->nnodes;
  }

  /* epilogue fusion: dense / conv2d / add / mul whose only consumer is an activation */
  lc.fused_act = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  lc.fused_grad = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  int *uses = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  char *absorbed = xcalloc((size_t)g->nnodes + 1, 1);
  for (int i = 0; i < g->nnodes; i++) {
    lc.fused_act[i] = -1;
    lc.fused_grad[i] = -1;
    if (needed[i] && i < limit)
      for (int j = 0; j < g->nodes[i].nin; j++) uses[g->nodes[i].in[j]]++;
  }
  for (int i = 0; i < g->nnodes && i < limit; i++) {
    const Node *c = &g->nodes[i];
    if (!needed[i] || !is_activation(c->op) || c->nin != 1) continue;
    const Node *p = &g->nodes[c->in[0]];
    /* add / mul: their gradients read their inputs, never their own value, which fusion
     * replaces by the activation's */
    if ((p->op == OP_dense || p->op == OP_conv2d || p->op == OP_add || p->op == OP_mul) &&
        (p->output_index < 0 || !inference(mode)) &&
        uses[p->id] == 1 && lc.fused_act[p->id] < 0 && p->info && p->info->lower && c->info &&
        c->info->lower) {
      lc.fused_act[p->id] = i;
      absorbed[i] = 1;
    }
  }
  /* the same backwards: a gradient op that writes its value whole (OpInfo.fuses_act_grad:
   * conv_dx, dense_dx, a gradient sum, a maxpool gradient over disjoint windows) and whose
   * only consumer is an activation's gradient, as its dy, computes that gradient in its last
   * store: one pass over the tensor less */
  for (int i = 0; i < g->nnodes && i < limit; i++) {
    const Node *c = &g->nodes[i];
    if (!needed[i] || c->op != OP_act_grad) continue;
    const Node *p = &g->nodes[c->in[0]];
    if (c->in[1] != p->id && uses[p->id] == 1 && p->output_index < 0 && lc.fused_act[p->id] < 0 &&
        lc.fused_grad[p->id] < 0 && !(lc.grad_param && lc.grad_param[p->id] >= 0) && p->info &&
        p->info->fuses_act_grad && p->info->fuses_act_grad(g, p)) {
      lc.fused_grad[p->id] = i;
      absorbed[i] = 1;
    }
  }
  /* a residual add fused into the conv2d that is one of its operands and read by nothing else,
   * when the other operand is computed before the conv (lowered in node order): the conv's
   * write-back adds it (and applies the add's fused activation), so the conv's own value is
   * never stored and the add makes no kernel.  The add's gradient reads neither operand. */
  lc.fused_add = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  for (int i = 0; i < g->nnodes; i++) lc.fused_add[i] = -1;
  for (int i = 0; i < g->nnodes && i < limit; i++) {
    const Node *c = &g->nodes[i];
    if (!needed[i] || c->op != OP_add || c->nin != 2 || lc.fused_grad[i] >= 0 ||
        (lc.grad_param && lc.grad_param[i] >= 0))
      continue;
    for (int side = 0; side < 2; side++) {
      const Node *p = &g->nodes[c->in[side]];
      int other = c->in[1 - side];
      if (p->op == OP_conv2d && other < p->id && uses[p->id] == 1 && p->output_index < 0 &&
          lc.fused_act[p->id] < 0 && lc.fused_add[p->id] < 0 && !(lc.grad_param && lc.grad_param[p->id] >= 0) &&
          shape_numel(p->shape).fixed == shape_numel(c->shape).fixed && p->info && p->info->lower) {
        lc.fused_add[p->id] = i;
        absorbed[i] = 1;
        break;
      }
    }
  }

  /* producers that write straight into their consumer's copy of their value (OpInfo.plan) */
  lc.chain_to = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  lc.chain_buf = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  for (int i = 0; i < g->nnodes; i++) lc.chain_to[i] = lc.chain_buf[i] = -1;
  lc.place_in = xcalloc((size_t)g->nnodes + 1, sizeof(int));
  lc.place_off = xcalloc((size_t)g->nnodes + 1, sizeof(int64_t));
  for (int i = 0; i < g->nnodes; i++) lc.place_in[i] = -1;
  for (int i = 0; i < g->nnodes && i < limit; i++) {
    const Node *n = &g->nodes[i];
    const OpInfo *info = n->info ? n->info : op_info(n->op);
    if (needed[i] && !absorbed[i] && info && info->plan) info->plan(&lc, n, uses);
  }
  free(uses);

  /* inputs first, so their buffers come first in the listing */
  for (int i = 0; i < g->ninputs; i++)
    if (inference(mode) || needed[g->inputs[i]]) lower_value(&lc, g->inputs[i]);

  int failed = 0;
  unsigned char reported[OP_COUNT] = {0};
  for (int id = 0; id < limit; id++) {
    if (!needed[id]) continue;
    const Node *n = &g->nodes[id];
    if (n->op == OP_input) {
      if (n->output_index >= 0 && inference(mode)) {
        int src = lower_value(&lc, id);
        int dst = buf_for_node(&lc, n, BUF_OUTPUT, n->output_index);
        copy_kernel(&lc, n, src, dst);
      }
      continue;
    }
    if (n->op == OP_param) continue;
    int alias = (n->op == OP_flatten || n->op == OP_reshape ||
                 (n->op == OP_dropout && mode != MODE_GRADIENTS)) && n->nin >= 1;
    if (alias) {
      int src = lower_value(&lc, n->in[0]);
      if ((n->output_index >= 0 && inference(mode)) ||
          (lc.grad_param && lc.grad_param[id] >= 0)) {
        int dst = lower_value(&lc, id);
        copy_kernel(&lc, n, src, dst);
      } else {
        lc.value_buf[id] = src;
      }
      continue;
    }
    const OpInfo *info = n->info ? n->info : op_info(n->op);
    if (!info || !info->lower) {
      if (!reported[n->op]) {
        diag_error(n->loc, "nncc cannot generate code for '%s' yet",
                   info ? info->name : "?");
        reported[n->op] = 1;
      }
      failed = 1;
      continue;
    }
    if (failed) continue;
    if (absorbed[id]) continue;  /* computed by its producer's epilogue */
    int whole = n->nin > 0;      /* every part of it written in place by its producers */
    for (int j = 0; j < n->nin; j++) whole &= lc.place_in[n->in[j]] == id;
    if (whole) continue;
    if (lc.fused_add[id] >= 0) {
      int a = lc.fused_add[id];
      if (lc.fused_act[a] >= 0) lc.value_buf[a] = lower_value(&lc, lc.fused_act[a]);
      lc.value_buf[id] = lower_value(&lc, a);
    }
    if (lc.fused_act[id] >= 0) lc.value_buf[id] = lower_value(&lc, lc.fused_act[id]);
    if (lc.fused_grad[id] >= 0) lc.value_buf[id] = lower_value(&lc, lc.fused_grad[id]);
    lower_value(&lc, id);
    int before = lp->nkernels;
    info->lower(&lc, n);
    if (lp->nkernels == before) die("the lowering of %s made no kernel", n->name);
  }
  if (mode == MODE_GRADIENTS && !failed)
    for (int p = 0; p < g->nparams; p++)
      if (g->params[p].trained && g->param_grad[p] < 0) zero_grad_kernel(&lc, p);
  free(needed);
  free(absorbed);
  free(lc.fused_act);
  free(lc.fused_grad);
  free(lc.fused_add);
  free(lc.chain_to);
  free(lc.chain_buf);
  free(lc.place_in);
  free(lc.place_off);
  free(lc.grad_param);
  free(param_buf);
  param_buf = NULL;
  free(lc.value_buf);
  free(lc.saved);
  free(lc.saved0);
  if (failed) {
    loops_free(lp);
    return NULL;
  }
  loops_split_flat(lp);
  plan_memory(lp);
  return lp;
}

LoopProgram *lower_graph_target(const Graph *g, int vec_f32) {
  return lower_program(g, MODE_FORWARD, vec_f32, 1);
}

LoopProgram *lower_graph(const Graph *g) { return lower_graph_target(g, 16); }

int lower_pad2d(LowerCtx *lc, LStmt *body, const Node *n, int src, int64_t C, int64_t H,
                int64_t W, int64_t p, int64_t Wp, double fill) {
  if (p == 0) return src;
  return lower_pad2d_blocked(lc, body, n, src, C, H, W, p, Wp, 1, fill);
}

/* buf[base + i] = fill for i in [lo, hi) (nothing when the range is empty) */
void lower_fill(LoopProgram *lp, LStmt *blk, int buf, LExpr *base, int64_t lo, int64_t hi, double fill) {
  if (hi <= lo) return;
  int i = lvar(lp, "i");
  LStmt *l = ls_for(lp, blk, i, le_i64(lp, lo), le_i64(lp, hi));
  l->vec = lp->vec_f32;
  ls_store(lp, ls_body(l), buf, le_add(lp, base, le_var(lp, i)), le_f32(lp, fill));
}

static int pad2d(LowerCtx *lc, LStmt *body, const char *name, int src, int64_t C, int64_t H, int64_t W,
                 int64_t p, int64_t Wp, int64_t cb, int64_t plane, double fill);

int lower_pad2d_blocked(LowerCtx *lc, LStmt *body, const Node *n, int src, int64_t C, int64_t H,
                        int64_t W, int64_t p, int64_t Wp, int64_t cb, double fill) {
  return lower_pad2d_blocked_as(lc, body, arena_printf(lc->lp->arena, "%s.pad", n->name), src, C, H, W, p, Wp, cb,
                                fill);
}

int lower_pad2d_blocked_as(LowerCtx *lc, LStmt *body, const char *name, int src, int64_t C, int64_t H, int64_t W,
                           int64_t p, int64_t Wp, int64_t cb, double fill) {
  if (cb < 1 || C % cb) die("lower_pad2d_blocked: %lld channels in blocks of %lld", (long long)C, (long long)cb);
  return pad2d(lc, body, name, src, C, H, W, p, Wp, cb, (H + 2 * p) * Wp * cb, fill);
}

int lower_pad2d_planes(LowerCtx *lc, LStmt *body, const char *name, int src, int64_t C, int64_t H,
                       int64_t W, int64_t p, int64_t Wp, int64_t plane, double fill) {
  if (plane < (H + 2 * p) * Wp) die("lower_pad2d_planes: a plane of %lld floats", (long long)plane);
  return pad2d(lc, body, name, src, C, H, W, p, Wp, 1, plane, fill);
}

void lower_frame_ends(LoopProgram *lp, LStmt *blk, int xp, LExpr *base, LExpr *first, LExpr *last, int64_t H,
                      int64_t p, int64_t rowlen, int64_t plane, double fill) {
  if (p > 0) lower_fill(lp, ls_body(ls_if(lp, blk, first)), xp, base, 0, p * rowlen, fill);
  if ((p + H) * rowlen < plane)
    lower_fill(lp, ls_body(ls_if(lp, blk, last)), xp, base, (p + H) * rowlen, plane, fill);
}

/* [batch, C / cb] planes of `plane` floats (>= Hp Wp cb), each: p rows of fill, H rows of
 * (p cb fill, the copy, the rest of the row's fill), then fill up to the end of the plane */
LStmt *lower_pad2d_frame(LowerCtx *lc, LStmt *body, int xp, int64_t C, int64_t H, int64_t W, int64_t p,
                         int64_t Wp, int64_t cb, int64_t plane, double fill, int *r, int *y, LExpr **row) {
  LoopProgram *lp = lc->lp;
  /* one parallel loop over the rows of the batch's channel blocks: at batch 1 too, the
   * threads each write the rows of their part, which the layer's parallel loops over output
   * rows then read from their own core's cache */
  int ry = lvar(lp, "ry");
  LStmt *lr = ls_for(lp, body, ry, le_i64(lp, 0), le_mul(lp, le_batch(lp), le_i64(lp, C / cb * H)));
  lr->parallel = 1; /* disjoint rows of the copy */
  int rl = ls_local(lp, ls_body(lr), LT_I64, le_bin(lp, LO_DIV, le_var(lp, ry), le_i64(lp, H)));
  int yl = ls_local(lp, ls_body(lr), LT_I64, le_bin(lp, LO_MOD, le_var(lp, ry), le_i64(lp, H)));
  /* the fill goes around the interior only (the caller writes the rest): p rows above (with
   * the plane's first row) and below (with its last), and in each interior row the p columns
   * at the left and the Wp - W - p at the right */
  LExpr *base = le_mul(lp, le_local(lp, rl), le_i64(lp, plane));
  lower_frame_ends(lp, ls_body(lr), xp, base, le_bin(lp, LO_EQ, le_local(lp, yl), le_i64(lp, 0)),
                   le_bin(lp, LO_EQ, le_local(lp, yl), le_i64(lp, H - 1)), H, p, Wp * cb, plane, fill);
  *row = le_add(lp, base, le_mul(lp, le_add(lp, le_local(lp, yl), le_i64(lp, p)), le_i64(lp, Wp * cb)));
  lower_fill(lp, ls_body(lr), xp, *row, 0, p * cb, fill);
  lower_fill(lp, ls_body(lr), xp, *row, (p + W) * cb, Wp * cb, fill);
  *r = rl;
  *y = yl;
  return ls_body(lr);
}

void lower_transpose_lanes(LoopProgram *lp, LStmt *vb, int lane, int *rows) {
  int64_t V = lp->vec_f32;
  if (V < 2 || V > 64 || (V & (V - 1))) die("lower_transpose_lanes: %lld lanes", (long long)V);
  /* stage s swaps bit s between the row and the lane where they differ: rows j and j | s
   * (j without bit s) exchange the lanes l with bit s set in j's and clear in the other's */
  for (int64_t s = V / 2; s >= 1; s /= 2) {
    LExpr *hi = le_bin(lp, LO_GE, le_bin(lp, LO_MOD, le_var(lp, lane), le_i64(lp, 2 * s)), le_i64(lp, s));
    for (int64_t j = 0; j < V; j++) {
      if (j & s) continue;
      int a = rows[j], b = rows[j | s];
      rows[j] = ls_local(lp, vb, LT_F32, le_select(lp, hi, le_swap(lp, le_local(lp, b), s), le_local(lp, a)));
      rows[j | s] = ls_local(lp, vb, LT_F32, le_select(lp, hi, le_local(lp, b), le_swap(lp, le_local(lp, a), s)));
    }
  }
}

/* src[((r cb + c) H + y) W + x]: element (y, x) of channel c of block r of an NCHW tensor */
static LExpr *nchw_at(LoopProgram *lp, int r, int64_t cb, LExpr *c, int64_t H, int y, int64_t W, LExpr *x) {
  LExpr *plane = le_add(lp, le_mul(lp, le_local(lp, r), le_i64(lp, cb)), c);
  return le_add(lp, le_mul(lp, le_add(lp, le_mul(lp, plane, le_i64(lp, H)), le_local(lp, y)), le_i64(lp, W)), x);
}

static int pad2d(LowerCtx *lc, LStmt *body, const char *name, int src, int64_t C, int64_t H, int64_t W,
                 int64_t p, int64_t Wp, int64_t cb, int64_t plane, double fill) {
  LoopProgram *lp = lc->lp;
  int xp = lower_scratch(lc, name, LT_F32, (SymCount){C / cb * plane, 0}, 1);
  int rl, yl, x = lvar(lp, "x"), cl = lvar(lp, "cl");
  LExpr *row;
  LStmt *rb = lower_pad2d_frame(lc, body, xp, C, H, W, p, Wp, cb, plane, fill, &rl, &yl, &row);
  int64_t V = lp->vec_f32, x0 = 0;
  if (cb % V == 0 && W >= V && V <= 64) {
    /* blocks of V channels x V columns: V contiguous loads (a channel's columns each),
     * transposed in registers, V contiguous stores (a column's channels each); a block of cb
     * = k V channels as k such blocks side by side */
    int xb = lvar(lp, "xb"), l = lvar(lp, "l"), sb = cb > V ? lvar(lp, "sb") : -1, rows[64];
    x0 = W / V * V;
    LStmt *lxb = ls_for(lp, rb, xb, le_i64(lp, 0), le_i64(lp, W / V));
    LStmt *outer_sb = sb >= 0 ? ls_for(lp, ls_body(lxb), sb, le_i64(lp, 0), le_i64(lp, cb / V)) : NULL;
    LStmt *ll = ls_for(lp, outer_sb ? ls_body(outer_sb) : ls_body(lxb), l, le_i64(lp, 0), le_i64(lp, V));
    ll->vec = (int)V;
    LStmt *vb = ls_body(ll);
    LExpr *col = le_mul(lp, le_var(lp, xb), le_i64(lp, V));
    LExpr *c0 = outer_sb ? le_mul(lp, le_var(lp, sb), le_i64(lp, V)) : le_i64(lp, 0);
    for (int64_t j = 0; j < V; j++)
      rows[j] = ls_local(lp, vb, LT_F32,
                         le_load(lp, src, nchw_at(lp, rl, cb, le_add(lp, c0, le_i64(lp, j)), H, yl, W,
                                                  le_add(lp, col, le_var(lp, l)))));
    lower_transpose_lanes(lp, vb, l, rows);
    for (int64_t j = 0; j < V; j++) {
      LExpr *at = le_add(lp, row, le_add(lp, le_mul(lp, le_add(lp, col, le_i64(lp, j + p)), le_i64(lp, cb)),
                                         le_add(lp, c0, le_var(lp, l))));
      ls_store(lp, vb, xp, at, le_local(lp, rows[j]));
    }
    if (x0 == W) return xp;
  }
  /* channel by channel, a row's x vectorized: the loads are contiguous and the stores hop by
   * cb floats within the row's few cache lines (x outside and the channel inside read cb rows
   * H W floats apart: 4 KiB apart at 32 x 32, all in one L1 set, a miss each) */
  LStmt *outer = NULL;
  if (cb > 1) outer = ls_for(lp, rb, cl, le_i64(lp, 0), le_i64(lp, cb));
  LStmt *lx = ls_for(lp, outer ? ls_body(outer) : rb, x, le_i64(lp, x0), le_i64(lp, W));
  lx->vec = lp->vec_f32;
  LExpr *clv = cb == 1 ? le_i64(lp, 0) : le_var(lp, cl);
  /* xp[r plane + ((y + p) Wp + x + p) cb + cl] = src[((r cb + cl) H + y) W + x] */
  LExpr *dst = le_add(lp, row, le_add(lp, le_mul(lp, le_add(lp, le_var(lp, x), le_i64(lp, p)), le_i64(lp, cb)), clv));
  ls_store(lp, ls_body(lx), xp, dst, le_load(lp, src, nchw_at(lp, rl, cb, clv, H, yl, W, le_var(lp, x))));
  return xp;
}
