/* fuzz_frontend.c - libFuzzer entry for the front end: bytes -> parse -> sema.
 *
 * Each input is wrapped as an in-memory source file and parsed; when it parses
 * cleanly and sema exists (compiler/sema.h), the graph is built too.  Everything
 * is freed before returning, so LeakSanitizer sees a leak as a crash.
 * Diagnostics are silenced and their counters reset per input (a count left
 * over from the previous input would stop the parser early).
 *
 * Built and run by scripts/fuzz.sh; crashers go to test/fuzz/crashers/.
 * NNCC_FUZZ_PARSE_ONLY (-D) limits the run to the parser.
 */
#include <stddef.h>
#include <stdint.h>

#include "ast.h"
#include "diag.h"

#if !defined(NNCC_FUZZ_PARSE_ONLY) && __has_include("sema.h")
#include "sema.h"
#define FUZZ_SEMA 1
#else
#define FUZZ_SEMA 0
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  diag_set_quiet(1);
  diag_reset();
  SourceFile *file = source_from_memory("fuzz.nn", (const char *)data, size);
  Program *prog = NULL;
  int syntax_errors = parse_program(file, &prog);
#if FUZZ_SEMA
  if (!syntax_errors && diag_error_count() == 0) {
    Graph *g = sema_build(prog, NULL);
    if (g) graph_free(g);
  }
#else
  (void)syntax_errors;
#endif
  ast_free(prog);
  source_free(file);
  return 0;
}
