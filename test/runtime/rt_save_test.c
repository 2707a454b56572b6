/* rt_save_test.c - saves are atomic for real (atomic_file.c): every case that broke before.
 *
 *   usage: rt_save_test DIR        (an empty scratch directory)
 *
 * Two threads saving different models to one path never produce a torn file; a symlink
 * planted at the old temporary name (PATH.tmp.<pid>) is not followed; a file's mode and a
 * symlink at the target are kept; a 250-character name saves; /dev/null is written in place
 * and stays a device; an .npy write to /dev/full fails and /dev/full stays; a failed save
 * (file size limit) leaves no temporary behind and the old file intact; a killed save
 * leaves no temporary either.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "npy.h"
#include "rt_test.h"

#define BIG (1 << 18)   /* floats: a 1 MB file, so that a torn write has room to show */

static int64_t big_ws(int64_t batch, int64_t seq) { return batch + seq; }
static int big_forward(const nncc_exec *x) { return 0; }
static const nncc_param_desc big_params[] = {{"big.weight", 1, NNCC_INIT_ZERO, {BIG}, BIG, 0, 1, 1}};
static const nncc_tensor_desc big_io[] = {{"x", NNCC_F32, 1, {1}, 0}};
static const nncc_model_desc big_desc = {
  NNCC_ABI_VERSION, 0, "big", 1, 1, 0, 1, big_params, big_io, NULL, big_io,
  BIG, 0, big_ws, NULL, big_forward, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL,
};

static const char *dir;

static char *path_in(const char *name) {
  char *p = malloc(strlen(dir) + strlen(name) + 2);
  sprintf(p, "%s/%s", dir, name);
  return p;
}

static int temporaries_left(void) {
  int n = 0;
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));)
    n += strncmp(e->d_name, ".nncc-", 6) == 0 || strstr(e->d_name, ".tmp.") != NULL;
  if (d) closedir(d);
  return n;
}

static nncc_model *big_with(float v) {
  nncc_model *m = nncc_rt_create(&big_desc);
  float *p = nncc_rt_param(m, "big.weight", NULL);
  for (int i = 0; i < BIG; i++) p[i] = v;
  return m;
}

typedef struct Saver {
  nncc_model *m;
  const char *path;
  int rounds, failures;
  pthread_barrier_t *bar;
} Saver;

static void *saver(void *arg) {
  Saver *s = arg;
  for (int r = 0; r < s->rounds; r++) {
    pthread_barrier_wait(s->bar);
    s->failures += nncc_rt_save(s->m, s->path) != 0;
    pthread_barrier_wait(s->bar);
    pthread_barrier_wait(s->bar);   /* the main thread checks the file */
  }
  return NULL;
}

static void test_concurrent(void) {
  char *path = path_in("shared.safetensors");
  nncc_model *a = big_with(1.0f), *b = big_with(2.0f), *check = big_with(0.0f);
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, 3);
  int rounds = 100, torn = 0;
  Saver sa = {a, path, rounds, 0, &bar}, sb = {b, path, rounds, 0, &bar};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, saver, &sa);
  pthread_create(&tb, NULL, saver, &sb);
  for (int r = 0; r < rounds; r++) {
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);
    if (nncc_rt_load(check, path) != 0) {
      torn++;
    } else {
      const float *p = nncc_rt_param(check, "big.weight", NULL);
      int mixed = 0;
      for (int i = 1; i < BIG; i++) mixed |= p[i] != p[0];
      torn += mixed || (p[0] != 1.0f && p[0] != 2.0f);
    }
    pthread_barrier_wait(&bar);
  }
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  printf("case concurrent_saves: %d rounds, %d save failures, %d torn files, %d temporaries left\n",
         rounds, sa.failures + sb.failures, torn, temporaries_left());
  EXPECT(torn == 0 && sa.failures + sb.failures == 0 && temporaries_left() == 0, "torn saves");
  nncc_rt_destroy(a);
  nncc_rt_destroy(b);
  nncc_rt_destroy(check);
  free(path);
}

