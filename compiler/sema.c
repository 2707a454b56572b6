/* sema.c - semantic analysis: one model's AST becomes the checked graph IR.
 *
 *   sema_build
 *     collect      top level: blocks, models, train blocks; duplicates; block structure
 *     train        the model's `train` block -> Graph.train (every train block is checked)
 *     model        statements in order: inputs/targets -> OP_input nodes; bindings are
 *                  evaluated into nodes; outputs, loss, annotations
 *
 * Evaluation.  An expression evaluates to a Value: a tensor (a node id), an
 * integer, a float, a bool, or an activation named by its op (`relu` when no
 * binding of that name is visible).  An error yields a POISON value, which every
 * consumer passes on silently, so one mistake gives one diagnostic.
 *
 * Scopes.  A model is one scope; each block instance is a fresh scope holding
 * its formals (bound to the caller's values) and its own bindings; a block sees
 * nothing of the model.  Each scope is pre-scanned so a name used before its
 * binding gets "used before it is defined" rather than "unknown name".
 *
 * Parameter naming (docs/language.md, "Parameter names").  Every expression is evaluated
 * under a `prefix`, the name its single parametric call would get:
 *   - a binding `h = E` evaluates E under "h" (a block-local binding under
 *     "<call prefix>.h"; a block's `return E` under the call prefix itself);
 *   - outside a pipe, E may hold at most one parametric unit (a call of a
 *     parametric op, a call of a block that has parameters, a nested pipe with
 *     parameters); it gets the prefix itself;
 *   - in a pipe each stage i is evaluated as a binding named "<prefix>.i"; a
 *     plain name at the head is not a stage, anything else at the head is
 *     stage 0.
 * The same prefix gives the display name (Node.name): the final node of a
 * binding is named after it ("conv1", "y.a"), a pipe stage's node "<prefix>.i"
 * ("h1.0"), and any other node "<prefix>/<op>" ("f6/tanh").
 *
 * Block calls are inlined; the chain of calls being expanded is kept to report
 * recursion.  Shape rules (compiler/ops/) run as each node is created.
 */
#include "sema.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#include "hints.h"
#include "ops.h"

enum {
  MAX_DEPTH = 64,       /* nested block calls (more means recursion, which is diagnosed) */
  MAX_NODES = 100000,   /* operations after inlining (real networks have hundreds) */
  MAX_EXPANSIONS = 300000,  /* block calls expanded: bounds the work even when errors keep
                             * the expansions from creating operations */
};

typedef enum ValKind {
  V_POISON,  /* an error was reported; consumers stay silent */
  V_TENSOR,  /* a graph value: node */
  V_INT,     /* i (and f) */
  V_FLOAT,   /* f */
  V_BOOL,    /* i: 0 or 1 */
  V_ACT,     /* an op named as a value: act */
} ValKind;

typedef struct Value {
  ValKind kind;
  int node;          /* V_TENSOR */
  int64_t i;         /* V_INT, V_BOOL */
  double f;          /* V_FLOAT, V_INT */
  OpKind act;        /* V_ACT */
  const char *text;  /* as written: the literal, or the name it was read through */
  Loc loc;           /* the expression that produced it */
} Value;

typedef struct Binding {
  const char *name;
  Loc loc;           /* the defining name (first definition) */
  Value v;
  int defined;       /* 0: bound by a later statement of the scope */
  int is_formal;     /* a block's parameter */
} Binding;

typedef struct Scope {
  Binding *b;
  int n;
  const Decl *block; /* NULL: the model */
} Scope;

typedef struct BlockInfo {
  const Decl *d;
  int valid;         /* its structure is fine (one final return, no declarations) */
  int param_state;   /* 0 unknown, 1 being computed, 2 known */
  int parametric;    /* some call inside has parameters */
} BlockInfo;

/* An argument of a call, as written (or the value piped into it). */
typedef struct CallArg {
  const Expr *expr;  /* NULL: the piped value */
  const char *name;  /* keyword, or NULL */
  Loc loc;           /* the whole argument */
  Loc name_loc;
  Value val;
} CallArg;

typedef struct Sema {
  const Program *prog;
  Arena *tmp;                     /* scopes, argument lists: freed at the end */
  Graph *g;
  const Decl **models; int nmodels;
  const Decl **trains; int ntrains;
  BlockInfo *blocks; int nblocks;
  const Decl *model;
  Scope *scope;                   /* the current scope */
  Scope *model_scope;
  const Decl *stack[MAX_DEPTH];   /* the block calls being expanded */
  Loc stack_loc[MAX_DEPTH];
  int depth;
  const Stmt *cur_stmt;           /* the statement being evaluated */
  Loc sym_loc;                    /* where Graph.sym was declared */
  int too_big;                    /* MAX_NODES or MAX_EXPANSIONS was reported */
  int expansions;                 /* block calls expanded so far */
} Sema;

static Value eval_expr(Sema *s, const Expr *e, const char *prefix);
static Value eval_named(Sema *s, const Expr *e, const char *prefix);
static Value eval_call(Sema *s, const Expr *e, const Value *piped, const char *prefix);

/* --- small helpers ------------------------------------------------------------------------ */

static const Loc no_loc;

static Value poison(void) {
  Value v;
  memset(&v, 0, sizeof v);
  v.kind = V_POISON;
  return v;
}


/* The closest candidate within a third of the name's length (at least 1, at most 2). */
static const char *closest(const char *name, const char *const *cands, int n) {
  size_t len = strlen(name);
  int cap = len <= 3 ? 1 : 2;
  const char *best = NULL;
  int best_d = cap + 1;
  for (int i = 0; i < n; i++) {
    if (!cands[i] || !strcmp(cands[i], name)) continue;
    int d = edit_distance(name, cands[i], cap);
    if (d < best_d) best_d = d, best = cands[i];
  }
  return best;
}

static void note_did_you_mean(const char *suggestion) {
  if (suggestion) diag_note(no_loc, "did you mean '%s'?", suggestion);
}

/* Where a value "is" for messages about it: a call's name, a pipe's last stage. */
static Loc anchor(const Expr *e) {
  while (e->kind == EX_PIPE && e->nstages > 0) e = e->stages[e->nstages - 1];
  if (e->kind == EX_CALL && e->name_loc.file) return e->name_loc;
  return e->loc;
}

static Loc name_loc_of(const Expr *e) { return e->name_loc.file ? e->name_loc : e->loc; }

static const char *describe(Sema *s, Value v) {
  switch (v.kind) {
  case V_TENSOR:
    return v.text ? arena_printf(s->tmp, "the tensor '%s'", v.text) : "a tensor";
  case V_INT:
    return arena_printf(s->tmp, "the integer %s", v.text ? v.text : "");
  case V_FLOAT:
    return arena_printf(s->tmp, "the number %s", v.text ? v.text : "");
  case V_BOOL:
    return v.i ? "true" : "false";
  case V_ACT:
    return arena_printf(s->tmp, "the operation '%s'", op_info(v.act)->name);
  case V_POISON:
    return "an erroneous value";
  }
  return "?";
}

static char *fmt_num(char *buf, size_t size, double x) {
  snprintf(buf, size, "%g", x);
  return buf;
}

static BlockInfo *find_block(Sema *s, const char *name) {
  for (int i = 0; i < s->nblocks; i++)
    if (!strcmp(s->blocks[i].d->name, name)) return &s->blocks[i];
  return NULL;
}

static const Decl *find_model(Sema *s, const char *name) {
  for (int i = 0; i < s->nmodels; i++)
    if (!strcmp(s->models[i]->name, name)) return s->models[i];
  return NULL;
}

static int has_layer_arg(const OpInfo *op) {
  for (int i = 0; i < op->nargs; i++)
    if (op->args[i].type == ARG_LAYER) return 1;
  return 0;
}

static int is_recurrent(OpKind k) { return k == OP_rnn || k == OP_lstm || k == OP_gru; }

static const char *stage_prefix(Sema *s, const char *prefix, int i) {
  return arena_printf(s->g->arena, "%s.%d", prefix, i);
}

/* --- scopes ------------------------------------------------------------------------------- */

static Binding *scope_find(Scope *sc, const char *name) {
  if (!sc) return NULL;
  for (int i = 0; i < sc->n; i++)
    if (!strcmp(sc->b[i].name, name)) return &sc->b[i];
  return NULL;
}

/* Registers a name the scope will bind (first occurrence wins). */
static Binding *scope_declare(Sema *s, Scope *sc, const char *name, Loc loc) {
  Binding *b = scope_find(sc, name);
  if (b) return b;
  b = arena_push(s->tmp, &sc->b, &sc->n, sizeof *b);
  b->name = name;
  b->loc = loc;
  b->v = poison();
  return b;
}

static void scope_prescan(Sema *s, Scope *sc, const Stmt *body, int n) {
  for (int i = 0; i < n; i++)
    if (body[i].kind != ST_RETURN && body[i].name) scope_declare(s, sc, body[i].name, body[i].name_loc);
}

/* Binds the name of statement st to v; a second definition is an error. */
static void scope_define(Sema *s, const Stmt *st, Value v) {
  Binding *b = scope_declare(s, s->scope, st->name, st->name_loc);
  if (b->defined) {
    if (b->is_formal)
      diag_error(st->name_loc, "'%s' is already a parameter of block '%s'", st->name,
                 s->scope->block ? s->scope->block->name : "?");
    else
      diag_error(st->name_loc, "redefinition of '%s'", st->name);
    diag_note(b->loc, "'%s' was first defined here", st->name);
    b->v = poison(); /* later uses stay silent: which definition was meant is unclear */
    return;
  }
  b->defined = 1;
  b->v = v;
}

