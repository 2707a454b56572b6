/* safetensors.c - a strict, bounds-checked safetensors reader and an atomic F32 writer.
 *
 * The header is JSON, read by the small recursive-descent reader below rather than a JSON
 * library: this file is linked into every generated artifact, which must stay self-contained
 * and small, and the header needs only a fraction of JSON (objects, arrays, strings,
 * non-negative integers).  The reader still accepts all of JSON's syntax (numbers, true,
 * false, null, nesting up to a fixed depth) so that unknown fields and "__metadata__" can be
 * skipped, and rejects everything else: every access is checked against the end of the
 * header, integers against overflow, and strings are decoded (escapes, \uXXXX surrogate
 * pairs) into NUL-terminated UTF-8.
 *
 * As strict as the reference implementation (and more): the header must be UTF-8, and the
 * tensors must cover the data section exactly (no gaps, no trailing bytes).
 *
 * Invariants after nncc_st_parse or nncc_st_open succeeds: names are unique (checked by
 * sorting, as are overlaps: a hostile header may list millions of tensors); each tensor's
 * rank <= 8, numel does not overflow, end - begin == numel * itemsize, end <= the data
 * section's size, and no two non-empty tensors overlap.  So `data` can be read for
 * end - begin bytes, and so can the file at data_at + begin as long as it keeps the size
 * fstat gave when it was opened.
 *
 * nncc_st_open reads the header only and keeps the file open; nncc_st_to_f32 then preads each
 * tensor: F32 straight into the destination, other dtypes through one NNCC_ST_CHUNK buffer
 * (allocated by nncc_st_open, so that after the checks only a read can fail).  Loading never
 * holds a second copy of the weights.  A file that shrinks after it was opened is a short
 * read, reported as NNCC_ERR_IO (no mmap: that would be a SIGBUS).
 */
#define _POSIX_C_SOURCE 200809L

#include "safetensors.h"

#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64   /* nesting allowed in skipped values */

