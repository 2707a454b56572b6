/* split.c - one LLVM module compiled as several objects on several threads (split.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* sched_getaffinity */
#endif
#include "split.h"

#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag.h"
#include "util.h"

enum { MAX_PARTS = 8 };

int split_count_functions(LLVMModuleRef mod) {
  int n = 0;
  for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f))
    n += LLVMCountBasicBlocks(f) > 0;
  return n;
}

int split_parts(int nfunctions) {
  int cpus = 1;
  const char *env = getenv("NNCC_JOBS");
  if (env && *env) {
    cpus = atoi(env);
  } else {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  }
  if (cpus > MAX_PARTS) cpus = MAX_PARTS;
  if (cpus > nfunctions / 4) cpus = nfunctions / 4;   /* a few functions: not worth a thread */
  return cpus < 1 ? 1 : cpus;
}

LLVMErrorRef split_run_passes(LLVMModuleRef m, LLVMTargetMachineRef tm, const char *passes, int opt_level) {
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(po, opt_level >= 2);
  LLVMPassBuilderOptionsSetSLPVectorization(po, opt_level >= 2);
  LLVMPassBuilderOptionsSetLoopUnrolling(po, opt_level >= 2);
  LLVMErrorRef e = LLVMRunPasses(m, passes, tm, po);
  LLVMDisposePassBuilderOptions(po);
  return e;
}

/* the instructions of f: its share of the optimizer's and the code generator's work */
static long function_size(LLVMValueRef f) {
  long n = 0;
  for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(f); b; b = LLVMGetNextBasicBlock(b))
    for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i)) n++;
  return n;
}

/* Internal and private definitions become hidden external ones named under prefix, so that the
 * parts can refer to each other's; unnamed globals get a name. */
static void externalize(LLVMModuleRef mod, const char *prefix) {
  int anon = 0;
  for (int pass = 0; pass < 2; pass++)
    for (LLVMValueRef v = pass ? LLVMGetFirstGlobal(mod) : LLVMGetFirstFunction(mod); v;
         v = pass ? LLVMGetNextGlobal(v) : LLVMGetNextFunction(v)) {
      LLVMLinkage l = LLVMGetLinkage(v);
      if (LLVMIsDeclaration(v) || (l != LLVMInternalLinkage && l != LLVMPrivateLinkage)) continue;
      size_t len;
      const char *name = LLVMGetValueName2(v, &len);
      char *full = len ? xasprintf("%s.%.*s", prefix, (int)len, name)
                       : xasprintf("%s.anon.%d", prefix, anon++);
      LLVMSetValueName2(v, full, strlen(full));
      free(full);
      LLVMSetLinkage(v, LLVMExternalLinkage);
      LLVMSetVisibility(v, LLVMHiddenVisibility);
    }
}

typedef struct Part {
  int index;
  const SplitTarget *t;
  const char *bitcode;
  size_t bitcode_size;
  const char *owner;     /* per function with a body, in module order: the part it goes to */
  int nfunctions;
  const char *object;    /* where to write the object */
  char *error;           /* malloc'd, or NULL */
} Part;

/* v (a definition of another part) replaced by a declaration of the same name and type */
static void declare_instead(LLVMModuleRef m, LLVMValueRef v, int is_function) {
  size_t len;
  char *name = xstrdup(LLVMGetValueName2(v, &len));
  LLVMTypeRef type = LLVMGlobalGetValueType(v);
  LLVMVisibility vis = LLVMGetVisibility(v);   /* an exported wrapper's stays default: a hidden
                                                * reference would hide it from the library */
  LLVMValueRef d;
  if (is_function) {
    d = LLVMAddFunction(m, "", type);
  } else {
    d = LLVMAddGlobal(m, type, "");
    LLVMSetGlobalConstant(d, LLVMIsGlobalConstant(v));
    LLVMSetAlignment(d, LLVMGetAlignment(v));
  }
  LLVMSetLinkage(d, LLVMExternalLinkage);
  LLVMSetVisibility(d, vis);
  LLVMReplaceAllUsesWith(v, d);
  if (is_function) LLVMDeleteFunction(v);
  else LLVMDeleteGlobal(v);
  LLVMSetValueName2(d, name, strlen(name));
  free(name);
}