static const char **scope_names(Sema *s, Scope *sc) {
  const char **names = arena_alloc(s->tmp, (size_t)(sc->n + 1) * sizeof *names);
  for (int i = 0; i < sc->n; i++) names[i] = sc->b[i].name;
  return names;
}

/* --- names -------------------------------------------------------------------------------- */

/* name: a binding visible here, else an op named as a value (an activation) */
static Value lookup_name(Sema *s, const Expr *e) {
  Binding *b = scope_find(s->scope, e->name);
  if (b && b->defined) {
    Value v = b->v;
    v.loc = e->loc;
    if (v.kind == V_TENSOR || v.kind == V_ACT) v.text = e->name;
    return v;
  }
  if (b) {
    const Stmt *st = s->cur_stmt;
    if (st && st->name && !strcmp(st->name, e->name) && st->name_loc.line == b->loc.line &&
        st->name_loc.col == b->loc.col) {
      diag_error(e->loc, "'%s' is used in its own definition", e->name);
    } else {
      diag_error(e->loc, "'%s' is used before it is defined", e->name);
      diag_note(b->loc, "'%s' is defined here", e->name);
    }
    return poison();
  }
  const OpInfo *op = op_lookup(e->name);
  if (op) {
    Value v;
    memset(&v, 0, sizeof v);
    v.kind = V_ACT;
    v.act = op->kind;
    v.text = e->name;
    v.loc = e->loc;
    return v;
  }
  if (find_block(s, e->name)) {
    diag_error(e->loc, "'%s' is a block, not a value; call it: %s(...)", e->name, e->name);
    return poison();
  }
  diag_error(e->loc, "unknown name '%s'", e->name);
  const char *sugg = closest(e->name, scope_names(s, s->scope), s->scope->n);
  note_did_you_mean(sugg);
  if (!sugg && s->scope != s->model_scope && scope_find(s->model_scope, e->name))
    diag_note(no_loc, "a block sees only its parameters and its own bindings; pass '%s' in as an "
              "argument", e->name);
  return poison();
}

/* --- the single-call rule ----------------------------------------------------------------- */

typedef struct Units {
  int n;
  const Expr *first, *second;
} Units;

static int block_parametric(Sema *s, BlockInfo *bi);
static void count_units(Sema *s, const Expr *e, Units *u);

static void add_unit(Units *u, const Expr *e) {
  if (u->n == 0) u->first = e;
  else if (u->n == 1) u->second = e;
  u->n++;
}

static int callee_parametric(Sema *s, const char *name) {
  const OpInfo *op = op_lookup(name);
  if (op) return op->parametric || has_layer_arg(op);
  BlockInfo *bi = find_block(s, name);
  return bi ? block_parametric(s, bi) : 0;
}

/* A call (or a bare name used as a pipe stage): itself, then its arguments. */
static void count_call(Sema *s, const Expr *e, Units *u) {
  if (callee_parametric(s, e->name)) add_unit(u, e);
  if (e->kind != EX_CALL) return;
  const OpInfo *op = op_lookup(e->name);
  int layered = op && has_layer_arg(op);
  for (int i = 0; i < e->nargs; i++) {
    const Expr *a = e->args[i].value;
    if (layered && a->kind == EX_CALL) {
      for (int k = 0; k < a->nargs; k++) count_units(s, a->args[k].value, u);
    } else {
      count_units(s, a, u);
    }
  }
}

static int pipe_parametric(Sema *s, const Expr *e) {
  Units t = {0};
  count_units(s, e->stages[0], &t);
  for (int i = 1; i < e->nstages; i++)
    if (e->stages[i]->kind == EX_CALL || e->stages[i]->kind == EX_NAME) count_call(s, e->stages[i], &t);
  return t.n > 0;
}

static void count_units(Sema *s, const Expr *e, Units *u) {
  switch (e->kind) {
  case EX_CALL: count_call(s, e, u); break;
  case EX_PIPE:
    if (pipe_parametric(s, e)) add_unit(u, e);
    break;
  case EX_ADD:
  case EX_MUL:
    count_units(s, e->lhs, u);
    count_units(s, e->rhs, u);
    break;
  default: break;
  }
}

static int block_parametric(Sema *s, BlockInfo *bi) {
  if (bi->param_state == 2) return bi->parametric;
  if (bi->param_state == 1) return 0; /* recursion: diagnosed when called */
  bi->param_state = 1;
  Units u = {0};
  for (int i = 0; i < bi->d->nbody; i++) {
    const Expr *v = bi->d->body[i].value;
    if (!v) continue;
    if (v->kind == EX_PIPE) {
      if (pipe_parametric(s, v)) add_unit(&u, v);
    } else {
      count_units(s, v, &u);
    }
  }
  bi->parametric = u.n > 0;
  bi->param_state = 2;
  return bi->parametric;
}

static const char *unit_desc(Sema *s, const Expr *e) {
  if (e->kind == EX_PIPE) return "a pipe";
  return arena_printf(s->tmp, "%s(...)", e->name);
}

/* Checks that e (a binding's expression outside a pipe, or one pipe stage) holds at most
 * one parametric unit; `stage` says e is a pipe stage (counted as a call). */
static void check_single(Sema *s, const Expr *e, const char *prefix, int stage) {
  Units u = {0};
  if (stage) count_call(s, e, &u);
  else count_units(s, e, &u);
  if (u.n < 2) return;
  diag_error(anchor(u.second),
             "'%s' holds two calls with parameters, %s and %s; both would be named '%s'",
             prefix, unit_desc(s, u.first), unit_desc(s, u.second), prefix);
  diag_note(anchor(u.first), "the first is here");
  diag_note(no_loc,
            "write them as a pipe (%s = x |> %s(...) |> %s(...)), whose stages are numbered "
            "%s.0, %s.1, ..., or give each call its own binding",
            prefix, u.first->kind == EX_PIPE ? "f" : u.first->name,
            u.second->kind == EX_PIPE ? "g" : u.second->name, prefix, prefix);
}

/* --- calls: binding arguments to an op's schema ------------------------------------------- */

/* The arguments as written, with the piped value (if any) first. */
static CallArg *call_args(Sema *s, const Expr *e, const Value *piped, int *n) {
  int nargs = (e->kind == EX_CALL ? e->nargs : 0) + (piped ? 1 : 0);
  CallArg *args = arena_alloc(s->tmp, (size_t)(nargs + 1) * sizeof *args);
  int k = 0;
  if (piped) {
    args[k].val = *piped;
    args[k].loc = piped->loc;
    k++;
  }
  for (int i = 0; e->kind == EX_CALL && i < e->nargs; i++, k++) {
    const Arg *a = &e->args[i];
    args[k].expr = a->value;
    args[k].name = a->name;
    args[k].name_loc = a->name_loc;
    args[k].loc = a->name ? loc_span(a->name_loc, a->value->loc) : a->value->loc;
  }
  *n = nargs;
  return args;
}

static void eval_args(Sema *s, CallArg *args, int n, const char *prefix) {
  for (int i = 0; i < n; i++)
    if (args[i].expr) args[i].val = eval_expr(s, args[i].expr, prefix);
}

/* "conv2d(x, filters, kernel, stride=1, pad=0, bias=true)" */
static const char *signature(Sema *s, const OpInfo *op) {
  char buf[512];
  size_t len = 0;
  len += (size_t)snprintf(buf, sizeof buf, "%s(", op->name);
  for (int i = 0; i < op->nargs && len < sizeof buf - 64; i++) {
    const ArgSpec *a = &op->args[i];
    len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? ", " : "", a->name);
    if (a->required || a->type == ARG_TENSOR || a->type == ARG_LAYER) continue;
    char num[32];
    switch (a->type) {
    case ARG_BOOL: len += (size_t)snprintf(buf + len, sizeof buf - len, "=%s", a->dflt ? "true" : "false"); break;
    case ARG_ACT:
      len += (size_t)snprintf(buf + len, sizeof buf - len, "=%s",
                              a->dflt >= 0 && a->dflt < OP_COUNT ? op_info((OpKind)a->dflt)->name : "?");
      break;
    default:
      if (op->kind == OP_maxpool2d || op->kind == OP_avgpool2d) {
        if (!strcmp(a->name, "stride") && a->dflt == 0) {
          len += (size_t)snprintf(buf + len, sizeof buf - len, "=%s", op->args[1].name);
          break;
        }
      }
      len += (size_t)snprintf(buf + len, sizeof buf - len, "=%s", fmt_num(num, sizeof num, a->dflt));
      break;
    }
  }
  if (op->variadic) len += (size_t)snprintf(buf + len, sizeof buf - len, ", ...");
  snprintf(buf + len, sizeof buf - len, ")");
  return arena_strdup(s->tmp, buf);
}

static const char *arg_names(Sema *s, const OpInfo *op) {
  char buf[256];
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < op->nargs && len < sizeof buf - 40; i++)
    len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? ", " : "", op->args[i].name);
  return arena_strdup(s->tmp, buf);
}

