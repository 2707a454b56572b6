/* codegen.c - loop IR to LLVM IR, through the LLVM-C API only.
 *
 * A LoopProgram is one entry point (forward, gradients, evaluate, update); several go into
 * one module.  One LLVM function per Kernel, internal, named after its node
 * ("nncc.k.conv1" for inference, "nncc.gradients.conv1" ...):
 *   i32 nncc.k.NAME(ptr noalias %buf0, ..., ptr noalias %bufN, i64 %batch, i64 %seq, i64 %seed)
 * taking the base pointer of every buffer the kernel touches.  Distinct buffers
 * of one kernel never overlap (the memory plan never shares a slot between two
 * buffers live in the same kernel; aliases such as flatten are resolved to one
 * buffer id by lower.c; the caller's inputs and outputs are distinct arrays), so
 * every pointer is noalias; once the kernel is inlined into the forward function
 * LLVM keeps that as scoped alias metadata.  The forward function computes the
 * bases from its one argument, an nncc_exec (params + offset, packed + offset, grads +
 * offset, in[i], out[i], targets[i], ws + slot offset, ...), calls the kernels in order
 * and returns the first non-zero code.
 *
 * Vectorization (loops.h): a loop with vec = W > 1 (its body must be vectorizable: no set
 * of a local declared outside other than the loop's own reduction, no branch or loop bound
 * that depends on the loop variable; anything else is a compiler error, never a silent
 * scalar loop) becomes a main loop stepping by W, where
 * every expression that depends on the variable is a <W x T> vector, followed by the
 * masked last vector (emit_masked_tail) for the n mod W iterations left: the body once
 * more, its accesses masked to the lanes inside the loop.  Loads and stores use the
 * index's derivative d(index)/d(var): 1 -> a contiguous vector access (align 4),
 * 0 -> a scalar access (a load is splatted; a store of a vector value keeps the
 * last lane, an accumulation sums the lanes as a pairwise tree), another constant s -> each lane loaded or
 * stored by itself at displacement s * lane from lane 0's address (lane_at; a load with
 * 2 <= s <= 4 is the s contiguous vectors that hold its lanes and a shuffle: strided_load), otherwise
 * (no constant derivative) masked gather/scatter.  select(v < D, a, b) and select(v >= D,
 * a, b) of the variable v move as a and b do when they move alike, D a multiple of W and the
 * loop starting at one (every vector's lanes then lie on one side of D).
 * Locals declared inside the vector loop are vectors.  A reduction loop (ls_reduce) keeps
 * its local as a vector of lane partials during the main loop and the masked last vector
 * (its lanes past the end keep their partials), and folds them into the scalar in lane
 * order 0..W-1 after it.  exp and sigmoid are
 * branch-free polynomial code (Cephes), tanh a rational function, the same in scalar and
 * vector form.
 * fadd and fmul carry the `contract` flag; LE_FMA is llvm.fma (fmul + fadd on targets
 * without FMA).
 */
#include "codegen.h"

#include <llvm-c/DebugInfo.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "nncc_rt.h"

typedef struct Cg {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMTypeRef i1, i8, i32, i64, f32, ptr, voidt;
  const LoopProgram *lp;
  int vec_bits;              /* the target's vector register width in bits */
  /* the function being emitted */
  LLVMValueRef fn;
  LLVMValueRef entry_term;   /* allocas go before the entry block's terminator */
  LLVMValueRef *base;        /* per buffer: its base pointer in this function, or NULL */
  LLVMValueRef batch, seq, seed;
  LLVMValueRef *var_s;       /* per loop variable: its scalar value (vector loops: lane 0) */
  LLVMValueRef *local_ptr;   /* per local: its alloca */
  char *local_vec;           /* per local: the alloca holds a vector */
  char *local_set;           /* per local: some LS_SET assigns it (else its value is its init) */
  /* the vector loop being emitted (vw == 0: scalar code) */
  int vw;
  int vvar;
  int vvar_aligned;          /* lane 0 of vvar is a multiple of vw (the loop starts at one) */
  LLVMValueRef vmask;        /* the masked last vector of a vector loop: <vw x i1> lanes < hi */
  LLVMValueRef vlast;        /*   and its last lane (i32); both NULL in the full vectors */
  int vred;                  /* the vector loop's reduction local, -1: none */
  LLVMValueRef vvar_vec;     /* <vw x i64> lane indices of vvar, built on first use */
  LLVMValueRef fail_fn;      /* nncc_rt_fail */
  LLVMValueRef par_fn;       /* nncc_rt_parallel_for */
  int nbase;                 /* buffers the kernel takes (its parameters before batch) */
  const int *base_list;      /*   their ids, in parameter order */
  const char *kname;         /* the kernel's LLVM name, for its outlined loops */
  int npar;                  /* outlined loops of this kernel so far */
  int in_par;                /* emitting an outlined loop: nested parallel loops run serially */
  int in_steps;              /* emitting a recurrence's time-step loop (LStmt.steps) */
} Cg;

/* --- small helpers (PostgreSQL llvmjit_emit.h style) --- */

static LLVMTypeRef scalar_type(Cg *c, LType t) {
  switch (t) {
  case LT_I64: return c->i64;
  case LT_I32: return c->i32;
  case LT_F32: return c->f32;
  case LT_BOOL: return c->i1;
  }
  unreachable();
}

static int is_vec(LLVMValueRef v) {
  return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind;
}

static LLVMValueRef splat_n(Cg *c, LLVMValueRef v, int w) {
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(v), (unsigned)w);
  LLVMValueRef undef = LLVMGetPoison(vt);
  LLVMValueRef ins = LLVMBuildInsertElement(c->b, undef, v, LLVMConstInt(c->i32, 0, 0), "");
  LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(c->i32, (unsigned)w));
  return LLVMBuildShuffleVector(c->b, ins, undef, zeros, "splat");
}

static LLVMValueRef splat(Cg *c, LLVMValueRef v) {
  if (is_vec(v) || !c->vw) return v;
  if (LLVMIsConstant(v)) {
    LLVMValueRef *el = xmalloc(sizeof(LLVMValueRef) * (size_t)c->vw);
    for (int i = 0; i < c->vw; i++) el[i] = v;
    LLVMValueRef r = LLVMConstVector(el, (unsigned)c->vw);
    free(el);
    return r;
  }
  return splat_n(c, v, c->vw);
}

/* Makes a and b the same shape (both vectors when either is). */
static void unify(Cg *c, LLVMValueRef *a, LLVMValueRef *b) {
  if (is_vec(*a) && !is_vec(*b)) *b = splat(c, *b);
  else if (!is_vec(*a) && is_vec(*b)) *a = splat(c, *a);
}

/* A float constant shaped like `like` (scalar or vector). */
static LLVMValueRef fconst(Cg *c, LLVMValueRef like, double v) {
  LLVMValueRef k = LLVMConstReal(c->f32, v);
  if (!is_vec(like)) return k;
  unsigned n = LLVMGetVectorSize(LLVMTypeOf(like));
  LLVMValueRef el[64];
  for (unsigned i = 0; i < n; i++) el[i] = k;
  return LLVMConstVector(el, n);
}

static LLVMValueRef iconst_like(Cg *c, LLVMValueRef like, LLVMTypeRef t, long long v) {
  LLVMValueRef k = LLVMConstInt(t, (unsigned long long)v, 1);
  if (!is_vec(like)) return k;
  unsigned n = LLVMGetVectorSize(LLVMTypeOf(like));
  LLVMValueRef el[64];
  for (unsigned i = 0; i < n; i++) el[i] = k;
  return LLVMConstVector(el, n);
}

static LLVMValueRef contract(LLVMValueRef v) {
  if (LLVMIsAInstruction(v) && LLVMCanValueUseFastMathFlags(v))
    LLVMSetFastMathFlags(v, LLVMFastMathAllowContract);
  return v;
}

static LLVMValueRef fadd(Cg *c, LLVMValueRef a, LLVMValueRef b) {
  unify(c, &a, &b);
  return contract(LLVMBuildFAdd(c->b, a, b, ""));
}
static LLVMValueRef fsub(Cg *c, LLVMValueRef a, LLVMValueRef b) {
  unify(c, &a, &b);
  return contract(LLVMBuildFSub(c->b, a, b, ""));
}
static LLVMValueRef fmul(Cg *c, LLVMValueRef a, LLVMValueRef b) {
  unify(c, &a, &b);
  return contract(LLVMBuildFMul(c->b, a, b, ""));
}
static LLVMValueRef fdiv(Cg *c, LLVMValueRef a, LLVMValueRef b) {
  unify(c, &a, &b);
  return LLVMBuildFDiv(c->b, a, b, "");
}

/* Calls an overloaded intrinsic, overloaded on the types in ov. */
static LLVMValueRef intrinsic(Cg *c, const char *name, LLVMTypeRef *ov, int nov,
                              LLVMValueRef *args, int nargs) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  if (!id) die("unknown intrinsic %s", name);
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, ov, (size_t)nov);
  LLVMTypeRef ft = LLVMIntrinsicGetType(c->ctx, id, ov, (size_t)nov);
  return LLVMBuildCall2(c->b, ft, f, args, (unsigned)nargs, "");
}

static LLVMValueRef intrinsic1(Cg *c, const char *name, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x);
  return intrinsic(c, name, &t, 1, &x, 1);
}

/* Whether the target has fused multiply-add (backend.c asks target.c).  Without it llvm.fma
 * would be a call to fmaf per element, so fma3 is a multiply and an add, both `contract`. */
static int target_fma = 1;
void codegen_set_fma(int has_fma) { target_fma = has_fma; }

static LLVMValueRef fma3(Cg *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef d) {
  if (!target_fma) return fadd(c, fmul(c, a, b), d);
  if (is_vec(a) || is_vec(b) || is_vec(d)) {
    a = splat(c, a);
    b = splat(c, b);
    d = splat(c, d);
  }
  LLVMTypeRef t = LLVMTypeOf(a);
  LLVMValueRef args[3] = {a, b, d};
  return intrinsic(c, "llvm.fma", &t, 1, args, 3);
}

static LLVMValueRef fselect(Cg *c, LLVMValueRef cond, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(c->b, cond, a, b, "");
}

static LLVMValueRef fmin_(Cg *c, LLVMValueRef a, LLVMValueRef b) {
  unify(c, &a, &b);
  return fselect(c, LLVMBuildFCmp(c->b, LLVMRealULT, a, b, ""), a, b);
}
static LLVMValueRef fmax_(Cg *c, LLVMValueRef a, LLVMValueRef b) {
  unify(c, &a, &b);
  return fselect(c, LLVMBuildFCmp(c->b, LLVMRealUGT, a, b, ""), a, b);
}

/* --- exp, tanh, sigmoid: Cephes expf / tanhf, branch-free --- */

/* exp(x) for x in [-87.34, 88.3] or NaN (NaN gives NaN); hi > 0: clamp x into [-87.34, hi]
 * first (hi = 88.7228, where the scale's exponent becomes 255: the result is then inf) */
static LLVMValueRef emit_exp_core(Cg *c, LLVMValueRef x, double hi) {
  LLVMValueRef xc = x;
  if (hi > 0) {
    xc = fmax_(c, x, fconst(c, x, -87.33654));
    xc = fmin_(c, xc, fconst(c, x, hi));
  }
  LLVMValueRef fx = intrinsic1(c, "llvm.rint", fmul(c, xc, fconst(c, x, 1.44269504088896341)));
  LLVMValueRef r = fma3(c, fx, fconst(c, x, -0.693359375), xc);
  r = fma3(c, fx, fconst(c, x, 2.12194440e-4), r);
  LLVMValueRef p = fconst(c, x, 1.9875691500E-4);
  static const double k[] = {1.3981999507E-3, 8.3334519073E-3, 4.1665795894E-2,
                             1.6666665459E-1, 5.0000001201E-1};
  for (int i = 0; i < 5; i++) p = fma3(c, p, r, fconst(c, x, k[i]));
  LLVMValueRef rr = fmul(c, r, r);
  LLVMValueRef y = fadd(c, fma3(c, p, rr, r), fconst(c, x, 1.0));
  LLVMTypeRef it = is_vec(x) ? LLVMVectorType(c->i32, LLVMGetVectorSize(LLVMTypeOf(x))) : c->i32;
  /* frozen: a NaN's conversion is poison; any value then gives NaN times it */
  LLVMValueRef n = LLVMBuildFreeze(c->b, LLVMBuildFPToSI(c->b, fx, it, ""), "");
  n = LLVMBuildAdd(c->b, n, iconst_like(c, x, c->i32, 127), "");
  n = LLVMBuildShl(c->b, n, iconst_like(c, x, c->i32, 23), "");
  LLVMValueRef scale = LLVMBuildBitCast(c->b, n, LLVMTypeOf(x), "");
  return fmul(c, y, scale);
}

static LLVMValueRef emit_exp(Cg *c, LLVMValueRef x) {
  LLVMValueRef y = emit_exp_core(c, x, 88.3);
  /* below the smallest normal result: 0; above the largest: inf; NaN stays NaN */
  y = fselect(c, LLVMBuildFCmp(c->b, LLVMRealOLT, x, fconst(c, x, -87.33654), ""),
              fconst(c, x, 0.0), y);
  y = fselect(c, LLVMBuildFCmp(c->b, LLVMRealOGT, x, fconst(c, x, 88.72283905206835), ""),
              fconst(c, x, __builtin_inf()), y);
  y = fselect(c, LLVMBuildFCmp(c->b, LLVMRealUNO, x, x, ""), x, y);
  return y;
}

/* tanh(x) = x P(x^2) / Q(x^2) on x clamped to [-9.1, 9.1], P of degree 5 and Q of degree 4:
 * our own fit (scripts/fit_tanh.py: the relative error levelled by reweighted least squares,
 * 1.4e-9 before rounding), the form ONNX Runtime, Eigen and XLA evaluate.  At most 4.8 ulp over
 * every float in [0, 12] (2.9e-7 relative: the roundings of P and Q near |x| = 7), odd,
 * tanh(-0) = -0, +-1 from |x| = 9 on and at +-inf, NaN stays NaN (activation_ulp.test).
 * Branch-free and short: 9 FMAs and a division, 2.6x faster than the Cephes form it replaced
 * (1 - 2 / (e^2x + 1) beside an odd polynomial for small |x|: 1.3 ulp, but a chain of ~70
 * cycles through exp and the division, so few vectors were in flight): LeNet-5 at batch 1,
 * whose every layer ends in tanh, 22.5 -> 19.5 us.  The recurrent conformance cases stay
 * within their bound (the worst, a 3-layer rnn, 3.5e-5 -> 4.8e-5 of 1e-4; torch's own float32
 * 3.0e-5).  An earlier rational fit of 3-5 ulps had pushed that rnn past it. */
