/* ops.c - the op table and the helpers every shape rule shares.
 *
 * The table is built from ops.def (an X-macro) so OpKind, the spellings and
 * the descriptors in compiler/ops/<family>.c cannot drift apart.  User code
 * can call every op whose spelling does not start with '_' (op_lookup).
 *
 * Window arithmetic (conv / pool), PyTorch semantics, ceil_mode=False:
 *     out = floor((len - k + 2*pad) / stride) + 1
 * When the division is not exact, the last `rem = (len - k + 2*pad) % stride`
 * positions of the padded input are never read; those that are real input (not
 * padding: rem - pad of them, when positive) are reported in a warning, with
 * the arithmetic kept visible: "(224 - 11 + 2*0)/4 + 1 = 54.25".
 *
 * FLOP convention (ops' `flops` hooks, per sample, forward pass):
 *   - a multiply-add is 2; an add, multiply, compare, max or division is 1;
 *   - a transcendental (exp, log, tanh, sigmoid, pow) is 4;
 *   - moves (flatten, concat, last, embedding's gather, dropout at inference) are 0;
 *   - a count that grows with the symbolic length is SymCount.per_seq.
 *   All counts saturate at INT64_MAX instead of overflowing.
 */
#include "ops.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const OpInfo *const op_table[OP_COUNT] = {
#define OP(id, spelling, file) [OP_##id] = &op_##id,
#include "ops.def"
#undef OP
};

static const char *const op_spellings[OP_COUNT] = {
#define OP(id, spelling, file) [OP_##id] = spelling,
#include "ops.def"
#undef OP
};

const OpInfo *op_info(OpKind k) {
  if ((int)k < 0 || k >= OP_COUNT) die("op_info: bad OpKind %d", (int)k);
  const OpInfo *info = op_table[k];
  if (info->kind != k || strcmp(info->name, op_spellings[k]) != 0)
    die("op table out of sync with ops.def at %s", op_spellings[k]);
  return info;
}

const OpInfo *op_lookup(const char *name) {
  if (!name || name[0] == '_') return NULL;
  for (int k = 0; k < OP_COUNT; k++)
    if (!strcmp(op_spellings[k], name)) return op_table[k];
  return NULL;
}


const char *op_suggest(const char *name) {
  if (!name || !name[0]) return NULL;
  const char *best = NULL;
  int best_d = 3;
  size_t ln = strlen(name);
  for (int k = 0; k < OP_COUNT; k++) {
    const char *s = op_spellings[k];
    if (s[0] == '_' || !strcmp(s, name)) continue;
    int d = edit_distance(name, s, 2);
    /* "max" -> "maxpool2d", "conv" -> "conv1d": a prefix of at least 3 letters */
    if (d > 2 && ln >= 3 && !strncmp(s, name, ln)) d = 2;
    if (d < best_d) best_d = d, best = s;
  }
  return best;
}

int op_fuses_always(const Graph *g, const Node *n) {
  (void)g, (void)n;
  return 1;
}

Shape in_shape(const Graph *g, const Node *n, int i) {
  if (i < 0 || i >= n->nin) die("in_shape: %s has no input %d", n->name ? n->name : "?", i);
  return g->nodes[n->in[i]].shape;
}

int op_dim_equal(Dim a, Dim b) { return a.sym == b.sym && (a.sym || a.n == b.n); }

int op_concat_axis(int rank) { return rank == 2 ? 1 : 0; }

/* --- describing values in messages -------------------------------------------------------- */

static const char *dtype_desc(DType t) {
  switch (t) {
  case DT_F32: return "f32 values";
  case DT_I32: return "i32 token ids";
  case DT_LABEL: return "class labels";
  }
  return "?";
}

void op_note_value(const Graph *g, int id) {
  const Node *v = &g->nodes[id];
  char sb[160];
  shape_str(sb, sizeof sb, v->shape, g->sym);
  const char *name = v->name ? v->name : "the value";
  if (v->op == OP_input && v->dtype == DT_LABEL) {
    Shape t = v->shape; /* the class axis, as declared: label[seq, 4] */
    if (t.rank < MAX_RANK) t.d[t.rank++] = (Dim){.n = v->classes};
    shape_str(sb, sizeof sb, t, g->sym);
    diag_note(v->loc, "'%s' is declared here as label%s: class indices in [0, %lld)", name, sb,
              (long long)v->classes);
  } else if (v->op == OP_input)
    diag_note(v->loc, "'%s' is declared here with shape %s", name, sb);
  else
    diag_note(v->loc, "'%s' is %s, the result of %s", name, sb, op_spellings[v->op]);
}

