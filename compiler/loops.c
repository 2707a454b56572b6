/* loops.c - the loop IR: builders and the readable text form (--emit=loops).
 *
 * Everything is allocated in the LoopProgram's arena.  Blocks grow by
 * arena_push (the old array stays in the arena, which is fine for the sizes
 * here).  A LS_FOR or LS_IF holds exactly one statement in body[]: an LS_BLOCK,
 * which ls_body() returns; the else branch (LS_IF) is an LS_BLOCK too.
 * Constant folding in le_add/le_sub/le_mul keeps the printed indices short
 * and the generated IR small (x * 1, x + 0, 3 * 4).
 */
#include "loops.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

LoopProgram *loops_new(const Graph *g) {
  Arena *a = arena_new();
  LoopProgram *lp = arena_alloc(a, sizeof *lp);
  lp->arena = a;
  lp->graph = g;
  lp->vec_f32 = 16;
  lp->mode = MODE_FORWARD;
  lp->entry = "forward";
  return lp;
}

void loops_free(LoopProgram *lp) {
  if (lp) arena_free(lp->arena);
}

int loops_add_buf(LoopProgram *lp, const char *name, BufKind kind, LType elem) {
  LBuf *b = arena_push(lp->arena, &lp->bufs, &lp->nbufs, sizeof(LBuf));
  b->name = arena_strdup(lp->arena, name);
  b->kind = kind;
  b->elem = elem;
  b->batched = 1;
  b->first_use = b->last_use = -1;
  b->slot = -1;
  return lp->nbufs - 1;
}

static LStmt *new_stmt(LoopProgram *lp, LStmtKind k) {
  LStmt *s = arena_alloc(lp->arena, sizeof *s);
  s->kind = k;
  return s;
}

static LStmt *append(LoopProgram *lp, LStmt *block, LStmt *s) {
  if (block->kind != LS_BLOCK) die("appending to a statement that is not a block");
  LStmt **slot = arena_push(lp->arena, &block->body, &block->nbody, sizeof(LStmt *));
  *slot = s;
  return s;
}

static Kernel *add_kernel(LoopProgram *lp, Kernel **arr, int *n, const char *name, int node) {
  Kernel *k = arena_push(lp->arena, arr, n, sizeof(Kernel));
  k->name = arena_strdup(lp->arena, name);
  k->node = node;
  k->body = new_stmt(lp, LS_BLOCK);
  k->restores = -1;
  return k;
}

Kernel *loops_add_kernel(LoopProgram *lp, const char *name, int node) {
  return add_kernel(lp, &lp->kernels, &lp->nkernels, name, node);
}

Kernel *loops_add_prepare(LoopProgram *lp, const char *name) {
  return add_kernel(lp, &lp->prepare, &lp->nprepare, name, -1);
}

Kernel *loops_add_unpack(LoopProgram *lp, const char *name, int param) {
  Kernel *k = add_kernel(lp, &lp->unpack, &lp->nunpack, name, -1);
  k->restores = param;
  return k;
}

/* marks in `read` the parameter buffers an expression or statement loads */
static void expr_param_reads(const LoopProgram *lp, const LExpr *e, char *read) {
  for (; e; e = e->c) {
    if (e->kind == LE_LOAD && lp->bufs[e->buf].kind == BUF_PARAM) read[e->buf] = 1;
    expr_param_reads(lp, e->a, read);
    expr_param_reads(lp, e->b, read);
  }
}

static void stmt_param_reads(const LoopProgram *lp, const LStmt *s, char *read) {
  for (; s; s = s->else_body) {
    for (int i = 0; i < s->nbody; i++) stmt_param_reads(lp, s->body[i], read);
    for (int i = 0; i < s->nargs; i++) expr_param_reads(lp, s->args[i], read);
    expr_param_reads(lp, s->lo, read);
    expr_param_reads(lp, s->hi, read);
    expr_param_reads(lp, s->index, read);
    expr_param_reads(lp, s->value, read);
    expr_param_reads(lp, s->cond, read);
  }
}

/* hit[i] = 1 when a kernel of `reader` (its prepare and unpack kernels aside) loads parameter
 * memory overlapping range i, [ranges[2i], ranges[2i] + ranges[2i + 1]) */
