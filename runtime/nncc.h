/* nncc.h - the part of the nncc runtime that users see.
 *
 * The generated model.h includes this header.  Every int result of a generated M_* function
 * is NNCC_OK (0) on success or one of the negative codes below, and nncc_last_error() then
 * says what went wrong in one line.  The message lives in a thread-local slot: it stays until
 * the next failure on the same thread (a success does not clear it, like errno), and it is ""
 * before the first failure.
 */
#ifndef NNCC_H
#define NNCC_H

#if defined(__GNUC__) || defined(__clang__)
#define NNCC_API __attribute__((visibility("default")))
#else
#define NNCC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (every int result: 0 on success, one of these otherwise). */
enum {
  NNCC_OK = 0,
  NNCC_ERR_ARG = -1,     /* a NULL pointer, batch < 1, seq < 1, an unknown name */
  NNCC_ERR_IO = -2,      /* a file could not be opened, read or written */
  NNCC_ERR_FORMAT = -3,  /* a weight / .npy file that is malformed or does not fit the model */
  NNCC_ERR_RANGE = -4,   /* a token id or label outside [0, classes) */
  NNCC_ERR_NOMEM = -5,   /* allocation failed */
  NNCC_ERR_BUSY = -6,    /* the model object is in use by another thread (one object, one
                            thread at a time; two objects may run in two threads at once) */
};

/* The message of the last failure on this thread; "" when nothing has failed yet. */
NNCC_API const char *nncc_last_error(void);

/* Threads: generated code runs its parallel loops on NNCC_NUM_THREADS threads (default: the
 * CPUs the process may run on), counting the calling thread.  nncc_set_num_threads(n) changes
 * that for the whole process (n >= 1; 1: no worker threads); the results do not depend on it.
 * nncc_get_num_threads() returns the current count. */
NNCC_API int nncc_set_num_threads(int n);
NNCC_API int nncc_get_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif
