/* ir_print.c - the graph IR for people and tests: --emit=ir, --emit=dot, --summary.
 *
 * --emit=ir (stable; lit tests match it).  A header, then one line per node in
 * topological order:
 *
 *   model lenet5
 *     inputs: %0 image
 *     targets: %1 digit
 *     outputs: %14 logits
 *     loss: %15 loss
 *     train: optimizer=adam lr=0.001 beta1=0.9 beta2=0.999 eps=1e-08 clip_norm=0 bptt=0 batch=64
 *     params: 10 tensors, 61,706 floats
 *
 *   %0 image = input : f32[1, 32, 32]
 *   %1 digit = target : label[] classes=10
 *   %2 c1 = conv2d(%0 image) filters=6 kernel=5 stride=1 pad=0 bias=true : f32[6, 28, 28]  params c1.weight[6, 1, 5, 5] c1.bias[6]
 *
 * A line is `%ID NAME = OP(INPUTS) ATTRS : TYPE`, then `params ...` when the
 * node owns parameters, `(output K)` / `(loss)` for interface roles.  ATTRS are
 * the op's schema arguments (compiler/ops/) in schema order, `name=value`, plus
 * `bidirectional=true` on a bidirectional recurrent layer.  The model's
 * length symbol, when it has one, gets a `length: seq` header line.
 *
 * Node names (given by sema.c): a binding's final node is named after the
 * binding ("conv1"; "y.a" for binding a inside a block called as y); a pipe
 * stage's node "<binding>.<i>" ("h1.0"); any other node "<binding>/<op>"
 * ("f6/tanh" for the tanh in `f6 = dense(tanh(f5), 84)`); inputs keep their
 * declared names.  Outputs are renamed to the output's name.
 *
 * --emit=dot: a Graphviz digraph; a box per node labelled name, op, shape and
 * its parameters; inputs are ellipses, outputs double-bordered, the loss grey.
 *
 * --summary: a table of every node (name, op, output shape, parameters, FLOPs
 * per sample with a multiply-add counted as 2; counts that grow with the
 * length read "1.2k×seq"), then the totals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "ir.h"
#include "ops.h"

/* --- shared helpers ----------------------------------------------------------------------- */

static const char *op_display(const Node *n) {
  const char *name = n->info ? n->info->name : op_info(n->op)->name;
  if (n->op == OP_add) return "add";
  if (n->op == OP_mul) return "mul";
  if (n->op == OP_input) return n->is_target ? "target" : "input";
  return name;
}

/* "f32[96, 55, 55]", "label[seq]" */
static char *type_str(char *buf, size_t size, const Graph *g, const Node *n) {
  char sb[200];
  shape_str(sb, sizeof sb, n->shape, g->sym);
  snprintf(buf, size, "%s%s", dtype_name(n->dtype), sb);
  return buf;
}

/* The value of one schema argument, read back from the attrs. */
static void attr_value(char *buf, size_t size, const Node *n, const ArgSpec *spec) {
  const char *attrs = (const char *)&n->a;
  switch (spec->type) {
  case ARG_INT: {
    int64_t v;
    memcpy(&v, attrs + spec->offset, sizeof v);
    snprintf(buf, size, "%lld", (long long)v);
    break;
  }
  case ARG_FLOAT: {
    double v;
    memcpy(&v, attrs + spec->offset, sizeof v);
    snprintf(buf, size, "%g", v);
    break;
  }
  case ARG_BOOL: {
    int v;
    memcpy(&v, attrs + spec->offset, sizeof v);
    snprintf(buf, size, "%s", v ? "true" : "false");
    break;
  }
  case ARG_ACT: {
    OpKind v;
    memcpy(&v, attrs + spec->offset, sizeof v);
    snprintf(buf, size, "%s", (int)v >= 0 && v < OP_COUNT ? op_info(v)->name : "?");
    break;
  }
  default: buf[0] = '\0'; break;
  }
}

