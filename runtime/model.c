/* model.c - the generic model object behind the generated M_* wrappers.
 *
 * An nncc_model owns three 64-byte aligned float buffers:
 *   params     desc->param_floats floats, every parameter at its desc offset (PyTorch layout)
 *   packed     desc->packed_floats floats (NULL when 0): weights re-laid out by desc->prepare
 *   ws         the workspace, desc->workspace_floats(batch, seq) floats
 * Invariants:
 *   - packed is stale whenever packed_dirty is set; anything that may change params (init,
 *     load, handing out a pointer through nncc_rt_param) sets it, and forward runs prepare
 *     before calling the kernels.
 *   - ws only grows: a call with a (batch, seq) needing no more than ws_cap floats reuses it,
 *     so steady-state inference allocates nothing.  The last (batch, seq) is cached so the
 *     size function is not even called again for a repeated shape.
 *   - a failed nncc_rt_load leaves params untouched when anything the file says is wrong:
 *     the header and the file's size are checked before the first float is read.  The data
 *     are then read straight into params (no copy of the file: the memory a load needs is its
 *     header), so a read that fails after that (a disk error, the file shrunk since it was
 *     opened) leaves params partly new: torn holds the reason, and the entry points that use
 *     the parameters refuse (GUARDED_PARAMS) until init, load or load_checkpoint succeeds.
 *     load_checkpoint reads into a buffer of its own first, so it never tears the model.
 *
 * Initialisation (nncc_rt_init) is deterministic and independent of the other parameters:
 * parameter p draws from splitmix64 (Steele, Lea, Flood 2014) seeded with
 * splitmix64(seed) ^ fnv1a64(p's name), so adding a layer does not change the others' values.
 *   NNCC_INIT_ZERO         0
 *   NNCC_INIT_HE_UNIFORM   U(-b, b), b = sqrt(6 / fan_in)          (He et al. 2015, uniform)
 *   NNCC_INIT_UNIFORM_FAN  U(-b, b), b = 1 / sqrt(fan_in); for recurrent layers the compiler
 *                          passes the hidden size as fan_in, which is PyTorch's RNN/LSTM/GRU
 *                          default
 *   NNCC_INIT_NORMAL       N(0, 1) by Box-Muller                   (PyTorch's nn.Embedding)
 * A uniform float is the top 24 bits of a draw times 2^-24.
 * nncc_rt_create owes the default initialisation (seed 0) and leaves params untouched
 * (init_pending): the first call that reads them does it (params_settle, from model_enter and
 * nncc_rt_param), and init, load and load_checkpoint, which write them all, cancel it.  So a
 * program that creates a model and loads its weights never initialises them in vain (VGG-16:
 * 138 M random draws) and touches their memory once.
 *
 * Recurrent models carry a state between calls (M_step, and M_gradients when the train block says
 * `stateful = true`): rstate holds rstate_batch rows of desc->rstate_floats floats, allocated
 * zeroed by the first call that carries it and freed by nncc_rt_reset; a carrying call with
 * another batch is an error until the reset.
 *
 * For a model without a symbolic length (has_seq == 0) the seq argument is ignored and the
 * kernels and workspace function see seq = 1.
 *
 * Evicted parameters.  Some parameters reach the inference kernels only through their packed
 * copy (a convolution's weights: desc->evictable lists them, and desc->unpack rewrites them
 * from packed exactly, being a permutation).  Keeping both copies costs their size twice
 * (VGG-16: 56 MiB), so after forward or step has packed them, their whole pages are given
 * back to the system (madvise MADV_DONTNEED: the next touch reads zeros) and `evicted` is
 * set.  Invariants:
 *   - evicted implies packed is current (not packed_dirty) and no pointer was handed out;
 *   - every entry point but forward and step restores them first (params_restore, from
 *     model_enter), as does nncc_rt_param;
 *   - once a training entry point (gradients, evaluate, update) has run, the model stops
 *     evicting (`trains`): a training loop would otherwise repack and fault the pages in at
 *     every test pass;
 *   - nothing is evicted below EVICT_MIN_BYTES, or with NNCC_KEEP_PARAMS=1 in the environment
 *     when the model is created (may_evict, decided there once).
 */
#define _DEFAULT_SOURCE   /* madvise */
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rt_internal.h"
#include "safetensors.h"

/* The training options, in the order of option_names (doubles; hyper[] is derived). */
enum { OPT_LR, OPT_MOMENTUM, OPT_WEIGHT_DECAY, OPT_BETA1, OPT_BETA2, OPT_EPS, OPT_DECAY,
       OPT_CLIP_NORM, N_OPTIONS };
static const char *const option_names[N_OPTIONS] = {"lr", "momentum", "weight_decay", "beta1",
                                                    "beta2", "eps", "decay", "clip_norm"};

#define NNCC_SLICE_MAX 64   /* batch slices at most (runtime/model.c, "batch slices") */

struct nncc_model {
  const nncc_model_desc *d;
  float *params;         /* d->param_floats, aligned */
  float *packed;         /* d->packed_floats, aligned, or NULL */
  int packed_dirty;      /* packed must be rebuilt from params before the next forward */
  int exposed;           /* a parameter pointer was handed out (nncc_rt_param): the caller may
                            write through it at any time, so every forward repacks */
  int evicted;           /* the evictable parameters' pages were dropped (see the top) */
  int may_evict;         /* there are some, worth it, and NNCC_KEEP_PARAMS did not say no */
  int init_pending;      /* params were never written: the default initialisation (seed 0) is
                            owed, and done by the first call that reads them (params_settle) */
  int trains;            /* a training entry point ran: parameters are no longer evicted */
  char torn[1024];       /* non-empty: a load failed midway, params are partly from the file;
                            the failure, for the refusals of GUARDED_PARAMS */
  /* training (d->train != NULL) */
  float *grads;          /* train->grad_floats */
  float *state;          /* NNCC_STATE_SLOTS x grad_floats, zero at the start */
  double opt[N_OPTIONS];
  int64_t step;          /* updates taken */
  uint64_t rng;          /* the dropout stream: seed of the next gradients call */
  float scalars[NNCC_S_COUNT];
  float *ws;             /* the workspace, aligned, or NULL */
  int64_t ws_cap;        /* floats allocated in ws */
  int64_t ws_batch, ws_seq;   /* the shape ws was last sized for (0, 0: none yet) */
  int ws_slices, ws_parts;    /* ... for this many batch slices in this many parts (SlicePlan) */
  int64_t ws_stride;          /* part p's workspace at ws + p ws_stride */
  int64_t cache_floats;       /* a core's L2 cache, in floats (slice_plan) */
  float *slice_grads;    /* the gradients of batch slices 1.. (run_sliced), or NULL */
  int64_t slice_grads_cap;
  nncc_workspace_fn ws_fn;    /* ... by this entry point's size function */
  float *rstate;         /* the carried recurrent state, rstate_batch x d->rstate_floats, or NULL */
  int64_t rstate_batch;  /* the batch it belongs to; 0: none (zero state) */
  void *owner;           /* the thread inside an entry point (model_enter), or NULL */
  int depth;             /* its nesting (train_step calls gradients and update) */
  unsigned fpmode;       /* the owner's floating-point mode on entry (nncc_rt_fp_enter) */
};

static int may_evict(const nncc_model_desc *d);   /* evicted parameters, below */
static int64_t cache_floats(void);                /* batch slices, below */

/* ---- creation --------------------------------------------------------------------------- */