static int fail(char *err, size_t errsize, int code, const char *fmt, ...) {
  if (err && errsize) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* ---- dtypes ----------------------------------------------------------------------------- */

static const struct {
  const char *name;
  int dtype, itemsize;
} dtypes[] = {
  {"F32", NNCC_ST_F32, 4},   {"F64", NNCC_ST_F64, 8},    {"F16", NNCC_ST_F16, 2},
  {"BF16", NNCC_ST_BF16, 2}, {"I64", NNCC_ST_OTHER, 8},  {"I32", NNCC_ST_OTHER, 4},
  {"I16", NNCC_ST_OTHER, 2}, {"I8", NNCC_ST_OTHER, 1},   {"U64", NNCC_ST_OTHER, 8},
  {"U32", NNCC_ST_OTHER, 4}, {"U16", NNCC_ST_OTHER, 2},  {"U8", NNCC_ST_OTHER, 1},
  {"BOOL", NNCC_ST_OTHER, 1}, {"F8_E4M3", NNCC_ST_OTHER, 1}, {"F8_E5M2", NNCC_ST_OTHER, 1},
};

/* ---- the JSON reader -------------------------------------------------------------------- */

typedef struct Json {
  const char *p, *start, *end;  /* the header, [start, end) */
  const char *label;            /* the file, for messages */
  char *err;
  size_t errsize;
  int failed;
} Json;

static int jfail(Json *j, const char *what) {
  if (!j->failed)
    fail(j->err, j->errsize, NNCC_ERR_FORMAT, "%s: malformed header: %s at byte %ld of the JSON",
         j->label, what, (long)(j->p - j->start));
  j->failed = 1;
  return NNCC_ERR_FORMAT;
}

static void skip_ws(Json *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

/* Consumes c (after whitespace) or fails. */
static int expect(Json *j, char c, const char *what) {
  skip_ws(j);
  if (j->p >= j->end || *j->p != c) return jfail(j, what);
  j->p++;
  return 0;
}

/* Consumes c (after whitespace) when it is next; returns whether it was. */
static int accept(Json *j, char c) {
  skip_ws(j);
  if (j->p < j->end && *j->p == c) {
    j->p++;
    return 1;
  }
  return 0;
}

static int hex4(Json *j, unsigned *v) {
  if (j->end - j->p < 4) return jfail(j, "truncated \\u escape");
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *j->p++;
    unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                 : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                        : 99u;
    if (d == 99u) return jfail(j, "bad hex digit in \\u escape");
    *v = *v * 16 + d;
  }
  return 0;
}

/* string = '"' chars '"'.  When out is non-NULL, *out is the decoded string (malloc'd). */
static int parse_string(Json *j, char **out) {
  if (expect(j, '"', "expected a string")) return NNCC_ERR_FORMAT;
  /* the decoded form is never longer than the source */
  const char *q = j->p;
  while (q < j->end && *q != '"') q += (*q == '\\' && q + 1 < j->end) ? 2 : 1;
  if (q >= j->end) return jfail(j, "unterminated string");
  char *s = out ? malloc((size_t)(q - j->p) + 1) : NULL;
  if (out && !s) return fail(j->err, j->errsize, NNCC_ERR_NOMEM, "%s: out of memory", j->label);
  size_t n = 0;
  while (*j->p != '"') {
    unsigned char c = (unsigned char)*j->p++;
    if (c < 0x20) {
      free(s);
      return jfail(j, "control character in a string");
    }
    if (c != '\\') {
      if (s) s[n++] = (char)c;
      continue;
    }
    char e = *j->p++;   /* in bounds: the scan above stopped at a quote */
    unsigned cp = 0;
    switch (e) {
      case '"': cp = '"'; break;
      case '\\': cp = '\\'; break;
      case '/': cp = '/'; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u': {
        if (hex4(j, &cp)) {
          free(s);
          return NNCC_ERR_FORMAT;
        }
        if (cp >= 0xD800 && cp < 0xDC00) {   /* a high surrogate wants its low half */
          unsigned lo;
          if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') {
            free(s);
            return jfail(j, "unpaired surrogate in \\u escape");
          }
          j->p += 2;
          if (hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
            free(s);
            return jfail(j, "unpaired surrogate in \\u escape");
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          free(s);
          return jfail(j, "unpaired surrogate in \\u escape");
        } else if (cp == 0) {
          free(s);
          return jfail(j, "NUL character in a string");
        }
        break;
      }
      default:
        free(s);
        return jfail(j, "bad escape in a string");
    }
    if (!s) continue;
    /* UTF-8; a \uXXXX escape takes 6 source bytes, a pair 12, so there is room */
    if (cp < 0x80) {
      s[n++] = (char)cp;
    } else if (cp < 0x800) {
      s[n++] = (char)(0xC0 | (cp >> 6));
      s[n++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s[n++] = (char)(0xE0 | (cp >> 12));
      s[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
      s[n++] = (char)(0x80 | (cp & 0x3F));
    } else {
      s[n++] = (char)(0xF0 | (cp >> 18));
      s[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
      s[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
      s[n++] = (char)(0x80 | (cp & 0x3F));
    }
  }
  j->p++;   /* the closing quote */
  if (s) {
    s[n] = 0;
    *out = s;
  }
  return 0;
}

/* uint = '0' | [1-9][0-9]*, at most 2^63 - 1 */
static int parse_uint(Json *j, uint64_t *v) {
  skip_ws(j);
  if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jfail(j, "expected a non-negative integer");
  if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
    return jfail(j, "leading zero in an integer");
  uint64_t x = 0;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
    unsigned d = (unsigned)(*j->p - '0');
    if (x > ((uint64_t)INT64_MAX - d) / 10) return jfail(j, "integer too large");
    x = x * 10 + d;
    j->p++;
  }
  if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
    return jfail(j, "expected an integer, found a fraction");
  *v = x;
  return 0;
}

/* Skips any JSON value (for unknown fields and metadata). */
static int skip_value(Json *j, int depth) {
  if (depth > MAX_DEPTH) return jfail(j, "nested too deeply");
  skip_ws(j);
  if (j->p >= j->end) return jfail(j, "expected a value");
  char c = *j->p;
  if (c == '"') return parse_string(j, NULL);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    j->p++;
    if (accept(j, close)) return 0;
    do {
      if (c == '{') {
        if (parse_string(j, NULL) || expect(j, ':', "expected ':' after a key")) return NNCC_ERR_FORMAT;
      }
      if (skip_value(j, depth + 1)) return NNCC_ERR_FORMAT;
    } while (accept(j, ','));
    return expect(j, close, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
  }
  static const char *const words[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(words[i]);
    if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i], n) == 0) {
      j->p += n;
      return 0;
    }
  }
  /* number = '-'? int frac? exp? */
  const char *s = j->p;
  if (*j->p == '-') j->p++;
  if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jfail(j, "expected a value");
  if (*j->p == '0') j->p++;
  else
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  if (j->p < j->end && *j->p == '.') {
    j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jfail(j, "bad number");
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jfail(j, "bad number");
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  return j->p > s ? 0 : jfail(j, "expected a value");
}

/* uint_array = '[' (uint (',' uint)*)? ']'; at most max elements. */
static int parse_uint_array(Json *j, uint64_t *v, int max, int *n, const char *name,
                            const char *field) {
  if (expect(j, '[', "expected '['")) return NNCC_ERR_FORMAT;
  *n = 0;
  if (accept(j, ']')) return 0;
  do {
    if (*n == max) {
      j->failed = 1;
      return fail(j->err, j->errsize, NNCC_ERR_FORMAT, "%s: tensor '%s' has more than %d %s",
                  j->label, name, max, field);
    }
    if (parse_uint(j, &v[(*n)++])) return NNCC_ERR_FORMAT;
  } while (accept(j, ','));
  return expect(j, ']', "expected ',' or ']'");
}

/* tensor = '{' ("dtype": string | "shape": uint_array | "data_offsets": [uint, uint] |
 *              other: value) (',' ...)* '}' */
static int parse_tensor(Json *j, nncc_st_tensor *t) {
  int have_dtype = 0, have_shape = 0, have_offsets = 0;
  if (expect(j, '{', "expected '{' after a tensor's name")) return NNCC_ERR_FORMAT;
  if (!accept(j, '}')) {
    do {
      char *key = NULL;
      int rc = parse_string(j, &key);
      if (rc) return rc;
      if (expect(j, ':', "expected ':' after a key")) {
        free(key);
        return NNCC_ERR_FORMAT;
      }
      int *seen = !strcmp(key, "dtype") ? &have_dtype
                  : !strcmp(key, "shape") ? &have_shape
                  : !strcmp(key, "data_offsets") ? &have_offsets
                                                  : NULL;
      if (seen && *seen) {
        j->failed = 1;
        rc = fail(j->err, j->errsize, NNCC_ERR_FORMAT, "%s: tensor '%s' has two \"%s\" fields",
                  j->label, t->name, key);
        free(key);
        return rc;
      }
      if (seen) *seen = 1;
      if (seen == &have_dtype) {
        char *dt = NULL;
        rc = parse_string(j, &dt);
        if (rc) {
          free(key);
          return rc;
        }
        size_t k = 0;
        while (k < sizeof dtypes / sizeof dtypes[0] && strcmp(dtypes[k].name, dt)) k++;
        if (k == sizeof dtypes / sizeof dtypes[0]) {
          j->failed = 1;
          rc = fail(j->err, j->errsize, NNCC_ERR_FORMAT, "%s: tensor '%s' has unknown dtype \"%.40s\"",
                    j->label, t->name, dt);
          free(dt);
          free(key);
          return rc;
        }
        free(dt);
        t->dtype_name = dtypes[k].name;
        t->dtype = dtypes[k].dtype;
        t->itemsize = dtypes[k].itemsize;
      } else if (seen == &have_shape) {
        uint64_t d[NNCC_ST_MAX_RANK];
        rc = parse_uint_array(j, d, NNCC_ST_MAX_RANK, &t->rank, t->name, "dimensions");
        for (int i = 0; !rc && i < t->rank; i++) t->dims[i] = (int64_t)d[i];
      } else if (seen == &have_offsets) {
        uint64_t o[2];
        int n = 0;
        rc = parse_uint_array(j, o, 2, &n, t->name, "data_offsets");
        if (!rc && n != 2) {
          j->failed = 1;
          rc = fail(j->err, j->errsize, NNCC_ERR_FORMAT,
                    "%s: tensor '%s' has %d data_offsets, expected 2 ([begin, end])", j->label,
                    t->name, n);
        }
        if (!rc) {
          t->begin = o[0];
          t->end = o[1];
        }
      } else {
        rc = skip_value(j, 1);
      }
      free(key);
      if (rc) return rc;
    } while (accept(j, ','));
    if (expect(j, '}', "expected ',' or '}'")) return NNCC_ERR_FORMAT;
  }
  const char *missing = !have_dtype ? "dtype" : !have_shape ? "shape" : !have_offsets ? "data_offsets" : NULL;
  if (missing) {
    j->failed = 1;
    return fail(j->err, j->errsize, NNCC_ERR_FORMAT, "%s: tensor '%s' has no \"%s\"", j->label,
                t->name, missing);
  }
  return 0;
}

/* metadata = '{' (string ':' string (',' ...)*)? '}' */
static int parse_metadata(Json *j) {
  if (expect(j, '{', "expected '{' after \"__metadata__\"")) return NNCC_ERR_FORMAT;
  if (accept(j, '}')) return 0;
  do {
    if (parse_string(j, NULL) || expect(j, ':', "expected ':' after a key") ||
        parse_string(j, NULL))
      return NNCC_ERR_FORMAT;
  } while (accept(j, ','));
  return expect(j, '}', "expected ',' or '}'");
}

/* ---- the file --------------------------------------------------------------------------- */

void nncc_st_free(nncc_st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
  free(f->tensors);
  free(f->chunk);
  if (f->streamed) close(f->fd);
  memset(f, 0, sizeof *f);
}

static void fmt_dims(char *buf, size_t size, int rank, const int64_t *dims) {
  size_t n = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < rank && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)dims[i]);
  if (n < size) snprintf(buf + n, size - n, "]");
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(const nncc_st_tensor *const *)a)->name, (*(const nncc_st_tensor *const *)b)->name);
}

