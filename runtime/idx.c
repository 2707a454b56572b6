/* idx.c - IDX files, plain or gzip (zlib), for the standalone trainer.  See idx.h.
 *
 * A plain file is parsed in place.  A gzip file is inflated in two stages: the 4-byte magic
 * and the dimensions first, which fix the exact size of the data; then the data, converted
 * 64 KiB at a time straight into the result (no second copy of the file in memory); then
 * the stream must end there (zlib checks the CRC-32 and length at the end of each member).
 * Before anything is allocated, the declared size is checked against what the compressed
 * bytes could possibly hold (deflate expands at most 1032:1), so a small corrupt file never
 * asks for gigabytes.
 */
#define _POSIX_C_SOURCE 200809L

#include "idx.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "rt_internal.h"

#define CHUNK 65536            /* bytes inflated at a time; a multiple of every item size */
#define DEFLATE_MAX_RATIO 1032 /* deflate's largest expansion (zlib's technical details) */

static int item_size(int type) {
  switch (type) {
    case NNCC_IDX_U8: case NNCC_IDX_I8: return 1;
    case NNCC_IDX_I16: return 2;
    case NNCC_IDX_I32: case NNCC_IDX_F32: return 4;
    case NNCC_IDX_F64: return 8;
    default: return 0;
  }
}

static const char *type_name(int type) {
  switch (type) {
    case NNCC_IDX_U8: return "ubyte";
    case NNCC_IDX_I8: return "byte";
    case NNCC_IDX_I16: return "short";
    case NNCC_IDX_I32: return "int";
    case NNCC_IDX_F32: return "float";
    case NNCC_IDX_F64: return "double";
    default: return "?";
  }
}

int nncc_idx_is_gzip(const void *buf, size_t size) {
  const unsigned char *b = buf;
  return size >= 2 && b[0] == 0x1f && b[1] == 0x8b;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The magic: type and rank, checked; want is NNCC_F32 or NNCC_I32. */
static int check_magic(const char *label, const unsigned char *m, int want, int *type, int *rank) {
  if (m[0] != 0 || m[1] != 0)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is not an IDX file: the magic number 0x%02x%02x%02x%02x "
                        "does not start with two zero bytes (expected e.g. 0x00000803 for images, "
                        "0x00000801 for labels)", label, m[0], m[1], m[2], m[3]);
  *type = m[2];
  *rank = m[3];
  if (!item_size(*type))
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: unknown IDX element type 0x%02x in the magic number "
                        "0x0000%02x%02x (known: 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, "
                        "0x0D float, 0x0E double)", label, m[2], m[2], m[3]);
  if (*rank < 1)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: the IDX file has no dimensions (magic 0x0000%02x00); "
                        "the first dimension must be the number of samples", label, m[2]);
  if (*rank > NNCC_NPY_MAX_RANK)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: %d dimensions (at most %d are supported)", label,
                        *rank, NNCC_NPY_MAX_RANK);
  if (want == NNCC_I32 && (*type == NNCC_IDX_F32 || *type == NNCC_IDX_F64))
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s holds %s values; labels and token ids need an integer "
                        "type (ubyte, byte, short or int)", label, type_name(*type));
  return 0;
}

/* The dimensions (rank big-endian uint32s) into a; *bytes = the data's size. */
static int set_dims(const char *label, const unsigned char *p, int type, int rank, nncc_npy *a,
                    uint64_t *bytes) {
  int64_t numel = 1;
  a->rank = rank;
  for (int k = 0; k < rank; k++) {
    a->dims[k] = be32(p + 4 * k);
    if (!nncc_rt_mul_ok(numel, a->dims[k], &numel) || numel > INT64_MAX / 8) {
      char shape[160];
      size_t n = 0;
      for (int j = 0; j < rank && n < sizeof shape; j++)
        n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%u", j ? ", " : "", (unsigned)be32(p + 4 * j));
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: the dimensions [%s] are absurdly large (their product "
                          "overflows)", label, shape);
    }
  }
  a->numel = numel;
  *bytes = (uint64_t)numel * (uint64_t)item_size(type);
  snprintf(a->descr, sizeof a->descr, "%s", type_name(type));
  return 0;
}

static int alloc_data(const char *label, nncc_npy *a, int want) {
  a->dtype = want;
  a->data = nncc_rt_alloc_floats(a->numel);   /* float and int32 are both 4 bytes */
  if (!a->data)
    return nncc_rt_fail(NNCC_ERR_NOMEM, "%s: out of memory for %lld elements", label, (long long)a->numel);
  return 0;
}