static void params_read_by(const LoopProgram *reader, const int64_t *ranges, int n, char *hit) {
  char *read = xcalloc((size_t)reader->nbufs + 1, 1);
  for (int k = 0; k < reader->nkernels; k++) stmt_param_reads(reader, reader->kernels[k].body, read);
  for (int b = 0; b < reader->nbufs; b++) {
    if (!read[b]) continue;
    int64_t lo = reader->bufs[b].offset, hi = lo + reader->bufs[b].per_sample.fixed;
    for (int i = 0; i < n; i++)
      if (ranges[2 * i] < hi && lo < ranges[2 * i] + ranges[2 * i + 1]) hit[i] = 1;
  }
  free(read);
}

void loops_drop_read_unpacks(LoopProgram *lp, const LoopProgram *const *readers, int nreaders) {
  if (lp->nunpack == 0) return;
  int64_t *ranges = xcalloc((size_t)lp->nunpack * 2, sizeof(int64_t));
  char *hit = xcalloc((size_t)lp->nunpack, 1);
  for (int k = 0; k < lp->nunpack; k++) {
    ranges[2 * k] = lp->bufs[lp->unpack[k].restores].offset;
    ranges[2 * k + 1] = lp->bufs[lp->unpack[k].restores].per_sample.fixed;
  }
  for (int i = 0; i < nreaders; i++) params_read_by(readers[i], ranges, lp->nunpack, hit);
  for (int k = 0; k < lp->nunpack; k++)
    if (hit[k]) lp->unpack[k].restores = -1;
  free(ranges);
  free(hit);
}

int lvar(LoopProgram *lp, const char *name) {
  int n = lp->nvars;
  const char **slot = arena_push(lp->arena, &lp->var_names, &n, sizeof(const char *));
  *slot = arena_strdup(lp->arena, name);
  return lp->nvars++;
}

/* --- expressions --- */

static LExpr *new_expr(LoopProgram *lp, LExprKind k, LType t) {
  LExpr *e = arena_alloc(lp->arena, sizeof *e);
  e->kind = k;
  e->type = t;
  return e;
}

LExpr *le_i64(LoopProgram *lp, int64_t v) {
  LExpr *e = new_expr(lp, LE_CONST, LT_I64);
  e->ival = v;
  return e;
}

LExpr *le_f32(LoopProgram *lp, double v) {
  LExpr *e = new_expr(lp, LE_CONST, LT_F32);
  e->fval = v;
  return e;
}

LExpr *le_bool(LoopProgram *lp, int v) {
  LExpr *e = new_expr(lp, LE_CONST, LT_BOOL);
  e->ival = v != 0;
  return e;
}

LExpr *le_var(LoopProgram *lp, int var) {
  if (var < 0 || var >= lp->nvars) die("bad loop variable %d", var);
  LExpr *e = new_expr(lp, LE_VAR, LT_I64);
  e->var = var;
  return e;
}

LExpr *le_local(LoopProgram *lp, int local) {
  if (local < 0 || local >= lp->nlocals) die("bad local %d", local);
  LExpr *e = new_expr(lp, LE_LOCAL, lp->local_types[local]);
  e->local = local;
  return e;
}

LExpr *le_batch(LoopProgram *lp) { return new_expr(lp, LE_BATCH, LT_I64); }
LExpr *le_seq(LoopProgram *lp) { return new_expr(lp, LE_SEQ, LT_I64); }

LExpr *le_dim(LoopProgram *lp, Dim d) { return d.sym ? le_seq(lp) : le_i64(lp, d.n); }

LExpr *le_load(LoopProgram *lp, int buf, LExpr *index) {
  if (buf < 0 || buf >= lp->nbufs) die("bad buffer %d", buf);
  if (index->type != LT_I64) die("load index must be i64");
  LExpr *e = new_expr(lp, LE_LOAD, lp->bufs[buf].elem);
  e->buf = buf;
  e->a = index;
  return e;
}

static int is_cmp(LOp op) { return op >= LO_LT && op <= LO_NE; }

LExpr *le_bin(LoopProgram *lp, LOp op, LExpr *a, LExpr *b) {
  if (op > LO_OR) die("le_bin: not a binary operator");
  if (a->type != b->type) die("le_bin: operand types differ (%d, %d)", a->type, b->type);
  LExpr *e = new_expr(lp, LE_BIN, is_cmp(op) ? LT_BOOL : a->type);
  e->op = op;
  e->a = a;
  e->b = b;
  return e;
}