static void test_files(void) {
  nncc_model *m = nncc_rt_create(&dense_desc);
  struct stat st;

  /* a symlink planted at the temporary name the old code used is never followed */
  char *path = path_in("planted.safetensors"), *victim = path_in("victim.txt");
  char tmpname[4096];
  snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(victim, "w");
  fputs("precious\n", f);
  fclose(f);
  symlink(victim, tmpname);
  int rc = nncc_rt_save(m, path);
  char buf[64] = {0};
  f = fopen(victim, "r");
  size_t got = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  printf("case planted_symlink: save %s, victim %s\n", code_name(rc),
         got == 9 && !strcmp(buf, "precious\n") ? "untouched" : "OVERWRITTEN");
  EXPECT(rc == 0 && !strcmp(buf, "precious\n"), "the planted link was followed");
  unlink(tmpname);

  /* the mode is kept */
  char *p600 = path_in("private.safetensors");
  close(open(p600, O_WRONLY | O_CREAT | O_TRUNC, 0600));
  chmod(p600, 0600);
  rc = nncc_rt_save(m, p600);
  stat(p600, &st);
  printf("case mode_kept: save %s, mode %04o\n", code_name(rc), (unsigned)(st.st_mode & 07777));
  EXPECT(rc == 0 && (st.st_mode & 07777) == 0600, "the mode changed");

  /* a symlink at the target is kept, its target replaced */
  char *link = path_in("link.safetensors"), *real = path_in("real.safetensors");
  close(open(real, O_WRONLY | O_CREAT | O_TRUNC, 0644));
  symlink("real.safetensors", link);
  rc = nncc_rt_save(m, link);
  struct stat lst;
  lstat(link, &lst);
  stat(real, &st);
  printf("case symlink_kept: save %s, link %s, target %lld bytes\n", code_name(rc),
         S_ISLNK(lst.st_mode) ? "kept" : "REPLACED", (long long)st.st_size);
  EXPECT(rc == 0 && S_ISLNK(lst.st_mode) && st.st_size > 0, "the link was replaced");

  /* a long file name (the file system allows 255 bytes) */
  char longname[256];
  memset(longname, 'w', 250);
  longname[250] = 0;
  char *lp = path_in(longname);
  rc = nncc_rt_save(m, lp);
  printf("case long_name: save of a 250-character name: %s %s\n", code_name(rc), rc ? nncc_last_error() : "");
  EXPECT(rc == 0, "a long name fails");

  /* /dev/null is written in place and stays a device */
  rc = nncc_rt_save(m, "/dev/null");
  stat("/dev/null", &st);
  printf("case dev_null: save %s, /dev/null is %s\n", code_name(rc),
         S_ISCHR(st.st_mode) ? "a character device" : "NOT A DEVICE");
  EXPECT(rc == 0 && S_ISCHR(st.st_mode), "/dev/null was replaced");

  /* a failed write to /dev/full leaves /dev/full in place */
  float y[2] = {1, 2};
  int64_t dims[2] = {1, 2};
  rc = nncc_npy_write("/dev/full", NNCC_F32, 2, dims, y);
  int exists = stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode);
  printf("case dev_full: npy write %s: %s; /dev/full %s\n", code_name(rc), nncc_last_error(),
         exists ? "is still a character device" : "IS GONE");
  EXPECT(rc == NNCC_ERR_IO && exists, "/dev/full");
  rc = nncc_rt_save(m, "/dev/full");
  exists = stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode);
  printf("case dev_full_save: %s: %s; /dev/full %s\n", code_name(rc), nncc_last_error(),
         exists ? "is still a character device" : "IS GONE");
  EXPECT(rc == NNCC_ERR_IO && exists, "/dev/full");

  /* a failing save (the file size limit) keeps the old file and leaves no temporary */
  char *keep = path_in("keep.safetensors");
  nncc_rt_save(m, keep);
  stat(keep, &st);
  off_t before = st.st_size;
  nncc_model *big = big_with(3.0f);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = 4096;
  setrlimit(RLIMIT_FSIZE, &lim);
  rc = nncc_rt_save(big, keep);
  setrlimit(RLIMIT_FSIZE, &old);
  stat(keep, &st);
  printf("case failed_save: %s: %s; old file %s, %d temporaries left\n", code_name(rc),
         nncc_last_error(), st.st_size == before ? "intact" : "CHANGED", temporaries_left());
  EXPECT(rc == NNCC_ERR_IO && st.st_size == before && temporaries_left() == 0, "failed save");
  nncc_rt_destroy(big);

  nncc_rt_destroy(m);
  free(path);
  free(victim);
  free(p600);
  free(link);
  free(real);
  free(lp);
  free(keep);
}

/* A save killed part-way (SIGKILL: no cleanup can run) leaves no temporary file behind: the
 * data goes to an anonymous O_TMPFILE that gets a name only for the instant of the rename.
 * A child saves a 16 MB model in a loop; it is killed during its saves. */
static void test_killed(void) {
  char *sub = path_in("killed");
  mkdir(sub, 0755);
  char *path = malloc(strlen(sub) + 32);
  sprintf(path, "%s/w.safetensors", sub);
  int leftovers = 0, rounds = 5;
  for (int r = 0; r < rounds; r++) {
    pid_t pid = fork();
    if (pid == 0) {
      static const nncc_param_desc p16[] = {{"big.weight", 1, NNCC_INIT_ZERO, {1 << 22}, 1 << 22, 0, 1, 1}};
      nncc_model_desc d16 = big_desc;
      d16.params = p16;
      d16.param_floats = 1 << 22;
      nncc_model *m = nncc_rt_create(&d16);
      for (;;) nncc_rt_save(m, path);
    }
    usleep(150000 + 37000 * r);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    DIR *d = opendir(sub);
    for (struct dirent *e; d && (e = readdir(d));) {
      int stray = e->d_name[0] != '.' ? strcmp(e->d_name, "w.safetensors") != 0
                                      : strncmp(e->d_name, ".nncc-", 6) == 0;
      if (stray) {   /* counted once: each round counts only what it left */
        char *p = malloc(strlen(sub) + strlen(e->d_name) + 2);
        sprintf(p, "%s/%s", sub, e->d_name);
        unlink(p);
        free(p);
      }
      leftovers += stray;
    }
    if (d) closedir(d);
  }
  printf("case killed_saves: %d saves killed, %d temporaries left\n", rounds, leftovers);
  EXPECT(leftovers == 0, "a killed save left its temporary");
  free(path);
  free(sub);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: rt_save_test DIR\n");
    return 2;
  }
  dir = argv[1];
  test_files();
  test_concurrent();
  test_killed();
  return finish();
}
