/* atomic_file.c - atomic replacement of a file (the rules are in atomic_file.h).
 *
 * The temporary lives in the target's directory so that rename() is atomic (same file
 * system).  O_TMPFILE makes it anonymous until commit, when linkat() through /proc/self/fd
 * gives it a short random name for the instant before the rename; a process killed during
 * the write therefore leaves no debris.  Random names come from a per-process counter mixed
 * with the pid and the clock.  A named temporary is created with O_CREAT | O_EXCL | O_NOFOLLOW
 * and an anonymous one linked with linkat, which never replaces a name: two threads or
 * processes never share one and a symlink planted at the name is never followed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *dup_n(const char *s, size_t n) {
  char *r = malloc(n + 1);
  if (r) {
    memcpy(r, s, n);
    r[n] = 0;
  }
  return r;
}

char *nncc_af_resolve(const char *path) {
  char *p = strdup(path);
  for (int hops = 0; p; hops++) {
    struct stat st;
    if (lstat(p, &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    if (hops == 40) {
      free(p);
      errno = ELOOP;
      return NULL;
    }
    char link[PATH_MAX];
    ssize_t n = readlink(p, link, sizeof link - 1);
    if (n < 0) return p;   /* raced away: treat as missing */
    link[n] = 0;
    char *next;
    const char *slash = strrchr(p, '/');
    if (link[0] == '/' || !slash) {
      next = strdup(link);
    } else {
      size_t dl = (size_t)(slash - p) + 1;
      next = malloc(dl + (size_t)n + 1);
      if (next) {
        memcpy(next, p, dl);
        memcpy(next + dl, link, (size_t)n + 1);
      }
    }
    free(p);
    p = next;
  }
  errno = ENOMEM;
  return NULL;
}

/* the directory part of path ("." when none, "/" for "/x") */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return dup_n(path, (size_t)(slash - path));
}

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* a fresh dir/.nncc-XXXXXX (malloc'd; NULL with errno = ENOMEM) */
static char *random_name(const char *dir) {
  static uint64_t counter;
  static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  size_t dl = strlen(dir);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t r = mix64(__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) ^
                     (uint64_t)getpid() << 40 ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30);
  char *n = malloc(dl + 16);
  if (!n) {
    errno = ENOMEM;
    return NULL;
  }
  memcpy(n, dir, dl);
  memcpy(n + dl, "/.nncc-", 7);
  for (int i = 0; i < 6; i++, r /= 62) n[dl + 7 + i] = abc[r % 62];
  n[dl + 13] = 0;
  return n;
}

/* dir/.nncc-XXXXXX, created exclusively; fd or -1 with errno */
static int create_named(const char *dir, unsigned mode, char **name) {
  for (int attempt = 0; attempt < 100; attempt++) {
    char *n = random_name(dir);
    if (!n) return -1;
    int fd = open(n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd >= 0) {
      *name = n;
      return fd;
    }
    int e = errno;
    free(n);
    if (e != EEXIST) {
      errno = e;
      return -1;
    }
  }
  errno = EEXIST;
  return -1;
}

static void release(nncc_af *a) {
  if (a->fd >= 0) close(a->fd);
  free(a->target);
  free(a->tmp);
  memset(a, 0, sizeof *a);
  a->fd = -1;
}

int nncc_af_begin_ex(nncc_af *a, const char *path, int executable, int named) {
  memset(a, 0, sizeof *a);
  a->fd = -1;
  a->target = nncc_af_resolve(path);
  if (!a->target) return errno ? errno : ENOMEM;
  struct stat st;
  if (stat(a->target, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      release(a);
      return EISDIR;
    }
    if (!S_ISREG(st.st_mode)) {   /* a device, a FIFO, a socket: write in place */
      a->in_place = 1;
      a->fd = open(a->target, O_WRONLY | O_CLOEXEC | O_NOCTTY);
      if (a->fd < 0) {
        int e = errno;
        release(a);
        return e;
      }
      return 0;
    }
    a->have_mode = 1;
    a->mode = st.st_mode & 07777;
  } else if (errno != ENOENT) {
    int e = errno;
    release(a);
    return e;
  }
  char *dir = dir_of(a->target);
  if (!dir) {
    release(a);
    return ENOMEM;
  }
  unsigned mode = executable ? 0777 : 0666;
#ifdef O_TMPFILE
  if (!named && access("/proc/self/fd", X_OK) == 0) {
    a->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
    if (a->fd >= 0) a->anonymous = 1;
  }
#endif
  if (a->fd < 0) a->fd = create_named(dir, mode, &a->tmp);
  int e = errno;
  free(dir);
  if (a->fd < 0) {
    release(a);
    return e;
  }
  if (a->have_mode) fchmod(a->fd, a->mode);   /* best effort, as cp does */
  return 0;
}

int nncc_af_begin(nncc_af *a, const char *path) { return nncc_af_begin_ex(a, path, 0, 0); }

int nncc_af_write(nncc_af *a, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(a->fd, p, n > (size_t)1 << 30 ? (size_t)1 << 30 : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

void nncc_af_abort(nncc_af *a) {
  if (a->tmp) unlink(a->tmp);
  release(a);
}

int nncc_af_commit(nncc_af *a) {
  int e = 0;
  if (a->in_place) {
    /* devices and FIFOs may not support fsync: that is not a failure to write */
    if (fsync(a->fd) != 0 && errno != EINVAL && errno != EROFS && errno != ENOTSUP) e = errno;
    if (close(a->fd) != 0 && !e) e = errno;
    a->fd = -1;
    release(a);
    return e;
  }
  if (fsync(a->fd) != 0) e = errno;
  /* a linker may have re-created a named temporary (a new inode): its name gets the mode */
  if (!e && a->have_mode) {
    if (a->tmp) chmod(a->tmp, a->mode);
    else fchmod(a->fd, a->mode);
  }
  char *dir = dir_of(a->target);
  if (!dir) e = ENOMEM;
  if (!e && a->anonymous) {
    /* The file gets a name only for the instant between linkat and rename: a fresh random
     * name (linkat never replaces one: EEXIST means try another), renamed at once, the
     * descriptor closed after.  A kill in that window is the only way a temporary stays. */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", a->fd);
    for (int attempt = 0; attempt < 100 && !a->tmp && !e; attempt++) {
      char *name = random_name(dir);
      if (!name) e = ENOMEM;
      else if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0) a->tmp = name;
      else {
        if (errno != EEXIST) e = errno;
        free(name);
      }
    }
    if (!e && !a->tmp) e = EEXIST;
    if (!e && rename(a->tmp, a->target) != 0) e = errno;
    if (!e) {
      free(a->tmp);
      a->tmp = NULL;   /* renamed: the name is no longer ours to remove */
    }
    if (close(a->fd) != 0 && !e) e = errno;
  } else {
    if (close(a->fd) != 0 && !e) e = errno;
    if (!e && rename(a->tmp, a->target) != 0) e = errno;
  }
  a->fd = -1;
  if (e) {
    free(dir);
    nncc_af_abort(a);
    return e;
  }
  free(a->tmp);
  a->tmp = NULL;   /* renamed: nothing to remove */
  /* make the rename durable (best effort: not every file system allows it) */
  int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  free(dir);
  release(a);
  return 0;
}