LExpr *le_un(LoopProgram *lp, LOp op, LExpr *a) {
  if (op < LO_NEG) die("le_un: not a unary operator");
  LExpr *e = new_expr(lp, LE_UN, a->type);
  e->op = op;
  e->a = a;
  return e;
}

LExpr *le_fma(LoopProgram *lp, LExpr *a, LExpr *b, LExpr *c) {
  if (a->type != LT_F32 || b->type != LT_F32 || c->type != LT_F32) die("le_fma: f32 only");
  LExpr *e = new_expr(lp, LE_FMA, LT_F32);
  e->a = a;
  e->b = b;
  e->c = c;
  return e;
}

LExpr *le_select(LoopProgram *lp, LExpr *c, LExpr *a, LExpr *b) {
  if (c->type != LT_BOOL) die("le_select: condition must be bool");
  if (a->type != b->type) die("le_select: arms differ in type");
  LExpr *e = new_expr(lp, LE_SELECT, a->type);
  e->a = c;
  e->b = a;
  e->c = b;
  return e;
}

LExpr *le_cast(LoopProgram *lp, LType t, LExpr *a) {
  if (a->type == t) return a;
  LExpr *e = new_expr(lp, LE_CAST, t);
  e->a = a;
  return e;
}

LExpr *le_rand(LoopProgram *lp, int64_t stream, LExpr *index) {
  LExpr *e = new_expr(lp, LE_RAND, LT_F32);
  e->ival = stream;
  e->a = index;
  return e;
}

LExpr *le_swap(LoopProgram *lp, LExpr *a, int64_t mask) {
  if (a->type != LT_F32 || mask <= 0) die("le_swap: lanes of a non-f32 value, or mask %lld", (long long)mask);
  LExpr *e = new_expr(lp, LE_SWAP, LT_F32);
  e->ival = mask;
  e->a = a;
  return e;
}

static int is_iconst(const LExpr *e, int64_t *v) {
  if (e->kind == LE_CONST && e->type == LT_I64) {
    *v = e->ival;
    return 1;
  }
  return 0;
}

LExpr *le_add(LoopProgram *lp, LExpr *a, LExpr *b) {
  int64_t x, y;
  if (is_iconst(a, &x) && is_iconst(b, &y)) return le_i64(lp, x + y);
  if (is_iconst(a, &x) && x == 0) return b;
  if (is_iconst(b, &y) && y == 0) return a;
  return le_bin(lp, LO_ADD, a, b);
}

LExpr *le_sub(LoopProgram *lp, LExpr *a, LExpr *b) {
  int64_t x, y;
  if (is_iconst(a, &x) && is_iconst(b, &y)) return le_i64(lp, x - y);
  if (is_iconst(b, &y) && y == 0) return a;
  return le_bin(lp, LO_SUB, a, b);
}

LExpr *le_mul(LoopProgram *lp, LExpr *a, LExpr *b) {
  int64_t x, y;
  if (is_iconst(a, &x) && is_iconst(b, &y)) return le_i64(lp, x * y);
  if (is_iconst(a, &x) && x == 1) return b;
  if (is_iconst(b, &y) && y == 1) return a;
  if ((is_iconst(a, &x) && x == 0) || (is_iconst(b, &y) && y == 0)) return le_i64(lp, 0);
  return le_bin(lp, LO_MUL, a, b);
}

LExpr *le_index(LoopProgram *lp, int n, LExpr *const *idx, LExpr *const *dims) {
  if (n <= 0) return le_i64(lp, 0);
  LExpr *e = idx[0];
  for (int i = 1; i < n; i++) e = le_add(lp, le_mul(lp, e, dims[i]), idx[i]);
  return e;
}

/* --- statements --- */

LStmt *ls_body(LStmt *s) {
  if ((s->kind != LS_FOR && s->kind != LS_IF) || s->nbody != 1) die("ls_body: not a loop or if");
  return s->body[0];
}

static void give_body(LoopProgram *lp, LStmt *s) {
  s->body = arena_alloc(lp->arena, sizeof(LStmt *));
  s->body[0] = new_stmt(lp, LS_BLOCK);
  s->nbody = 1;
}