static void print_attrs(FILE *out, const Node *n) {
  const OpInfo *op = n->info ? n->info : op_info(n->op);
  if (!op->variadic)
    for (int i = 0; i < op->nargs; i++) {
      const ArgSpec *spec = &op->args[i];
      if (spec->type == ARG_TENSOR || spec->type == ARG_LAYER) continue;
      char v[64];
      attr_value(v, sizeof v, n, spec);
      fprintf(out, " %s=%s", spec->name, v);
    }
  if ((n->op == OP_rnn || n->op == OP_lstm || n->op == OP_gru) && n->a.bidirectional)
    fprintf(out, " bidirectional=true");
}

static int64_t node_params(const Graph *g, const Node *n) {
  int64_t total = 0;
  for (int i = 0; i < n->nparams; i++) total += g->params[n->first_param + i].numel;
  return total;
}

static const char *opt_name(OptimizerKind k) {
  switch (k) {
  case OPT_SGD: return "sgd";
  case OPT_ADAGRAD: return "adagrad";
  case OPT_RMSPROP: return "rmsprop";
  case OPT_ADAM: return "adam";
  }
  return "?";
}

/* "optimizer=adam lr=0.001 beta1=0.9 ..." */
static void print_train(FILE *out, const TrainConfig *t) {
  fprintf(out, "optimizer=%s lr=%g", opt_name(t->optimizer), t->lr);
  switch (t->optimizer) {
  case OPT_SGD: fprintf(out, " momentum=%g nesterov=%s", t->momentum, t->nesterov ? "true" : "false"); break;
  case OPT_ADAGRAD: break;
  case OPT_RMSPROP: fprintf(out, " decay=%g", t->decay); break;
  case OPT_ADAM: fprintf(out, " beta1=%g beta2=%g eps=%g", t->beta1, t->beta2, t->eps); break;
  }
  fprintf(out, " clip_norm=%g bptt=%lld batch=%lld", t->clip_norm, (long long)t->bptt,
          (long long)t->batch);
}

/* --- --emit=ir ---------------------------------------------------------------------------- */

static void print_list(FILE *out, const Graph *g, const char *what, const int *ids, int n) {
  fprintf(out, "  %s:", what);
  if (n == 0) fprintf(out, " none");
  for (int i = 0; i < n; i++) fprintf(out, " %%%d %s", ids[i], g->nodes[ids[i]].name);
  fputc('\n', out);
}

void ir_print(FILE *out, const Graph *g) {
  char buf[64], tb[256];
  fprintf(out, "model %s\n", g->name);
  if (g->sym) fprintf(out, "  length: %s\n", g->sym);
  print_list(out, g, "inputs", g->inputs, g->ninputs);
  print_list(out, g, "targets", g->targets, g->ntargets);
  fprintf(out, "  outputs:");
  if (g->noutputs == 0) fprintf(out, " none");
  for (int i = 0; i < g->noutputs; i++)
    fprintf(out, " %%%d %s", g->outputs[i], g->output_names ? g->output_names[i] : g->nodes[g->outputs[i]].name);
  fputc('\n', out);
  if (g->loss >= 0) fprintf(out, "  loss: %%%d %s\n", g->loss, g->nodes[g->loss].name);
  else fprintf(out, "  loss: none\n");
  fprintf(out, "  train%s: ", g->train.present ? "" : " (defaults)");
  print_train(out, &g->train);
  fputc('\n', out);
  fprintf(out, "  params: %d tensor%s, %s floats\n", g->nparams, g->nparams == 1 ? "" : "s",
          fmt_thousands(buf, g->param_floats));
  fputc('\n', out);
  for (int i = 0; i < (g->nfwd >= 0 ? g->nfwd : g->nnodes); i++) {
    const Node *n = &g->nodes[i];
    fprintf(out, "%%%d %s = %s", n->id, n->name, op_display(n));
    if (n->op != OP_input) {
      fputc('(', out);
      for (int k = 0; k < n->nin; k++)
        fprintf(out, "%s%%%d %s", k ? ", " : "", n->in[k], g->nodes[n->in[k]].name);
      fputc(')', out);
      print_attrs(out, n);
    }
    fprintf(out, " : %s", type_str(tb, sizeof tb, g, n));
    if (n->classes)
      fprintf(out, n->dtype == DT_I32 ? " vocab=%lld" : " classes=%lld", (long long)n->classes);
    if (n->nparams) {
      fprintf(out, "  params");
      for (int k = 0; k < n->nparams; k++) {
        const Param *p = &g->params[n->first_param + k];
        fprintf(out, " %s%s", p->name, shape_str(tb, sizeof tb, p->shape, g->sym));
      }
    }
    if (n->output_index >= 0) fprintf(out, "  (output %d)", n->output_index);
    if (n->is_loss) fprintf(out, "  (loss)");
    fputc('\n', out);
  }
}