/* by begin, then by header order (qsort is not stable; this keeps messages deterministic) */
static int by_offset(const void *a, const void *b) {
  const nncc_st_tensor *x = *(const nncc_st_tensor *const *)a, *y = *(const nncc_st_tensor *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return (x > y) - (x < y);
}

static int check_tensors(nncc_st_file *f, uint64_t data_size, char *err, size_t errsize) {
  for (int i = 0; i < f->n_tensors; i++) {
    nncc_st_tensor *t = &f->tensors[i];
    int64_t numel = 1;
    for (int k = 0; k < t->rank; k++) {
      if (t->dims[k] != 0 && numel > INT64_MAX / 8 / t->dims[k])
        return fail(err, errsize, NNCC_ERR_FORMAT, "%s: tensor '%s' has an absurd shape", f->label,
                    t->name);
      numel *= t->dims[k];
    }
    t->numel = numel;
    uint64_t need = (uint64_t)numel * (uint64_t)t->itemsize;
    char dims[128];
    fmt_dims(dims, sizeof dims, t->rank, t->dims);
    if (t->begin > t->end)
      return fail(err, errsize, NNCC_ERR_FORMAT,
                  "%s: tensor '%s' has data_offsets [%llu, %llu], which end before they begin",
                  f->label, t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end - t->begin != need)
      return fail(err, errsize, NNCC_ERR_FORMAT,
                  "%s: tensor '%s' has data_offsets [%llu, %llu] (%llu bytes), but %s %s needs "
                  "%llu bytes",
                  f->label, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                  (unsigned long long)(t->end - t->begin), t->dtype_name, dims,
                  (unsigned long long)need);
    if (t->end > data_size)
      return fail(err, errsize, NNCC_ERR_FORMAT,
                  "%s is truncated: tensor '%s' has data_offsets [%llu, %llu], but the file has "
                  "only %llu bytes of data",
                  f->label, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                  (unsigned long long)data_size);
  }
  /* duplicates and overlaps by sorting (a hostile header may hold millions of entries) */
  if (f->n_tensors == 0 && data_size != 0)
    return fail(err, errsize, NNCC_ERR_FORMAT, "%s: %llu bytes of data but no tensors: trailing "
                "bytes", f->label, (unsigned long long)data_size);
  if (f->n_tensors == 0) return 0;
  const nncc_st_tensor **o = malloc((size_t)f->n_tensors * sizeof *o);
  if (!o) return fail(err, errsize, NNCC_ERR_NOMEM, "%s: out of memory", f->label);
  for (int i = 0; i < f->n_tensors; i++) o[i] = &f->tensors[i];
  int rc = 0;
  qsort(o, (size_t)f->n_tensors, sizeof *o, by_name);
  for (int i = 1; i < f->n_tensors && !rc; i++)
    if (!strcmp(o[i - 1]->name, o[i]->name))
      rc = fail(err, errsize, NNCC_ERR_FORMAT, "%s: tensor '%s' appears twice", f->label, o[i]->name);
  qsort(o, (size_t)f->n_tensors, sizeof *o, by_offset);
  const nncc_st_tensor *last = NULL;   /* the non-empty tensor ending last so far */
  for (int i = 0; i < f->n_tensors && !rc; i++) {
    const nncc_st_tensor *t = o[i];
    if (t->begin == t->end) continue;
    if (last && t->begin < last->end)
      rc = fail(err, errsize, NNCC_ERR_FORMAT,
                "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap in the data",
                f->label, last->name, (unsigned long long)last->begin, (unsigned long long)last->end,
                t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (!last || t->end > last->end) last = t;
  }
  /* as strict as the reference implementation: the tensors, in offset order, cover the data
   * section exactly: no gap before or between them, no bytes after the last one */
  uint64_t at = 0;
  for (int i = 0; i < f->n_tensors && !rc; i++) {
    const nncc_st_tensor *t = o[i];
    if (t->begin != at)
      rc = fail(err, errsize, NNCC_ERR_FORMAT,
                "%s: tensor '%s' starts at byte %llu of the data, but the tensors before it end "
                "at %llu: a gap (the data must be contiguous)", f->label, t->name,
                (unsigned long long)t->begin, (unsigned long long)at);
    at = t->end;
  }
  if (!rc && at != data_size)
    rc = fail(err, errsize, NNCC_ERR_FORMAT,
              "%s: %llu bytes after the last tensor's data (the tensors end at byte %llu of "
              "%llu): trailing bytes", f->label, (unsigned long long)(data_size - at),
              (unsigned long long)at, (unsigned long long)data_size);
  free(o);
  return rc;
}

/* Whether s[0, n) is UTF-8 as RFC 3629 defines it (no overlong forms, no surrogates, nothing
 * above U+10FFFF); *at is the offset of the first bad byte.  JSON text must be UTF-8, and the
 * reference implementation rejects a header that is not. */
static int valid_utf8(const unsigned char *s, size_t n, size_t *at) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || i + len > n) break;
    unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    size_t k = 1;
    for (; k < len && (s[i + k] & 0xC0) == 0x80; k++) cp = cp << 6 | (s[i + k] & 0x3F);
    if (k != len) break;
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) break;
    i += len;
  }
  *at = i;
  return i == n;
}