/* count big-endian elements of type from src into out[first...] as want. */
static void convert(const unsigned char *src, int64_t count, int type, int want, void *out, int64_t first) {
  float *f = want == NNCC_F32 ? (float *)out + first : NULL;
  int32_t *q = want == NNCC_F32 ? NULL : (int32_t *)out + first;
  for (int64_t i = 0; i < count; i++) {
    int32_t iv = 0;
    double fv = 0;
    int is_float = 0;
    switch (type) {
      case NNCC_IDX_U8:
        if (f) {
          f[i] = (float)src[i] / 255.0f;   /* as torchvision's ToTensor: float32 x / 255 */
          continue;
        }
        iv = src[i];
        break;
      case NNCC_IDX_I8: iv = (int8_t)src[i]; break;
      case NNCC_IDX_I16: iv = (int16_t)(uint16_t)((unsigned)src[2 * i] << 8 | src[2 * i + 1]); break;
      case NNCC_IDX_I32: {
        uint32_t u = be32(src + 4 * i);
        memcpy(&iv, &u, 4);
        break;
      }
      case NNCC_IDX_F32: {
        uint32_t u = be32(src + 4 * i);
        float x;
        memcpy(&x, &u, 4);
        fv = x;
        is_float = 1;
        break;
      }
      default: {   /* F64 */
        uint64_t u = (uint64_t)be32(src + 8 * i) << 32 | be32(src + 8 * i + 4);
        memcpy(&fv, &u, 8);
        is_float = 1;
        break;
      }
    }
    if (f) {
      if (!is_float) fv = iv;
      f[i] = fv > FLT_MAX ? INFINITY : fv < -FLT_MAX ? -INFINITY : (float)fv;
    } else {
      q[i] = iv;   /* floats were rejected with the magic */
    }
  }
}

/* ---- plain ------------------------------------------------------------------------------- */

static int parse_plain(const char *label, const unsigned char *b, size_t size, int want, nncc_npy *a) {
  int type, rank, rc;
  if (size < 4)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is not an IDX file: %zu bytes, shorter than the "
                        "4-byte magic number", label, size);
  if ((rc = check_magic(label, b, want, &type, &rank))) return rc;
  size_t hlen = 4 + 4 * (size_t)rank;
  if (size < hlen)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is truncated in its header: %d dimensions need %zu "
                        "bytes, the file has %zu", label, rank, hlen, size);
  uint64_t need;
  if ((rc = set_dims(label, b + 4, type, rank, a, &need))) return rc;
  uint64_t have = size - hlen;
  if (have < need)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is truncated: its dimensions need %llu bytes of data, "
                        "the file has %llu", label, (unsigned long long)need, (unsigned long long)have);
  if (have > need)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s has %llu bytes after the data (its dimensions need %llu)",
                        label, (unsigned long long)(have - need), (unsigned long long)need);
  if ((rc = alloc_data(label, a, want))) return rc;
  convert(b + hlen, a->numel, type, want, a->data, 0);
  return 0;
}

/* ---- gzip -------------------------------------------------------------------------------- */

typedef struct Gz {
  z_stream z;
  const char *label;
  const unsigned char *next;   /* input not yet given to zlib */
  size_t left;
  int ended;                   /* the last member ended and no input is left */
} Gz;

static void gz_feed(Gz *g) {
  if (g->z.avail_in == 0 && g->left > 0) {
    size_t n = g->left < UINT_MAX ? g->left : UINT_MAX;
    g->z.next_in = (unsigned char *)g->next;   /* zlib does not write through it */
    g->z.avail_in = (uInt)n;
    g->next += n;
    g->left -= n;
  }
}

