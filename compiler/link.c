/* link.c - from the model's object code to the artifact the user asked for (outputs.h kinds),
 * and the embedded weights.
 *
 *   executable   cc -o OUT  model.o [weights.o|.s] libnncc_rt.a -lm -lpthread -lz
 *   .so          cc -shared ...the same... (without -lz)
 *   --mpi        executable or .so: libnncc_rt_mpi.a before libnncc_rt.a, -lz, and the flags of
 *                `mpicc -showme:link` (Open MPI's wrapper compiler; NNCC_MPICC names another),
 *                so only these artifacts depend on libmpi
 *   .a           a copy of libnncc_rt.a with model.o [weights.o] added: `cc app.c m.a -lm`
 *   .o           model.o alone, or `cc -r` of model.o, its further parts (split.h) and the
 *                weights: link it with libnncc_rt.a
 * A model compiled on several threads is several objects (model.o and job->more): all of them
 * go wherever model.o goes.
 *
 * Embedded weights (--weights) never go through LLVM: embed_weights() converts the
 * safetensors file, parameter by parameter, straight into the data section of a small ELF
 * object that it writes itself (x86-64; elsewhere a raw file that a two-line assembler file
 * `.incbin`s), defining the hidden symbol M_nncc_weights that the descriptor references.  So
 * embedding is a copy: linear in the size, the compiler's memory is the file's header plus a
 * 1 MiB buffer (nncc_st_open reads the data on demand), and every size and offset is 64-bit.  The data goes to a large-data section
 * (.lrodata, flag SHF_X86_64_LARGE), which the linker places after everything else, so that
 * gigabytes of weights never push code and its data out of the +-2 GiB reach of RIP-relative
 * addressing.
 * Every intermediate file lives in one private temporary directory, removed at the end; the
 * artifact is written through runtime/atomic_file.c (a named temporary beside the target that
 * the linker fills, then renamed), so a failed build never leaves a torn artifact.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "link.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomic_file.h"
#include "diag.h"
#include "nncc_rt.h"
#include "safetensors.h"

#ifndef NNCC_LINK_SANITIZE
#define NNCC_LINK_SANITIZE 0
#endif

/* --- the embedded weights --- */

/* --- an ELF relocatable object around the weights (x86-64) ---
 *
 *   0         the ELF header
 *   64        the data: `bytes` bytes, section 1 (.lrodata.nncc_weights, alloc + large, align 64)
 *   ...       .symtab (null, the section, SYM: global hidden object of size bytes), .strtab,
 *             .shstrtab, then the 6 section headers (null, data, .note.GNU-stack, .symtab,
 *             .strtab, .shstrtab)
 * Every offset and size is 64-bit, so nothing limits the weights to 4 GiB. */
#ifndef SHF_X86_64_LARGE
#define SHF_X86_64_LARGE 0x10000000
#endif
static const char elf_shstr[] = "\0.lrodata.nncc_weights\0.note.GNU-stack\0.symtab\0.strtab\0.shstrtab";
/* the names' offsets in elf_shstr */
enum { SH_DATA = 1, SH_NOTE = SH_DATA + sizeof ".lrodata.nncc_weights",
       SH_SYMTAB = SH_NOTE + sizeof ".note.GNU-stack", SH_STRTAB = SH_SYMTAB + sizeof ".symtab",
       SH_SHSTRTAB = SH_STRTAB + sizeof ".strtab" };

static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

static uint64_t elf_shoff(const char *sym, uint64_t bytes) {
  uint64_t symtab = align8(64 + bytes), strtab = symtab + 3 * sizeof(Elf64_Sym);
  return align8(strtab + strlen(sym) + 2 + sizeof elf_shstr);
}

int embed_elf_begin(FILE *f, const char *sym, uint64_t bytes) {
  Elf64_Ehdr h;
  memset(&h, 0, sizeof h);
  memcpy(h.e_ident, ELFMAG, SELFMAG);
  h.e_ident[EI_CLASS] = ELFCLASS64;
  h.e_ident[EI_DATA] = ELFDATA2LSB;
  h.e_ident[EI_VERSION] = EV_CURRENT;
  h.e_type = ET_REL;
  h.e_machine = EM_X86_64;
  h.e_version = EV_CURRENT;
  h.e_shoff = elf_shoff(sym, bytes);
  h.e_ehsize = sizeof h;
  h.e_shentsize = sizeof(Elf64_Shdr);
  h.e_shnum = 6;
  h.e_shstrndx = 5;
  return fwrite(&h, sizeof h, 1, f) == 1 ? 0 : -1;
}