NNCC_API nncc_model *nncc_rt_create(const nncc_model_desc *d) {
  if (!d) {
    nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_create: the model description is NULL");
    return NULL;
  }
  if (d->abi_version != NNCC_ABI_VERSION) {
    nncc_rt_fail(NNCC_ERR_ARG,
                 "%s: compiled for runtime ABI version %d, this runtime is version %d: "
                 "rebuild the model with the matching nncc",
                 d->name ? d->name : "model", (int)d->abi_version, NNCC_ABI_VERSION);
    return NULL;
  }
  if (!d->forward || d->param_floats < 0 || d->packed_floats < 0 || d->n_params < 0 ||
      d->n_inputs < 0 || d->n_outputs < 0 || (d->packed_floats > 0 && !d->prepare)) {
    nncc_rt_fail(NNCC_ERR_ARG, "%s: the model description is inconsistent",
                 d->name ? d->name : "model");
    return NULL;
  }
  nncc_model *m = calloc(1, sizeof *m);
  if (!m) {
    nncc_rt_fail(NNCC_ERR_NOMEM, "%s_create: out of memory", d->name);
    return NULL;
  }
  m->d = d;
  m->cache_floats = cache_floats();
  m->params = nncc_rt_alloc_floats(d->param_floats);
  if (d->packed_floats > 0) m->packed = nncc_rt_alloc_floats(d->packed_floats);
  if (!m->params || (d->packed_floats > 0 && !m->packed)) {
    nncc_rt_fail(NNCC_ERR_NOMEM, "%s_create: out of memory for %lld parameters", d->name,
                 (long long)(d->param_floats + d->packed_floats));
    nncc_rt_destroy(m);
    return NULL;
  }
  m->packed_dirty = 1;
  m->may_evict = may_evict(d);
  if (d->train) {
    const nncc_train_desc *t = d->train;
    int64_t sf = t->grad_floats * NNCC_STATE_SLOTS(t->optimizer);
    m->grads = nncc_rt_alloc_floats(t->grad_floats);
    m->state = nncc_rt_alloc_floats(sf);
    if (!m->grads || !m->state) {
      nncc_rt_fail(NNCC_ERR_NOMEM, "%s_create: out of memory for the gradients", d->name);
      nncc_rt_destroy(m);
      return NULL;
    }
    memset(m->grads, 0, (size_t)t->grad_floats * sizeof(float));
    memset(m->state, 0, (size_t)sf * sizeof(float));
    double defaults[N_OPTIONS] = {t->lr, t->momentum, t->weight_decay, t->beta1, t->beta2,
                                  t->eps, t->decay, t->clip_norm};
    memcpy(m->opt, defaults, sizeof defaults);
  }
  if (d->embedded_params) {
    if (d->param_floats) memcpy(m->params, d->embedded_params, (size_t)d->param_floats * sizeof(float));
  } else {
    m->init_pending = 1;   /* the default initialisation, when something first reads them */
  }
  return m;
}

NNCC_API void nncc_rt_destroy(nncc_model *m) {
  if (!m) return;
  free(m->params);
  free(m->packed);
  free(m->ws);
  free(m->slice_grads);
  free(m->grads);
  free(m->state);
  free(m->rstate);
  free(m);
}

/* ---- initialisation --------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
  return h;
}

static float uniform01(uint64_t *s) { return (float)(splitmix64(s) >> 40) * (1.0f / 16777216.0f); }

static int unguarded_init(nncc_model *m, uint64_t seed) {
  if (!m) return nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_init: the model is NULL");
  const nncc_model_desc *d = m->d;
  m->init_pending = 0;
  uint64_t s0 = seed;
  uint64_t base = splitmix64(&s0);
  for (int i = 0; i < d->n_params; i++) {
    const nncc_param_desc *p = &d->params[i];
    float *w = m->params + p->offset;
    uint64_t s = base ^ fnv1a64(p->name);
    double b = 0;
    switch (p->init) {
      case NNCC_INIT_HE_UNIFORM: b = sqrt(6.0 / (double)(p->fan_in > 0 ? p->fan_in : 1)); break;
      case NNCC_INIT_UNIFORM_FAN: b = 1.0 / sqrt((double)(p->fan_in > 0 ? p->fan_in : 1)); break;
      default: break;
    }
    switch (p->init) {
      case NNCC_INIT_HE_UNIFORM:
      case NNCC_INIT_UNIFORM_FAN:
        for (int64_t k = 0; k < p->numel; k++)
          w[k] = (float)((2.0 * uniform01(&s) - 1.0) * b);
        break;
      case NNCC_INIT_NORMAL:
        for (int64_t k = 0; k < p->numel; k += 2) {
          /* u1 in (0, 1] so the log is finite */
          double u1 = ((double)(splitmix64(&s) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
          double u2 = (double)(splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
          double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
          w[k] = (float)(r * cos(t));
          if (k + 1 < p->numel) w[k + 1] = (float)(r * sin(t));
        }
        break;
      default:   /* NNCC_INIT_ZERO and anything unknown */
        memset(w, 0, (size_t)p->numel * sizeof(float));
        break;
    }
  }
  m->packed_dirty = 1;
  m->torn[0] = 0;
  m->rng = seed;
  return NNCC_OK;
}

/* ---- evicted parameters (see the top) --------------------------------------------------- */

#define EVICT_MIN_BYTES (1 << 20)

/* The default initialisation create owes, before anything reads the parameters. */
static void params_settle(nncc_model *m) {
  if (m->init_pending) unguarded_init(m, 0);
}

static void params_restore(nncc_model *m) {
  if (!m->evicted) return;
  m->d->unpack(m->params, m->packed);
  m->evicted = 0;
}

/* Whether the model may evict at all (decided once, at creation). */
static int may_evict(const nncc_model_desc *d) {
#ifdef MADV_DONTNEED
  if (!d->unpack || d->n_evictable <= 0) return 0;
  int64_t total = 0;
  for (int i = 0; i < d->n_evictable; i++) total += d->evictable[2 * i + 1] * (int64_t)sizeof(float);
  const char *keep = getenv("NNCC_KEEP_PARAMS");
  return total >= EVICT_MIN_BYTES && !(keep && *keep && strcmp(keep, "0"));
#else
  (void)d;
  return 0;
#endif
}

/* Rebuilds the packed weights when the parameters may have changed (forward, step, evaluate). */
static void packed_current(nncc_model *m) {
  if (!m->packed_dirty && !m->exposed) return;
  params_restore(m);   /* (never needed: evicted implies neither) */
  if (m->d->prepare) m->d->prepare(m->params, m->packed);
  m->packed_dirty = 0;
}

