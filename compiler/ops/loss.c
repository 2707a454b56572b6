/* loss.c - cross_entropy(logits, label) and mse(y, target): scalar training objectives.
 *
 *   cross_entropy: logits [C] with a label (shape [], classes C: `target y : label[C]`),
 *                  or logits [seq, C] with a label per step (shape [seq], classes C:
 *                  `target y : label[seq, C]`).  Softmax + negative log-likelihood, the mean
 *                  over the batch (and over the steps).  Output: a scalar, shape [].
 *   mse:           y and target (f32) of the same shape; the mean over all elements.
 *
 * A label node's shape leaves out the class axis (its classes are Node.classes), so
 * label[seq, 4] is shape [seq] with classes 4.  No parameters.
 * FLOPs per row of logits: 8*C + 4 (log_softmax) + 2 (pick, accumulate); mse: 3 per element.
 */
#include <stdio.h>
#include <string.h>

#include "ops.h"

static const ArgSpec ce_args[] = {
    {.name = "logits", .type = ARG_TENSOR, .required = 1},
    {.name = "label", .type = ARG_TENSOR, .required = 1},
};

static const ArgSpec mse_args[] = {
    {.name = "y", .type = ARG_TENSOR, .required = 1},
    {.name = "target", .type = ARG_TENSOR, .required = 1},
};

/* The label as declared: "label[seq, 4]" (its shape plus the class axis). */
static char *label_type(char *buf, size_t size, const Graph *g, const Node *v) {
  Shape s = v->shape;
  if (s.rank < MAX_RANK) {
    s.d[s.rank].sym = 0;
    s.d[s.rank].n = v->classes;
    s.rank++;
  }
  char sb[160];
  snprintf(buf, size, "label%s", shape_str(sb, sizeof sb, s, g->sym));
  return buf;
}

static int scalar(Graph *g, Node *n) {
  Shape out = {.rank = 0};
  return op_set_shape(g, n, out);
}

static int ce_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  const Node *lab = &g->nodes[n->in[1]];
  const char *lname = lab->name ? lab->name : "the label";
  if (lab->dtype != DT_LABEL) {
    diag_error(n->loc, "cross_entropy expects class labels as its second argument; '%s' is %s",
               lname, lab->dtype == DT_F32 ? "f32 values" : "i32 token ids");
    if (lab->dtype == DT_F32)
      diag_note(lab->loc, "declare it as `target %s : label[C]`, or use mse(y, %s) for "
                "real-valued targets", lname, lname);
    else
      diag_note(lab->loc, "declare class targets as `target %s : label[C]`", lname);
    return -1;
  }
  Shape lg = in_shape(g, n, 0);
  char sb[160], lb[160];
  shape_str(sb, sizeof sb, lg, g->sym);
  label_type(lb, sizeof lb, g, lab);
  if (lg.rank != 1 && lg.rank != 2) {
    diag_error(n->loc, "cross_entropy expects logits [C] or [seq, C], got %s", sb);
    op_note_value(g, n->in[0]);
    return -1;
  }
  Dim c = lg.d[lg.rank - 1];
  if (c.sym) {
    diag_error(n->loc, "cross_entropy needs a fixed number of classes, got logits %s", sb);
    op_note_value(g, n->in[0]);
    return -1;
  }
  if (lab->shape.rank != lg.rank - 1) {
    if (lg.rank == 1)
      diag_error(n->loc, "cross_entropy: logits %s are one prediction per sample, but '%s' is "
                 "%s, a label per step", sb, lname, lb);
    else
      diag_error(n->loc, "cross_entropy: logits %s are a prediction per step, but '%s' is %s; "
                 "a label per step is label[seq, %lld]", sb, lname, lb, (long long)c.n);
    diag_note(lab->loc, "'%s' is declared here", lname);
    return -1;
  }
  if (lg.rank == 2 && !op_dim_equal(lg.d[0], lab->shape.d[0])) {
    diag_error(n->loc, "cross_entropy: logits %s and '%s' (%s) have different numbers of steps",
               sb, lname, lb);
    op_note_value(g, n->in[0]);
    diag_note(lab->loc, "'%s' is declared here", lname);
    return -1;
  }
  if (lab->classes != c.n) {
    diag_error(n->loc, "cross_entropy: logits %s give %lld classes, but '%s' is %s, with %lld "
               "classes", sb, (long long)c.n, lname, lb, (long long)lab->classes);
    op_note_value(g, n->in[0]);
    diag_note(lab->loc, "'%s' is declared here", lname);
    return -1;
  }
  return scalar(g, n);
}

static SymCount ce_flops(const Graph *g, const Node *n) {
  Shape lg = in_shape(g, n, 0);
  int64_t c = lg.d[lg.rank - 1].n;
  int64_t per_row = c > INT64_MAX / 16 ? INT64_MAX / 2 : 8 * c + 6;
  if (lg.rank == 1) return symcount_const(per_row);
  if (lg.d[0].sym) {
    SymCount r = {0, per_row};
    return r;
  }
  return symcount_scale(symcount_const(per_row), lg.d[0].n);
}

static int mse_infer(Graph *g, Node *n) {
  if (op_require_f32(g, n, 0)) return -1;
  const Node *t = &g->nodes[n->in[1]];
  const char *tname = t->name ? t->name : "the target";
  if (t->dtype != DT_F32) {
    char lb[160];
    if (t->dtype == DT_LABEL)
      diag_error(n->loc, "mse expects f32 targets; '%s' is %s, class labels", tname,
                 label_type(lb, sizeof lb, g, t));
    else
      diag_error(n->loc, "mse expects f32 targets; '%s' is i32 token ids", tname);
    diag_note(t->loc, "for class labels use cross_entropy(logits, %s)", tname);
    return -1;
  }
  Shape a = in_shape(g, n, 0), b = in_shape(g, n, 1);
  if (!shape_equal(a, b)) {
    char sa[160], sb[160];
    diag_error(n->loc, "mse: y is %s but '%s' is %s: shapes differ",
               shape_str(sa, sizeof sa, a, g->sym), tname, shape_str(sb, sizeof sb, b, g->sym));
    op_note_value(g, n->in[0]);
    op_note_value(g, n->in[1]);
    return -1;
  }
  return scalar(g, n);
}

static SymCount mse_flops(const Graph *g, const Node *n) {
  return symcount_scale(shape_numel(in_shape(g, n, 0)), 3);
}

const OpInfo op_cross_entropy = {
    .kind = OP_cross_entropy,
    .name = "cross_entropy",
    .doc = "cross_entropy(logits, label): logits [C] or [seq, C] with label[C] / label[seq, C] "
           "-> scalar",
    .args = ce_args,
    .nargs = 2,
    .infer = ce_infer,
    .flops = ce_flops,
    .lower = NULL,
};

const OpInfo op_mse = {
    .kind = OP_mse,
    .name = "mse",
    .doc = "mse(y, target): same shapes -> scalar, the mean squared error",
    .args = mse_args,
    .nargs = 2,
    .infer = mse_infer,
    .flops = mse_flops,
    .lower = NULL,
};