static LLVMValueRef emit_tanh(Cg *c, LLVMValueRef x) {
  static const double p[] = {1.0, 0.13676151936053874, 0.0038636118776975525,
                             2.7912307442635264e-05, 3.0356372940092761e-08, -1.2034219021147112e-11};
  static const double q[] = {1.0, 0.47009483874674129, 0.027228580599617018,
                             0.00039303162366111929, 1.2807200096491334e-06};
  LLVMValueRef xc = fmin_(c, fmax_(c, x, fconst(c, x, -9.1)), fconst(c, x, 9.1));
  LLVMValueRef z = fmul(c, xc, xc);
  LLVMValueRef pz = fconst(c, x, p[5]);
  for (int i = 4; i >= 0; i--) pz = fma3(c, pz, z, fconst(c, x, p[i]));
  LLVMValueRef qz = fconst(c, x, q[4]);
  for (int i = 3; i >= 0; i--) qz = fma3(c, qz, z, fconst(c, x, q[i]));
  LLVMValueRef r = fdiv(c, fmul(c, xc, pz), qz);
  /* the rounding may pass 1 by an ulp below the clamp; from |x| = 9 on, +-1 exactly, as f32
   * tanh is from 9.01 (the fit rounds an ulp below it) */
  r = fmin_(c, fmax_(c, r, fconst(c, x, -1.0)), fconst(c, x, 1.0));
  LLVMValueRef big = LLVMBuildFCmp(c->b, LLVMRealOGE, intrinsic1(c, "llvm.fabs", x), fconst(c, x, 9.0), "");
  LLVMValueRef args[2] = {fconst(c, x, 1.0), x};
  LLVMTypeRef t = LLVMTypeOf(x);
  return fselect(c, big, intrinsic(c, "llvm.copysign", &t, 1, args, 2), r);
}

static LLVMValueRef emit_sigmoid(Cg *c, LLVMValueRef x) {
  /* exp(-x) clamped: from -x = 88.72 on it is inf (sigmoid 0, as at -inf), below -87.3 the
   * sigmoid is 1 either way */
  LLVMValueRef e = emit_exp_core(c, LLVMBuildFNeg(c->b, x, ""), 88.72283905206835);
  return fdiv(c, fconst(c, x, 1.0), fadd(c, fconst(c, x, 1.0), e));
}

/* --- vectorization analysis --- */

/* Does e depend on the vector loop's variable (or on a vector local)? */
static int varying(Cg *c, const LExpr *e) {
  if (!c->vw || !e) return 0;
  switch (e->kind) {
  case LE_VAR: return e->var == c->vvar;
  case LE_LOCAL: return c->local_vec[e->local];
  case LE_CONST: case LE_BATCH: case LE_SEQ: return 0;
  default: return varying(c, e->a) || varying(c, e->b) || varying(c, e->c);
  }
}

/* d(e)/d(vvar) when it is a known constant (returns 1 and *s), else 0. */
static int stride_of(Cg *c, const LExpr *e, int64_t *s) {
  if (!varying(c, e)) {
    *s = 0;
    return 1;
  }
  int64_t x, y;
  switch (e->kind) {
  case LE_VAR: *s = 1; return 1;
  case LE_BIN:
    if (e->op == LO_ADD || e->op == LO_SUB) {
      if (!stride_of(c, e->a, &x) || !stride_of(c, e->b, &y)) return 0;
      *s = e->op == LO_ADD ? x + y : x - y;
      return 1;
    }
    if (e->op == LO_MUL) {
      if (e->a->kind == LE_CONST && stride_of(c, e->b, &y)) {
        *s = e->a->ival * y;
        return 1;
      }
      if (e->b->kind == LE_CONST && stride_of(c, e->a, &x)) {
        *s = e->b->ival * x;
        return 1;
      }
    }
    return 0;
  case LE_SELECT: {
    /* v < D ? a : b and v >= D ? a : b of the loop variable v, D a multiple of the vector
     * width and lane 0 of v one too: the lanes of a vector lie on one side of D, so every lane
     * takes the same arm, and the select moves as its arms do when they move alike (a gate's
     * columns in a layout of several gates: gru's dG slots r, z and hn, where hn skips n) */
    const LExpr *q = e->a;
    if (q->kind != LE_BIN || (q->op != LO_LT && q->op != LO_GE) || q->a->kind != LE_VAR ||
        q->a->var != c->vvar || !c->vvar_aligned || q->b->kind != LE_CONST || q->b->ival < 0 ||
        q->b->ival % c->vw != 0)
      return 0;
    if (!stride_of(c, e->b, &x) || !stride_of(c, e->c, &y) || x != y) return 0;
    *s = x;
    return 1;
  }
  default: return 0;
  }
}

/* Static legality of vectorizing loop `var`: locals declared inside are vectors; a set of an
 * outer local (other than the loop's own reduction, inner[] == 2: ls_combine only), or a
 * branch / bound / check that depends on the variable, is not supported. */
static int dep_static(const LExpr *e, int var, const char *inner) {
  if (!e) return 0;
  if (e->kind == LE_VAR) return e->var == var;
  if (e->kind == LE_LOCAL) return inner[e->local];
  return dep_static(e->a, var, inner) || dep_static(e->b, var, inner) ||
         dep_static(e->c, var, inner);
}

static int legal_stmt(const LStmt *s, int var, char *inner) {
  if (!s) return 1;
  switch (s->kind) {
  case LS_BLOCK:
    for (int i = 0; i < s->nbody; i++)
      if (!legal_stmt(s->body[i], var, inner)) return 0;
    return 1;
  case LS_FOR:
    if (dep_static(s->lo, var, inner) || dep_static(s->hi, var, inner)) return 0;
    return legal_stmt(s->body[0], var, inner);
  case LS_LOCAL: inner[s->local] = 1; return 1;
  case LS_SET: return inner[s->local] == 1 || (inner[s->local] == 2 && s->accumulate);
  case LS_STORE: case LS_PREFETCH: return 1;
  case LS_IF:
    if (dep_static(s->cond, var, inner)) return 0;
    return legal_stmt(s->body[0], var, inner) && legal_stmt(s->else_body, var, inner);
  case LS_CHECK:
    if (dep_static(s->cond, var, inner)) return 0;
    for (int i = 0; i < s->nargs; i++)
      if (dep_static(s->args[i], var, inner)) return 0;
    return 1;
  }
  return 0;
}

static int vectorizable(Cg *c, const LStmt *loop) {
  char *inner = xcalloc((size_t)c->lp->nlocals + 1, 1);
  if (loop->reduce) inner[loop->reduce - 1] = 2;
  int ok = legal_stmt(loop->body[0], loop->var, inner);
  free(inner);
  return ok;
}

/* Does e read local l? */
static int expr_reads(const LExpr *e, int l) {
  if (!e) return 0;
  if (e->kind == LE_LOCAL && e->local == l) return 1;
  return expr_reads(e->a, l) || expr_reads(e->b, l) || expr_reads(e->c, l);
}

/* A reduction loop's body may touch its local only through ls_combine with the loop's op. */
static int reduction_well_formed(const LStmt *s, int l, LOp op) {
  if (!s) return 1;
  switch (s->kind) {
  case LS_BLOCK:
    for (int i = 0; i < s->nbody; i++)
      if (!reduction_well_formed(s->body[i], l, op)) return 0;
    return 1;
  case LS_FOR:
    return !expr_reads(s->lo, l) && !expr_reads(s->hi, l) && reduction_well_formed(s->body[0], l, op);
  case LS_IF:
    return !expr_reads(s->cond, l) && reduction_well_formed(s->body[0], l, op) &&
           reduction_well_formed(s->else_body, l, op);
  case LS_SET:
    if (s->local == l && (!s->accumulate || s->reduce_op != op)) return 0;
    return !expr_reads(s->value, l);
  case LS_LOCAL: return !expr_reads(s->value, l);
  case LS_STORE: return !expr_reads(s->index, l) && !expr_reads(s->value, l);
  case LS_PREFETCH: return !expr_reads(s->index, l);
  case LS_CHECK:
    for (int i = 0; i < s->nargs; i++)
      if (expr_reads(s->args[i], l)) return 0;
    return !expr_reads(s->cond, l);
  }
  return 0;
}

/* --- expressions --- */

static LLVMValueRef emit_expr(Cg *c, const LExpr *e);

static LLVMValueRef vvar_lanes(Cg *c) {
  if (!c->vvar_vec) {
    LLVMValueRef el[64];
    for (int i = 0; i < c->vw; i++) el[i] = LLVMConstInt(c->i64, (unsigned long long)i, 0);
    LLVMValueRef step = LLVMConstVector(el, (unsigned)c->vw);
    c->vvar_vec = LLVMBuildAdd(c->b, splat_n(c, c->var_s[c->vvar], c->vw), step, "lanes");
  }
  return c->vvar_vec;
}

/* The index with the vector variable at lane 0 (scalar code). */
static LLVMValueRef emit_scalar_index(Cg *c, const LExpr *index) {
  int vw = c->vw;
  c->vw = 0;
  LLVMValueRef v = emit_expr(c, index);
  c->vw = vw;
  return v;
}

static LLVMValueRef all_true(Cg *c) {
  LLVMValueRef el[64];
  for (int i = 0; i < c->vw; i++) el[i] = LLVMConstInt(c->i1, 1, 0);
  return LLVMConstVector(el, (unsigned)c->vw);
}

/* The lanes a vector access may touch: all, or those of the masked last vector. */
static LLVMValueRef lane_mask(Cg *c) { return c->vmask ? c->vmask : all_true(c); }

static LLVMValueRef masked_load(Cg *c, LLVMTypeRef vt, LLVMValueRef p) {
  LLVMTypeRef ov[2] = {vt, LLVMTypeOf(p)};
  LLVMValueRef args[4] = {p, LLVMConstInt(c->i32, 4, 0), c->vmask, LLVMConstNull(vt)};
  return intrinsic(c, "llvm.masked.load", ov, 2, args, 4);
}

static void masked_store(Cg *c, LLVMValueRef v, LLVMValueRef p) {
  LLVMTypeRef ov[2] = {LLVMTypeOf(v), LLVMTypeOf(p)};
  LLVMValueRef args[4] = {v, p, LLVMConstInt(c->i32, 4, 0), c->vmask};
  intrinsic(c, "llvm.masked.store", ov, 2, args, 4);
}

/* Lane i of an access whose index moves by the constant st per lane, from lane 0's address p0.
 * At a stride other than 1 each lane is loaded or stored by itself at this constant
 * displacement (a conv's write-back reads its blocked scratch every NB floats, a pooling
 * window every 2): as a gather or scatter it was a vector of i64 addresses that the backend
 * computed and then took apart lane by lane. */
static LLVMValueRef lane_at(Cg *c, LLVMTypeRef et, LLVMValueRef p0, int64_t st, int i) {
  LLVMValueRef off = LLVMConstInt(c->i64, (unsigned long long)(st * i), 1);
  return LLVMBuildGEP2(c->b, et, p0, &off, 1, "");
}

/* Lane i (i32), or in a masked last vector the last lane for a lane past the end. */
static LLVMValueRef clamped_lane(Cg *c, int i) {
  LLVMValueRef k = LLVMConstInt(c->i32, (unsigned long long)i, 0);
  if (!c->vmask || i == 0) return k;
  return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULE, k, c->vlast, ""), k, c->vlast, "");
}

/* lane_at, but in a masked last vector a lane past the end takes the last lane's address (never
 * past the buffer): a load there is dropped, a store there writes the last lane's value
 * again or adds the identity (emit_store) */
static LLVMValueRef lane_ptr(Cg *c, LLVMTypeRef et, LLVMValueRef p0, int64_t st, int i) {
  if (!c->vmask || i == 0) return lane_at(c, et, p0, st, i);
  LLVMValueRef off = LLVMBuildMul(c->b, LLVMBuildZExt(c->b, clamped_lane(c, i), c->i64, ""),
                                  LLVMConstInt(c->i64, (unsigned long long)st, 1), "");
  return LLVMBuildGEP2(c->b, et, p0, &off, 1, "");
}

/* a + b of element type elem (scalars or vectors) */
static LLVMValueRef add_elem(Cg *c, LType elem, LLVMValueRef a, LLVMValueRef b) {
  return elem == LT_F32 ? fadd(c, a, b) : LLVMBuildAdd(c->b, a, b, "");
}

/* x + identity == x for every x of v's type: -0.0 for floats (+0.0 would turn -0 into +0) */
static LLVMValueRef add_identity(Cg *c, LType elem, LLVMValueRef v) {
  return elem == LT_F32 ? fconst(c, v, -0.0) : LLVMConstNull(LLVMTypeOf(v));
}

/* *p = v, or *p += v (scalars) */
static void store_scalar(Cg *c, LType elem, LLVMTypeRef et, LLVMValueRef p, LLVMValueRef v, int accumulate) {
  if (accumulate) v = add_elem(c, elem, LLVMBuildLoad2(c->b, et, p, ""), v);
  LLVMBuildStore(c->b, v, p);
}

/* In a masked last vector, the offset of the last lane's element at stride s (s * vlast), as
 * a vector to compare element offsets with. */
static LLVMValueRef strided_limit(Cg *c, int64_t s) {
  return splat(c, LLVMBuildMul(c->b, c->vlast, LLVMConstInt(c->i32, (unsigned long long)s, 0), ""));
}

/* Lanes s apart (2 <= s <= 4: a pooling window's column, a stride-2 layer's input) as the
 * contiguous vectors that hold them and one shuffle: s loads instead of W.  The last vector
 * is masked to the elements up to lane W-1's, so no element past it is read; in a masked
 * last vector every one is masked to the elements up to the last lane's (s * vlast), and a
 * lane past it is 0, as masked_load gives. */
static LLVMValueRef strided_load(Cg *c, LLVMTypeRef vt, LLVMValueRef p0, int64_t s) {
  int w = c->vw, span = (int)(s * (w - 1)) + 1, nv = (span + w - 1) / w;
  LLVMTypeRef et = LLVMGetElementType(vt);
  LLVMValueRef parts[4], el[256];
  LLVMValueRef limit = c->vmask ? strided_limit(c, s) : NULL;
  for (int j = 0; j < nv; j++) {
    LLVMValueRef off = LLVMConstInt(c->i64, (unsigned long long)(j * w), 0);
    LLVMValueRef p = LLVMBuildGEP2(c->b, et, p0, &off, 1, "");
    if (limit) {
      for (int l = 0; l < w; l++) el[l] = LLVMConstInt(c->i32, (unsigned long long)(j * w + l), 0);
      LLVMValueRef m = LLVMBuildICmp(c->b, LLVMIntULE, LLVMConstVector(el, (unsigned)w), limit, "");
      LLVMTypeRef ov[2] = {vt, LLVMTypeOf(p)};
      LLVMValueRef args[4] = {p, LLVMConstInt(c->i32, 4, 0), m, LLVMConstNull(vt)};
      parts[j] = intrinsic(c, "llvm.masked.load", ov, 2, args, 4);
    } else if (j < nv - 1 || span % w == 0) {
      parts[j] = LLVMBuildLoad2(c->b, vt, p, "");
      LLVMSetAlignment(parts[j], 4);
    } else {
      for (int l = 0; l < w; l++) el[l] = LLVMConstInt(c->i1, j * w + l < span, 0);
      LLVMTypeRef ov[2] = {vt, LLVMTypeOf(p)};
      LLVMValueRef args[4] = {p, LLVMConstInt(c->i32, 4, 0), LLVMConstVector(el, (unsigned)w), LLVMGetPoison(vt)};
      parts[j] = intrinsic(c, "llvm.masked.load", ov, 2, args, 4);
    }
  }
  /* concatenate to 2, then 4 vectors (a missing one poison), then pick every s-th lane */
  int n = nv;
  while (n > 1) {
    for (int j = 0; j < n; j += 2) {
      LLVMValueRef a = parts[j], b = j + 1 < n ? parts[j + 1] : LLVMGetPoison(LLVMTypeOf(parts[j]));
      unsigned len = LLVMGetVectorSize(LLVMTypeOf(a));
      for (unsigned l = 0; l < 2 * len; l++) el[l] = LLVMConstInt(c->i32, l, 0);
      parts[j / 2] = LLVMBuildShuffleVector(c->b, a, b, LLVMConstVector(el, 2 * len), "");
    }
    n = (n + 1) / 2;
  }
  for (int i = 0; i < w; i++) el[i] = LLVMConstInt(c->i32, (unsigned long long)(s * i), 0);
  return LLVMBuildShuffleVector(c->b, parts[0], LLVMGetPoison(LLVMTypeOf(parts[0])), LLVMConstVector(el, (unsigned)w), "");
}