/* After forward or step packed the weights: drops the evictable parameters' whole pages. */
static void params_evict(nncc_model *m) {
  const nncc_model_desc *d = m->d;
  if (!m->may_evict || m->evicted || m->exposed || m->trains || m->packed_dirty) return;
#ifdef MADV_DONTNEED
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return;
  for (int i = 0; i < d->n_evictable; i++) {
    uintptr_t lo = (uintptr_t)(m->params + d->evictable[2 * i]);
    uintptr_t hi = lo + (uintptr_t)d->evictable[2 * i + 1] * sizeof(float);
    lo = (lo + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;   /* whole pages */
    hi = hi / (uintptr_t)page * (uintptr_t)page;
    if (hi <= lo) continue;
#ifdef MADV_NOHUGEPAGE
    /* params may sit on huge pages (nncc_rt_alloc_floats): without this, khugepaged could
     * collapse the freed range back into a huge page of zeros and undo the saving */
    (void)madvise((void *)lo, hi - lo, MADV_NOHUGEPAGE);
#endif
    if (madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0) m->evicted = 1;
  }
#endif
}

/* ---- parameters, load, save ------------------------------------------------------------- */

NNCC_API float *nncc_rt_param(nncc_model *m, const char *name, int64_t *numel) {
  if (numel) *numel = 0;
  if (!m || !name) {
    nncc_rt_fail(NNCC_ERR_ARG, "%s_param: %s is NULL", !m ? "nncc_rt" : m->d->name, !m ? "the model" : "the name");
    return NULL;
  }
  for (int i = 0; i < m->d->n_params; i++) {
    const nncc_param_desc *p = &m->d->params[i];
    if (!strcmp(p->name, name)) {
      if (numel) *numel = p->numel;
      params_settle(m);
      params_restore(m);
      m->packed_dirty = 1;   /* the caller may write through the pointer, now or later */
      m->exposed = 1;
      return m->params + p->offset;
    }
  }
  nncc_rt_fail(NNCC_ERR_ARG, "%s_param: the model has no parameter '%s'", m->d->name, name);
  return NULL;
}

static int unguarded_load(nncc_model *m, const char *path) {
  if (!m || !path)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_load: %s is NULL", !m ? "nncc_rt" : m->d->name, !m ? "the model" : "the path");
  char err[1024];
  nncc_st_file f;
  int rc = nncc_st_open(path, &f, err, sizeof err);
  if (!rc) rc = nncc_st_check_params(&f, m->d->n_params, m->d->params, err, sizeof err);
  if (rc) {   /* nothing was written */
    nncc_st_free(&f);
    return nncc_rt_fail(rc, "%s", err);
  }
  /* all the file says is checked: its data now, straight into the parameters */
  rc = nncc_st_fill_params(&f, m->d->n_params, m->d->params, m->params, err, sizeof err);
  nncc_st_free(&f);
  m->packed_dirty = 1;
  /* the file wrote every parameter; or, after a failure midway, the rest are not values at all
   * while the initialisation is owed: they get it (the model is torn either way) */
  if (rc) params_settle(m);
  m->init_pending = 0;
  if (rc) {   /* a read failed midway: no copy of the old values to go back to */
    snprintf(m->torn, sizeof m->torn, "%s", err);
    return nncc_rt_fail(rc, "%s; the parameters are now partly loaded: load the weights again "
                        "or call init before using the model", err);
  }
  m->torn[0] = 0;
  return NNCC_OK;
}

static int unguarded_save(const nncc_model *m, const char *path) {
  if (!m || !path)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_save: %s is NULL", !m ? "nncc_rt" : m->d->name, !m ? "the model" : "the path");
  const nncc_model_desc *d = m->d;
  nncc_st_out *t = calloc((size_t)(d->n_params ? d->n_params : 1), sizeof *t);
  if (!t) return nncc_rt_fail(NNCC_ERR_NOMEM, "cannot save %s: out of memory", path);
  for (int i = 0; i < d->n_params; i++) {
    t[i].name = d->params[i].name;
    t[i].rank = d->params[i].rank;
    t[i].dims = d->params[i].dims;
    t[i].data = m->params + d->params[i].offset;
  }
  char err[1024];
  int rc = nncc_st_write_f32(path, d->n_params, t, err, sizeof err);
  free(t);
  return rc ? nncc_rt_fail(rc, "%s", err) : NNCC_OK;
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Elements of one [batch, ...dims] array, -1 dims being seq; 0 on overflow. */
static int tensor_numel(const nncc_tensor_desc *t, int64_t batch, int64_t seq, int64_t *n) {
  int64_t x = batch;
  for (int k = 0; k < t->rank; k++)
    if (!nncc_rt_mul_ok(x, t->dims[k] < 0 ? seq : t->dims[k], &x)) return 0;
  if (!nncc_rt_mul_ok(x, 4, &x)) return 0;   /* bytes: every element type is 4 bytes */
  *n = x / 4;
  return 1;
}

static int check_arrays(const nncc_model_desc *d, const char *who, const char *kind, int n,
                        const nncc_tensor_desc *t, const void *const *a, int64_t batch,
                        int64_t seq) {
  for (int i = 0; i < n; i++) {
    int64_t numel;
    if (!a[i])
      return nncc_rt_fail(NNCC_ERR_ARG, "%s_%s: %s '%s' is NULL", d->name, who, kind, t[i].name);
    if (!tensor_numel(&t[i], batch, seq, &numel))
      return nncc_rt_fail(NNCC_ERR_ARG,
                          "%s_%s: %s '%s' would have more elements than fit in memory "
                          "(batch %lld, seq %lld)",
                          d->name, who, kind, t[i].name, (long long)batch, (long long)seq);
  }
  return NNCC_OK;
}

/* How a call's batch is cut (runtime/model.c, "batch slices"): n slices, slice i rows
 * [B i / n, B (i + 1) / n), run by `parts` parts at once, part p slices [n p / parts,
 * n (p + 1) / parts) one after the other in its own workspace.  {1, 1}: the batch whole. */
typedef struct SlicePlan {
  int n, parts;
} SlicePlan;

/* What workspace function fn asks for (0 for none). */
static int64_t ws_of(nncc_workspace_fn fn, int64_t rows, int64_t seq) {
  return fn ? fn(rows, seq) : 0;
}

/* Makes ws hold what entry point `fn`'s workspace function asks for (batch, seq) for each part
 * of plan sp: a workspace of the largest slice's rows a part (the batch's when whole); the last
 * (fn, batch, seq, plan) is cached.  `who` names the call in messages. */
static int ensure_workspace_for(nncc_model *m, nncc_workspace_fn fn, const char *who,
                                int64_t batch, int64_t seq, SlicePlan sp) {
  if (batch == m->ws_batch && seq == m->ws_seq && fn == m->ws_fn && sp.n == m->ws_slices &&
      sp.parts == m->ws_parts)
    return NNCC_OK;
  const nncc_model_desc *d = m->d;
  int64_t rows = (batch + sp.n - 1) / sp.n, one = ws_of(fn, rows, seq), need = -1;
  int64_t stride = one >= 0 && one <= INT64_MAX - 16 ? (one + 15) / 16 * 16 : -1;
  if (stride >= 0 && !nncc_rt_mul_ok(stride, sp.parts, &need)) need = -1;
  if (need < 0)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_%s: batch %lld, seq %lld needs a workspace too "
                        "large to address", d->name, who, (long long)batch, (long long)seq);
  if (need > m->ws_cap || !m->ws) {
    float *ws = nncc_rt_alloc_floats(need);
    if (!ws)
      return nncc_rt_fail(NNCC_ERR_NOMEM, "%s_forward: out of memory for a %lld-float workspace "
                          "(batch %lld, seq %lld)", d->name, (long long)need, (long long)batch,
                          (long long)seq);
    free(m->ws);
    m->ws = ws;
    m->ws_cap = need;
  }
  m->ws_batch = batch;
  m->ws_seq = seq;
  m->ws_fn = fn;
  m->ws_slices = sp.n;
  m->ws_parts = sp.parts;
  m->ws_stride = stride;
  return NNCC_OK;
}

/* ---- batch slices ------------------------------------------------------------------------
 * Every row of a batch is computed on its own until the loss's mean, so an entry point
 * (forward, evaluate, gradients) can run as calls on contiguous slices of the batch, for two
 * reasons (slice_plan):
 *   threads  with T threads, T parts at once, one a thread, each with its own workspace: one
 *            parallel region per call instead of one per parallel loop, and no thread waits at
 *            the end of each layer (a LeNet-5 training step has dozens of loops too small to
 *            split well).  Inside a part the loops run on its own thread (the pool is busy:
 *            threads.c).
 *   cache    a part whose rows' workspace outgrows the core's L2 cache runs as several slices
 *            one after the other in one workspace, each small enough to stay in L2 from one
 *            layer to the next: resnet_mini's activations at batch 32 (9 MB an inference, more
 *            in training) went through memory between layers, a slice of 2 rows (0.6 MB)
 *            does not; and the same workspace again for each slice stays in the cache.
 * Slice i is rows [B i / n, B (i + 1) / n) of n; part p runs slices [n p / P, n (p + 1) / P).
 *   forward   each row is what a one-slice call gives it: the same bits.
 *   evaluate  the loss is the mean of the slices' means weighted by their rows, correct the
 *             sum: equal to the one-slice figures up to rounding.
 *   gradients each slice writes its batch-mean gradients into a buffer of its own (slice 0
 *             into the model's); then grads = sum over i of (rows_i / B) * grads_i, in slice
 *             order, and the loss likewise: the batch-mean gradient, up to rounding.  A model
 *             that draws random numbers in training (dropout: a row's mask depends on its
 *             place in the batch) is not sliced.  Stateful training gives each slice its rows
 *             of the carried state.
 * A slice's work must outweigh what slicing adds: each slice reads all the weights, and in
 * training writes a gradient buffer that the sum reads again.  The measure of a slice's work
 * is its workspace (its activations, in floats): at least the parameters (forward, evaluate)
 * or the gradient floats.  An MLP's (a few hundred floats a row against 235k weights) is not
 * sliced: its layers split over their weight columns instead; nor VGG-16's.
 * A call whose slice fails runs again whole, which fails the same way (a token id or a label
 * out of range) with the message counting rows from the batch's first, not the slice's.
 * The number of slices depends on the thread count and the cache, so the gradients' rounding
 * does too; NNCC_BATCH_SLICES=n fixes it at n (1: never slice) whatever the threads and the
 * cache, and then the results are the same bits on any number of threads. */
#define NNCC_SLICE_ARRAYS 16                 /* inputs, outputs, targets at most to slice */

enum { SLICE_FORWARD, SLICE_EVALUATE, SLICE_GRADIENTS };
/* A cache slice's work against its cost (slice_plan), measured on a Zen 5 core (1 MiB L2):
 * forward: Inception's 1-row slices (3.1 x the weights) 1.07x faster at batch 8; training:
 * ResNet-mini's 2-row slices (14 x the gradients) 1.1x at batch 32, LeNet-5's 5-row slices
 * (1 x) 1.15x slower at batch 64. */
#define NNCC_SLICE_WORK 3
#define NNCC_SLICE_WORK_GRAD 8

/* A core's L2 cache in floats: NNCC_CACHE_BYTES, else what the C library reports, else 1 MiB
 * (the size on the machines we measure: Zen 5, and Intel's AVX-512 cores have 1-2 MiB). */
static int64_t cache_floats(void) {
  const char *e = getenv("NNCC_CACHE_BYTES");
  long long v = 0;
  if (e && *e) {
    char *end;
    v = strtoll(e, &end, 10);
    if (*end) v = 0;
  }
#ifdef _SC_LEVEL2_CACHE_SIZE
  if (v <= 0) v = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  if (v <= 0) v = 1 << 20;
  return (int64_t)(v / 4);
}

static SlicePlan slice_plan(const nncc_model *m, int entry, nncc_workspace_fn fn, int64_t batch,
                            int64_t seq) {
  const nncc_model_desc *d = m->d;
  SlicePlan whole = {1, 1};
  if (batch < 2 || d->n_inputs > NNCC_SLICE_ARRAYS || d->n_outputs > NNCC_SLICE_ARRAYS ||
      d->n_targets > NNCC_SLICE_ARRAYS || (entry == SLICE_GRADIENTS && d->train->draws))
    return whole;
  int64_t threads = nncc_get_num_threads(), n;
  const char *e = getenv("NNCC_BATCH_SLICES");
  if (e && *e) {
    char *end;
    n = strtoll(e, &end, 10);
    if (*end || n < 1) n = 1;
    if (n > NNCC_SLICE_MAX) n = NNCC_SLICE_MAX;
    if (n > batch) n = batch;
    return (SlicePlan){(int)n, (int)(threads < n ? threads : n)};
  }
  int64_t cost = entry == SLICE_GRADIENTS ? d->train->grad_floats : d->param_floats;
  int64_t parts = threads < batch ? threads : batch;
  if (parts > NNCC_SLICE_MAX) parts = NNCC_SLICE_MAX;
  nncc_workspace_fn act = d->workspace_floats;   /* the measure of a slice's work */
  if (parts > 1 && ws_of(act, batch / parts, seq) < cost) parts = 1;
  /* cache: more slices a part while the largest slice's workspace (the entry point's own) is
   * more than the cache, at most a row each, each doing enough: the smallest slice's work at
   * least NNCC_SLICE_WORK times the cost (the weights are read from the cache, but the loops
   * of a call cost something too, and a slice's gradients are written and summed), the cost
   * seq times over for a model with a sequence (a recurrent layer reads its weights each step) */
  int64_t need;
  if (!nncc_rt_mul_ok(cost, entry == SLICE_GRADIENTS ? NNCC_SLICE_WORK_GRAD : NNCC_SLICE_WORK, &need) ||
      !nncc_rt_mul_ok(need, d->has_seq ? seq : 1, &need))
    need = INT64_MAX;
  int64_t per = 1, rows = (batch + parts - 1) / parts;
  while (ws_of(fn, (rows + per - 1) / per, seq) > m->cache_floats && per < rows &&
         parts * (per + 1) <= NNCC_SLICE_MAX && parts * (per + 1) <= batch &&
         ws_of(act, batch / (parts * (per + 1)), seq) >= need)
    per++;
  n = parts * per;
  return n > 1 ? (SlicePlan){(int)n, (int)parts} : whole;
}

/* The extra gradient buffers of n slices (slices 1 .. n-1). */
static int ensure_slice_grads(nncc_model *m, int n) {
  int64_t need = (int64_t)(n - 1) * m->d->train->grad_floats;
  if (need <= m->slice_grads_cap) return NNCC_OK;
  float *g = nncc_rt_alloc_floats(need);
  if (!g)
    return nncc_rt_fail(NNCC_ERR_NOMEM, "%s_gradients: out of memory for %d slices' gradients",
                        m->d->name, n);
  free(m->slice_grads);
  m->slice_grads = g;
  m->slice_grads_cap = need;
  return NNCC_OK;
}

typedef struct SliceRun {
  nncc_model *m;
  nncc_entry_fn entry;
  int n, parts;                                 /* the SlicePlan */
  int64_t batch, seq;
  const void *const *in, *const *targets;
  void *const *out;
  uint64_t seed;
  int with_rstate;                              /* slice i gets its rows of m->rstate */
  float *grads[NNCC_SLICE_MAX];                 /* gradients: slice i's buffer */
  float scalars[NNCC_SLICE_MAX][NNCC_S_COUNT];
} SliceRun;

static int64_t slice_row(const SliceRun *s, int64_t p) { return s->batch * p / s->n; }

/* Slice p's share of the batch: its rows / B, the weight of its batch means. */
static float slice_weight(const SliceRun *s, int p) {
  return (float)(slice_row(s, p + 1) - slice_row(s, p)) / (float)s->batch;
}

/* Row b of array a of tensor t ([batch, ...dims]). */
static const void *row_at(const nncc_tensor_desc *t, const void *a, int64_t b, int64_t seq) {
  int64_t per_row = 0;
  tensor_numel(t, 1, seq, &per_row);   /* checked for the whole batch by check_arrays */
  return (const char *)a + b * per_row * 4;
}

/* Parts [lo, hi): each runs its slices in turn in its workspace. */
static int run_slices(void *ctx, int64_t lo, int64_t hi) {
  SliceRun *s = ctx;
  const nncc_model_desc *d = s->m->d;
  for (int64_t part = lo; part < hi; part++)
    for (int64_t p = s->n * part / s->parts; p < s->n * (part + 1) / s->parts; p++) {
      int64_t b0 = slice_row(s, p), b1 = slice_row(s, p + 1);
      const void *in[NNCC_SLICE_ARRAYS], *targets[NNCC_SLICE_ARRAYS];
      void *out[NNCC_SLICE_ARRAYS];
      for (int i = 0; i < d->n_inputs; i++) in[i] = row_at(&d->inputs[i], s->in[i], b0, s->seq);
      if (s->out)
        for (int i = 0; i < d->n_outputs; i++)
          out[i] = (void *)row_at(&d->outputs[i], s->out[i], b0, s->seq);
      if (s->targets)
        for (int i = 0; i < d->n_targets; i++)
          targets[i] = row_at(&d->targets[i], s->targets[i], b0, s->seq);
      nncc_exec x = {.params = s->m->params, .packed = s->m->packed,
                     .ws = s->m->ws + part * s->m->ws_stride, .grads = s->grads[p],
                     .state = s->m->state, .scalars = s->scalars[p], .in = in,
                     .out = s->out ? out : NULL, .targets = s->targets ? targets : NULL,
                     .batch = b1 - b0, .seq = s->seq, .seed = s->seed,
                     .rstate = s->with_rstate ? s->m->rstate + b0 * d->rstate_floats : NULL};
      int rc = s->entry(&x);
      if (rc) return rc;
    }
  return 0;
}

/* grads[0] = sum over p of (rows_p / B) grads[p], over elements [lo, hi), in slice order.
 * A block of SUM_BLOCK elements at a time, each slice's pass over it a loop the compiler
 * vectorizes (the sums per element in the same order as element by element: the same bits). */
#define SUM_BLOCK 256
static int sum_slice_grads(void *ctx, int64_t lo, int64_t hi) {
  const SliceRun *s = ctx;
  float w[NNCC_SLICE_MAX];
  for (int p = 0; p < s->n; p++) w[p] = slice_weight(s, p);
  float *g0 = s->grads[0];
  float acc[SUM_BLOCK];
  for (int64_t i0 = lo; i0 < hi; i0 += SUM_BLOCK) {
    int64_t m = hi - i0 < SUM_BLOCK ? hi - i0 : SUM_BLOCK;
    for (int64_t i = 0; i < m; i++) acc[i] = w[0] * g0[i0 + i];
    for (int p = 1; p < s->n; p++) {
      const float *gp = s->grads[p] + i0;
      float wp = w[p];
      for (int64_t i = 0; i < m; i++) acc[i] += wp * gp[i];
    }
    memcpy(g0 + i0, acc, (size_t)m * sizeof *acc);
  }
  return 0;
}

/* Runs entry over s's slices (slice_plan) and combines their scalars into m->scalars (and for
 * gradients their gradients into m->grads); the workspace holds a slice's for each part. */
static int run_sliced(nncc_model *m, SliceRun *s) {
  const nncc_model_desc *d = m->d;
  int rc = NNCC_OK;
  if (s->grads[0]) {
    if ((rc = ensure_slice_grads(m, s->n))) return rc;
    for (int p = 1; p < s->n; p++) s->grads[p] = m->slice_grads + (int64_t)(p - 1) * d->train->grad_floats;
  }
  memset(s->scalars, 0, sizeof s->scalars);
  rc = nncc_rt_parallel_for(run_slices, s, 0, s->parts, -1);
  if (rc) return rc;
  if (s->grads[0]) {
    int64_t nf = d->train->grad_floats;
    rc = nncc_rt_parallel_for(sum_slice_grads, s, 0, nf, nf * s->n);
    if (rc) return rc;
  }
  if (!s->targets) return NNCC_OK;   /* forward: no scalars */
  float loss = 0, correct = 0;
  for (int p = 0; p < s->n; p++) {
    loss += slice_weight(s, p) * s->scalars[p][NNCC_S_LOSS];
    correct += s->scalars[p][NNCC_S_CORRECT];
  }
  m->scalars[NNCC_S_LOSS] = loss;
  m->scalars[NNCC_S_CORRECT] = correct;
  return NNCC_OK;
}

/* Runs s: NNCC_OK, or when a slice failed, 1 once the workspace is the whole batch's again:
 * the caller then runs the batch whole, which fails the same way and names the batch's row (a
 * slice's message counts rows from its own first: a token id's, a label's); or a negative
 * code. */
static int try_sliced(nncc_model *m, SliceRun *s, nncc_workspace_fn wsfn, const char *who) {
  if (run_sliced(m, s) == NNCC_OK) return NNCC_OK;
  int rc = ensure_workspace_for(m, wsfn, who, s->batch, s->seq, (SlicePlan){1, 1});
  return rc ? rc : 1;
}

static int unguarded_forward(nncc_model *m, int64_t batch, int64_t seq, const void *const *in,
                             void *const *out) {
  if (!m) return nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_forward: the model is NULL");
  const nncc_model_desc *d = m->d;
  if (batch < 1)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_forward: batch must be >= 1, got %lld", d->name,
                        (long long)batch);
  if (d->has_seq) {
    if (seq < 1)
      return nncc_rt_fail(NNCC_ERR_ARG, "%s_forward: seq must be >= 1, got %lld", d->name,
                          (long long)seq);
  } else {
    seq = 1;
  }
  if (!in && d->n_inputs > 0)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_forward: the input array is NULL", d->name);
  if (!out && d->n_outputs > 0)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_forward: the output array is NULL", d->name);
  int rc = check_arrays(d, "forward", "input", d->n_inputs, d->inputs, in, batch, seq);
  if (!rc) rc = check_arrays(d, "forward", "output", d->n_outputs, d->outputs, (const void *const *)out, batch, seq);
  if (rc) return rc;
  packed_current(m);
  params_evict(m);
  SlicePlan sp = slice_plan(m, SLICE_FORWARD, d->workspace_floats, batch, seq);
  if ((rc = ensure_workspace_for(m, d->workspace_floats, "forward", batch, seq, sp))) return rc;
  if (sp.n > 1) {
    SliceRun s = {.m = m, .entry = d->forward, .n = sp.n, .parts = sp.parts, .batch = batch, .seq = seq, .in = in,
                  .out = out};
    if ((rc = try_sliced(m, &s, d->workspace_floats, "forward")) <= 0) return rc;
  }
  nncc_exec x = {.params = m->params, .packed = m->packed, .ws = m->ws, .batch = batch,
                 .seq = seq, .in = in, .out = out, .scalars = m->scalars};
  return d->forward(&x);
}