int embed_elf_end(FILE *f, const char *sym, uint64_t bytes) {
  uint64_t symtab = align8(64 + bytes), strtab = symtab + 3 * sizeof(Elf64_Sym);
  uint64_t strsz = strlen(sym) + 2, shstrtab = strtab + strsz, shoff = elf_shoff(sym, bytes);
  if (fseeko(f, (off_t)symtab, SEEK_SET) != 0) return -1;   /* pads the data to 8 bytes */
  Elf64_Sym st[3];
  memset(st, 0, sizeof st);
  st[1].st_info = ELF64_ST_INFO(STB_LOCAL, STT_SECTION);
  st[1].st_shndx = 1;
  st[2].st_name = 1;
  st[2].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT);
  st[2].st_other = STV_HIDDEN;
  st[2].st_shndx = 1;
  st[2].st_size = bytes;
  fwrite(st, sizeof st, 1, f);
  fputc(0, f);
  fwrite(sym, 1, strlen(sym) + 1, f);
  fwrite(elf_shstr, 1, sizeof elf_shstr, f);
  for (uint64_t at = shstrtab + sizeof elf_shstr; at < shoff; at++) fputc(0, f);
  Elf64_Shdr sh[6];
  memset(sh, 0, sizeof sh);
  sh[1] = (Elf64_Shdr){.sh_name = SH_DATA, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_X86_64_LARGE,
                       .sh_offset = 64, .sh_size = bytes, .sh_addralign = 64};
  sh[2] = (Elf64_Shdr){.sh_name = SH_NOTE, .sh_type = SHT_PROGBITS, .sh_offset = symtab, .sh_addralign = 1};
  sh[3] = (Elf64_Shdr){.sh_name = SH_SYMTAB, .sh_type = SHT_SYMTAB, .sh_offset = symtab,
                       .sh_size = sizeof st, .sh_link = 4, .sh_info = 2, .sh_addralign = 8,
                       .sh_entsize = sizeof(Elf64_Sym)};
  sh[4] = (Elf64_Shdr){.sh_name = SH_STRTAB, .sh_type = SHT_STRTAB, .sh_offset = strtab, .sh_size = strsz,
                       .sh_addralign = 1};
  sh[5] = (Elf64_Shdr){.sh_name = SH_SHSTRTAB, .sh_type = SHT_STRTAB, .sh_offset = shstrtab,
                       .sh_size = sizeof elf_shstr, .sh_addralign = 1};
  fwrite(sh, sizeof sh, 1, f);
  return ferror(f) ? -1 : 0;
}

