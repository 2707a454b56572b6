/* ast.h - the abstract syntax tree: a mirror of the text.
 *
 * The parser (grammar/parser.y) builds it; sema (sema.c) reads it.  Nothing is
 * resolved here: names are strings, calls are callee + arguments, a pipe is
 * the list of its stages.  All nodes and strings live in the Program's arena
 * and are freed together by ast_free().
 *
 *   program  = decl*
 *   decl     = "model" NAME "{" stmt* "}"
 *            | "block" NAME "(" params ")" "{" stmt* "}"
 *            | "train" NAME "{" stmt* "}"
 *   stmt     = "input" NAME ":" type | "target" NAME ":" type
 *            | ["output"] NAME "=" expr [":" shape] | "return" expr
 *   type     = ("f32" | "i32" | "label") shape        (any identifier is accepted; sema checks)
 *   shape    = "[" dim ("," dim)* "]"                 dim = INT | NAME
 *   expr     = expr "|>" stage | expr "+" expr | expr "*" expr
 *            | NAME "(" args ")" | NAME | NUMBER | "true" | "false" | "(" expr ")"
 */
#ifndef NNCC_AST_H
#define NNCC_AST_H

#include <stdint.h>
#include <stdio.h>

#include "diag.h"

typedef struct Expr Expr;

typedef enum ExprKind {
  EX_INT,    /* 42 */
  EX_FLOAT,  /* 0.75, 1e-4 */
  EX_BOOL,   /* true, false */
  EX_NAME,   /* x */
  EX_CALL,   /* f(a, b, k=3) */
  EX_PIPE,   /* a |> f(b) |> g : stages[0] is the head, the rest are EX_CALL or EX_NAME */
  EX_ADD,    /* a + b */
  EX_MUL,    /* a * b */
  EX_LIST,   /* [a, b] : the items are stages[] (a training setting's value: freeze = [a, b]) */
} ExprKind;

typedef struct Arg {
  const char *name;  /* NULL for a positional argument */
  Loc name_loc;      /* the keyword, when named */
  Expr *value;
} Arg;

struct Expr {
  ExprKind kind;
  Loc loc;           /* the whole expression */
  /* EX_INT / EX_FLOAT / EX_BOOL */
  int64_t ival;      /* EX_INT, EX_BOOL (0/1); EX_INT literals too large for int64 are diagnosed by the lexer */
  double fval;       /* EX_FLOAT (and EX_INT converted) */
  const char *text;  /* the literal as written */
  /* EX_NAME, EX_CALL */
  const char *name;  /* variable or callee */
  Loc name_loc;      /* the identifier alone */
  /* EX_CALL */
  Arg *args;
  int nargs;
  Loc rparen_loc;    /* the closing parenthesis (for "missing argument" carets) */
  /* EX_PIPE */
  Expr **stages;
  int nstages;
  /* EX_ADD / EX_MUL */
  Expr *lhs, *rhs;
  int parenthesized; /* written inside ( ) */
  int depth;         /* levels of nesting below and including this node (1: a leaf); the parser caps it */
};

typedef struct DimExpr {
  int is_symbol;     /* seq, n, ... */
  int64_t value;     /* when !is_symbol */
  const char *symbol;
  Loc loc;
} DimExpr;

typedef struct ShapeExpr {
  DimExpr *dims;
  int ndims;
  Loc loc;           /* from [ to ] */
} ShapeExpr;

typedef struct TypeExpr {
  const char *elem;  /* "f32", "i32", "label" (checked by sema) */
  Loc elem_loc;
  ShapeExpr shape;
} TypeExpr;

typedef enum StmtKind {
  ST_INPUT,   /* input NAME : type */
  ST_TARGET,  /* target NAME : type */
  ST_LET,     /* NAME = expr [: shape]  (also the settings of a train block) */
  ST_OUTPUT,  /* output NAME = expr [: shape] */
  ST_RETURN,  /* return expr (blocks) */
} StmtKind;

typedef struct Stmt {
  StmtKind kind;
  Loc loc;             /* the whole statement */
  const char *name;    /* INPUT, TARGET, LET, OUTPUT */
  Loc name_loc;
  TypeExpr type;       /* INPUT, TARGET */
  Expr *value;         /* LET, OUTPUT, RETURN */
  int has_annot;       /* LET, OUTPUT: a ": [..]" shape annotation follows */
  ShapeExpr annot;
} Stmt;

typedef enum DeclKind { DECL_MODEL, DECL_BLOCK, DECL_TRAIN } DeclKind;

typedef struct BlockParam {
  const char *name;
  Loc loc;
} BlockParam;

typedef struct Decl {
  DeclKind kind;
  const char *name;
  Loc loc;             /* the keyword through the name */
  Loc name_loc;
  BlockParam *params;  /* DECL_BLOCK */
  int nparams;
  Stmt *body;
  int nbody;
  Loc end_loc;         /* the closing brace */
} Decl;

typedef struct Program {
  const SourceFile *file;
  Decl *decls;
  int ndecls;
  Arena *arena;          /* owns every node and string above */
} Program;

/* --- ast.c: construction (used by the parser's actions) --- */
Program *ast_new_program(const SourceFile *file);
void ast_free(Program *p);
/* Memory: arena_alloc(p->arena, ...), arena_strndup, arena_push (util.h). */

Expr *ast_int(Program *p, Loc loc, int64_t v, const char *text);
Expr *ast_float(Program *p, Loc loc, double v, const char *text);
Expr *ast_bool(Program *p, Loc loc, int v);
Expr *ast_name(Program *p, Loc loc, const char *name);
Expr *ast_call(Program *p, Loc name_loc, const char *callee);     /* args appended with ast_call_arg */
void ast_call_arg(Program *p, Expr *call, const char *name, Loc name_loc, Expr *value);
Expr *ast_pipe(Program *p, Expr *lhs, Expr *stage);               /* flattens a |> b |> c */
Expr *ast_binary(Program *p, ExprKind kind, Expr *lhs, Expr *rhs);
Expr *ast_list(Program *p, Loc loc);                               /* [] */
void ast_list_push(Program *p, Expr *list, Expr *item);

/* --- ast.c: the --emit=ast printer (stable; tested by lit) --- */
void ast_print(FILE *out, const Program *p);
const char *ast_expr_kind_name(ExprKind k);

/* --- grammar/parser.y: the entry point; returns the number of syntax errors (diagnosed) --- */
int parse_program(const SourceFile *file, Program **out);

#endif
