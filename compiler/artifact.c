/* artifact.c - what makes a compiled model usable: its descriptor, the C interface, the
 * header, and the link step.
 *
 *   <M>_nncc_desc   a constant nncc_model_desc (runtime/nncc_desc.def, field for field) with
 *                   its param / input / target / output arrays and name strings (private),
 *                   and a reference to the embedded weights (--weights: link.c);
 *   M_create ...    tiny wrappers (default visibility) that call the generic nncc_rt_*
 *                   functions; M_forward packs its pointer arguments into stack arrays;
 *   main            (executables) nncc_rt_main(argc, argv, &desc);
 *   M.h             the prototypes, with each input's and output's shape in a comment, and
 *                   nncc.h's text (the error codes).
 * Linking is link.c's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen.h"
#include "diag.h"
#include "nncc_rt.h"
#include "nncc_h_text.h"
#include "ops.h"
#include "outputs.h"

#ifndef NNCC_LINK_SANITIZE
#define NNCC_LINK_SANITIZE 0
#endif

/* The descriptors' layout comes from runtime/nncc_desc.def, the table nncc_rt.h builds its
 * structs from: here an enum of field indices per struct (nncc_train_desc__lr, ...) and a
 * list of (struct, field, kind) from which the LLVM types are made and each constant is
 * checked: every field set, each of its kind. */
#define NNCC_STRUCT(S) enum {
#define NNCC_FIELD(S, KIND, CTYPE, NAME) S##__##NAME,
#define NNCC_DIMS(S, NAME) S##__##NAME,
#define NNCC_END(S) S##__COUNT };
#include "nncc_desc.def"
#undef NNCC_STRUCT
#undef NNCC_FIELD
#undef NNCC_DIMS
#undef NNCC_END

typedef enum { DK_I32, DK_I64, DK_F64, DK_PTR, DK_DIMS } DescKind;
typedef struct DescField {
  const char *strct, *name;
  DescKind kind;
} DescField;
static const DescField desc_fields[] = {
#define NNCC_STRUCT(S)
#define NNCC_FIELD(S, KIND, CTYPE, NAME) {#S, #NAME, DK_##KIND},
#define NNCC_DIMS(S, NAME) {#S, #NAME, DK_DIMS},
#define NNCC_END(S)
#include "nncc_desc.def"
#undef NNCC_STRUCT
#undef NNCC_FIELD
#undef NNCC_DIMS
#undef NNCC_END
};
enum { N_DESC_FIELDS = (int)(sizeof desc_fields / sizeof desc_fields[0]) };

typedef struct Ai {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMTypeRef i32, i64, f32, ptr, voidt;
  LLVMTypeRef tensor_t, param_t, train_t, model_t;
} Ai;

static LLVMTypeRef desc_kind_type(Ai *a, DescKind k) {
  switch (k) {
  case DK_I32: return a->i32;
  case DK_I64: return a->i64;
  case DK_F64: return LLVMDoubleTypeInContext(a->ctx);
  case DK_PTR: return a->ptr;
  case DK_DIMS: return LLVMArrayType(a->i64, NNCC_MAX_RANK);
  }
  die("bad descriptor field kind");
}

/* The named LLVM struct of descriptor `strct`, field for field from the table. */
static LLVMTypeRef desc_type(Ai *a, const char *strct) {
  LLVMTypeRef ft[64];
  unsigned n = 0;
  for (int i = 0; i < N_DESC_FIELDS; i++)
    if (!strcmp(desc_fields[i].strct, strct)) {
      if (n == 64) die("descriptor %s: too many fields", strct);
      ft[n++] = desc_kind_type(a, desc_fields[i].kind);
    }
  if (!n) die("descriptor %s is not in nncc_desc.def", strct);
  LLVMTypeRef t = LLVMStructCreateNamed(a->ctx, strct);
  LLVMStructSetBody(t, ft, n, 0);
  return t;
}

/* A constant of descriptor type t from v[0..n) (indexed by the table's enum): every field must
 * be set and of its kind, or the compiler stops naming the field (a field added to the table
 * and forgotten here). */
static LLVMValueRef desc_const(Ai *a, LLVMTypeRef t, LLVMValueRef *v, unsigned n) {
  const char *strct = LLVMGetStructName(t);
  if (LLVMCountStructElementTypes(t) != n) die("descriptor %s: %u values for %u fields", strct, n,
                                               LLVMCountStructElementTypes(t));
  unsigned k = 0;
  for (int i = 0; i < N_DESC_FIELDS; i++) {
    if (strcmp(desc_fields[i].strct, strct)) continue;
    if (!v[k]) die("descriptor %s: field '%s' is not set", strct, desc_fields[i].name);
    if (LLVMTypeOf(v[k]) != desc_kind_type(a, desc_fields[i].kind))
      die("descriptor %s: field '%s' has the wrong type", strct, desc_fields[i].name);
    k++;
  }
  return LLVMConstNamedStruct(t, v, n);
}

static LLVMValueRef private_string(Ai *a, const char *s) {
  LLVMValueRef str = LLVMConstStringInContext(a->ctx, s, (unsigned)strlen(s), 0);
  LLVMValueRef g = LLVMAddGlobal(a->mod, LLVMTypeOf(str), "nncc.str");
  LLVMSetInitializer(g, str);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
  return g;
}

static LLVMValueRef i32c(Ai *a, int64_t v) { return LLVMConstInt(a->i32, (unsigned long long)v, 1); }
static LLVMValueRef i64c(Ai *a, int64_t v) { return LLVMConstInt(a->i64, (unsigned long long)v, 1); }

