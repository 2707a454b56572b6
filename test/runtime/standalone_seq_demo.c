/* standalone_seq_demo.c - a standalone executable for a model with a symbolic length: the
 * seqdemo model of rt_test.h (inputs ids i32[seq], w f32[seq]; output emb f32[seq, 2]).
 * Driven by standalone_seq.test. */
#include "rt_test.h"

int main(int argc, char **argv) { return nncc_rt_main(argc, argv, &seq_desc); }
