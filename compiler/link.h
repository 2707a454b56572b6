/* link.h - the artifact from the model's object code (link.c), and the embedded weights.
 *
 *   embed_weights      safetensors -> the f32 parameter buffer's bytes, straight into an ELF
 *                      object defining M_nncc_weights (x86-64), or a raw file for
 *   embed_weights_asm  the assembler text that .incbin's a raw file as M_nncc_weights
 *   link_artifact      executable, .so, .a (with the runtime) or .o, written atomically
 */
#ifndef NNCC_LINK_H
#define NNCC_LINK_H

#include <stdint.h>
#include <stdio.h>

#include "ir.h"
#include "outputs.h"

/* Returns 0, 1 after diagnosing a weights file that does not fit the model, or 2 when the
 * raw file cannot be written. */
int embed_weights(const Graph *g, const char *st_path, const char *out_path, int as_elf);
/* The ELF object's parts around `bytes` of data (embed_weights; exposed for the unit test):
 * begin writes the header, end seeks past the data and writes the tables. 0 or -1. */
int embed_elf_begin(FILE *f, const char *sym, uint64_t bytes);
int embed_elf_end(FILE *f, const char *sym, uint64_t bytes);
/* malloc'd assembler source defining the hidden symbol <model>_nncc_weights (bytes long). */
char *embed_weights_asm(const char *model, const char *raw_path, uint64_t bytes);

typedef struct LinkJob {
  OutputKind kind;
  const char *output;        /* -o PATH */
  const char *object;        /* the model's object file */
  const char *weights;       /* the weights' object (.o) or assembler file (.s), or NULL */
  const char *scratch;       /* a free path in a private temporary directory */
  int mpi;                   /* --mpi: + libnncc_rt_mpi.a and Open MPI (executable, .so) */
  const char *const *more;   /* nmore further objects of the model (split.h), linked with it */
  int nmore;
} LinkJob;

/* --mpi: 0 when an artifact can be linked with MPI (Open MPI's wrapper compiler answers
 * `mpicc -showme:link`, NNCC_MPICC naming another, and this nncc has libnncc_rt_mpi.a);
 * otherwise 2 after saying what is missing and how to install it. */
int link_mpi_check(void);

/* Returns 0, 1 (the output cannot be written: the user's error) or 2 (the toolchain failed),
 * after printing the error. */
int link_artifact(const LinkJob *job);

#endif
