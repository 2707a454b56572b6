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
 * Failures: a process killed outright is noticed by mpirun, which ends the job.  One that
 * stops answering (stopped, hung, a lost machine that mpirun has not noticed) would leave the
 * others waiting in MPI_Allreduce forever; instead a watchdog thread ends a process whose sum
 * has waited NNCC_MPI_TIMEOUT seconds (default NNCC_DP_DEFAULT_TIMEOUT), with a message, and
 * mpirun then ends the rest.  After a collective that returned an error the job ends with
 * MPI_Abort (the processes cannot agree any more); when every process returns the same
 * decision, MPI is finalised normally and the status returned.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nncc_rt.h"
#include "trainer.h"

typedef struct Mpi {
  MPI_Comm comm;
  double timeout;              /* seconds a sum may take */
  int broken;                  /* a sum failed: the processes can no longer agree */
  const char *prog;
  int rank, size;
  /* the watchdog: a thread that ends the process when a sum takes longer than timeout */
  pthread_t thread;
  int have_thread;
  _Atomic int64_t since_ns;    /* when the current sum began (CLOCK_MONOTONIC), 0: none */
  _Atomic(const char *) what;  /* what the current sum is, for the message */
  _Atomic int stop;            /* the thread's cue to return */
} Mpi;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Blocking MPI_Allreduce is the fast one (MPI_Iallreduce + MPI_Test polling measured 1.5-2.5x
 * slower for a 1 MB gradient here), but it cannot time out; so this thread watches the clock
 * instead, and when a sum has waited `timeout` seconds it says so and ends the process
 * (_exit: MPI cannot be called from this thread, and exit handlers might wait on MPI too).
 * mpirun notices a process that exits without MPI_Finalize and ends the others. */
static void *watchdog(void *arg) {
  Mpi *mp = arg;
  int64_t period = (int64_t)(mp->timeout * 1e9 / 10);
  if (period > 1000000000) period = 1000000000;
  if (period < 1000000) period = 1000000;
  while (!atomic_load(&mp->stop)) {
    struct timespec ts = {(time_t)(period / 1000000000), (long)(period % 1000000000)};
    nanosleep(&ts, NULL);
    int64_t since = atomic_load(&mp->since_ns);
    if (since && (double)(now_ns() - since) * 1e-9 > mp->timeout) {
      char msg[512];
      int n = snprintf(msg, sizeof msg, "%s (process %d of %d): %s: no answer from the other "
                       "processes for %g s (one of them died or hangs; NNCC_MPI_TIMEOUT sets the "
                       "limit); stopping\n", mp->prog, mp->rank, mp->size, atomic_load(&mp->what),
                       mp->timeout);
      fflush(stdout);
      if (n > 0 && write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1) < 0) n = 0;
      _exit(1);
    }
  }
  return NULL;
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
  atomic_store(&mp->what, what);
  atomic_store(&mp->since_ns, now_ns());
  int rc = MPI_SUCCESS;
  while (n > 0 && rc == MPI_SUCCESS) {
    int chunk = n > 0x7fffffff ? 0x7fffffff : (int)n;
    rc = MPI_Allreduce(MPI_IN_PLACE, p, chunk, type, MPI_SUM, mp->comm);
    p += (size_t)chunk * (size_t)size;
    n -= chunk;
  }
  atomic_store(&mp->since_ns, 0);
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    snprintf(err, errsize, "%s: MPI_Allreduce failed: %s", what, msg);
    mp->broken = 1;
    return -1;
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
  Mpi mp;
  memset(&mp, 0, sizeof mp);
  mp.comm = MPI_COMM_WORLD;
  mp.timeout = timeout;
  mp.prog = prog;
  atomic_init(&mp.since_ns, 0);
  atomic_init(&mp.what, "");
  atomic_init(&mp.stop, 0);
  nncc_rt_dp dp = {0, 1, sum_f32, sum_f64, &mp};
  /* errors are returned (and reported by the trainer), not fatal inside MPI */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &dp.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &dp.size);
  mp.rank = dp.rank;
  mp.size = dp.size;
  mp.have_thread = pthread_create(&mp.thread, NULL, watchdog, &mp) == 0;
  if (!mp.have_thread)
    fprintf(stderr, "%s (process %d of %d): warning: no watchdog thread: a process that hangs "
            "will not be noticed (NNCC_MPI_TIMEOUT has no effect)\n", prog, mp.rank, mp.size);
  int status = nncc_rt_train_main_dp(prog, argc, argv, d, &dp);
  if (mp.have_thread) {
    atomic_store(&mp.stop, 1);
    pthread_join(mp.thread, NULL);
  }
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
