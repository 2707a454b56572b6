/* machine.c - what this machine allows: the FMA peak and the DRAM bandwidth, 1 and N threads.
 *
 *   cc -O2 -march=native -pthread bench/machine.c -o machine && ./machine [--quick] [--threads N]
 *
 * bench/run.py compiles and runs it before the models and uses the figures for the roofline:
 * roofline time of a call = FLOPs / peak + compulsory weight bytes / read bandwidth.
 *
 * FMA peak: every thread runs ACC independent vector accumulators, acc = acc * m + a, in a
 * loop the compiler cannot shorten (the multiplier and the addend come through volatiles);
 * ACC is well above FMA latency x FMA ports (4 x 2 on current x86), so the FMA units are
 * the limit.  The vector width is the widest the compiler targets (__AVX512F__: 16 floats,
 * __AVX__: 8, else 4).  GFLOP/s = 2 x lanes x ACC x iterations x threads / the slowest
 * thread's time, best of the trials.
 *
 * DRAM bandwidth: a buffer far larger than the last-level cache (1 GiB; 256 MiB with --quick),
 * written once (first touch) and then
 *   read:  each thread sums its contiguous share with several vector accumulators,
 *   triad: a[i] = b[i] + s * c[i] over three arrays of a third of the buffer each; bytes
 *          counted as 3 x 4 per element (the write-allocate read of a[] is not counted,
 *          as in STREAM).
 * GB/s = bytes / the slowest thread's time, best of the trials (1 GB = 1e9 bytes).
 *
 * Threads start together at a barrier, unpinned (the machine is shared).  The output is one
 * `key value` line per figure, e.g. `fma_gflops_1t 251.2`, then `lanes`, `threads`.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
typedef float vf __attribute__((vector_size(LANES * 4)));

#define ACC 12          /* independent FMA chains per thread (FMA12 below) */
#define RACC 8          /* accumulators of the streaming sum */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The calling thread's CPU time: what the hardware gives a running thread, whatever else
 * runs on this shared machine (a descheduled thread's wall time would count the others). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static volatile float vmul = 0.99999f, vadd = 1e-6f;
static volatile float sink;

/* --- FMA ------------------------------------------------------------------------------------ */

#define FMA12(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)
#define DECL(i) vf a##i = m * (float)(i + 1) * 1e-3f;
#define STEP(i) a##i = a##i * m + a;
#define SUM(i) s += a##i;

static void fma_kernel(long iters) {
    /* broadcasts (vector + scalar), not lane-by-lane stores: those left m and a on the stack,
     * a memory operand on every FMA, and where only 2 loads issue a cycle (Intel) the loop
     * measured 134 GFLOP/s of a 206 peak */
    const vf zero = {0};
    const vf m = zero + (float)vmul, a = zero + (float)vadd;
    FMA12(DECL)
    for (long it = 0; it < iters; it++) {
        FMA12(STEP)
    }
    vf s = a;
    FMA12(SUM)
    float f = 0;
    for (int l = 0; l < LANES; l++) f += s[l];
    sink = f;
}

/* --- streaming ------------------------------------------------------------------------------- */

static void read_kernel(const float *p, size_t n) {   /* n: a multiple of LANES * RACC */
    vf acc[RACC];
    memset(acc, 0, sizeof acc);
    for (size_t i = 0; i < n; i += LANES * RACC) {
#pragma GCC unroll 8
        for (int k = 0; k < RACC; k++) {
            vf v;
            memcpy(&v, p + i + k * LANES, sizeof v);
            acc[k] += v;
        }
    }
    vf s = acc[0];
    for (int k = 1; k < RACC; k++) s += acc[k];
    float f = 0;
    for (int l = 0; l < LANES; l++) f += s[l];
    sink = f;
}

static void triad_kernel(float *a, const float *b, const float *c, size_t n) {
    float s = vadd;
    for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
    sink = a[n / 2];
}

/* --- threads --------------------------------------------------------------------------------- */

enum { K_FMA, K_READ, K_TRIAD };

typedef struct {
    int kind, id, nthreads;
    long iters;
    float *buf;
    size_t n;               /* floats in the whole buffer */
    pthread_barrier_t *bar;
    double wall, cpu;
} job;

static void *worker(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->bar);
    double w0 = now(), c0 = cpu_now();
    if (j->kind == K_FMA) {
        fma_kernel(j->iters);
    } else if (j->kind == K_READ) {
        size_t chunk = j->n / j->nthreads / (LANES * RACC) * (LANES * RACC);
        read_kernel(j->buf + chunk * j->id, chunk);
    } else {
        size_t third = j->n / 3, chunk = third / j->nthreads, off = chunk * j->id;
        triad_kernel(j->buf + off, j->buf + third + off, j->buf + 2 * third + off, chunk);
    }
    j->cpu = cpu_now() - c0;
    j->wall = now() - w0;
    return NULL;
}

