/* parser.y - the nncc grammar (bison, pure, with locations).
 *
 * The grammar is the one in ast.h's header comment.  Statements have no
 * separator: a statement ends where its expression cannot go on, and the next
 * one begins with an identifier or a keyword, which no expression can be
 * followed by; so the grammar is LALR(1) without newline tokens (%expect 0).
 * Precedence, loosest first: |>, +, *.  A pipe stage is a call or a bare name.
 *
 * Errors.  Syntax errors are reported by yyreport_syntax_error in the words of
 * the language ("expected ')' to close '(' at line 3, found ...", "expected
 * an expression, found ..."), using what the scanner remembers about open
 * brackets (lexer.l); LAC (parse.lac full) keeps the expected-token lists
 * exact.  Recovery: a bad statement becomes `stmts error`; the culprit token
 * is kept when it can start the next statement at the start of a line (or is
 * a '}'), otherwise it is dropped and the scanner skips to the next line, so
 * one run reports one error per broken statement (yyerrok: the next error is
 * reported at once).  A bad declaration header (`program error`) recovers at
 * the next `model`, `block` or `train`.  Parsing stops after DIAG_MAX_ERRORS
 * errors (the scanner then reports end of file).
 *
 * Depth.  Open brackets are capped by the scanner and expression trees by the
 * actions (Expr.depth) at NNCC_MAX_NESTING, so no recursive walk of the AST
 * (ast_print, sema) can exhaust the C stack, and the parser stack stays small.
 *
 * Memory: every node and string lives in the Program's arena, so discarded
 * values need no %destructor.
 */
%define api.pure full
%define api.location.type {Loc}
%define api.token.prefix {T_}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%lex-param {yyscan_t scanner}
%parse-param {yyscan_t scanner} {Parser *P}

%code requires {
#include "ast.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* Open brackets (and expression trees) deeper than this are a diagnosed error. */
enum { NNCC_MAX_NESTING = 1000 };

/* Error recovery in the scanner: drop tokens up to the first of a line (or a '}'),
 * or up to the next `model`, `block` or `train`. */
enum { LEX_SKIP_LINE = 1, LEX_SKIP_DECL = 2 };

typedef struct Bracket {
  char open;             /* '(', '[' or '{' */
  Loc loc;
  const char *label;     /* "'('", or "'model alexnet'" for a declaration's brace */
} Bracket;

/* What the scanner keeps between tokens (see lexer.l). */
typedef struct LexState {
  const SourceFile *file;
  Arena *arena;          /* the Program's: token strings live there */
  int line, col;         /* the position of the next byte */
  size_t offset;         /* the offset of the next byte */
  size_t match_off, match_len; /* the text of the last match */
  int line_has_token;    /* a token was already scanned on the current line */
  /* the last token returned to the parser (the culprit of a syntax error) */
  int tok;               /* token kind */
  Loc tok_loc;
  size_t tok_off, tok_len; /* its text in file->text */
  int tok_at_line_start; /* it is the first token of its line */
  int prev_tok;          /* the token scanned before the current one */
  Loc prev_loc;
  Loc decl_loc;          /* the keyword and name that decl_label names */
  int before_tok;        /* the token returned before tok (0: none) */
  Loc before_loc;
  Loc prev_end;          /* the last token returned before end of file */
  int have_prev;
  /* open brackets; the last token's effect is applied when the next is scanned */
  Bracket brackets[NNCC_MAX_NESTING + 1];
  int nbrackets;
  int pending;           /* the last token if it is a bracket, else 0 */
  Bracket pending_bracket; /* what it pushes, if an opener */
  const char *decl_label; /* "'model alexnet'": the label of the next '{' */
  int skip;              /* error recovery: LEX_SKIP_LINE or LEX_SKIP_DECL, else 0 */
  int fatal;             /* nesting limit or error limit hit: only end of file from now on */
} LexState;

typedef struct Parser {
  Program *prog;
  LexState *lex;
} Parser;

/* A growing list, while its declaration is parsed. */
typedef struct StmtList { Stmt *items; int n; } StmtList;
typedef struct ParamList { BlockParam *items; int n; } ParamList;

/* lexer.l */
LexState *lex_state_new(const SourceFile *file, Arena *arena);
void lex_state_free(LexState *L);
void lex_close_statement(LexState *L);
}