/* The value range of a numeric argument, checked; returns 0 when accepted. */
static int check_range(Sema *s, const OpInfo *op, const ArgSpec *spec, const CallArg *a) {
  double x = a->val.kind == V_INT ? (double)a->val.i : a->val.f;
  const char *got = a->val.text ? a->val.text : "?";
  if (!isfinite(x)) {
    diag_error(a->loc, "%s: %s must be a finite number, got %s", op->name, spec->name, got);
    return -1;
  }
  int has_max = !(spec->max == 0 && spec->min == 0) && spec->max < 1e17;
  int has_min = spec->min > -1e17;
  int bad = x < spec->min || (has_max && (x > spec->max || (spec->max_exclusive && x >= spec->max)));
  if (!bad) return 0;
  char lo[32], hi[32];
  fmt_num(lo, sizeof lo, spec->min);
  fmt_num(hi, sizeof hi, spec->max);
  if (has_max && has_min)
    diag_error(a->loc, "%s: %s must be in [%s, %s%s, got %s", op->name, spec->name, lo, hi,
               spec->max_exclusive ? ")" : "]", got);
  else if (has_max)
    diag_error(a->loc, "%s: %s must be %s %s, got %s", op->name, spec->name,
               spec->max_exclusive ? "less than" : "at most", hi, got);
  else
    diag_error(a->loc, "%s: %s must be at least %s, got %s", op->name, spec->name, lo, got);
  return -1;
}

/* Type (and range) of one argument against its schema slot; returns 0 when accepted. */
static int check_arg(Sema *s, const OpInfo *op, const ArgSpec *spec, const CallArg *a) {
  Value v = a->val;
  if (v.kind == V_POISON) return -1;
  switch (spec->type) {
  case ARG_TENSOR:
    if (v.kind == V_TENSOR) return 0;
    diag_error(a->loc, "%s: %s must be a tensor, got %s", op->name, spec->name, describe(s, v));
    if (v.kind == V_ACT) diag_note(no_loc, "to apply %s, call it: %s(x) or x |> %s",
                                   op_info(v.act)->name, op_info(v.act)->name, op_info(v.act)->name);
    return -1;
  case ARG_INT:
    if (v.kind == V_INT) return check_range(s, op, spec, a);
    diag_error(a->loc, "%s: %s must be an integer, got %s", op->name, spec->name, describe(s, v));
    return -1;
  case ARG_FLOAT:
    if (v.kind == V_INT || v.kind == V_FLOAT) return check_range(s, op, spec, a);
    diag_error(a->loc, "%s: %s must be a number, got %s", op->name, spec->name, describe(s, v));
    return -1;
  case ARG_BOOL:
    if (v.kind == V_BOOL) return 0;
    diag_error(a->loc, "%s: %s must be true or false, got %s", op->name, spec->name, describe(s, v));
    return -1;
  case ARG_ACT:
    if (v.kind == V_ACT) return 0;
    diag_error(a->loc, "%s: %s must name an activation such as tanh or relu, got %s", op->name,
               spec->name, describe(s, v));
    return -1;
  case ARG_LAYER:
    diag_error(a->loc, "%s: %s must be a call of rnn, lstm or gru", op->name, spec->name);
    return -1;
  }
  return -1;
}

static int node_budget(Sema *s, Loc loc) {
  if (s->g->nnodes < MAX_NODES) return 0;
  if (!s->too_big)
    diag_error(loc, "the model has more than %d operations after inlining its blocks", MAX_NODES);
  s->too_big = 1;
  return -1;
}

/* Creates the node once its arguments are bound, runs its shape rule and declares its
 * parameters.  given[k] is the argument of schema slot k (NULL: defaulted). */
static Value make_node(Sema *s, const OpInfo *op, Loc loc, CallArg **given, int nslots,
                       const int *ins, int nin, const char *prefix, int bidir) {
  if (node_budget(s, loc)) return poison();
  Graph *g = s->g;
  int id = graph_add_node(g, op->kind, ins, nin, loc);
  Node *n = &g->nodes[id];
  char *attrs = (char *)&n->a;
  for (int k = 0; k < nslots && !op->variadic; k++) {
    const ArgSpec *spec = &op->args[k];
    const CallArg *a = given[k];
    if (a) n->arg_loc[k] = a->loc;
    switch (spec->type) {
    case ARG_INT: {
      int64_t v = a ? a->val.i : (int64_t)spec->dflt;
      memcpy(attrs + spec->offset, &v, sizeof v);
      break;
    }
    case ARG_FLOAT: {
      double v = a ? (a->val.kind == V_INT ? (double)a->val.i : a->val.f) : spec->dflt;
      memcpy(attrs + spec->offset, &v, sizeof v);
      break;
    }
    case ARG_BOOL: {
      int v = a ? (int)a->val.i : spec->dflt != 0;
      memcpy(attrs + spec->offset, &v, sizeof v);
      break;
    }
    case ARG_ACT: {
      OpKind v = a ? a->val.act : (OpKind)(int)spec->dflt;
      memcpy(attrs + spec->offset, &v, sizeof v);
      break;
    }
    default: break;
    }
  }
  if (op->variadic)
    for (int k = 0; k < nin && k < MAX_OP_ARGS; k++) n->arg_loc[k] = given[k] ? given[k]->loc : no_loc;
  n->name = arena_printf(g->arena, "%s/%s", prefix, op->name);
  n->param_prefix = op->parametric ? arena_strdup(g->arena, prefix) : NULL;
  if (is_recurrent(op->kind)) {
    n->a.cell = op->kind == OP_lstm ? CELL_LSTM : op->kind == OP_gru ? CELL_GRU : CELL_RNN;
    n->a.bidirectional = bidir;
  }
  if (!op->infer) die("op %s has no shape rule", op->name);
  if (op->infer(g, n) != 0) return poison();
  if (op->parametric && op->params) op->params(g, &g->nodes[id]);
  Value v;
  memset(&v, 0, sizeof v);
  v.kind = V_TENSOR;
  v.node = id;
  return v;
}

/* concat(a, b, ...): tensors only */
static Value eval_variadic(Sema *s, const OpInfo *op, const Expr *e, CallArg *args, int nargs,
                           const char *prefix) {
  int ok = 1;
  eval_args(s, args, nargs, prefix);
  int *ins = arena_alloc(s->tmp, (size_t)(nargs + 1) * sizeof *ins);
  CallArg **given = arena_alloc(s->tmp, (size_t)(nargs + 1) * sizeof *given);
  int nin = 0;
  for (int i = 0; i < nargs; i++) {
    CallArg *a = &args[i];
    if (a->name) {
      diag_error(a->name_loc, "%s takes only tensors, no named arguments ('%s')", op->name, a->name);
      ok = 0;
      continue;
    }
    if (a->val.kind == V_POISON) {
      ok = 0;
      continue;
    }
    if (a->val.kind != V_TENSOR) {
      diag_error(a->loc, "%s: every argument must be a tensor, got %s", op->name, describe(s, a->val));
      ok = 0;
      continue;
    }
    given[nin] = a;
    ins[nin++] = a->val.node;
  }
  if (nargs == 0) {
    diag_error(e->kind == EX_CALL ? e->rparen_loc : e->loc, "%s needs at least one tensor", op->name);
    ok = 0;
  }
  if (!ok) return poison();
  return make_node(s, op, name_loc_of(e), given, nin, ins, nin, prefix, 0);
}

/* op(args): binds positional then named arguments to the schema, checks them, creates the node */
static Value eval_op(Sema *s, const OpInfo *op, const Expr *e, CallArg *args, int nargs,
                     const char *prefix, int bidir, int piped) {
  if (op->variadic) return eval_variadic(s, op, e, args, nargs, prefix);
  if (op->nargs > MAX_OP_ARGS) die("op %s has %d arguments", op->name, op->nargs);
  CallArg *given[MAX_OP_ARGS] = {0};
  int ok = 1, seen_named = 0, npos = 0, too_many = 0;
  int total_pos = 0;
  for (int i = 0; i < nargs; i++)
    if (!args[i].name) total_pos++;
  for (int i = 0; i < nargs; i++) {
    CallArg *a = &args[i];
    int slot = -1;
    if (!a->name) {
      if (seen_named) {
        diag_error(a->loc, "a positional argument cannot follow named arguments");
        ok = 0;
        continue;
      }
      if (npos >= op->nargs) {
        if (!too_many) {
          diag_error(a->loc, "%s takes at most %d argument%s (%s), got %d", op->name, op->nargs,
                     op->nargs == 1 ? "" : "s", arg_names(s, op), total_pos);
          if (piped) diag_note(no_loc, "the value piped in with |> is the first argument");
        }
        too_many = 1;
        ok = 0;
        continue;
      }
      slot = npos++;
    } else {
      seen_named = 1;
      for (int k = 0; k < op->nargs; k++)
        if (!strcmp(op->args[k].name, a->name)) slot = k;
      if (slot < 0) {
        diag_error(a->name_loc, "%s has no argument '%s'", op->name, a->name);
        const char **names = arena_alloc(s->tmp, (size_t)(op->nargs + 1) * sizeof *names);
        for (int k = 0; k < op->nargs; k++) names[k] = op->args[k].name;
        const char *alias = hint_kwarg_alias(a->name, names, op->nargs);   /* PyTorch's name */
        const char *sugg = alias ? alias : closest(a->name, names, op->nargs);
        if (!strcmp(a->name, "bidirectional") &&
            (!strcmp(op->name, "rnn") || !strcmp(op->name, "lstm") || !strcmp(op->name, "gru")))
          diag_note(no_loc, "did you mean bidirectional(%s(...))? wrap the layer: "
                    "bidirectional(%s(x, 64)) or x |> bidirectional(%s(64))", op->name, op->name, op->name);
        else if (alias)
          diag_note(no_loc, "did you mean '%s'? (PyTorch's %s= is %s= here; %s)", alias, a->name,
                    alias, signature(s, op));
        else if (sugg) note_did_you_mean(sugg);
        else diag_note(no_loc, "%s", signature(s, op));
        ok = 0;
        continue;
      }
      if (given[slot]) {
        diag_error(a->loc, "%s: argument '%s' is given twice", op->name, a->name);
        diag_note(given[slot]->loc, "first given here%s", given[slot]->name ? "" : " (by position)");
        ok = 0;
        continue;
      }
    }
    given[slot] = a;
  }
  eval_args(s, args, nargs, prefix);
  for (int k = 0; k < op->nargs && ok; k++) { /* after a binding error, a "missing" one is noise */
    if (given[k] || !op->args[k].required) continue;
    diag_error(e->kind == EX_CALL ? e->rparen_loc : e->loc, "%s needs the argument '%s'", op->name,
               op->args[k].name);
    diag_note(no_loc, "%s", signature(s, op));
    ok = 0;
  }
  int ins[MAX_OP_ARGS], nin = 0;
  for (int k = 0; k < op->nargs; k++) {
    if (!given[k]) continue;
    if (check_arg(s, op, &op->args[k], given[k])) ok = 0;
    else if (op->args[k].type == ARG_TENSOR) ins[nin++] = given[k]->val.node;
  }
  if (!ok) return poison();
  return make_node(s, op, name_loc_of(e), given, op->nargs, ins, nin, prefix, bidir);
}