/* The header length n from the file's first min(size, 8) bytes, checked against its size. */
static int header_length(const char *label, const unsigned char *first, uint64_t size,
                         uint64_t *n, char *err, size_t errsize) {
  if (size < 8)
    return fail(err, errsize, NNCC_ERR_FORMAT,
                "%s is not a safetensors file: %llu bytes, shorter than the 8-byte header length",
                label, (unsigned long long)size);
  *n = 0;
  for (int i = 7; i >= 0; i--) *n = *n << 8 | first[i];
  if (*n > NNCC_ST_MAX_HEADER)
    return fail(err, errsize, NNCC_ERR_FORMAT,
                "%s is not a safetensors file: header length %llu is absurd (the limit is %u)",
                label, (unsigned long long)*n, NNCC_ST_MAX_HEADER);
  if (*n > size - 8)
    return fail(err, errsize, NNCC_ERR_FORMAT,
                "%s is truncated: header length %llu runs past the end of the file (%llu bytes)",
                label, (unsigned long long)*n, (unsigned long long)size);
  return 0;
}

/* header = '{' (string ':' (metadata | tensor)) (',' ...)* '}', the n bytes at json, of a
 * file whose data section (after it) has data_size bytes.  Fills f->tensors (data left NULL),
 * also when it fails: the caller frees them. */
