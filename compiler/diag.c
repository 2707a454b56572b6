/* diag.c - source files and user diagnostics.
 *
 *   examples/shape_error.nn:5:11: error: conv1 is [96, 54, 54], annotated [96, 55, 55]
 *       5 |   conv1 = conv2d(image, 96, kernel=11, stride=4)   : [96, 55, 55]
 *         |           ^~~~~~
 *   note: width (224 - 11 + 2*0)/4 + 1 = 54.25, floored to 54; ...
 *
 * The source line is printed with its number and a caret under the span
 * (underlined to the span's end on the same line).  Control characters in the
 * source line are shown as spaces so the caret stays aligned; lines are cut at
 * 200 columns around the caret.  Colours are used only when stderr is a tty.
 */
#include "diag.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_errors, n_warnings, quiet, suppressed;

SourceFile *source_load(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "nncc: error: cannot read %s: %s\n", path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, len = 0;
  char *buf = xmalloc(cap);
  for (;;) {
    if (len + 1 >= cap) buf = xrealloc(buf, cap *= 2);
    size_t got = fread(buf + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0) break;
  }
  int failed = ferror(f);
  fclose(f);
  if (failed) {
    fprintf(stderr, "nncc: error: cannot read %s\n", path);
    free(buf);
    return NULL;
  }
  buf[len] = '\0';
  SourceFile *sf = xcalloc(1, sizeof *sf);
  sf->path = xstrdup(path);
  sf->text = buf;
  sf->len = len;
  return sf;
}

SourceFile *source_from_memory(const char *name, const char *text, size_t len) {
  SourceFile *sf = xcalloc(1, sizeof *sf);
  sf->path = xstrdup(name);
  sf->text = xmalloc(len + 1);
  memcpy(sf->text, text, len);
  sf->text[len] = '\0';
  sf->len = len;
  return sf;
}

void source_free(SourceFile *f) {
  if (!f) return;
  free(f->path);
  free(f->text);
  free(f);
}

Loc loc_span(Loc a, Loc b) {
  if (!a.file) return b;
  if (!b.file) return a;
  Loc r = a;
  if (b.end_line > a.end_line || (b.end_line == a.end_line && b.end_col > a.end_col)) {
    r.end_line = b.end_line;
    r.end_col = b.end_col;
  }
  return r;
}

/* The start and length of line `line` (1-based) in f, or NULL. */
static const char *find_line(const SourceFile *f, int line, size_t *len) {
  const char *p = f->text, *end = f->text + f->len;
  for (int l = 1; l < line; l++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return NULL;
    p = nl + 1;
  }
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  *len = (size_t)((nl ? nl : end) - p);
  if (*len && p[*len - 1] == '\r') (*len)--;
  return p;
}

/* The length of the well-formed UTF-8 sequence at p (2 to 4 bytes), or 0 when p[0] does not
 * start one within n bytes (overlong forms and surrogates count as malformed). */
static size_t utf8_seq(const unsigned char *p, size_t n) {
  size_t len = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? (p[0] <= 0xef ? 3 : 0)
             : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : 0;
  if (!len || len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if (len == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
  if (len == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
  return len;
}

/* Bytes of the source line as they are shown: one column per character.  Control characters
 * show as a space and bytes that are not well-formed UTF-8 as '?', so the caret line (which
 * counts columns the same way) stays under the right character. */
static size_t show_char(const unsigned char *p, size_t n, FILE *out) {
  if (p[0] < 0x80) {
    if (out) fputc(p[0] < 0x20 || p[0] == 0x7f ? ' ' : p[0], out);
    return 1;
  }
  size_t len = utf8_seq(p, n);
  if (out) {
    if (len) fwrite(p, 1, len, out);
    else fputc('?', out);
  }
  return len ? len : 1;
}

static void show_source(Loc loc) {
  size_t len;
  const char *line = find_line(loc.file, loc.line, &len);
  if (!line) return;
  const unsigned char *text = (const unsigned char *)line;
  /* a window of at most 200 bytes that holds the caret */
  size_t start = 0, col0 = loc.col > 0 ? (size_t)loc.col - 1 : 0;
  if (col0 > len) col0 = len;
  if (len > 200 && col0 > 100) start = col0 - 100;
  size_t stop = len - start > 200 ? start + 200 : len;
  char num[16];
  int w = snprintf(num, sizeof num, "%d", loc.line);
  fprintf(stderr, " %s | %s", num, start ? "..." : "");
  for (size_t i = start; i < stop;) i += show_char(text + i, stop - i, stderr);
  fprintf(stderr, "%s\n %*s | %s", stop < len ? "..." : "", w, "", start ? "   " : "");
  size_t i = start;
  while (i < col0) {
    fputc(text[i] == '\t' ? '\t' : ' ', stderr);
    i += show_char(text + i, stop - i, NULL);
  }
  fputc('^', stderr);
  size_t end = loc.end_line == loc.line && loc.end_col > loc.col ? (size_t)loc.end_col : col0 + 1;
  if (end > stop) end = stop;
  if (i < end) i += show_char(text + i, stop - i, NULL); /* the character under the caret */
  while (i < end) {
    fputc('~', stderr);
    i += show_char(text + i, stop - i, NULL);
  }
  fputc('\n', stderr);
}

static void report(const char *kind, Loc loc, const char *fmt, va_list ap) {
  if (quiet) return;
  if (loc.file)
    fprintf(stderr, "%s:%d:%d: %s: ", loc.file->path, loc.line, loc.col, kind);
  else
    fprintf(stderr, "%s: ", kind);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  if (loc.file && loc.line > 0) show_source(loc);
}

static void (*context_fn)(void *);
static void *context_arg;

void diag_set_context(void (*fn)(void *arg), void *arg) {
  context_fn = fn;
  context_arg = arg;
}

/* the context's notes (sema: the block calls being expanded), never for its own notes */
static void add_context(void) {
  static int inside;
  if (!context_fn || inside || quiet) return;
  inside = 1;
  context_fn(context_arg);
  inside = 0;
}

void diag_error(Loc loc, const char *fmt, ...) {
  n_errors++;
  if (n_errors > DIAG_MAX_ERRORS) {
    if (!suppressed++ && !quiet)
      fprintf(stderr, "nncc: too many errors (more than %d); stopping\n", DIAG_MAX_ERRORS);
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  report("error", loc, fmt, ap);
  va_end(ap);
  add_context();
}

void diag_warning(Loc loc, const char *fmt, ...) {
  n_warnings++;
  if (n_errors > DIAG_MAX_ERRORS) return;
  va_list ap;
  va_start(ap, fmt);
  report("warning", loc, fmt, ap);
  va_end(ap);
  add_context();
}

void diag_note(Loc loc, const char *fmt, ...) {
  if (n_errors > DIAG_MAX_ERRORS) return;
  va_list ap;
  va_start(ap, fmt);
  report("note", loc, fmt, ap);
  va_end(ap);
}

int diag_error_count(void) { return n_errors; }
int diag_warning_count(void) { return n_warnings; }
void diag_reset(void) { n_errors = n_warnings = suppressed = 0; }
void diag_set_quiet(int q) { quiet = q; }

_Noreturn void die_at(const char *cfile, int cline, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "nncc: internal error at %s:%d: ", cfile, cline);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}
