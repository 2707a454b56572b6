/* trainer.h - the standalone executable's `train` command (runtime/trainer.c), called by
 * nncc_rt_main (runtime/standalone.c) for `./model train ...`, and by nncc_rt_mpi_main
 * (runtime/mpi_trainer.c, only in artifacts built with --mpi) for data-parallel training. */
#ifndef NNCC_TRAINER_H
#define NNCC_TRAINER_H

#include <stddef.h>

#include "nncc_rt.h"

/* argv[0] is "train".  prog names the program in messages.  Returns the exit status: 0 done
 * (or --help), 1 a run-time error (a bad data file, a failing step, a failed save), 2 a usage
 * error (a bad option, a model that is not trainable). */
int nncc_rt_train_main(const char *prog, int argc, char **argv, const nncc_model_desc *d);

/* Data-parallel training: the collective operations the trainer needs, implemented with MPI
 * by runtime/mpi_trainer.c (so that this file and every artifact built without --mpi has no
 * MPI dependency).  Process `rank` of `size` takes samples [rank*B, (rank+1)*B) of each global
 * batch of size*B (spec section 3).
 *   sum_f32 / sum_f64  replace v[0..n) by its sum over all the processes, in place, in every
 *                      process (MPI_Allreduce with MPI_IN_PLACE).  0, or -1 after writing
 *                      what went wrong into err; the processes cannot talk to one another
 *                      after a failure.  (A process that stops answering is the
 *                      implementation's to notice: mpi_trainer.c's watchdog.) */
#define NNCC_DP_DEFAULT_TIMEOUT 600   /* seconds a collective waits (NNCC_MPI_TIMEOUT) */

typedef struct nncc_rt_dp {
  int rank, size;
  int (*sum_f32)(const struct nncc_rt_dp *dp, float *v, int64_t n, char *err, size_t errsize);
  int (*sum_f64)(const struct nncc_rt_dp *dp, double *v, int n, char *err, size_t errsize);
  void *impl;                    /* the implementation's own state */
} nncc_rt_dp;

/* nncc_rt_train_main with dp == NULL; with a dp, every process calls it with the same
 * arguments, process 0 alone prints, logs, tests and saves, and a failure in any process
 * stops all of them (all return non-zero; the failing one says why). */
int nncc_rt_train_main_dp(const char *prog, int argc, char **argv, const nncc_model_desc *d,
                          const nncc_rt_dp *dp);

/* The main() of an executable built with --mpi (runtime/mpi_trainer.c, libnncc_rt_mpi.a):
 * `train ...` runs data-parallel on MPI_COMM_WORLD, anything else is nncc_rt_main. */
int nncc_rt_mpi_main(int argc, char **argv, const nncc_model_desc *d);

/* argv[0] is "sample": text from a character model through M_step (trainer.c).  Returns 0,
 * 1 a run-time error, 2 a usage error (a model that cannot stream or is not a character
 * model). */
int nncc_rt_sample_main(const char *prog, int argc, char **argv, const nncc_model_desc *d);

#endif