/* bidirectional(rnn/lstm/gru(...)): the wrapped call becomes the node, with a.bidirectional */
static Value eval_bidirectional(Sema *s, const OpInfo *op, const Expr *e, const Value *piped,
                                const char *prefix) {
  const char *layer_name = "layer";
  for (int i = 0; i < op->nargs; i++)
    if (op->args[i].type == ARG_LAYER) layer_name = op->args[i].name;
  const Expr *layer = NULL;
  int ok = 1;
  for (int i = 0; e->kind == EX_CALL && i < e->nargs; i++) {
    const Arg *a = &e->args[i];
    if (!layer && (!a->name || !strcmp(a->name, layer_name))) {
      layer = a->value;
    } else {
      diag_error(a->name ? a->name_loc : a->value->loc,
                 "bidirectional takes one argument, the recurrent layer: bidirectional(gru(x, 64))");
      ok = 0;
    }
  }
  if (!layer) {
    diag_error(e->kind == EX_CALL ? e->rparen_loc : e->loc,
               "bidirectional needs a recurrent layer: bidirectional(gru(x, 64))");
    return poison();
  }
  const OpInfo *inner = layer->kind == EX_CALL ? op_lookup(layer->name) : NULL;
  if (!inner || !is_recurrent(inner->kind)) {
    diag_error(layer->loc, "bidirectional wraps a call of rnn, lstm or gru");
    if (layer->kind == EX_NAME || (layer->kind == EX_CALL && !inner))
      diag_note(no_loc, "write the layer inside: bidirectional(gru(x, 64)) or x |> bidirectional(gru(64))");
    return poison();
  }
  if (!ok) return poison();
  int nargs;
  CallArg *args = call_args(s, layer, piped, &nargs);
  return eval_op(s, inner, layer, args, nargs, prefix, 1, piped != NULL);
}

/* --- blocks ------------------------------------------------------------------------------- */

static void check_annotation(Sema *s, const Stmt *st, Value v, const char *what);

static Value eval_block(Sema *s, BlockInfo *bi, const Expr *e, const Value *piped,
                        const char *prefix) {
  const Decl *d = bi->d;
  Loc at = name_loc_of(e);
  if (s->too_big) return poison(); /* no more exponential inlining after the limit */
  for (int i = 0; i < s->depth; i++) {
    if (s->stack[i] != d) continue;
    char chain[512];
    size_t len = 0;
    chain[0] = '\0';
    for (int k = i; k < s->depth && len < sizeof chain - 80; k++)
      len += (size_t)snprintf(chain + len, sizeof chain - len, "%s -> ", s->stack[k]->name);
    snprintf(chain + len, sizeof chain - len, "%s", d->name);
    if (i == s->depth - 1)
      diag_error(at, "block '%s' calls itself: %s", d->name, chain);
    else
      diag_error(at, "blocks '%s' and '%s' call each other: %s", d->name, s->stack[s->depth - 1]->name, chain);
    for (int k = i + 1; k < s->depth; k++)
      diag_note(s->stack_loc[k], "'%s' is called here", s->stack[k]->name);
    diag_note(no_loc, "blocks are inlined at each call, so they cannot be recursive");
    return poison();
  }
  if (s->depth >= MAX_DEPTH) {
    diag_error(at, "blocks nested more than %d deep", MAX_DEPTH);
    return poison();
  }
  int nargs;
  CallArg *args = call_args(s, e, piped, &nargs);
  CallArg **given = arena_alloc(s->tmp, (size_t)(d->nparams + 1) * sizeof *given);
  int ok = 1, seen_named = 0, npos = 0, arity = 0;
  for (int i = 0; i < nargs; i++) {
    CallArg *a = &args[i];
    int slot = -1;
    if (!a->name) {
      if (seen_named) {
        diag_error(a->loc, "a positional argument cannot follow named arguments");
        ok = 0;
        continue;
      }
      if (npos >= d->nparams) {
        arity = 1; /* reported below, with the count */
        continue;
      }
      slot = npos++;
    } else {
      seen_named = 1;
      const char **names = arena_alloc(s->tmp, (size_t)(d->nparams + 1) * sizeof *names);
      for (int k = 0; k < d->nparams; k++) {
        names[k] = d->params[k].name;
        if (!strcmp(d->params[k].name, a->name)) slot = k;
      }
      if (slot < 0) {
        diag_error(a->name_loc, "block '%s' has no parameter '%s'", d->name, a->name);
        note_did_you_mean(closest(a->name, names, d->nparams));
        diag_note(d->name_loc, "'%s' is defined here", d->name);
        ok = 0;
        continue;
      }
      if (given[slot]) {
        diag_error(a->loc, "%s: argument '%s' is given twice", d->name, a->name);
        diag_note(given[slot]->loc, "first given here%s", given[slot]->name ? "" : " (by position)");
        ok = 0;
        continue;
      }
    }
    given[slot] = a;
  }
  for (int k = 0; k < d->nparams; k++)
    if (!given[k]) arity = 1;
  if (arity && ok) {
    ok = 0;
    char names[256];
    size_t len = 0;
    names[0] = '\0';
    for (int k = 0; k < d->nparams && len < sizeof names - 40; k++)
      len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", k ? ", " : "", d->params[k].name);
    diag_error(at, "block '%s' takes %d argument%s (%s), got %d", d->name, d->nparams,
               d->nparams == 1 ? "" : "s", names, nargs);
    if (piped) diag_note(no_loc, "the value piped in with |> is the first argument");
    diag_note(d->name_loc, "'%s' is defined here", d->name);
  }
  if (arity) ok = 0;
  eval_args(s, args, nargs, prefix);
  if (!ok || !bi->valid) return poison();
  /* an argument that failed was reported already; expanding the body on it could only
   * repeat errors (and blocks that call blocks twice would repeat them exponentially) */
  for (int k = 0; k < d->nparams; k++)
    if (given[k]->val.kind == V_POISON) return poison();
  if (++s->expansions > MAX_EXPANSIONS) {
    if (!s->too_big)
      diag_error(at, "the model expands more than %d block calls", MAX_EXPANSIONS);
    s->too_big = 1;
    return poison();
  }

  /* expand: a fresh scope with the formals bound */
  Scope sc = {.block = d};
  for (int k = 0; k < d->nparams; k++) {
    Binding *b = scope_declare(s, &sc, d->params[k].name, d->params[k].loc);
    b->defined = 1;
    b->is_formal = 1;
    b->v = given[k]->val;
  }
  scope_prescan(s, &sc, d->body, d->nbody);
  Scope *saved_scope = s->scope;
  const Stmt *saved_stmt = s->cur_stmt;
  s->scope = &sc;
  s->stack[s->depth] = d;
  s->stack_loc[s->depth] = at;
  s->depth++;
  Value result = poison();
  for (int i = 0; i < d->nbody; i++) {
    const Stmt *st = &d->body[i];
    s->cur_stmt = st;
    if (st->kind == ST_LET) {
      const char *p = arena_printf(s->g->arena, "%s.%s", prefix, st->name);
      Value v = eval_named(s, st->value, p);
      if (st->has_annot) check_annotation(s, st, v, st->name);
      scope_define(s, st, v);
    } else if (st->kind == ST_RETURN) {
      result = eval_named(s, st->value, prefix);
    }
  }
  s->depth--;
  s->scope = saved_scope;
  s->cur_stmt = saved_stmt;
  result.loc = e->loc;
  return result;
}

/* --- expressions -------------------------------------------------------------------------- */

/* A call, or a bare name used as a pipe stage; `piped` is the value piped into it. */
static Value eval_call(Sema *s, const Expr *e, const Value *piped, const char *prefix) {
  const OpInfo *op = op_lookup(e->name);
  if (!op) {
    Binding *b = scope_find(s->scope, e->name);
    if (b && b->defined && b->v.kind == V_ACT) op = op_info(b->v.act);
  }
  if (op) {
    if (has_layer_arg(op)) return eval_bidirectional(s, op, e, piped, prefix);
    int nargs;
    CallArg *args = call_args(s, e, piped, &nargs);
    return eval_op(s, op, e, args, nargs, prefix, 0, piped != NULL);
  }
  BlockInfo *bi = find_block(s, e->name);
  if (bi) return eval_block(s, bi, e, piped, prefix);
  Loc at = name_loc_of(e);
  Binding *b = scope_find(s->scope, e->name);
  if (b) {
    diag_error(at, "'%s' is a value, not an operation", e->name);
    diag_note(b->loc, "'%s' is defined here", e->name);
    return poison();
  }
  diag_error(at, "unknown operation '%s'", e->name);
  const char *sugg = hint_op_alias(e->name);   /* PyTorch's name: linear, Conv2d, ... */
  if (sugg) {
    diag_note(no_loc, "did you mean '%s'? (PyTorch's %s is nncc's %s)", sugg, e->name, sugg);
    return poison();
  }
  sugg = op_suggest(e->name);
  if (!sugg) {
    const char **names = arena_alloc(s->tmp, (size_t)(s->nblocks + 1) * sizeof *names);
    for (int i = 0; i < s->nblocks; i++) names[i] = s->blocks[i].d->name;
    sugg = closest(e->name, names, s->nblocks);
  }
  note_did_you_mean(sugg);
  const char *near[3];
  if (hint_closest_ops(e->name, near, 3) == 3)
    diag_note(no_loc, "the closest operations are %s, %s and %s", near[0], near[1], near[2]);
  return poison();
}