static LLVMValueRef dims_const(Ai *a, const int64_t *dims, int rank) {
  LLVMValueRef el[NNCC_MAX_RANK];
  for (int i = 0; i < NNCC_MAX_RANK; i++) el[i] = i64c(a, i < rank ? dims[i] : 0);
  return LLVMConstArray(a->i64, el, NNCC_MAX_RANK);
}

static int dtype_code(DType t) {
  return t == DT_F32 ? NNCC_F32 : t == DT_I32 ? NNCC_I32 : NNCC_LABEL;
}

/* A constant private array of structs; a null pointer when n == 0. */
static LLVMValueRef const_array(Ai *a, LLVMTypeRef t, LLVMValueRef *el, int n, const char *name) {
  if (n == 0) return LLVMConstNull(a->ptr);
  LLVMValueRef init = LLVMConstArray(t, el, (unsigned)n);
  LLVMValueRef g = LLVMAddGlobal(a->mod, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  return g;
}

/* names: the tensors' own names (outputs: the `output` bindings' names, since an output
 * may be an input node, which keeps the input's name), or NULL for the nodes' names. */
static LLVMValueRef tensor_descs(Ai *a, const Graph *g, const int *ids, int n,
                                 const char *const *names, const char *name) {
  LLVMValueRef *el = xcalloc((size_t)n + 1, sizeof(LLVMValueRef));
  for (int i = 0; i < n; i++) {
    const Node *nd = &g->nodes[ids[i]];
    int64_t dims[NNCC_MAX_RANK] = {0};
    for (int d = 0; d < nd->shape.rank && d < NNCC_MAX_RANK; d++)
      dims[d] = nd->shape.d[d].sym ? -1 : nd->shape.d[d].n;
    LLVMValueRef f[nncc_tensor_desc__COUNT] = {0};
    f[nncc_tensor_desc__name] = private_string(a, names ? names[i] : nd->name);
    f[nncc_tensor_desc__dtype] = i32c(a, dtype_code(nd->dtype));
    f[nncc_tensor_desc__rank] = i32c(a, nd->shape.rank);
    f[nncc_tensor_desc__dims] = dims_const(a, dims, nd->shape.rank);
    f[nncc_tensor_desc__classes] = i64c(a, nd->dtype == DT_F32 ? 0 : nd->classes);
    el[i] = desc_const(a, a->tensor_t, f, nncc_tensor_desc__COUNT);
  }
  LLVMValueRef r = const_array(a, a->tensor_t, el, n, name);
  free(el);
  return r;
}

static LLVMValueRef fn_or_null(Ai *a, LLVMValueRef f) { return f ? f : LLVMConstNull(a->ptr); }

static LLVMValueRef add_fn(Ai *a, const char *name, LLVMTypeRef ret, LLVMTypeRef *pt, int n) {
  LLVMValueRef f = LLVMAddFunction(a->mod, name, LLVMFunctionType(ret, pt, (unsigned)n, 0));
  return f;
}

static LLVMValueRef extern_fn(Ai *a, const char *name, LLVMTypeRef ret, LLVMTypeRef *pt, int n) {
  LLVMValueRef f = LLVMGetNamedFunction(a->mod, name);
  if (f) return f;
  return add_fn(a, name, ret, pt, n);
}

static LLVMValueRef call(Ai *a, LLVMValueRef f, LLVMValueRef *args, int n) {
  return LLVMBuildCall2(a->b, LLVMGlobalGetValueType(f), f, args, (unsigned)n, "");
}

/* if (m == NULL) return nncc_rt_fail(NNCC_ERR_ARG, "M_suffix: the model is NULL") (or NULL for
 * a pointer result): the message names the function the user called, which the generic
 * runtime cannot know without the model. */
static void null_model_check(Ai *a, LLVMValueRef f, const char *model, const char *suffix,
                             LLVMTypeRef ret) {
  LLVMTypeRef fail_pt[2] = {a->i32, a->ptr};
  LLVMTypeRef fail_t = LLVMFunctionType(a->i32, fail_pt, 2, 1);
  LLVMValueRef fail = LLVMGetNamedFunction(a->mod, "nncc_rt_fail");
  if (!fail) fail = LLVMAddFunction(a->mod, "nncc_rt_fail", fail_t);
  LLVMBasicBlockRef null_bb = LLVMAppendBasicBlockInContext(a->ctx, f, "null_model");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(a->ctx, f, "body");
  LLVMBuildCondBr(a->b, LLVMBuildIsNull(a->b, LLVMGetParam(f, 0), ""), null_bb, body);
  LLVMPositionBuilderAtEnd(a->b, null_bb);
  char *msg = xasprintf("%s_%s: the model is NULL", model, suffix);
  LLVMValueRef args[2] = {LLVMConstInt(a->i32, (unsigned long long)NNCC_ERR_ARG, 1), private_string(a, msg)};
  free(msg);
  LLVMValueRef rc = LLVMBuildCall2(a->b, fail_t, fail, args, 2, "");
  LLVMBuildRet(a->b, ret == a->i32 ? rc : LLVMConstNull(ret));
  LLVMPositionBuilderAtEnd(a->b, body);
}

/* A wrapper: `ret M_suffix(params...)` whose entry block the caller fills. */
static LLVMValueRef wrapper(Ai *a, const char *model, const char *suffix, LLVMTypeRef ret,
                            LLVMTypeRef *pt, int n) {
  char *name = xasprintf("%s_%s", model, suffix);
  LLVMValueRef f = add_fn(a, name, ret, pt, n);
  free(name);
  LLVMSetVisibility(f, LLVMDefaultVisibility);
  unsigned kind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(a->ctx, kind, 0));
  LLVMPositionBuilderAtEnd(a->b, LLVMAppendBasicBlockInContext(a->ctx, f, "entry"));
  if (n > 0 && ret != a->voidt) null_model_check(a, f, model, suffix, ret);
  return f;
}

