/* target.c - `--target-cpu CPU[,+feature,-feature...]`: checked before any work, and what
 * the code generator needs to know about the target (target.h).
 *
 * LLVM-C has no list of CPUs or features, and LLVM reacts to a bad name either by printing a
 * warning and carrying on (an unknown name) or by aborting the process with "LLVM ERROR" (a
 * 32-bit CPU such as i386 asked for 64-bit code).  So the name is tried in a child process:
 * it creates the target machine and compiles a one-line function calling llvm.fma to
 * assembly; anything LLVM prints, or the child dying, means the name is bad, and LLVM's
 * first line goes into the usage error.  The same assembly tells whether the target has
 * fused multiply-add: without it llvm.fma becomes a call to fmaf (codegen.c then emits
 * fmul + fadd, fused by LLVM only where the target can).
 * `--target-cpu help` lets LLVM print its list of CPUs and features.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

#include "util.h"

enum { PROBE_FMA = 10, PROBE_NO_FMA = 11 };

static int is_host(const char *spec) {
  return !spec || !strcmp(spec, "native") || !strcmp(spec, "host");
}

void target_split(const char *spec, char **cpu, char **features) {
  if (is_host(spec)) {
    *cpu = LLVMGetHostCPUName();
    *features = LLVMGetHostCPUFeatures();
    return;
  }
  const char *comma = strchr(spec, ',');
  char *c = comma ? xstrndup(spec, (size_t)(comma - spec)) : xstrdup(spec);
  *cpu = LLVMCreateMessage(c);
  *features = LLVMCreateMessage(comma ? comma + 1 : "");
  free(c);
}

/* In the child: compile `fma(a, b, c)` for the target; exit with PROBE_*. */
static _Noreturn void probe(const char *spec) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  char *triple = LLVMGetDefaultTargetTriple(), *cpu, *features, *err = NULL;
  target_split(spec, &cpu, &features);
  LLVMTargetRef target;
  if (LLVMGetTargetFromTriple(triple, &target, &err)) {
    fprintf(stderr, "%s\n", err);
    _exit(1);
  }
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, features,
                                                    LLVMCodeGenLevelDefault, LLVMRelocPIC,
                                                    LLVMCodeModelDefault);
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("probe", ctx);
  LLVMSetTarget(mod, triple);
  LLVMTypeRef f32 = LLVMFloatTypeInContext(ctx), pt[3] = {f32, f32, f32};
  LLVMValueRef fn = LLVMAddFunction(mod, "probe", LLVMFunctionType(f32, pt, 3, 0));
  LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, fn, "entry"));
  unsigned id = LLVMLookupIntrinsicID("llvm.fma", 8);
  LLVMValueRef args[3] = {LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), LLVMGetParam(fn, 2)};
  LLVMValueRef r = LLVMBuildCall2(b, LLVMIntrinsicGetType(ctx, id, &f32, 1),
                                  LLVMGetIntrinsicDeclaration(mod, id, &f32, 1), args, 3, "");
  LLVMBuildRet(b, r);
  LLVMMemoryBufferRef buf;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMAssemblyFile, &err, &buf)) {
    fprintf(stderr, "%s\n", err ? err : "code generation failed");
    _exit(1);
  }
  size_t n = LLVMGetBufferSize(buf);
  const char *s = LLVMGetBufferStart(buf);
  int calls_fmaf = memmem(s, n, "fmaf", 4) != NULL;
  _exit(calls_fmaf ? PROBE_NO_FMA : PROBE_FMA);
}

static int usage(const char *spec, const char *why) {
  fprintf(stderr, "nncc: error: --target-cpu %s: %s\n", spec, why);
  fprintf(stderr, "note: 'nncc --target-cpu help' lists the CPU names and features LLVM knows; "
                  "write CPU or CPU,+feature,-feature (e.g. x86-64-v3, skylake,-avx512f)\n");
  return 2;
}

static char *cached_spec;
static int cached_fma = -1;

int target_check(const char *spec) {
  if (is_host(spec)) return 0;
  if (!strcmp(spec, "help")) {   /* LLVM prints the tables */
    char *triple = LLVMGetDefaultTargetTriple(), *err = NULL;
    LLVMInitializeNativeTarget();
    LLVMTargetRef target;
    if (!LLVMGetTargetFromTriple(triple, &target, &err))
      LLVMDisposeTargetMachine(LLVMCreateTargetMachine(target, triple, "help", "+help",
                                                       LLVMCodeGenLevelDefault, LLVMRelocPIC,
                                                       LLVMCodeModelDefault));
    LLVMDisposeMessage(triple);
    return -1;
  }
  if (!*spec || spec[0] == ',' || strchr(spec, ' '))
    return usage(spec, "expected a CPU name");
  for (const char *f = strchr(spec, ','); f; f = strchr(f + 1, ','))
    if (f[1] != '+' && f[1] != '-')
      return usage(spec, "each feature after the CPU is +NAME or -NAME");
  int pipefd[2];
  if (pipe(pipefd) != 0) return usage(spec, strerror(errno));
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return usage(spec, strerror(errno));
  if (pid == 0) {
    close(pipefd[0]);
    dup2(pipefd[1], 2);
    dup2(pipefd[1], 1);
    probe(spec);
  }
  close(pipefd[1]);
  char msg[4096];
  size_t got = 0;
  for (;;) {
    ssize_t r = read(pipefd[0], msg + got, sizeof msg - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
    if (got == sizeof msg - 1) {   /* keep draining so the child never blocks */
      char sink[4096];
      while (read(pipefd[0], sink, sizeof sink) > 0) {}
      break;
    }
  }
  close(pipefd[0]);
  msg[got] = 0;
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (got == 0 && (code == PROBE_FMA || code == PROBE_NO_FMA)) {
    free(cached_spec);
    cached_spec = xstrdup(spec);
    cached_fma = code == PROBE_FMA;
    return 0;
  }
  /* LLVM's first line, without its own "LLVM ERROR: " prefix */
  char *nl = strchr(msg, '\n');
  if (nl) *nl = 0;
  const char *why = msg;
  if (!strncmp(why, "LLVM ERROR: ", 12)) why += 12;
  if (!*why) why = "LLVM cannot generate code for it";
  return usage(spec, why);
}

int target_has_fma(const char *spec, const char *cpu, const char *features) {
  if (cached_spec && spec && !strcmp(spec, cached_spec)) return cached_fma;
  (void)cpu;
  /* the host: LLVM's feature string ("+fma" or "+fma4") */
  return features && (strstr(features, "+fma,") || strstr(features, "+fma4") ||
                      (strlen(features) >= 4 && !strcmp(features + strlen(features) - 4, "+fma")));
}