/* a |> f(b) |> g : a plain name at the head is not a stage; other stages are numbered from 0 */
static Value eval_pipe(Sema *s, const Expr *e, const char *prefix) {
  const Expr *head = e->stages[0];
  int stage = 0;
  Value v;
  if (head->kind == EX_NAME) {
    v = eval_expr(s, head, prefix);
  } else {
    v = eval_named(s, head, stage_prefix(s, prefix, 0));
    stage = 1;
  }
  v.loc = head->loc;
  for (int i = 1; i < e->nstages; i++, stage++) {
    const Expr *st = e->stages[i];
    const char *p = stage_prefix(s, prefix, stage);
    if (st->kind != EX_CALL && st->kind != EX_NAME) {
      diag_error(st->loc, "a pipe stage must be an operation or a block, like relu or dense(10)");
      v = poison();
      continue;
    }
    check_single(s, st, p, 1);
    int first = s->g->nnodes;
    Value piped = v;
    v = eval_call(s, st, &piped, p);
    if (v.kind == V_TENSOR && v.node >= first) s->g->nodes[v.node].name = p;
    v.loc = loc_span(head->loc, st->loc);
  }
  return v;
}

/* A binding's expression (or a pipe stage at the head, or a block's return) under prefix. */
static Value eval_binding(Sema *s, const Expr *e, const char *prefix) {
  if (e->kind == EX_PIPE) return eval_pipe(s, e, prefix);
  check_single(s, e, prefix, 0);
  return eval_expr(s, e, prefix);
}

/* As eval_binding, and the final node, when created here, is named after the binding. */
static Value eval_named(Sema *s, const Expr *e, const char *prefix) {
  int first = s->g->nnodes;
  Value v = eval_binding(s, e, prefix);
  if (v.kind == V_TENSOR && v.node >= first) s->g->nodes[v.node].name = prefix;
  return v;
}

/* a + b, a * b */
static Value eval_binary(Sema *s, const Expr *e, const char *prefix) {
  Value l = eval_expr(s, e->lhs, prefix);
  Value r = eval_expr(s, e->rhs, prefix);
  const char *sym = e->kind == EX_ADD ? "+" : "*";
  int ok = l.kind == V_TENSOR && r.kind == V_TENSOR;
  if (l.kind != V_TENSOR && l.kind != V_POISON)
    diag_error(e->lhs->loc, "'%s' needs tensors on both sides, got %s on the left", sym, describe(s, l));
  if (r.kind != V_TENSOR && r.kind != V_POISON)
    diag_error(e->rhs->loc, "'%s' needs tensors on both sides, got %s on the right", sym, describe(s, r));
  if (!ok) return poison();
  if (node_budget(s, e->loc)) return poison();
  OpKind k = e->kind == EX_ADD ? OP_add : OP_mul;
  const OpInfo *op = op_info(k);
  int ins[2] = {l.node, r.node};
  int id = graph_add_node(s->g, k, ins, 2, e->loc);
  Node *n = &s->g->nodes[id];
  n->arg_loc[0] = e->lhs->loc;
  n->arg_loc[1] = e->rhs->loc;
  n->name = arena_printf(s->g->arena, "%s/%s", prefix, e->kind == EX_ADD ? "add" : "mul");
  if (op->infer(s->g, n) != 0) return poison();
  Value v;
  memset(&v, 0, sizeof v);
  v.kind = V_TENSOR;
  v.node = id;
  return v;
}

static Value eval_expr(Sema *s, const Expr *e, const char *prefix) {
  Value v;
  memset(&v, 0, sizeof v);
  switch (e->kind) {
  case EX_INT:
    v.kind = V_INT;
    v.i = e->ival;
    v.f = (double)e->ival;
    v.text = e->text ? e->text : arena_printf(s->tmp, "%lld", (long long)e->ival);
    break;
  case EX_FLOAT:
    v.kind = V_FLOAT;
    v.f = e->fval;
    v.text = e->text ? e->text : arena_printf(s->tmp, "%g", e->fval);
    break;
  case EX_BOOL:
    v.kind = V_BOOL;
    v.i = e->ival != 0;
    v.text = v.i ? "true" : "false";
    break;
  case EX_NAME: return lookup_name(s, e);
  case EX_CALL: v = eval_call(s, e, NULL, prefix); break;
  case EX_PIPE: v = eval_pipe(s, e, prefix); break;
  case EX_ADD:
  case EX_MUL: v = eval_binary(s, e, prefix); break;
  case EX_LIST:
    diag_error(e->loc, "a list [...] is only a training setting's value (freeze = [a, b])");
    v.kind = V_POISON;
    break;
  }
  v.loc = e->loc;
  return v;
}

/* --- shapes as written -------------------------------------------------------------------- */

static int is_symbol_name(const char *s) {
  if (!islower((unsigned char)s[0])) return 0;
  for (; *s; s++)
    if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_') return 0;
  return 1;
}

/* One dimension of a declared type (declaring = 1: may introduce the model's symbol) or of an
 * annotation.  Returns 0 and *out, or -1 after diagnosing. */
static int check_dim(Sema *s, const DimExpr *d, int declaring, Dim *out) {
  out->sym = 0;
  out->n = 0;
  if (!d->is_symbol) {
    if (d->value < 1) {
      diag_error(d->loc, "a dimension must be a positive integer, got %lld", (long long)d->value);
      return -1;
    }
    out->n = d->value;
    return 0;
  }
  if (!is_symbol_name(d->symbol)) {
    diag_error(d->loc, "dimension '%s' must be a positive integer or a lower-case length symbol "
               "such as 'seq'", d->symbol);
    return -1;
  }
  Graph *g = s->g;
  if (!g->sym) {
    if (!declaring) {
      diag_error(d->loc, "unknown length '%s': no input of model '%s' has a symbolic length",
                 d->symbol, g->name);
      return -1;
    }
    g->sym = arena_strdup(g->arena, d->symbol);
    s->sym_loc = d->loc;
  } else if (strcmp(g->sym, d->symbol)) {
    if (declaring) {
      diag_error(d->loc, "a second symbolic length '%s': a model has at most one (here '%s')",
                 d->symbol, g->sym);
      diag_note(s->sym_loc, "'%s' is declared here", g->sym);
    } else {
      diag_error(d->loc, "unknown length '%s': the length of model '%s' is '%s'", d->symbol,
                 g->name, g->sym);
      diag_note(s->sym_loc, "'%s' is declared here", g->sym);
    }
    return -1;
  }
  out->sym = 1;
  return 0;
}

static int check_shape(Sema *s, const ShapeExpr *se, int first, int count, int declaring,
                       Shape *out) {
  memset(out, 0, sizeof *out);
  if (count > MAX_RANK) {
    diag_error(se->loc, "at most %d dimensions are supported, got %d", MAX_RANK, count);
    return -1;
  }
  int ok = 1;
  out->rank = count;
  for (int i = 0; i < count; i++)
    if (check_dim(s, &se->dims[first + i], declaring, &out->d[i])) ok = 0;
  if (!ok) return -1;
  int64_t total = 1;
  for (int i = 0; i < count; i++)
    if (!out->d[i].sym && checked_mul(total, out->d[i].n, &total)) {
      diag_error(se->loc, "this shape is too large (more than 2^63 elements)");
      return -1;
    }
  return 0;
}

static void check_annotation(Sema *s, const Stmt *st, Value v, const char *what) {
  if (v.kind == V_POISON) return;
  Shape want;
  if (check_shape(s, &st->annot, 0, st->annot.ndims, 0, &want)) return;
  if (v.kind != V_TENSOR) {
    diag_error(st->annot.loc, "'%s' is %s, which has no shape", what, describe(s, v));
    return;
  }
  const Node *n = &s->g->nodes[v.node];
  if (shape_equal(n->shape, want)) return;
  char have_s[160], want_s[160];
  shape_str(have_s, sizeof have_s, n->shape, s->g->sym);
  shape_str(want_s, sizeof want_s, want, s->g->sym);
  diag_error(anchor(st->value), "%s is %s, annotated %s", what, have_s, want_s);
  op_explain_shape(s->g, n);
}

/* --- the model ---------------------------------------------------------------------------- */