/* An array of the pointer parameters first .. first+n-1 of f, on f's stack. */
static LLVMValueRef pack_ptrs(Ai *a, LLVMValueRef f, int first, int n, const char *name) {
  LLVMTypeRef t = LLVMArrayType(a->ptr, (unsigned)(n ? n : 1));
  LLVMValueRef arr = LLVMBuildAlloca(a->b, t, name);
  for (int i = 0; i < n; i++) {
    LLVMValueRef idx = i64c(a, i);
    LLVMBuildStore(a->b, LLVMGetParam(f, (unsigned)(first + i)),
                   LLVMBuildInBoundsGEP2(a->b, a->ptr, arr, &idx, 1, ""));
  }
  return arr;
}

static LLVMValueRef f64c(Ai *a, double v) { return LLVMConstReal(LLVMDoubleTypeInContext(a->ctx), v); }

/* The nncc_train_desc constant (runtime/nncc_desc.def). */
static LLVMValueRef train_desc(Ai *a, const Graph *g, const CgEntries *fns) {
  const TrainConfig *t = &g->train;
  int ntrained = 0;
  LLVMValueRef *tr = xcalloc((size_t)g->nparams + 1, sizeof(LLVMValueRef));
  LLVMValueRef *go = xcalloc((size_t)g->nparams + 1, sizeof(LLVMValueRef));
  for (int p = 0; p < g->nparams; p++) {
    if (g->params[p].trained) tr[ntrained++] = i32c(a, p);
    go[p] = i64c(a, g->params[p].trained ? g->params[p].grad_offset : -1);
  }
  LLVMValueRef trained = const_array(a, a->i32, tr, ntrained, "nncc.trained");
  LLVMValueRef offsets = const_array(a, a->i64, go, g->nparams, "nncc.grad_offset");
  free(tr);
  free(go);
  LLVMValueRef v[nncc_train_desc__COUNT] = {0};
  v[nncc_train_desc__optimizer] = i32c(a, (int)t->optimizer);
  v[nncc_train_desc__nesterov] = i32c(a, t->nesterov);
  v[nncc_train_desc__lr] = f64c(a, t->lr);
  v[nncc_train_desc__momentum] = f64c(a, t->momentum);
  v[nncc_train_desc__weight_decay] = f64c(a, t->weight_decay);
  v[nncc_train_desc__clip_norm] = f64c(a, t->clip_norm);
  v[nncc_train_desc__decay] = f64c(a, t->decay);
  v[nncc_train_desc__beta1] = f64c(a, t->beta1);
  v[nncc_train_desc__beta2] = f64c(a, t->beta2);
  v[nncc_train_desc__eps] = f64c(a, t->eps);
  v[nncc_train_desc__batch] = i64c(a, t->batch);
  v[nncc_train_desc__bptt] = i64c(a, t->bptt);
  v[nncc_train_desc__stateful] = i32c(a, t->stateful);
  v[nncc_train_desc__loss_kind] = i32c(a, g->nodes[g->loss].op == OP_mse ? 1 : 0);
  int draws = 0;   /* the runtime does not split its batch (model.c, batch slices) */
  for (int i = 0; i < g->nnodes; i++) draws |= g->nodes[i].op == OP_dropout;
  v[nncc_train_desc__draws] = i32c(a, draws);
  v[nncc_train_desc__n_trained] = i32c(a, ntrained);
  v[nncc_train_desc__trained] = trained;
  v[nncc_train_desc__grad_floats] = i64c(a, g->grad_floats);
  v[nncc_train_desc__grad_offset] = offsets;
  v[nncc_train_desc__gradients] = fn_or_null(a, fns->gradients.entry);
  v[nncc_train_desc__gradients_workspace] = fn_or_null(a, fns->gradients.workspace);
  v[nncc_train_desc__evaluate] = fn_or_null(a, fns->evaluate.entry);
  v[nncc_train_desc__evaluate_workspace] = fn_or_null(a, fns->evaluate.workspace);
  v[nncc_train_desc__update] = fn_or_null(a, fns->update.entry);
  LLVMValueRef gd = LLVMAddGlobal(a->mod, a->train_t, "nncc.train");
  LLVMSetInitializer(gd, desc_const(a, a->train_t, v, nncc_train_desc__COUNT));
  LLVMSetGlobalConstant(gd, 1);
  LLVMSetLinkage(gd, LLVMPrivateLinkage);
  return gd;
}

/* M_<suffix>(m, batch, [seq,] inputs..., targets..., float *loss) -> rt(m, batch, seq, in, tg, loss) */
static void training_wrapper(Ai *a, const Graph *g, int symbolic_seq, const char *suffix,
                             LLVMValueRef rt) {
  int nfixed = symbolic_seq ? 3 : 2;
  int n = nfixed + g->ninputs + g->ntargets + 1;
  LLVMTypeRef *pt = xcalloc((size_t)n, sizeof(LLVMTypeRef));
  for (int i = 0; i < n; i++) pt[i] = a->ptr;
  pt[1] = a->i64;
  if (symbolic_seq) pt[2] = a->i64;
  LLVMValueRef f = wrapper(a, g->name, suffix, a->i32, pt, n);
  free(pt);
  LLVMValueRef args[6];
  args[0] = LLVMGetParam(f, 0);
  args[1] = LLVMGetParam(f, 1);
  args[2] = symbolic_seq ? LLVMGetParam(f, 2) : i64c(a, 1);
  args[3] = pack_ptrs(a, f, nfixed, g->ninputs, "in");
  args[4] = pack_ptrs(a, f, nfixed + g->ninputs, g->ntargets, "targets");
  args[5] = LLVMGetParam(f, (unsigned)(n - 1));
  LLVMBuildRet(a->b, call(a, rt, args, 6));
}