/* The store counterpart of strided_load: vector val's lanes s apart (2 <= s <= 4: a pooling
 * gradient's window column) as one shuffle and one masked store into each contiguous vector
 * that holds them, the mask taking every s-th element up to lane W-1's (in a masked last
 * vector, up to the last lane's): the elements between are never touched.  accumulate: each
 * element gets its old value plus its lane, as the lane-by-lane store does (lanes s apart
 * never share an element). */
static void strided_store(Cg *c, LType elem, LLVMTypeRef vt, LLVMValueRef p0, int64_t s,
                          LLVMValueRef val, int accumulate) {
  int w = c->vw, span = (int)(s * (w - 1)) + 1, nv = (span + w - 1) / w;
  LLVMTypeRef et = LLVMGetElementType(vt);
  LLVMValueRef el[256], idx[256], pos[256];
  LLVMValueRef limit = c->vmask ? strided_limit(c, s) : splat(c, LLVMConstInt(c->i32, (unsigned long long)(span - 1), 0));
  for (int j = 0; j < nv; j++) {
    for (int l = 0; l < w; l++) {
      int e = j * w + l;
      el[l] = LLVMConstInt(c->i1, e % s == 0, 0);
      idx[l] = LLVMConstInt(c->i32, (unsigned long long)(e % s == 0 ? e / s : 0), 0);
      pos[l] = LLVMConstInt(c->i32, (unsigned long long)e, 0);
    }
    LLVMValueRef m = LLVMBuildAnd(c->b, LLVMConstVector(el, (unsigned)w),
                                  LLVMBuildICmp(c->b, LLVMIntULE, LLVMConstVector(pos, (unsigned)w), limit, ""), "");
    LLVMValueRef v = LLVMBuildShuffleVector(c->b, val, LLVMGetPoison(vt), LLVMConstVector(idx, (unsigned)w), "");
    LLVMValueRef off = LLVMConstInt(c->i64, (unsigned long long)(j * w), 0);
    LLVMValueRef p = LLVMBuildGEP2(c->b, et, p0, &off, 1, "");
    LLVMTypeRef ov[2] = {vt, LLVMTypeOf(p)};
    if (accumulate) {
      LLVMValueRef largs[4] = {p, LLVMConstInt(c->i32, 4, 0), m, LLVMConstNull(vt)};
      v = add_elem(c, elem, intrinsic(c, "llvm.masked.load", ov, 2, largs, 4), v);
    }
    LLVMValueRef args[4] = {v, p, LLVMConstInt(c->i32, 4, 0), m};
    intrinsic(c, "llvm.masked.store", ov, 2, args, 4);
  }
}

static LLVMValueRef emit_load(Cg *c, int buf, const LExpr *index) {
  LLVMTypeRef et = scalar_type(c, c->lp->bufs[buf].elem);
  LLVMValueRef base = c->base[buf];
  if (!base) die("buffer %s has no base in this function", c->lp->bufs[buf].name);
  int64_t s;
  if (!varying(c, index)) {
    LLVMValueRef idx = emit_expr(c, index);
    LLVMValueRef p = LLVMBuildGEP2(c->b, et, base, &idx, 1, "");
    return LLVMBuildLoad2(c->b, et, p, "");
  }
  LLVMTypeRef vt = LLVMVectorType(et, (unsigned)c->vw);
  if (stride_of(c, index, &s)) {
    LLVMValueRef idx = emit_scalar_index(c, index);
    LLVMValueRef p0 = LLVMBuildGEP2(c->b, et, base, &idx, 1, "");
    if (s == 1) {
      if (c->vmask) return masked_load(c, vt, p0);
      LLVMValueRef l = LLVMBuildLoad2(c->b, vt, p0, "");
      LLVMSetAlignment(l, 4);
      return l;
    }
    if (s >= 2 && s <= 4) return strided_load(c, vt, p0, s);
    LLVMValueRef v = LLVMGetPoison(vt);
    for (int i = 0; i < c->vw; i++)
      v = LLVMBuildInsertElement(c->b, v, LLVMBuildLoad2(c->b, et, lane_ptr(c, et, p0, s, i), ""),
                                 LLVMConstInt(c->i32, (unsigned long long)i, 0), "");
    return v;
  }
  LLVMValueRef idx = splat(c, emit_expr(c, index));
  LLVMValueRef ptrs = LLVMBuildGEP2(c->b, et, base, &idx, 1, "");
  LLVMTypeRef ov[2] = {vt, LLVMTypeOf(ptrs)};
  LLVMValueRef args[4] = {ptrs, LLVMConstInt(c->i32, 4, 0), lane_mask(c),
                          c->vmask ? LLVMConstNull(vt) : LLVMGetPoison(vt)};
  return intrinsic(c, "llvm.masked.gather", ov, 2, args, 4);
}

static LLVMValueRef emit_bin(Cg *c, LOp op, LType t, LLVMValueRef a, LLVMValueRef b) {
  unify(c, &a, &b);
  int fl = t == LT_F32;
  switch (op) {
  case LO_ADD: return fl ? fadd(c, a, b) : LLVMBuildAdd(c->b, a, b, "");
  case LO_SUB: return fl ? fsub(c, a, b) : LLVMBuildSub(c->b, a, b, "");
  case LO_MUL: return fl ? fmul(c, a, b) : LLVMBuildMul(c->b, a, b, "");
  case LO_DIV: return fl ? fdiv(c, a, b) : LLVMBuildSDiv(c->b, a, b, "");
  case LO_MOD: return fl ? LLVMBuildFRem(c->b, a, b, "") : LLVMBuildSRem(c->b, a, b, "");
  case LO_MIN:
    if (fl) return fmin_(c, a, b);
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, "");
  case LO_MAX:
    if (fl) return fmax_(c, a, b);
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, a, b, ""), a, b, "");
  case LO_POW: {
    if (!fl) die("pow on integers");
    LLVMTypeRef ty = LLVMTypeOf(a);
    LLVMValueRef args[2] = {a, b};
    return intrinsic(c, "llvm.pow", &ty, 1, args, 2);
  }
  case LO_LT: return fl ? LLVMBuildFCmp(c->b, LLVMRealOLT, a, b, "") : LLVMBuildICmp(c->b, LLVMIntSLT, a, b, "");
  case LO_LE: return fl ? LLVMBuildFCmp(c->b, LLVMRealOLE, a, b, "") : LLVMBuildICmp(c->b, LLVMIntSLE, a, b, "");
  case LO_GT: return fl ? LLVMBuildFCmp(c->b, LLVMRealOGT, a, b, "") : LLVMBuildICmp(c->b, LLVMIntSGT, a, b, "");
  case LO_GE: return fl ? LLVMBuildFCmp(c->b, LLVMRealOGE, a, b, "") : LLVMBuildICmp(c->b, LLVMIntSGE, a, b, "");
  case LO_EQ: return fl ? LLVMBuildFCmp(c->b, LLVMRealOEQ, a, b, "") : LLVMBuildICmp(c->b, LLVMIntEQ, a, b, "");
  case LO_NE: return fl ? LLVMBuildFCmp(c->b, LLVMRealUNE, a, b, "") : LLVMBuildICmp(c->b, LLVMIntNE, a, b, "");
  case LO_AND: return LLVMBuildAnd(c->b, a, b, "");
  case LO_OR: return LLVMBuildOr(c->b, a, b, "");
  default: break;
  }
  unreachable();
}

static LLVMValueRef emit_un(Cg *c, LOp op, LType t, LLVMValueRef a) {
  switch (op) {
  case LO_NEG: return t == LT_F32 ? LLVMBuildFNeg(c->b, a, "") : LLVMBuildNeg(c->b, a, "");
  case LO_EXP: return emit_exp(c, a);
  case LO_LOG: return intrinsic1(c, "llvm.log", a);
  case LO_TANH: return emit_tanh(c, a);
  case LO_SIGMOID: return emit_sigmoid(c, a);
  case LO_SQRT: return intrinsic1(c, "llvm.sqrt", a);
  case LO_ABS:
    if (t == LT_F32) return intrinsic1(c, "llvm.fabs", a);
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, LLVMConstNull(LLVMTypeOf(a)), ""),
                           LLVMBuildNeg(c->b, a, ""), a, "");
  case LO_NOT: return LLVMBuildNot(c->b, a, "");
  default: break;
  }
  unreachable();
}

static LLVMValueRef emit_cast(Cg *c, LType to, LType from, LLVMValueRef a) {
  LLVMTypeRef t = scalar_type(c, to);
  if (is_vec(a)) t = LLVMVectorType(t, LLVMGetVectorSize(LLVMTypeOf(a)));
  if (to == from) return a;
  if (from == LT_F32) {
    if (to == LT_BOOL) return LLVMBuildFCmp(c->b, LLVMRealUNE, a, LLVMConstNull(LLVMTypeOf(a)), "");
    return LLVMBuildFPToSI(c->b, a, t, "");
  }
  if (to == LT_F32) return from == LT_BOOL ? LLVMBuildUIToFP(c->b, a, t, "") : LLVMBuildSIToFP(c->b, a, t, "");
  if (to == LT_BOOL) return LLVMBuildICmp(c->b, LLVMIntNE, a, LLVMConstNull(LLVMTypeOf(a)), "");
  if (from == LT_BOOL) return LLVMBuildZExt(c->b, a, t, "");
  if (to == LT_I64) return LLVMBuildSExt(c->b, a, t, "");
  return LLVMBuildTrunc(c->b, a, t, "");
}

/* LE_RAND: the top 24 bits of a splitmix64-style finaliser of
 *   seed ^ (stream * 0x9E3779B97F4A7C15) + index * 0xBF58476D1CE4E5B9
 * times 2^-24: uniform in [0, 1), a pure function of (seed, stream, index), in scalar or
 * vector form alike. */
static LLVMValueRef emit_rand(Cg *c, const LExpr *e) {
  LLVMValueRef idx = emit_expr(c, e->a);
  LLVMValueRef seed = c->seed;
  if (is_vec(idx)) seed = splat(c, seed);
  LLVMValueRef z = LLVMBuildXor(c->b, seed, iconst_like(c, idx, c->i64, (long long)((uint64_t)e->ival * 0x9E3779B97F4A7C15ull)), "");
  z = LLVMBuildAdd(c->b, z, LLVMBuildMul(c->b, idx, iconst_like(c, idx, c->i64, (long long)0xBF58476D1CE4E5B9ull), ""), "");
  z = LLVMBuildMul(c->b, LLVMBuildXor(c->b, z, LLVMBuildLShr(c->b, z, iconst_like(c, idx, c->i64, 30), ""), ""),
                   iconst_like(c, idx, c->i64, (long long)0xBF58476D1CE4E5B9ull), "");
  z = LLVMBuildMul(c->b, LLVMBuildXor(c->b, z, LLVMBuildLShr(c->b, z, iconst_like(c, idx, c->i64, 27), ""), ""),
                   iconst_like(c, idx, c->i64, (long long)0x94D049BB133111EBull), "");
  z = LLVMBuildXor(c->b, z, LLVMBuildLShr(c->b, z, iconst_like(c, idx, c->i64, 31), ""), "");
  z = LLVMBuildLShr(c->b, z, iconst_like(c, idx, c->i64, 40), "");
  LLVMTypeRef ft = is_vec(idx) ? LLVMVectorType(c->f32, LLVMGetVectorSize(LLVMTypeOf(idx))) : c->f32;
  LLVMValueRef f = LLVMBuildUIToFP(c->b, z, ft, "");
  return fmul(c, f, fconst(c, f, 1.0 / 16777216.0));
}

static LLVMValueRef emit_expr(Cg *c, const LExpr *e) {
  switch (e->kind) {
  case LE_CONST:
    if (e->type == LT_F32) return LLVMConstReal(c->f32, e->fval);
    return LLVMConstInt(scalar_type(c, e->type), (unsigned long long)e->ival, 1);
  case LE_VAR:
    if (c->vw && e->var == c->vvar) return vvar_lanes(c);
    if (!c->var_s[e->var]) die("loop variable %s used outside its loop", c->lp->var_names[e->var]);
    return c->var_s[e->var];
  case LE_LOCAL: {
    if (!c->local_ptr[e->local]) die("local %%%d used outside its block", e->local);
    LLVMTypeRef t = scalar_type(c, e->type);
    if (c->local_vec[e->local]) t = LLVMVectorType(t, (unsigned)c->local_vec[e->local]);
    return LLVMBuildLoad2(c->b, t, c->local_ptr[e->local], "");
  }
  case LE_BATCH: return c->batch;
  case LE_SEQ: return c->seq;
  case LE_LOAD: return emit_load(c, e->buf, e->a);
  case LE_BIN: return emit_bin(c, e->op, e->a->type, emit_expr(c, e->a), emit_expr(c, e->b));
  case LE_UN: return emit_un(c, e->op, e->type, emit_expr(c, e->a));
  case LE_FMA: return fma3(c, emit_expr(c, e->a), emit_expr(c, e->b), emit_expr(c, e->c));
  case LE_SELECT: {
    LLVMValueRef cond = emit_expr(c, e->a);
    LLVMValueRef a = emit_expr(c, e->b), b = emit_expr(c, e->c);
    unify(c, &a, &b);
    if (is_vec(cond)) {
      a = splat(c, a);
      b = splat(c, b);
    }
    return LLVMBuildSelect(c->b, cond, a, b, "");
  }
  case LE_CAST: return emit_cast(c, e->type, e->a->type, emit_expr(c, e->a));
  case LE_RAND: return emit_rand(c, e);
  case LE_SWAP: {
    LLVMValueRef v = emit_expr(c, e->a);
    unsigned w = is_vec(v) ? LLVMGetVectorSize(LLVMTypeOf(v)) : 1;
    if (w < 2 || w > 64 || e->ival >= (int64_t)w || c->vmask)
      die("swap(%lld) of %u lanes: only in a vector loop of whole vectors", (long long)e->ival, w);
    LLVMValueRef el[64];
    for (unsigned i = 0; i < w; i++) el[i] = LLVMConstInt(c->i32, (unsigned long long)(i ^ (unsigned)e->ival), 0);
    return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(LLVMTypeOf(v)), LLVMConstVector(el, w), "");
  }
  }
  unreachable();
}

/* --- statements --- */

