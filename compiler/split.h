/* split.h - optimizing and compiling one LLVM module as several objects on several threads.
 *
 *   split_compile  the module's functions dealt out to `parts` modules, each optimized and
 *                  compiled to an object on a thread of its own
 *
 * LLVM's pipeline and code generator run on one thread per module; a model's kernels are
 * independent functions, so the module is cut between them: every internal function and global
 * gets an external hidden name under the model's (so that two models' objects never clash),
 * each part keeps the bodies of its share of the functions (the largest first, to the part
 * with the least so far) and declares the others, and only part 0 keeps the global variables'
 * definitions.  The parts are parsed from one bitcode image, each in an LLVMContext of its own.
 */
#ifndef NNCC_SPLIT_H
#define NNCC_SPLIT_H

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/TargetMachine.h>

typedef struct SplitTarget {
  const char *triple, *cpu, *features;
  LLVMCodeGenOptLevel level;
  const char *passes;       /* LLVMRunPasses pipeline text */
  int opt_level;            /* nncc's -O: vectorization and unrolling at >= 2 */
} SplitTarget;

/* Runs the pipeline `passes` on m for tm, vectorizing and unrolling at opt_level >= 2: the
 * one-module path (backend.c) and every part. */
LLVMErrorRef split_run_passes(LLVMModuleRef m, LLVMTargetMachineRef tm, const char *passes, int opt_level);

/* How many parts a module of `nfunctions` function bodies is worth on this machine: the CPUs
 * the process may use (NNCC_JOBS overrides), at most 8, at most nfunctions / 4. */
int split_parts(int nfunctions);

/* The number of functions with a body in mod. */
int split_count_functions(LLVMModuleRef mod);

/* Compiles mod (verified, not yet optimized; it is changed: internal symbols become hidden
 * ones named under `prefix`) into parts objects, objects[k] the path of part k.  0, or 2 after
 * printing what failed. */
int split_compile(LLVMModuleRef mod, const char *prefix, const SplitTarget *t, int parts,
                  char *const *objects);

#endif
