/* backend.c - everything after the checked graph, top to bottom:
 *
 *   target machine (host CPU + features, or --target-cpu)  ->  f32 vector width
 *   lower_graph_target  ->  LoopProgram  (--emit=loops stops here)
 *   codegen_program + artifact_emit_interface  ->  LLVM module
 *   LLVMVerifyModule (a broken module is an internal error)  ->  LLVMRunPasses(default<On>)
 *   --emit=llvm | asm | obj, or an object file linked with the runtime into .so / executable
 *
 * LLVM error messages are copied into owned strings at once and disposed; every path
 * after the module exists goes through one cleanup.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "codegen.h"
#include "diag.h"
#include "lower.h"

/* f32 lanes of the widest vector register a named CPU has (4 when unknown: SSE). */
static int cpu_vec_f32(const char *cpu, const char *features) {
  if (features && strstr(features, "+avx512f")) return 16;
  if (features && (strstr(features, "+avx2") || strstr(features, "+avx,"))) return 8;
  if (features && *features) return 4;
  static const char *const avx512[] = {
      "x86-64-v4", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
      "icelake-server", "tigerlake", "sapphirerapids", "rocketlake", "graniterapids",
      "graniterapids-d", "emeraldrapids", "znver4", "znver5", "knl", "knm", NULL};
  static const char *const avx2[] = {
      "x86-64-v3", "haswell", "broadwell", "skylake", "alderlake", "raptorlake", "meteorlake",
      "arrowlake", "arrowlake-s", "lunarlake", "gracemont", "znver1", "znver2", "znver3",
      "bdver4", "sandybridge", "ivybridge", "bdver1", "bdver2", "bdver3", "btver2", "sierraforest",
      "grandridge", "clearwaterforest", "pantherlake", NULL};
  for (int i = 0; avx512[i]; i++)
    if (!strcmp(cpu, avx512[i])) return 16;
  for (int i = 0; avx2[i]; i++)
    if (!strcmp(cpu, avx2[i])) return 8;
  return 4;
}

static int write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "nncc: error: cannot write '%s': %s\n", path, strerror(errno));
    return 1;
  }
  size_t w = fwrite(data, 1, len, f);
  int bad = w != len || ferror(f);
  bad |= fclose(f) != 0;
  if (bad) {
    fprintf(stderr, "nncc: error: cannot write '%s'\n", path);
    return 1;
  }
  return 0;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