/* ---- training ----------------------------------------------------------------------------
 * The generated entry points do the arithmetic (runtime/nncc_rt.h, compiler/optim.c); this
 * part checks arguments, sizes the workspace, fills hyper[] from the options and the step
 * count, and keeps the packed weights in step with the parameters. */

static int need_train(const nncc_model *m, const char *who) {
  if (!m) return nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_%s: the model is NULL", who);
  if (!m->d->train)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_%s: model '%s' was built without training entry "
                        "points (it has no loss, or was compiled with --no-train)", m->d->name,
                        who, m->d->name);
  return NNCC_OK;
}

/* Checks the shapes and pointers of a training call: 0 or an error code. */
static int check_train_call(nncc_model *m, const char *who, int64_t batch, int64_t *seq,
                            const void *const *in, const void *const *targets) {
  int rc = need_train(m, who);
  if (rc) return rc;
  const nncc_model_desc *d = m->d;
  if (batch < 1)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_%s: batch must be >= 1, got %lld", d->name, who,
                        (long long)batch);
  if (d->has_seq) {
    if (*seq < 1)
      return nncc_rt_fail(NNCC_ERR_ARG, "%s_%s: seq must be >= 1, got %lld", d->name, who,
                          (long long)*seq);
  } else {
    *seq = 1;
  }
  if ((!in && d->n_inputs > 0) || (!targets && d->n_targets > 0))
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_%s: the %s array is NULL", d->name, who,
                        !in && d->n_inputs > 0 ? "input" : "target");
  rc = check_arrays(d, who, "input", d->n_inputs, d->inputs, in, batch, *seq);
  if (!rc) rc = check_arrays(d, who, "target", d->n_targets, d->targets, targets, batch, *seq);
  return rc;
}