static void emit_block(Cg *c, const LStmt *s);
static void emit_stmt(Cg *c, const LStmt *s);

static LLVMValueRef alloca_of(Cg *c, LLVMTypeRef t) {
  LLVMBuilderRef ab = LLVMCreateBuilderInContext(c->ctx);
  LLVMPositionBuilderBefore(ab, c->entry_term);
  LLVMValueRef a = LLVMBuildAlloca(ab, t, "local");
  LLVMDisposeBuilder(ab);
  return a;
}

/* The sum of v's lanes as a pairwise tree: the upper half added to the lower half until one
 * lane is left (8 lanes: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))).  A fixed order,
 * like lane order, but a few shuffles and adds instead of a chain of one add per lane: it ends
 * every gemm_dot tile, once per accumulator. */
static LLVMValueRef reduce_add(Cg *c, LType t, LLVMValueRef v) {
  unsigned n = LLVMGetVectorSize(LLVMTypeOf(v));
  while (n > 1) {
    unsigned h = n / 2;
    LLVMValueRef lo_idx[32], hi_idx[32];
    for (unsigned i = 0; i < h; i++) {
      lo_idx[i] = LLVMConstInt(c->i32, i, 0);
      hi_idx[i] = LLVMConstInt(c->i32, h + i, 0);
    }
    LLVMValueRef poison = LLVMGetPoison(LLVMTypeOf(v));
    LLVMValueRef lo = LLVMBuildShuffleVector(c->b, v, poison, LLVMConstVector(lo_idx, h), "");
    LLVMValueRef hi = LLVMBuildShuffleVector(c->b, v, poison, LLVMConstVector(hi_idx, h), "");
    v = add_elem(c, t, lo, hi);
    n = h;
  }
  return LLVMBuildExtractElement(c->b, v, LLVMConstInt(c->i32, 0, 0), "");
}

/* llvm.prefetch(p, read, locality 2: prefetcht1 on x86, into L2, data cache) of the line of
 * buf[index]: the first lane's element when the index moves with the vector variable by a
 * known stride, none when it moves otherwise (a gather's lines: a hint is not worth those
 * address computations) */
static void emit_prefetch(Cg *c, const LStmt *s) {
  LLVMTypeRef et = scalar_type(c, c->lp->bufs[s->buf].elem);
  LLVMValueRef base = c->base[s->buf];
  if (!base) die("buffer %s has no base in this function", c->lp->bufs[s->buf].name);
  int64_t st;
  LLVMValueRef idx;
  if (!varying(c, s->index)) idx = emit_expr(c, s->index);
  else if (stride_of(c, s->index, &st)) idx = emit_scalar_index(c, s->index);
  else return;
  LLVMValueRef args[4] = {LLVMBuildGEP2(c->b, et, base, &idx, 1, ""), LLVMConstInt(c->i32, 0, 0),
                          LLVMConstInt(c->i32, 2, 0), LLVMConstInt(c->i32, 1, 0)};
  LLVMTypeRef pt = LLVMTypeOf(args[0]);
  intrinsic(c, "llvm.prefetch", &pt, 1, args, 4);
}

static void emit_store(Cg *c, const LStmt *s) {
  LType elem = c->lp->bufs[s->buf].elem;
  LLVMTypeRef et = scalar_type(c, elem);
  LLVMValueRef base = c->base[s->buf];
  if (!base) die("buffer %s has no base in this function", c->lp->bufs[s->buf].name);
  LLVMValueRef val = emit_expr(c, s->value);
  int64_t st;
  if (!varying(c, s->index)) {
    LLVMValueRef idx = emit_expr(c, s->index);
    LLVMValueRef p = LLVMBuildGEP2(c->b, et, base, &idx, 1, "");
    if (is_vec(val)) {
      if (s->accumulate) val = reduce_add(c, elem, c->vmask ? LLVMBuildSelect(c->b, c->vmask, val, add_identity(c, elem, val), "") : val);
      else val = LLVMBuildExtractElement(c->b, val, c->vlast ? c->vlast : LLVMConstInt(c->i32, (unsigned long long)(c->vw - 1), 0), "");
    }
    store_scalar(c, elem, et, p, val, s->accumulate);
    return;
  }
  val = splat(c, val);
  LLVMTypeRef vt = LLVMVectorType(et, (unsigned)c->vw);
  if (stride_of(c, s->index, &st)) {
    LLVMValueRef idx = emit_scalar_index(c, s->index);
    LLVMValueRef p = LLVMBuildGEP2(c->b, et, base, &idx, 1, "");
    if (st >= 2 && st <= 4) {
      strided_store(c, elem, vt, p, st, val, s->accumulate);
      return;
    }
    if (st != 1) { /* lane by lane, in lane order (an accumulation into one place adds them in
                    * turn); in a masked last vector the lanes past the end go to the last
                    * lane's place (lane_ptr) and store its value again, or add the identity */
      if (c->vmask && s->accumulate) val = LLVMBuildSelect(c->b, c->vmask, val, add_identity(c, elem, val), "");
      for (int i = 0; i < c->vw; i++) {
        LLVMValueRef pi = lane_ptr(c, et, p, st, i);
        LLVMValueRef li = s->accumulate ? LLVMConstInt(c->i32, (unsigned long long)i, 0) : clamped_lane(c, i);
        store_scalar(c, elem, et, pi, LLVMBuildExtractElement(c->b, val, li, ""), s->accumulate);
      }
      return;
    }
    if (c->vmask) {
      if (s->accumulate) val = add_elem(c, elem, masked_load(c, vt, p), val);
      masked_store(c, val, p);
      return;
    }
    if (s->accumulate) {
      LLVMValueRef old = LLVMBuildLoad2(c->b, vt, p, "");
      LLVMSetAlignment(old, 4);
      val = add_elem(c, elem, old, val);
    }
    LLVMValueRef stv = LLVMBuildStore(c->b, val, p);
    LLVMSetAlignment(stv, 4);
    return;
  }
  LLVMValueRef idx = splat(c, emit_expr(c, s->index));
  LLVMValueRef ptrs = LLVMBuildGEP2(c->b, et, base, &idx, 1, "");
  if (s->accumulate) {
    LLVMTypeRef ov[2] = {vt, LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {ptrs, LLVMConstInt(c->i32, 4, 0), lane_mask(c),
                            c->vmask ? LLVMConstNull(vt) : LLVMGetPoison(vt)};
    LLVMValueRef old = intrinsic(c, "llvm.masked.gather", ov, 2, args, 4);
    val = add_elem(c, elem, old, val);
  }
  LLVMTypeRef ov[2] = {vt, LLVMTypeOf(ptrs)};
  LLVMValueRef args[4] = {val, ptrs, LLVMConstInt(c->i32, 4, 0), lane_mask(c)};
  intrinsic(c, "llvm.masked.scatter", ov, 2, args, 4);
}

/* for var in [lo, hi) step: body, as header / body / exit blocks with a phi. */
static void emit_loop(Cg *c, const LStmt *s, LLVMValueRef lo, LLVMValueRef hi, int step) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
  const char *vn = c->lp->var_names[s->var];
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, vn);
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "body");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "end");
  LLVMBuildBr(c->b, head);
  LLVMPositionBuilderAtEnd(c->b, head);
  LLVMValueRef i = LLVMBuildPhi(c->b, c->i64, vn);
  LLVMAddIncoming(i, &lo, &pre, 1);
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, i, hi, ""), body, exit);
  LLVMPositionBuilderAtEnd(c->b, body);
  LLVMValueRef saved = c->var_s[s->var];
  c->var_s[s->var] = i;
  LLVMValueRef saved_lanes = c->vvar_vec;
  if (step > 1) {
    c->vvar_vec = NULL;
    vvar_lanes(c); /* built here so it dominates every use in the body */
  }
  emit_block(c, s->body[0]);
  if (step > 1) c->vvar_vec = saved_lanes;
  c->var_s[s->var] = saved;
  LLVMValueRef next = LLVMBuildNSWAdd(c->b, i, LLVMConstInt(c->i64, (unsigned long long)step, 0), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
  LLVMAddIncoming(i, &next, &latch, 1);
  LLVMValueRef br = LLVMBuildBr(c->b, head);
  if (s->unroll && step == 1) {
    /* !llvm.loop !{self, !{"llvm.loop.unroll.full"}} (unroll < 0: "llvm.loop.unroll.disable") */
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(c->ctx, NULL, 0);
    const char *hint = s->unroll > 0 ? "llvm.loop.unroll.full" : "llvm.loop.unroll.disable";
    LLVMMetadataRef str = LLVMMDStringInContext2(c->ctx, hint, strlen(hint));
    LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(c->ctx, &str, 1)};
    LLVMMetadataRef loop = LLVMMDNodeInContext2(c->ctx, ops, 2);
    LLVMMetadataReplaceAllUsesWith(tmp, loop);
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->ctx, "llvm.loop", 9),
                    LLVMMetadataAsValue(c->ctx, loop));
  }
  LLVMPositionBuilderAtEnd(c->b, exit);
}

/* The last hi - vend < vw lanes of a vector loop, when there are any: the body once more as
 * vectors at var = vend, every access masked to the lanes < hi (masked loads, stores, gathers
 * and scatters; a reduction's partials keep their value in the other lanes), instead of a
 * scalar loop of up to vw - 1 turns: a row of 14 or 10 (LeNet-5's planes) was all scalar. */
static void emit_masked_tail(Cg *c, const LStmt *s, LLVMValueRef vend, LLVMValueRef hi) {
  LLVMBasicBlockRef tail = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tail");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tail.end");
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, vend, hi, ""), tail, done);
  LLVMPositionBuilderAtEnd(c->b, tail);
  LLVMValueRef saved = c->var_s[s->var];
  c->var_s[s->var] = vend;
  c->vvar_vec = NULL;
  LLVMValueRef lanes = vvar_lanes(c); /* built here so it dominates every use in the body */
  c->vmask = LLVMBuildICmp(c->b, LLVMIntSLT, lanes, splat_n(c, hi, c->vw), "mask");
  c->vlast = LLVMBuildTrunc(c->b, LLVMBuildSub(c->b, LLVMBuildSub(c->b, hi, vend, ""), LLVMConstInt(c->i64, 1, 0), ""),
                            c->i32, "last");
  emit_block(c, s->body[0]);
  c->vmask = c->vlast = NULL;
  c->var_s[s->var] = saved;
  c->vvar_vec = NULL;
  LLVMBuildBr(c->b, done);
  LLVMPositionBuilderAtEnd(c->b, done);
}

static void emit_for(Cg *c, const LStmt *s) {
  LLVMValueRef lo = emit_expr(c, s->lo), hi = emit_expr(c, s->hi);
  if (is_vec(lo) || is_vec(hi)) die("loop bounds depend on a vectorized variable");
  int w = s->vec;
  if (s->reduce && !reduction_well_formed(s->body[0], s->reduce - 1, s->reduce_op))
    die("reduction loop %s reads or sets its local %%%d other than by combining into it",
        c->lp->var_names[s->var], s->reduce - 1);
  if (w > 1 && !c->vw && !vectorizable(c, s))
    die("loop %s asks for %d lanes but its body cannot be vectorized (a set of an outer local "
        "that is not its reduction, or a branch, bound or check on the variable)",
        c->lp->var_names[s->var], w);
  if (w <= 1 || c->vw) {
    emit_loop(c, s, lo, hi, 1);
    return;
  }
  /* a reduction: the local is a vector of lane partials during the main loop */
  int red = s->reduce - 1;
  LLVMValueRef red_ptr = NULL, partial = NULL;
  LType red_t = LT_F32;
  if (s->reduce) {
    red_t = c->lp->local_types[red];
    red_ptr = c->local_ptr[red];
    if (!red_ptr || c->local_vec[red]) die("reduction into local %%%d outside its block", red);
    LLVMTypeRef vt = LLVMVectorType(scalar_type(c, red_t), (unsigned)w);
    partial = alloca_of(c, vt);
    LLVMValueRef start = s->reduce_op == LO_ADD ? LLVMConstNull(scalar_type(c, red_t))
                                                : LLVMBuildLoad2(c->b, scalar_type(c, red_t), red_ptr, "");
    LLVMBuildStore(c->b, splat_n(c, start, w), partial);
    c->local_ptr[red] = partial;
    c->local_vec[red] = (char)w;
  }
  /* main loop: [lo, vend) by w; the remainder [vend, hi) one masked vector */
  LLVMValueRef n = LLVMBuildSub(c->b, hi, lo, "");
  n = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, n, LLVMConstInt(c->i64, 0, 0), ""),
                      LLVMConstInt(c->i64, 0, 0), n, "");
  LLVMValueRef rem = LLVMBuildURem(c->b, n, LLVMConstInt(c->i64, (unsigned long long)w, 0), "");
  LLVMValueRef vend = LLVMBuildAdd(c->b, lo, LLVMBuildSub(c->b, n, rem, ""), "vend");
  c->vw = w;
  c->vvar = s->var;
  c->vvar_aligned = s->lo->kind == LE_CONST && s->lo->ival >= 0 && s->lo->ival % w == 0;
  c->vvar_vec = NULL;
  c->vred = s->reduce ? red : -1;
  int known = LLVMIsAConstantInt(lo) && LLVMIsAConstantInt(hi);
  int64_t trips = known ? LLVMConstIntGetSExtValue(hi) - LLVMConstIntGetSExtValue(lo) : 0;
  if (!known || trips >= w) emit_loop(c, s, lo, vend, w);
  /* no remainder when the trip count is a known multiple of w (a tile's lane loop [0, w)) */
  if (!known || (trips > 0 && trips % w != 0)) emit_masked_tail(c, s, vend, hi);
  c->vw = 0;
  c->vvar = -1;
  c->vvar_vec = NULL;
  c->vred = -1;
  if (s->reduce) {
    /* fold the partials (the masked lanes' too) into the local in lane order */
    c->local_ptr[red] = red_ptr;
    c->local_vec[red] = 0;
    LLVMTypeRef et = scalar_type(c, red_t);
    LLVMValueRef p = LLVMBuildLoad2(c->b, LLVMVectorType(et, (unsigned)w), partial, "");
    LLVMValueRef acc = LLVMBuildLoad2(c->b, et, red_ptr, "");
    for (int i = 0; i < w; i++)
      acc = emit_bin(c, s->reduce_op, red_t, acc,
                     LLVMBuildExtractElement(c->b, p, LLVMConstInt(c->i32, (unsigned long long)i, 0), ""));
    LLVMBuildStore(c->b, acc, red_ptr);
  }
}

static LLVMValueRef global_string(Cg *c, const char *s, const char *name) {
  LLVMValueRef str = LLVMConstStringInContext(c->ctx, s, (unsigned)strlen(s), 0);
  LLVMValueRef g = LLVMAddGlobal(c->mod, LLVMTypeOf(str), name);
  LLVMSetInitializer(g, str);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
  return g;
}

static void emit_check(Cg *c, const LStmt *s) {
  LLVMValueRef cond = emit_expr(c, s->cond);
  LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "check.ok");
  LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "check.fail");
  LLVMBuildCondBr(c->b, cond, ok, bad);
  LLVMPositionBuilderAtEnd(c->b, bad);
  LLVMValueRef args[6];
  args[0] = LLVMConstInt(c->i32, (unsigned long long)(long long)s->code, 1);
  args[1] = global_string(c, s->message, "nncc.msg");
  for (int i = 0; i < s->nargs; i++) args[2 + i] = emit_expr(c, s->args[i]);
  LLVMTypeRef ft = LLVMGlobalGetValueType(c->fail_fn);
  LLVMValueRef r = LLVMBuildCall2(c->b, ft, c->fail_fn, args, (unsigned)(2 + s->nargs), "");
  LLVMBuildRet(c->b, r);
  LLVMPositionBuilderAtEnd(c->b, ok);
}

static void set_vector_attrs(Cg *c, LLVMValueRef fn);
static void add_param_attr(Cg *c, LLVMValueRef fn, unsigned idx, const char *name);

/* --- parallel loops ---
 *
 * A loop marked parallel (its iterations write disjoint outputs: lowering's promise) that is
 * not inside a vector loop is outlined: its body goes into a function
 *   i32 K.parN(ptr noalias bufs..., i64 batch, i64 seq, i64 seed, captured..., i64 lo, i64 hi)
 * (noalias like the kernel's own parameters; inlined into the trampoline by the optimizer)
 * and a trampoline i32 K.parN.run(ptr ctx, i64 lo, i64 hi) that unpacks the kernel's values
 * from ctx; the kernel stores them in ctx and calls nncc_rt_parallel_for(trampoline, ctx, lo,
 * hi, work), work being the loop's estimated element operations, so the runtime keeps tiny
 * loops on the calling thread.  Captured: the loop variables and locals of the enclosing code
 * that the loop reads.  A loop that sets a local declared outside it is not parallel (a race)
 * and runs serially. */

static void reads_of_expr(const LExpr *e, char *lread, char *vread) {
  if (!e) return;
  if (e->kind == LE_LOCAL) lread[e->local] = 1;
  if (e->kind == LE_VAR) vread[e->var] = 1;
  reads_of_expr(e->a, lread, vread);
  reads_of_expr(e->b, lread, vread);
  reads_of_expr(e->c, lread, vread);
}

/* What s reads (locals, variables), which locals it sets or declares, which variables its
 * loops bind. */
static void reads_of_stmt(const LStmt *s, char *lread, char *vread, char *lset, char *ldecl,
                          char *vdecl) {
  if (!s) return;
  for (int i = 0; i < s->nbody; i++) reads_of_stmt(s->body[i], lread, vread, lset, ldecl, vdecl);
  reads_of_stmt(s->else_body, lread, vread, lset, ldecl, vdecl);
  if (s->kind == LS_FOR) vdecl[s->var] = 1;
  if (s->kind == LS_SET) lset[s->local] = 1;
  if (s->kind == LS_LOCAL) ldecl[s->local] = 1;
  reads_of_expr(s->lo, lread, vread);
  reads_of_expr(s->hi, lread, vread);
  reads_of_expr(s->index, lread, vread);
  reads_of_expr(s->value, lread, vread);
  reads_of_expr(s->cond, lread, vread);
  for (int i = 0; i < s->nargs; i++) reads_of_expr(s->args[i], lread, vread);
}

/* Integer arithmetic of constants, batch, seq and loop variables that have a value here (the
 * enclosing loops', and the estimate's stand-ins below), dividing only by nonzero constants:
 * an expression the kernel can evaluate before a parallel loop to estimate its work. */
static int expr_estimable(const Cg *c, const LExpr *e) {
  if (!e) return 1;
  switch (e->kind) {
  case LE_CONST: return e->type != LT_F32;
  case LE_BATCH: case LE_SEQ: return 1;
  case LE_VAR: return c->var_s[e->var] != NULL;
  case LE_BIN:
    if ((e->op == LO_DIV || e->op == LO_MOD) && (e->b->kind != LE_CONST || e->b->ival == 0)) return 0;
    if (e->op == LO_POW) return 0;
    return expr_estimable(c, e->a) && expr_estimable(c, e->b);
  case LE_SELECT: return expr_estimable(c, e->a) && expr_estimable(c, e->b) && expr_estimable(c, e->c);
  case LE_CAST: return e->type != LT_F32 && expr_estimable(c, e->a);
  default: return 0;
  }
}

/* A loop's trip count as an i64 value computed in the kernel, or an estimate when its bounds
 * depend on enclosing loops: the constant side of a min() or C of min(lo + C, ...), else 16. */
static LLVMValueRef trips_estimate(Cg *c, const LStmt *s) {
  if (expr_estimable(c, s->lo) && expr_estimable(c, s->hi) && s->lo->type == LT_I64) {
    LLVMValueRef n = LLVMBuildSub(c->b, emit_expr(c, s->hi), emit_expr(c, s->lo), "");
    LLVMValueRef neg = LLVMBuildICmp(c->b, LLVMIntSLT, n, LLVMConstInt(c->i64, 0, 0), "");
    return LLVMBuildSelect(c->b, neg, LLVMConstInt(c->i64, 0, 0), n, "");
  }
  const LExpr *h = s->hi;
  if (h->kind == LE_BIN && h->op == LO_MIN) {
    /* min(lo + C, n): a block of C (loops_split_flat) */
    if (h->a->kind == LE_BIN && h->a->op == LO_ADD && h->a->a == s->lo && h->a->b->kind == LE_CONST)
      return LLVMConstInt(c->i64, (unsigned long long)h->a->b->ival, 0);
    if (h->a->kind == LE_CONST) return LLVMConstInt(c->i64, (unsigned long long)h->a->ival, 0);
    if (h->b->kind == LE_CONST) return LLVMConstInt(c->i64, (unsigned long long)h->b->ival, 0);
  }
  return LLVMConstInt(c->i64, 16, 0);
}

/* Estimated element operations of one execution of s.  A loop inside s whose bounds the
 * kernel can evaluate (expr_estimable) counts its trips at the first iteration of the loops
 * around it: while its body is estimated, its variable stands for its lower bound.  So a tile
 * loop of min(64, n - mc * 64) rows counts 64 (or n, when one tile), a reduction over k
 * counts k. */
static LLVMValueRef work_estimate(Cg *c, const LStmt *s) {
  if (!s) return LLVMConstInt(c->i64, 0, 0);
  switch (s->kind) {
  case LS_BLOCK: {
    LLVMValueRef w = LLVMConstInt(c->i64, 0, 0);
    for (int i = 0; i < s->nbody; i++) w = LLVMBuildAdd(c->b, w, work_estimate(c, s->body[i]), "");
    return w;
  }
  case LS_FOR: {
    LLVMValueRef trips = trips_estimate(c, s), saved = c->var_s[s->var];
    if (expr_estimable(c, s->lo)) c->var_s[s->var] = emit_expr(c, s->lo);
    LLVMValueRef w = LLVMBuildMul(c->b, trips, work_estimate(c, s->body[0]), "");
    c->var_s[s->var] = saved;
    return w;
  }
  case LS_IF:
    return LLVMBuildAdd(c->b, work_estimate(c, s->body[0]), work_estimate(c, s->else_body), "");
  default: return LLVMConstInt(c->i64, 1, 0);
  }
}

static LLVMValueRef slot_ptr(Cg *c, LLVMValueRef ctx, int i) {
  LLVMValueRef idx = LLVMConstInt(c->i64, (unsigned long long)i, 0);
  return LLVMBuildInBoundsGEP2(c->b, c->i64, ctx, &idx, 1, "");
}

/* A parallel loop inside a recurrence's time-step loop is a job every step, on the critical
 * path, and each step's job reads the state the other threads wrote in the step before (on
 * Zen 5 a line another core wrote reads at about DRAM speed).  Measured at 2 threads, batch
 * 1: per-step loops of 27-90 K estimated operations ran 1.05-3.3x slower than on one thread
 * (tagger, sentiment), those of 194-254 K ran 1.3-1.4x faster (the bench's GRU and LSTM).  So
 * their work counts 1 / STEP_WORK_DIV: a step's loop splits from 8x the runtime's grain (128 K
 * by default). */
#define STEP_WORK_DIV 8

static int emit_parallel(Cg *c, const LStmt *s) {
  const LoopProgram *lp = c->lp;
  char *lread = xcalloc((size_t)lp->nlocals + 1, 1), *lset = xcalloc((size_t)lp->nlocals + 1, 1);
  char *ldecl = xcalloc((size_t)lp->nlocals + 1, 1), *vread = xcalloc((size_t)lp->nvars + 1, 1);
  char *vdecl = xcalloc((size_t)lp->nvars + 1, 1);
  reads_of_stmt(s, lread, vread, lset, ldecl, vdecl);
  int ok = 1;
  for (int l = 0; l < lp->nlocals; l++)
    if (lset[l] && !ldecl[l]) ok = 0;   /* sets an outer local: a race */
  /* captured: outer locals and variables it reads */
  int ncap = 0;
  int *cap_local = xcalloc((size_t)lp->nlocals + lp->nvars + 1, sizeof(int));
  int *cap_var = xcalloc((size_t)lp->nlocals + lp->nvars + 1, sizeof(int));
  for (int l = 0; ok && l < lp->nlocals; l++)
    if (lread[l] && !ldecl[l]) {
      if (!c->local_ptr[l] || c->local_vec[l]) ok = 0;
      cap_local[ncap] = l;
      cap_var[ncap++] = -1;
    }
  for (int v = 0; ok && v < lp->nvars; v++)
    if (vread[v] && !vdecl[v]) {
      if (!c->var_s[v]) ok = 0;
      cap_local[ncap] = -1;
      cap_var[ncap++] = v;
    }
  free(lread);
  free(lset);
  free(ldecl);
  free(vread);
  free(vdecl);
  if (!ok) {
    free(cap_local);
    free(cap_var);
    return 0;
  }

  /* in the kernel: the context, the bounds, the work, the call */
  int nslots = c->nbase + 3 + ncap;
  LLVMValueRef ctx = alloca_of(c, LLVMArrayType(c->i64, (unsigned)nslots));
  for (int i = 0; i < c->nbase; i++) LLVMBuildStore(c->b, c->base[c->base_list[i]], slot_ptr(c, ctx, i));
  LLVMBuildStore(c->b, c->batch, slot_ptr(c, ctx, c->nbase));
  LLVMBuildStore(c->b, c->seq, slot_ptr(c, ctx, c->nbase + 1));
  LLVMBuildStore(c->b, c->seed, slot_ptr(c, ctx, c->nbase + 2));
  LLVMTypeRef *cap_t = xcalloc((size_t)ncap + 1, sizeof(LLVMTypeRef));
  for (int j = 0; j < ncap; j++) {
    LLVMValueRef v;
    if (cap_var[j] >= 0) {
      v = c->var_s[cap_var[j]];
      cap_t[j] = c->i64;
    } else {
      cap_t[j] = scalar_type(c, lp->local_types[cap_local[j]]);
      v = LLVMBuildLoad2(c->b, cap_t[j], c->local_ptr[cap_local[j]], "");
    }
    LLVMBuildStore(c->b, v, slot_ptr(c, ctx, c->nbase + 3 + j));
  }
  LLVMValueRef lo = emit_expr(c, s->lo), hi = emit_expr(c, s->hi);
  LLVMValueRef work = work_estimate(c, s);
  if (!LLVMIsConstant(work)) LLVMSetValueName2(work, "work", 4);
  if (c->in_steps) {
    /* one job a time step: ceil(work / STEP_WORK_DIV), still >= 1 so NNCC_PAR_GRAIN=1 splits */
    LLVMValueRef d = LLVMConstInt(c->i64, STEP_WORK_DIV, 0);
    work = LLVMBuildSDiv(c->b, LLVMBuildAdd(c->b, work, LLVMConstInt(c->i64, STEP_WORK_DIV - 1, 0), ""), d, "work");
  }

  /* the outlined body */
  int nparams = c->nbase + 3 + ncap + 2;
  LLVMTypeRef *pt = xcalloc((size_t)nparams, sizeof(LLVMTypeRef));
  for (int i = 0; i < c->nbase; i++) pt[i] = c->ptr;
  pt[c->nbase] = pt[c->nbase + 1] = pt[c->nbase + 2] = c->i64;
  for (int j = 0; j < ncap; j++) pt[c->nbase + 3 + j] = cap_t[j];
  pt[nparams - 2] = pt[nparams - 1] = c->i64;
  char *name = xasprintf("%s.par%d", c->kname, c->npar++);
  LLVMValueRef body_fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->i32, pt, (unsigned)nparams, 0));
  LLVMSetLinkage(body_fn, LLVMInternalLinkage);
  set_vector_attrs(c, body_fn);
  for (int i = 0; i < c->nbase; i++) add_param_attr(c, body_fn, (unsigned)i + 1, "noalias");

  /* save the kernel's state */
  LLVMBasicBlockRef at = LLVMGetInsertBlock(c->b);
  LLVMValueRef saved_fn = c->fn, saved_term = c->entry_term;
  LLVMValueRef saved_batch = c->batch, saved_seq = c->seq, saved_seed = c->seed;
  size_t nb = (size_t)lp->nbufs + 1, nl = (size_t)lp->nlocals + 1, nv = (size_t)lp->nvars + 1;
  LLVMValueRef *saved_base = xmalloc(nb * sizeof(LLVMValueRef));
  LLVMValueRef *saved_lp = xmalloc(nl * sizeof(LLVMValueRef));
  LLVMValueRef *saved_vs = xmalloc(nv * sizeof(LLVMValueRef));
  char *saved_lv = xmalloc(nl);
  memcpy(saved_base, c->base, nb * sizeof(LLVMValueRef));
  memcpy(saved_lp, c->local_ptr, nl * sizeof(LLVMValueRef));
  memcpy(saved_vs, c->var_s, nv * sizeof(LLVMValueRef));
  memcpy(saved_lv, c->local_vec, nl);

  c->fn = body_fn;
  memset(c->base, 0, nb * sizeof(LLVMValueRef));
  for (int i = 0; i < c->nbase; i++) c->base[c->base_list[i]] = LLVMGetParam(body_fn, (unsigned)i);
  c->batch = LLVMGetParam(body_fn, (unsigned)c->nbase);
  c->seq = LLVMGetParam(body_fn, (unsigned)c->nbase + 1);
  c->seed = LLVMGetParam(body_fn, (unsigned)c->nbase + 2);
  memset(c->local_ptr, 0, nl * sizeof(LLVMValueRef));
  memset(c->local_vec, 0, nl);
  memset(c->var_s, 0, nv * sizeof(LLVMValueRef));
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->ctx, body_fn, "entry");
  LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(c->ctx, body_fn, "start");
  LLVMPositionBuilderAtEnd(c->b, entry);
  c->entry_term = LLVMBuildBr(c->b, start);
  LLVMPositionBuilderAtEnd(c->b, start);
  for (int j = 0; j < ncap; j++) {
    LLVMValueRef v = LLVMGetParam(body_fn, (unsigned)(c->nbase + 3 + j));
    if (cap_var[j] >= 0) {
      c->var_s[cap_var[j]] = v;
    } else {
      c->local_ptr[cap_local[j]] = alloca_of(c, cap_t[j]);
      LLVMBuildStore(c->b, v, c->local_ptr[cap_local[j]]);
    }
  }
  c->in_par = 1;
  emit_loop(c, s, LLVMGetParam(body_fn, (unsigned)nparams - 2), LLVMGetParam(body_fn, (unsigned)nparams - 1), 1);
  c->in_par = 0;
  LLVMBuildRet(c->b, LLVMConstInt(c->i32, 0, 0));

  /* the trampoline the runtime calls */
  char *tname = xasprintf("%s.run", name);
  LLVMTypeRef tpt[3] = {c->ptr, c->i64, c->i64};
  LLVMValueRef tramp = LLVMAddFunction(c->mod, tname, LLVMFunctionType(c->i32, tpt, 3, 0));
  free(tname);
  LLVMSetLinkage(tramp, LLVMInternalLinkage);
  set_vector_attrs(c, tramp);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, tramp, "entry"));
  LLVMValueRef tctx = LLVMGetParam(tramp, 0);
  LLVMValueRef *args = xcalloc((size_t)nparams, sizeof(LLVMValueRef));
  for (int i = 0; i < nparams - 2; i++) args[i] = LLVMBuildLoad2(c->b, pt[i], slot_ptr(c, tctx, i), "");
  args[nparams - 2] = LLVMGetParam(tramp, 1);
  args[nparams - 1] = LLVMGetParam(tramp, 2);
  LLVMBuildRet(c->b, LLVMBuildCall2(c->b, LLVMGlobalGetValueType(body_fn), body_fn, args, (unsigned)nparams, ""));
  free(args);
  free(name);

  /* back in the kernel */
  c->fn = saved_fn;
  c->entry_term = saved_term;
  c->batch = saved_batch;
  c->seq = saved_seq;
  c->seed = saved_seed;
  memcpy(c->base, saved_base, nb * sizeof(LLVMValueRef));
  memcpy(c->local_ptr, saved_lp, nl * sizeof(LLVMValueRef));
  memcpy(c->var_s, saved_vs, nv * sizeof(LLVMValueRef));
  memcpy(c->local_vec, saved_lv, nl);
  free(saved_base);
  free(saved_lp);
  free(saved_vs);
  free(saved_lv);
  LLVMPositionBuilderAtEnd(c->b, at);
  LLVMValueRef cargs[5] = {tramp, ctx, lo, hi, work};
  LLVMValueRef rc = LLVMBuildCall2(c->b, LLVMGlobalGetValueType(c->par_fn), c->par_fn, cargs, 5, "");
  LLVMBasicBlockRef ok_bb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "par.ok");
  LLVMBasicBlockRef bad_bb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "par.fail");
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, rc, LLVMConstInt(c->i32, 0, 0), ""), ok_bb, bad_bb);
  LLVMPositionBuilderAtEnd(c->b, bad_bb);
  LLVMBuildRet(c->b, rc);
  LLVMPositionBuilderAtEnd(c->b, ok_bb);
  free(pt);
  free(cap_t);
  free(cap_local);
  free(cap_var);
  return 1;
}