static int parse_header(nncc_st_file *f, const unsigned char *json, uint64_t n,
                        uint64_t data_size, char *err, size_t errsize) {
  const char *label = f->label;
  size_t bad_at;
  if (!valid_utf8(json, (size_t)n, &bad_at))
    return fail(err, errsize, NNCC_ERR_FORMAT,
                "%s: malformed header: invalid UTF-8 at byte %zu of the JSON", label, bad_at);
  Json j = {(const char *)json, (const char *)json, (const char *)json + n, label, err, errsize, 0};
  int cap = 0, rc = 0, have_meta = 0;
  if (expect(&j, '{', "expected '{' at the start")) goto bad;
  if (!accept(&j, '}')) {
    do {
      char *name = NULL;
      if ((rc = parse_string(&j, &name))) goto bad;
      if (expect(&j, ':', "expected ':' after a key")) {
        free(name);
        goto bad;
      }
      if (!strcmp(name, "__metadata__")) {
        free(name);
        if (have_meta) {
          rc = fail(err, errsize, NNCC_ERR_FORMAT, "%s: two \"__metadata__\" entries", label);
          goto bad;
        }
        have_meta = 1;
        if ((rc = parse_metadata(&j))) goto bad;
        continue;
      }
      if (f->n_tensors == cap) {
        cap = cap ? cap * 2 : 16;
        nncc_st_tensor *nt = realloc(f->tensors, (size_t)cap * sizeof *nt);
        if (!nt) {
          free(name);
          rc = fail(err, errsize, NNCC_ERR_NOMEM, "%s: out of memory", label);
          goto bad;
        }
        f->tensors = nt;
      }
      nncc_st_tensor *t = &f->tensors[f->n_tensors++];
      memset(t, 0, sizeof *t);
      t->name = name;
      if ((rc = parse_tensor(&j, t))) goto bad;
    } while (accept(&j, ','));
    if (expect(&j, '}', "expected ',' or '}'")) goto bad;
  }
  skip_ws(&j);
  if (j.p != j.end) {
    jfail(&j, "unexpected text after the closing '}'");
    goto bad;
  }
  if ((rc = check_tensors(f, data_size, err, errsize))) goto bad;
  return 0;
bad:   /* the caller frees what was parsed */
  return rc ? rc : NNCC_ERR_FORMAT;
}