static uint64_t mix64(uint64_t x) {
  uint64_t s = x;
  return splitmix64(&s);
}

static int run_entry(nncc_model *m, nncc_entry_fn fn, nncc_workspace_fn wsfn, const char *who,
                     int64_t batch, int64_t seq, const void *const *in,
                     const void *const *targets, const float *hyper, int slice_kind) {
  SlicePlan sp = hyper ? (SlicePlan){1, 1} : slice_plan(m, slice_kind, wsfn, batch, seq);
  int rc = ensure_workspace_for(m, wsfn, who, batch, seq, sp);
  if (rc) return rc;
  m->trains = 1;
  if (sp.n > 1) {
    const nncc_train_desc *t = m->d->train;
    SliceRun s = {.m = m, .entry = fn, .n = sp.n, .parts = sp.parts, .batch = batch, .seq = seq, .in = in,
                  .targets = targets, .seed = mix64(m->rng),
                  .with_rstate = m->rstate != NULL && slice_kind == SLICE_GRADIENTS && t->stateful};
    if (slice_kind == SLICE_GRADIENTS) s.grads[0] = m->grads;
    if ((rc = try_sliced(m, &s, wsfn, who)) <= 0) return rc;
  }
  nncc_exec x = {.params = m->params, .packed = m->packed, .ws = m->ws, .grads = m->grads,
                 .state = m->state, .hyper = hyper, .scalars = m->scalars, .in = in,
                 .targets = targets, .batch = batch, .seq = seq, .seed = mix64(m->rng),
                 .rstate = m->rstate};
  return fn(&x);
}

/* Makes rstate hold a state for `batch` rows: zeroed when there is none yet; an error when the
 * carried state belongs to another batch. */