%union {
  const char *str;       /* NAME */
  struct { int64_t i; double f; const char *text; } num; /* INT, FLOAT */
  Expr *expr;
  Arg arg;
  Stmt stmt;
  StmtList stmts;
  ParamList params;
  TypeExpr type;
  ShapeExpr shape;
  DimExpr dim;
}

%code {
#include <string.h>

#include "lexer.h"

static void yyerror(YYLTYPE *loc, yyscan_t scanner, Parser *P, const char *msg);

/* @$ of a rule: from its first symbol to its last; an empty rule sits just after the symbol before it. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                        \
  do {                                                                     \
    if (N) {                                                               \
      (Cur) = loc_span(YYRHSLOC(Rhs, 1), YYRHSLOC(Rhs, N));                \
    } else {                                                               \
      (Cur) = YYRHSLOC(Rhs, 0);                                            \
      (Cur).line = (Cur).end_line;                                         \
      (Cur).col = (Cur).end_col;                                           \
    }                                                                      \
  } while (0)

/* The parser stack only grows with open brackets, which the scanner caps. */
#define YYMAXDEPTH 100000

#define A (P->prog)
/* Every expression action checks the depth of the tree it built. */
#define CHECK_DEPTH(e, loc)                                                \
  do {                                                                     \
    if ((e)->depth > NNCC_MAX_NESTING) {                                   \
      too_deep(P, (loc));                                                  \
      YYABORT;                                                             \
    }                                                                      \
  } while (0)

static void too_deep(Parser *P, Loc loc);
static Expr *call_end(Expr *call, Loc rparen);
static Expr *paren(Expr *e);
static Arg arg_make(const char *name, Loc name_loc, Expr *value);
static void stmt_push(Parser *P, StmtList *list, Stmt s);
static Stmt stmt_decl(StmtKind kind, Loc loc, const char *name, Loc name_loc, TypeExpr type);
static Stmt stmt_let(StmtKind kind, Loc loc, const char *name, Loc name_loc, Expr *value);
static Stmt stmt_annotate(Stmt s, ShapeExpr annot, Loc loc);
static Stmt stmt_return(Loc loc, Expr *value);
static TypeExpr type_make(const char *elem, Loc elem_loc, ShapeExpr shape);
static ShapeExpr shape_push(Parser *P, ShapeExpr s, DimExpr d, Loc loc);
static DimExpr dim_int(int64_t v, Loc loc);
static DimExpr dim_symbol(const char *name, Loc loc);
static ParamList param_push(Parser *P, ParamList l, const char *name, Loc loc);
static void decl_add(Parser *P, DeclKind kind, Loc kw, const char *name, Loc name_loc,
                     ParamList params, StmtList body, Loc end);
static void stmt_recover(Parser *P, int *lookahead, int *errstatus);
static void decl_recover(Parser *P, int *lookahead, int *errstatus);
}

%initial-action {
  @$ = (Loc){.file = P->lex->file, .line = 1, .col = 0, .end_line = 1, .end_col = 0};
  (void)yynerrs; /* the count that matters is diag_error_count() */
}

%token <str> NAME "identifier"
%token <num> INT "integer" FLOAT "number"
%token MODEL "model" BLOCK "block" TRAIN "train" INPUT "input" TARGET "target"
%token OUTPUT "output" RETURN "return" TRUE "true" FALSE "false"
%token PIPE "|>"

%type <expr> expr primary stage call call_args list_items
%type <arg> arg
%type <stmt> stmt let
%type <stmts> stmts
%type <params> params param_list
%type <type> type
%type <shape> shape dims
%type <dim> dim

%precedence PIPE
%left '+'
%left '*'

%%

/* program = decl* */
program
  : %empty
  | program decl
  | program error                 { decl_recover(P, &yychar, &yyerrstatus); }
  ;

/* decl = "model" NAME "{" stmt* "}" | "block" NAME "(" params ")" "{" stmt* "}" | "train" NAME "{" stmt* "}" */
decl
  : MODEL NAME '{' stmts '}'                 { decl_add(P, DECL_MODEL, @1, $2, @2, (ParamList){0}, $4, @5); }
  | BLOCK NAME '(' params ')' '{' stmts '}'  { decl_add(P, DECL_BLOCK, @1, $2, @2, $4, $7, @8); }
  | TRAIN NAME '{' stmts '}'                 { decl_add(P, DECL_TRAIN, @1, $2, @2, (ParamList){0}, $4, @5); }
  ;

params
  : %empty                        { $$ = (ParamList){0}; }
  | param_list
  ;

