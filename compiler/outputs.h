/* outputs.h - what nncc writes, decided and checked before anything is written.
 *
 *   outputs_check     -o PATH against the input, the weights and the header beside it (by
 *                     inode: a symlink or another spelling of the input is the input), and
 *                     against directories; the artifact's kind from PATH's extension
 *   outputs_kind      .so shared library, .a static library (with the runtime), .o object,
 *                     no extension an executable
 *   outputs_header    the header written beside a library or object (model.so -> model.h)
 *   outputs_write / outputs_text_begin / outputs_text_end
 *                     every file the compiler writes goes through runtime/atomic_file.c: a
 *                     failure never leaves a torn file, links and devices are kept
 */
#ifndef NNCC_OUTPUTS_H
#define NNCC_OUTPUTS_H

#include <stddef.h>
#include <stdio.h>

typedef enum OutputKind {
  OUT_EXECUTABLE,  /* -o model        (no extension) */
  OUT_SHARED,      /* -o model.so     + model.h */
  OUT_STATIC,      /* -o model.a      + model.h; carries the runtime */
  OUT_OBJECT,      /* -o model.o      + model.h; link with libnncc_rt.a */
  OUT_UNKNOWN,     /* any other extension: a usage error */
} OutputKind;

OutputKind outputs_kind(const char *path);
/* The header beside an artifact of that kind (malloc'd), or NULL for an executable. */
char *outputs_header(const char *path, OutputKind kind);
/* Returns 0, or prints a usage error and returns 2.  artifact: -o builds an artifact (the
 * extension decides its kind and a header may be written beside it), else -o receives
 * one printed stage. */
int outputs_check(const char *input, const char *weights, const char *output, int artifact);

/* Replaces path with data atomically; 0, or 1 after printing an error. */
int outputs_write(const char *path, const void *data, size_t len);
/* A stream whose content outputs_text_end(f, path) writes to path atomically (0, or 1 after
 * printing an error); path NULL: stdout. */
FILE *outputs_text_begin(const char *path);
int outputs_text_end(FILE *f, const char *path);

#endif