static int ensure_rstate(nncc_model *m, const char *who, int64_t batch) {
  const nncc_model_desc *d = m->d;
  if (m->rstate_batch == batch && m->rstate) return NNCC_OK;
  if (m->rstate_batch)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_%s: batch %lld, but the carried recurrent state is for "
                        "batch %lld: call %s_reset first (the state is per batch row)", d->name,
                        who, (long long)batch, (long long)m->rstate_batch, d->name);
  int64_t n;
  if (!nncc_rt_mul_ok(batch, d->rstate_floats, &n) || !nncc_rt_mul_ok(n, 4, &n))
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_%s: batch %lld needs a recurrent state too large to "
                        "address", d->name, who, (long long)batch);
  float *r = nncc_rt_alloc_floats(n / 4);
  if (!r)
    return nncc_rt_fail(NNCC_ERR_NOMEM, "%s_%s: out of memory for the recurrent state (batch "
                        "%lld)", d->name, who, (long long)batch);
  memset(r, 0, (size_t)n);
  free(m->rstate);
  m->rstate = r;
  m->rstate_batch = batch;
  return NNCC_OK;
}

static int unguarded_reset(nncc_model *m) {
  if (!m) return nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_reset: the model is NULL");
  free(m->rstate);
  m->rstate = NULL;
  m->rstate_batch = 0;
  return NNCC_OK;
}

static int unguarded_step(nncc_model *m, int64_t batch, const void *const *in, void *const *out) {
  if (!m) return nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_step: the model is NULL");
  const nncc_model_desc *d = m->d;
  if (!d->step)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_step: the model has no streaming entry point (it needs "
                        "recurrent layers, all unidirectional, over a symbolic length)", d->name);
  if (batch < 1)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_step: batch must be >= 1, got %lld", d->name,
                        (long long)batch);
  if (!in && d->n_inputs > 0)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_step: the input array is NULL", d->name);
  if (!out && d->n_outputs > 0)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_step: the output array is NULL", d->name);
  int rc = check_arrays(d, "step", "input", d->n_inputs, d->inputs, in, batch, 1);
  if (!rc) rc = check_arrays(d, "step", "output", d->n_outputs, d->outputs, (const void *const *)out, batch, 1);
  if (!rc) rc = ensure_rstate(m, "step", batch);
  if (rc) return rc;
  packed_current(m);
  params_evict(m);
  if ((rc = ensure_workspace_for(m, d->step_workspace, "step", batch, 1, (SlicePlan){1, 1}))) return rc;
  nncc_exec x = {.params = m->params, .packed = m->packed, .ws = m->ws, .batch = batch, .seq = 1,
                 .in = in, .out = out, .scalars = m->scalars, .rstate = m->rstate};
  return d->step(&x);
}

static int unguarded_gradients(nncc_model *m, int64_t batch, int64_t seq, const void *const *in,
                               const void *const *targets, float *loss) {
  int rc = check_train_call(m, "gradients", batch, &seq, in, targets);
  if (rc) return rc;
  const nncc_train_desc *t = m->d->train;
  if (t->stateful && m->d->rstate_floats > 0 && (rc = ensure_rstate(m, "gradients", batch)))
    return rc;
  rc = run_entry(m, t->gradients, t->gradients_workspace, "gradients", batch, seq, in, targets, NULL,
                 SLICE_GRADIENTS);
  m->rng++;   /* the next call draws a new dropout mask */
  if (rc) return rc;
  if (loss) *loss = m->scalars[NNCC_S_LOSS];
  return NNCC_OK;
}

static int unguarded_evaluate(nncc_model *m, int64_t batch, int64_t seq, const void *const *in,
                              const void *const *targets, float *loss, int64_t *correct) {
  int rc = check_train_call(m, "evaluate", batch, &seq, in, targets);
  if (rc) return rc;
  const nncc_model_desc *d = m->d;
  packed_current(m);
  m->scalars[NNCC_S_CORRECT] = 0;
  rc = run_entry(m, d->train->evaluate, d->train->evaluate_workspace, "evaluate", batch, seq, in,
                 targets, NULL, SLICE_EVALUATE);
  if (rc) return rc;
  if (loss) *loss = m->scalars[NNCC_S_LOSS];
  if (correct) *correct = d->train->loss_kind == 0 ? (int64_t)m->scalars[NNCC_S_CORRECT] : -1;
  return NNCC_OK;
}

/* hyper[] for update number t (1-based) from the options, as torch.optim computes them. */
static void fill_hyper(const nncc_model *m, int64_t t, float *h) {
  const nncc_train_desc *td = m->d->train;
  const double *o = m->opt;
  memset(h, 0, NNCC_H_COUNT * sizeof *h);
  h[NNCC_H_LR] = (float)o[OPT_LR];
  h[NNCC_H_WD] = (float)o[OPT_WEIGHT_DECAY];
  h[NNCC_H_CLIP] = (float)o[OPT_CLIP_NORM];
  h[NNCC_H_EPS] = (float)o[OPT_EPS];
  h[NNCC_H_STEP] = (float)o[OPT_LR];
  switch (td->optimizer) {
  case NNCC_OPT_SGD:
    h[NNCC_H_MOM] = (float)o[OPT_MOMENTUM];
    h[NNCC_H_MOM_BUF] = t == 1 ? 0.0f : (float)o[OPT_MOMENTUM];
    break;
  case NNCC_OPT_RMSPROP:
    h[NNCC_H_B2] = (float)o[OPT_DECAY];
    h[NNCC_H_1MB2] = (float)(1.0 - o[OPT_DECAY]);
    break;
  case NNCC_OPT_ADAM:
    h[NNCC_H_B1] = (float)o[OPT_BETA1];
    h[NNCC_H_1MB1] = (float)(1.0 - o[OPT_BETA1]);
    h[NNCC_H_B2] = (float)o[OPT_BETA2];
    h[NNCC_H_1MB2] = (float)(1.0 - o[OPT_BETA2]);
    h[NNCC_H_STEP] = (float)(o[OPT_LR] / (1.0 - pow(o[OPT_BETA1], (double)t)));
    h[NNCC_H_BC2SQRT] = (float)sqrt(1.0 - pow(o[OPT_BETA2], (double)t));
    break;
  default: break;
  }
}

static int unguarded_update(nncc_model *m) {
  int rc = need_train(m, "update");
  if (rc) return rc;
  float hyper[NNCC_H_COUNT];
  m->trains = 1;
  fill_hyper(m, m->step + 1, hyper);
  nncc_exec x = {.params = m->params, .grads = m->grads, .state = m->state, .hyper = hyper,
                 .scalars = m->scalars, .batch = 1, .seq = 1};
  rc = m->d->train->update(&x);
  if (rc) return rc;
  m->step++;
  m->packed_dirty = 1;
  return NNCC_OK;
}

static int unguarded_train_step(nncc_model *m, int64_t batch, int64_t seq, const void *const *in,
                                const void *const *targets, float *loss) {
  int rc = nncc_rt_gradients(m, batch, seq, in, targets, loss);
  return rc ? rc : nncc_rt_update(m);
}

/* Which options the model's optimizer uses (the others are an error to set). */
static int option_used(int optimizer, int k) {
  switch (k) {
  case OPT_LR: case OPT_WEIGHT_DECAY: case OPT_CLIP_NORM: return 1;
  case OPT_MOMENTUM: return optimizer == NNCC_OPT_SGD;
  case OPT_BETA1: case OPT_BETA2: return optimizer == NNCC_OPT_ADAM;
  case OPT_EPS: return optimizer != NNCC_OPT_SGD;
  case OPT_DECAY: return optimizer == NNCC_OPT_RMSPROP;
  }
  return 0;
}

static const char *optimizer_name(int o) {
  return o == NNCC_OPT_SGD ? "sgd" : o == NNCC_OPT_ADAGRAD ? "adagrad"
       : o == NNCC_OPT_RMSPROP ? "rmsprop" : "adam";
}