static void emit_stmt(Cg *c, const LStmt *s) {
  switch (s->kind) {
  case LS_BLOCK: emit_block(c, s); return;
  case LS_FOR:
    if (s->parallel && !c->vw && !c->in_par && s->vec <= 1 && emit_parallel(c, s)) return;
    c->in_steps += s->steps;
    emit_for(c, s);
    c->in_steps -= s->steps;
    return;
  case LS_STORE: emit_store(c, s); return;
  case LS_PREFETCH: emit_prefetch(c, s); return;
  case LS_LOCAL: {
    LLVMTypeRef t = scalar_type(c, c->lp->local_types[s->local]);
    /* in a vector loop a local is a vector, but for an integer that is never set again and
     * whose value does not depend on the lane (an index base): then it stays a scalar, so
     * that loads from it plus the vector variable are still contiguous */
    int uniform = c->lp->local_types[s->local] != LT_F32 && !c->local_set[s->local] && !varying(c, s->value);
    c->local_vec[s->local] = uniform ? 0 : (char)c->vw;
    if (c->local_vec[s->local]) t = LLVMVectorType(t, (unsigned)c->vw);
    c->local_ptr[s->local] = alloca_of(c, t);
    LLVMValueRef v = emit_expr(c, s->value);
    if (c->local_vec[s->local]) v = splat(c, v);
    LLVMBuildStore(c->b, v, c->local_ptr[s->local]);
    return;
  }
  case LS_SET: {
    if (!c->local_ptr[s->local]) die("set of local %%%d outside its block", s->local);
    LLVMValueRef v = emit_expr(c, s->value);
    if (c->local_vec[s->local]) v = splat(c, v);
    else if (is_vec(v)) die("a vector value set into a scalar local");
    if (s->accumulate) { /* ls_combine: local = local op v (a vector of partials in a reduction) */
      LLVMTypeRef t = scalar_type(c, c->lp->local_types[s->local]);
      if (c->local_vec[s->local]) t = LLVMVectorType(t, (unsigned)c->local_vec[s->local]);
      LLVMValueRef cur = LLVMBuildLoad2(c->b, t, c->local_ptr[s->local], "");
      v = emit_bin(c, s->reduce_op, c->lp->local_types[s->local], cur, v);
      /* the masked last vector: the partials of the lanes past the end stay as they are */
      if (c->vmask && s->local == c->vred) v = LLVMBuildSelect(c->b, c->vmask, v, cur, "");
    }
    LLVMBuildStore(c->b, v, c->local_ptr[s->local]);
    return;
  }
  case LS_IF: {
    LLVMValueRef cond = emit_expr(c, s->cond);
    if (is_vec(cond)) die("a branch on a vectorized value");
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "then");
    LLVMBasicBlockRef els = s->else_body ? LLVMAppendBasicBlockInContext(c->ctx, c->fn, "else") : NULL;
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "endif");
    LLVMBuildCondBr(c->b, cond, then, els ? els : join);
    LLVMPositionBuilderAtEnd(c->b, then);
    emit_block(c, s->body[0]);
    LLVMBuildBr(c->b, join);
    if (els) {
      LLVMPositionBuilderAtEnd(c->b, els);
      emit_stmt(c, s->else_body);
      LLVMBuildBr(c->b, join);
    }
    LLVMPositionBuilderAtEnd(c->b, join);
    return;
  }
  case LS_CHECK: emit_check(c, s); return;
  }
}

/* does e load buffer buf? */
static int expr_loads_buf(const LExpr *e, int buf) {
  if (!e) return 0;
  if (e->kind == LE_LOAD && e->buf == buf) return 1;
  return expr_loads_buf(e->a, buf) || expr_loads_buf(e->b, buf) || expr_loads_buf(e->c, buf);
}

/* buf[i] += v with i the same in every lane and v a vector: the sum of v's lanes goes to one
 * element (a dot-product GEMM tile's accumulators at its end) */
static int is_lane_sum_store(Cg *c, const LStmt *s) {
  return s->kind == LS_STORE && s->accumulate && c->lp->bufs[s->buf].elem == LT_F32 && !varying(c, s->index) &&
         varying(c, s->value);
}

/* A run of up to V such stores at body[0..n), taken together: reduce_add halves each vector
 * log2(V) times (two shuffles and an add a halving: 3 log2(V) operations a vector); here one
 * butterfly reduces them all at once, V - 1 combinations of two vectors, each a shuffle of
 * their low halves, one of their high halves and an add, after which lane j holds the sum of
 * the j-th vector.  Every lane's additions are reduce_add's, in its order: the same bits.
 * Then each sum is added into its element in turn, as emit_store does.  Returns the number of
 * statements emitted (0: not such a run; a value that reads a buffer an earlier store of the
 * run writes ends it). */
static int emit_lane_sums(Cg *c, LStmt *const *body, int n) {
  int w = c->vw, m = 0;
  if (w < 2 || w > 64 || (w & (w - 1))) return 0;
  while (m < n && m < w && is_lane_sum_store(c, body[m])) {
    int reads = 0;
    for (int j = 0; j < m && !reads; j++) reads = expr_loads_buf(body[m]->value, body[j]->buf);
    if (reads) break;
    m++;
  }
  if (m < 2) return 0;
  LLVMTypeRef vt = LLVMVectorType(c->f32, (unsigned)w);
  LLVMValueRef v[64];
  for (int j = 0; j < w; j++) {
    if (j >= m) {
      v[j] = NULL; /* no vector: a zero one where it meets one */
      continue;
    }
    LLVMValueRef x = splat(c, emit_expr(c, body[j]->value));
    if (c->vmask) x = LLVMBuildSelect(c->b, c->vmask, x, add_identity(c, LT_F32, x), "");
    v[j] = x;
  }
  LLVMValueRef lo_idx[64], hi_idx[64];
  for (int half = w / 2; half >= 1; half /= 2) {
    /* slot j (j < half) pairs with slot j + half: lane l with l % 2 half < half takes the
     * first's lanes l and l + half, the others the second's lanes l - half and l */
    for (int l = 0; l < w; l++) {
      int first = l % (2 * half) < half;
      lo_idx[l] = LLVMConstInt(c->i32, (unsigned long long)(first ? l : w + l - half), 0);
      hi_idx[l] = LLVMConstInt(c->i32, (unsigned long long)(first ? l + half : w + l), 0);
    }
    for (int j = 0; j < half; j++) {
      LLVMValueRef a = v[j], b = v[j + half];
      if (!a && !b) continue;
      if (!a) a = LLVMConstNull(vt);
      if (!b) b = LLVMConstNull(vt);
      LLVMValueRef lo = LLVMBuildShuffleVector(c->b, a, b, LLVMConstVector(lo_idx, (unsigned)w), "");
      LLVMValueRef hi = LLVMBuildShuffleVector(c->b, a, b, LLVMConstVector(hi_idx, (unsigned)w), "");
      v[j] = add_elem(c, LT_F32, lo, hi);
    }
  }
  for (int j = 0; j < m; j++) {
    LLVMValueRef idx = emit_expr(c, body[j]->index);
    LLVMValueRef p = LLVMBuildGEP2(c->b, c->f32, c->base[body[j]->buf], &idx, 1, "");
    store_scalar(c, LT_F32, c->f32, p, LLVMBuildExtractElement(c->b, v[0], LLVMConstInt(c->i32, (unsigned long long)j, 0), ""),
                 1);
  }
  return m;
}

/* A run of st stores body[0..st) (2 <= st <= 4) into one buffer, each at the stride st, the
 * j-th at the first's index plus the constant j (its index that LE_ADD of the first's and j: a
 * pooling window's row, pool.c): between them they write every element of st w contiguous ones
 * (in a masked last vector, up to the last lane's run).  strided_store would take a shuffle
 * and st masked stores of every st-th element each; here the values are interleaved into st
 * vectors (shuffles of all of them) and stored whole, the elements the same.  The values are
 * emitted first, so none may read the buffer.  Returns the statements emitted (0: not such a
 * run). */
static int emit_store_run(Cg *c, LStmt *const *body, int n) {
  int w = c->vw;
  const LStmt *s0 = body[0];
  int64_t st;
  if (w < 2 || w > 64 || n < 2 || s0->kind != LS_STORE || s0->accumulate || !varying(c, s0->index) ||
      !stride_of(c, s0->index, &st) || st < 2 || st > 4 || st > n)
    return 0;
  for (int j = 0; j < st; j++) {
    const LStmt *sj = body[j];
    const LExpr *e = sj->index;
    if (sj->kind != LS_STORE || sj->accumulate || sj->buf != s0->buf || expr_loads_buf(sj->value, s0->buf)) return 0;
    if (j && (e->kind != LE_BIN || e->op != LO_ADD || e->a != s0->index || e->b->kind != LE_CONST || e->b->ival != j))
      return 0;
  }
  LType elem = c->lp->bufs[s0->buf].elem;
  LLVMTypeRef et = scalar_type(c, elem), vt = LLVMVectorType(et, (unsigned)w);
  LLVMValueRef base = c->base[s0->buf];
  if (!base) die("buffer %s has no base in this function", c->lp->bufs[s0->buf].name);
  LLVMValueRef v[4], el[256];
  for (int j = 0; j < st; j++) v[j] = splat(c, emit_expr(c, body[j]->value));
  /* all st values as one vector of 4 w lanes (v3 poison for st = 3): element e of the run
   * is lane e / st of value e % st, lane (e % st) w + e / st of the whole */
  for (int l = 0; l < 2 * w; l++) el[l] = LLVMConstInt(c->i32, (unsigned long long)l, 0);
  LLVMValueRef poison = LLVMGetPoison(vt);
  LLVMValueRef lo = LLVMBuildShuffleVector(c->b, v[0], v[1], LLVMConstVector(el, (unsigned)(2 * w)), "");
  LLVMValueRef all = lo;
  if (st > 2) {
    LLVMValueRef hi = LLVMBuildShuffleVector(c->b, v[2], st > 3 ? v[3] : poison, LLVMConstVector(el, (unsigned)(2 * w)), "");
    for (int l = 0; l < 4 * w; l++) el[l] = LLVMConstInt(c->i32, (unsigned long long)l, 0);
    all = LLVMBuildShuffleVector(c->b, lo, hi, LLVMConstVector(el, (unsigned)(4 * w)), "");
  }
  LLVMValueRef idx = emit_scalar_index(c, s0->index);
  LLVMValueRef p0 = LLVMBuildGEP2(c->b, et, base, &idx, 1, "");
  /* in a masked last vector: the elements up to the last lane's run, st vlast + st - 1 */
  LLVMValueRef limit = c->vmask ? LLVMBuildAdd(c->b, strided_limit(c, st),
                                               splat(c, LLVMConstInt(c->i32, (unsigned long long)(st - 1), 0)), "")
                                : NULL;
  for (int j = 0; j < st; j++) {
    LLVMValueRef pos[64];
    for (int l = 0; l < w; l++) {
      int e = j * w + l;
      el[l] = LLVMConstInt(c->i32, (unsigned long long)((e % st) * w + e / st), 0);
      pos[l] = LLVMConstInt(c->i32, (unsigned long long)e, 0);
    }
    LLVMValueRef out = LLVMBuildShuffleVector(c->b, all, LLVMGetPoison(LLVMTypeOf(all)), LLVMConstVector(el, (unsigned)w), "");
    LLVMValueRef off = LLVMConstInt(c->i64, (unsigned long long)(j * w), 0);
    LLVMValueRef p = LLVMBuildGEP2(c->b, et, p0, &off, 1, "");
    if (limit) {
      LLVMValueRef m = LLVMBuildICmp(c->b, LLVMIntULE, LLVMConstVector(pos, (unsigned)w), limit, "");
      LLVMTypeRef ov[2] = {vt, LLVMTypeOf(p)};
      LLVMValueRef args[4] = {out, p, LLVMConstInt(c->i32, 4, 0), m};
      intrinsic(c, "llvm.masked.store", ov, 2, args, 4);
    } else {
      LLVMValueRef sv = LLVMBuildStore(c->b, out, p);
      LLVMSetAlignment(sv, 4);
    }
  }
  return (int)st;
}

static void emit_block(Cg *c, const LStmt *s) {
  if (s->kind != LS_BLOCK) {
    emit_stmt(c, s);
    return;
  }
  for (int i = 0; i < s->nbody;) {
    int done = c->vw > 1 ? emit_lane_sums(c, s->body + i, s->nbody - i) : 0;
    if (!done && c->vw > 1) done = emit_store_run(c, s->body + i, s->nbody - i);
    if (done) i += done;
    else emit_stmt(c, s->body[i++]);
  }
}

