/* safetensors.h - read and write the safetensors weight format, shared by the runtime
 * (nncc_rt_load / nncc_rt_save) and the compiler (`nncc --weights`, compiled into nncc_core).
 *
 * Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length
 * N, N bytes of JSON `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 * "__metadata__": {"k": "v"}}` (padded with spaces), then the data section; offsets are bytes
 * into the data section, little-endian, row-major.
 *
 * This file depends on libc + POSIX only (no nncc_rt_fail: the compiler links it alone), so
 * every function reports failure by returning NNCC_ERR_IO / NNCC_ERR_FORMAT / NNCC_ERR_NOMEM
 * and writing a one-line message that names the file and the tensor into err[errsize]
 * (err may be NULL).  The reader is strict and bounds-checked: nothing in the file is trusted.
 * A little-endian host is assumed (x86-64, AArch64).
 */
#ifndef NNCC_SAFETENSORS_H
#define NNCC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "nncc_rt.h"

#define NNCC_ST_MAX_RANK 8
#define NNCC_ST_MAX_HEADER 100000000u   /* 100 MB, the reference implementation's limit */

/* Element types this reader knows; only the floating ones convert to f32. */
enum {
  NNCC_ST_F32,    /* float32 */
  NNCC_ST_F64,    /* float64: rounded to nearest as PyTorch's .float() does: values beyond
                     the f32 range become +-inf (just above FLT_MAX: FLT_MAX), NaN stays */
  NNCC_ST_F16,    /* IEEE half: converted exactly */
  NNCC_ST_BF16,   /* bfloat16: converted exactly */
  NNCC_ST_OTHER,  /* integers, bool, f8: parsed and bounds-checked, not loadable */
};

typedef struct nncc_st_tensor {
  const char *name;               /* decoded UTF-8, owned by the nncc_st_file */
  const char *dtype_name;         /* as spelled in the file: "F32", "I64", ... */
  int dtype;                      /* NNCC_ST_* */
  int itemsize;                   /* bytes per element */
  int rank;
  int64_t dims[NNCC_ST_MAX_RANK];
  int64_t numel;
  uint64_t begin, end;            /* data_offsets: bytes into the data section */
  const unsigned char *data;      /* the bytes [begin, end) of the data section */
} nncc_st_tensor;

typedef struct nncc_st_file {
  const char *label;              /* the path, for messages (borrowed) */
  unsigned char *owned;           /* the whole file when nncc_st_read read it, else NULL */
  const unsigned char *buf;       /* the whole file */
  size_t size;
  int n_tensors;
  nncc_st_tensor *tensors;        /* in header order */
} nncc_st_file;

/* Reads the whole file and checks its structure: header length, JSON syntax, dtype names,
 * ranks, data_offsets in range, consistent with shape * itemsize, not overlapping.  On
 * failure *f is left empty (nncc_st_free is still safe). */
int nncc_st_read(const char *path, nncc_st_file *f, char *err, size_t errsize);
/* The same from memory: buf must outlive *f (label names it in messages). */
int nncc_st_parse(const char *label, const void *buf, size_t size, nncc_st_file *f, char *err,
                  size_t errsize);
void nncc_st_free(nncc_st_file *f);

/* The tensor called name, or NULL. */
const nncc_st_tensor *nncc_st_find(const nncc_st_file *f, const char *name);
/* Converts t's numel elements to float32 into dst (F32/F64/F16/BF16; else NNCC_ERR_FORMAT). */
int nncc_st_to_f32(const nncc_st_file *f, const nncc_st_tensor *t, float *dst, char *err,
                   size_t errsize);

/* Fills dst (the model's param_floats floats, params[i].offset into it) from f, requiring an
 * exact match: every parameter present with the same shape and a floating dtype, and no
 * tensor the model does not have.  Everything is checked before the first float is written,
 * so on failure dst is unchanged. */
int nncc_st_load_params(const nncc_st_file *f, int n_params, const nncc_param_desc *params,
                        float *dst, char *err, size_t errsize);

/* The checks of nncc_st_load_params alone (the compiler converts tensor by tensor). */
int nncc_st_check_params(const nncc_st_file *f, int n_params, const nncc_param_desc *params,
                         char *err, size_t errsize);

/* One tensor to write. */
typedef struct nncc_st_out {
  const char *name;
  int rank;
  const int64_t *dims;            /* rank dims */
  const float *data;              /* product(dims) floats */
} nncc_st_out;

/* Writes the tensors as F32 in the given order, atomically (atomic_file.h: a unique
 * temporary file in the target's directory, fsync, rename over the target; symlinks and the
 * file's mode kept; devices written in place).  On failure the temporary is removed and an
 * existing file at path is untouched. */
int nncc_st_write_f32(const char *path, int n, const nncc_st_out *t, char *err, size_t errsize);

#endif