param_list
  : NAME                          { $$ = param_push(P, (ParamList){0}, $1, @1); }
  | param_list ',' NAME           { $$ = param_push(P, $1, $3, @3); }
  ;

stmts
  : %empty                        { $$ = (StmtList){0}; }
  | stmts stmt                    { $$ = $1; stmt_push(P, &$$, $2); }
  | stmts error                   { $$ = $1; stmt_recover(P, &yychar, &yyerrstatus); }
  ;

/* stmt = "input" NAME ":" type | "target" NAME ":" type | ["output"] NAME "=" expr [":" shape] | "return" expr */
stmt
  : INPUT NAME ':' type           { $$ = stmt_decl(ST_INPUT, @$, $2, @2, $4); }
  | TARGET NAME ':' type          { $$ = stmt_decl(ST_TARGET, @$, $2, @2, $4); }
  | let
  | let ':' shape                 { $$ = stmt_annotate($1, $3, @$); }
  | RETURN expr                   { $$ = stmt_return(@$, $2); }
  ;

let
  : NAME '=' expr                 { $$ = stmt_let(ST_LET, @$, $1, @1, $3); }
  | OUTPUT NAME '=' expr          { $$ = stmt_let(ST_OUTPUT, @$, $2, @2, $4); }
  ;

/* type = NAME shape   (f32, i32, label: checked by sema) */
type
  : NAME shape                    { $$ = type_make($1, @1, $2); }
  ;

/* shape = "[" dim ("," dim)* "]" */
shape
  : '[' dims ']'                  { $$ = $2; $$.loc = @$; }
  ;

dims
  : dim                           { $$ = shape_push(P, (ShapeExpr){0}, $1, @$); }
  | dims ',' dim                  { $$ = shape_push(P, $1, $3, @$); }
  ;

/* dim = INT | NAME */
dim
  : INT                           { $$ = dim_int($1.i, @1); }
  | NAME                          { $$ = dim_symbol($1, @1); }
  ;

/* expr = expr "|>" stage | expr "+" expr | expr "*" expr | primary */
expr
  : expr PIPE stage               { $$ = ast_pipe(A, $1, $3); CHECK_DEPTH($$, @$); }
  | expr '+' expr                 { $$ = ast_binary(A, EX_ADD, $1, $3); CHECK_DEPTH($$, @$); }
  | expr '*' expr                 { $$ = ast_binary(A, EX_MUL, $1, $3); CHECK_DEPTH($$, @$); }
  | primary
  ;

/* primary = call | NAME | INT | FLOAT | "true" | "false" | "(" expr ")" */
primary
  : call
  | NAME                          { $$ = ast_name(A, @1, $1); }
  | INT                           { $$ = ast_int(A, @1, $1.i, $1.text); }
  | FLOAT                         { $$ = ast_float(A, @1, $1.f, $1.text); }
  | TRUE                          { $$ = ast_bool(A, @1, 1); }
  | FALSE                         { $$ = ast_bool(A, @1, 0); }
  | '(' expr ')'                  { $$ = paren($2); }
  | '[' ']'                       { $$ = ast_list(A, @$); }
  | list_items ']'                { $$ = $1; $$->loc = loc_span($$->loc, @2); CHECK_DEPTH($$, @$); }
  ;

/* list = "[" [expr ("," expr)*] "]"   (training settings: freeze = [a, b]) */
list_items
  : '[' expr                      { $$ = ast_list(A, @1); ast_list_push(A, $$, $2); }
  | list_items ',' expr           { $$ = $1; ast_list_push(A, $$, $3); }
  ;

/* stage = call | NAME   (a |> f(b) is f(a, b); a |> g is g(a)) */
stage
  : call
  | NAME                          { $$ = ast_name(A, @1, $1); }
  ;

/* call = NAME "(" [arg ("," arg)*] ")" */
call
  : NAME '(' ')'                  { $$ = call_end(ast_call(A, @1, $1), @3); }
  | call_args ')'                 { $$ = call_end($1, @2); CHECK_DEPTH($$, @$); }
  ;

call_args
  : NAME '(' arg                  { $$ = ast_call(A, @1, $1); ast_call_arg(A, $$, $3.name, $3.name_loc, $3.value); }
  | call_args ',' arg             { $$ = $1; ast_call_arg(A, $$, $3.name, $3.name_loc, $3.value); }
  ;

