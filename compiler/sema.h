/* sema.h - semantic analysis: the AST of one model becomes a checked graph IR.
 *
 * sema_build resolves names (define before use), binds call arguments to each
 * op's schema (ops.h), inlines blocks, numbers pipe stages, names parameters
 * as PyTorch's state_dict would (docs/language.md, "Parameter names"), runs every op's shape
 * rule, checks the `:` annotations, and applies the model's `train` block.
 */
#ifndef NNCC_SEMA_H
#define NNCC_SEMA_H

#include "ast.h"
#include "ir.h"

/* Builds the graph of the model named `model_name` (NULL: the file's only model).
 * Returns NULL after diagnosing when the program has any error. */
Graph *sema_build(const Program *p, const char *model_name);

#endif
