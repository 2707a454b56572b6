/* npy.c - NumPy .npy read/write for the standalone executable.
 *
 * The header is a Python dict literal; the reader below accepts exactly what numpy writes
 * (and what a person would plausibly type): the three keys 'descr', 'fortran_order' and
 * 'shape' in any order, quoted with ' or ", True/False, a tuple of non-negative integers
 * (a trailing comma, Python 2's 'L' suffix), a trailing comma before '}'.  Everything is
 * bounds-checked against the header length, which is checked against the file size; the data
 * must be exactly numel * itemsize bytes (a truncated or padded file is an error).
 * Elements are converted one at a time through double (floats) or int64 (integers), with
 * either byte order, into a 64-byte aligned buffer of float or int32.
 */
#define _POSIX_C_SOURCE 200809L

#include "npy.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "rt_internal.h"

void nncc_npy_free(nncc_npy *a) {
  if (!a) return;
  free(a->data);
  memset(a, 0, sizeof *a);
}

/* ---- the header dict -------------------------------------------------------------------- */

typedef struct Hdr {
  const char *p, *end;
  const char *label;
} Hdr;

static void hskip(Hdr *h) {
  while (h->p < h->end && (*h->p == ' ' || *h->p == '\t')) h->p++;
}

static int hbad(Hdr *h, const char *what) {
  return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: malformed .npy header: %s", h->label, what);
}

static int hchar(Hdr *h, char c) {
  hskip(h);
  if (h->p < h->end && *h->p == c) {
    h->p++;
    return 1;
  }
  return 0;
}

/* str = ("'" [^']* "'") | ('"' [^"]* '"'), copied into buf[size] */
static int hstring(Hdr *h, char *buf, size_t size) {
  hskip(h);
  if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return hbad(h, "expected a quoted string");
  char q = *h->p++;
  size_t n = 0;
  while (h->p < h->end && *h->p != q) {
    if (*h->p == '\\' || n + 1 >= size) return hbad(h, "a string is too long or has an escape");
    buf[n++] = *h->p++;
  }
  if (h->p >= h->end) return hbad(h, "unterminated string");
  h->p++;
  buf[n] = 0;
  return 0;
}

/* shape = '(' (int (',' int)* ','?)? ')' */
static int hshape(Hdr *h, nncc_npy *a) {
  if (!hchar(h, '(')) return hbad(h, "'shape' must be a tuple");
  a->rank = 0;
  while (!hchar(h, ')')) {
    hskip(h);
    if (h->p >= h->end || *h->p < '0' || *h->p > '9')
      return hbad(h, "'shape' must hold non-negative integers");
    if (a->rank == NNCC_NPY_MAX_RANK)
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: more than %d dimensions", h->label, NNCC_NPY_MAX_RANK);
    int64_t v = 0;
    while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
      int d = *h->p++ - '0';
      if (v > (INT64_MAX - d) / 10) return hbad(h, "a dimension is too large");
      v = v * 10 + d;
    }
    if (h->p < h->end && *h->p == 'L') h->p++;
    a->dims[a->rank++] = v;
    if (!hchar(h, ',')) {
      if (!hchar(h, ')')) return hbad(h, "expected ',' or ')' in 'shape'");
      break;
    }
  }
  return 0;
}

/* dict = '{' (key ':' value ','?)* '}' */
static int parse_header(Hdr *h, nncc_npy *a, int *fortran) {
  int have_descr = 0, have_order = 0, have_shape = 0, rc;
  if (!hchar(h, '{')) return hbad(h, "expected '{'");
  while (!hchar(h, '}')) {
    char key[32];
    if ((rc = hstring(h, key, sizeof key))) return rc;
    if (!hchar(h, ':')) return hbad(h, "expected ':' after a key");
    if (!strcmp(key, "descr") && !have_descr) {
      have_descr = 1;
      hskip(h);
      if (h->p < h->end && *h->p == '[')
        return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: unsupported dtype (a structured array); save "
                            "a plain numeric array", h->label);
      if ((rc = hstring(h, a->descr, sizeof a->descr))) return rc;
    } else if (!strcmp(key, "fortran_order") && !have_order) {
      have_order = 1;
      hskip(h);
      if (h->end - h->p >= 4 && !memcmp(h->p, "True", 4)) {
        *fortran = 1;
        h->p += 4;
      } else if (h->end - h->p >= 5 && !memcmp(h->p, "False", 5)) {
        *fortran = 0;
        h->p += 5;
      } else {
        return hbad(h, "'fortran_order' must be True or False");
      }
    } else if (!strcmp(key, "shape") && !have_shape) {
      have_shape = 1;
      if ((rc = hshape(h, a))) return rc;
    } else {
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: malformed .npy header: unexpected key '%s'",
                          h->label, key);
    }
    if (!hchar(h, ',')) {
      if (!hchar(h, '}')) return hbad(h, "expected ',' or '}'");
      break;
    }
  }
  while (h->p < h->end && (*h->p == ' ' || *h->p == '\n' || *h->p == '\r' || *h->p == '\t')) h->p++;
  if (h->p != h->end) return hbad(h, "unexpected text after '}'");
  if (!have_descr || !have_order || !have_shape)
    return hbad(h, !have_descr ? "no 'descr'" : !have_order ? "no 'fortran_order'" : "no 'shape'");
  return 0;
}

