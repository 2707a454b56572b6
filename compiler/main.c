/* main.c - the nncc driver: the whole pipeline, top to bottom.
 *
 *   text --parse_program--> AST --sema_build--> graph IR (shapes checked)
 *        --autodiff--> + the gradient program (trainable models)
 *        --backend_run--> loop IR (one program per entry point) --> LLVM IR --> object
 *        --> .so + .h | executable
 *
 * Each --emit=STAGE stops after that stage and prints it.  Exit status: 0 on
 * success, 1 on a diagnosed error in the input, 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "autodiff.h"
#include "backend.h"
#include "diag.h"
#include "ir.h"
#include "link.h"
#include "outputs.h"
#include "sema.h"
#include "target.h"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2 };

typedef enum Mode {
  MODE_CHECK,    /* no output asked for: parse and check only */
  MODE_AST,      /* --emit=ast */
  MODE_IR,       /* --emit=ir */
  MODE_DOT,      /* --emit=dot */
  MODE_GRAD,     /* --emit=grad */
  MODE_SUMMARY,  /* --summary */
  MODE_BACKEND,  /* -o, --emit=loops|llvm|asm|obj */
} Mode;

static const char usage_text[] =
    "usage: nncc MODEL.nn [options]\n"
    "\n"
    "  -o PATH              build PATH, by its extension: .so a shared library, .a a static\n"
    "                       library that carries the runtime, .o an object (link it with\n"
    "                       libnncc_rt.a), each with its header beside it (model.so ->\n"
    "                       model.h); no extension: an executable.  With --emit or\n"
    "                       --summary: write that output to PATH\n"
    "  --summary            print the layer table: shapes, parameters, FLOPs\n"
    "  --emit=STAGE         print one stage and stop: ast, ir, grad (the gradient program),\n"
    "                       dot, loops, llvm, asm, obj\n"
    "                       (obj needs -o)\n"
    "  --model NAME         the model to compile when the file holds several\n"
    "  --weights FILE       embed these weights (safetensors) in the artifact\n"
    "  -O0 .. -O3           optimisation level (default -O3)\n"
    "  --target-cpu CPU     generate code for CPU (default: this machine; e.g. x86-64-v3)\n"
    "  --train, --no-train  generate the training entry points or not (default: when the\n"
    "                       model has a loss)\n"
    "  --mpi                data-parallel training with MPI: `mpirun -np N ./model train\n"
    "                       --batch B` trains on global batches of N*B (an executable, or a\n"
    "                       .so with M_main); needs Open MPI (libopenmpi-dev, openmpi-bin)\n"
    "  --no-winograd        compute every convolution by direct sums (default: the forward\n"
    "                       computes a 3x3 one at stride 1 with many channels and filters\n"
    "                       by Winograd's F(2x2, 3x3), its input gradient so too and its\n"
    "                       weight gradient by F(3x3, 2x2), which round a little differently)\n"
    "  --version            print the version\n"
    "  --help               print this help\n"
    "\n"
    "Exit status: 0 success, 1 an error in the input (diagnosed), 2 a usage error.\n";

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "nncc: error: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(run 'nncc --help' for usage)\n");
  return EXIT_USAGE;
}

/* Accepts "--opt=value" and "--opt value"; returns the value or NULL when not this option. */
static const char *option_value(int argc, char **argv, int *i, const char *name, int *missing) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != '\0') return NULL;
  if (*i + 1 >= argc) {
    *missing = 1;
    return NULL;
  }
  return argv[++*i];
}