/* input x : f32[...] | i32[...];  target y : label[..., C] | f32[...] */
static void declare_input(Sema *s, const Stmt *st) {
  Graph *g = s->g;
  const TypeExpr *t = &st->type;
  int is_target = st->kind == ST_TARGET;
  int ok = 1;
  DType dt = DT_F32;
  if (!strcmp(t->elem, "f32")) {
    dt = DT_F32;
  } else if (!strcmp(t->elem, "i32")) {
    dt = DT_I32;
    if (is_target) {
      diag_error(t->elem_loc, "a target is label[..., classes] or f32[...], not i32");
      diag_note(no_loc, "class indices are written label[C]: target y : label[10]");
      ok = 0;
    }
  } else if (!strcmp(t->elem, "label")) {
    dt = DT_LABEL;
    if (!is_target) {
      diag_error(t->elem_loc, "'label' is for targets; an input is f32[...] or i32[...]");
      diag_note(no_loc, "token ids are i32[seq]; class indices to train against are "
                "'target %s : label[...]'", st->name);
      ok = 0;
    }
  } else {
    static const char *const elems[] = {"f32", "i32", "label"};
    diag_error(t->elem_loc, "unknown element type '%s'", t->elem);
    const char *sugg = closest(t->elem, elems, 3);
    if (sugg) note_did_you_mean(sugg);
    else diag_note(no_loc, "an input is f32[...] or i32[...]; a target is label[..., classes] or f32[...]");
    ok = 0;
  }
  Shape shape;
  int64_t classes = 0;
  int ndims = t->shape.ndims;
  if (dt == DT_LABEL && ok) {
    if (ndims < 1) {
      diag_error(t->shape.loc, "label needs the number of classes as its last dimension: label[10]");
      ok = 0;
    } else {
      const DimExpr *c = &t->shape.dims[ndims - 1];
      if (c->is_symbol || c->value < 1) {
        diag_error(c->loc, "the number of classes (the last dimension of label) must be a "
                   "positive integer");
        ok = 0;
      }
      classes = c->value;
      ndims--;
    }
  }
  if (ok && check_shape(s, &t->shape, 0, ndims, 1, &shape)) ok = 0;
  Value v = poison();
  if (ok && !node_budget(s, st->name_loc)) {
    int id = graph_add_node(g, OP_input, NULL, 0, st->name_loc);
    Node *n = &g->nodes[id];
    n->name = arena_strdup(g->arena, st->name);
    n->shape = shape;
    n->dtype = dt;
    n->classes = classes;
    n->is_target = is_target;
    int *slot = is_target ? arena_push(g->arena, &g->targets, &g->ntargets, sizeof *slot)
                          : arena_push(g->arena, &g->inputs, &g->ninputs, sizeof *slot);
    *slot = id;
    n->input_index = is_target ? g->ntargets - 1 : g->ninputs - 1;
    v.kind = V_TENSOR;
    v.node = id;
  }
  scope_define(s, st, v);
}

/* Whether each node depends on a target: -1 no, else the target's node id. */
static void check_outputs_use_no_target(Sema *s, const Stmt **out_stmts) {
  Graph *g = s->g;
  int *dep = arena_alloc(s->tmp, (size_t)(g->nnodes + 1) * sizeof *dep);
  for (int i = 0; i < g->nnodes; i++) {
    const Node *n = &g->nodes[i];
    dep[i] = n->op == OP_input && n->is_target ? i : -1;
    for (int k = 0; k < n->nin && dep[i] < 0; k++) dep[i] = dep[n->in[k]];
  }
  for (int k = 0; k < g->noutputs; k++) {
    int t = dep[g->outputs[k]];
    if (t < 0) continue;
    diag_error(out_stmts[k]->name_loc, "output '%s' depends on target '%s', which is given only "
               "for training", out_stmts[k]->name, g->nodes[t].name);
    diag_note(g->nodes[t].loc, "'%s' is declared here", g->nodes[t].name);
  }
}

static void warn_unused(Sema *s, const Decl *m, const int *let_node);

static void build_model(Sema *s, const Decl *m) {
  Graph *g = s->g;
  Scope sc = {0};
  s->scope = s->model_scope = &sc;
  scope_prescan(s, &sc, m->body, m->nbody);
  const Stmt **out_stmts = arena_alloc(s->tmp, (size_t)(m->nbody + 1) * sizeof *out_stmts);
  const Stmt *loss_stmt = NULL;
  int has_output = 0; /* an output statement, even a wrong one (no second error then) */
  int *let_node = arena_alloc(s->tmp, (size_t)(m->nbody + 1) * sizeof *let_node);
  for (int i = 0; i < m->nbody; i++) let_node[i] = -1;
  int errors0 = diag_error_count();
  for (int i = 0; i < m->nbody; i++) {
    const Stmt *st = &m->body[i];
    s->cur_stmt = st;
    switch (st->kind) {
    case ST_INPUT:
    case ST_TARGET: declare_input(s, st); break;
    case ST_RETURN:
      diag_error(st->loc, "'return' is only allowed in a block");
      break;
    case ST_LET:
    case ST_OUTPUT: {
      if (st->kind == ST_OUTPUT) has_output = 1;
      Value v = eval_named(s, st->value, st->name);
      if (st->has_annot) check_annotation(s, st, v, st->name);
      scope_define(s, st, v);
      if (st->kind == ST_LET && v.kind == V_TENSOR && strcmp(st->name, "loss")) let_node[i] = v.node;
      if (v.kind == V_POISON) {
        if (!strcmp(st->name, "loss")) loss_stmt = st;
        break;
      }
      if (st->kind == ST_OUTPUT) {
        if (v.kind != V_TENSOR) {
          diag_error(anchor(st->value), "output '%s' must be a tensor, got %s", st->name, describe(s, v));
          break;
        }
        Node *n = &g->nodes[v.node];
        if (n->output_index >= 0) {
          diag_error(st->name_loc, "output '%s' is the same value as output '%s'", st->name,
                     g->output_names[n->output_index]);
          diag_note(out_stmts[n->output_index]->name_loc, "'%s' is declared here",
                    g->output_names[n->output_index]);
          break;
        }
        if (n->op != OP_input) n->name = arena_strdup(g->arena, st->name);
        out_stmts[g->noutputs] = st;
        const char **name = arena_push(g->arena, &g->output_names, &(int){g->noutputs}, sizeof *name);
        *name = arena_strdup(g->arena, st->name);
        int *slot = arena_push(g->arena, &g->outputs, &g->noutputs, sizeof *slot);
        *slot = v.node;
        n->output_index = g->noutputs - 1;
      }
      if (!strcmp(st->name, "loss")) {
        loss_stmt = st;
        if (v.kind != V_TENSOR) {
          diag_error(anchor(st->value), "the loss must be a tensor, got %s", describe(s, v));
          break;
        }
        Node *n = &g->nodes[v.node];
        if (n->shape.rank != 0 || n->dtype != DT_F32) {
          char sb[160];
          shape_str(sb, sizeof sb, n->shape, g->sym);
          diag_error(anchor(st->value), "the loss must be a scalar, but 'loss' is %s%s", sb,
                     n->dtype == DT_F32 ? "" : " of integers");
          diag_note(no_loc, "cross_entropy(logits, target) and mse(y, target) give a scalar");
          break;
        }
        g->loss = v.node;
        n->is_loss = 1;
      }
      break;
    }
    }
  }
  s->cur_stmt = NULL;
  if (!has_output)
    diag_error(m->name_loc, "model '%s' has no output; mark the result with 'output', e.g. "
               "output y = ...", m->name);
  if (!loss_stmt)
    for (int k = 0; k < g->ntargets; k++)
      diag_warning(g->nodes[g->targets[k]].loc, "target '%s' is never used: the model has no "
                   "'loss'", g->nodes[g->targets[k]].name);
  if (loss_stmt && g->ntargets == 0)
    diag_error(loss_stmt->name_loc, "a model with a loss needs at least one target, e.g. "
               "target y : label[10]");
  if (g->noutputs) check_outputs_use_no_target(s, out_stmts);
  if (diag_error_count() == errors0) warn_unused(s, m, let_node);
}

/* --- train blocks ------------------------------------------------------------------------- */

typedef struct OptArg {
  const char *name;
  int is_bool;
  size_t offset;       /* into TrainConfig: double, or int for bools */
  double min;          /* accepted: min < x (min_excl) or min <= x */
  int min_excl;
  double max;          /* 0: unbounded; else x < max (max_excl) or x <= max */
  int max_excl;
} OptArg;

typedef struct OptSpec {
  const char *name;
  OptimizerKind kind;
  OptArg args[4];
  int nargs;
} OptSpec;

static const OptSpec optimizers[] = {
    {"sgd", OPT_SGD,
     {{"lr", 0, offsetof(TrainConfig, lr), 0, 1, 0, 0},
      {"momentum", 0, offsetof(TrainConfig, momentum), 0, 0, 0, 0},
      {"nesterov", 1, offsetof(TrainConfig, nesterov), 0, 0, 0, 0}},
     3},
    {"adagrad", OPT_ADAGRAD,
     {{"lr", 0, offsetof(TrainConfig, lr), 0, 1, 0, 0},
      {"eps", 0, offsetof(TrainConfig, eps), 0, 1, 0, 0}},
     2},
    {"rmsprop", OPT_RMSPROP,
     {{"lr", 0, offsetof(TrainConfig, lr), 0, 1, 0, 0},
      {"decay", 0, offsetof(TrainConfig, decay), 0, 0, 1, 1},
      {"eps", 0, offsetof(TrainConfig, eps), 0, 1, 0, 0}},
     3},
    {"adam", OPT_ADAM,
     {{"lr", 0, offsetof(TrainConfig, lr), 0, 1, 0, 0},
      {"beta1", 0, offsetof(TrainConfig, beta1), 0, 0, 1, 1},
      {"beta2", 0, offsetof(TrainConfig, beta2), 0, 0, 1, 1},
      {"eps", 0, offsetof(TrainConfig, eps), 0, 1, 0, 0}},
     4},
};
enum { NOPTIMIZERS = sizeof optimizers / sizeof optimizers[0] };

