/* rt_internal.h - helpers shared by the runtime's source files (not installed for users;
 * harmless if it is).
 *
 * The runtime is compiled with -fvisibility=hidden: only definitions marked NNCC_API
 * (nncc.h) are exported from a generated shared library.
 */
#ifndef NNCC_RT_INTERNAL_H
#define NNCC_RT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nncc_rt.h"

#define NNCC_ALIGN 64   /* every float buffer the kernels see starts on a cache line */

/* error.c */
/* 64-byte aligned allocation of n floats (at least one cache line); free with free(). */
float *nncc_rt_alloc_floats(int64_t n);
/* a*b into *r; 0 when it overflows int64 or a, b < 0. */
int nncc_rt_mul_ok(int64_t a, int64_t b, int64_t *r);
/* The whole of a regular file into *buf (malloc'd, *size bytes); 0, or a negative code with
 * the message set (cannot open, not a regular file, out of memory, a short read). */
int nncc_rt_read_file(const char *path, unsigned char **buf, size_t *size);

/* threads.c */
/* The floating-point mode of nncc's arithmetic, around every entry point (model.c's
 * model_enter / model_leave): enter sets rounding to nearest, every exception masked, and
 * flush-to-zero and denormals-are-zero unless NNCC_DENORMALS=keep (read once), whatever the
 * caller's mode, and returns the caller's mode; leave restores that mode
 * and keeps the exception flags the call raised.  The pool's workers take the mode of the
 * thread that publishes a job.  A no-op on targets other than x86. */
unsigned nncc_rt_fp_enter(void);
void nncc_rt_fp_leave(unsigned saved);

#endif
