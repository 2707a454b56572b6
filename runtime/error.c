/* error.c - the thread-local error slot behind nncc_last_error(), small allocation helpers,
 * and the whole-file read the data readers share.
 *
 * nncc_rt_fail() formats into a _Thread_local buffer and returns the code it was given, so a
 * failing path is one line: `return nncc_rt_fail(NNCC_ERR_ARG, "batch must be >= 1, got %lld",
 * (long long)batch);`.  Generated kernels call it too, with up to four int64 arguments.  The
 * message stays until the next failure on the same thread; it is "" before the first one.
 * Messages longer than the buffer are truncated, never overflowed.
 */
#define _DEFAULT_SOURCE   /* fileno, madvise */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "rt_internal.h"

static _Thread_local char last_error[1024];

NNCC_API int nncc_rt_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return code;
}

NNCC_API const char *nncc_last_error(void) { return last_error; }

/* Buffers of at least HUGE_MIN bytes (parameters, packed weights, workspace, gradients) start
 * on a 2 MiB boundary, fill whole 2 MiB pages and ask for transparent huge pages (madvise
 * MADV_HUGEPAGE; Linux's default THP mode, "madvise", gives them only to such ranges).  The
 * kernels walk these buffers along rows, planes and weight rows, and with 4 KiB pages they
 * missed the TLB all the time, dearest in a virtual machine (a two-level page walk): VGG-16
 * 1.15-1.21x on one thread (docs/c-api.md, "Huge pages").  NNCC_HUGE_PAGES=0 in the
 * environment (read at each allocation) keeps 4 KiB pages; where the kernel refuses the
 * advice, the buffer keeps them too. */
enum { HUGE_PAGE = 2 << 20, HUGE_MIN = 4 << 20 };

static int huge_pages_wanted(size_t bytes) {
#ifdef MADV_HUGEPAGE
  const char *e = getenv("NNCC_HUGE_PAGES");
  return bytes >= HUGE_MIN && !(e && strcmp(e, "0") == 0);
#else
  (void)bytes;
  return 0;
#endif
}

float *nncc_rt_alloc_floats(int64_t n) {
  if (n < 0 || (uint64_t)n > (SIZE_MAX - HUGE_PAGE) / sizeof(float)) return NULL;
  size_t bytes = (size_t)n * sizeof(float);
  if (huge_pages_wanted(bytes)) {
    bytes = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;   /* whole huge pages */
    void *p = aligned_alloc(HUGE_PAGE, bytes);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, bytes, MADV_HUGEPAGE);   /* a hint: a refusal changes nothing */
#endif
    return p;
  }
  bytes = (bytes + NNCC_ALIGN - 1) / NNCC_ALIGN * NNCC_ALIGN;   /* aligned_alloc wants a multiple */
  if (bytes == 0) bytes = NNCC_ALIGN;
  return aligned_alloc(NNCC_ALIGN, bytes);
}

int nncc_rt_mul_ok(int64_t a, int64_t b, int64_t *r) {
  if (a < 0 || b < 0) return 0;
  if (a != 0 && b > INT64_MAX / a) return 0;
  *r = a * b;
  return 1;
}

int nncc_rt_read_file(const char *path, unsigned char **buf, size_t *size) {
  *buf = NULL;
  *size = 0;
  FILE *fp = fopen(path, "rb");
  if (!fp) return nncc_rt_fail(NNCC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(fp);
    return nncc_rt_fail(NNCC_ERR_IO, "cannot read %s: not a regular file", path);
  }
  size_t n = (size_t)st.st_size;
  unsigned char *b = malloc(n ? n : 1);
  if (!b) {
    fclose(fp);
    return nncc_rt_fail(NNCC_ERR_NOMEM, "out of memory reading %s (%zu bytes)", path, n);
  }
  size_t got = fread(b, 1, n, fp);
  int bad = ferror(fp) || got != n;
  fclose(fp);
  if (bad) {
    free(b);
    return nncc_rt_fail(NNCC_ERR_IO, "cannot read %s", path);
  }
  *buf = b;
  *size = n;
  return 0;
}
