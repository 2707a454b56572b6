/* trainer.h - the standalone executable's `train` command (runtime/trainer.c), called by
 * nncc_rt_main (runtime/standalone.c) for `./model train ...`. */
#ifndef NNCC_TRAINER_H
#define NNCC_TRAINER_H

#include "nncc_rt.h"

/* argv[0] is "train".  prog names the program in messages.  Returns the exit status: 0 done
 * (or --help), 1 a run-time error (a bad data file, a failing step, a failed save), 2 a usage
 * error (a bad option, a model that is not trainable). */
int nncc_rt_train_main(const char *prog, int argc, char **argv, const nncc_model_desc *d);

/* argv[0] is "sample": text from a character model through M_step (trainer.c).  Returns 0,
 * 1 a run-time error, 2 a usage error (a model that cannot stream or is not a character
 * model). */
int nncc_rt_sample_main(const char *prog, int argc, char **argv, const nncc_model_desc *d);

#endif