/* --- --emit=dot --------------------------------------------------------------------------- */

static void dot_escaped(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', out);
    fputc(*s, out);
  }
}

void ir_print_dot(FILE *out, const Graph *g) {
  char tb[256], pb[256];
  fprintf(out, "digraph \"");
  dot_escaped(out, g->name);
  fprintf(out, "\" {\n");
  fprintf(out, "  rankdir=TB;\n");
  fprintf(out, "  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n");
  fprintf(out, "  edge [fontname=\"Helvetica\", fontsize=9];\n");
  for (int i = 0; i < g->nnodes; i++) {
    const Node *n = &g->nodes[i];
    fprintf(out, "  n%d [label=\"", i);
    dot_escaped(out, n->name);
    fprintf(out, "\\n%s", op_display(n));
    if (n->op == OP_rnn || n->op == OP_lstm || n->op == OP_gru) {
      if (n->a.bidirectional) fprintf(out, " (bidirectional)");
    }
    fprintf(out, "\\n");
    dot_escaped(out, type_str(tb, sizeof tb, g, n));
    if (n->classes)
      fprintf(out, n->dtype == DT_I32 ? " (ids < %lld)" : " (%lld classes)", (long long)n->classes);
    for (int k = 0; k < n->nparams; k++) {
      const Param *p = &g->params[n->first_param + k];
      snprintf(pb, sizeof pb, "%s %s", p->name, shape_str(tb, sizeof tb, p->shape, g->sym));
      fprintf(out, "\\n");
      dot_escaped(out, pb);
    }
    fprintf(out, "\"");
    if (n->op == OP_input) fprintf(out, ", shape=ellipse%s", n->is_target ? ", style=dashed" : "");
    if (n->output_index >= 0) fprintf(out, ", peripheries=2");
    if (n->is_loss) fprintf(out, ", style=\"rounded,filled\", fillcolor=lightgrey");
    fprintf(out, "];\n");
  }
  for (int i = 0; i < g->nnodes; i++) {
    const Node *n = &g->nodes[i];
    for (int k = 0; k < n->nin; k++) fprintf(out, "  n%d -> n%d;\n", n->in[k], i);
  }
  fprintf(out, "}\n");
}

/* --- --summary ---------------------------------------------------------------------------- */

/* 840, 1.2k, 211.8M, 1.1G */
static char *fmt_si(char *buf, size_t size, int64_t v) {
  static const char *const units[] = {"", "k", "M", "G", "T", "P", "E"};
  if (v < 1000) {
    snprintf(buf, size, "%lld", (long long)v);
    return buf;
  }
  double x = (double)v;
  int u = 0;
  while (x >= 999.95 && u < 6) x /= 1000, u++;
  snprintf(buf, size, "%.1f%s", x, units[u]);
  return buf;
}

/* "211.8M", "1.2k×seq", "36 + 1.2k×seq" */
static char *fmt_count(char *buf, size_t size, SymCount c, const char *sym) {
  char a[32], b[32];
  if (c.per_seq == 0) return fmt_si(buf, size, c.fixed);
  if (c.fixed == 0) snprintf(buf, size, "%s\u00d7%s", fmt_si(b, sizeof b, c.per_seq), sym ? sym : "seq");
  else snprintf(buf, size, "%s + %s\u00d7%s", fmt_si(a, sizeof a, c.fixed),
                fmt_si(b, sizeof b, c.per_seq), sym ? sym : "seq");
  return buf;
}

/* Display width of UTF-8 text (one column per code point). */
static int dwidth(const char *s) {
  int w = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) w++;
  return w;
}