LStmt *ls_for(LoopProgram *lp, LStmt *block, int var, LExpr *lo, LExpr *hi) {
  if (lo->type != LT_I64 || hi->type != LT_I64) die("ls_for: bounds must be i64");
  LStmt *s = new_stmt(lp, LS_FOR);
  s->var = var;
  s->lo = lo;
  s->hi = hi;
  give_body(lp, s);
  return append(lp, block, s);
}

LStmt *ls_store(LoopProgram *lp, LStmt *block, int buf, LExpr *index, LExpr *value) {
  if (buf < 0 || buf >= lp->nbufs) die("bad buffer %d", buf);
  if (index->type != LT_I64) die("store index must be i64");
  if (value->type != lp->bufs[buf].elem) die("store of the wrong type into %s", lp->bufs[buf].name);
  LStmt *s = new_stmt(lp, LS_STORE);
  s->buf = buf;
  s->index = index;
  s->value = value;
  return append(lp, block, s);
}

LStmt *ls_prefetch(LoopProgram *lp, LStmt *block, int buf, LExpr *index) {
  if (buf < 0 || buf >= lp->nbufs) die("bad buffer %d", buf);
  if (index->type != LT_I64) die("prefetch index must be i64");
  LStmt *s = new_stmt(lp, LS_PREFETCH);
  s->buf = buf;
  s->index = index;
  return append(lp, block, s);
}

LStmt *ls_accumulate(LoopProgram *lp, LStmt *block, int buf, LExpr *index, LExpr *value) {
  LStmt *s = ls_store(lp, block, buf, index, value);
  s->accumulate = 1;
  return s;
}

int ls_local(LoopProgram *lp, LStmt *block, LType t, LExpr *init) {
  if (init->type != t) die("ls_local: initial value of the wrong type");
  int n = lp->nlocals;
  LType *slot = arena_push(lp->arena, &lp->local_types, &n, sizeof(LType));
  *slot = t;
  int id = lp->nlocals++;
  LStmt *s = new_stmt(lp, LS_LOCAL);
  s->local = id;
  s->value = init;
  append(lp, block, s);
  return id;
}

LStmt *ls_set(LoopProgram *lp, LStmt *block, int local, LExpr *value) {
  if (local < 0 || local >= lp->nlocals) die("bad local %d", local);
  if (value->type != lp->local_types[local]) die("ls_set: value of the wrong type");
  LStmt *s = new_stmt(lp, LS_SET);
  s->local = local;
  s->value = value;
  return append(lp, block, s);
}

LStmt *ls_reduce(LoopProgram *lp, LStmt *block, int var, LExpr *lo, LExpr *hi, int local, LOp op) {
  if (local < 0 || local >= lp->nlocals) die("bad local %d", local);
  if (op != LO_ADD && op != LO_MAX) die("ls_reduce: only + and max reduce");
  if (op == LO_MAX && lp->local_types[local] != LT_F32) die("ls_reduce: max reduces f32 only");
  LStmt *s = ls_for(lp, block, var, lo, hi);
  s->reduce = local + 1;
  s->reduce_op = op;
  s->vec = lp->local_types[local] == LT_F32 ? lp->vec_f32 : 0;
  return s;
}

LStmt *ls_combine(LoopProgram *lp, LStmt *block, int local, LOp op, LExpr *value) {
  LStmt *s = ls_set(lp, block, local, value);
  s->accumulate = 1;
  s->reduce_op = op;
  return s;
}

LStmt *ls_if(LoopProgram *lp, LStmt *block, LExpr *cond) {
  if (cond->type != LT_BOOL) die("ls_if: condition must be bool");
  LStmt *s = new_stmt(lp, LS_IF);
  s->cond = cond;
  give_body(lp, s);
  return append(lp, block, s);
}

LStmt *ls_check(LoopProgram *lp, LStmt *block, LExpr *cond, int code, const char *message,
                int nargs, LExpr *const *args) {
  if (cond->type != LT_BOOL) die("ls_check: condition must be bool");
  if (nargs < 0 || nargs > 4) die("ls_check: at most 4 arguments");
  LStmt *s = new_stmt(lp, LS_CHECK);
  s->cond = cond;
  s->code = code;
  s->message = arena_strdup(lp->arena, message);
  s->nargs = nargs;
  for (int i = 0; i < nargs; i++) {
    if (args[i]->type != LT_I64) die("ls_check: arguments must be i64");
    s->args[i] = args[i];
  }
  return append(lp, block, s);
}

