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
 *   - a failed nncc_rt_load leaves params untouched (everything is checked first).
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
 *
 * For a model without a symbolic length (has_seq == 0) the seq argument is ignored and the
 * kernels and workspace function see seq = 1.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"
#include "safetensors.h"

struct nncc_model {
  const nncc_model_desc *d;
  float *params;         /* d->param_floats, aligned */
  float *packed;         /* d->packed_floats, aligned, or NULL */
  int packed_dirty;      /* packed must be rebuilt from params before the next forward */
  float *ws;             /* the workspace, aligned, or NULL */
  int64_t ws_cap;        /* floats allocated in ws */
  int64_t ws_batch, ws_seq;   /* the shape ws was last sized for (0, 0: none yet) */
};

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
  m->params = nncc_rt_alloc_floats(d->param_floats);
  if (d->packed_floats > 0) m->packed = nncc_rt_alloc_floats(d->packed_floats);
  if (!m->params || (d->packed_floats > 0 && !m->packed)) {
    nncc_rt_fail(NNCC_ERR_NOMEM, "%s_create: out of memory for %lld parameters", d->name,
                 (long long)(d->param_floats + d->packed_floats));
    nncc_rt_destroy(m);
    return NULL;
  }
  m->packed_dirty = 1;
  if (d->embedded_params) {
    if (d->param_floats) memcpy(m->params, d->embedded_params, (size_t)d->param_floats * sizeof(float));
  } else {
    nncc_rt_init(m, 0);
  }
  return m;
}

NNCC_API void nncc_rt_destroy(nncc_model *m) {
  if (!m) return;
  free(m->params);
  free(m->packed);
  free(m->ws);
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

NNCC_API int nncc_rt_init(nncc_model *m, uint64_t seed) {
  if (!m) return nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_init: the model is NULL");
  const nncc_model_desc *d = m->d;
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
  return NNCC_OK;
}

/* ---- parameters, load, save ------------------------------------------------------------- */

NNCC_API float *nncc_rt_param(nncc_model *m, const char *name, int64_t *numel) {
  if (numel) *numel = 0;
  if (!m || !name) {
    nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_param: %s is NULL", !m ? "the model" : "the name");
    return NULL;
  }
  for (int i = 0; i < m->d->n_params; i++) {
    const nncc_param_desc *p = &m->d->params[i];
    if (!strcmp(p->name, name)) {
      if (numel) *numel = p->numel;
      m->packed_dirty = 1;   /* the caller may write through the pointer */
      return m->params + p->offset;
    }
  }
  nncc_rt_fail(NNCC_ERR_ARG, "%s_param: the model has no parameter '%s'", m->d->name, name);
  return NULL;
}

NNCC_API int nncc_rt_load(nncc_model *m, const char *path) {
  if (!m || !path)
    return nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_load: %s is NULL", !m ? "the model" : "the path");
  char err[1024];
  nncc_st_file f;
  int rc = nncc_st_read(path, &f, err, sizeof err);
  if (!rc) rc = nncc_st_load_params(&f, m->d->n_params, m->d->params, m->params, err, sizeof err);
  nncc_st_free(&f);
  if (rc) return nncc_rt_fail(rc, "%s", err);
  m->packed_dirty = 1;
  return NNCC_OK;
}

NNCC_API int nncc_rt_save(const nncc_model *m, const char *path) {
  if (!m || !path)
    return nncc_rt_fail(NNCC_ERR_ARG, "nncc_rt_save: %s is NULL", !m ? "the model" : "the path");
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

static int check_arrays(const nncc_model_desc *d, const char *kind, int n,
                        const nncc_tensor_desc *t, const void *const *a, int64_t batch,
                        int64_t seq) {
  for (int i = 0; i < n; i++) {
    int64_t numel;
    if (!a[i])
      return nncc_rt_fail(NNCC_ERR_ARG, "%s_forward: %s '%s' is NULL", d->name, kind, t[i].name);
    if (!tensor_numel(&t[i], batch, seq, &numel))
      return nncc_rt_fail(NNCC_ERR_ARG,
                          "%s_forward: %s '%s' would have more elements than fit in memory "
                          "(batch %lld, seq %lld)",
                          d->name, kind, t[i].name, (long long)batch, (long long)seq);
  }
  return NNCC_OK;
}

static int ensure_workspace(nncc_model *m, int64_t batch, int64_t seq) {
  if (batch == m->ws_batch && seq == m->ws_seq) return NNCC_OK;
  const nncc_model_desc *d = m->d;
  int64_t need = d->workspace_floats ? d->workspace_floats(batch, seq) : 0;
  if (need < 0)
    return nncc_rt_fail(NNCC_ERR_ARG, "%s_forward: batch %lld, seq %lld needs a workspace too "
                        "large to address", d->name, (long long)batch, (long long)seq);
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
  return NNCC_OK;
}

NNCC_API int nncc_rt_forward(nncc_model *m, int64_t batch, int64_t seq, const void *const *in,
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
  int rc = check_arrays(d, "input", d->n_inputs, d->inputs, in, batch, seq);
  if (!rc) rc = check_arrays(d, "output", d->n_outputs, d->outputs, (const void *const *)out, batch, seq);
  if (rc) return rc;
  if (m->packed_dirty) {
    if (d->prepare) d->prepare(m->params, m->packed);
    m->packed_dirty = 0;
  }
  if ((rc = ensure_workspace(m, batch, seq))) return rc;
  return d->forward(m->params, m->packed, m->ws, batch, seq, in, out);
}