int embed_weights(const Graph *g, const char *st_path, const char *raw_path, int as_elf) {
  nncc_st_file f;
  char err[512];
  if (nncc_st_open(st_path, &f, err, sizeof err) != 0) {
    fprintf(stderr, "nncc: error: %s\n", err);
    nncc_st_free(&f);
    return 1;
  }
  nncc_param_desc *pd = xcalloc((size_t)g->nparams + 1, sizeof *pd);
  for (int i = 0; i < g->nparams; i++) {
    const Param *p = &g->params[i];
    pd[i].name = p->name;
    pd[i].rank = p->shape.rank;
    pd[i].init = (int32_t)p->init;
    for (int d = 0; d < p->shape.rank && d < NNCC_MAX_RANK; d++) pd[i].dims[d] = p->shape.d[d].n;
    pd[i].numel = p->numel;
    pd[i].offset = p->offset;
  }
  /* every tensor checked first (names, shapes, dtypes, nothing extra, offsets inside the
   * file), before the output is created */
  int rc = nncc_st_check_params(&f, g->nparams, pd, err, sizeof err);
  FILE *out = rc ? NULL : fopen(raw_path, "wb");
  enum { BUF_FLOATS = 1 << 18 };   /* 1 MiB: each tensor is read and converted in pieces */
  float *buf = xmalloc(BUF_FLOATS * sizeof(float));
  int64_t at = 0;   /* floats written */
  char *sym = xasprintf("%s_nncc_weights", g->name);
  uint64_t bytes = (uint64_t)g->param_floats * sizeof(float);
  int werr = out && as_elf && embed_elf_begin(out, sym, bytes) != 0;   /* a write error */
  static const float zeros[256];
  for (int i = 0; !rc && !werr && out && i < g->nparams; i++) {
    const Param *p = &g->params[i];
    while (at < p->offset) {   /* padding between parameters, if the layout has any */
      int64_t k = p->offset - at < 256 ? p->offset - at : 256;
      fwrite(zeros, sizeof(float), (size_t)k, out);
      at += k;
    }
    const nncc_st_tensor *t = nncc_st_find(&f, p->name);
    for (int64_t k = 0; !rc && !werr && k < p->numel; k += BUF_FLOATS) {
      int64_t n = p->numel - k < BUF_FLOATS ? p->numel - k : BUF_FLOATS;
      rc = nncc_st_to_f32_range(&f, t, k, n, buf, err, sizeof err);
      if (!rc && fwrite(buf, sizeof(float), (size_t)n, out) != (size_t)n) werr = 1;
    }
    at += p->numel;
  }
  while (!rc && !werr && out && at < g->param_floats) {
    int64_t k = g->param_floats - at < 256 ? g->param_floats - at : 256;
    fwrite(zeros, sizeof(float), (size_t)k, out);
    at += k;
  }
  if (!rc && !werr && out && as_elf && embed_elf_end(out, sym, bytes) != 0) werr = 1;
  free(sym);
  free(buf);
  free(pd);
  nncc_st_free(&f);
  if (werr && !rc) {
    fclose(out);
    fprintf(stderr, "nncc: error: cannot write the weights to '%s': %s\n", raw_path, strerror(errno));
    return 2;
  }
  if (rc) {
    if (out) fclose(out);
    fprintf(stderr, "nncc: error: %s\n", err);
    if (rc == NNCC_ERR_FORMAT)
      fprintf(stderr, "note: the weights must match model '%s' exactly: every parameter, with "
              "its shape, and nothing else ('nncc --summary' lists them)\n", g->name);
    return 1;
  }
  int bad = !out || ferror(out);
  if (out) bad |= fclose(out) != 0;
  if (bad) {
    fprintf(stderr, "nncc: error: cannot write the weights to '%s': %s\n", raw_path, strerror(errno));
    return 2;
  }
  return 0;
}

char *embed_weights_asm(const char *model, const char *raw_path, uint64_t bytes) {
#if defined(__x86_64__)
  const char *section = ".section .lrodata.nncc_weights,\"al\",@progbits";
#else
  const char *section = ".section .rodata.nncc_weights,\"a\",%progbits";
#endif
  /* raw_path comes from mkdtemp and the model's name: no quote or backslash to escape */
  return xasprintf("# the weights of model '%s', %" PRIu64 " bytes (generated by nncc)\n"
                   "\t%s\n\t.balign 64\n\t.globl %s_nncc_weights\n\t.hidden %s_nncc_weights\n"
                   "\t.type %s_nncc_weights, @object\n\t.size %s_nncc_weights, %" PRIu64 "\n"
                   "%s_nncc_weights:\n\t.incbin \"%s\"\n"
                   "\t.section .note.GNU-stack,\"\",@progbits\n",
                   model, bytes, section, model, model, model, model, bytes, model, raw_path);
}

/* --- running the toolchain --- */

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* The directory holding libnncc_rt.a (malloc'd). */
static char *runtime_dir(void) {
  const char *env = getenv("NNCC_RUNTIME_DIR");
  if (env && *env) return xstrdup(env);
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      /* installed: PREFIX/bin/nncc beside PREFIX/lib/nncc; the build tree: build/lib/nncc */
      static const char *const rel[] = {"%s/../lib/nncc", "%s/lib/nncc"};
      for (int i = 0; i < 2; i++) {
        char *d = xasprintf(rel[i], exe);
        char *lib = xasprintf("%s/libnncc_rt.a", d);
        int ok = file_exists(lib);
        free(lib);
        if (ok) return d;
        free(d);
      }
    }
  }
#ifdef NNCC_BUILD_RUNTIME_DIR
  {
    char *lib = xasprintf("%s/libnncc_rt.a", NNCC_BUILD_RUNTIME_DIR);
    int ok = file_exists(lib);
    free(lib);
    if (ok) return xstrdup(NNCC_BUILD_RUNTIME_DIR);
  }
#endif
#ifdef NNCC_INSTALL_RUNTIME_DIR
  return xstrdup(NNCC_INSTALL_RUNTIME_DIR);
#else
  return xstrdup(".");
#endif
}

static int run(const char *const *argv) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "nncc: error: cannot run '%s': %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *tool(const char *env, const char *dflt) {
  const char *t = getenv(env);
  return t && *t ? t : dflt;
}