/* --- printing --- */

static const char *type_name(LType t) {
  switch (t) {
  case LT_I64: return "i64";
  case LT_I32: return "i32";
  case LT_F32: return "f32";
  case LT_BOOL: return "bool";
  }
  return "?";
}

/* Binary operators: spelling and precedence (higher binds tighter); 0 = printed as a call. */
static const char *bin_spelling(LOp op, int *prec) {
  switch (op) {
  case LO_ADD: *prec = 5; return "+";
  case LO_SUB: *prec = 5; return "-";
  case LO_MUL: *prec = 6; return "*";
  case LO_DIV: *prec = 6; return "/";
  case LO_MOD: *prec = 6; return "%";
  case LO_LT: *prec = 4; return "<";
  case LO_LE: *prec = 4; return "<=";
  case LO_GT: *prec = 4; return ">";
  case LO_GE: *prec = 4; return ">=";
  case LO_EQ: *prec = 3; return "==";
  case LO_NE: *prec = 3; return "!=";
  case LO_AND: *prec = 2; return "&&";
  case LO_OR: *prec = 1; return "||";
  case LO_MIN: *prec = 0; return "min";
  case LO_MAX: *prec = 0; return "max";
  case LO_POW: *prec = 0; return "pow";
  default: break;
  }
  *prec = 0;
  return "?";
}

static const char *un_spelling(LOp op) {
  switch (op) {
  case LO_NEG: return "-";
  case LO_EXP: return "exp";
  case LO_LOG: return "log";
  case LO_TANH: return "tanh";
  case LO_SIGMOID: return "sigmoid";
  case LO_SQRT: return "sqrt";
  case LO_ABS: return "abs";
  case LO_NOT: return "!";
  default: return "?";
  }
}

static void print_expr(FILE *out, const LoopProgram *lp, const LExpr *e, int ctx_prec);

static void print_expr(FILE *out, const LoopProgram *lp, const LExpr *e, int ctx_prec) {
  switch (e->kind) {
  case LE_CONST:
    if (e->type == LT_F32) fprintf(out, "%.9g", e->fval);
    else if (e->type == LT_BOOL) fputs(e->ival ? "true" : "false", out);
    else fprintf(out, "%" PRId64, e->ival);
    return;
  case LE_VAR: fputs(lp->var_names[e->var], out); return;
  case LE_LOCAL: fprintf(out, "%%%d", e->local); return;
  case LE_BATCH: fputs("batch", out); return;
  case LE_SEQ: fputs(lp->graph && lp->graph->sym ? lp->graph->sym : "seq", out); return;
  case LE_LOAD:
    fprintf(out, "%s[", lp->bufs[e->buf].name);
    print_expr(out, lp, e->a, 0);
    fputc(']', out);
    return;
  case LE_BIN: {
    int prec;
    const char *sp = bin_spelling(e->op, &prec);
    if (prec == 0) {
      fprintf(out, "%s(", sp);
      print_expr(out, lp, e->a, 0);
      fputs(", ", out);
      print_expr(out, lp, e->b, 0);
      fputc(')', out);
      return;
    }
    int paren = prec < ctx_prec;
    if (paren) fputc('(', out);
    print_expr(out, lp, e->a, prec);
    fprintf(out, " %s ", sp);
    print_expr(out, lp, e->b, prec + 1);  /* left-associative */
    if (paren) fputc(')', out);
    return;
  }
  case LE_UN:
    if (e->op == LO_NEG || e->op == LO_NOT) {
      fputs(un_spelling(e->op), out);
      print_expr(out, lp, e->a, 7);
    } else {
      fprintf(out, "%s(", un_spelling(e->op));
      print_expr(out, lp, e->a, 0);
      fputc(')', out);
    }
    return;
  case LE_FMA:
    fputs("fma(", out);
    print_expr(out, lp, e->a, 0);
    fputs(", ", out);
    print_expr(out, lp, e->b, 0);
    fputs(", ", out);
    print_expr(out, lp, e->c, 0);
    fputc(')', out);
    return;
  case LE_SELECT:
    fputs("select(", out);
    print_expr(out, lp, e->a, 0);
    fputs(", ", out);
    print_expr(out, lp, e->b, 0);
    fputs(", ", out);
    print_expr(out, lp, e->c, 0);
    fputc(')', out);
    return;
  case LE_CAST:
    fprintf(out, "%s(", type_name(e->type));
    print_expr(out, lp, e->a, 0);
    fputc(')', out);
    return;
  case LE_RAND:
    fprintf(out, "rand(%lld, ", (long long)e->ival);
    print_expr(out, lp, e->a, 0);
    fputc(')', out);
    return;
  case LE_SWAP:
    fputs("swap(", out);
    print_expr(out, lp, e->a, 0);
    fprintf(out, ", %lld)", (long long)e->ival);
    return;
  }
}