int nncc_st_parse(const char *label, const void *buf, size_t size, nncc_st_file *f, char *err,
                  size_t errsize) {
  memset(f, 0, sizeof *f);
  f->label = label;
  const unsigned char *b = buf;
  uint64_t n = 0;   /* set by header_length when it succeeds (gcc 12 -O2 cannot tell) */
  int rc = header_length(label, b, size, &n, err, errsize);
  if (!rc) rc = parse_header(f, b + 8, n, size - 8 - n, err, errsize);
  if (rc) {
    nncc_st_free(f);
    return rc;
  }
  f->buf = b;
  f->size = size;
  for (int i = 0; i < f->n_tensors; i++) f->tensors[i].data = b + 8 + n + f->tensors[i].begin;
  return 0;
}

/* Reads n bytes at offset off of f's file into dst (pread, resuming after a partial read or
 * a signal); the bytes are t's (NULL: the header's), for messages. */
static int read_at(const nncc_st_file *f, int fd, void *dst, size_t n, uint64_t off,
                   const nncc_st_tensor *t, char *err, size_t errsize) {
  unsigned char *p = dst;
  const char *what = t ? "tensor '" : "the header", *name = t ? t->name : "", *end = t ? "'" : "";
  while (n > 0) {
    ssize_t got = pread(fd, p, n, (off_t)off);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      return fail(err, errsize, NNCC_ERR_IO, "cannot read %s: %s (%s%s%s)", f->label,
                  strerror(errno), what, name, end);
    if (got == 0)
      return fail(err, errsize, NNCC_ERR_IO, "cannot read %s: the file changed while being read "
                  "(it now ends at byte %llu, inside %s%s%s)", f->label, (unsigned long long)off,
                  what, name, end);
    p += got;
    n -= (size_t)got;
    off += (uint64_t)got;
  }
  return 0;
}

int nncc_st_open(const char *path, nncc_st_file *f, char *err, size_t errsize) {
  memset(f, 0, sizeof *f);
  f->label = path;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, errsize, NNCC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail(err, errsize, NNCC_ERR_IO, "cannot read %s: not a regular file", path);
  }
  uint64_t size = (uint64_t)st.st_size, n = 0;
  unsigned char first[8], *json = NULL;
  int rc = read_at(f, fd, first, size < 8 ? (size_t)size : 8, 0, NULL, err, errsize);
  if (!rc) rc = header_length(path, first, size, &n, err, errsize);
  if (!rc && !(json = malloc(n ? (size_t)n : 1)))
    rc = fail(err, errsize, NNCC_ERR_NOMEM, "out of memory reading the header of %s (%llu bytes)",
              path, (unsigned long long)n);
  if (!rc) rc = read_at(f, fd, json, (size_t)n, 8, NULL, err, errsize);
  if (!rc) rc = parse_header(f, json, n, size - 8 - n, err, errsize);
  free(json);
  /* the conversion buffer now, so that nothing but a read can fail once data are written */
  int convert = 0;
  for (int i = 0; !rc && i < f->n_tensors; i++)
    convert |= f->tensors[i].dtype != NNCC_ST_F32 && f->tensors[i].dtype != NNCC_ST_OTHER;
  if (!rc && convert && !(f->chunk = malloc(NNCC_ST_CHUNK)))
    rc = fail(err, errsize, NNCC_ERR_NOMEM, "out of memory reading %s", path);
  if (rc) {
    close(fd);
    nncc_st_free(f);
    return rc;
  }
  f->size = (size_t)size;
  f->streamed = 1;
  f->fd = fd;
  f->data_at = 8 + n;
  return 0;
}