/* ---- reading ---------------------------------------------------------------------------- */

static const char *kind_name(char kind, int size) {
  switch (kind) {
    case 'f': return size == 2 ? "float16" : size == 4 ? "float32" : size == 8 ? "float64" : "float";
    case 'i': return size == 1 ? "int8" : size == 2 ? "int16" : size == 4 ? "int32" : "int64";
    case 'u': return size == 1 ? "uint8" : size == 2 ? "uint16" : size == 4 ? "uint32" : "uint64";
    case 'b': return "bool";
    default: return "?";
  }
}

int nncc_npy_parse(const char *label, const void *buf, size_t size, int want, nncc_npy *a) {
  memset(a, 0, sizeof *a);
  const unsigned char *b = buf;
  if (want == NNCC_LABEL) want = NNCC_I32;
  if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is not a .npy file (no \\x93NUMPY magic)", label);
  int major = b[6];
  size_t hlen, start;
  if (major == 1) {
    hlen = (size_t)b[8] | (size_t)b[9] << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is truncated in its header", label);
    hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    start = 12;
  } else {
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: unsupported .npy version %d.%d", label, major, b[7]);
  }
  if (hlen > size - start)
    return nncc_rt_fail(NNCC_ERR_FORMAT,
                        "%s is truncated: header length %zu runs past the end of the file (%zu bytes)",
                        label, hlen, size);
  Hdr h = {(const char *)b + start, (const char *)b + start + hlen, label};
  int fortran = 0, rc;
  if ((rc = parse_header(&h, a, &fortran))) {
    nncc_npy_free(a);
    return rc;
  }
  /* descr = [<>|=] kind size */
  const char *d = a->descr;
  char order = d[0], kind = d[0] ? d[1] : 0;
  long isz = kind ? strtol(d + 2, NULL, 10) : 0;
  int known = (order == '<' || order == '>' || order == '|' || order == '=') &&
              ((kind == 'f' && (isz == 4 || isz == 8)) ||
               ((kind == 'i' || kind == 'u') && (isz == 1 || isz == 2 || isz == 4 || isz == 8)) ||
               (kind == 'b' && isz == 1)) &&
              strlen(d) == (isz >= 10 ? 4u : 3u);
  if (!known) {
    rc = nncc_rt_fail(NNCC_ERR_FORMAT, "%s: unsupported dtype '%s'; use float32 or int32 "
                      "(float64 and integer arrays are converted)", label, d);
    nncc_npy_free(a);
    return rc;
  }
  if (fortran) {
    nncc_npy_free(a);
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is in Fortran order; save a C-order array "
                        "(np.ascontiguousarray)", label);
  }
  if (want == NNCC_I32 && kind == 'f') {
    nncc_npy_free(a);
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s holds %s values; integers (int32 or int64) are "
                        "needed", label, kind_name(kind, (int)isz));
  }
  int64_t numel = 1;
  for (int k = 0; k < a->rank; k++)
    if (!nncc_rt_mul_ok(numel, a->dims[k], &numel) || numel > INT64_MAX / 8) {
      nncc_npy_free(a);
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: the shape is absurdly large", label);
    }
  a->numel = numel;
  uint64_t need = (uint64_t)numel * (uint64_t)isz, have = size - start - hlen;
  if (have < need) {
    nncc_npy_free(a);
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is truncated: the shape needs %llu bytes of data, "
                        "the file has %llu", label, (unsigned long long)need, (unsigned long long)have);
  }
  if (have > need) {
    nncc_npy_free(a);
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s has %llu bytes after the data (the shape needs %llu)",
                        label, (unsigned long long)(have - need), (unsigned long long)need);
  }
  a->dtype = want;
  a->data = nncc_rt_alloc_floats(numel);   /* float and int32 are both 4 bytes */
  if (!a->data) {
    nncc_npy_free(a);
    return nncc_rt_fail(NNCC_ERR_NOMEM, "%s: out of memory for %lld elements", label, (long long)numel);
  }
  const unsigned char *s = b + start + hlen;
  int swap = order == '>';
  for (int64_t i = 0; i < numel; i++) {
    unsigned char e[8];
    for (int k = 0; k < isz; k++) e[k] = s[i * isz + (swap ? isz - 1 - k : k)];
    double fv = 0;
    int64_t iv = 0;
    uint64_t uv = 0;
    if (kind == 'f') {
      if (isz == 4) {
        float f;
        memcpy(&f, e, 4);
        fv = f;
      } else {
        memcpy(&fv, e, 8);
      }
    } else {
      for (int k = (int)isz - 1; k >= 0; k--) uv = uv << 8 | e[k];
      if (kind == 'i' && isz < 8 && (uv >> (8 * isz - 1)) & 1) uv |= ~(uint64_t)0 << (8 * isz);
      if (kind == 'u' && uv > (uint64_t)INT64_MAX) uv = (uint64_t)INT64_MAX;   /* out of range anyway */
      memcpy(&iv, &uv, 8);
      fv = (double)iv;
    }
    if (want == NNCC_F32) {
      ((float *)a->data)[i] = fv > FLT_MAX ? INFINITY : fv < -FLT_MAX ? -INFINITY : (float)fv;
    } else {
      if (iv < INT32_MIN || iv > INT32_MAX) {
        rc = nncc_rt_fail(NNCC_ERR_RANGE, "%s: element %lld is %lld, which does not fit in int32",
                          label, (long long)i, (long long)iv);
        nncc_npy_free(a);
        return rc;
      }
      ((int32_t *)a->data)[i] = (int32_t)iv;
    }
  }
  return 0;
}