static void pad_to(FILE *out, const char *s, int width, int right) {
  int w = dwidth(s);
  if (right)
    for (int i = w; i < width; i++) fputc(' ', out);
  fputs(s, out);
  if (!right)
    for (int i = w; i < width; i++) fputc(' ', out);
}

enum { NCOLS = 5 };

typedef struct Row {
  char col[NCOLS][256];
} Row;

void ir_print_summary(FILE *out, const Graph *g) {
  static const char *const heads[NCOLS] = {"name", "op", "output shape", "params", "FLOPs"};
  static const int right[NCOLS] = {0, 0, 0, 1, 1};
  Row *rows = xcalloc((size_t)g->nnodes + 1, sizeof *rows);
  int width[NCOLS];
  for (int c = 0; c < NCOLS; c++) width[c] = dwidth(heads[c]);
  SymCount total = {0, 0};
  for (int i = 0; i < g->nnodes; i++) {
    const Node *n = &g->nodes[i];
    Row *r = &rows[i];
    char sb[200];
    snprintf(r->col[0], sizeof r->col[0], "%s", n->name);
    if (n->op == OP_rnn || n->op == OP_lstm || n->op == OP_gru) {
      snprintf(r->col[1], sizeof r->col[1], "%s%s", n->a.bidirectional ? "bidirectional " : "",
               op_display(n));
      if (n->a.layers > 1) {
        size_t len = strlen(r->col[1]);
        snprintf(r->col[1] + len, sizeof r->col[1] - len, " (%lld layers)", (long long)n->a.layers);
      }
    } else {
      snprintf(r->col[1], sizeof r->col[1], "%s", op_display(n));
    }
    shape_str(sb, sizeof sb, n->shape, g->sym);
    if (n->op == OP_input && n->classes)
      snprintf(r->col[2], sizeof r->col[2],
               n->dtype == DT_I32 ? "%s%s (ids < %lld)" : "%s%s (%lld classes)",
               dtype_name(n->dtype), sb, (long long)n->classes);
    else if (n->op == OP_input || n->dtype != DT_F32)
      snprintf(r->col[2], sizeof r->col[2], "%s%s", dtype_name(n->dtype), sb);
    else
      snprintf(r->col[2], sizeof r->col[2], "%s", sb);
    fmt_thousands(r->col[3], node_params(g, n));
    SymCount f = {0, 0};
    const OpInfo *op = n->info ? n->info : op_info(n->op);
    if (n->op != OP_input && op->flops) f = op->flops(g, n);
    total = symcount_add(total, f);
    fmt_count(r->col[4], sizeof r->col[4], f, g->sym);
    for (int c = 0; c < NCOLS; c++)
      if (dwidth(r->col[c]) > width[c]) width[c] = dwidth(r->col[c]);
  }
  fprintf(out, "model %s", g->name);
  if (g->sym) fprintf(out, " (length %s)", g->sym);
  fprintf(out, "\n\n");
  for (int c = 0; c < NCOLS; c++) {
    if (c) fputs("  ", out);
    pad_to(out, heads[c], c == NCOLS - 1 && !right[c] ? 0 : width[c], right[c]);
  }
  fputc('\n', out);
  for (int c = 0; c < NCOLS; c++) {
    if (c) fputs("  ", out);
    for (int k = 0; k < width[c]; k++) fputc('-', out);
  }
  fputc('\n', out);
  for (int i = 0; i < g->nnodes; i++) {
    for (int c = 0; c < NCOLS; c++) {
      if (c) fputs("  ", out);
      pad_to(out, rows[i].col[c], width[c], right[c]);
    }
    fputc('\n', out);
  }
  free(rows);
  char a[48], b[48], c[48];
  fputc('\n', out);
  double bytes = (double)g->param_floats * 4.0;
  fprintf(out, "Total parameters: %s (%d tensor%s, ", fmt_thousands(a, g->param_floats),
          g->nparams, g->nparams == 1 ? "" : "s");
  if (bytes >= 1024.0 * 1024.0) fprintf(out, "%.1f MiB as f32)\n", bytes / (1024.0 * 1024.0));
  else if (bytes >= 1024.0) fprintf(out, "%.1f KiB as f32)\n", bytes / 1024.0);
  else fprintf(out, "%.0f bytes as f32)\n", bytes);
  if (total.per_seq == 0)
    fprintf(out, "Total FLOPs per sample: %s (%s)\n", fmt_thousands(a, total.fixed),
            fmt_si(b, sizeof b, total.fixed));
  else if (total.fixed == 0)
    fprintf(out, "Total FLOPs per sample: %s\u00d7%s (%s)\n", fmt_thousands(b, total.per_seq),
            g->sym ? g->sym : "seq", fmt_count(c, sizeof c, total, g->sym));
  else
    fprintf(out, "Total FLOPs per sample: %s + %s\u00d7%s (%s)\n", fmt_thousands(a, total.fixed),
            fmt_thousands(b, total.per_seq), g->sym ? g->sym : "seq",
            fmt_count(c, sizeof c, total, g->sym));
  if (g->loss >= 0) {
    fprintf(out, "Training: loss '%s' (%s); ", g->nodes[g->loss].name, op_display(&g->nodes[g->loss]));
    print_train(out, &g->train);
    fputc('\n', out);
  } else {
    fprintf(out, "Training: none (the model has no loss)\n");
  }
}

