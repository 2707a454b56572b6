/* dataset.h - the standalone trainer's data pipeline (runtime/trainer.c): data files bound to
 * a model's inputs and targets, checked once, then shuffled and cut into mini-batches.
 *
 * Tensors are numbered as the generated entry points take them: the model's inputs in
 * declaration order, then its targets (k < d->n_inputs: d->inputs[k], else
 * d->targets[k - d->n_inputs]).
 *
 * Files: a .npy file (recognised by its "\x93NUMPY" magic) or an IDX file, plain or gzip
 * (anything else).  The first dimension is the sample.  A tensor without a symbolic length
 * takes any file with the same number of values per sample (row-major, so an IDX
 * [N, 28, 28] feeds f32[1, 28, 28] or f32[784], and labels [N] or [N, 1] feed label[10]);
 * a tensor with one (`seq`) needs the file's dimensions one for one, the seq taken from the
 * files (all files must agree).  Every label and token id is checked against its class
 * count before training starts.
 *
 * Shuffling: epoch e (counted from 0) of a run with seed s uses the permutation that the
 * Fisher-Yates shuffle makes from the identity with SplitMix64 (Steele, Lea, Flood 2014)
 * started at state = s XOR (e * 0xD1B54A32D192ED03), mod 2^64:
 *     for i = n-1 down to 1:  draw r until r >= 2^64 mod (i+1);  j = r mod (i+1);  swap(i, j)
 * (SplitMix64: state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
 * z = (z ^ z>>27) * 0x94D049BB133111EB; r = z ^ z>>31.)  So every epoch's order depends on
 * the seed and the epoch only, is the same on every machine, and can be reproduced in a few
 * lines of Python (docs/training.md).
 */
#ifndef NNCC_DATASET_H
#define NNCC_DATASET_H

#include <stdint.h>

#include "npy.h"

typedef struct nncc_dataset {
  int n;                  /* tensors: the model's inputs, then its targets */
  nncc_npy *arr;          /* [n] the files as read: [samples, ...] */
  int64_t *row;           /* [n] elements (4 bytes each) per sample */
  int64_t samples;
  int64_t seq;            /* the symbolic length, when the model has one; else 1 */
} nncc_dataset;

/* Tensor k of the model (inputs, then targets). */
const nncc_tensor_desc *nncc_data_tensor(const nncc_model_desc *d, int k);

/* One file, by its content: .npy or IDX (gzip or plain).  want as for nncc_npy_read. */
int nncc_data_read(const char *path, int want, nncc_npy *a);

/* Reads paths[k] for every tensor k (all must be given), and checks them against the model
 * and one another.  flag ("--data", "--test") names the option in messages.  On failure the
 * message says which file and what is wrong, and *ds is empty. */
int nncc_data_load(nncc_dataset *ds, const nncc_model_desc *d, const char *const *paths,
                   const char *flag);
void nncc_data_free(nncc_dataset *ds);

/* perm[0..n) = the permutation of epoch `epoch` for `seed` (see above). */
void nncc_data_shuffle(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch);

/* The number of mini-batches of `batch` samples in an epoch: the last one holds what is left
 * (as PyTorch's DataLoader, drop_last=False), or is dropped when smaller (drop_last). */
int64_t nncc_data_batches(int64_t samples, int64_t batch, int drop_last);

/* Copies samples perm[first], ..., perm[first + count - 1] (first, ... when perm is NULL) of
 * every tensor k into bufs[k], one after another: bufs[k] holds count * row[k] elements. */
void nncc_data_gather(const nncc_dataset *ds, const int64_t *perm, int64_t first, int64_t count,
                      void *const *bufs);

#endif
