/* target.h - the --target-cpu option (target.c).
 *
 *   target_check    CPU[,+feature,-feature...] tried in a child process before any work:
 *                   0 usable, 2 after a usage error, -1 after `help` printed LLVM's lists
 *   target_split    the CPU and feature strings for LLVMCreateTargetMachine (the host's when
 *                   spec is NULL, "native" or "host"); free both with LLVMDisposeMessage
 *   target_has_fma  whether llvm.fma is an instruction on the target (else a call to fmaf)
 */
#ifndef NNCC_TARGET_H
#define NNCC_TARGET_H

int target_check(const char *spec);
void target_split(const char *spec, char **cpu, char **features);
int target_has_fma(const char *spec, const char *cpu, const char *features);

#endif