/* --- --emit=grad -------------------------------------------------------------------------- */

/* The gradient program after autodiff:
 *
 *   gradients of model mlp: d loss / d 4 parameters (235,146 floats), frozen: none
 *   %9 dloss/ce_grad = ce_grad(%7 logits, %1 label) : f32[10]            d loss / d logits
 *   %10 dlogits/dense_dw = dense_dw(%9 dloss/ce_grad, %6 h2) : f32[10, 128] unbatched  -> grad logits.weight
 *   ...
 *   update: adam lr=0.001 beta1=0.9 beta2=0.999 eps=1e-08, weight_decay=0, clip_norm=0
 *
 * Each line is `%ID NAME = OP(INPUTS) : TYPE`, then `unbatched` for values of the whole call
 * (parameters, their gradients), `-> grad P` when the node is parameter P's gradient, and
 * `d loss / d X` naming the forward value whose gradient it is when that is the whole of it. */
void ir_print_grad(FILE *out, const Graph *g) {
  char buf[64], tb[256];
  int ntrained = 0, nfrozen = 0;
  int64_t floats = 0;
  for (int p = 0; p < g->nparams; p++) {
    if (g->params[p].trained) ntrained++, floats += g->params[p].numel;
    else nfrozen++;
  }
  fprintf(out, "gradients of model %s: d %s / d %d parameter%s (%s floats), frozen:", g->name,
          g->nodes[g->loss].name, ntrained, ntrained == 1 ? "" : "s", fmt_thousands(buf, floats));
  if (!nfrozen) fprintf(out, " none");
  for (int p = 0; p < g->nparams; p++)
    if (!g->params[p].trained) fprintf(out, " %s", g->params[p].name);
  fputc('\n', out);
  for (int i = g->nfwd; i < g->nnodes; i++) {
    const Node *n = &g->nodes[i];
    const char *op = op_info(n->op)->name;
    if (*op == '_') op++;
    fprintf(out, "%%%d %s = %s(", n->id, n->name, op);
    for (int k = 0; k < n->nin; k++)
      fprintf(out, "%s%%%d %s", k ? ", " : "", n->in[k], g->nodes[n->in[k]].name);
    fprintf(out, ") : %s", type_str(tb, sizeof tb, g, n));
    if (!n->batched) fprintf(out, " unbatched");
    for (int p = 0; p < g->nparams; p++)
      if (g->param_grad[p] == i) fprintf(out, "  -> grad %s", g->params[p].name);
    fputc('\n', out);
  }
  for (int p = 0; p < g->nparams; p++)
    if (g->params[p].trained && g->param_grad[p] < 0)
      fprintf(out, "grad %s = 0 (the loss does not depend on it)\n", g->params[p].name);
  fprintf(out, "update: ");
  print_train(out, &g->train);
  fprintf(out, " weight_decay=%g\n", g->train.weight_decay);
}