int op_require_f32(Graph *g, const Node *n, int i) {
  const Node *v = &g->nodes[n->in[i]];
  if (v->dtype == DT_F32) return 0;
  const char *name = v->name ? v->name : "its input";
  if (v->dtype == DT_LABEL)
    diag_error(n->loc, "%s expects f32 values; '%s' holds %s (a training target)",
               op_spellings[n->op], name, dtype_desc(v->dtype));
  else
    diag_error(n->loc, "%s expects f32 values; '%s' is %s", op_spellings[n->op], name,
               dtype_desc(v->dtype));
  if (v->dtype == DT_I32) diag_note(v->loc, "token ids become vectors with embedding(ids, vocab, dim)");
  else op_note_value(g, n->in[i]);
  return -1;
}

int op_require_rank(Graph *g, const Node *n, int i, int rank, const char *layout) {
  Shape s = in_shape(g, n, i);
  if (s.rank == rank) return 0;
  char sb[160];
  shape_str(sb, sizeof sb, s, g->sym);
  diag_error(n->loc, "%s expects %s, got %s", op_spellings[n->op], layout, sb);
  op_note_value(g, n->in[i]);
  return -1;
}

int op_set_shape(Graph *g, Node *n, Shape s) {
  int64_t total = 1;
  for (int i = 0; i < s.rank; i++) {
    if (s.d[i].sym) continue;
    if (s.d[i].n < 1 || checked_mul(total, s.d[i].n, &total)) {
      char sb[160];
      shape_str(sb, sizeof sb, s, g->sym);
      diag_error(n->loc, "%s would give %s, which is %s", op_spellings[n->op], sb,
                 s.d[i].n < 1 ? "empty" : "too large");
      return -1;
    }
  }
  n->shape = s;
  n->dtype = DT_F32;
  n->classes = 0;
  return 0;
}

/* --- windows -------------------------------------------------------------------------------- */

/* "54.25" for num/den + plus (num >= 0, den >= 1); exact up to 4 decimals, else 2 decimals
 * and "...". */
static void fmt_ratio(char *buf, size_t size, int64_t num, int64_t den, int64_t plus) {
  int64_t q = num / den + plus, r = num % den;
  int w = snprintf(buf, size, "%lld", (long long)q);
  if (r == 0 || w < 0 || (size_t)w >= size) return;
  if (den > INT64_MAX / 10) {
    snprintf(buf, size, "%.6g...", (double)num / (double)den + (double)plus);
    return;
  }
  char dec[8];
  int nd = 0;
  while (r && nd < 4) {
    r *= 10;
    dec[nd++] = (char)('0' + r / den);
    r %= den;
  }
  if (r) nd = 2;
  dec[nd] = '\0';
  snprintf(buf + w, size - (size_t)w, ".%s%s", dec, r ? "..." : "");
}

static const char *axis_unit(const char *axis, int64_t count) {
  if (!strcmp(axis, "height")) return count == 1 ? "row" : "rows";
  if (!strcmp(axis, "width")) return count == 1 ? "column" : "columns";
  return count == 1 ? "element" : "elements";
}

static int is_pool(OpKind k) { return k == OP_maxpool2d || k == OP_avgpool2d; }

/* The window's arithmetic on one axis; all values checked against overflow by the caller. */
typedef struct WinCalc {
  int64_t padded;   /* len + 2*pad */
  int64_t out;      /* floor((padded - k)/stride) + 1 */
  int64_t rem;      /* (padded - k) % stride: trailing padded positions never read */
  int64_t unread;   /* of those, real input positions (not padding) */
  char expr[160];   /* "(224 - 11 + 2*0)/4 + 1 = 54.25" */
} WinCalc;

static void win_calc(int64_t len, int64_t k, int64_t stride, int64_t pad, WinCalc *w) {
  w->padded = len + 2 * pad;
  w->out = (w->padded - k) / stride + 1;
  w->rem = (w->padded - k) % stride;
  w->unread = w->rem > pad ? w->rem - pad : 0;
  char val[48];
  fmt_ratio(val, sizeof val, w->padded - k, stride, 1);
  snprintf(w->expr, sizeof w->expr, "(%lld - %lld + 2*%lld)/%lld + 1 = %s", (long long)len,
           (long long)k, (long long)pad, (long long)stride, val);
}

