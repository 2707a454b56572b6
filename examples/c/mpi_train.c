/* mpi_train.c - data-parallel training with the C interface and MPI: every process computes
 * the gradients of its share of a global batch (M_gradients), MPI_Allreduce sums them in
 * place in the M_grad buffers, and every process takes the same optimizer step (M_update),
 * so the parameters stay equal everywhere without being sent.
 *
 *   nncc examples/mlp.nn -o mlp.so             # an ordinary build: MPI is this program's
 *   mpicc examples/c/mpi_train.c -I. ./mlp.so -Wl,-rpath,'$ORIGIN' -o mpi_train
 *   gunzip -k train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
 *   mpirun -np 2 ./mpi_train train-images-idx3-ubyte train-labels-idx1-ubyte 100 mlp.safetensors
 *
 * Arguments: plain (not gzip) IDX images and labels, the number of steps, and where process 0
 * saves the weights.  Steps take the global batches of 64 samples in file order; process r of
 * n takes samples [r*64/n, (r+1)*64/n) of each, so any n dividing 64 computes what one
 * process computes, up to rounding.  (`nncc model.nn -o model --mpi` builds an executable
 * whose `train` command does all this, with shuffling, a test set and one MPI_Allreduce over
 * all the gradients at once.)
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mlp.h"

enum { GLOBAL_BATCH = 64, PIXELS = 784 };
static const char *const params[] = {"h1.0.weight", "h1.0.bias", "h2.0.weight",
                                     "h2.0.bias", "logits.weight", "logits.bias"};

/* An IDX file of unsigned bytes: its bytes after the header, *count items of *row bytes. */
static unsigned char *read_idx(const char *path, long *count, long *row) {
  FILE *f = fopen(path, "rb");
  unsigned char h[4], d[4];
  unsigned char *data = NULL;
  if (!f || fread(h, 1, 4, f) != 4 || h[0] || h[1] || h[2] != 8 || h[3] < 1) goto out;
  *row = 1;
  for (int k = 0; k < h[3]; k++) {
    if (fread(d, 1, 4, f) != 4) goto out;
    long n = (long)d[0] << 24 | d[1] << 16 | d[2] << 8 | d[3];
    if (k == 0) *count = n;
    else *row *= n;
  }
  data = malloc((size_t)(*count * *row) + 1);
  if (data && fread(data, 1, (size_t)(*count * *row), f) != (size_t)(*count * *row)) {
    free(data);
    data = NULL;
  }
out:
  if (f) fclose(f);
  if (!data) fprintf(stderr, "%s: cannot read an IDX file of unsigned bytes\n", path);
  return data;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size, status = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long n_img = 0, n_lab = 0, row = 0, lrow = 0, steps = argc > 3 ? atol(argv[3]) : 0;
  unsigned char *img = argc > 4 ? read_idx(argv[1], &n_img, &row) : NULL;
  unsigned char *lab = img ? read_idx(argv[2], &n_lab, &lrow) : NULL;
  int local = GLOBAL_BATCH / size;   /* this process's share of a global batch */
  static float x[GLOBAL_BATCH][PIXELS];
  static int32_t y[GLOBAL_BATCH];
  mlp *m = mlp_create();
  if (argc != 5 || steps < 1) {
    if (rank == 0) fprintf(stderr, "usage: mpirun -np N %s IMAGES LABELS STEPS OUT.safetensors\n", argv[0]);
  } else if (!img || !lab || row != PIXELS || lrow != 1 || n_img != n_lab || n_img < GLOBAL_BATCH) {
    if (rank == 0) fprintf(stderr, "need 28x28 images and as many labels, at least %d\n", GLOBAL_BATCH);
  } else if (GLOBAL_BATCH % size) {
    if (rank == 0) fprintf(stderr, "the number of processes must divide %d\n", GLOBAL_BATCH);
  } else if (!m) {
    fprintf(stderr, "mlp_create: %s\n", nncc_last_error());
  } else {
    status = 0;
    for (long s = 0; s < steps; s++) {
      long first = (s * GLOBAL_BATCH) % (n_img - n_img % GLOBAL_BATCH) + (long)rank * local;
      for (int i = 0; i < local; i++) {
        for (int p = 0; p < PIXELS; p++) x[i][p] = img[(first + i) * PIXELS + p] / 255.0f;
        y[i] = lab[first + i];
      }
      float loss, mean;
      if (mlp_gradients(m, local, &x[0][0], y, &loss)) {   /* the mean over our samples */
        fprintf(stderr, "process %d: mlp_gradients: %s\n", rank, nncc_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);   /* the others would wait in MPI_Allreduce */
      }
      for (size_t k = 0; k < sizeof params / sizeof *params; k++) {
        int64_t numel;
        float *g = mlp_grad(m, params[k], &numel);   /* sum, then / size: the global mean */
        MPI_Allreduce(MPI_IN_PLACE, g, (int)numel, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        for (int64_t i = 0; i < numel; i++) g[i] /= (float)size;
      }
      if (mlp_update(m)) {
        fprintf(stderr, "process %d: mlp_update: %s\n", rank, nncc_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      MPI_Reduce(&loss, &mean, 1, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
      if (rank == 0 && (s + 1) % 10 == 0) printf("step %ld: loss %.4f\n", s + 1, mean / size);
    }
    if (!status && rank == 0 && mlp_save(m, argv[4])) {
      fprintf(stderr, "mlp_save: %s\n", nncc_last_error());
      status = 1;
    }
  }
  mlp_destroy(m);
  free(img);
  free(lab);
  MPI_Finalize();
  return status;
}