static int unguarded_set_option(nncc_model *m, const char *name, double value) {
  int rc = need_train(m, "set_option");
  if (rc) return rc;
  const nncc_model_desc *d = m->d;
  if (!name) return nncc_rt_fail(NNCC_ERR_ARG, "%s_set_option: the name is NULL", d->name);
  int k = -1;
  for (int i = 0; i < N_OPTIONS; i++)
    if (!strcmp(option_names[i], name)) k = i;
  int opt = d->train->optimizer;
  if (k < 0 || !option_used(opt, k)) {
    char list[160] = "";
    for (int i = 0; i < N_OPTIONS; i++)
      if (option_used(opt, i)) {
        strcat(list, list[0] ? ", " : "");
        strcat(list, option_names[i]);
      }
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_set_option: %s '%s'; the %s optimizer's options are %s",
                        d->name, k < 0 ? "unknown option" : "the optimizer does not use",
                        name, optimizer_name(opt), list);
  }
  int bad = !isfinite(value) || value < 0;
  if ((k == OPT_BETA1 || k == OPT_BETA2 || k == OPT_DECAY) && value >= 1) bad = 1;
  if ((k == OPT_LR || k == OPT_EPS) && value <= 0) bad = 1;
  if (bad)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_set_option: %s = %g is out of range (%s)", d->name,
                        name, value, k == OPT_LR || k == OPT_EPS ? "it must be > 0"
                        : k == OPT_BETA1 || k == OPT_BETA2 || k == OPT_DECAY ? "it must be in [0, 1)"
                        : "it must be >= 0");
  if (k == OPT_MOMENTUM && value == 0 && d->train->nesterov)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_set_option: nesterov momentum needs momentum > 0",
                        d->name);
  m->opt[k] = value;
  return NNCC_OK;
}

NNCC_API int nncc_rt_get_option(const nncc_model *m, const char *name, double *value) {
  int rc = need_train(m, "get_option");
  if (rc) return rc;
  for (int i = 0; i < N_OPTIONS; i++)
    if (name && !strcmp(option_names[i], name) && option_used(m->d->train->optimizer, i)) {
      if (value) *value = m->opt[i];
      return NNCC_OK;
    }
  return nncc_rt_fail(NNCC_ERR_ARG, "%s_get_option: the optimizer has no option '%s'",
                      m->d->name, name ? name : "(null)");
}

NNCC_API float *nncc_rt_grad(nncc_model *m, const char *name, int64_t *numel) {
  if (numel) *numel = 0;
  if (need_train(m, "grad")) return NULL;
  if (!name) {
    nncc_rt_fail(NNCC_ERR_ARG, "%s_grad: the name is NULL", m->d->name);
    return NULL;
  }
  for (int i = 0; i < m->d->n_params; i++) {
    const nncc_param_desc *p = &m->d->params[i];
    if (strcmp(p->name, name)) continue;
    int64_t off = m->d->train->grad_offset[i];
    if (off < 0) {
      nncc_rt_fail(NNCC_ERR_ARG, "%s_grad: '%s' is frozen: it has no gradient", m->d->name, name);
      return NULL;
    }
    if (numel) *numel = p->numel;
    return m->grads + off;
  }
  nncc_rt_fail(NNCC_ERR_ARG, "%s_grad: the model has no parameter '%s'", m->d->name, name);
  return NULL;
}

/* ---- checkpoints: the parameters under their own names, then "nncc.state<j>.<name>" for
 * each trained parameter and optimizer slot j, then "nncc.train": the options, the step count
 * and the dropout stream, as raw 8-byte values in pairs of f32 slots (bit-exact). */

enum { CK_WORDS = N_OPTIONS + 2 };

typedef struct Ckpt {
  int n;
  nncc_param_desc *pd;     /* n descriptors over one buffer */
  int64_t floats;
  char **names;            /* owned names (state tensors) */
} Ckpt;

static void ckpt_free(Ckpt *c) {
  for (int i = 0; i < c->n; i++) free(c->names[i]);
  free(c->names);
  free(c->pd);
}

static int ckpt_layout(const nncc_model *m, Ckpt *c) {
  const nncc_model_desc *d = m->d;
  const nncc_train_desc *t = d->train;
  int slots = NNCC_STATE_SLOTS(t->optimizer);
  int n = d->n_params + slots * t->n_trained + 1;
  c->n = n;
  c->pd = calloc((size_t)n, sizeof *c->pd);
  c->names = calloc((size_t)n, sizeof *c->names);
  if (!c->pd || !c->names) return nncc_rt_fail(NNCC_ERR_NOMEM, "checkpoint: out of memory");
  int k = 0;
  int64_t off = 0;
  for (int i = 0; i < d->n_params; i++, k++) {
    c->pd[k] = d->params[i];
    c->pd[k].offset = off;
    off += d->params[i].numel;
  }
  for (int j = 0; j < slots; j++)
    for (int i = 0; i < t->n_trained; i++, k++) {
      const nncc_param_desc *p = &d->params[t->trained[i]];
      size_t len = strlen(p->name) + 32;
      c->names[k] = malloc(len);
      if (!c->names[k]) return nncc_rt_fail(NNCC_ERR_NOMEM, "checkpoint: out of memory");
      snprintf(c->names[k], len, "nncc.state%d.%s", j, p->name);
      c->pd[k] = *p;
      c->pd[k].name = c->names[k];
      c->pd[k].offset = off;
      off += p->numel;
    }
  c->names[k] = strdup("nncc.train");
  if (!c->names[k]) return nncc_rt_fail(NNCC_ERR_NOMEM, "checkpoint: out of memory");
  memset(&c->pd[k], 0, sizeof c->pd[k]);
  c->pd[k].name = c->names[k];
  c->pd[k].rank = 1;
  c->pd[k].dims[0] = 2 * CK_WORDS;
  c->pd[k].numel = 2 * CK_WORDS;
  c->pd[k].offset = off;
  off += 2 * CK_WORDS;
  c->floats = off;
  return NNCC_OK;
}

static int unguarded_save_checkpoint(const nncc_model *m, const char *path) {
  int rc = need_train(m, "save_checkpoint");
  if (rc) return rc;
  if (!path) return nncc_rt_fail(NNCC_ERR_ARG, "%s_save_checkpoint: the path is NULL", m->d->name);
  const nncc_model_desc *d = m->d;
  const nncc_train_desc *t = d->train;
  Ckpt c = {0};
  float *buf = NULL;
  nncc_st_out *out = NULL;
  if ((rc = ckpt_layout(m, &c))) goto done;
  buf = malloc((size_t)c.floats * sizeof(float) + 1);
  out = calloc((size_t)c.n, sizeof *out);
  if (!buf || !out) {
    rc = nncc_rt_fail(NNCC_ERR_NOMEM, "cannot save %s: out of memory", path);
    goto done;
  }
  int k = 0;
  for (int i = 0; i < d->n_params; i++, k++)
    memcpy(buf + c.pd[k].offset, m->params + d->params[i].offset, (size_t)d->params[i].numel * sizeof(float));
  for (int j = 0; j < NNCC_STATE_SLOTS(t->optimizer); j++)
    for (int i = 0; i < t->n_trained; i++, k++)
      memcpy(buf + c.pd[k].offset, m->state + j * t->grad_floats + t->grad_offset[t->trained[i]],
             (size_t)c.pd[k].numel * sizeof(float));
  uint64_t words[CK_WORDS];
  for (int i = 0; i < N_OPTIONS; i++) memcpy(&words[i], &m->opt[i], 8);
  words[N_OPTIONS] = (uint64_t)m->step;
  words[N_OPTIONS + 1] = m->rng;
  memcpy(buf + c.pd[k].offset, words, sizeof words);
  for (int i = 0; i < c.n; i++) {
    out[i].name = c.pd[i].name;
    out[i].rank = c.pd[i].rank;
    out[i].dims = c.pd[i].dims;
    out[i].data = buf + c.pd[i].offset;
  }
  char err[1024];
  rc = nncc_st_write_f32(path, c.n, out, err, sizeof err);
  if (rc) rc = nncc_rt_fail(rc, "%s", err);
done:
  free(out);
  free(buf);
  ckpt_free(&c);
  return rc;
}

