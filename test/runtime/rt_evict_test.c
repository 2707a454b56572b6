/* rt_evict_test.c - evicted parameters (model.c): after forward has packed a parameter that
 * only its packed copy feeds, its pages go back to the system, and every way of reading the
 * parameters gets them back bit for bit.
 *
 * The model 'ev' stands in for a convolution: "w" (N floats, at offset 1, so that its first and
 * last pages are shared with "b" and "tail") is packed reversed; forward reads the packed copy
 * and, directly, "b" and "tail", which must survive the eviction of w's whole pages.
 */
#define _GNU_SOURCE
#include <unistd.h>

#include "rt_test.h"

enum { N = 1 << 20 };   /* 4 MiB: above EVICT_MIN_BYTES */

static void ev_prepare(const float *params, float *packed) {
  for (int64_t i = 0; i < N; i++) packed[i] = params[1 + (N - 1 - i)];
}
static void ev_unpack(float *params, const float *packed) {
  for (int64_t i = 0; i < N; i++) params[1 + (N - 1 - i)] = packed[i];
}
static int64_t ev_ws(int64_t batch, int64_t seq) { return batch + seq; }
/* y = sum_i packed[i] * x[i % 3] + b + tail[2], every weight in the sum (in one order) */
static int ev_forward(const nncc_exec *x) {
  const float *in = x->in[0];
  double s = 0;
  for (int64_t i = 0; i < N; i++) s += (double)x->packed[i] * in[i % 3];
  ((float *)x->out[0])[0] = (float)s + x->params[0] + x->params[1 + N + 2];
  return 0;
}
static const nncc_param_desc ev_params[] = {
  {"b", 1, NNCC_INIT_NORMAL, {1}, 1, 0, 1, 1},
  {"w", 1, NNCC_INIT_NORMAL, {N}, N, 1, 1, 1},
  {"tail", 1, NNCC_INIT_NORMAL, {3}, 3, 1 + N, 1, 1},
};
static const nncc_tensor_desc ev_in[] = {{"x", NNCC_F32, 1, {3}, 0}};
static const nncc_tensor_desc ev_out[] = {{"y", NNCC_F32, 1, {1}, 0}};
static const int64_t ev_evictable[] = {1, N};
static const nncc_model_desc ev_desc = {
  NNCC_ABI_VERSION, 0, "ev", 3, 1, 0, 1, ev_params, ev_in, NULL, ev_out,
  1 + N + 3, N, ev_ws, ev_prepare, ev_forward, NULL, NULL, 0, NULL, NULL, ev_unpack, 1,
  ev_evictable,
};

static float x[3] = {0.5f, -1.25f, 2.0f};
static const void *in[1] = {x};

static double rss_mib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  if (f) fclose(f);
  return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* Whether the mapping that holds addr has flag (two letters: "hg" for MADV_HUGEPAGE, "nh"
 * for MADV_NOHUGEPAGE) on its VmFlags line in /proc/self/smaps; -1 when not found. */
static int vm_flag(const void *addr, const char *flag) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[512];
  int inside = 0, found = -1;
  uintptr_t a = (uintptr_t)addr;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = a >= lo && a < hi;
    } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
      found = 0;
      for (char *t = strtok(line + 8, " \n"); t; t = strtok(NULL, " \n"))
        if (strcmp(t, flag) == 0) found = 1;
      break;
    }
  }
  fclose(f);
  return found;
}

static float forward(nncc_model *m) {
  float y = 0;
  void *out[1] = {&y};
  EXPECT(nncc_rt_forward(m, 1, 1, in, out) == NNCC_OK, "forward: %s", nncc_last_error());
  return y;
}

/* RSS growth over the first forward (packing N floats): about 0 when w was evicted, about
 * 4 MiB when it was kept */
