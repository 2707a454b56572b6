/* npy.h - NumPy .npy files for the standalone executable (runtime/standalone.c).
 *
 * Format (numpy/lib/format.py): "\x93NUMPY", major, minor, a 2-byte (v1) or 4-byte (v2, v3)
 * little-endian header length, a Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces to a
 * multiple of 64 and ended by '\n', then the elements, C order.
 *
 * Reading converts to what the model wants: NNCC_F32 accepts float32/float64 and integers
 * (converted), NNCC_I32 accepts int8..int64 / uint8..uint64 / bool (values must fit int32).
 * Either byte order.  Fortran order, object arrays, float16, complex and structured dtypes
 * are errors.  Writing produces v1.0, '<f4' or '<i4'.  Failures return NNCC_ERR_IO /
 * NNCC_ERR_FORMAT / NNCC_ERR_NOMEM with a message (nncc_last_error) naming the file.
 */
#ifndef NNCC_NPY_H
#define NNCC_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "nncc_rt.h"

#define NNCC_NPY_MAX_RANK 8

typedef struct nncc_npy {
  int dtype;                      /* NNCC_F32 or NNCC_I32: the type of data, after conversion */
  char descr[8];                  /* the file's dtype, e.g. "<i8" */
  int rank;
  int64_t dims[NNCC_NPY_MAX_RANK];
  int64_t numel;
  void *data;                     /* numel elements, 64-byte aligned; nncc_npy_free frees it */
} nncc_npy;

/* want: NNCC_F32, or NNCC_I32 (NNCC_LABEL is taken as NNCC_I32).  On failure *a is empty. */
int nncc_npy_read(const char *path, int want, nncc_npy *a);
/* The same from memory; label names the buffer in messages. */
int nncc_npy_parse(const char *label, const void *buf, size_t size, int want, nncc_npy *a);
void nncc_npy_free(nncc_npy *a);
/* dtype: NNCC_F32 ('<f4') or NNCC_I32 ('<i4'); data holds product(dims) elements. */
int nncc_npy_write(const char *path, int dtype, int rank, const int64_t *dims, const void *data);

#endif