/* --- buffers used by a kernel --- */

static void uses_expr(const LExpr *e, char *used) {
  if (!e) return;
  if (e->kind == LE_LOAD) used[e->buf] = 1;
  uses_expr(e->a, used);
  uses_expr(e->b, used);
  uses_expr(e->c, used);
}

static void uses_stmt(const LStmt *s, char *used) {
  if (!s) return;
  for (int i = 0; i < s->nbody; i++) uses_stmt(s->body[i], used);
  uses_stmt(s->else_body, used);
  if (s->kind == LS_STORE || s->kind == LS_PREFETCH) used[s->buf] = 1;
  uses_expr(s->lo, used);
  uses_expr(s->hi, used);
  uses_expr(s->index, used);
  uses_expr(s->value, used);
  uses_expr(s->cond, used);
  for (int i = 0; i < s->nargs; i++) uses_expr(s->args[i], used);
}

static void set_vector_attrs(Cg *c, LLVMValueRef fn) {
  char bits[16];
  snprintf(bits, sizeof bits, "%d", c->vec_bits);
  const char *keys[2] = {"prefer-vector-width", "min-legal-vector-width"};
  for (int i = 0; i < 2; i++) {
    LLVMAttributeRef a = LLVMCreateStringAttribute(c->ctx, keys[i], (unsigned)strlen(keys[i]),
                                                   bits, (unsigned)strlen(bits));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, a);
  }
  unsigned kind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(c->ctx, kind, 0));
}

static void add_param_attr(Cg *c, LLVMValueRef fn, unsigned idx, const char *name) {
  unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
  LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(c->ctx, kind, 0));
}

/* Emits one kernel; *used_out gets the buffers it takes, in parameter order. */
static LLVMValueRef emit_kernel(Cg *c, const Kernel *k, const char *prefix, int **used_out,
                                int *nused_out) {
  const LoopProgram *lp = c->lp;
  char *used = xcalloc((size_t)lp->nbufs + 1, 1);
  uses_stmt(k->body, used);
  int nused = 0;
  int *list = xcalloc((size_t)lp->nbufs + 1, sizeof(int));
  for (int i = 0; i < lp->nbufs; i++)
    if (used[i]) list[nused++] = i;
  LLVMTypeRef *pt = xcalloc((size_t)nused + 3, sizeof(LLVMTypeRef));
  for (int i = 0; i < nused; i++) pt[i] = c->ptr;
  pt[nused] = c->i64;
  pt[nused + 1] = c->i64;
  pt[nused + 2] = c->i64;
  LLVMTypeRef ft = LLVMFunctionType(c->i32, pt, (unsigned)nused + 3, 0);
  char *name = xasprintf("%s%s", prefix, k->name);
  LLVMValueRef fn = LLVMAddFunction(c->mod, name, ft);
  free(name);
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  set_vector_attrs(c, fn);
  /* kept out of line: one call per layer costs nothing, and profiles name the layer */
  add_param_attr(c, fn, LLVMAttributeFunctionIndex, "noinline");
  for (int i = 0; i < nused; i++) {
    add_param_attr(c, fn, (unsigned)i + 1, "noalias");
    LLVMSetValueName2(LLVMGetParam(fn, (unsigned)i), lp->bufs[list[i]].name,
                      strlen(lp->bufs[list[i]].name));
  }
  c->fn = fn;
  c->nbase = nused;
  c->base_list = list;
  c->kname = LLVMGetValueName(fn);
  c->npar = 0;
  c->in_par = 0;
  c->in_steps = 0;
  memset(c->base, 0, sizeof(LLVMValueRef) * (size_t)lp->nbufs);
  for (int i = 0; i < nused; i++) c->base[list[i]] = LLVMGetParam(fn, (unsigned)i);
  c->batch = LLVMGetParam(fn, (unsigned)nused);
  c->seq = LLVMGetParam(fn, (unsigned)nused + 1);
  c->seed = LLVMGetParam(fn, (unsigned)nused + 2);
  LLVMSetValueName2(c->batch, "batch", 5);
  LLVMSetValueName2(c->seq, "seq", 3);
  LLVMSetValueName2(c->seed, "seed", 4);
  memset(c->var_s, 0, sizeof(LLVMValueRef) * (size_t)(lp->nvars + 1));
  memset(c->local_ptr, 0, sizeof(LLVMValueRef) * (size_t)(lp->nlocals + 1));
  memset(c->local_vec, 0, (size_t)lp->nlocals + 1);
  c->vw = 0;
  c->vvar = -1;
  c->vvar_vec = NULL;
  c->vmask = c->vlast = NULL;
  c->vred = -1;
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
  LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
  LLVMPositionBuilderAtEnd(c->b, entry);
  c->entry_term = LLVMBuildBr(c->b, start);
  LLVMPositionBuilderAtEnd(c->b, start);
  emit_block(c, k->body);
  LLVMBuildRet(c->b, LLVMConstInt(c->i32, 0, 0));
  free(pt);
  free(used);
  *used_out = list;
  *nused_out = nused;
  return fn;
}

/* --- one function for identical kernels ---
 *
 * Kernels take their buffers as parameters, so two kernels whose loop programs are the same
 * up to which buffers they touch (the layers of a repeated block, the forward layers that the
 * gradients and evaluate programs run again) can share one LLVM function: a deep model is
 * optimised once per distinct layer, not once per layer.  The key is the kernel's statements
 * serialised with buffers numbered by parameter position (and their element type), loop
 * variables and locals numbered by first appearance; equal keys mean the same code. */

typedef struct KeyBuf {
  char *s;
  size_t n, cap;
} KeyBuf;

static void key_put(KeyBuf *k, const void *p, size_t n) {
  if (k->n + n > k->cap) {
    k->cap = (k->n + n) * 2 + 256;
    k->s = xrealloc(k->s, k->cap);
  }
  memcpy(k->s + k->n, p, n);
  k->n += n;
}
static void key_i64(KeyBuf *k, int64_t v) { key_put(k, &v, sizeof v); }

typedef struct KeyMaps {
  int *var, *local, *buf;   /* id -> number (-1: not seen); buf: parameter position */
  int nvar, nlocal;
} KeyMaps;

static int64_t key_var(KeyMaps *m, int v) {
  if (m->var[v] < 0) m->var[v] = m->nvar++;
  return m->var[v];
}
static int64_t key_local(KeyMaps *m, int l) {
  if (m->local[l] < 0) m->local[l] = m->nlocal++;
  return m->local[l];
}

static void key_expr(KeyBuf *k, KeyMaps *m, const LoopProgram *lp, const LExpr *e) {
  if (!e) {
    key_i64(k, -1);
    return;
  }
  key_i64(k, e->kind);
  key_i64(k, e->type);
  key_i64(k, e->op);
  key_i64(k, e->ival);
  key_put(k, &e->fval, sizeof e->fval);
  if (e->kind == LE_VAR) key_i64(k, key_var(m, e->var));
  if (e->kind == LE_LOCAL) key_i64(k, key_local(m, e->local));
  if (e->kind == LE_LOAD) {
    key_i64(k, m->buf[e->buf]);
    key_i64(k, lp->bufs[e->buf].elem);
  }
  key_expr(k, m, lp, e->a);
  key_expr(k, m, lp, e->b);
  key_expr(k, m, lp, e->c);
}

static void key_stmt(KeyBuf *k, KeyMaps *m, const LoopProgram *lp, const LStmt *s) {
  if (!s) {
    key_i64(k, -1);
    return;
  }
  key_i64(k, s->kind);
  key_i64(k, s->nbody);
  switch (s->kind) {
  case LS_FOR:
    key_i64(k, key_var(m, s->var));
    key_i64(k, s->vec);
    key_i64(k, s->unroll);
    key_i64(k, s->parallel);
    key_i64(k, s->reduce ? key_local(m, s->reduce - 1) : -1);
    key_i64(k, s->reduce_op);
    break;
  case LS_STORE:
    key_i64(k, m->buf[s->buf]);
    key_i64(k, lp->bufs[s->buf].elem);
    key_i64(k, s->accumulate);
    break;
  case LS_PREFETCH:
    key_i64(k, m->buf[s->buf]);
    key_i64(k, lp->bufs[s->buf].elem);
    break;
  case LS_LOCAL:
    key_i64(k, key_local(m, s->local));
    key_i64(k, lp->local_types[s->local]);
    break;
  case LS_SET:
    key_i64(k, key_local(m, s->local));
    key_i64(k, s->accumulate);
    key_i64(k, s->reduce_op);
    break;
  case LS_CHECK:
    key_i64(k, s->code);
    key_put(k, s->message, strlen(s->message) + 1);
    key_i64(k, s->nargs);
    for (int i = 0; i < s->nargs; i++) key_expr(k, m, lp, s->args[i]);
    break;
  default: break;
  }
  key_expr(k, m, lp, s->lo);
  key_expr(k, m, lp, s->hi);
  key_expr(k, m, lp, s->index);
  key_expr(k, m, lp, s->value);
  key_expr(k, m, lp, s->cond);
  for (int i = 0; i < s->nbody; i++) key_stmt(k, m, lp, s->body[i]);
  key_stmt(k, m, lp, s->else_body);
}

/* The kernel's key, as a malloc'd byte string of *len bytes. */
static char *kernel_key(const LoopProgram *lp, const Kernel *kn, size_t *len) {
  char *used = xcalloc((size_t)lp->nbufs + 1, 1);
  uses_stmt(kn->body, used);
  KeyMaps m = {0};
  m.var = xmalloc(sizeof(int) * ((size_t)lp->nvars + 1));
  m.local = xmalloc(sizeof(int) * ((size_t)lp->nlocals + 1));
  m.buf = xmalloc(sizeof(int) * ((size_t)lp->nbufs + 1));
  memset(m.var, 0xff, sizeof(int) * ((size_t)lp->nvars + 1));
  memset(m.local, 0xff, sizeof(int) * ((size_t)lp->nlocals + 1));
  int pos = 0;
  for (int i = 0; i < lp->nbufs; i++) m.buf[i] = used[i] ? pos++ : -1;
  KeyBuf k = {0};
  key_i64(&k, pos);
  key_i64(&k, lp->vec_f32);
  key_stmt(&k, &m, lp, kn->body);
  free(used);
  free(m.var);
  free(m.local);
  free(m.buf);
  *len = k.n;
  return k.s;
}

typedef struct KernelCacheEntry {
  uint64_t hash;
  size_t len;
  char *key;
  LLVMValueRef fn;
} KernelCacheEntry;

/* per module: the kernels emitted so far (every program of one artifact shares them) */
static struct {
  LLVMModuleRef mod;
  KernelCacheEntry *e;
  int n, cap;
  int hits;
} kcache;

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

void codegen_module_done(void) {
  for (int i = 0; i < kcache.n; i++) free(kcache.e[i].key);
  free(kcache.e);
  memset(&kcache, 0, sizeof kcache);
}

/* The kernel's function: an identical one emitted before, or a new one. */
static LLVMValueRef kernel_fn(Cg *c, const Kernel *kn, const char *prefix, int **used_out,
                              int *nused_out) {
  if (kcache.mod != c->mod) {
    codegen_module_done();
    kcache.mod = c->mod;
  }
  size_t len;
  char *key = kernel_key(c->lp, kn, &len);
  uint64_t h = fnv1a(key, len);
  for (int i = 0; i < kcache.n; i++)
    if (kcache.e[i].hash == h && kcache.e[i].len == len && !memcmp(kcache.e[i].key, key, len)) {
      free(key);
      const LoopProgram *lp = c->lp;
      char *used = xcalloc((size_t)lp->nbufs + 1, 1);
      uses_stmt(kn->body, used);
      int *list = xcalloc((size_t)lp->nbufs + 1, sizeof(int)), n = 0;
      for (int b = 0; b < lp->nbufs; b++)
        if (used[b]) list[n++] = b;
      free(used);
      *used_out = list;
      *nused_out = n;
      kcache.hits++;
      return kcache.e[i].fn;
    }
  LLVMValueRef fn = emit_kernel(c, kn, prefix, used_out, nused_out);
  if (kcache.n == kcache.cap) {
    kcache.cap = kcache.cap ? 2 * kcache.cap : 64;
    kcache.e = xrealloc(kcache.e, sizeof(KernelCacheEntry) * (size_t)kcache.cap);
  }
  kcache.e[kcache.n++] = (KernelCacheEntry){h, len, key, fn};
  return fn;
}

/* The fields of nncc_exec (runtime/nncc_rt.h), each 8 bytes, in order: checked against the
 * runtime's struct when the compiler is built. */
enum { X_PARAMS, X_PACKED, X_WS, X_GRADS, X_STATE, X_HYPER, X_SCALARS, X_IN, X_OUT, X_TARGETS,
       X_BATCH, X_SEQ, X_SEED, X_RSTATE, X_NFIELDS };
#define EXEC_AT(k, field) \
  _Static_assert(offsetof(nncc_exec, field) == 8 * (k) && sizeof(((nncc_exec *)0)->field) == 8, \
                 "nncc_exec." #field " is not where codegen.c reads it")
EXEC_AT(X_PARAMS, params);
EXEC_AT(X_PACKED, packed);
EXEC_AT(X_WS, ws);
EXEC_AT(X_GRADS, grads);
EXEC_AT(X_STATE, state);
EXEC_AT(X_HYPER, hyper);
EXEC_AT(X_SCALARS, scalars);
EXEC_AT(X_IN, in);
EXEC_AT(X_OUT, out);
EXEC_AT(X_TARGETS, targets);
EXEC_AT(X_BATCH, batch);
EXEC_AT(X_SEQ, seq);
EXEC_AT(X_SEED, seed);
EXEC_AT(X_RSTATE, rstate);
_Static_assert(sizeof(nncc_exec) == 8 * X_NFIELDS, "nncc_exec has fields codegen.c does not know");

static LLVMValueRef exec_field(Cg *c, LLVMValueRef exec, int k, LLVMTypeRef t, const char *name) {
  LLVMValueRef off = LLVMConstInt(c->i64, (unsigned long long)(8 * k), 0);
  LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->i8, exec, &off, 1, "");
  return LLVMBuildLoad2(c->b, t, p, name);
}

/* Base pointers of every buffer, from the entry point's fields (x[X_*]); the prepare
 * function passes only params and packed. */