static double first_forward_growth(nncc_model *m, float *y) {
  double before = rss_mib();
  *y = forward(m);
  return rss_mib() - before;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  char kept_path[4096], ev_path[4096];
  snprintf(kept_path, sizeof kept_path, "%s/kept.safetensors", dir);
  snprintf(ev_path, sizeof ev_path, "%s/evicted.safetensors", dir);

  /* the reference: a model that keeps its parameters */
  /* create leaves the parameters untouched: the default initialisation it owes is done by the
   * first call that reads them */
  double before = rss_mib();
  nncc_model *z = nncc_rt_create(&ev_desc);
  double grow_z = rss_mib() - before;
  printf("case create_untouched: %s\n", grow_z < 1.0 ? "yes" : "no");
  EXPECT(grow_z < 1.0, "create grew by %.2f MiB", grow_z);

  setenv("NNCC_KEEP_PARAMS", "1", 1);
  nncc_model *k = nncc_rt_create(&ev_desc);
  EXPECT(nncc_rt_init(k, 0) == NNCC_OK, "init");   /* the parameters in, as a load would */
  float yk;
  double grow_k = first_forward_growth(k, &yk);
  unsetenv("NNCC_KEEP_PARAMS");
  nncc_model *m = nncc_rt_create(&ev_desc);
  EXPECT(nncc_rt_init(m, 0) == NNCC_OK, "init");
  float ym;
  double grow_m = first_forward_growth(m, &ym);
  printf("case evicted: %s; kept with NNCC_KEEP_PARAMS=1: %s\n", grow_m < 2.0 ? "yes" : "no",
         grow_k > 3.0 ? "yes" : "no");
  EXPECT(grow_m < 2.0 && grow_k > 3.0, "RSS grew by %.2f MiB evicting, %.2f MiB keeping", grow_m, grow_k);
  printf("case same_output: %s\n", ym == yk ? "yes" : "no");
  EXPECT(ym == yk, "%.9g vs %.9g", (double)ym, (double)yk);
  EXPECT(forward(m) == yk, "a second forward on the evicted model");
  /* the owed initialisation is the one init(0) gives */
  float yz = forward(z);
  printf("case lazy_init: %s\n", yz == yk ? "same output as init(0)" : "differs");
  EXPECT(yz == yk, "%.9g vs %.9g", (double)yz, (double)yk);
  nncc_rt_destroy(z);

  /* save restores them: loaded into a model that keeps them, the same values */
  EXPECT(nncc_rt_save(m, ev_path) == NNCC_OK, "save: %s", nncc_last_error());
  nncc_model *r = nncc_rt_create(&ev_desc);
  EXPECT(nncc_rt_load(r, ev_path) == NNCC_OK, "load: %s", nncc_last_error());
  int64_t nr = 0, nk = 0;
  const float *wr = nncc_rt_param(r, "w", &nr), *wk0 = nncc_rt_param(k, "w", &nk);
  int saved_same = wr && wk0 && nr == N && nk == N && !memcmp(wr, wk0, (size_t)N * sizeof(float));
  printf("case save_after_eviction: %s\n", saved_same ? "same values" : "differ");
  EXPECT(saved_same, "the saved w differs");
  nncc_rt_destroy(r);
  EXPECT(nncc_rt_save(k, kept_path) == NNCC_OK, "save: %s", nncc_last_error());
  /* and evicts again at the next forward, still right */
  EXPECT(forward(m) == yk, "forward after save");

  /* a parameter pointer restores them (and the model stops evicting: the caller may write) */
  int64_t n = 0;
  float *wm = nncc_rt_param(m, "w", &n), *wk = nncc_rt_param(k, "w", &n);
  int same = wm && wk && n == N && !memcmp(wm, wk, (size_t)N * sizeof(float));
  printf("case param_after_eviction: %s\n", same ? "same values" : "differ");
  EXPECT(same, "w differs after the restore");
  /* Huge pages (nncc_rt_alloc_floats): the parameters (over 4 MiB) start on a 2 MiB boundary
   * in a mapping advised MADV_HUGEPAGE, but the evicted range is advised MADV_NOHUGEPAGE
   * (else khugepaged could fill it back with zeros); NNCC_HUGE_PAGES=0 asks for neither. */
  FILE *thp = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (thp) {
    fclose(thp);
    const float *base = wm - 1, *mid = wm + N / 2, *kbase = wk - 1;
    int aligned = (uintptr_t)base % (2u << 20) == 0 && (uintptr_t)kbase % (2u << 20) == 0;
    int hg = vm_flag(base, "hg") == 1 && vm_flag(kbase, "hg") == 1 && vm_flag(wk + N / 2, "hg") == 1;
    int nh = vm_flag(mid, "nh") == 1 && vm_flag(mid, "hg") == 0 && vm_flag(wk + N / 2, "nh") == 0;
    setenv("NNCC_HUGE_PAGES", "0", 1);
    nncc_model *s4 = nncc_rt_create(&ev_desc);
    unsetenv("NNCC_HUGE_PAGES");
    EXPECT(nncc_rt_init(s4, 0) == NNCC_OK, "init");
    const float *w4 = nncc_rt_param(s4, "w", &n);
    int off = w4 && vm_flag(w4, "hg") == 0;
    printf("case huge_pages: %s\n", aligned && hg && nh && off ? "yes" : "no");
    EXPECT(aligned, "parameters at %p and %p, not on 2 MiB boundaries", (const void *)base, (const void *)kbase);
    EXPECT(hg, "the parameters' mapping is not advised MADV_HUGEPAGE");
    EXPECT(nh, "the evicted range is not advised MADV_NOHUGEPAGE (or the kept one is)");
    EXPECT(off, "NNCC_HUGE_PAGES=0 still advised MADV_HUGEPAGE");
    nncc_rt_destroy(s4);
  } else {
    printf("case huge_pages: no transparent huge pages in this kernel\n");
  }
  wm[5] += 1.0f;
  wk[5] += 1.0f;
  EXPECT(forward(m) == forward(k), "a write through the pointer is seen");

  /* load and init over evicted parameters */
  nncc_model *l = nncc_rt_create(&ev_desc);
  forward(l);
  EXPECT(nncc_rt_load(l, kept_path) == NNCC_OK, "load: %s", nncc_last_error());
  printf("case load_after_eviction: %s\n", forward(l) == yk ? "same output" : "differs");
  EXPECT(forward(l) == yk, "after load");
  EXPECT(nncc_rt_init(l, 0) == NNCC_OK, "init");
  printf("case init_after_eviction: %s\n", forward(l) == yk ? "same output" : "differs");
  EXPECT(forward(l) == yk, "after init (the same seed as create)");

  nncc_rt_destroy(k);
  nncc_rt_destroy(m);
  nncc_rt_destroy(l);
  printf("%d checks, %d failures\n", n_checks, n_failures);
  return n_failures != 0;
}
