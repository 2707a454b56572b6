/* idx.h - IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed, for the
 * standalone trainer (runtime/trainer.c).
 *
 * Format (LeCun, http://yann.lecun.com/exdb/mnist/): a 4-byte magic `00 00 TT NN` where TT is
 * the element type (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D
 * float32, 0x0E float64) and NN the number of dimensions; NN big-endian uint32 dimensions;
 * then the elements, big-endian, C order.  `train-images-idx3-ubyte` is 0x00000803 with
 * dims [60000, 28, 28]; `train-labels-idx1-ubyte` is 0x00000801 with dims [60000].
 *
 * Reading converts to what the model wants, into the same array type as the .npy reader:
 *   NNCC_F32   unsigned bytes become floats scaled to [0, 1] (x / 255); every other type is
 *              converted by value (float64 rounded to float32).
 *   NNCC_I32 / NNCC_LABEL  the integer types, by value; float files are an error.
 * Files starting with the gzip magic (1f 8b) are inflated with zlib first (several gzip
 * members one after another are read as one stream, like gunzip).  Everything is checked:
 * the magic, the type, 1..NNCC_NPY_MAX_RANK dimensions, an overflow-checked size, and the
 * data must be exactly numel * itemsize bytes (a truncated file, or bytes after the data, is
 * an error).  Failures return NNCC_ERR_IO / NNCC_ERR_FORMAT / NNCC_ERR_NOMEM with a message
 * (nncc_last_error) that names the file and says what is wrong; *a is then empty.
 */
#ifndef NNCC_IDX_H
#define NNCC_IDX_H

#include <stddef.h>

#include "npy.h"

/* Element types (the third magic byte). */
enum {
  NNCC_IDX_U8 = 0x08,
  NNCC_IDX_I8 = 0x09,
  NNCC_IDX_I16 = 0x0B,
  NNCC_IDX_I32 = 0x0C,
  NNCC_IDX_F32 = 0x0D,
  NNCC_IDX_F64 = 0x0E,
};

/* want: NNCC_F32, NNCC_I32 or NNCC_LABEL (read as NNCC_I32).  a->descr is the IDX type's
 * name ("ubyte", "byte", "short", "int", "float", "double"). */
int nncc_idx_read(const char *path, int want, nncc_npy *a);
/* The same from memory (plain or gzip); label names the buffer in messages. */
int nncc_idx_parse(const char *label, const void *buf, size_t size, int want, nncc_npy *a);

/* The gzip magic: the buffer is a gzip stream. */
int nncc_idx_is_gzip(const void *buf, size_t size);

/* Writes a plain (gzip = 0) or gzip-compressed (gzip = 1) IDX file; for the tests and for
 * users making small data sets.  type: NNCC_IDX_*; data holds product(dims) elements in the
 * host's representation of that type (uint8_t, int8_t, int16_t, int32_t, float, double). */
int nncc_idx_write(const char *path, int type, int rank, const int64_t *dims, const void *data,
                   int gzip);

#endif
