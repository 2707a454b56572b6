/* diag.h - source files, locations and user diagnostics.
 *
 * Every token, AST node and graph node carries a Loc.  A diagnostic prints
 *   file:line:col: error: message
 *     <the source line>
 *         ^~~~~~
 * followed by any notes (the arithmetic that led there).  Internal errors are
 * different: die() / unreachable() print the C file and line and abort.
 */
#ifndef NNCC_DIAG_H
#define NNCC_DIAG_H

#include <stdarg.h>
#include <stddef.h>

#include "util.h"

typedef struct SourceFile {
  char *path;        /* as given on the command line */
  char *text;        /* the whole file, NUL-terminated (embedded NULs are kept in len) */
  size_t len;        /* bytes in text, excluding the final NUL */
} SourceFile;

typedef struct Loc {
  const SourceFile *file; /* NULL: no location (a note about the whole run) */
  int line, col;          /* 1-based; col counts bytes */
  int end_line, end_col;  /* last character of the span, inclusive */
} Loc;

/* Reads a file; on failure prints "nncc: cannot read PATH: reason" and returns NULL. */
SourceFile *source_load(const char *path);
/* Wraps an in-memory buffer (for the fuzzer and tests); the text is copied. */
SourceFile *source_from_memory(const char *name, const char *text, size_t len);
void source_free(SourceFile *f);

/* Joins two locations into the span from the start of a to the end of b. */
Loc loc_span(Loc a, Loc b);

void diag_error(Loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_warning(Loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A note belongs to the previous error or warning; a note with no file prints without a location. */
void diag_note(Loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fn(arg) runs after each error and warning to add notes about where the compiler is (sema:
 * "in the call of block 'unit' here"); NULL to stop. */
void diag_set_context(void (*fn)(void *arg), void *arg);

int diag_error_count(void);
int diag_warning_count(void);
void diag_reset(void);
/* Diagnostics go to stderr by default; tests and the fuzzer can silence them. */
void diag_set_quiet(int quiet);
/* After this many errors the run stops reporting (and parsing). */
enum { DIAG_MAX_ERRORS = 20 };

/* Internal compiler errors. */
_Noreturn void die_at(const char *cfile, int cline, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define die(...) die_at(__FILE__, __LINE__, __VA_ARGS__)
#define unreachable() die_at(__FILE__, __LINE__, "unreachable")

#endif