const nncc_st_tensor *nncc_st_find(const nncc_st_file *f, const char *name) {
  for (int i = 0; i < f->n_tensors; i++)
    if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
  return NULL;
}

/* ---- conversion ------------------------------------------------------------------------- */

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | man << 13;   /* inf / nan */
  } else if (exp != 0) {
    bits = sign | (exp + 112) << 23 | man << 13;
  } else if (man == 0) {
    bits = sign;
  } else {   /* subnormal: normalise */
    exp = 113;
    while (!(man & 0x400)) {
      man <<= 1;
      exp--;
    }
    bits = sign | exp << 23 | (man & 0x3FF) << 13;
  }
  float x;
  memcpy(&x, &bits, 4);
  return x;
}

/* n elements of dtype at s (little-endian) to float32 at dst. */
static void convert(int dtype, const unsigned char *s, int64_t n, float *dst) {
  switch (dtype) {
    case NNCC_ST_F32:
      if (n) memcpy(dst, s, (size_t)n * 4);
      break;
    case NNCC_ST_F64:
      for (int64_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, s + 8 * i, 8);
        /* IEEE round to nearest, as PyTorch's .float(): beyond FLT_MAX by half an ulp or
         * more is +-inf, just above it rounds to FLT_MAX; NaN stays NaN */
        volatile float r = (float)d;
        dst[i] = r;
      }
      break;
    default:   /* F16, BF16 */
      for (int64_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(s[2 * i] | s[2 * i + 1] << 8);
        if (dtype == NNCC_ST_F16) {
          dst[i] = half_to_float(h);
        } else {
          uint32_t bits = (uint32_t)h << 16;
          memcpy(&dst[i], &bits, 4);
        }
      }
      break;
  }
}

int nncc_st_to_f32_range(const nncc_st_file *f, const nncc_st_tensor *t, int64_t first,
                         int64_t count, float *dst, char *err, size_t errsize) {
  if (t->dtype == NNCC_ST_OTHER)
    return fail(err, errsize, NNCC_ERR_FORMAT,
                "%s: '%s' has dtype %s; only F32, F64, F16 and BF16 weights can be loaded",
                f->label, t->name, t->dtype_name);
  if (!f->streamed) {
    convert(t->dtype, t->data + (size_t)first * (size_t)t->itemsize, count, dst);
    return 0;
  }
  uint64_t at = t->begin + (uint64_t)first * (uint64_t)t->itemsize;   /* into the data section */
  if (t->dtype == NNCC_ST_F32)   /* straight into place */
    return read_at(f, f->fd, dst, (size_t)count * 4, f->data_at + at, t, err, errsize);
  int64_t per = NNCC_ST_CHUNK / t->itemsize;   /* elements per chunk */
  for (int64_t done = 0; done < count; done += per) {
    int64_t k = count - done < per ? count - done : per;
    int rc = read_at(f, f->fd, f->chunk, (size_t)k * (size_t)t->itemsize,
                     f->data_at + at + (uint64_t)done * (uint64_t)t->itemsize, t, err, errsize);
    if (rc) return rc;
    convert(t->dtype, f->chunk, k, dst + done);
  }
  return 0;
}

int nncc_st_to_f32(const nncc_st_file *f, const nncc_st_tensor *t, float *dst, char *err,
                   size_t errsize) {
  return nncc_st_to_f32_range(f, t, 0, t->numel, dst, err, errsize);
}

int nncc_st_check_params(const nncc_st_file *f, int n_params, const nncc_param_desc *params,
                         char *err, size_t errsize) {
  for (int i = 0; i < n_params; i++) {
    const nncc_param_desc *p = &params[i];
    const nncc_st_tensor *t = nncc_st_find(f, p->name);
    char want[128], have[128];
    fmt_dims(want, sizeof want, p->rank, p->dims);
    if (!t)
      return fail(err, errsize, NNCC_ERR_FORMAT, "%s has no tensor '%s' (the model needs %s)",
                  f->label, p->name, want);
    fmt_dims(have, sizeof have, t->rank, t->dims);
    int same = t->rank == p->rank;
    for (int k = 0; same && k < p->rank; k++) same = t->dims[k] == p->dims[k];
    if (!same)
      return fail(err, errsize, NNCC_ERR_FORMAT, "%s: '%s' is %s in the file, the model needs %s",
                  f->label, p->name, have, want);
    if (t->dtype == NNCC_ST_OTHER)
      return fail(err, errsize, NNCC_ERR_FORMAT,
                  "%s: '%s' has dtype %s; only F32, F64, F16 and BF16 weights can be loaded",
                  f->label, p->name, t->dtype_name);
  }
  for (int i = 0; i < f->n_tensors; i++) {
    int known = 0;
    for (int k = 0; !known && k < n_params; k++) known = !strcmp(params[k].name, f->tensors[i].name);
    if (!known)
      return fail(err, errsize, NNCC_ERR_FORMAT, "%s has a tensor '%s' that the model does not have",
                  f->label, f->tensors[i].name);
  }
  return 0;
}