int main(int argc, char **argv) {
  const char *input = NULL, *model_name = NULL;
  Mode mode = MODE_CHECK;
  BackendOptions bo = {.emit = EMIT_ARTIFACT, .opt_level = 3, .train = -1};
  int train_flag = -1, mpi = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    int missing = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(usage_text, stdout);
      return 0;
    } else if (!strcmp(a, "--version")) {
      printf("nncc %s (LLVM 19)\n", NNCC_VERSION);
      return 0;
    } else if (!strcmp(a, "--summary")) {
      mode = MODE_SUMMARY;
    } else if ((v = option_value(argc, argv, &i, "--emit", &missing))) {
      if (!strcmp(v, "ast")) mode = MODE_AST;
      else if (!strcmp(v, "ir")) mode = MODE_IR;
      else if (!strcmp(v, "dot")) mode = MODE_DOT;
      else if (!strcmp(v, "loops")) mode = MODE_BACKEND, bo.emit = EMIT_LOOPS;
      else if (!strcmp(v, "llvm")) mode = MODE_BACKEND, bo.emit = EMIT_LLVM;
      else if (!strcmp(v, "asm")) mode = MODE_BACKEND, bo.emit = EMIT_ASM;
      else if (!strcmp(v, "obj")) mode = MODE_BACKEND, bo.emit = EMIT_OBJ;
      else if (!strcmp(v, "grad")) mode = MODE_GRAD;
      else
        return usage_error("unknown stage '--emit=%s' (ast, ir, grad, dot, loops, llvm, asm, obj)", v);
    } else if ((v = option_value(argc, argv, &i, "--model", &missing))) {
      model_name = v;
    } else if ((v = option_value(argc, argv, &i, "--weights", &missing))) {
      bo.weights = v;
    } else if ((v = option_value(argc, argv, &i, "--target-cpu", &missing))) {
      bo.target_cpu = v;
    } else if (!strcmp(a, "-o")) {
      if (i + 1 >= argc) return usage_error("%s needs a path", a);
      bo.output = argv[++i];
    } else if (!strncmp(a, "-o", 2) && a[2]) {
      bo.output = a + 2;
    } else if (!strncmp(a, "-O", 2)) {
      if (strlen(a) != 3 || a[2] < '0' || a[2] > '3')
        return usage_error("unknown optimisation level '%s' (-O0 to -O3)", a);
      bo.opt_level = a[2] - '0';
    } else if (!strcmp(a, "--train")) {
      train_flag = 1;
    } else if (!strcmp(a, "--no-train")) {
      train_flag = 0;
    } else if (!strcmp(a, "--mpi")) {
      mpi = 1;
    } else if (!strcmp(a, "--no-winograd")) {
      bo.no_winograd = 1;
    } else if (missing) {
      return usage_error("%s needs a value", a);
    } else if (a[0] == '-' && a[1]) {
      return usage_error("unknown option '%s'", a);
    } else if (input) {
      return usage_error("more than one input file ('%s')", a);
    } else {
      input = a;
    }
  }
  int target_rc = target_check(bo.target_cpu);   /* a usable CPU name (target.c) */
  if (target_rc) return target_rc < 0 ? 0 : target_rc;
  if (!input) return usage_error("%s", "no input file");
  if (bo.output && mode == MODE_CHECK) mode = MODE_BACKEND;   /* -o alone builds an artifact */
  if (mode == MODE_BACKEND && bo.emit == EMIT_OBJ && !bo.output)
    return usage_error("%s", "--emit=obj writes a binary file: give -o PATH");
  if (bo.weights && mode != MODE_BACKEND)
    return usage_error("%s", "--weights is used when building an artifact: give -o PATH");
  if (mpi) {
    OutputKind k = bo.output ? outputs_kind(bo.output) : OUT_UNKNOWN;
    if (mode != MODE_BACKEND || bo.emit != EMIT_ARTIFACT || (k != OUT_EXECUTABLE && k != OUT_SHARED))
      return usage_error("%s", "--mpi builds a data-parallel trainer: an executable (-o model) "
                         "or a shared library (-o model.so)");
    if (train_flag == 0)
      return usage_error("%s", "--mpi trains the model: it cannot go with --no-train");
    int mpi_rc = link_mpi_check();   /* Open MPI's wrapper compiler and libnncc_rt_mpi.a */
    if (mpi_rc) return mpi_rc;
    bo.mpi = 1;
  }
  /* nothing is written over the input, the weights or a directory (outputs.c) */
  int out_rc = outputs_check(input, bo.weights, bo.output, mode == MODE_BACKEND && bo.emit == EMIT_ARTIFACT);
  if (out_rc) return out_rc;
  bo.source_path = input;

  SourceFile *file = source_load(input);
  if (!file) return EXIT_INPUT;
  Program *prog = NULL;
  int status = 0;
  int syntax_errors = parse_program(file, &prog);
  if (syntax_errors || diag_error_count()) {
    status = EXIT_INPUT;
  } else if (mode == MODE_AST) {
    FILE *out = outputs_text_begin(bo.output);
    ast_print(out, prog);
    status = outputs_text_end(out, bo.output);
  } else {
    Graph *g = sema_build(prog, model_name);
    if (!g) {
      status = EXIT_INPUT;
    } else {
      ir_verify(g);
      FILE *out = mode == MODE_BACKEND ? stdout : outputs_text_begin(bo.output);   /* -o FILE */
      switch (mode) {
      case MODE_IR: ir_print(out, g); break;
      case MODE_DOT: ir_print_dot(out, g); break;
      case MODE_SUMMARY: ir_print_summary(out, g); break;
      case MODE_GRAD:
        if (autodiff(g)) status = EXIT_INPUT;
        else ir_verify(g), ir_print_grad(out, g);
        break;
      case MODE_BACKEND:
        bo.train = train_flag >= 0 ? train_flag : g->loss >= 0;
        if (bo.train && train_flag < 0 && autodiff_unsupported(g)) {
          /* a default, not a request: build for inference and say why */
          fprintf(stderr, "%s: warning: no training entry points: nncc cannot differentiate "
                  "'%s' yet (--no-train silences this)\n", input, autodiff_unsupported(g));
          bo.train = 0;
        }
        if (bo.mpi && !bo.train) {
          fprintf(stderr, "nncc: error: --mpi: model '%s' has no training entry points (%s)\n",
                  g->name, g->loss < 0 ? "it has no loss" : "see the warning above");
          status = EXIT_USAGE;
          break;
        }
        if (bo.train && autodiff(g)) {
          status = EXIT_INPUT;
          break;
        }
        if (bo.train) ir_verify(g);
        status = backend_run(g, &bo);
        break;
      default: break;
      }
      if (out != stdout) status = outputs_text_end(out, bo.output);
      graph_free(g);
    }
  }
  if (prog) ast_free(prog);
  source_free(file);
  if (fflush(stdout) != 0 && !status) {
    fprintf(stderr, "nncc: error: cannot write the output\n");
    status = EXIT_INPUT;
  }
  return status;
}