int nncc_npy_read(const char *path, int want, nncc_npy *a) {
  memset(a, 0, sizeof *a);
  unsigned char *buf;
  size_t size;
  int rc = nncc_rt_read_file(path, &buf, &size);
  if (rc) return rc;
  rc = nncc_npy_parse(path, buf, size, want, a);
  free(buf);
  return rc;
}

/* ---- writing ---------------------------------------------------------------------------- */

int nncc_npy_write(const char *path, int dtype, int rank, const int64_t *dims, const void *data) {
  if (rank < 0 || rank > NNCC_NPY_MAX_RANK)
    return nncc_rt_fail(NNCC_ERR_ARG, "cannot write %s: rank %d", path, rank);
  char h[512];
  int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                   dtype == NNCC_F32 ? "<f4" : "<i4");
  int64_t numel = 1;
  for (int k = 0; k < rank; k++) {
    n += snprintf(h + n, sizeof h - (size_t)n, "%s%lld", k ? ", " : "", (long long)dims[k]);
    numel *= dims[k];
  }
  n += snprintf(h + n, sizeof h - (size_t)n, "%s), }", rank == 1 ? "," : "");
  while ((10 + n + 1) % 64 != 0) h[n++] = ' ';
  h[n++] = '\n';
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xFF),
                           (unsigned char)(n >> 8)};
  /* atomically (atomic_file.h): a failed write never leaves a torn file, and a device such
   * as /dev/null or /dev/full is written in place, never replaced or deleted */
  nncc_af af;
  int e = nncc_af_begin(&af, path);
  if (e) return nncc_rt_fail(NNCC_ERR_IO, "cannot write %s: %s", path, strerror(e));
  e = nncc_af_write(&af, pre, 10);
  if (!e) e = nncc_af_write(&af, h, (size_t)n);
  if (!e && numel > 0) e = nncc_af_write(&af, data, (size_t)numel * 4);
  if (e) nncc_af_abort(&af);
  else e = nncc_af_commit(&af);
  if (e) return nncc_rt_fail(NNCC_ERR_IO, "cannot write %s: %s", path, strerror(e));
  return 0;
}
