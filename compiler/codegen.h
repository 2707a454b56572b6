/* codegen.h - loop IR to LLVM IR (codegen.c) and the artifact's interface (artifact.c).
 *
 *   codegen_program  kernels + <model>_nncc_forward / _prepare / _workspace into a module
 *   artifact_*       the nncc_model_desc constant, the M_* wrappers, main, model.h, linking
 */
#ifndef NNCC_CODEGEN_H
#define NNCC_CODEGEN_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "loops.h"

typedef struct CgFunctions {
  LLVMValueRef entry;      /* i32 <model>_nncc_<entry>(ptr nncc_exec) */
  LLVMValueRef prepare;    /* void (ptr params, ptr packed), or NULL when nothing is packed */
  LLVMValueRef unpack;     /* forward: void (ptr params, ptr packed) restoring the parameters
                            * that only packed copies feed (LoopProgram.unpack), or NULL */
  LLVMValueRef workspace;  /* i64 (i64 batch, i64 seq): workspace floats */
} CgFunctions;

/* The entry points of one artifact: forward always, the training ones when trainable. */
typedef struct CgEntries {
  CgFunctions forward;
  int trainable;
  CgFunctions gradients, evaluate, update;
  int streamable;          /* M_step / M_reset (ops.h op_recurrent_streamable) */
  CgFunctions step;
} CgEntries;

/* --- codegen.c --- */
/* Emits the program into mod (whose data layout is already set). */
void codegen_program(const LoopProgram *lp, LLVMModuleRef mod, CgFunctions *out);
/* The programs of one module share a function between identical kernels (same loops up to
 * which buffers they touch); call this after the module's last codegen_program. */
void codegen_module_done(void);

/* Whether the target has FMA (default yes); without, LE_FMA is fmul + fadd `contract`. */
void codegen_set_fma(int has_fma);

/* --- artifact.c --- */
/* Adds the descriptor (embedded_weights: referring to the hidden symbol <model>_nncc_weights
 * that link.c defines), the M_* wrappers, and, when executable, main().  mpi (--mpi): main
 * calls nncc_rt_mpi_main (runtime/mpi_trainer.c) instead of nncc_rt_main, and a library gets
 * M_main(argc, argv), the same for a host program. */
void artifact_emit_interface(const LoopProgram *lp, LLVMModuleRef mod, const CgEntries *fns,
                             int embedded_weights, int executable, int mpi);
/* Writes the header hp (model.so -> model.h) atomically; returns 0, or -1 after printing an
 * error.  embedded_weights: the artifact carries --weights (M_create starts from them); mpi:
 * it was built with --mpi (M_main). */
int artifact_write_header(const Graph *g, const char *hp, int embedded_weights, int mpi);

#endif