/* arg = [NAME "="] expr */
arg
  : expr                          { $$ = arg_make(NULL, (Loc){0}, $1); }
  | NAME '=' expr                 { $$ = arg_make($1, @1, $3); }
  ;

%%

/* --- helpers of the actions --- */

static void too_deep(Parser *P, Loc loc) {
  diag_error(loc, "expression nested too deeply (more than %d levels)", NNCC_MAX_NESTING);
  P->lex->fatal = 1;
}

static Expr *call_end(Expr *call, Loc rparen) {
  call->rparen_loc = rparen;
  call->loc = loc_span(call->loc, rparen);
  return call;
}

static Expr *paren(Expr *e) {
  e->parenthesized = 1;
  return e;
}

static Arg arg_make(const char *name, Loc name_loc, Expr *value) {
  return (Arg){.name = name, .name_loc = name_loc, .value = value};
}

static void stmt_push(Parser *P, StmtList *list, Stmt s) {
  *(Stmt *)arena_push(A->arena, &list->items, &list->n, sizeof(Stmt)) = s;
}

static Stmt stmt_decl(StmtKind kind, Loc loc, const char *name, Loc name_loc, TypeExpr type) {
  return (Stmt){.kind = kind, .loc = loc, .name = name, .name_loc = name_loc, .type = type};
}

static Stmt stmt_let(StmtKind kind, Loc loc, const char *name, Loc name_loc, Expr *value) {
  return (Stmt){.kind = kind, .loc = loc, .name = name, .name_loc = name_loc, .value = value};
}

static Stmt stmt_annotate(Stmt s, ShapeExpr annot, Loc loc) {
  s.has_annot = 1;
  s.annot = annot;
  s.loc = loc;
  return s;
}

static Stmt stmt_return(Loc loc, Expr *value) {
  return (Stmt){.kind = ST_RETURN, .loc = loc, .value = value};
}

static TypeExpr type_make(const char *elem, Loc elem_loc, ShapeExpr shape) {
  return (TypeExpr){.elem = elem, .elem_loc = elem_loc, .shape = shape};
}

static ShapeExpr shape_push(Parser *P, ShapeExpr s, DimExpr d, Loc loc) {
  *(DimExpr *)arena_push(A->arena, &s.dims, &s.ndims, sizeof(DimExpr)) = d;
  s.loc = loc;
  return s;
}

static DimExpr dim_int(int64_t v, Loc loc) { return (DimExpr){.value = v, .loc = loc}; }

static DimExpr dim_symbol(const char *name, Loc loc) {
  return (DimExpr){.is_symbol = 1, .symbol = name, .loc = loc};
}

static ParamList param_push(Parser *P, ParamList l, const char *name, Loc loc) {
  *(BlockParam *)arena_push(A->arena, &l.items, &l.n, sizeof(BlockParam)) =
      (BlockParam){.name = name, .loc = loc};
  return l;
}

static void decl_add(Parser *P, DeclKind kind, Loc kw, const char *name, Loc name_loc,
                     ParamList params, StmtList body, Loc end) {
  Decl *d = arena_push(A->arena, &A->decls, &A->ndecls, sizeof(Decl));
  *d = (Decl){.kind = kind, .name = name, .loc = loc_span(kw, name_loc), .name_loc = name_loc,
              .params = params.items, .nparams = params.n, .body = body.items,
              .nbody = body.n, .end_loc = end};
}

static int is_stmt_start(int t) {
  return t == T_NAME || t == T_INPUT || t == T_TARGET || t == T_OUTPUT || t == T_RETURN;
}

/* After `stmts error`: keep the lookahead if the next statement can begin with it,
 * else drop it and have the scanner skip to the next line.  Then resume reporting
 * at once (yyerrok), except at end of file where bison must give up quietly. */
static void stmt_recover(Parser *P, int *lookahead, int *errstatus) {
  LexState *L = P->lex;
  if (*lookahead == T_YYEOF || L->fatal) return;
  lex_close_statement(L);
  if (*lookahead == T_YYEMPTY) {
    L->skip = LEX_SKIP_LINE;
  } else if (!(*lookahead == '}' || (L->tok_at_line_start && is_stmt_start(*lookahead)))) {
    *lookahead = T_YYEMPTY; /* yyclearin */
    L->skip = LEX_SKIP_LINE;
  }
  *errstatus = 0; /* yyerrok */
}

/* After `program error`: resume at the next `model`, `block` or `train`, skipping
 * whatever lies before it, and report the next error at once. */