static const char *const settings[] = {"optimizer", "clip_norm", "bptt", "batch",
                                       "weight_decay", "stateful", "freeze"};
enum { NSETTINGS = 7 };

static const char *opt_signature(const OptSpec *o) {
  switch (o->kind) {
  case OPT_SGD: return "sgd(lr, momentum=0, nesterov=false)";
  case OPT_ADAGRAD: return "adagrad(lr, eps=1e-10)";
  case OPT_RMSPROP: return "rmsprop(lr, decay=0.99, eps=1e-8)";
  case OPT_ADAM: return "adam(lr, beta1=0.9, beta2=0.999, eps=1e-8)";
  }
  return "?";
}

/* A literal number or bool (train settings are constants). */
static int literal(Sema *s, const Expr *e, Value *v) {
  if (e->kind == EX_INT || e->kind == EX_FLOAT || e->kind == EX_BOOL) {
    *v = eval_expr(s, e, "");
    return 0;
  }
  diag_error(e->loc, "expected a number here");
  return -1;
}

static void check_opt_arg(Sema *s, const OptSpec *o, const OptArg *spec, const Expr *e, Loc at,
                          TrainConfig *tc) {
  Value v;
  if (literal(s, e, &v)) return;
  if (spec->is_bool) {
    if (v.kind != V_BOOL) {
      diag_error(at, "%s: %s must be true or false, got %s", o->name, spec->name, describe(s, v));
      return;
    }
    int b = (int)v.i;
    memcpy((char *)tc + spec->offset, &b, sizeof b);
    return;
  }
  if (v.kind != V_INT && v.kind != V_FLOAT) {
    diag_error(at, "%s: %s must be a number, got %s", o->name, spec->name, describe(s, v));
    return;
  }
  double x = v.kind == V_INT ? (double)v.i : v.f;
  int bad = !isfinite(x) || (spec->min_excl ? x <= spec->min : x < spec->min) ||
            (spec->max != 0 && (spec->max_excl ? x >= spec->max : x > spec->max));
  if (bad) {
    char lo[32], hi[32];
    fmt_num(lo, sizeof lo, spec->min);
    fmt_num(hi, sizeof hi, spec->max);
    if (spec->max != 0)
      diag_error(at, "%s: %s must be in %c%s, %s%c, got %s", o->name, spec->name,
                 spec->min_excl ? '(' : '[', lo, hi, spec->max_excl ? ')' : ']', v.text);
    else if (spec->min_excl)
      diag_error(at, "%s: %s must be greater than %s, got %s", o->name, spec->name, lo, v.text);
    else
      diag_error(at, "%s: %s must be at least %s, got %s", o->name, spec->name, lo, v.text);
    return;
  }
  memcpy((char *)tc + spec->offset, &x, sizeof x);
}

/* optimizer = sgd(lr=0.1, momentum=0.9) | adam | ... */
static void train_optimizer(Sema *s, const Expr *e, TrainConfig *tc) {
  if (e->kind != EX_CALL && e->kind != EX_NAME) {
    diag_error(e->loc, "expected an optimizer: sgd(lr), adagrad(lr), rmsprop(lr) or adam(lr)");
    return;
  }
  const OptSpec *o = NULL;
  for (int i = 0; i < NOPTIMIZERS; i++)
    if (!strcmp(optimizers[i].name, e->name)) o = &optimizers[i];
  if (!o) {
    const char *names[NOPTIMIZERS];
    for (int i = 0; i < NOPTIMIZERS; i++) names[i] = optimizers[i].name;
    diag_error(name_loc_of(e), "unknown optimizer '%s'", e->name);
    note_did_you_mean(closest(e->name, names, NOPTIMIZERS));
    diag_note(no_loc, "the optimizers are sgd, adagrad, rmsprop and adam");
    return;
  }
  TrainConfig fresh = *tc;
  fresh.optimizer = o->kind;
  fresh.eps = o->kind == OPT_ADAGRAD ? 1e-10 : 1e-8;  /* torch.optim's defaults */
  const Arg *given[4] = {0};
  int npos = 0, seen_named = 0;
  for (int i = 0; e->kind == EX_CALL && i < e->nargs; i++) {
    const Arg *a = &e->args[i];
    Loc at = a->name ? loc_span(a->name_loc, a->value->loc) : a->value->loc;
    int slot = -1;
    if (!a->name) {
      if (seen_named) {
        diag_error(at, "a positional argument cannot follow named arguments");
        continue;
      }
      if (npos >= o->nargs) {
        diag_error(at, "%s takes at most %d argument%s: %s", o->name, o->nargs,
                   o->nargs == 1 ? "" : "s", opt_signature(o));
        break;
      }
      slot = npos++;
    } else {
      seen_named = 1;
      const char *names[4];
      for (int k = 0; k < o->nargs; k++) {
        names[k] = o->args[k].name;
        if (!strcmp(o->args[k].name, a->name)) slot = k;
      }
      if (slot < 0) {
        diag_error(a->name_loc, "%s has no argument '%s'", o->name, a->name);
        const char *sugg = closest(a->name, names, o->nargs);
        if (sugg) note_did_you_mean(sugg);
        else diag_note(no_loc, "%s", opt_signature(o));
        continue;
      }
      if (given[slot]) {
        diag_error(at, "%s: argument '%s' is given twice", o->name, a->name);
        diag_note(given[slot]->name ? given[slot]->name_loc : given[slot]->value->loc, "first given here");
        continue;
      }
    }
    given[slot] = a;
    check_opt_arg(s, o, &o->args[slot], a->value, at, &fresh);
  }
  if (fresh.optimizer == OPT_SGD && fresh.nesterov && fresh.momentum <= 0)
    diag_error(name_loc_of(e), "sgd: nesterov=true needs a momentum above 0");
  *tc = fresh;
}

static void train_count(Sema *s, const Stmt *st, int64_t min, int64_t *out) {
  Value v;
  if (literal(s, st->value, &v)) return;
  if (v.kind != V_INT) {
    diag_error(st->value->loc, "%s must be an integer, got %s", st->name, describe(s, v));
    return;
  }
  if (v.i < min) {
    diag_error(st->value->loc, "%s must be at least %lld, got %s", st->name, (long long)min, v.text);
    return;
  }
  *out = v.i;
}

/* freeze = [a, b]: binding names (checked against the parameters by autodiff) */
static void train_freeze(Sema *s, const Expr *e, TrainConfig *tc) {
  if (e->kind == EX_NAME) {
    diag_error(e->loc, "freeze takes a list of bindings: freeze = [%s]", e->name);
    return;
  }
  if (e->kind != EX_LIST) {
    diag_error(e->loc, "freeze takes a list of bindings: freeze = [embed, conv1]");
    return;
  }
  tc->nfreeze = 0;
  tc->freeze = arena_alloc(s->g->arena, ((size_t)e->nstages + 1) * sizeof *tc->freeze);
  tc->freeze_loc = arena_alloc(s->g->arena, ((size_t)e->nstages + 1) * sizeof *tc->freeze_loc);
  for (int i = 0; i < e->nstages; i++) {
    const Expr *it = e->stages[i];
    if (it->kind != EX_NAME) {
      diag_error(it->loc, "freeze lists bindings by name, like freeze = [embed, conv1]");
      continue;
    }
    for (int k = 0; k < tc->nfreeze; k++)
      if (!strcmp(tc->freeze[k], it->name)) {
        diag_error(it->loc, "'%s' is listed twice", it->name);
        diag_note(tc->freeze_loc[k], "first listed here");
      }
    tc->freeze[tc->nfreeze] = arena_strdup(s->g->arena, it->name);
    tc->freeze_loc[tc->nfreeze] = it->loc;
    tc->nfreeze++;
  }
}

static void apply_train(Sema *s, const Decl *d, TrainConfig *tc) {
  const Stmt *seen[NSETTINGS] = {0};
  tc->present = 1;
  for (int i = 0; i < d->nbody; i++) {
    const Stmt *st = &d->body[i];
    if (st->kind != ST_LET) {
      diag_error(st->loc, "a train block holds settings (optimizer, weight_decay, clip_norm, "
                 "bptt, stateful, freeze, batch), not declarations");
      continue;
    }
    if (st->has_annot) diag_error(st->annot.loc, "a training setting has no shape");
    int idx = -1;
    for (int k = 0; k < NSETTINGS; k++)
      if (!strcmp(settings[k], st->name)) idx = k;
    if (idx < 0) {
      diag_error(st->name_loc, "unknown training setting '%s'", st->name);
      if (!strcmp(st->name, "lr") || !strcmp(st->name, "learning_rate") ||
          !strcmp(st->name, "momentum"))
        diag_note(no_loc, "the %s is an argument of the optimizer: optimizer = sgd(lr=0.1, "
                  "momentum=0.9)", strcmp(st->name, "momentum") ? "learning rate" : "momentum");
      else if (!closest(st->name, settings, NSETTINGS))
        diag_note(no_loc, "the settings are optimizer, weight_decay, clip_norm, bptt, stateful, "
                  "freeze and batch");
      else
        note_did_you_mean(closest(st->name, settings, NSETTINGS));
      continue;
    }
    if (seen[idx]) {
      diag_error(st->name_loc, "'%s' is set twice", st->name);
      diag_note(seen[idx]->name_loc, "first set here");
      continue;
    }
    seen[idx] = st;
    switch (idx) {
    case 0: train_optimizer(s, st->value, tc); break;
    case 1: {
      Value v;
      if (literal(s, st->value, &v)) break;
      double x = v.kind == V_INT ? (double)v.i : v.f;
      if ((v.kind != V_INT && v.kind != V_FLOAT) || !isfinite(x) || x <= 0) {
        diag_error(st->value->loc, "clip_norm must be a number greater than 0, got %s", describe(s, v));
        break;
      }
      tc->clip_norm = x;
      break;
    }
    case 2: train_count(s, st, 1, &tc->bptt); break;
    case 3: train_count(s, st, 1, &tc->batch); break;
    case 4: {
      Value v;
      if (literal(s, st->value, &v)) break;
      double x = v.kind == V_INT ? (double)v.i : v.f;
      if ((v.kind != V_INT && v.kind != V_FLOAT) || !isfinite(x) || x < 0) {
        diag_error(st->value->loc, "weight_decay must be a number of at least 0, got %s",
                   describe(s, v));
        break;
      }
      tc->weight_decay = x;
      break;
    }
    case 5: {
      Value v;
      if (literal(s, st->value, &v)) break;
      if (v.kind != V_BOOL) {
        diag_error(st->value->loc, "stateful must be true or false, got %s", describe(s, v));
        break;
      }
      tc->stateful = (int)v.i;
      break;
    }
    case 6: train_freeze(s, st->value, tc); break;
    }
  }
}

