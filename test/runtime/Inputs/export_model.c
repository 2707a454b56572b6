/* A stand-in for a generated shared library: wrappers that call the runtime (exports.test). */
#include "nncc_rt.h"

__attribute__((visibility("default"))) void *M_create(const nncc_model_desc *d);
__attribute__((visibility("default"))) int M_main(int argc, char **argv, const nncc_model_desc *d);
void *M_create(const nncc_model_desc *d) { return nncc_rt_create(d); }
int M_main(int argc, char **argv, const nncc_model_desc *d) { return nncc_rt_main(argc, argv, d); }
