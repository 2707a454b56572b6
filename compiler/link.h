/* link.h - the artifact from the model's object code (link.c), and the embedded weights.
 *
 *   embed_weights      safetensors -> a raw f32 file laid out like the parameter buffer
 *   embed_weights_asm  the assembler text that .incbin's that file as M_nncc_weights
 *   link_artifact      executable, .so, .a (with the runtime) or .o, written atomically
 */
#ifndef NNCC_LINK_H
#define NNCC_LINK_H

#include <stdint.h>

#include "ir.h"
#include "outputs.h"

/* Returns 0, 1 after diagnosing a weights file that does not fit the model, or 2 when the
 * raw file cannot be written. */
int embed_weights(const Graph *g, const char *st_path, const char *raw_path);
/* malloc'd assembler source defining the hidden symbol <model>_nncc_weights (bytes long). */
char *embed_weights_asm(const char *model, const char *raw_path, uint64_t bytes);

typedef struct LinkJob {
  OutputKind kind;
  const char *output;        /* -o PATH */
  const char *object;        /* the model's object file */
  const char *weights_asm;   /* embed_weights_asm's text in a file, or NULL */
  const char *scratch;       /* a free path in a private temporary directory */
} LinkJob;

/* Returns 0, 1 (the output cannot be written: the user's error) or 2 (the toolchain failed),
 * after printing the error. */
int link_artifact(const LinkJob *job);

#endif
