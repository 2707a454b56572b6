/* backend.h - everything after the checked graph: lowering, LLVM, artifacts.
 *
 *   graph --lower_graph--> loop IR --codegen--> LLVM module --passes--> object
 *         --artifact--> model.so + model.h  |  executable
 *
 * main.c fills a BackendOptions from the command line and calls backend_run().
 */
#ifndef NNCC_BACKEND_H
#define NNCC_BACKEND_H

#include "ir.h"

typedef enum EmitKind {
  EMIT_ARTIFACT,  /* -o model.so (shared library + model.h) or -o model (executable) */
  EMIT_LOOPS,     /* --emit=loops: the loop IR, printed */
  EMIT_LLVM,      /* --emit=llvm: LLVM IR after the pass pipeline */
  EMIT_ASM,       /* --emit=asm */
  EMIT_OBJ,       /* --emit=obj (binary; needs -o) */
} EmitKind;

typedef struct BackendOptions {
  EmitKind emit;
  const char *output;        /* -o PATH; NULL: stdout for text emits */
  int opt_level;             /* -O0..-O3, default 3 */
  const char *target_cpu;    /* --target-cpu; NULL: the host CPU and its features */
  int train;                 /* generate the training entry points (later issue) */
  const char *weights;       /* --weights FILE.safetensors: embed them, or NULL */
  const char *source_path;   /* the .nn file, for messages */
  int mpi;                   /* --mpi: data-parallel trainer, linked with Open MPI */
  int no_winograd;           /* --no-winograd: every convolution by direct sums */
} BackendOptions;

/* Returns 0 on success, 1 after diagnosing an error in the user's input (a weights file that
 * does not fit the model, an unwritable output), or 2 for an internal/toolchain failure. */
int backend_run(const Graph *g, const BackendOptions *opts);

#endif
