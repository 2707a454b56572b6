/* hints.h - suggestions for people coming from PyTorch (hints.c), used by sema's messages.
 *
 *   hint_op_alias      nncc's operation for a PyTorch name ("linear", "Conv2d"), or NULL
 *   hint_closest_ops   up to max user-callable operations closest to name (edit distance)
 *   hint_kwarg_alias   nncc's argument, among have[], for a PyTorch keyword ("padding"), or NULL
 */
#ifndef NNCC_HINTS_H
#define NNCC_HINTS_H

const char *hint_op_alias(const char *name);
int hint_closest_ops(const char *name, const char **out, int max);
const char *hint_kwarg_alias(const char *kw, const char *const *have, int nhave);

#endif