static void *compile_part(void *arg) {
  Part *p = arg;
  const SplitTarget *t = p->t;
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRange(p->bitcode, p->bitcode_size, "nncc", 0);
  LLVMModuleRef m = NULL;
  if (LLVMParseBitcodeInContext2(ctx, buf, &m)) {
    p->error = xasprintf("part %d: the module's bitcode does not read back", p->index);
    LLVMDisposeMemoryBuffer(buf);
    LLVMContextDispose(ctx);
    return NULL;
  }
  LLVMDisposeMemoryBuffer(buf);
  /* the others' functions and (but in part 0) the global variables become declarations */
  LLVMValueRef *drop = xcalloc((size_t)p->nfunctions + 1, sizeof *drop);
  int ndrop = 0, k = 0;
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
    if (LLVMCountBasicBlocks(f) == 0) continue;
    if (k < p->nfunctions && p->owner[k] != p->index) drop[ndrop++] = f;
    k++;
  }
  for (int i = 0; i < ndrop; i++) declare_instead(m, drop[i], 1);
  free(drop);
  if (p->index > 0) {
    LLVMValueRef g = LLVMGetFirstGlobal(m);
    while (g) {
      LLVMValueRef next = LLVMGetNextGlobal(g);
      if (!LLVMIsDeclaration(g) && LLVMGetLinkage(g) == LLVMExternalLinkage) declare_instead(m, g, 0);
      g = next;
    }
  }
  LLVMTargetRef target;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(t->triple, &target, &err)) {
    p->error = xasprintf("part %d: no LLVM target for %s: %s", p->index, t->triple, err ? err : "");
    LLVMDisposeMessage(err);
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    return NULL;
  }
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, t->triple, t->cpu, t->features, t->level,
                                                    LLVMRelocPIC, LLVMCodeModelDefault);
  LLVMErrorRef e = split_run_passes(m, tm, t->passes, t->opt_level);
  if (e) {
    char *msg = LLVMGetErrorMessage(e);
    p->error = xasprintf("part %d: LLVM passes failed: %s", p->index, msg);
    LLVMDisposeErrorMessage(msg);
  } else {
    LLVMMemoryBufferRef obj;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMObjectFile, &err, &obj)) {
      p->error = xasprintf("part %d: code generation failed: %s", p->index, err ? err : "");
      LLVMDisposeMessage(err);
    } else {
      FILE *f = fopen(p->object, "wb");
      size_t n = LLVMGetBufferSize(obj);
      if (!f || fwrite(LLVMGetBufferStart(obj), 1, n, f) != n) p->error = xasprintf("cannot write '%s'", p->object);
      if (f && fclose(f) != 0 && !p->error) p->error = xasprintf("cannot write '%s'", p->object);
      LLVMDisposeMemoryBuffer(obj);
    }
  }
  LLVMDisposeTargetMachine(tm);
  LLVMDisposeModule(m);
  LLVMContextDispose(ctx);
  return NULL;
}

int split_compile(LLVMModuleRef mod, const char *prefix, const SplitTarget *t, int parts,
                  char *const *objects) {
  if (parts < 1 || parts > MAX_PARTS) die("split_compile: %d parts", parts);
  externalize(mod, prefix);
  /* deal the functions out, the largest first, each to the part with the least so far; ties
   * go to the lower part, so the cut depends on the module alone */
  int nf = split_count_functions(mod);
  long *size = xcalloc((size_t)nf + 1, sizeof *size);
  int *order = xcalloc((size_t)nf + 1, sizeof *order);
  char *owner = xcalloc((size_t)nf + 1, 1);
  int k = 0;
  for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f))
    if (LLVMCountBasicBlocks(f) > 0) {
      size[k] = function_size(f);
      order[k] = k;
      k++;
    }
  for (int i = 1; i < nf; i++) {   /* insertion sort by size, descending, stable */
    int v = order[i], j = i - 1;
    while (j >= 0 && size[order[j]] < size[v]) {
      order[j + 1] = order[j];
      j--;
    }
    order[j + 1] = v;
  }
  long load[MAX_PARTS] = {0};
  for (int i = 0; i < nf; i++) {
    int best = 0;
    for (int q = 1; q < parts; q++)
      if (load[q] < load[best]) best = q;
    owner[order[i]] = (char)best;
    load[best] += size[order[i]];
  }
  LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(mod);
  Part part[MAX_PARTS];
  pthread_t th[MAX_PARTS];
  int started[MAX_PARTS] = {0};
  for (int q = 0; q < parts; q++)
    part[q] = (Part){.index = q, .t = t, .bitcode = LLVMGetBufferStart(bc),
                     .bitcode_size = LLVMGetBufferSize(bc), .owner = owner, .nfunctions = nf,
                     .object = objects[q]};
  /* parts 1.. on threads of their own, part 0 on this one */
  for (int q = 1; q < parts; q++) started[q] = pthread_create(&th[q], NULL, compile_part, &part[q]) == 0;
  compile_part(&part[0]);
  for (int q = 1; q < parts; q++)
    if (started[q]) pthread_join(th[q], NULL);
    else compile_part(&part[q]);   /* no thread to be had: here, after the others */
  int status = 0;
  for (int q = 0; q < parts; q++) {
    if (part[q].error) {
      fprintf(stderr, "nncc: internal error: %s\n", part[q].error);
      free(part[q].error);
      status = 2;
    }
  }
  LLVMDisposeMemoryBuffer(bc);
  free(size);
  free(order);
  free(owner);
  return status;
}