/* Inflates up to n bytes into dst; *got < n only at the end of the stream. */
static int gz_read(Gz *g, unsigned char *dst, size_t n, size_t *got) {
  *got = 0;
  while (*got < n && !g->ended) {
    gz_feed(g);
    g->z.next_out = dst + *got;
    g->z.avail_out = (uInt)(n - *got < UINT_MAX ? n - *got : UINT_MAX);
    uInt before = g->z.avail_out;
    int zr = inflate(&g->z, Z_NO_FLUSH);
    *got += before - g->z.avail_out;
    if (zr == Z_STREAM_END) {
      gz_feed(g);
      if (g->z.avail_in == 0) {
        g->ended = 1;
      } else if (g->z.avail_in >= 2 && g->z.next_in[0] == 0x1f && g->z.next_in[1] == 0x8b) {
        if (inflateReset(&g->z) != Z_OK)
          return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: corrupt gzip data", g->label);
      } else {
        return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: %llu bytes of trailing data after the gzip stream",
                            g->label, (unsigned long long)(g->z.avail_in + g->left));
      }
    } else if (zr == Z_BUF_ERROR) {
      if (g->z.avail_in == 0 && g->left == 0)
        return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is truncated: the gzip stream ends early", g->label);
      /* no progress with input and output space left cannot happen; treat as corrupt */
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: corrupt gzip data", g->label);
    } else if (zr == Z_MEM_ERROR) {
      return nncc_rt_fail(NNCC_ERR_NOMEM, "%s: out of memory inflating the gzip stream", g->label);
    } else if (zr != Z_OK) {
      return nncc_rt_fail(NNCC_ERR_FORMAT, "%s: corrupt gzip data (%s)", g->label,
                          g->z.msg ? g->z.msg : "zlib error");
    }
  }
  return 0;
}

/* Exactly n bytes, or an error saying what was being read. */
static int gz_need(Gz *g, unsigned char *dst, size_t n, const char *what, uint64_t so_far) {
  size_t got;
  int rc = gz_read(g, dst, n, &got);
  if (rc) return rc;
  if (got < n)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is truncated: the data inflates to %llu bytes, %s",
                        g->label, (unsigned long long)(so_far + got), what);
  return 0;
}

static int parse_gzip_stream(Gz *g, size_t size, int want, nncc_npy *a) {
  const char *label = g->label;
  unsigned char hdr[4 + 4 * 255];
  char what[160];
  int type, rank, rc;
  if ((rc = gz_need(g, hdr, 4, "shorter than the 4-byte IDX magic number", 0))) return rc;
  if ((rc = check_magic(label, hdr, want, &type, &rank))) return rc;
  size_t hlen = 4 + 4 * (size_t)rank;
  snprintf(what, sizeof what, "but %d dimensions need a %zu-byte header", rank, hlen);
  if ((rc = gz_need(g, hdr + 4, hlen - 4, what, 4))) return rc;
  uint64_t need;
  if ((rc = set_dims(label, hdr + 4, type, rank, a, &need))) return rc;
  if (need / DEFLATE_MAX_RATIO > (uint64_t)size)
    return nncc_rt_fail(NNCC_ERR_FORMAT, "%s is truncated: its dimensions need %llu bytes of data, "
                        "more than %zu bytes of gzip can hold", label, (unsigned long long)need, size);
  if ((rc = alloc_data(label, a, want))) return rc;
  unsigned char *chunk = malloc(CHUNK);
  if (!chunk) return nncc_rt_fail(NNCC_ERR_NOMEM, "%s: out of memory", label);
  int isz = item_size(type);
  uint64_t done = 0;
  while (!rc && done < need) {
    size_t n = need - done < CHUNK ? (size_t)(need - done) : CHUNK, got;
    rc = gz_read(g, chunk, n, &got);
    if (!rc && got < n)
      rc = nncc_rt_fail(NNCC_ERR_FORMAT, "%s is truncated: its dimensions need %llu bytes of data, "
                        "the file inflates to %llu", label, (unsigned long long)need,
                        (unsigned long long)(done + got));
    if (!rc) convert(chunk, (int64_t)(n / (size_t)isz), type, want, a->data, (int64_t)(done / (uint64_t)isz));
    done += n;
  }
  /* the stream must end here: this also makes zlib check the CRC */
  if (!rc) {
    uint64_t extra = 0;
    size_t got;
    do {
      rc = gz_read(g, chunk, CHUNK, &got);
      extra += got;
    } while (!rc && got == CHUNK);
    if (!rc && extra)
      rc = nncc_rt_fail(NNCC_ERR_FORMAT, "%s has %llu bytes after the data (its dimensions need %llu)",
                        label, (unsigned long long)extra, (unsigned long long)need);
  }
  free(chunk);
  return rc;
}