static void indent(FILE *out, int depth) {
  for (int i = 0; i < depth; i++) fputs("  ", out);
}

static void print_stmt(FILE *out, const LoopProgram *lp, const LStmt *s, int depth);

static void print_block(FILE *out, const LoopProgram *lp, const LStmt *b, int depth) {
  for (int i = 0; i < b->nbody; i++) print_stmt(out, lp, b->body[i], depth);
}

static void print_stmt(FILE *out, const LoopProgram *lp, const LStmt *s, int depth) {
  switch (s->kind) {
  case LS_BLOCK:
    print_block(out, lp, s, depth);
    return;
  case LS_FOR:
    indent(out, depth);
    fprintf(out, "for %s in [", lp->var_names[s->var]);
    print_expr(out, lp, s->lo, 0);
    fputs(", ", out);
    print_expr(out, lp, s->hi, 0);
    fputc(')', out);
    if (s->vec > 1) fprintf(out, " vec %d", s->vec);
    if (s->unroll) fputs(s->unroll > 0 ? " unroll" : " nounroll", out);
    if (s->parallel) fputs(" parallel", out);
    if (s->steps) fputs(" steps", out);
    if (s->reduce) fprintf(out, " reduce %%%d %s", s->reduce - 1, s->reduce_op == LO_MAX ? "max" : "+");
    fputs(" {\n", out);
    print_block(out, lp, s->body[0], depth + 1);
    indent(out, depth);
    fputs("}\n", out);
    return;
  case LS_STORE:
    indent(out, depth);
    fprintf(out, "%s[", lp->bufs[s->buf].name);
    print_expr(out, lp, s->index, 0);
    fprintf(out, "] %s ", s->accumulate ? "+=" : "=");
    print_expr(out, lp, s->value, 0);
    fputc('\n', out);
    return;
  case LS_PREFETCH:
    indent(out, depth);
    fprintf(out, "prefetch %s[", lp->bufs[s->buf].name);
    print_expr(out, lp, s->index, 0);
    fputs("]\n", out);
    return;
  case LS_LOCAL:
    indent(out, depth);
    fprintf(out, "local %%%d: %s = ", s->local, type_name(lp->local_types[s->local]));
    print_expr(out, lp, s->value, 0);
    fputc('\n', out);
    return;
  case LS_SET:
    indent(out, depth);
    if (s->accumulate) fprintf(out, "%%%d %s= ", s->local, s->reduce_op == LO_MAX ? "max" : "+");
    else fprintf(out, "%%%d = ", s->local);
    print_expr(out, lp, s->value, 0);
    fputc('\n', out);
    return;
  case LS_IF:
    indent(out, depth);
    fputs("if ", out);
    print_expr(out, lp, s->cond, 0);
    fputs(" {\n", out);
    print_block(out, lp, s->body[0], depth + 1);
    indent(out, depth);
    if (s->else_body) {
      fputs("} else {\n", out);
      print_stmt(out, lp, s->else_body, depth + 1);
      indent(out, depth);
    }
    fputs("}\n", out);
    return;
  case LS_CHECK:
    indent(out, depth);
    fputs("check ", out);
    print_expr(out, lp, s->cond, 0);
    fprintf(out, " else fail %d \"", s->code);
    for (const char *p = s->message; *p; p++) {
      if (*p == '"' || *p == '\\') fputc('\\', out);
      if (*p == '\n') fputs("\\n", out);
      else fputc(*p, out);
    }
    fputc('"', out);
    for (int i = 0; i < s->nargs; i++) {
      fputs(", ", out);
      print_expr(out, lp, s->args[i], 0);
    }
    fputc('\n', out);
    return;
  }
}