int backend_run(const Graph *g, const BackendOptions *opts) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  char *triple = LLVMGetDefaultTargetTriple();
  char *cpu, *features;
  if (!opts->target_cpu || !strcmp(opts->target_cpu, "native") || !strcmp(opts->target_cpu, "host")) {
    cpu = LLVMGetHostCPUName();
    features = LLVMGetHostCPUFeatures();
  } else {
    cpu = LLVMCreateMessage(opts->target_cpu);
    features = LLVMCreateMessage("");
  }
  int vec = cpu_vec_f32(cpu, features);
  int status = 0;

  /* the entry points: forward, and with training gradients / evaluate / update */
  enum { NPROG = 4 };
  LoopProgram *progs[NPROG] = {0};
  static const LowerMode modes[NPROG] = {MODE_FORWARD, MODE_GRADIENTS, MODE_EVALUATE, MODE_UPDATE};
  int nprog = opts->train && g->nfwd >= 0 ? NPROG : 1;
  for (int i = 0; i < nprog; i++) {
    progs[i] = lower_program(g, modes[i], vec);
    if (!progs[i]) {
      for (int k = 0; k < i; k++) loops_free(progs[k]);
      status = 1;
      goto out_target;
    }
  }
  LoopProgram *lp = progs[0];
  if (opts->emit == EMIT_LOOPS) {
    FILE *f = opts->output ? fopen(opts->output, "w") : stdout;
    if (!f) {
      fprintf(stderr, "nncc: error: cannot write '%s': %s\n", opts->output, strerror(errno));
      status = 1;
    } else {
      for (int i = 0; i < nprog; i++) loops_print(f, progs[i]);
      if (f != stdout && fclose(f) != 0) status = 1;
    }
    goto out_lp;
  }

  float *weights = NULL;
  if (opts->weights) {
    weights = artifact_read_weights(g, opts->weights);
    if (!weights) {
      status = 1;
      goto out_lp;
    }
  }

  LLVMTargetRef target;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &err)) {
    fprintf(stderr, "nncc: internal error: no LLVM target for %s: %s\n", triple, err);
    LLVMDisposeMessage(err);
    status = 2;
    free(weights);
    goto out_lp;
  }
  LLVMCodeGenOptLevel cgl = opts->opt_level <= 0 ? LLVMCodeGenLevelNone
                          : opts->opt_level == 1 ? LLVMCodeGenLevelLess
                          : opts->opt_level == 2 ? LLVMCodeGenLevelDefault
                                                 : LLVMCodeGenLevelAggressive;
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, features, cgl,
                                                    LLVMRelocPIC, LLVMCodeModelDefault);
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = LLVMModuleCreateWithNameInContext(g->name, ctx);
  LLVMSetTarget(mod, triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  char *layout = LLVMCopyStringRepOfTargetData(td);
  LLVMSetDataLayout(mod, layout);
  LLVMDisposeMessage(layout);
  LLVMDisposeTargetData(td);

  int executable = opts->emit == EMIT_ARTIFACT && opts->output && !ends_with(opts->output, ".so");
  CgEntries fns = {.trainable = nprog > 1};
  CgFunctions *slots[NPROG] = {&fns.forward, &fns.gradients, &fns.evaluate, &fns.update};
  for (int i = 0; i < nprog; i++) codegen_program(progs[i], mod, slots[i]);
  artifact_emit_interface(lp, mod, &fns, weights, executable);
  free(weights);

  if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &err)) {
    char *msg = xstrdup(err ? err : "");
    LLVMDisposeMessage(err);
    if (getenv("NNCC_DUMP_BROKEN")) LLVMDumpModule(mod);
    die("the generated LLVM module is broken:\n%s", msg);
  }
  LLVMDisposeMessage(err);
  err = NULL;

  {
    char passes[32];
    snprintf(passes, sizeof passes, "default<O%d>", opts->opt_level < 0 ? 0 : opts->opt_level > 3 ? 3 : opts->opt_level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, opts->opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(po, opts->opt_level >= 2);
    LLVMPassBuilderOptionsSetLoopUnrolling(po, opts->opt_level >= 2);
    LLVMErrorRef e = LLVMRunPasses(mod, passes, tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
      char *m = LLVMGetErrorMessage(e);
      char *msg = xstrdup(m);
      LLVMDisposeErrorMessage(m);
      die("LLVM passes failed: %s", msg);
    }
  }

  switch (opts->emit) {
  case EMIT_LLVM: {
    char *text = LLVMPrintModuleToString(mod);
    if (opts->output) status = write_file(opts->output, text, strlen(text));
    else fputs(text, stdout);
    LLVMDisposeMessage(text);
    break;
  }
  case EMIT_ASM:
  case EMIT_OBJ: {
    LLVMMemoryBufferRef buf;
    LLVMCodeGenFileType ft = opts->emit == EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, ft, &err, &buf)) {
      char *msg = xstrdup(err ? err : "");
      LLVMDisposeMessage(err);
      fprintf(stderr, "nncc: internal error: code generation failed: %s\n", msg);
      free(msg);
      status = 2;
      break;
    }
    const char *data = LLVMGetBufferStart(buf);
    size_t len = LLVMGetBufferSize(buf);
    if (opts->output) status = write_file(opts->output, data, len);
    else fwrite(data, 1, len, stdout);
    LLVMDisposeMemoryBuffer(buf);
    break;
  }
  case EMIT_ARTIFACT: {
    if (!opts->output) {
      fprintf(stderr, "nncc: error: building an artifact needs -o PATH\n");
      status = 2;
      break;
    }
    LLVMMemoryBufferRef buf;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &err, &buf)) {
      char *msg = xstrdup(err ? err : "");
      LLVMDisposeMessage(err);
      fprintf(stderr, "nncc: internal error: code generation failed: %s\n", msg);
      free(msg);
      status = 2;
      break;
    }
    const char *tmpdir = getenv("TMPDIR");
    char *obj = xasprintf("%s/nncc-%s-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp", g->name);
    int fd = mkstemp(obj);
    if (fd < 0) {
      fprintf(stderr, "nncc: error: cannot create a temporary file '%s': %s\n", obj, strerror(errno));
      status = 2;
    } else {
      const char *data = LLVMGetBufferStart(buf);
      size_t len = LLVMGetBufferSize(buf), off = 0;
      while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0) {
          if (w < 0 && errno == EINTR) continue;
          break;
        }
        off += (size_t)w;
      }
      close(fd);
      if (off != len) {
        fprintf(stderr, "nncc: error: cannot write the temporary object '%s'\n", obj);
        status = 2;
      } else {
        int shared = ends_with(opts->output, ".so");
        status = artifact_link(obj, opts->output, shared);
        if (!status && shared && artifact_write_header(g, opts->output) != 0) status = 1;
      }
      unlink(obj);
    }
    free(obj);
    LLVMDisposeMemoryBuffer(buf);
    break;
  }
  default: break;
  }

  LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  LLVMDisposeTargetMachine(tm);
out_lp:
  for (int i = 0; i < nprog; i++) loops_free(progs[i]);
out_target:
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(features);
  return status;
}
