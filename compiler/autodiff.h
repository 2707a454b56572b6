/* autodiff.h - reverse-mode differentiation of the graph IR.
 *
 *   graph (model, shapes checked) --autodiff--> the same graph with the gradient program
 *                                                appended (nodes [nfwd, nnodes))
 *
 * autodiff() walks the nodes the loss depends on in reverse topological order and asks each
 * op's gradient rule (OpInfo.grad, beside its shape rule and lowering in ops/<family>.c) for
 * the vector-Jacobian product, written as graph IR: ordinary nodes whose ops are the
 * internal gradient ops of ops.def (_conv_dx, _dense_dw, ...).  Contributions to a value
 * used more than once are summed with add nodes (fan-out).  Only values that lead to a
 * trained parameter get a gradient: nothing is computed for frozen parameters or for paths
 * that lead only to them or to inputs.  A parameter's gradient node is unbatched and has the
 * parameter's shape; Graph.param_grad maps each parameter to it.
 *
 * The gradient rules see an AdCtx through these helpers; they hold node ids, never Node
 * pointers, across ad_node calls (the node array may move).
 */
#ifndef NNCC_AUTODIFF_H
#define NNCC_AUTODIFF_H

#include "ir.h"

typedef struct AdCtx AdCtx;

/* Differentiates g's loss; marks frozen parameters (train.freeze) and lays out the gradient
 * buffer.  Returns 0, or -1 after diagnosing (no loss, an op without a gradient rule, a
 * freeze list naming nothing). */
int autodiff(Graph *g);

/* The first op on the loss's path without a gradient rule ("lstm"), or NULL when the whole
 * model can be differentiated. */
const char *autodiff_unsupported(const Graph *g);

/* --- for gradient rules --- */
Graph *ad_graph(AdCtx *ad);
/* Whether node id needs a gradient (some trained parameter is upstream of it). */
int ad_wants(const AdCtx *ad, int id);
/* Whether n's k-th parameter is trained. */
int ad_wants_param(const AdCtx *ad, int n, int k);
/* A new gradient node computing part of fwd's derivative; returns its id. */
int ad_node(AdCtx *ad, OpKind op, const int *in, int nin, int fwd, int wrt, Shape shape,
            int batched);
/* The same with the shape and batching of node like. */
int ad_node_like(AdCtx *ad, OpKind op, const int *in, int nin, int fwd, int wrt, int like);
/* The value of n's k-th parameter as a node. */
int ad_param(AdCtx *ad, int n, int k);
/* Adds grad to the gradient of n's i-th input (summed with other contributions). */
void ad_input_grad(AdCtx *ad, int n, int i, int grad);
/* Records grad as the gradient of n's k-th parameter. */
void ad_param_grad(AdCtx *ad, int n, int k, int grad);

/* --- ir_print.c: the gradient program (--emit=grad) --- */
void ir_print_grad(FILE *out, const Graph *g);

#endif