int nncc_st_fill_params(const nncc_st_file *f, int n_params, const nncc_param_desc *params,
                        float *dst, char *err, size_t errsize) {
  for (int i = 0; i < n_params; i++) {
    int rc = nncc_st_to_f32(f, nncc_st_find(f, params[i].name), dst + params[i].offset, err, errsize);
    if (rc) return rc;   /* a read error (dtypes were checked) */
  }
  return 0;
}

int nncc_st_load_params(const nncc_st_file *f, int n_params, const nncc_param_desc *params,
                        float *dst, char *err, size_t errsize) {
  /* everything is checked first, so a failure of the checks leaves dst unchanged */
  int rc = nncc_st_check_params(f, n_params, params, err, errsize);
  return rc ? rc : nncc_st_fill_params(f, n_params, params, dst, err, errsize);
}

/* ---- the writer ------------------------------------------------------------------------- */

typedef struct Buf {
  char *s;
  size_t n, cap;
  int oom;
} Buf;

static void put(Buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (b->n + n + 1 > cap) cap *= 2;
    char *ns = realloc(b->s, cap);
    if (!ns) {
      b->oom = 1;
      return;
    }
    b->s = ns;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}

static void put_str(Buf *b, const char *s) { put(b, s, strlen(s)); }

static void putf(Buf *b, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  put(b, tmp, (size_t)n);   /* callers format integers only: always fits */
}

static void put_json_string(Buf *b, const char *s) {
  put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      put(b, "\\", 1);
      put(b, (const char *)&c, 1);
    } else if (c < 0x20) {
      putf(b, "\\u%04x", c);
    } else {
      put(b, (const char *)&c, 1);
    }
  }
  put(b, "\"", 1);
}

int nncc_st_write_f32(const char *path, int n, const nncc_st_out *t, char *err, size_t errsize) {
  Buf h = {0};
  uint64_t off = 0;
  put_str(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (int i = 0; i < n; i++) {
    uint64_t numel = 1;
    put(&h, ",", 1);
    put_json_string(&h, t[i].name);
    put_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
    for (int k = 0; k < t[i].rank; k++) {
      putf(&h, k ? ",%lld" : "%lld", (long long)t[i].dims[k]);
      numel *= (uint64_t)t[i].dims[k];
    }
    putf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
         (unsigned long long)(off + numel * 4));
    off += numel * 4;
  }
  put(&h, "}", 1);
  while (!h.oom && (8 + h.n) % 8 != 0) put(&h, " ", 1);   /* the data starts 8-byte aligned */
  if (h.oom) {
    free(h.s);
    return fail(err, errsize, NNCC_ERR_NOMEM, "cannot save %s: out of memory", path);
  }

  /* atomic_file.h: a unique temporary in the target's directory, renamed over it; links
   * kept, devices written in place */
  nncc_af a;
  int e = nncc_af_begin(&a, path);
  if (e) {
    free(h.s);
    return fail(err, errsize, e == ENOMEM ? NNCC_ERR_NOMEM : NNCC_ERR_IO, "cannot save %s: %s",
                path, strerror(e));
  }
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
  e = nncc_af_write(&a, len, 8);
  if (!e) e = nncc_af_write(&a, h.s, h.n);
  for (int i = 0; !e && i < n; i++) {
    size_t numel = 1;
    for (int k = 0; k < t[i].rank; k++) numel *= (size_t)t[i].dims[k];
    if (numel) e = nncc_af_write(&a, t[i].data, numel * 4);
  }
  free(h.s);
  if (e) nncc_af_abort(&a);
  else e = nncc_af_commit(&a);
  if (e) return fail(err, errsize, NNCC_ERR_IO, "cannot save %s: %s", path, strerror(e));
  return 0;
}