/* --- the top level ------------------------------------------------------------------------ */

static const char *decl_kind(const Decl *d) {
  return d->kind == DECL_MODEL ? "model" : d->kind == DECL_BLOCK ? "block" : "train block";
}

static void validate_block(Sema *s, BlockInfo *bi) {
  const Decl *d = bi->d;
  bi->valid = 1;
  if (op_lookup(d->name)) {
    diag_error(d->name_loc, "block '%s' has the name of an operation", d->name);
    bi->valid = 0;
  }
  for (int i = 0; i < d->nparams; i++)
    for (int k = 0; k < i; k++)
      if (!strcmp(d->params[i].name, d->params[k].name)) {
        diag_error(d->params[i].loc, "block '%s' has two parameters named '%s'", d->name, d->params[i].name);
        diag_note(d->params[k].loc, "the first is here");
        bi->valid = 0;
      }
  const Stmt *ret = NULL;
  for (int i = 0; i < d->nbody; i++) {
    const Stmt *st = &d->body[i];
    switch (st->kind) {
    case ST_INPUT:
    case ST_TARGET:
    case ST_OUTPUT:
      diag_error(st->loc, "'%s' declarations belong in a model, not in block '%s'",
                 st->kind == ST_INPUT ? "input" : st->kind == ST_TARGET ? "target" : "output", d->name);
      bi->valid = 0;
      break;
    case ST_RETURN:
      if (ret) {
        diag_error(st->loc, "block '%s' has a second 'return'", d->name);
        diag_note(ret->loc, "the first 'return' is here");
        bi->valid = 0;
      }
      ret = st;
      break;
    case ST_LET:
      if (ret) {
        diag_error(st->loc, "'return' must be the last statement of block '%s'", d->name);
        diag_note(ret->loc, "the 'return' is here");
        bi->valid = 0;
        ret = st; /* report once */
      }
      break;
    }
  }
  if (!ret) {
    diag_error(d->end_loc.file ? d->end_loc : d->name_loc, "block '%s' has no 'return'", d->name);
    diag_note(no_loc, "a block ends with 'return EXPR', the value it gives its caller");
    bi->valid = 0;
  }
}

static void collect(Sema *s) {
  const Program *p = s->prog;
  const Decl **defs = arena_alloc(s->tmp, (size_t)(p->ndecls + 1) * sizeof *defs);
  int ndefs = 0;
  for (int i = 0; i < p->ndecls; i++) {
    const Decl *d = &p->decls[i];
    if (d->kind == DECL_TRAIN) {
      const Decl **slot = arena_push(s->tmp, &s->trains, &s->ntrains, sizeof *slot);
      *slot = d;
      continue;
    }
    const Decl *prev = NULL;
    for (int k = 0; k < ndefs; k++)
      if (!strcmp(defs[k]->name, d->name)) prev = defs[k];
    if (prev) {
      diag_error(d->name_loc, "redefinition of '%s'", d->name);
      diag_note(prev->name_loc, "'%s' was first defined here (as a %s)", d->name, decl_kind(prev));
      continue;
    }
    defs[ndefs++] = d;
    if (d->kind == DECL_MODEL && c_reserved_name(d->name)) {
      diag_error(d->name_loc, "a model cannot be called '%s': the generated C interface names "
                 "its type and functions after the model, and '%s' is reserved in C or C++",
                 d->name, d->name);
    }
    if (d->kind == DECL_MODEL) {
      const Decl **slot = arena_push(s->tmp, &s->models, &s->nmodels, sizeof *slot);
      *slot = d;
    } else {
      BlockInfo *bi = arena_push(s->tmp, &s->blocks, &s->nblocks, sizeof *bi);
      bi->d = d;
    }
  }
  for (int i = 0; i < s->nblocks; i++) validate_block(s, &s->blocks[i]);
  for (int i = 0; i < s->ntrains; i++) {
    const Decl *t = s->trains[i];
    if (!find_model(s, t->name)) {
      diag_error(t->name_loc, "train block for unknown model '%s'", t->name);
      const char **names = arena_alloc(s->tmp, (size_t)(s->nmodels + 1) * sizeof *names);
      for (int k = 0; k < s->nmodels; k++) names[k] = s->models[k]->name;
      note_did_you_mean(closest(t->name, names, s->nmodels));
      continue;
    }
    for (int k = 0; k < i; k++)
      if (!strcmp(s->trains[k]->name, t->name)) {
        diag_error(t->name_loc, "a second train block for model '%s'", t->name);
        diag_note(s->trains[k]->name_loc, "the first is here");
        break;
      }
  }
}

static const Decl *select_model(Sema *s, const char *model_name) {
  const char *path = s->prog->file ? s->prog->file->path : "the input";
  char list[512];
  size_t len = 0;
  list[0] = '\0';
  for (int i = 0; i < s->nmodels && len < sizeof list - 80; i++)
    len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", s->models[i]->name);
  if (model_name) {
    const Decl *m = find_model(s, model_name);
    if (m) return m;
    diag_error(no_loc, "no model named '%s' in %s", model_name, path);
    const char **names = arena_alloc(s->tmp, (size_t)(s->nmodels + 1) * sizeof *names);
    for (int k = 0; k < s->nmodels; k++) names[k] = s->models[k]->name;
    const char *sugg = closest(model_name, names, s->nmodels);
    if (sugg) note_did_you_mean(sugg);
    else if (s->nmodels) diag_note(no_loc, "the models are: %s", list);
    return NULL;
  }
  if (s->nmodels == 0) {
    diag_error(no_loc, "no model in %s", path);
    return NULL;
  }
  if (s->nmodels > 1) {
    diag_error(no_loc, "%s holds %d models (%s): choose one with --model NAME", path, s->nmodels, list);
    return NULL;
  }
  return s->models[0];
}

/* diag context: an error inside a block says which call it came from, innermost first
 * (a block called three times is expanded three times) */
static void block_call_notes(void *arg) {
  Sema *s = arg;
  for (int k = s->depth - 1; k >= 0; k--)
    diag_note(s->stack_loc[k], "in block '%s', called here", s->stack[k]->name);
}

/* Warnings for an input no output (nor the loss) depends on, and a binding whose value nothing
 * uses: let_node[i] is statement i's node (-1: not a tensor binding). */
static void warn_unused(Sema *s, const Decl *m, const int *let_node) {
  Graph *g = s->g;
  char *live = arena_alloc(s->tmp, (size_t)g->nnodes + 1);
  for (int k = 0; k < g->noutputs; k++) live[g->outputs[k]] = 1;
  if (g->loss >= 0) live[g->loss] = 1;
  for (int n = g->nnodes - 1; n >= 0; n--)
    if (live[n])
      for (int k = 0; k < g->nodes[n].nin; k++) live[g->nodes[n].in[k]] = 1;
  for (int k = 0; k < g->ninputs; k++)
    if (!live[g->inputs[k]])
      diag_warning(g->nodes[g->inputs[k]].loc, "input '%s' is never used: no output depends on it",
                   g->nodes[g->inputs[k]].name);
  for (int i = 0; i < m->nbody; i++)
    if (let_node[i] >= 0 && !live[let_node[i]] && g->nodes[let_node[i]].op != OP_input)
      diag_warning(m->body[i].name_loc, "'%s' is computed but no output depends on it",
                   m->body[i].name);
}

Graph *sema_build(const Program *p, const char *model_name) {
  int errors0 = diag_error_count();
  Sema sema;
  memset(&sema, 0, sizeof sema);
  Sema *s = &sema;
  s->prog = p;
  s->tmp = arena_new();
  collect(s);
  const Decl *m = select_model(s, model_name);
  Graph *g = NULL;
  if (m) {
    g = graph_new(m->name);
    g->loc = m->name_loc;
    s->g = g;
    s->model = m;
    diag_set_context(block_call_notes, s);
    build_model(s, m);
    diag_set_context(NULL, NULL);
    /* every train block is checked; the model's own is applied */
    for (int i = 0; i < s->ntrains; i++) {
      const Decl *t = s->trains[i];
      if (!find_model(s, t->name)) continue;
      int first = 1;
      for (int k = 0; k < i; k++)
        if (!strcmp(s->trains[k]->name, t->name)) first = 0;
      TrainConfig scratch = g->train;
      apply_train(s, t, first && !strcmp(t->name, m->name) ? &g->train : &scratch);
    }
  }
  arena_free(s->tmp);
  if (diag_error_count() > errors0) {
    graph_free(g);
    return NULL;
  }
  return g;
}
