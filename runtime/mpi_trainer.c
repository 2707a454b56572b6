/* mpi_trainer.c - data-parallel training with MPI: the main() of an executable built with
 * `nncc model.nn -o model --mpi` (and M_main of a shared library built so).
 *
 *   mpirun -np N ./model train ... --batch B    trains on global batches of N*B samples
 *
 * This file is the only part of the runtime that includes <mpi.h>.  It is compiled into its
 * own library, libnncc_rt_mpi.a, which nncc links only into --mpi artifacts (compiler/link.c,
 * with the flags of `mpicc -showme:link`), so artifacts built without --mpi have no MPI
 * dependency.  The trainer itself (trainer.c) sees MPI only through the nncc_rt_dp
 * operations below.
 *
 * `./model train ...` initialises MPI (MPI_Init_thread, funneled: only this thread calls
 * MPI), runs the trainer on MPI_COMM_WORLD and finalises; when the calling program has
 * initialised MPI itself (M_main from a host program), it is used as it is and left
 * initialised.  Every other command (inference, --bench, --help) runs as without --mpi and
 * never touches MPI.
 *
 * Failures: the sums are MPI_Iallreduce + MPI_Test in a loop with a deadline, so a process
 * that stops answering (killed, stopped, a lost machine that mpirun has not noticed) makes
 * the others fail after NNCC_MPI_TIMEOUT seconds (default NNCC_DP_DEFAULT_TIMEOUT) instead
 * of waiting forever; a process killed outright is also noticed by mpirun, which then ends
 * the job.  After a failed collective, or when the trainer fails in some processes and not
 * in others, the job ends with MPI_Abort (the processes cannot agree any more); when every
 * process returns the same decision, MPI is finalised normally and the status returned.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nncc_rt.h"
#include "trainer.h"

typedef struct Mpi {
  MPI_Comm comm;
  double timeout;     /* seconds a sum waits for the others */
  int broken;         /* a sum failed: the processes can no longer agree */
} Mpi;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits for *req until the deadline: 0, or -1 with the message in err. */
static int wait_for(const nncc_rt_dp *dp, MPI_Request *req, const char *what, char *err,
                    size_t errsize) {
  Mpi *mp = dp->impl;
  double deadline = now_s() + mp->timeout;
  for (unsigned spin = 0;; spin++) {
    int done = 0;
    int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      char msg[MPI_MAX_ERROR_STRING];
      int len = 0;
      MPI_Error_string(rc, msg, &len);
      snprintf(err, errsize, "%s failed: %s", what, msg);
      mp->broken = 1;
      return -1;
    }
    if (done) return 0;
    if ((spin & 1023) == 1023) {
      if (now_s() > deadline) {
        snprintf(err, errsize, "%s: no answer from the other processes for %g s (one of them "
                 "died or hangs; NNCC_MPI_TIMEOUT sets the limit)", what, mp->timeout);
        mp->broken = 1;
        return -1;
      }
      sched_yield();   /* a process per core is the rule, but a shared core must move on */
    }
  }
}

static int sum(const nncc_rt_dp *dp, void *v, int64_t n, MPI_Datatype type, const char *what,
               char *err, size_t errsize) {
  Mpi *mp = dp->impl;
  if (mp->broken) {
    snprintf(err, errsize, "%s: an earlier collective operation failed", what);
    return -1;
  }
  /* MPI counts are int: a buffer of more than 2^31 - 1 floats goes in pieces */
  char *p = v;
  int size = type == MPI_FLOAT ? 4 : 8;
  while (n > 0) {
    int chunk = n > 0x7fffffff ? 0x7fffffff : (int)n;
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, p, chunk, type, MPI_SUM, mp->comm, &req);
    if (rc != MPI_SUCCESS) {
      char msg[MPI_MAX_ERROR_STRING];
      int len = 0;
      MPI_Error_string(rc, msg, &len);
      snprintf(err, errsize, "%s: MPI_Iallreduce failed: %s", what, msg);
      mp->broken = 1;
      return -1;
    }
    if (wait_for(dp, &req, what, err, errsize)) return -1;
    p += (size_t)chunk * (size_t)size;
    n -= chunk;
  }
  return 0;
}

static int sum_f32(const nncc_rt_dp *dp, float *v, int64_t n, char *err, size_t errsize) {
  return sum(dp, v, n, MPI_FLOAT, "summing the gradients over the processes", err, errsize);
}

static int sum_f64(const nncc_rt_dp *dp, double *v, int n, char *err, size_t errsize) {
  return sum(dp, v, n, MPI_DOUBLE, "exchanging the step's loss and status", err, errsize);
}

/* NNCC_MPI_TIMEOUT: seconds > 0; -1 when set but not a number. */
static double timeout_from_env(void) {
  const char *s = getenv("NNCC_MPI_TIMEOUT");
  if (!s || !*s) return NNCC_DP_DEFAULT_TIMEOUT;
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  if (errno || end == s || *end || !(x > 0) || x > 1e9) return -1;
  return x;
}

/* `./model train ...` on every process of MPI_COMM_WORLD. */
static int train_mpi(const char *prog, int argc, char **argv, const nncc_model_desc *d) {
  double timeout = timeout_from_env();
  if (timeout < 0) {
    fprintf(stderr, "%s: NNCC_MPI_TIMEOUT wants a number of seconds > 0, got '%s'\n", prog,
            getenv("NNCC_MPI_TIMEOUT"));
    return 2;
  }
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized) {
    fprintf(stderr, "%s: MPI was finalised by the program; data-parallel training needs it\n", prog);
    return 1;
  }
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      fprintf(stderr, "%s: MPI_Init_thread failed\n", prog);
      return 1;
    }
  }
  Mpi mp = {MPI_COMM_WORLD, timeout, 0};
  nncc_rt_dp dp = {0, 1, sum_f32, sum_f64, &mp};
  /* errors are returned (and reported by the trainer), not fatal inside MPI */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &dp.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &dp.size);
  int status = nncc_rt_train_main_dp(prog, argc, argv, d, &dp);
  fflush(stdout);
  fflush(stderr);
  /* Every path of the trainer that returns after the first collective has made every process
   * take the same decision, except a failed collective; a process that returned while the
   * others go on (which the trainer avoids) would leave them waiting until the timeout. */
  if (mp.broken) MPI_Abort(MPI_COMM_WORLD, status ? status : 1);
  if (!initialized) MPI_Finalize();
  return status;
}

NNCC_API int nncc_rt_mpi_main(int argc, char **argv, const nncc_model_desc *d) {
  if (argc > 1 && argv[1] && !strcmp(argv[1], "train")) {
    const char *prog = argc > 0 && argv[0] ? argv[0] : "model";
    const char *slash = strrchr(prog, '/');
    if (slash) prog = slash + 1;
    if (!d) {
      fprintf(stderr, "%s: no model\n", prog);
      return 1;
    }
    return train_mpi(prog, argc - 1, argv + 1, d);
  }
  return nncc_rt_main(argc, argv, d);
}