void artifact_emit_interface(const LoopProgram *lp, LLVMModuleRef mod, const CgEntries *fns,
                             int embedded_weights, int executable, int mpi) {
  const Graph *g = lp->graph;
  Ai ai = {0}, *a = &ai;
  a->ctx = LLVMGetModuleContext(mod);
  a->mod = mod;
  a->b = LLVMCreateBuilderInContext(a->ctx);
  a->i32 = LLVMInt32TypeInContext(a->ctx);
  a->i64 = LLVMInt64TypeInContext(a->ctx);
  a->f32 = LLVMFloatTypeInContext(a->ctx);
  a->ptr = LLVMPointerTypeInContext(a->ctx, 0);
  a->voidt = LLVMVoidTypeInContext(a->ctx);
  a->tensor_t = desc_type(a, "nncc_tensor_desc");
  a->param_t = desc_type(a, "nncc_param_desc");
  a->train_t = desc_type(a, "nncc_train_desc");
  a->model_t = desc_type(a, "nncc_model_desc");

  /* parameters */
  LLVMValueRef *pel = xcalloc((size_t)g->nparams + 1, sizeof(LLVMValueRef));
  for (int i = 0; i < g->nparams; i++) {
    const Param *p = &g->params[i];
    int64_t dims[NNCC_MAX_RANK] = {0};
    for (int d = 0; d < p->shape.rank && d < NNCC_MAX_RANK; d++) dims[d] = p->shape.d[d].n;
    LLVMValueRef f[nncc_param_desc__COUNT] = {0};
    f[nncc_param_desc__name] = private_string(a, p->name);
    f[nncc_param_desc__rank] = i32c(a, p->shape.rank);
    f[nncc_param_desc__init] = i32c(a, (int)p->init);
    f[nncc_param_desc__dims] = dims_const(a, dims, p->shape.rank);
    f[nncc_param_desc__numel] = i64c(a, p->numel);
    f[nncc_param_desc__offset] = i64c(a, p->offset);
    f[nncc_param_desc__fan_in] = i64c(a, p->fan_in);
    f[nncc_param_desc__fan_out] = i64c(a, p->fan_out);
    pel[i] = desc_const(a, a->param_t, f, nncc_param_desc__COUNT);
  }
  LLVMValueRef params = const_array(a, a->param_t, pel, g->nparams, "nncc.params");
  free(pel);
  LLVMValueRef inputs = tensor_descs(a, g, g->inputs, g->ninputs, NULL, "nncc.inputs");
  LLVMValueRef targets = tensor_descs(a, g, g->targets, g->ntargets, NULL, "nncc.targets");
  LLVMValueRef outputs = tensor_descs(a, g, g->outputs, g->noutputs, g->output_names, "nncc.outputs");

  /* --weights: the hidden symbol M_nncc_weights, defined by link.c's .incbin */
  LLVMValueRef embedded = LLVMConstNull(a->ptr);
  if (embedded_weights) {
    char *wname = xasprintf("%s_nncc_weights", g->name);
    embedded = LLVMAddGlobal(mod, LLVMInt8TypeInContext(a->ctx), wname);
    free(wname);
    LLVMSetLinkage(embedded, LLVMExternalLinkage);
    LLVMSetVisibility(embedded, LLVMHiddenVisibility);
    LLVMSetGlobalConstant(embedded, 1);
    LLVMSetAlignment(embedded, 64);
  }

  LLVMValueRef train = fns->trainable ? train_desc(a, g, fns) : LLVMConstNull(a->ptr);
  LLVMValueRef mfv[nncc_model_desc__COUNT] = {0};
  mfv[nncc_model_desc__abi_version] = i32c(a, NNCC_ABI_VERSION);
  mfv[nncc_model_desc__has_seq] = i32c(a, lp->symbolic_seq);
  mfv[nncc_model_desc__name] = private_string(a, g->name);
  mfv[nncc_model_desc__n_params] = i32c(a, g->nparams);
  mfv[nncc_model_desc__n_inputs] = i32c(a, g->ninputs);
  mfv[nncc_model_desc__n_targets] = i32c(a, g->ntargets);
  mfv[nncc_model_desc__n_outputs] = i32c(a, g->noutputs);
  mfv[nncc_model_desc__params] = params;
  mfv[nncc_model_desc__inputs] = inputs;
  mfv[nncc_model_desc__targets] = targets;
  mfv[nncc_model_desc__outputs] = outputs;
  mfv[nncc_model_desc__param_floats] = i64c(a, g->param_floats);
  mfv[nncc_model_desc__packed_floats] = i64c(a, lp->packed_floats);
  mfv[nncc_model_desc__workspace_floats] = fn_or_null(a, fns->forward.workspace);
  mfv[nncc_model_desc__prepare] = fn_or_null(a, fns->forward.prepare);
  mfv[nncc_model_desc__forward] = fn_or_null(a, fns->forward.entry);
  mfv[nncc_model_desc__embedded_params] = embedded;
  mfv[nncc_model_desc__train] = train;
  mfv[nncc_model_desc__rstate_floats] = i64c(a, op_recurrent_state_floats(g));
  mfv[nncc_model_desc__step] = fn_or_null(a, fns->streamable ? fns->step.entry : NULL);
  mfv[nncc_model_desc__step_workspace] = fn_or_null(a, fns->streamable ? fns->step.workspace : NULL);
  {
    int ne = 0;
    LLVMValueRef *ev = xcalloc((size_t)lp->nunpack * 2 + 1, sizeof(LLVMValueRef));
    for (int k = 0; k < lp->nunpack; k++)
      if (lp->unpack[k].restores >= 0 && fns->forward.unpack) {
        const LBuf *b = &lp->bufs[lp->unpack[k].restores];
        ev[2 * ne] = i64c(a, b->offset);
        ev[2 * ne + 1] = i64c(a, b->per_sample.fixed);
        ne++;
      }
    mfv[nncc_model_desc__unpack] = fn_or_null(a, ne ? fns->forward.unpack : NULL);
    mfv[nncc_model_desc__n_evictable] = i32c(a, ne);
    mfv[nncc_model_desc__evictable] =
        ne ? const_array(a, a->i64, ev, 2 * ne, "nncc.evictable") : LLVMConstNull(a->ptr);
    free(ev);
  }
  char *dname = xasprintf("%s_nncc_desc", g->name);
  LLVMValueRef desc = LLVMAddGlobal(mod, a->model_t, dname);
  free(dname);
  LLVMSetInitializer(desc, desc_const(a, a->model_t, mfv, nncc_model_desc__COUNT));
  LLVMSetGlobalConstant(desc, 1);
  LLVMSetLinkage(desc, LLVMInternalLinkage);

  /* runtime entry points */
  LLVMTypeRef p1[1] = {a->ptr};
  LLVMValueRef rt_create = extern_fn(a, "nncc_rt_create", a->ptr, p1, 1);
  LLVMValueRef rt_destroy = extern_fn(a, "nncc_rt_destroy", a->voidt, p1, 1);
  LLVMTypeRef pinit[2] = {a->ptr, a->i64};
  LLVMValueRef rt_init = extern_fn(a, "nncc_rt_init", a->i32, pinit, 2);
  LLVMTypeRef pload[2] = {a->ptr, a->ptr};
  LLVMValueRef rt_load = extern_fn(a, "nncc_rt_load", a->i32, pload, 2);
  LLVMValueRef rt_save = extern_fn(a, "nncc_rt_save", a->i32, pload, 2);
  LLVMTypeRef pfwd[5] = {a->ptr, a->i64, a->i64, a->ptr, a->ptr};
  LLVMValueRef rt_forward = extern_fn(a, "nncc_rt_forward", a->i32, pfwd, 5);
  LLVMTypeRef pparam[3] = {a->ptr, a->ptr, a->ptr};
  LLVMValueRef rt_param = extern_fn(a, "nncc_rt_param", a->ptr, pparam, 3);

  const char *M = g->name;
  LLVMValueRef f, args[5];
  f = wrapper(a, M, "create", a->ptr, NULL, 0);
  LLVMBuildRet(a->b, call(a, rt_create, &desc, 1));
  f = wrapper(a, M, "destroy", a->voidt, p1, 1);
  args[0] = LLVMGetParam(f, 0);
  call(a, rt_destroy, args, 1);
  LLVMBuildRetVoid(a->b);
  f = wrapper(a, M, "init", a->i32, pinit, 2);
  args[0] = LLVMGetParam(f, 0), args[1] = LLVMGetParam(f, 1);
  LLVMBuildRet(a->b, call(a, rt_init, args, 2));
  f = wrapper(a, M, "load", a->i32, pload, 2);
  args[0] = LLVMGetParam(f, 0), args[1] = LLVMGetParam(f, 1);
  LLVMBuildRet(a->b, call(a, rt_load, args, 2));
  f = wrapper(a, M, "save", a->i32, pload, 2);
  args[0] = LLVMGetParam(f, 0), args[1] = LLVMGetParam(f, 1);
  LLVMBuildRet(a->b, call(a, rt_save, args, 2));
  f = wrapper(a, M, "param", a->ptr, pparam, 3);
  for (int i = 0; i < 3; i++) args[i] = LLVMGetParam(f, (unsigned)i);
  LLVMBuildRet(a->b, call(a, rt_param, args, 3));

  /* M_forward(m, batch, [seq,] in..., out...) */
  {
    int nfixed = lp->symbolic_seq ? 3 : 2;
    int n = nfixed + g->ninputs + g->noutputs;
    LLVMTypeRef *pt = xcalloc((size_t)n, sizeof(LLVMTypeRef));
    pt[0] = a->ptr;
    pt[1] = a->i64;
    if (lp->symbolic_seq) pt[2] = a->i64;
    for (int i = nfixed; i < n; i++) pt[i] = a->ptr;
    f = wrapper(a, M, "forward", a->i32, pt, n);
    free(pt);
    LLVMTypeRef in_t = LLVMArrayType(a->ptr, (unsigned)(g->ninputs ? g->ninputs : 1));
    LLVMTypeRef out_t = LLVMArrayType(a->ptr, (unsigned)(g->noutputs ? g->noutputs : 1));
    LLVMValueRef in_a = LLVMBuildAlloca(a->b, in_t, "in");
    LLVMValueRef out_a = LLVMBuildAlloca(a->b, out_t, "out");
    for (int i = 0; i < g->ninputs; i++) {
      LLVMValueRef idx = i64c(a, i);
      LLVMBuildStore(a->b, LLVMGetParam(f, (unsigned)(nfixed + i)),
                     LLVMBuildInBoundsGEP2(a->b, a->ptr, in_a, &idx, 1, ""));
      LLVMSetValueName2(LLVMGetParam(f, (unsigned)(nfixed + i)), g->nodes[g->inputs[i]].name,
                        strlen(g->nodes[g->inputs[i]].name));
    }
    for (int i = 0; i < g->noutputs; i++) {
      LLVMValueRef idx = i64c(a, i);
      LLVMBuildStore(a->b, LLVMGetParam(f, (unsigned)(nfixed + g->ninputs + i)),
                     LLVMBuildInBoundsGEP2(a->b, a->ptr, out_a, &idx, 1, ""));
    }
    args[0] = LLVMGetParam(f, 0);
    args[1] = LLVMGetParam(f, 1);
    args[2] = lp->symbolic_seq ? LLVMGetParam(f, 2) : i64c(a, 1);
    args[3] = in_a;
    args[4] = out_a;
    LLVMBuildRet(a->b, call(a, rt_forward, args, 5));
  }

  if (fns->trainable) {
    LLVMTypeRef pg[6] = {a->ptr, a->i64, a->i64, a->ptr, a->ptr, a->ptr};
    training_wrapper(a, g, lp->symbolic_seq, "gradients",
                     extern_fn(a, "nncc_rt_gradients", a->i32, pg, 6));
    training_wrapper(a, g, lp->symbolic_seq, "train_step",
                     extern_fn(a, "nncc_rt_train_step", a->i32, pg, 6));
    f = wrapper(a, M, "grad", a->ptr, pparam, 3);
    for (int i = 0; i < 3; i++) args[i] = LLVMGetParam(f, (unsigned)i);
    LLVMBuildRet(a->b, call(a, extern_fn(a, "nncc_rt_grad", a->ptr, pparam, 3), args, 3));
    f = wrapper(a, M, "update", a->i32, p1, 1);
    args[0] = LLVMGetParam(f, 0);
    LLVMBuildRet(a->b, call(a, extern_fn(a, "nncc_rt_update", a->i32, p1, 1), args, 1));
    LLVMTypeRef popt[3] = {a->ptr, a->ptr, LLVMDoubleTypeInContext(a->ctx)};
    f = wrapper(a, M, "set_option", a->i32, popt, 3);
    for (int i = 0; i < 3; i++) args[i] = LLVMGetParam(f, (unsigned)i);
    LLVMBuildRet(a->b, call(a, extern_fn(a, "nncc_rt_set_option", a->i32, popt, 3), args, 3));
    f = wrapper(a, M, "save_checkpoint", a->i32, pload, 2);
    args[0] = LLVMGetParam(f, 0), args[1] = LLVMGetParam(f, 1);
    LLVMBuildRet(a->b, call(a, extern_fn(a, "nncc_rt_save_checkpoint", a->i32, pload, 2), args, 2));
    f = wrapper(a, M, "load_checkpoint", a->i32, pload, 2);
    args[0] = LLVMGetParam(f, 0), args[1] = LLVMGetParam(f, 1);
    LLVMBuildRet(a->b, call(a, extern_fn(a, "nncc_rt_load_checkpoint", a->i32, pload, 2), args, 2));
  }

  /* M_reset(m) whenever a state is carried (M_step, stateful training); M_step(m, batch,
   * in..., out...) for streamable models */
  if (fns->streamable || (fns->trainable && g->train.stateful && op_recurrent_state_floats(g) > 0)) {
    f = wrapper(a, M, "reset", a->i32, p1, 1);
    args[0] = LLVMGetParam(f, 0);
    LLVMBuildRet(a->b, call(a, extern_fn(a, "nncc_rt_reset", a->i32, p1, 1), args, 1));
  }
  if (fns->streamable) {
    int n = 2 + g->ninputs + g->noutputs;
    LLVMTypeRef *pt = xcalloc((size_t)n, sizeof(LLVMTypeRef));
    for (int i = 0; i < n; i++) pt[i] = a->ptr;
    pt[1] = a->i64;
    f = wrapper(a, M, "step", a->i32, pt, n);
    free(pt);
    LLVMTypeRef pst[4] = {a->ptr, a->i64, a->ptr, a->ptr};
    args[0] = LLVMGetParam(f, 0);
    args[1] = LLVMGetParam(f, 1);
    args[2] = pack_ptrs(a, f, 2, g->ninputs, "in");
    args[3] = pack_ptrs(a, f, 2 + g->ninputs, g->noutputs, "out");
    LLVMBuildRet(a->b, call(a, extern_fn(a, "nncc_rt_step", a->i32, pst, 4), args, 4));
  }

  if (executable || mpi) {
    LLVMTypeRef pm[3] = {a->i32, a->ptr, a->ptr};
    LLVMValueRef rt_main = extern_fn(a, mpi ? "nncc_rt_mpi_main" : "nncc_rt_main", a->i32, pm, 3);
    char *name = executable ? xstrdup("main") : xasprintf("%s_main", M);
    LLVMValueRef mainf = add_fn(a, name, a->i32, pm, 2);
    free(name);
    LLVMSetVisibility(mainf, LLVMDefaultVisibility);
    LLVMPositionBuilderAtEnd(a->b, LLVMAppendBasicBlockInContext(a->ctx, mainf, "entry"));
    args[0] = LLVMGetParam(mainf, 0);
    args[1] = LLVMGetParam(mainf, 1);
    args[2] = desc;
    LLVMBuildRet(a->b, call(a, rt_main, args, 3));
  }
  LLVMDisposeBuilder(a->b);
}