/* Checks and computes one axis; diagnoses an error, but never warns. */
static int window_check(Graph *g, const Node *n, const char *axis, Dim len, int64_t k,
                        int64_t stride, int64_t pad, WinCalc *w) {
  const char *op = op_spellings[n->op];
  const char *what = is_pool(n->op) ? "window size" : "kernel";
  if (len.sym) {
    diag_error(n->loc, "%s slides a window along the %s, which is the symbolic length '%s'",
               op, axis, g->sym ? g->sym : "?");
    diag_note(n->nin > 0 ? g->nodes[n->in[0]].loc : n->loc,
              "a window needs a fixed size; a symbolic length is only allowed as the time axis "
              "of a sequence [seq, K]");
    return -1;
  }
  int64_t twice, padded;
  if (k < 1 || stride < 1 || pad < 0 || checked_mul(pad, 2, &twice) ||
      checked_add(len.n, twice, &padded)) {
    diag_error(n->loc, "%s: kernel %lld, stride %lld and padding %lld are out of range", op,
               (long long)k, (long long)stride, (long long)pad);
    return -1;
  }
  if (k > padded) {
    if (pad)
      diag_error(n->loc, "%s %lld is larger than the padded %s %lld (%lld + 2*%lld)", what,
                 (long long)k, axis, (long long)padded, (long long)len.n, (long long)pad);
    else
      diag_error(n->loc, "%s %lld is larger than the %s %lld of the input", what, (long long)k,
                 axis, (long long)len.n);
    if (n->nin > 0) op_note_value(g, n->in[0]);
    return -1;
  }
  win_calc(len.n, k, stride, pad, w);
  return 0;
}

static void warn_floor(const Node *n, const char *axis, const WinCalc *w) {
  diag_warning(n->loc, "%s floors the %s: %s; the last %lld %s of the input %s never read",
               op_spellings[n->op], axis, w->expr, (long long)w->unread,
               axis_unit(axis, w->unread), w->unread == 1 ? "is" : "are");
}

int window_out(Graph *g, const Node *n, const char *axis_name, Dim len, int64_t k, int64_t stride,
               int64_t pad, Dim *out) {
  WinCalc w;
  if (window_check(g, n, axis_name, len, k, stride, pad, &w)) return -1;
  if (w.unread) warn_floor(n, axis_name, &w);
  out->sym = 0;
  out->n = w.out;
  return 0;
}

int window_out2d(Graph *g, const Node *n, Dim h, Dim w, int64_t k, int64_t stride, int64_t pad,
                 Dim *oh, Dim *ow) {
  WinCalc ch, cw;
  if (window_check(g, n, "height", h, k, stride, pad, &ch)) return -1;
  if (window_check(g, n, "width", w, k, stride, pad, &cw)) return -1;
  if (ch.unread && cw.unread && h.n == w.n) {
    diag_warning(n->loc,
                 "%s floors the height and width: %s; the last %lld %s and %lld %s of the input "
                 "are never read",
                 op_spellings[n->op], ch.expr, (long long)ch.unread, axis_unit("height", ch.unread),
                 (long long)cw.unread, axis_unit("width", cw.unread));
  } else {
    if (ch.unread) warn_floor(n, "height", &ch);
    if (cw.unread) warn_floor(n, "width", &cw);
  }
  oh->sym = ow->sym = 0;
  oh->n = ch.out;
  ow->n = cw.out;
  return 0;
}

/* --- explaining a shape after an annotation mismatch ----------------------------------------- */

static void explain_axis(const char *axis, Dim len, int64_t k, int64_t stride, int64_t pad) {
  Loc none = {0};
  if (len.sym || k < 1 || stride < 1 || pad < 0 || len.n > INT64_MAX / 4 || pad > INT64_MAX / 8 ||
      len.n + 2 * pad < k)
    return;
  WinCalc w;
  win_calc(len.n, k, stride, pad, &w);
  if (!w.rem)
    diag_note(none, "%s %s", axis, w.expr);
  else if (w.unread)
    diag_note(none, "%s %s, floored to %lld; the last %lld %s of the input %s never read", axis,
              w.expr, (long long)w.out, (long long)w.unread, axis_unit(axis, w.unread),
              w.unread == 1 ? "is" : "are");
  else
    diag_note(none, "%s %s, floored to %lld (only padding is left unread)", axis, w.expr,
              (long long)w.out);
}

