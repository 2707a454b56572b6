/* outputs.c - deciding and checking what nncc writes (outputs.h).
 *
 * The check runs before the input is even parsed, so a refused output leaves every file as
 * it was.  Files are compared by device and inode after following symlinks, so `-o m.nn`,
 * `-o ./m.nn`, `-o /abs/m.nn` and `-o link-to-m.nn` are all the input.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "outputs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic_file.h"
#include "diag.h"
#include "util.h"

static int usage(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "nncc: error: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\n(run 'nncc --help' for usage)\n");
  return 2;
}

/* The extension of path's last component ("" when none; a leading dot is not one). */
static const char *extension(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  return dot && dot != base ? dot : "";
}

OutputKind outputs_kind(const char *path) {
  const char *ext = extension(path);
  if (!*ext) return OUT_EXECUTABLE;
  if (!strcmp(ext, ".so")) return OUT_SHARED;
  if (!strcmp(ext, ".a")) return OUT_STATIC;
  if (!strcmp(ext, ".o")) return OUT_OBJECT;
  return OUT_UNKNOWN;
}

char *outputs_header(const char *path, OutputKind kind) {
  if (kind == OUT_EXECUTABLE || kind == OUT_UNKNOWN) return NULL;
  size_t n = strlen(path) - strlen(extension(path));
  return xasprintf("%.*s.h", (int)n, path);
}

typedef struct File {
  const char *role;   /* "the input", ... */
  const char *path;
  int exists;
  struct stat st;
} File;

static void probe(File *f, const char *role, const char *path) {
  f->role = role;
  f->path = path;
  f->exists = path && stat(path, &f->st) == 0;
}

static int same(const File *a, const File *b) {
  return a->exists && b->exists && a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
}

int outputs_check(const char *input, const char *weights, const char *output, int artifact) {
  if (!output) return 0;
  size_t n = strlen(output);
  if (n == 0) return usage("-o needs a file name%s%s", "", "");
  struct stat st;
  if (output[n - 1] == '/' || (stat(output, &st) == 0 && S_ISDIR(st.st_mode)))
    return usage("-o %s is a directory; give a file name (e.g. %smodel.so)", output,
                 output[n - 1] == '/' ? output : "DIR/");
  OutputKind kind = artifact ? outputs_kind(output) : OUT_EXECUTABLE;
  char *header = artifact ? outputs_header(output, kind) : NULL;
  File in, w, out, h;
  probe(&in, "the input", input);
  probe(&w, "the weights", weights);
  probe(&out, "-o", output);
  probe(&h, "the header", header);
  int rc = 0;
  if (same(&out, &in) || same(&out, &w))
    rc = usage("-o %s is %s: refusing to overwrite it", output,
               same(&out, &in) ? "the input file" : "the weights file");
  else if (same(&h, &in) || same(&h, &w) || same(&h, &out) || (header && !strcmp(header, output)))
    rc = usage("the header %s (written beside -o %s) would overwrite the input, the weights "
               "or the artifact itself: refusing", header, output);
  free(header);
  if (!rc && kind == OUT_UNKNOWN)
    rc = usage("-o %s: unknown kind of output '%s' (.so a shared library, .a a static library, "
               ".o an object, no extension an executable)", output, extension(output));
  return rc;
}

int outputs_write(const char *path, const void *data, size_t len) {
  nncc_af a;
  int e = nncc_af_begin(&a, path);
  if (!e) {
    e = nncc_af_write(&a, data, len);
    if (e) nncc_af_abort(&a);
    else e = nncc_af_commit(&a);
  }
  if (e) {
    fprintf(stderr, "nncc: error: cannot write '%s': %s\n", path, strerror(e));
    return 1;
  }
  return 0;
}

static char *text_buf;
static size_t text_len;

FILE *outputs_text_begin(const char *path) {
  if (!path) return stdout;
  FILE *f = open_memstream(&text_buf, &text_len);
  if (!f) die("open_memstream: %s", strerror(errno));
  return f;
}

int outputs_text_end(FILE *f, const char *path) {
  if (f == stdout) return 0;
  if (fclose(f) != 0) die("cannot close a memory stream");
  int rc = outputs_write(path, text_buf, text_len);
  free(text_buf);
  text_buf = NULL;
  return rc;
}
