/* ast.c - AST construction and the --emit=ast printer.
 *
 * Every node and string lives in the Program's arena (ast_free releases them at
 * once).  The constructors keep Expr.depth, the height of the tree under a node
 * (1 for a leaf); the parser rejects trees deeper than NNCC_MAX_NESTING, so the
 * recursive printer here (and sema's walks) have a bounded C stack.
 *
 * The printed form is an indented S-expression-like tree, one node per line,
 * two spaces per level, with `@line:col` on declarations and statements:
 *
 *   model alexnet @3:1
 *     input image : f32[3, 227, 227] @4:3
 *     let conv1 @6:3 : [96, 55, 55]
 *       call conv2d
 *         name image
 *         int 96
 *         arg kernel = int 11
 *
 * It is stable: lit tests check it.
 */
#include "ast.h"

#include <inttypes.h>

Program *ast_new_program(const SourceFile *file) {
  Arena *arena = arena_new();
  Program *p = arena_alloc(arena, sizeof *p);
  p->file = file;
  p->arena = arena;
  return p;
}

void ast_free(Program *p) {
  if (p) arena_free(p->arena); /* p itself is in the arena */
}

static Expr *new_expr(Program *p, ExprKind kind, Loc loc) {
  Expr *e = arena_alloc(p->arena, sizeof *e);
  e->kind = kind;
  e->loc = loc;
  e->depth = 1;
  return e;
}

static int max_int(int a, int b) { return a > b ? a : b; }

Expr *ast_int(Program *p, Loc loc, int64_t v, const char *text) {
  Expr *e = new_expr(p, EX_INT, loc);
  e->ival = v;
  e->fval = (double)v;
  e->text = text;
  return e;
}

Expr *ast_float(Program *p, Loc loc, double v, const char *text) {
  Expr *e = new_expr(p, EX_FLOAT, loc);
  e->fval = v;
  e->text = text;
  return e;
}

Expr *ast_bool(Program *p, Loc loc, int v) {
  Expr *e = new_expr(p, EX_BOOL, loc);
  e->ival = v != 0;
  e->fval = v != 0;
  e->text = v ? "true" : "false";
  return e;
}

Expr *ast_name(Program *p, Loc loc, const char *name) {
  Expr *e = new_expr(p, EX_NAME, loc);
  e->name = name;
  e->name_loc = loc;
  return e;
}

Expr *ast_call(Program *p, Loc name_loc, const char *callee) {
  Expr *e = new_expr(p, EX_CALL, name_loc);
  e->name = callee;
  e->name_loc = name_loc;
  e->rparen_loc = name_loc;
  return e;
}

void ast_call_arg(Program *p, Expr *call, const char *name, Loc name_loc, Expr *value) {
  Arg *a = arena_push(p->arena, &call->args, &call->nargs, sizeof(Arg));
  a->name = name;
  a->name_loc = name_loc;
  a->value = value;
  call->depth = max_int(call->depth, value->depth + 1);
}

/* a |> f |> g is one pipe [a, f, g]; a parenthesized pipe on the left stays a head of its own. */
Expr *ast_pipe(Program *p, Expr *lhs, Expr *stage) {
  Expr *pipe = lhs;
  if (lhs->kind != EX_PIPE || lhs->parenthesized) {
    pipe = new_expr(p, EX_PIPE, lhs->loc);
    *(Expr **)arena_push(p->arena, &pipe->stages, &pipe->nstages, sizeof(Expr *)) = lhs;
    pipe->depth = lhs->depth + 1;
  }
  *(Expr **)arena_push(p->arena, &pipe->stages, &pipe->nstages, sizeof(Expr *)) = stage;
  pipe->depth = max_int(pipe->depth, stage->depth + 1);
  pipe->loc = loc_span(pipe->loc, stage->loc);
  return pipe;
}

Expr *ast_binary(Program *p, ExprKind kind, Expr *lhs, Expr *rhs) {
  Expr *e = new_expr(p, kind, loc_span(lhs->loc, rhs->loc));
  e->lhs = lhs;
  e->rhs = rhs;
  e->depth = max_int(lhs->depth, rhs->depth) + 1;
  return e;
}

Expr *ast_list(Program *p, Loc loc) {
  Expr *e = new_expr(p, EX_LIST, loc);
  e->depth = 1;
  return e;
}

