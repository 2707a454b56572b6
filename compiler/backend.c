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

#include "codegen.h"
#include "diag.h"
#include "link.h"
#include "split.h"
#include "lower.h"
#include "ops.h"
#include "outputs.h"
#include "target.h"

/* f32 lanes of the widest vector register a named CPU has (4 when unknown: SSE). */
static int cpu_vec_f32(const char *cpu, const char *features) {
  if (features && strstr(features, "+avx512f")) return 16;
  if (features && (strstr(features, "+avx2") || strstr(features, "+avx,"))) return 8;
  static const char *const avx512[] = {
      "x86-64-v4", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
      "icelake-server", "tigerlake", "sapphirerapids", "rocketlake", "graniterapids",
      "graniterapids-d", "emeraldrapids", "znver4", "znver5", "knl", "knm", NULL};
  static const char *const avx2[] = {
      "x86-64-v3", "haswell", "broadwell", "skylake", "alderlake", "raptorlake", "meteorlake",
      "arrowlake", "arrowlake-s", "lunarlake", "gracemont", "znver1", "znver2", "znver3",
      "bdver4", "sandybridge", "ivybridge", "bdver1", "bdver2", "bdver3", "btver2", "sierraforest",
      "grandridge", "clearwaterforest", "pantherlake", NULL};
  int no512 = features && strstr(features, "-avx512f") != NULL;   /* "skylake-avx512,-avx512f" */
  for (int i = 0; avx512[i]; i++)
    if (!strcmp(cpu, avx512[i])) return no512 ? 8 : 16;
  for (int i = 0; avx2[i]; i++)
    if (!strcmp(cpu, avx2[i])) return 8;
  return 4;
}

static int write_file(const char *path, const char *data, size_t len) {
  return outputs_write(path, data, len);   /* atomically: outputs.c */
}

/* A private temporary directory for the object and the embedded weights (malloc'd). */
static char *make_scratch(const char *model) {
  const char *tmpdir = getenv("TMPDIR");
  char *dir = xasprintf("%s/nncc-%s-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp", model);
  if (!mkdtemp(dir)) {
    fprintf(stderr, "nncc: error: cannot create a temporary directory '%s': %s\n", dir, strerror(errno));
    free(dir);
    return NULL;
  }
  return dir;
}

static void remove_scratch(char *dir, const char *const *files, int n) {
  if (!dir) return;
  for (int i = 0; i < n; i++)
    if (files[i]) unlink(files[i]);
  rmdir(dir);
  free(dir);
}