static void print_count(FILE *out, const LoopProgram *lp, SymCount c, int batched) {
  const char *sym = lp->graph && lp->graph->sym ? lp->graph->sym : "seq";
  if (batched) fputs("batch x ", out);
  if (c.per_seq && c.fixed) fprintf(out, "(%" PRId64 " + %" PRId64 " x %s)", c.fixed, c.per_seq, sym);
  else if (c.per_seq) fprintf(out, "%" PRId64 " x %s", c.per_seq, sym);
  else fprintf(out, "%" PRId64, c.fixed);
}

void loops_print(FILE *out, const LoopProgram *lp) {
  fprintf(out, "loops %s", lp->graph ? lp->graph->name : "?");
  if (lp->mode != MODE_FORWARD) fprintf(out, " %s", lp->entry);
  if (lp->symbolic_seq) fprintf(out, " (batch, %s)", lp->graph->sym);
  fprintf(out, " vec_f32=%d\n", lp->vec_f32);
  fputs("buffers:\n", out);
  for (int i = 0; i < lp->nbufs; i++) {
    const LBuf *b = &lp->bufs[i];
    fprintf(out, "  %s: %s ", b->name, type_name(b->elem));
    switch (b->kind) {
    case BUF_PARAM: fprintf(out, "param +%" PRId64 " [", b->offset); break;
    case BUF_PACKED: fprintf(out, "packed +%" PRId64 " [", b->offset); break;
    case BUF_INPUT: fprintf(out, "input %d [", b->index); break;
    case BUF_OUTPUT: fprintf(out, "output %d [", b->index); break;
    case BUF_TEMP: fputs("temp [", out); break;
    case BUF_TARGET: fprintf(out, "target %d [", b->index); break;
    case BUF_GRAD: fprintf(out, "grad +%" PRId64 " [", b->offset); break;
    case BUF_STATE: fprintf(out, "state +%" PRId64 " [", b->offset); break;
    case BUF_HYPER: fputs("hyper [", out); break;
    case BUF_SCALAR: fprintf(out, "scalar +%" PRId64 " [", b->offset); break;
    case BUF_RSTATE: fputs("rstate [", out); break;
    }
    print_count(out, lp, b->per_sample, b->batched);
    fputc(']', out);
    if (b->kind == BUF_TEMP && b->slot >= 0)
      fprintf(out, " slot %d, kernels %d..%d", b->slot, b->first_use, b->last_use);
    else if (b->kind == BUF_TEMP && b->first_use < 0)
      fputs(" unused", out); /* e.g. a value its producer wrote into its consumer's copy */
    fputc('\n', out);
  }
  for (int i = 0; i < lp->nprepare; i++) {
    fprintf(out, "prepare %s {\n", lp->prepare[i].name);
    print_block(out, lp, lp->prepare[i].body, 1);
    fputs("}\n", out);
  }
  for (int i = 0; i < lp->nunpack; i++) {
    if (lp->unpack[i].restores < 0) continue;   /* a kernel reads the parameter (backend.c) */
    fprintf(out, "unpack %s into %s {\n", lp->unpack[i].name, lp->bufs[lp->unpack[i].restores].name);
    print_block(out, lp, lp->unpack[i].body, 1);
    fputs("}\n", out);
  }
  for (int i = 0; i < lp->nkernels; i++) {
    fprintf(out, "kernel %d %s {\n", i, lp->kernels[i].name);
    print_block(out, lp, lp->kernels[i].body, 1);
    fputs("}\n", out);
  }
  fprintf(out, "packed: %" PRId64 " floats\n", lp->packed_floats);
  fprintf(out, "workspace: %d slot%s\n", lp->nslots, lp->nslots == 1 ? "" : "s");
  for (int s = 0; s < lp->nslots; s++) {
    fprintf(out, "  slot %d: ", s);
    print_count(out, lp, lp->slot_size[s], lp->slot_batched[s]);
    fputc('\n', out);
  }
}