void ast_list_push(Program *p, Expr *list, Expr *item) {
  *(Expr **)arena_push(p->arena, &list->stages, &list->nstages, sizeof(Expr *)) = item;
  list->depth = max_int(list->depth, item->depth + 1);
}

const char *ast_expr_kind_name(ExprKind k) {
  switch (k) {
  case EX_INT: return "int";
  case EX_FLOAT: return "float";
  case EX_BOOL: return "bool";
  case EX_NAME: return "name";
  case EX_CALL: return "call";
  case EX_PIPE: return "pipe";
  case EX_ADD: return "add";
  case EX_MUL: return "mul";
  case EX_LIST: return "list";
  }
  return "?";
}

/* --- printing --- */

static void indent(FILE *out, int level) {
  for (int i = 0; i < level; i++) fputs("  ", out);
}

static void print_shape(FILE *out, const ShapeExpr *s) {
  fputc('[', out);
  for (int i = 0; i < s->ndims; i++) {
    if (i) fputs(", ", out);
    if (s->dims[i].is_symbol)
      fputs(s->dims[i].symbol, out);
    else
      fprintf(out, "%" PRId64, s->dims[i].value);
  }
  fputc(']', out);
}

/* One node: its line (after `prefix`, already printed), then its children one level deeper. */
static void print_expr(FILE *out, const Expr *e, int level) {
  fputs(ast_expr_kind_name(e->kind), out);
  switch (e->kind) {
  case EX_INT: fprintf(out, " %" PRId64 "\n", e->ival); return;
  case EX_FLOAT: fprintf(out, " %s\n", e->text); return;
  case EX_BOOL: fprintf(out, " %s\n", e->ival ? "true" : "false"); return;
  case EX_NAME: fprintf(out, " %s\n", e->name); return;
  case EX_CALL:
    fprintf(out, " %s\n", e->name);
    for (int i = 0; i < e->nargs; i++) {
      indent(out, level + 1);
      if (e->args[i].name) fprintf(out, "arg %s = ", e->args[i].name);
      print_expr(out, e->args[i].value, level + 1 + (e->args[i].name != NULL));
    }
    return;
  case EX_PIPE:
  case EX_LIST:
    fputc('\n', out);
    for (int i = 0; i < e->nstages; i++) {
      indent(out, level + 1);
      print_expr(out, e->stages[i], level + 1);
    }
    return;
  case EX_ADD:
  case EX_MUL:
    fputc('\n', out);
    indent(out, level + 1);
    print_expr(out, e->lhs, level + 1);
    indent(out, level + 1);
    print_expr(out, e->rhs, level + 1);
    return;
  }
}

static void print_stmt(FILE *out, const Stmt *s) {
  indent(out, 1);
  switch (s->kind) {
  case ST_INPUT:
  case ST_TARGET:
    fprintf(out, "%s %s : %s", s->kind == ST_INPUT ? "input" : "target", s->name, s->type.elem);
    print_shape(out, &s->type.shape);
    fprintf(out, " @%d:%d\n", s->loc.line, s->loc.col);
    return;
  case ST_LET:
  case ST_OUTPUT:
    fprintf(out, "%s %s @%d:%d", s->kind == ST_LET ? "let" : "output", s->name, s->loc.line,
            s->loc.col);
    if (s->has_annot) {
      fputs(" : ", out);
      print_shape(out, &s->annot);
    }
    fputc('\n', out);
    break;
  case ST_RETURN:
    fprintf(out, "return @%d:%d\n", s->loc.line, s->loc.col);
    break;
  }
  if (s->value) {
    indent(out, 2);
    print_expr(out, s->value, 2);
  }
}

void ast_print(FILE *out, const Program *p) {
  for (int i = 0; i < p->ndecls; i++) {
    const Decl *d = &p->decls[i];
    switch (d->kind) {
    case DECL_MODEL: fprintf(out, "model %s", d->name); break;
    case DECL_TRAIN: fprintf(out, "train %s", d->name); break;
    case DECL_BLOCK:
      fprintf(out, "block %s(", d->name);
      for (int j = 0; j < d->nparams; j++) fprintf(out, "%s%s", j ? ", " : "", d->params[j].name);
      fputc(')', out);
      break;
    }
    fprintf(out, " @%d:%d\n", d->loc.line, d->loc.col);
    for (int j = 0; j < d->nbody; j++) print_stmt(out, &d->body[j]);
  }
}