static LLVMValueRef buf_base(Cg *c, int buf, LLVMValueRef *x, LLVMValueRef *slot_off) {
  const LBuf *b = &c->lp->bufs[buf];
  LLVMValueRef idx = LLVMConstInt(c->i64, (unsigned long long)b->offset, 0);
  int field = -1;
  switch (b->kind) {
  case BUF_PARAM: field = X_PARAMS; break;
  case BUF_PACKED: field = X_PACKED; break;
  case BUF_GRAD: field = X_GRADS; break;
  case BUF_STATE: field = X_STATE; break;
  case BUF_HYPER: field = X_HYPER; break;
  case BUF_SCALAR: field = X_SCALARS; break;
  case BUF_RSTATE: field = X_RSTATE; break;
  case BUF_INPUT: case BUF_OUTPUT: case BUF_TARGET: {
    int f = b->kind == BUF_INPUT ? X_IN : b->kind == BUF_OUTPUT ? X_OUT : X_TARGETS;
    if (!x[f]) die("buffer %s in a function without that argument", b->name);
    idx = LLVMConstInt(c->i64, (unsigned long long)b->index, 0);
    return LLVMBuildLoad2(c->b, c->ptr, LLVMBuildInBoundsGEP2(c->b, c->ptr, x[f], &idx, 1, ""),
                          b->name);
  }
  case BUF_TEMP:
    if (!x[X_WS] || b->slot < 0) die("temporary %s has no slot", b->name);
    return LLVMBuildInBoundsGEP2(c->b, c->f32, x[X_WS], &slot_off[b->slot], 1, b->name);
  }
  if (field < 0 || !x[field]) die("buffer %s in a function without its base", b->name);
  return LLVMBuildInBoundsGEP2(c->b, c->f32, x[field], &idx, 1, b->name);
}

/* a op b into *ovf |= overflow, through llvm.s<op>.with.overflow.i64 */
static LLVMValueRef op_checked(Cg *c, const char *name, LLVMValueRef a, LLVMValueRef b, LLVMValueRef *ovf) {
  LLVMValueRef args[2] = {a, b};
  LLVMValueRef r = intrinsic(c, name, &c->i64, 1, args, 2);
  *ovf = LLVMBuildOr(c->b, *ovf, LLVMBuildExtractValue(c->b, r, 1, ""), "");
  return LLVMBuildExtractValue(c->b, r, 0, "");
}

/* The workspace size function's total (what slot_offsets computes at nslots), with every
 * multiply and add checked: -1 when it overflows int64, which the runtime reports as an
 * argument error (a huge batch must not wrap to a small workspace the kernels overrun). */
static LLVMValueRef checked_workspace_total(Cg *c, LLVMValueRef batch, LLVMValueRef seq) {
  const LoopProgram *lp = c->lp;
  LLVMValueRef ovf = LLVMConstInt(c->i1, 0, 0), acc = LLVMConstInt(c->i64, 0, 0);
  for (int s = 0; s < lp->nslots; s++) {
    SymCount sz = lp->slot_size[s];
    LLVMValueRef per = LLVMConstInt(c->i64, (unsigned long long)sz.fixed, 0);
    if (sz.per_seq)
      per = op_checked(c, "llvm.sadd.with.overflow", per,
                       op_checked(c, "llvm.smul.with.overflow", seq,
                                  LLVMConstInt(c->i64, (unsigned long long)sz.per_seq, 0), &ovf), &ovf);
    LLVMValueRef n = op_checked(c, "llvm.smul.with.overflow", batch, per, &ovf);
    n = op_checked(c, "llvm.sadd.with.overflow", n, LLVMConstInt(c->i64, 15, 0), &ovf);
    n = LLVMBuildAnd(c->b, n, LLVMConstInt(c->i64, (unsigned long long)~(int64_t)15, 1), "");
    acc = op_checked(c, "llvm.sadd.with.overflow", acc, n, &ovf);
  }
  return LLVMBuildSelect(c->b, ovf, LLVMConstInt(c->i64, (unsigned long long)-1, 1), acc, "");
}

/* Offsets of the workspace slots (and the total, at index nslots), in floats. */
static LLVMValueRef *slot_offsets(Cg *c, LLVMValueRef batch, LLVMValueRef seq) {
  const LoopProgram *lp = c->lp;
  LLVMValueRef *off = xcalloc((size_t)lp->nslots + 1, sizeof(LLVMValueRef));
  LLVMValueRef acc = LLVMConstInt(c->i64, 0, 0);
  for (int s = 0; s < lp->nslots; s++) {
    off[s] = acc;
    SymCount sz = lp->slot_size[s];
    LLVMValueRef per = LLVMConstInt(c->i64, (unsigned long long)sz.fixed, 0);
    if (sz.per_seq)
      per = LLVMBuildAdd(c->b, per, LLVMBuildMul(c->b, seq, LLVMConstInt(c->i64, (unsigned long long)sz.per_seq, 0), ""), "");
    LLVMValueRef n = lp->slot_batched[s] ? LLVMBuildMul(c->b, batch, per, "") : per;
    n = LLVMBuildAdd(c->b, n, LLVMConstInt(c->i64, 15, 0), "");
    n = LLVMBuildAnd(c->b, n, LLVMConstInt(c->i64, (unsigned long long)~(int64_t)15, 1), "");
    acc = LLVMBuildAdd(c->b, acc, n, "");
  }
  off[lp->nslots] = acc;
  return off;
}

/* void NAME(ptr params, ptr packed): calls the kernels in order, each at batch 1, seq 1 (the
 * prepare function, which packs, and the unpack function, which restores parameters from
 * their packed copies: there only the kernels with restores >= 0). */
static LLVMValueRef params_packed_fn(Cg *c, const Kernel *ks, int n, const char *prefix,
                                     const char *name) {
  LLVMTypeRef pt[2] = {c->ptr, c->ptr};
  LLVMValueRef *kf = xcalloc((size_t)n, sizeof(LLVMValueRef));
  int **kused = xcalloc((size_t)n, sizeof(int *));
  int *knused = xcalloc((size_t)n, sizeof(int));
  int unpack = !strcmp(prefix, "nncc.unpack.");
  for (int k = 0; k < n; k++)
    if (!unpack || ks[k].restores >= 0) kf[k] = kernel_fn(c, &ks[k], prefix, &kused[k], &knused[k]);
  LLVMValueRef fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->voidt, pt, 2, 0));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  set_vector_attrs(c, fn);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
  LLVMValueRef x[X_NFIELDS] = {0};
  x[X_PARAMS] = LLVMGetParam(fn, 0);
  x[X_PACKED] = LLVMGetParam(fn, 1);
  LLVMSetValueName2(x[X_PARAMS], "params", 6);
  LLVMSetValueName2(x[X_PACKED], "packed", 6);
  for (int k = 0; k < n; k++) {
    if (!kf[k]) continue;
    LLVMValueRef *args = xcalloc((size_t)knused[k] + 3, sizeof(LLVMValueRef));
    for (int i = 0; i < knused[k]; i++) args[i] = buf_base(c, kused[k][i], x, NULL);
    args[knused[k]] = LLVMConstInt(c->i64, 1, 0);
    args[knused[k] + 1] = LLVMConstInt(c->i64, 1, 0);
    args[knused[k] + 2] = LLVMConstInt(c->i64, 0, 0);
    LLVMBuildCall2(c->b, LLVMGlobalGetValueType(kf[k]), kf[k], args, (unsigned)knused[k] + 3, "");
    free(args);
    free(kused[k]);
  }
  LLVMBuildRetVoid(c->b);
  free(kf);
  free(kused);
  free(knused);
  return fn;
}

void codegen_program(const LoopProgram *lp, LLVMModuleRef mod, CgFunctions *out) {
  Cg cg = {0}, *c = &cg;
  c->ctx = LLVMGetModuleContext(mod);
  c->mod = mod;
  c->b = LLVMCreateBuilderInContext(c->ctx);
  c->i1 = LLVMInt1TypeInContext(c->ctx);
  c->i8 = LLVMInt8TypeInContext(c->ctx);
  c->i32 = LLVMInt32TypeInContext(c->ctx);
  c->i64 = LLVMInt64TypeInContext(c->ctx);
  c->f32 = LLVMFloatTypeInContext(c->ctx);
  c->ptr = LLVMPointerTypeInContext(c->ctx, 0);
  c->voidt = LLVMVoidTypeInContext(c->ctx);
  c->lp = lp;
  c->vec_bits = (lp->vec_f32 > 0 ? lp->vec_f32 : 4) * 32;
  c->base = xcalloc((size_t)lp->nbufs + 1, sizeof(LLVMValueRef));
  c->var_s = xcalloc((size_t)lp->nvars + 1, sizeof(LLVMValueRef));
  c->local_ptr = xcalloc((size_t)lp->nlocals + 1, sizeof(LLVMValueRef));
  c->local_vec = xcalloc((size_t)lp->nlocals + 1, 1);
  c->local_set = xcalloc((size_t)lp->nlocals + 1, 1);
  {
    char *lread = xcalloc((size_t)lp->nlocals + 1, 1), *ldecl = xcalloc((size_t)lp->nlocals + 1, 1);
    char *vread = xcalloc((size_t)lp->nvars + 1, 1), *vdecl = xcalloc((size_t)lp->nvars + 1, 1);
    for (int k = 0; k < lp->nkernels; k++) reads_of_stmt(lp->kernels[k].body, lread, vread, c->local_set, ldecl, vdecl);
    for (int k = 0; k < lp->nprepare; k++) reads_of_stmt(lp->prepare[k].body, lread, vread, c->local_set, ldecl, vdecl);
    for (int k = 0; k < lp->nunpack; k++) reads_of_stmt(lp->unpack[k].body, lread, vread, c->local_set, ldecl, vdecl);
    free(lread), free(ldecl), free(vread), free(vdecl);
  }
  LLVMTypeRef fail_args[2] = {c->i32, c->ptr};
  c->fail_fn = LLVMGetNamedFunction(mod, "nncc_rt_fail");
  if (!c->fail_fn)
    c->fail_fn = LLVMAddFunction(mod, "nncc_rt_fail", LLVMFunctionType(c->i32, fail_args, 2, 1));
  LLVMTypeRef par_args[5] = {c->ptr, c->ptr, c->i64, c->i64, c->i64};
  c->par_fn = LLVMGetNamedFunction(mod, "nncc_rt_parallel_for");
  if (!c->par_fn)
    c->par_fn = LLVMAddFunction(mod, "nncc_rt_parallel_for", LLVMFunctionType(c->i32, par_args, 5, 0));
  const char *model = lp->graph->name;

  /* prepare kernels and the prepare function; the forward's unpack kernels and function */
  out->prepare = NULL;
  out->unpack = NULL;
  if (lp->nprepare > 0 && lp->mode != MODE_STEP) { /* step uses the forward's packed weights */
    char *name = lp->mode == MODE_FORWARD ? xasprintf("%s_nncc_prepare", model)
                                          : xasprintf("%s_nncc_%s_prepare", model, lp->entry);
    out->prepare = params_packed_fn(c, lp->prepare, lp->nprepare, "nncc.pack.", name);
    free(name);
  }
  int nrestoring = 0;
  for (int k = 0; k < lp->nunpack; k++) nrestoring += lp->unpack[k].restores >= 0;
  if (nrestoring > 0 && lp->mode == MODE_FORWARD) {
    char *name = xasprintf("%s_nncc_unpack", model);
    out->unpack = params_packed_fn(c, lp->unpack, lp->nunpack, "nncc.unpack.", name);
    free(name);
  }

  /* the entry point's kernels: nncc.k.NAME for inference, nncc.<entry>.NAME for the others */
  char *kprefix = lp->mode == MODE_FORWARD ? xstrdup("nncc.k.") : xasprintf("nncc.%s.", lp->entry);
  LLVMValueRef *kf = xcalloc((size_t)lp->nkernels + 1, sizeof(LLVMValueRef));
  int **kused = xcalloc((size_t)lp->nkernels + 1, sizeof(int *));
  int *knused = xcalloc((size_t)lp->nkernels + 1, sizeof(int));
  for (int k = 0; k < lp->nkernels; k++)
    kf[k] = kernel_fn(c, &lp->kernels[k], kprefix, &kused[k], &knused[k]);

  /* the entry point: i32 M_nncc_<entry>(ptr exec) */
  char *name = xasprintf("%s_nncc_%s", model, lp->entry);
  LLVMTypeRef ept = c->ptr;
  LLVMValueRef fwd = LLVMAddFunction(mod, name, LLVMFunctionType(c->i32, &ept, 1, 0));
  free(name);
  LLVMSetLinkage(fwd, LLVMInternalLinkage);
  set_vector_attrs(c, fwd);
  LLVMSetValueName2(LLVMGetParam(fwd, 0), "exec", 4);
  LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fwd, "entry"));
  {
    static const char *const fnames[X_NFIELDS] = {"params", "packed", "ws", "grads", "state",
        "hyper", "scalars", "in", "out", "targets", "batch", "seq", "seed", "rstate"};
    LLVMValueRef exec = LLVMGetParam(fwd, 0), x[X_NFIELDS];
    for (int f = 0; f < X_NFIELDS; f++)
      x[f] = exec_field(c, exec, f, f >= X_BATCH && f <= X_SEED ? c->i64 : c->ptr, fnames[f]);
    LLVMValueRef batch = x[X_BATCH], seq = x[X_SEQ], seed = x[X_SEED];
    LLVMValueRef *soff = slot_offsets(c, batch, seq);
    LLVMValueRef *bases = xcalloc((size_t)lp->nbufs + 1, sizeof(LLVMValueRef));
    for (int k = 0; k < lp->nkernels; k++) {
      LLVMValueRef *args = xcalloc((size_t)knused[k] + 3, sizeof(LLVMValueRef));
      for (int i = 0; i < knused[k]; i++) {
        int b = kused[k][i];
        if (!bases[b]) bases[b] = buf_base(c, b, x, soff);
        args[i] = bases[b];
      }
      args[knused[k]] = batch;
      args[knused[k] + 1] = seq;
      args[knused[k] + 2] = seed;
      LLVMValueRef r = LLVMBuildCall2(c->b, LLVMGlobalGetValueType(kf[k]), kf[k], args,
                                      (unsigned)knused[k] + 3, "");
      free(args);
      LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(c->ctx, fwd, "fail");
      LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, fwd, "next");
      LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, r, LLVMConstInt(c->i32, 0, 0), ""), fail, next);
      LLVMPositionBuilderAtEnd(c->b, fail);
      LLVMBuildRet(c->b, r);
      LLVMPositionBuilderAtEnd(c->b, next);
    }
    LLVMBuildRet(c->b, LLVMConstInt(c->i32, 0, 0));
    free(bases);
    free(soff);
  }
  free(kprefix);
  out->entry = fwd;
  for (int k = 0; k < lp->nkernels; k++) free(kused[k]);
  free(kf);
  free(kused);
  free(knused);

  /* the workspace size */
  {
    LLVMTypeRef wpt[2] = {c->i64, c->i64};
    char *wname = lp->mode == MODE_FORWARD ? xasprintf("%s_nncc_workspace", model)
                                           : xasprintf("%s_nncc_%s_workspace", model, lp->entry);
    LLVMValueRef wfn = LLVMAddFunction(mod, wname, LLVMFunctionType(c->i64, wpt, 2, 0));
    free(wname);
    LLVMSetLinkage(wfn, LLVMInternalLinkage);
    LLVMSetValueName2(LLVMGetParam(wfn, 0), "batch", 5);
    LLVMSetValueName2(LLVMGetParam(wfn, 1), "seq", 3);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, wfn, "entry"));
    LLVMBuildRet(c->b, checked_workspace_total(c, LLVMGetParam(wfn, 0), LLVMGetParam(wfn, 1)));
    out->workspace = wfn;
  }

  LLVMDisposeBuilder(c->b);
  free(c->base);
  free(c->var_s);
  free(c->local_ptr);
  free(c->local_vec);
  free(c->local_set);
}