static int ends_with_o(const char *p) {
  size_t n = strlen(p);
  return n > 2 && !strcmp(p + n - 2, ".o");
}

static int copy_file(const char *from, int to_fd) {
  FILE *in = fopen(from, "rb");
  if (!in) return errno;
  char buf[1 << 16];
  size_t n;
  int e = 0;
  while (!e && (n = fread(buf, 1, sizeof buf, in)) > 0) {
    const char *p = buf;
    while (n > 0) {
      ssize_t w = write(to_fd, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        e = w < 0 ? errno : EIO;
        break;
      }
      p += w;
      n -= (size_t)w;
    }
  }
  if (!e && ferror(in)) e = EIO;
  fclose(in);
  return e;
}

/* The output of argv (run without a shell), malloc'd; NULL when it cannot run or fails. */
static char *capture(const char *const *argv) {
  int fd[2];
  if (pipe(fd) != 0) return NULL;
  pid_t pid = fork();
  if (pid < 0) {
    close(fd[0]);
    close(fd[1]);
    return NULL;
  }
  if (pid == 0) {
    close(fd[0]);
    if (dup2(fd[1], 1) < 0) _exit(127);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2);   /* "mpicc: not found" is said better by the caller */
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fd[1]);
  size_t len = 0, cap = 256;
  char *out = xmalloc(cap);
  for (;;) {
    if (len + 1 >= cap) out = xrealloc(out, cap *= 2);
    ssize_t n = read(fd[0], out + len, cap - len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  out[len] = '\0';
  close(fd[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) break;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    free(out);
    return NULL;
  }
  return out;
}

/* The flags of `mpicc -showme:link`, split at white space (Open MPI prints no quotes): a
 * NULL-terminated malloc'd array of malloc'd strings, or NULL. */
static char **mpi_link_flags(void) {
  const char *argv[] = {tool("NNCC_MPICC", "mpicc"), "-showme:link", NULL};
  char *out = capture(argv);
  if (!out) return NULL;
  int n = 0;
  char **flags = xcalloc(strlen(out) / 2 + 2, sizeof *flags);
  for (char *tok = strtok(out, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) flags[n++] = xstrdup(tok);
  free(out);
  if (n == 0) {
    free(flags);
    return NULL;
  }
  return flags;
}

static void free_flags(char **flags) {
  for (int i = 0; flags && flags[i]; i++) free(flags[i]);
  free(flags);
}

int link_mpi_check(void) {
  char **flags = mpi_link_flags();
  if (!flags) {
    fprintf(stderr, "nncc: error: --mpi needs Open MPI's development files, and '%s "
            "-showme:link' did not answer (install them: apt-get install libopenmpi-dev "
            "openmpi-bin; NNCC_MPICC names another MPI C compiler wrapper)\n",
            tool("NNCC_MPICC", "mpicc"));
    return 2;
  }
  free_flags(flags);
  char *rtdir = runtime_dir();
  char *lib = xasprintf("%s/libnncc_rt_mpi.a", rtdir);
  int ok = file_exists(lib);
  if (!ok)
    fprintf(stderr, "nncc: error: --mpi: this nncc was built without MPI support ('%s' is "
            "missing); install libopenmpi-dev and rebuild nncc\n", lib);
  free(lib);
  free(rtdir);
  return ok ? 0 : 2;
}

int link_artifact(const LinkJob *job) {
  char *rtdir = runtime_dir();
  char *rtlib = xasprintf("%s/libnncc_rt.a", rtdir);
  char *mpilib = xasprintf("%s/libnncc_rt_mpi.a", rtdir);
  char **mpiflags = NULL;
  free(rtdir);
  if (job->mpi && (job->kind == OUT_EXECUTABLE || job->kind == OUT_SHARED)) {
    mpiflags = mpi_link_flags();
    if (!mpiflags || !file_exists(mpilib)) {
      free_flags(mpiflags);
      free(mpilib);
      free(rtlib);
      int rc = link_mpi_check();   /* says what is missing */
      return rc ? rc : 2;
    }
  }
  if (job->kind != OUT_OBJECT && !file_exists(rtlib)) {
    fprintf(stderr, "nncc: error: the runtime library '%s' is missing (set NNCC_RUNTIME_DIR)\n", rtlib);
    free(rtlib);
    return 2;
  }
  /* the artifact's temporary beside it, with a name the linker can write */
  nncc_af af;
  int e = nncc_af_begin_ex(&af, job->output, job->kind == OUT_EXECUTABLE, 1);
  if (e) {
    fprintf(stderr, "nncc: error: cannot write '%s': %s\n", job->output, strerror(e));
    free(rtlib);
    return 1;
  }
  /* a device or FIFO target is written in place: build into the scratch file, copy after */
  const char *into = af.in_place ? job->scratch : af.tmp;
  const char *cc = tool("NNCC_CC", "cc");
  const char *argv[64] = {0};
  int n = 0, rc = 0, status = 0;
  char *wobj = NULL;
  int into_fd = af.in_place ? -1 : af.fd;
  if (af.in_place && job->kind == OUT_STATIC) {
    into_fd = open(into, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (into_fd < 0) e = errno;
  }
  switch (job->kind) {
  case OUT_EXECUTABLE:
  case OUT_SHARED:
    argv[n++] = cc;
    if (job->kind == OUT_SHARED) argv[n++] = "-shared";
    argv[n++] = "-o";
    argv[n++] = into;
    argv[n++] = job->object;
    for (int i = 0; i < job->nmore; i++) argv[n++] = job->more[i];
    if (job->weights) argv[n++] = job->weights;
    if (mpiflags) argv[n++] = mpilib;   /* the data-parallel trainer, then what it calls */
    argv[n++] = rtlib;
    argv[n++] = "-lm";
    argv[n++] = "-lpthread";
    /* the trainer's gzip IDX reader */
    if (job->kind == OUT_EXECUTABLE || mpiflags) argv[n++] = "-lz";
    for (int i = 0; mpiflags && mpiflags[i] && n < 56; i++) argv[n++] = mpiflags[i];
    /* no debug information from the runtime in the user's artifact (symbols stay, so
     * profiles still name the kernels); --gc-sections drops the runtime code not used */
    argv[n++] = "-Wl,--strip-debug,--gc-sections";
    if (NNCC_LINK_SANITIZE) argv[n++] = "-fsanitize=address,undefined";
    argv[n] = NULL;
    rc = run(argv);
    break;
  case OUT_OBJECT:
    if (!job->weights && job->nmore == 0) {
      e = copy_file(job->object, af.fd);   /* in place or not, straight to the target */
      into = NULL;
      break;
    }
    argv[n++] = cc;
    argv[n++] = "-r";
    argv[n++] = "-nostdlib";
    argv[n++] = "-o";
    argv[n++] = into;
    argv[n++] = job->object;
    for (int i = 0; i < job->nmore; i++) argv[n++] = job->more[i];
    if (job->weights) argv[n++] = job->weights;
    argv[n] = NULL;
    rc = run(argv);
    break;
  case OUT_STATIC:
    if (!e) e = copy_file(rtlib, into_fd);
    if (af.in_place && into_fd >= 0) close(into_fd);
    if (e) break;
    if (job->weights && ends_with_o(job->weights)) {
      argv[0] = NULL;   /* already an object: into the archive as it is */
    } else if (job->weights) {
      wobj = xasprintf("%s_weights.o", job->object);
      const char *as[] = {cc, "-c", "-o", wobj, job->weights, NULL};
      rc = run(as);
    }
    if (!rc) {
      argv[n++] = tool("NNCC_AR", "ar");
      argv[n++] = "rs";
      argv[n++] = into;
      argv[n++] = job->object;
      for (int i = 0; i < job->nmore; i++) argv[n++] = job->more[i];
      if (wobj) argv[n++] = wobj;
      else if (job->weights) argv[n++] = job->weights;
      argv[n] = NULL;
      rc = run(argv);
    }
    break;
  default: unreachable();
  }
  if (wobj) {
    unlink(wobj);
    free(wobj);
  }
  free(rtlib);
  free(mpilib);
  free_flags(mpiflags);
  if (rc != 0) {
    fprintf(stderr, "nncc: error: linking '%s' failed (%s exited with %d)\n", job->output,
            argv[0] ? argv[0] : cc, rc);
    nncc_af_abort(&af);
    return 2;
  }
  if (!e && af.in_place && into) {
    e = copy_file(into, af.fd);
    unlink(into);
  }
  if (!e) e = nncc_af_commit(&af);
  else nncc_af_abort(&af);
  if (e) {
    fprintf(stderr, "nncc: error: cannot write '%s': %s\n", job->output, strerror(e));
    status = 1;
  }
  return status;
}
