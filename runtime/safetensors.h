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
  const unsigned char *data;      /* the bytes [begin, end) of the data section (nncc_st_parse);
                                     NULL when the data stay in the file (nncc_st_open) */
} nncc_st_tensor;

/* Bytes of the buffer through which nncc_st_open's F64 / F16 / BF16 data are read and
 * converted (F32 is read straight into the destination). */
#define NNCC_ST_CHUNK (1u << 20)

typedef struct nncc_st_file {
  const char *label;              /* the path, for messages (borrowed) */
  const unsigned char *buf;       /* the whole file (nncc_st_parse), else NULL */
  size_t size;                    /* the file's size in bytes */
  int n_tensors;
  nncc_st_tensor *tensors;        /* in header order */
  /* nncc_st_open only: */
  int streamed;                   /* the data are read from fd on demand */
  int fd;                         /* the open file (valid when streamed) */
  uint64_t data_at;               /* the data section's offset in the file: 8 + header length */
  unsigned char *chunk;           /* NNCC_ST_CHUNK bytes when a tensor needs converting, else NULL */
} nncc_st_file;

/* Opens the file and reads its header only, with every check nncc_st_parse makes (header
 * length, JSON syntax, dtype names, ranks, data_offsets consistent with shape * itemsize,
 * inside the file's size, not overlapping, covering the data section exactly).  The data stay
 * in the file, open until nncc_st_free: nncc_st_to_f32 reads each tensor on demand, so the
 * memory needed is the header plus NNCC_ST_CHUNK, whatever the size of the weights.  On
 * failure *f is left empty (nncc_st_free is still safe). */
int nncc_st_open(const char *path, nncc_st_file *f, char *err, size_t errsize);
/* The same from memory: buf must outlive *f (label names it in messages). */
int nncc_st_parse(const char *label, const void *buf, size_t size, nncc_st_file *f, char *err,
                  size_t errsize);
void nncc_st_free(nncc_st_file *f);

/* The tensor called name, or NULL. */
const nncc_st_tensor *nncc_st_find(const nncc_st_file *f, const char *name);
/* Converts t's numel elements to float32 into dst (F32/F64/F16/BF16; else NNCC_ERR_FORMAT).
 * From an nncc_st_open file it reads them (NNCC_ERR_IO when the read fails or the file has
 * shrunk since it was opened: dst may then be partly written). */
int nncc_st_to_f32(const nncc_st_file *f, const nncc_st_tensor *t, float *dst, char *err,
                   size_t errsize);
/* The same for the elements [first, first + count) of t, into dst[0, count); requires
 * 0 <= first <= first + count <= t->numel. */
int nncc_st_to_f32_range(const nncc_st_file *f, const nncc_st_tensor *t, int64_t first,
                         int64_t count, float *dst, char *err, size_t errsize);

/* Fills dst (the model's param_floats floats, params[i].offset into it) from f, requiring an
 * exact match: every parameter present with the same shape and a floating dtype, and no
 * tensor the model does not have.  nncc_st_check_params, then nncc_st_fill_params: everything
 * the file says is checked before the first float is written, so on a failure of the checks
 * dst is unchanged.  From an nncc_st_open file only a read error (NNCC_ERR_IO) can follow the
 * checks, and dst is then partly written: a caller that must keep its floats on every failure
 * loads into a buffer of its own, or calls the two steps itself to tell the cases apart. */
int nncc_st_load_params(const nncc_st_file *f, int n_params, const nncc_param_desc *params,
                        float *dst, char *err, size_t errsize);

/* The checks of nncc_st_load_params alone (the compiler converts tensor by tensor). */
int nncc_st_check_params(const nncc_st_file *f, int n_params, const nncc_param_desc *params,
                         char *err, size_t errsize);
/* The conversions of nncc_st_load_params alone, after nncc_st_check_params succeeded: 0, or
 * NNCC_ERR_IO when reading an nncc_st_open file fails (dst then partly written). */
int nncc_st_fill_params(const nncc_st_file *f, int n_params, const nncc_param_desc *params,
                        float *dst, char *err, size_t errsize);

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
