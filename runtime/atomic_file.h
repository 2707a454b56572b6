/* atomic_file.h - replacing a file so that nobody ever sees it half written, shared by the
 * runtime (safetensors saves, .npy outputs) and the compiler (artifacts, headers, emits).
 *
 *   nncc_af a;
 *   if ((e = nncc_af_begin(&a, path))) return ...;   a.fd (and a.tmp when named) are ready
 *   ... write to a.fd (nncc_af_write), or have another program write a.tmp ...
 *   e = ok ? nncc_af_commit(&a) : (nncc_af_abort(&a), e);
 *
 * The rules (every save in nncc follows them):
 *   - symbolic links at PATH are followed (up to 40): the file the link points to is
 *     replaced and the link itself is kept;
 *   - a regular file (or a missing one) is replaced atomically: the data goes to a new,
 *     exclusive temporary file in the target's directory (O_TMPFILE, so a killed process
 *     leaves nothing behind; where the file system lacks it, a short unique name
 *     ".nncc-XXXXXX" created with O_EXCL, which never follows a planted symlink), is
 *     fsync'd, takes the old file's mode (new files: 0666 minus the umask, 0777 for
 *     executables), and is renamed over the target; then the directory is fsync'd;
 *   - anything else that exists (a device such as /dev/null, a FIFO) is opened and written
 *     in place: it is never replaced or deleted, even when the write fails (/dev/full);
 *   - on failure the temporary file is removed and the target is untouched.
 * Concurrent saves to one path each write their own temporary file: the result is one of
 * the complete files, never a mix.
 * Depends on libc + POSIX + Linux only.  Every int result is 0 or an errno value (the caller
 * words the message: "cannot save PATH: strerror(e)").
 */
#ifndef NNCC_ATOMIC_FILE_H
#define NNCC_ATOMIC_FILE_H

#include <stddef.h>

typedef struct nncc_af {
  int fd;            /* write here (the temporary file, or the target itself when in_place) */
  char *target;      /* the file that will be replaced (symlinks resolved), malloc'd */
  char *tmp;         /* the temporary's name, malloc'd; NULL while it has none (O_TMPFILE) */
  int in_place;      /* the target is not a regular file: written directly */
  int anonymous;     /* fd is an O_TMPFILE: linked at commit */
  int have_mode;     /* mode is the old file's */
  unsigned mode;
} nncc_af;

/* executable: new files get mode 0777 minus the umask instead of 0666. named: the caller
 * needs a name (a.tmp) that another program can write (the linker), not just a.fd. */
int nncc_af_begin_ex(nncc_af *a, const char *path, int executable, int named);
int nncc_af_begin(nncc_af *a, const char *path);
/* Writes n bytes to a->fd (retrying short writes); 0 or an errno value. */
int nncc_af_write(nncc_af *a, const void *data, size_t n);
/* Makes the new content the target's (see above); frees a.  On failure, as nncc_af_abort. */
int nncc_af_commit(nncc_af *a);
/* Discards the temporary file (an in-place target keeps what was written); frees a. */
void nncc_af_abort(nncc_af *a);

/* Follows symbolic links at path (at most 40); returns the final path, malloc'd, or NULL
 * with errno set (ELOOP, ENOMEM).  A missing final component is fine. */
char *nncc_af_resolve(const char *path);

#endif