/* --- the header --- */

static void type_and_dims(FILE *h, const Graph *g, const Node *n) {
  fprintf(h, "%s[batch]", n->dtype == DT_F32 ? "float" : "int32_t");
  for (int d = 0; d < n->shape.rank; d++) {
    if (n->shape.d[d].sym) fprintf(h, "[%s]", g->sym ? g->sym : "seq");
    else fprintf(h, "[%" PRId64 "]", n->shape.d[d].n);
  }
}

/* The name of output i: its `output` binding's (the node keeps an input's own name). */
static const char *output_name(const Graph *g, int i) {
  return g->output_names ? g->output_names[i] : g->nodes[g->outputs[i]].name;
}


/* The C parameter names of M_forward (malloc'd): [0] the length's (NULL without one), then
 * the inputs' and the outputs': each name with '_' appended while it is a C/C++ keyword, the
 * model's type name, `m`, `batch` or an earlier parameter (an output may be an input itself). */
static char **c_param_names(const Graph *g) {
  int n = 1 + g->ninputs + g->noutputs;
  char **names = xcalloc((size_t)n + 1, sizeof(char *));
  for (int i = 0; i < n; i++) {
    const char *base = i == 0 ? g->sym : i <= g->ninputs ? g->nodes[g->inputs[i - 1]].name
                                                          : output_name(g, i - 1 - g->ninputs);
    if (!base) continue;
    char *c = xstrdup(base);
    for (;;) {
      int clash = c_reserved_name(c) || !strcmp(c, "m") || !strcmp(c, "batch") || !strcmp(c, g->name);
      for (int j = 0; j < i && !clash; j++) clash = names[j] && !strcmp(c, names[j]);
      if (!clash) break;
      char *longer = xasprintf("%s_", c);
      free(c);
      c = longer;
    }
    names[i] = c;
  }
  return names;
}