static void decl_recover(Parser *P, int *lookahead, int *errstatus) {
  LexState *L = P->lex;
  if (*lookahead == T_YYEOF || L->fatal) return;
  if (*lookahead == T_MODEL || *lookahead == T_BLOCK || *lookahead == T_TRAIN) {
    L->nbrackets = 0;
  } else {
    *lookahead = T_YYEMPTY; /* yyclearin */
    L->skip = LEX_SKIP_DECL;
  }
  *errstatus = 0; /* yyerrok */
}

/* --- syntax error messages --- */

/* How the culprit token reads in a message: "identifier 'x'", "'('", "end of file". */
static const char *describe_found(Parser *P, yysymbol_kind_t sym) {
  LexState *L = P->lex;
  const char *text = L->file->text + L->tok_off;
  int n = L->tok_len > 40 ? 40 : (int)L->tok_len;
  const char *more = L->tok_len > 40 ? "..." : "";
  switch (sym) {
  case YYSYMBOL_YYEOF: return "end of file";
  case YYSYMBOL_NAME: return arena_printf(A->arena, "identifier '%.*s%s'", n, text, more);
  case YYSYMBOL_INT:
  case YYSYMBOL_FLOAT: return arena_printf(A->arena, "number '%.*s%s'", n, text, more);
  case YYSYMBOL_MODEL: case YYSYMBOL_BLOCK: case YYSYMBOL_TRAIN: case YYSYMBOL_INPUT:
  case YYSYMBOL_TARGET: case YYSYMBOL_OUTPUT: case YYSYMBOL_RETURN: case YYSYMBOL_TRUE:
  case YYSYMBOL_FALSE:
    return arena_printf(A->arena, "keyword '%.*s'", n, text);
  default: return arena_printf(A->arena, "'%.*s%s'", n, text, more);
  }
}

/* How an expected token reads: "identifier", "'model'", "'('". */
static const char *describe_expected(yysymbol_kind_t sym) {
  switch (sym) {
  case YYSYMBOL_NAME: return "an identifier";
  case YYSYMBOL_INT: return "an integer";
  case YYSYMBOL_FLOAT: return "a number";
  case YYSYMBOL_MODEL: return "'model'";
  case YYSYMBOL_BLOCK: return "'block'";
  case YYSYMBOL_TRAIN: return "'train'";
  case YYSYMBOL_INPUT: return "'input'";
  case YYSYMBOL_TARGET: return "'target'";
  case YYSYMBOL_OUTPUT: return "'output'";
  case YYSYMBOL_RETURN: return "'return'";
  case YYSYMBOL_TRUE: return "'true'";
  case YYSYMBOL_FALSE: return "'false'";
  case YYSYMBOL_PIPE: return "'|>'";
  default: return yysymbol_name(sym); /* the character tokens: "'('" */
  }
}

static int has(const yysymbol_kind_t *set, int n, yysymbol_kind_t sym) {
  for (int i = 0; i < n; i++)
    if (set[i] == sym) return 1;
  return 0;
}

/* Removes the symbols of group from set when all of them are in it; returns 1 if so. */
static int take_group(yysymbol_kind_t *set, int *n, const yysymbol_kind_t *group, int ng) {
  for (int i = 0; i < ng; i++)
    if (!has(set, *n, group[i])) return 0;
  int k = 0;
  for (int i = 0; i < *n; i++)
    if (!has(group, ng, set[i])) set[k++] = set[i];
  *n = k;
  return 1;
}