void op_explain_shape(const Graph *g, const Node *n) {
  Loc none = {0};
  char sb[160], ob[160];
  if (n->nin < 1) return;
  Shape in = in_shape(g, n, 0);
  shape_str(sb, sizeof sb, in, g->sym);
  shape_str(ob, sizeof ob, n->shape, g->sym);
  const char *op = op_spellings[n->op];
  switch (n->op) {
  case OP_conv2d:
  case OP_maxpool2d:
  case OP_avgpool2d:
    if (in.rank != 3) return;
    if (n->op == OP_conv2d)
      diag_note(none, "%s on %s: %lld filters of %lldx%lld, stride %lld, padding %lld", op, sb,
                (long long)n->a.units, (long long)n->a.kernel, (long long)n->a.kernel,
                (long long)n->a.stride, (long long)n->a.pad);
    else
      diag_note(none, "%s on %s: window %lldx%lld, stride %lld, padding %lld; channels kept", op,
                sb, (long long)n->a.kernel, (long long)n->a.kernel, (long long)n->a.stride,
                (long long)n->a.pad);
    explain_axis("height", in.d[1], n->a.kernel, n->a.stride, n->a.pad);
    explain_axis("width", in.d[2], n->a.kernel, n->a.stride, n->a.pad);
    break;
  case OP_conv1d:
    if (in.rank != 2) return;
    diag_note(none, "%s on %s: %lld filters of %lld, stride %lld, padding %lld", op, sb,
              (long long)n->a.units, (long long)n->a.kernel, (long long)n->a.stride,
              (long long)n->a.pad);
    explain_axis("length", in.d[1], n->a.kernel, n->a.stride, n->a.pad);
    break;
  case OP_global_avgpool:
    diag_note(none, "global_avgpool averages each channel of %s over all positions: %s", sb, ob);
    break;
  case OP_dense:
    diag_note(none, "dense(%lld) on %s gives %s%s", (long long)n->a.units, sb, ob,
              in.rank == 2 ? " (applied at every step)" : "");
    break;
  case OP_flatten: {
    char expr[200] = "";
    size_t len = 0;
    for (int i = 0; i < in.rank && len < sizeof expr - 24; i++)
      len += (size_t)snprintf(expr + len, sizeof expr - len, "%s%lld", i ? "*" : "",
                              (long long)in.d[i].n);
    diag_note(none, "flatten on %s: %s = %lld", sb, expr, (long long)n->shape.d[0].n);
    break;
  }
  case OP_rnn:
  case OP_lstm:
  case OP_gru:
    if (n->a.bidirectional)
      diag_note(none, "bidirectional %s on %s: forward and backward halves of %lld units each: %s",
                op, sb, (long long)n->a.units, ob);
    else
      diag_note(none, "%s(%lld) on %s gives all hidden states: %s", op, (long long)n->a.units, sb,
                ob);
    break;
  case OP_embedding:
    diag_note(none, "embedding(ids, %lld, %lld) on %s gives a %lld-vector per id: %s",
              (long long)n->a.vocab, (long long)n->a.units, sb, (long long)n->a.units, ob);
    break;
  case OP_last:
    diag_note(none, "last keeps the final step of %s: %s", sb, ob);
    break;
  case OP_concat: {
    int axis = op_concat_axis(in.rank);
    char expr[200] = "";
    size_t len = 0;
    for (int i = 0; i < n->nin && len < sizeof expr - 24; i++) {
      Shape s = in_shape(g, n, i);
      if (axis < s.rank)
        len += (size_t)snprintf(expr + len, sizeof expr - len, "%s%lld", i ? " + " : "",
                                (long long)s.d[axis].n);
    }
    diag_note(none, "concat joins %d values along axis %d (%s): %s, giving %s", n->nin, axis,
              in.rank == 3 ? "channels" : in.rank == 2 ? "features" : "elements", expr, ob);
    break;
  }
  default:
    break;
  }
}

/* --- saturating counts ------------------------------------------------------------------------ */

static int64_t sat_mul(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0) return 0;
  return checked_mul(a, b, &r) ? INT64_MAX : r;
}

static int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  return checked_add(a, b, &r) ? INT64_MAX : r;
}

SymCount symcount_scale(SymCount c, int64_t k) {
  SymCount r = {sat_mul(c.fixed, k), sat_mul(c.per_seq, k)};
  return r;
}

SymCount symcount_add(SymCount a, SymCount b) {
  SymCount r = {sat_add(a.fixed, b.fixed), sat_add(a.per_seq, b.per_seq)};
  return r;
}

SymCount symcount_const(int64_t k) {
  SymCount r = {k, 0};
  return r;
}