int backend_run(const Graph *g, const BackendOptions *opts) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
  char *triple = LLVMGetDefaultTargetTriple();
  char *cpu, *features;
  target_split(opts->target_cpu, &cpu, &features);   /* checked by main (target.c) */
  int vec = cpu_vec_f32(cpu, features);
  codegen_set_fma(target_has_fma(opts->target_cpu, cpu, features));
  int status = 0;

  /* the entry points: forward, with training gradients / evaluate / update, and for recurrent
   * models that can stream, step */
  enum { NPROG = 5 };
  LoopProgram *progs[NPROG] = {0};
  LowerMode modes[NPROG] = {MODE_FORWARD};
  int nprog = 1;
  if (opts->train && g->nfwd >= 0) {
    modes[nprog++] = MODE_GRADIENTS;
    modes[nprog++] = MODE_EVALUATE;
    modes[nprog++] = MODE_UPDATE;
  }
  int streamable = op_recurrent_streamable(g);
  if (streamable) modes[nprog++] = MODE_STEP;
  for (int i = 0; i < nprog; i++) {
    progs[i] = lower_program(g, modes[i], vec, !opts->no_winograd);
    if (!progs[i]) {
      for (int k = 0; k < i; k++) loops_free(progs[k]);
      status = 1;
      goto out_target;
    }
  }
  LoopProgram *lp = progs[0];
  /* the step runs on the forward's packed weights: its kernels count as the forward's */
  {
    const LoopProgram *readers[NPROG];
    int nreaders = 0;
    for (int i = 0; i < nprog; i++)
      if (modes[i] == MODE_FORWARD || modes[i] == MODE_STEP) readers[nreaders++] = progs[i];
    loops_drop_read_unpacks(lp, readers, nreaders);
  }
  if (opts->emit == EMIT_LOOPS) {
    FILE *f = outputs_text_begin(opts->output);
    for (int i = 0; i < nprog; i++) loops_print(f, progs[i]);
    status = outputs_text_end(f, opts->output);
    goto out_lp;
  }

  /* the scratch directory: the object, and the weights as raw floats + .incbin (link.c) */
  char *scratch = make_scratch(g->name);
  if (!scratch) {
    status = 2;
    goto out_lp;
  }
  enum { F_OBJ, F_RAW, F_ASM, F_OUT, NFILES };
  char *files[NFILES] = {xasprintf("%s/%s.o", scratch, g->name), NULL, NULL,
                         xasprintf("%s/out", scratch)};
  if (opts->weights) {
#if defined(__x86_64__)
    /* straight into an ELF object (link.c): one copy of the weights */
    files[F_RAW] = xasprintf("%s/%s_weights.o", scratch, g->name);
    status = embed_weights(g, opts->weights, files[F_RAW], 1);
#else
    files[F_RAW] = xasprintf("%s/%s.weights", scratch, g->name);
    files[F_ASM] = xasprintf("%s/%s_weights.s", scratch, g->name);
    status = embed_weights(g, opts->weights, files[F_RAW], 0);
    if (!status) {
      char *text = embed_weights_asm(g->name, files[F_RAW], (uint64_t)g->param_floats * 4);
      FILE *f = fopen(files[F_ASM], "w");
      if (!f || fputs(text, f) < 0) status = 2;
      if (f && fclose(f) != 0) status = 2;
      if (status) fprintf(stderr, "nncc: error: cannot write '%s'\n", files[F_ASM]);
      free(text);
    }
#endif
    if (status) goto out_scratch;
  }
  OutputKind kind = opts->output ? outputs_kind(opts->output) : OUT_EXECUTABLE;

  LLVMTargetRef target;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &err)) {
    fprintf(stderr, "nncc: internal error: no LLVM target for %s: %s\n", triple, err);
    LLVMDisposeMessage(err);
    status = 2;
    goto out_scratch;
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

  int executable = opts->emit == EMIT_ARTIFACT && kind == OUT_EXECUTABLE;
  CgEntries fns = {.trainable = opts->train && g->nfwd >= 0, .streamable = streamable};
  for (int i = 0; i < nprog; i++) {
    CgFunctions *slot = modes[i] == MODE_FORWARD ? &fns.forward
                      : modes[i] == MODE_GRADIENTS ? &fns.gradients
                      : modes[i] == MODE_EVALUATE ? &fns.evaluate
                      : modes[i] == MODE_UPDATE ? &fns.update : &fns.step;
    /* step reads the forward's packed weights: the same layout, by the same lowering */
    if (modes[i] == MODE_STEP && progs[i]->packed_floats != lp->packed_floats)
      die("the step program packs %lld floats, the forward %lld", (long long)progs[i]->packed_floats,
          (long long)lp->packed_floats);
    codegen_program(progs[i], mod, slot);
  }
  codegen_module_done();   /* the shared-kernel table refers to this module only */
  artifact_emit_interface(lp, mod, &fns, opts->weights != NULL, executable,
                          opts->mpi && opts->emit == EMIT_ARTIFACT);

  if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &err)) {
    char *msg = xstrdup(err ? err : "");
    LLVMDisposeMessage(err);
    if (getenv("NNCC_DUMP_BROKEN")) LLVMDumpModule(mod);
    die("the generated LLVM module is broken:\n%s", msg);
  }
  LLVMDisposeMessage(err);
  err = NULL;

  char passes[32];
  snprintf(passes, sizeof passes, "default<O%d>", opts->opt_level < 0 ? 0 : opts->opt_level > 3 ? 3 : opts->opt_level);
  /* an artifact is compiled as several objects on several threads (split.h); the other
   * outputs are one module's text or object */
  int parts = opts->emit == EMIT_ARTIFACT ? split_parts(split_count_functions(mod)) : 1;
  if (parts == 1) {
    LLVMErrorRef e = split_run_passes(mod, tm, passes, opts->opt_level);
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
    /* part 0 is the model's object (files[F_OBJ]), parts 1.. beside it */
    char *objects[9] = {files[F_OBJ]};
    for (int k = 1; k < parts; k++) objects[k] = xasprintf("%s/%s.part%d.o", scratch, g->name, k);
    if (parts > 1) {
      SplitTarget st = {triple, cpu, features, cgl, passes, opts->opt_level};
      status = split_compile(mod, g->name, &st, parts, objects);
    } else {
      LLVMMemoryBufferRef buf;
      if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &err, &buf)) {
        char *msg = xstrdup(err ? err : "");
        LLVMDisposeMessage(err);
        fprintf(stderr, "nncc: internal error: code generation failed: %s\n", msg);
        free(msg);
        status = 2;
      } else {
        status = write_file(files[F_OBJ], LLVMGetBufferStart(buf), LLVMGetBufferSize(buf)) ? 2 : 0;
        LLVMDisposeMemoryBuffer(buf);
      }
    }
    if (!status) {
      LinkJob job = {kind, opts->output, files[F_OBJ], files[F_ASM] ? files[F_ASM] : files[F_RAW],
                     files[F_OUT], opts->mpi, (const char *const *)objects + 1, parts - 1};
      status = link_artifact(&job);
    }
    for (int k = 1; k < parts; k++) {
      unlink(objects[k]);
      free(objects[k]);
    }
    char *header = outputs_header(opts->output, kind);
    if (!status && header && artifact_write_header(g, header, opts->weights != NULL, opts->mpi) != 0) status = 1;
    free(header);
    break;
  }
  default: break;
  }

  LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  LLVMDisposeTargetMachine(tm);
out_scratch:
  remove_scratch(scratch, (const char *const *)files, NFILES);
  for (int i = 0; i < NFILES; i++) free(files[i]);
out_lp:
  for (int i = 0; i < nprog; i++) loops_free(progs[i]);
out_target:
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(features);
  return status;
}
