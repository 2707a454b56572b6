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
  LLVMValueRef workspace;  /* i64 (i64 batch, i64 seq): workspace floats */
} CgFunctions;

/* The entry points of one artifact: forward always, the training ones when trainable. */
typedef struct CgEntries {
  CgFunctions forward;
  int trainable;
  CgFunctions gradients, evaluate, update;
} CgEntries;

/* --- codegen.c --- */
/* Emits the program into mod (whose data layout is already set). */
void codegen_program(const LoopProgram *lp, LLVMModuleRef mod, CgFunctions *out);

/* --- artifact.c --- */
/* Adds the descriptor (with embedded weights when weights != NULL: param_floats floats),
 * the M_* wrappers, and, when executable, main().  */
void artifact_emit_interface(const LoopProgram *lp, LLVMModuleRef mod, const CgEntries *fns,
                             const float *weights, int executable);
/* Reads and checks a safetensors file against the graph's parameters; returns a malloc'd
 * param_floats array, or NULL after diagnosing (a user error). */
float *artifact_read_weights(const Graph *g, const char *path);
/* Writes PATH's header (model.so -> model.h); returns 0, or -1 after printing an error. */
int artifact_write_header(const Graph *g, const char *so_path);
/* Links obj_path with the runtime into out_path (a .so when shared); returns 0, 1 (user error:
 * cannot write the output) or 2 (toolchain failure), after printing the error. */
int artifact_link(const char *obj_path, const char *out_path, int shared);

#endif