static int parse_gzip(const char *label, const unsigned char *b, size_t size, int want, nncc_npy *a) {
  Gz g;
  memset(&g, 0, sizeof g);
  g.label = label;
  g.next = b;
  g.left = size;
  int zr = inflateInit2(&g.z, 16 + MAX_WBITS);   /* gzip wrapper only */
  if (zr != Z_OK)
    return nncc_rt_fail(zr == Z_MEM_ERROR ? NNCC_ERR_NOMEM : NNCC_ERR_FORMAT, "%s: cannot start "
                        "inflating the gzip stream", label);
  int rc = parse_gzip_stream(&g, size, want, a);
  inflateEnd(&g.z);
  return rc;
}

/* ---- entry points ------------------------------------------------------------------------ */

int nncc_idx_parse(const char *label, const void *buf, size_t size, int want, nncc_npy *a) {
  memset(a, 0, sizeof *a);
  if (want == NNCC_LABEL) want = NNCC_I32;
  int rc = nncc_idx_is_gzip(buf, size) ? parse_gzip(label, buf, size, want, a)
                                       : parse_plain(label, buf, size, want, a);
  if (rc) nncc_npy_free(a);
  return rc;
}

int nncc_idx_read(const char *path, int want, nncc_npy *a) {
  memset(a, 0, sizeof *a);
  unsigned char *buf;
  size_t size;
  int rc = nncc_rt_read_file(path, &buf, &size);
  if (rc) return rc;
  rc = nncc_idx_parse(path, buf, size, want, a);
  free(buf);
  return rc;
}

/* ---- writing ----------------------------------------------------------------------------- */

int nncc_idx_write(const char *path, int type, int rank, const int64_t *dims, const void *data, int gzip) {
  int isz = item_size(type);
  if (!isz || rank < 1 || rank > 255)
    return nncc_rt_fail(NNCC_ERR_ARG, "cannot write %s: type 0x%02x, rank %d", path, type, rank);
  int64_t numel = 1;
  for (int k = 0; k < rank; k++)
    if (dims[k] > UINT32_MAX || !nncc_rt_mul_ok(numel, dims[k], &numel) || numel > INT64_MAX / 8)
      return nncc_rt_fail(NNCC_ERR_ARG, "cannot write %s: dimension %d is %lld", path, k, (long long)dims[k]);
  size_t hlen = 4 + 4 * (size_t)rank, bytes = hlen + (size_t)numel * (size_t)isz;
  unsigned char *b = malloc(bytes);
  if (!b) return nncc_rt_fail(NNCC_ERR_NOMEM, "cannot write %s: out of memory", path);
  b[0] = b[1] = 0;
  b[2] = (unsigned char)type;
  b[3] = (unsigned char)rank;
  for (int k = 0; k < rank; k++)
    for (int j = 0; j < 4; j++) b[4 + 4 * k + j] = (unsigned char)((uint64_t)dims[k] >> (24 - 8 * j));
  const unsigned char *s = data;
  for (int64_t i = 0; i < numel; i++)   /* host (little-endian or not) to big-endian */
    for (int j = 0; j < isz; j++) {
      uint64_t u = 0;
      if (isz == 1) u = s[i];
      else if (isz == 2) { uint16_t v; memcpy(&v, s + 2 * i, 2); u = v; }
      else if (isz == 4) { uint32_t v; memcpy(&v, s + 4 * i, 4); u = v; }
      else memcpy(&u, s + 8 * i, 8);
      b[hlen + (size_t)i * (size_t)isz + (size_t)j] = (unsigned char)(u >> (8 * (isz - 1 - j)));
    }
  int ok;
  int e = 0;
  if (gzip) {
    gzFile gz = gzopen(path, "wb");
    ok = gz != NULL;
    if (!gz) e = errno;
    for (size_t off = 0; ok && off < bytes;) {
      unsigned n = bytes - off < (1u << 30) ? (unsigned)(bytes - off) : (1u << 30);
      ok = gzwrite(gz, b + off, n) == (int)n;
      off += n;
    }
    if (gz && gzclose(gz) != Z_OK) ok = 0;
  } else {
    FILE *fp = fopen(path, "wb");
    ok = fp && fwrite(b, 1, bytes, fp) == bytes;
    e = errno;
    if (fp && fclose(fp) != 0) ok = 0, e = errno;
  }
  free(b);
  if (!ok) {
    remove(path);
    return nncc_rt_fail(NNCC_ERR_IO, "cannot write %s: %s", path, strerror(e ? e : EIO));
  }
  return 0;
}