static int is_keyword(int t) {
  return t == T_MODEL || t == T_BLOCK || t == T_TRAIN || t == T_INPUT || t == T_TARGET ||
         t == T_OUTPUT || t == T_RETURN || t == T_TRUE || t == T_FALSE;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, Parser *P) {
  (void)scanner;
  LexState *L = P->lex;
  if (L->fatal) return 0;
  yysymbol_kind_t found = yypcontext_token(ctx);
  Loc loc = *yypcontext_location(ctx);
  yysymbol_kind_t exp[YYNTOKENS];
  int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
  if (n < 0) n = 0;
  yysymbol_kind_t exp0[YYNTOKENS];
  int n0 = n;
  memcpy(exp0, exp, sizeof exp);
  const char *found_s = describe_found(P, found);

  /* a closer that closes nothing */
  int closer = L->tok == ')' || L->tok == ']' || L->tok == '}' ? L->tok : 0;
  if (closer) {
    char want = closer == ')' ? '(' : closer == ']' ? '[' : '{';
    int open = 0;
    for (int i = 0; i < L->nbrackets; i++) open |= L->brackets[i].open == want;
    if (!open) {
      diag_error(loc, "unmatched '%c'", closer);
      return 0;
    }
  }

  /* something left open: point back at it */
  if (L->nbrackets > 0) {
    const Bracket *top = &L->brackets[L->nbrackets - 1];
    int close = top->open == '(' ? ')' : top->open == '[' ? ']' : '}';
    int decl_kw = found == YYSYMBOL_MODEL || found == YYSYMBOL_BLOCK || found == YYSYMBOL_TRAIN;
    if (has(exp, n, YYTRANSLATE(close)) &&
        (found == YYSYMBOL_YYEOF || closer || (top->open == '{' && decl_kw) ||
         (top->open != '{' && loc.line > top->loc.line))) {
      diag_error(loc, "expected '%c' to close %s at line %d, found %s", close, top->label,
                 top->loc.line, found_s);
      if (top->loc.line != loc.line) diag_note(top->loc, "%s opened here", top->label);
      return 0;
    }
  }

  /* the expected tokens, in groups */
  const yysymbol_kind_t stmt_group[] = {YYSYMBOL_NAME, YYSYMBOL_INPUT, YYSYMBOL_TARGET,
                                        YYSYMBOL_OUTPUT, YYSYMBOL_RETURN};
  const yysymbol_kind_t expr_group[] = {YYSYMBOL_NAME, YYSYMBOL_INT, YYSYMBOL_FLOAT, YYSYMBOL_TRUE,
                                        YYSYMBOL_FALSE, YYTRANSLATE('('), YYTRANSLATE('[')};
  const yysymbol_kind_t op_group[] = {YYSYMBOL_PIPE, YYTRANSLATE('+'), YYTRANSLATE('*')};
  const char *items[YYNTOKENS + 3];
  int ni = 0;
  /* order: operators, single tokens, an expression, a statement, '}' */
  int ops = take_group(exp, &n, op_group, 3);
  int expr = take_group(exp, &n, expr_group, 7);
  int stmt = take_group(exp, &n, stmt_group, 5);
  int brace = 0;
  if (ops) items[ni++] = "an operator";
  for (int i = 0; i < n; i++) {
    if (exp[i] == YYTRANSLATE('}'))
      brace = 1;
    else if (exp[i] != YYSYMBOL_YYEOF)
      items[ni++] = describe_expected(exp[i]);
  }
  if (expr) items[ni++] = "an expression";
  if (stmt) items[ni++] = "a statement";
  if (brace) items[ni++] = "'}'";

  char *list = arena_strdup(A->arena, "");
  for (int i = 0; i < ni; i++)
    list = arena_printf(A->arena, "%s%s%s", list, i == 0 ? "" : i == ni - 1 ? " or " : ", ",
                        items[i]);
  if (ni)
    diag_error(loc, "expected %s, found %s", list, found_s);
  else
    diag_error(loc, "unexpected %s", found_s);
  /* `output = ...`: a keyword where a name was wanted */
  if (has(exp0, n0, YYSYMBOL_NAME) && (L->tok == '=' || L->tok == ':') && is_keyword(L->before_tok))
    diag_note(L->before_loc, "%s is a keyword; it cannot be used as a name",
              describe_expected(YYTRANSLATE(L->before_tok)));
  return 0;
}

static void yyerror(YYLTYPE *loc, yyscan_t scanner, Parser *P, const char *msg) {
  (void)scanner;
  if (P->lex->fatal) return;
  /* bison's own messages: only "memory exhausted" can reach here */
  diag_error(*loc, "%s (the input is nested too deeply)", msg);
  P->lex->fatal = 1;
}

int parse_program(const SourceFile *file, Program **out) {
  int before = diag_error_count();
  Program *prog = ast_new_program(file);
  LexState *L = lex_state_new(file, prog->arena);
  Parser parser = {.prog = prog, .lex = L};
  yyscan_t scanner;
  if (yylex_init_extra(L, &scanner)) die("cannot create the scanner");
  YY_BUFFER_STATE buf = yy_scan_bytes(file->text, (int)file->len, scanner);
  yyparse(scanner, &parser);
  yy_delete_buffer(buf, scanner);
  yylex_destroy(scanner);
  lex_state_free(L);
  *out = prog;
  return diag_error_count() - before;
}