/* --- flat loops on threads ---
 *
 * An elementwise kernel (an activation, its gradient, an optimizer's update, a copy) is one
 * vectorized loop over a flat index i that touches every buffer it writes at exactly [i].  Its
 * iterations are independent, so it is split into blocks of FLAT_BLOCK elements run as a
 * parallel loop:
 *     for i.blk in [0, (hi - lo + FLAT_BLOCK - 1) / FLAT_BLOCK) parallel {
 *       for i in [lo + i.blk FLAT_BLOCK, min(lo + i.blk FLAT_BLOCK + FLAT_BLOCK, hi)) vec W
 * The pool's work estimate keeps a short one on the calling thread.  A loop qualifies when it
 * is at a kernel's top level, vectorized, not a reduction, has no inner loop, and every store
 * and every load of a buffer it stores is at [i]. */
#define FLAT_BLOCK 4096

static int flat_expr_ok(const LExpr *e, int var, const char *stored) {
  if (!e) return 1;
  if (e->kind == LE_LOAD && stored[e->buf] && !(e->a->kind == LE_VAR && e->a->var == var)) return 0;
  return flat_expr_ok(e->a, var, stored) && flat_expr_ok(e->b, var, stored) &&
         flat_expr_ok(e->c, var, stored);
}

/* marks the buffers s stores; 0 when s has a statement the split does not allow */
static int flat_stores(const LStmt *s, int var, char *stored) {
  if (!s) return 1;
  switch (s->kind) {
  case LS_FOR: return 0;
  case LS_STORE:
    if (!(s->index->kind == LE_VAR && s->index->var == var)) return 0;
    stored[s->buf] = 1;
    return 1;
  case LS_BLOCK: case LS_IF:
    for (int i = 0; i < s->nbody; i++)
      if (!flat_stores(s->body[i], var, stored)) return 0;
    return flat_stores(s->else_body, var, stored);
  default: return 1;
  }
}

static int flat_reads_ok(const LStmt *s, int var, const char *stored) {
  if (!s) return 1;
  for (int i = 0; i < s->nbody; i++)
    if (!flat_reads_ok(s->body[i], var, stored)) return 0;
  if (!flat_reads_ok(s->else_body, var, stored)) return 0;
  for (int i = 0; i < s->nargs; i++)
    if (!flat_expr_ok(s->args[i], var, stored)) return 0;
  return flat_expr_ok(s->index, var, stored) && flat_expr_ok(s->value, var, stored) &&
         flat_expr_ok(s->cond, var, stored);
}

static LStmt *split_flat_loop(LoopProgram *lp, LStmt *s) {
  if (s->kind != LS_FOR || s->parallel || s->vec <= 1 || s->reduce) return s;
  char *stored = xcalloc((size_t)lp->nbufs + 1, 1);
  int ok = flat_stores(s->body[0], s->var, stored) && flat_reads_ok(s->body[0], s->var, stored);
  free(stored);
  if (!ok) return s;
  if (s->lo->kind == LE_CONST && s->hi->kind == LE_CONST && s->hi->ival - s->lo->ival <= FLAT_BLOCK)
    return s;
  int blk = lvar(lp, arena_printf(lp->arena, "%s.blk", lp->var_names[s->var]));
  LStmt *outer = new_stmt(lp, LS_FOR);
  give_body(lp, outer);
  outer->var = blk;
  outer->lo = le_i64(lp, 0);
  outer->hi = le_bin(lp, LO_DIV, le_add(lp, le_sub(lp, s->hi, s->lo), le_i64(lp, FLAT_BLOCK - 1)),
                     le_i64(lp, FLAT_BLOCK));
  outer->parallel = 1;
  LExpr *from = le_add(lp, s->lo, le_mul(lp, le_var(lp, blk), le_i64(lp, FLAT_BLOCK)));
  /* the min's first side is `from + FLAT_BLOCK` with from the loop's own lo: codegen's trip
   * estimate reads FLAT_BLOCK from it */
  s->hi = le_bin(lp, LO_MIN, le_add(lp, from, le_i64(lp, FLAT_BLOCK)), s->hi);
  s->lo = from;
  append(lp, ls_body(outer), s);
  return outer;
}

void loops_split_flat(LoopProgram *lp) {
  for (int k = 0; k < lp->nkernels + lp->nprepare; k++) {
    Kernel *kn = k < lp->nkernels ? &lp->kernels[k] : &lp->prepare[k - lp->nkernels];
    for (int i = 0; i < kn->body->nbody; i++) kn->body->body[i] = split_flat_loop(lp, kn->body->body[i]);
  }
}