static int unguarded_load_checkpoint(nncc_model *m, const char *path) {
  int rc = need_train(m, "load_checkpoint");
  if (rc) return rc;
  if (!path) return nncc_rt_fail(NNCC_ERR_ARG, "%s_load_checkpoint: the path is NULL", m->d->name);
  const nncc_model_desc *d = m->d;
  const nncc_train_desc *t = d->train;
  Ckpt c = {0};
  float *buf = NULL;
  nncc_st_file f = {0};
  char err[1024];
  if ((rc = ckpt_layout(m, &c))) goto done;
  buf = malloc((size_t)c.floats * sizeof(float) + 1);
  if (!buf) {
    rc = nncc_rt_fail(NNCC_ERR_NOMEM, "cannot load %s: out of memory", path);
    goto done;
  }
  /* into buf, not the model: a read error midway leaves the model as it was */
  rc = nncc_st_open(path, &f, err, sizeof err);
  if (!rc) rc = nncc_st_load_params(&f, c.n, c.pd, buf, err, sizeof err);
  if (rc) {
    rc = nncc_rt_fail(rc, "%s", err);
    goto done;
  }
  /* everything checked: now change the model */
  int k = 0;
  for (int i = 0; i < d->n_params; i++, k++)
    memcpy(m->params + d->params[i].offset, buf + c.pd[k].offset, (size_t)d->params[i].numel * sizeof(float));
  for (int j = 0; j < NNCC_STATE_SLOTS(t->optimizer); j++)
    for (int i = 0; i < t->n_trained; i++, k++)
      memcpy(m->state + j * t->grad_floats + t->grad_offset[t->trained[i]], buf + c.pd[k].offset,
             (size_t)c.pd[k].numel * sizeof(float));
  uint64_t words[CK_WORDS];
  memcpy(words, buf + c.pd[k].offset, sizeof words);
  for (int i = 0; i < N_OPTIONS; i++) memcpy(&m->opt[i], &words[i], 8);
  m->step = (int64_t)words[N_OPTIONS];
  m->rng = words[N_OPTIONS + 1];
  m->packed_dirty = 1;
  m->init_pending = 0;
  m->torn[0] = 0;
done:
  nncc_st_free(&f);
  free(buf);
  ckpt_free(&c);
  return rc;
}

/* ---- one object, one thread at a time ----------------------------------------------------
 * Every entry point that reads or writes the object's buffers runs between model_enter and
 * model_leave: a second thread calling in while the first is inside gets NNCC_ERR_BUSY at
 * once, instead of sharing the workspace (wrong numbers, or memory freed under it when the
 * workspace grows).  The owner is a thread-local address set by compare-and-swap; the same
 * thread may nest (train_step calls gradients and update).  New entry points: write
 * `static int unguarded_NAME(...)` and wrap it below with GUARDED, or GUARDED_PARAMS when it
 * reads the parameters (refused while a failed load left them torn). */

static _Thread_local char this_thread;

static void model_leave(nncc_model *m) {
  if (--m->depth == 0) {
    nncc_rt_fp_leave(m->fpmode);
    __atomic_store_n(&m->owner, NULL, __ATOMIC_RELEASE);
  }
}

enum {
  USES_PARAMS = 1,      /* the call reads the parameters: refused while they are torn */
  THROUGH_PACKED = 2,   /* ... through the packed copies only (forward, step): evicted
                         * parameters may stay so */
  NO_PARAMS = 4,        /* the call neither reads nor writes the parameters */
  OVERWRITES = 8,       /* the call writes every parameter (init, load, load_checkpoint): the
                         * default initialisation create owes is not done first */
};

static int model_enter(nncc_model *m, const char *what, int flags) {
  void *me = &this_thread, *expected = NULL;
  if (__atomic_compare_exchange_n(&m->owner, &expected, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
    m->depth = 1;
    m->fpmode = nncc_rt_fp_enter(); /* denormals flushed inside (docs/c-api.md, "Denormals") */
  } else if (expected == me) {
    m->depth++;
  } else {
    return nncc_rt_fail(NNCC_ERR_BUSY, "%s_%s: the model is in use by another thread (one model "
                        "object is used by one thread at a time; create one per thread)",
                        m->d->name, what);
  }
  if ((flags & USES_PARAMS) && m->torn[0]) {
    model_leave(m);
    return nncc_rt_fail(NNCC_ERR_IO, "%s_%s: the parameters are partly loaded (a load failed "
                        "midway: %s); load the weights again or call init first", m->d->name,
                        what, m->torn);
  }
  if (!(flags & (NO_PARAMS | OVERWRITES))) params_settle(m);
  if (!(flags & (THROUGH_PACKED | NO_PARAMS))) params_restore(m);
  return NNCC_OK;
}

/* the body of a guarded entry point; a NULL model goes straight to the call's own check */
#define GUARD(m, what, flags, call)                             \
  do {                                                          \
    nncc_model *gm_ = (nncc_model *)(m);                        \
    if (!gm_) return (call);                                    \
    int rc_ = model_enter(gm_, what, flags);                    \
    if (rc_) return rc_;                                        \
    rc_ = (call);                                               \
    model_leave(gm_);                                           \
    return rc_;                                                 \
  } while (0)
#define GUARDED(m, what, call) GUARD(m, what, 0, call)
#define GUARDED_PARAMS(m, what, call) GUARD(m, what, USES_PARAMS, call)   /* refused while torn */
#define GUARDED_PACKED(m, what, call) GUARD(m, what, USES_PARAMS | THROUGH_PACKED, call)
#define GUARDED_STATE(m, what, call) GUARD(m, what, NO_PARAMS, call)
#define GUARDED_WRITE(m, what, call) GUARD(m, what, OVERWRITES, call)

NNCC_API int nncc_rt_init(nncc_model *m, uint64_t seed) {
  GUARDED_WRITE(m, "init", unguarded_init(m, seed));
}

NNCC_API int nncc_rt_load(nncc_model *m, const char *path) {
  GUARDED_WRITE(m, "load", unguarded_load(m, path));
}

NNCC_API int nncc_rt_save(const nncc_model *m, const char *path) {
  GUARDED_PARAMS(m, "save", unguarded_save(m, path));
}

NNCC_API int nncc_rt_forward(nncc_model *m, int64_t batch, int64_t seq, const void *const *in,
                             void *const *out) {
  GUARDED_PACKED(m, "forward", unguarded_forward(m, batch, seq, in, out));
}

NNCC_API int nncc_rt_gradients(nncc_model *m, int64_t batch, int64_t seq, const void *const *in,
                               const void *const *targets, float *loss) {
  GUARDED_PARAMS(m, "gradients", unguarded_gradients(m, batch, seq, in, targets, loss));
}

NNCC_API int nncc_rt_evaluate(nncc_model *m, int64_t batch, int64_t seq, const void *const *in,
                              const void *const *targets, float *loss, int64_t *correct) {
  GUARDED_PARAMS(m, "evaluate", unguarded_evaluate(m, batch, seq, in, targets, loss, correct));
}

NNCC_API int nncc_rt_update(nncc_model *m) {
  GUARDED_PARAMS(m, "update", unguarded_update(m));
}

NNCC_API int nncc_rt_train_step(nncc_model *m, int64_t batch, int64_t seq, const void *const *in,
                                const void *const *targets, float *loss) {
  GUARDED_PARAMS(m, "train_step", unguarded_train_step(m, batch, seq, in, targets, loss));
}

NNCC_API int nncc_rt_set_option(nncc_model *m, const char *name, double value) {
  GUARDED_STATE(m, "set_option", unguarded_set_option(m, name, value));
}

NNCC_API int nncc_rt_save_checkpoint(const nncc_model *m, const char *path) {
  GUARDED_PARAMS(m, "save_checkpoint", unguarded_save_checkpoint(m, path));
}

NNCC_API int nncc_rt_load_checkpoint(nncc_model *m, const char *path) {
  GUARDED_WRITE(m, "load_checkpoint", unguarded_load_checkpoint(m, path));
}

NNCC_API int nncc_rt_step(nncc_model *m, int64_t batch, const void *const *in, void *const *out) {
  GUARDED_PACKED(m, "step", unguarded_step(m, batch, in, out));
}

NNCC_API int nncc_rt_reset(nncc_model *m) {
  GUARDED_STATE(m, "reset", unguarded_reset(m));
}