/* One run of `kind` on `nt` threads: the slowest thread's CPU time and wall time. */
static void run(int kind, int nt, long iters, float *buf, size_t n, double *cpu, double *wall) {
    pthread_t th[64];
    job jobs[64];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)nt);
    for (int i = 0; i < nt; i++) {
        jobs[i] = (job){kind, i, nt, iters, buf, n, &bar, 0, 0};
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    *cpu = *wall = 0;
    for (int i = 0; i < nt; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].cpu > *cpu) *cpu = jobs[i].cpu;
        if (jobs[i].wall > *wall) *wall = jobs[i].wall;
    }
    pthread_barrier_destroy(&bar);
}

/* Prints `key_Nt` (from CPU time) and `key_Nt_wall`: work / the best of `trials` runs. */
static void measure(const char *key, int kind, int nt, int trials, long iters, float *buf, size_t n,
                    double work) {
    double bc = 1e30, bw = 1e30, c, w;
    for (int k = 0; k < trials; k++) {
        run(kind, nt, iters, buf, n, &c, &w);
        if (c < bc) bc = c;
        if (w < bw) bw = w;
    }
    printf("%s_%dt %.2f\n%s_%dt_wall %.2f\n", key, nt, work / bc * 1e-9, key, nt, work / bw * 1e-9);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int quick = 0, maxt = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) maxt = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    if (maxt < 1 || maxt > 64) maxt = 2;
    int trials = quick ? 3 : 7;
    size_t bytes = (size_t)(quick ? 256 : 1024) << 20;
    size_t n = bytes / sizeof(float);
    float *buf = aligned_alloc(64, bytes);
    if (!buf) { fprintf(stderr, "machine: cannot allocate %zu bytes\n", bytes); return 1; }
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023) * 1e-3f;   /* first touch */

    /* size the FMA loop for ~0.1 s (0.03 s with --quick) of CPU time per trial */
    long iters = 1 << 16;
    double c, w;
    run(K_FMA, 1, iters, NULL, 0, &c, &w);
    double target = quick ? 0.03 : 0.1;
    iters = (long)(iters * target / (c > 1e-6 ? c : 1e-6));
    if (iters < 1000) iters = 1000;

    printf("lanes %d\nfma_accumulators %d\nbuffer_mib %zu\n", LANES, ACC, bytes >> 20);
    int counts[2] = {1, maxt};
    for (int k = 0; k < (maxt > 1 ? 2 : 1); k++) {
        int nt = counts[k];
        measure("fma_gflops", K_FMA, nt, trials, iters, NULL, 0, 2.0 * LANES * ACC * (double)iters * nt);
        size_t per = n / nt / (LANES * RACC) * (LANES * RACC);
        measure("read_gbs", K_READ, nt, trials, 0, buf, n, (double)per * nt * 4);
        measure("triad_gbs", K_TRIAD, nt, trials, 0, buf, n, (double)(n / 3 / nt) * nt * 12);
    }
    free(buf);
    return 0;
}