int artifact_write_header(const Graph *g, const char *hp, int embedded_weights, int mpi) {
  FILE *h = outputs_text_begin(hp);   /* written atomically at the end */
  const char *M = g->name;
  const char *hbase = strrchr(hp, '/') ? strrchr(hp, '/') + 1 : hp;
  char *guard = xasprintf("NNCC_MODEL_%s_H", M);
  for (char *p = guard; *p; p++) {
    if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
    else if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) *p = '_';
  }
  fprintf(h, "/* %s - the C interface of model '%s', generated by nncc; do not edit.\n", hbase, M);
  fprintf(h, " *\n * Arrays are [batch, ...shape], row-major, contiguous.  Every int result is 0 on\n"
             " * success and a negative code otherwise, with a message from nncc_last_error().\n"
             " * Inputs and outputs must not overlap.\n"
             " * Threads: one model object is used by one thread at a time (a call while another\n"
             " * thread is inside the same object returns NNCC_ERR_BUSY); two objects may be used\n"
             " * from two threads at once.  Link with -lm (libm).\n */\n");
  fprintf(h, "#ifndef %s\n#define %s\n\n#include <stdint.h>\n\n", guard, guard);
  /* nncc.h (the error codes, nncc_last_error) verbatim: no include path needed */
  fprintf(h, "/* ---- nncc.h, included verbatim ---- */\n%s/* ---- end of nncc.h ---- */\n\n", nncc_h_text);
  fprintf(h, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
  fprintf(h, "typedef struct %s %s;\n\n", M, M);
  if (embedded_weights)
    fprintf(h, "/* A model holding the weights embedded at build time (nncc --weights); NULL on "
               "failure. */\n");
  else
    fprintf(h, "/* A model with the default initialisation (M_init with seed 0); NULL on failure. */\n");
  fprintf(h, "%s *%s_create(void);\n", M, M);
  fprintf(h, "void %s_destroy(%s *m);\n", M, M);
  fprintf(h, "/* Re-initialises the parameters from seed, deterministically: conv and dense weights\n"
             " * He-uniform and their biases 0; recurrent weights and biases U(-1/sqrt(units),\n"
             " * 1/sqrt(units)) as in PyTorch; embeddings N(0, 1). */\n");
  fprintf(h, "int %s_init(%s *m, uint64_t seed);\n", M, M);
  fprintf(h, "/* Loads / saves the parameters as safetensors (PyTorch state_dict names).  A load\n"
             " * reads the file straight into the parameters after checking it all: on failure\n"
             " * they are unchanged, unless a read failed midway (NNCC_ERR_IO); then the calls\n"
             " * that use them fail until an init or a load succeeds. */\n");
  fprintf(h, "int %s_load(%s *m, const char *path);\n", M, M);
  fprintf(h, "int %s_save(const %s *m, const char *path);\n", M, M);
  fprintf(h, "/* Inference.\n");
  char **cn = c_param_names(g);
  for (int i = 0; i < g->ninputs; i++) {
    const Node *n = &g->nodes[g->inputs[i]];
    fprintf(h, " *   in  %s: ", n->name);
    type_and_dims(h, g, n);
    fputc('\n', h);
  }
  for (int i = 0; i < g->noutputs; i++) {
    const Node *n = &g->nodes[g->outputs[i]];
    fprintf(h, " *   out %s: ", output_name(g, i));
    type_and_dims(h, g, n);
    fputc('\n', h);
  }
  fprintf(h, " */\nint %s_forward(%s *m, int64_t batch,", M, M);
  if (g->sym) fprintf(h, " int64_t %s,", cn[0]);
  for (int i = 0; i < g->ninputs; i++) {
    const Node *n = &g->nodes[g->inputs[i]];
    fprintf(h, "\n    const %s *%s, /* ", n->dtype == DT_F32 ? "float" : "int32_t", cn[1 + i]);
    type_and_dims(h, g, n);
    fputs(" */", h);
  }
  for (int i = 0; i < g->noutputs; i++) {
    const Node *n = &g->nodes[g->outputs[i]];
    fprintf(h, "\n    %s *%s%s /* ", n->dtype == DT_F32 ? "float" : "int32_t",
            cn[1 + g->ninputs + i], i + 1 < g->noutputs ? "," : ");");
    type_and_dims(h, g, n);
    fputs(" */", h);
  }
  fprintf(h, "\n/* The parameter called name (\"conv1.weight\") and its element count; NULL when "
             "absent.  Writes through it take effect at the next call. */\n");
  fprintf(h, "float *%s_param(%s *m, const char *name, int64_t *numel);\n", M, M);
  if (g->nfwd >= 0) {
    /* training: inputs, then targets, then the loss */
    fprintf(h, "\n/* Training.  M_gradients: the batch-mean loss into *loss and every trained "
               "parameter's\n * gradient into the buffers of M_grad; the parameters are unchanged.\n"
               " * M_update: one optimizer step from those gradients (clipping, weight decay, %s).\n"
               " * M_train_step: M_gradients, then M_update.\n",
            g->train.optimizer == OPT_SGD ? "sgd" : g->train.optimizer == OPT_ADAM ? "adam"
            : g->train.optimizer == OPT_ADAGRAD ? "adagrad" : "rmsprop");
    for (int i = 0; i < g->ntargets; i++) {
      const Node *n = &g->nodes[g->targets[i]];
      fprintf(h, " *   target %s: ", n->name);
      type_and_dims(h, g, n);
      if (n->dtype != DT_F32) fprintf(h, " (class indices in [0, %" PRId64 "))", n->classes);
      fputc('\n', h);
    }
    fputs(" */\n", h);
    static const char *const entries[2] = {"gradients", "train_step"};
    for (int e = 0; e < 2; e++) {
      fprintf(h, "int %s_%s(%s *m, int64_t batch,", M, entries[e], M);
      if (g->sym) fprintf(h, " int64_t %s,", cn[0]);
      for (int i = 0; i < g->ninputs; i++) {
        const Node *n = &g->nodes[g->inputs[i]];
        fprintf(h, "\n    const %s *%s,", n->dtype == DT_F32 ? "float" : "int32_t", cn[1 + i]);
      }
      for (int i = 0; i < g->ntargets; i++) {
        const Node *n = &g->nodes[g->targets[i]];
        fprintf(h, "\n    const %s *%s,", n->dtype == DT_F32 ? "float" : "int32_t", n->name);
      }
      fputs("\n    float *loss);\n", h);
    }
    fprintf(h, "/* The gradient of a trained parameter (writable; NULL when absent or frozen). */\n");
    fprintf(h, "float *%s_grad(%s *m, const char *name, int64_t *numel);\n", M, M);
    fprintf(h, "int %s_update(%s *m);\n", M, M);
    fprintf(h, "/* \"lr\", \"weight_decay\", \"clip_norm\" and the optimizer's own (sgd: "
               "\"momentum\";\n * adam: \"beta1\", \"beta2\", \"eps\"; rmsprop: \"decay\", "
               "\"eps\"; adagrad: \"eps\"). */\n");
    fprintf(h, "int %s_set_option(%s *m, const char *name, double value);\n", M, M);
    fprintf(h, "/* Parameters + optimizer state + options + step count, atomically; loading "
               "resumes exactly. */\n");
    fprintf(h, "int %s_save_checkpoint(const %s *m, const char *path);\n", M, M);
    fprintf(h, "int %s_load_checkpoint(%s *m, const char *path);\n", M, M);
  }
  if (op_recurrent_streamable(g)) {
    fprintf(h, "\n/* Streaming.  M_step: one time step of every input (its shape without the %s axis);\n"
               " * the outputs for the sequence seen since the last M_reset, ending at this step (an\n"
               " * output with a %s axis: this step's slice).  The recurrent state carries over to\n"
               " * the next call; the batch must stay the same until M_reset. */\n",
            g->sym, g->sym);
    fprintf(h, "int %s_step(%s *m, int64_t batch,", M, M);
    for (int i = 0; i < g->ninputs; i++) {
      const Node *n = &g->nodes[g->inputs[i]];
      fprintf(h, "\n    const %s *%s,", n->dtype == DT_F32 ? "float" : "int32_t", cn[1 + i]);
    }
    for (int i = 0; i < g->noutputs; i++) {
      const Node *n = &g->nodes[g->outputs[i]];
      fprintf(h, "\n    %s *%s%s", n->dtype == DT_F32 ? "float" : "int32_t",
              cn[1 + g->ninputs + i], i + 1 < g->noutputs ? "," : ");\n");
    }
  }
  int stateful = g->nfwd >= 0 && g->train.stateful && op_recurrent_state_floats(g) > 0;
  if (op_recurrent_streamable(g) || stateful) {
    fprintf(h, "%s/* Zeroes the carried recurrent state (%s). */\n", op_recurrent_streamable(g) ? "" : "\n",
            !stateful ? "M_step's" : op_recurrent_streamable(g) ? "M_step's, and stateful training's"
                                                              : "stateful training's");
    fprintf(h, "int %s_reset(%s *m);\n", M, M);
  }
  if (!op_recurrent_streamable(g)) {
    for (int i = 0; i < g->nnodes && (g->nfwd < 0 || i < g->nfwd); i++)
      if ((g->nodes[i].op == OP_rnn || g->nodes[i].op == OP_lstm || g->nodes[i].op == OP_gru) &&
          g->nodes[i].a.bidirectional) {
        fprintf(h, "\n/* No M_step / M_reset: '%s' is bidirectional, and its backward direction "
                   "needs the\n * whole sequence before it can give the first step's output. */\n",
                g->nodes[i].name);
        break;
      }
  }
  if (mpi) {
    fprintf(h, "\n/* Built with --mpi: what the standalone executable's main does, for a host program.\n"
               " * M_main(argc, argv) with argv = {\"prog\", \"train\", \"--data\", ...} trains\n"
               " * data-parallel on MPI_COMM_WORLD under mpirun (initialising MPI unless the program\n"
               " * already has); returns the exit status (0 done, 1 an error, 2 a usage error). */\n");
    fprintf(h, "int %s_main(int argc, char **argv);\n", M);
  }
  for (int i = 0; i <= g->ninputs + g->noutputs; i++) free(cn[i]);
  free(cn);
  fprintf(h, "\n");
  fprintf(h, "#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s */\n", guard);
  free(guard);
  return outputs_text_end(h, hp) ? -1 : 0;
}
