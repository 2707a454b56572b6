/* hints.c - what sema says after an error to people coming from PyTorch (hints.h).
 *
 * Two small tables: PyTorch's names for operations (nn.Linear, F.max_pool2d, ...) and for
 * keyword arguments (padding=, num_layers=, ...), each mapped to nncc's; and a ranking of the
 * operations by edit distance for "the closest operations are ...".
 */
#include "hints.h"

#include <stdio.h>
#include <string.h>

#include "ops.h"
#include "util.h"

static const char *const op_aliases[][2] = {
    {"linear", "dense"},          {"Linear", "dense"},           {"fc", "dense"},
    {"conv", "conv2d"},           {"Conv2d", "conv2d"},          {"Conv1d", "conv1d"},
    {"max_pool2d", "maxpool2d"},  {"MaxPool2d", "maxpool2d"},    {"avg_pool2d", "avgpool2d"},
    {"AvgPool2d", "avgpool2d"},   {"adaptive_avg_pool2d", "global_avgpool"},
    {"AdaptiveAvgPool2d", "global_avgpool"},                     {"Flatten", "flatten"},
    {"ReLU", "relu"},             {"LeakyReLU", "leaky_relu"},   {"Sigmoid", "sigmoid"},
    {"Tanh", "tanh"},             {"Softmax", "softmax"},        {"LogSoftmax", "log_softmax"},
    {"Dropout", "dropout"},       {"LocalResponseNorm", "lrn"},  {"local_response_norm", "lrn"},
    {"Embedding", "embedding"},   {"RNN", "rnn"},                {"LSTM", "lstm"},
    {"GRU", "gru"},               {"cat", "concat"},             {"CrossEntropyLoss", "cross_entropy"},
    {"MSELoss", "mse"},           {"mse_loss", "mse"},           {"nll_loss", "cross_entropy"},
};

const char *hint_op_alias(const char *name) {
  for (size_t i = 0; i < sizeof op_aliases / sizeof op_aliases[0]; i++)
    if (!strcmp(op_aliases[i][0], name)) return op_aliases[i][1];
  return NULL;
}

int hint_closest_ops(const char *name, const char **out, int max) {
  int n = 0, dist[8];
  if (max > 8) max = 8;
  for (int k = 0; k < OP_COUNT; k++) {
    const char *s = op_info((OpKind)k)->name;
    if (s[0] == '_') continue;
    int d = edit_distance(name, s, 64);
    int at = n < max ? n++ : max;
    if (at == max && d >= dist[max - 1]) continue;
    if (at == max) at = max - 1;
    while (at > 0 && dist[at - 1] > d) {   /* insertion, stable for ties */
      dist[at] = dist[at - 1];
      out[at] = out[at - 1];
      at--;
    }
    dist[at] = d;
    out[at] = s;
  }
  return n;
}

static const char *const kw_aliases[][2] = {
    {"padding", "pad"},          {"kernel_size", "kernel"},      {"num_layers", "layers"},
    {"out_channels", "filters"}, {"out_features", "units"},      {"hidden_size", "units"},
    {"negative_slope", "slope"}, {"nonlinearity", "activation"}, {"num_embeddings", "vocab"},
    {"embedding_dim", "dim"},    {"filters", "units"},           {"units", "filters"},
    {"strides", "stride"},       {"pool_size", "size"},          {"kernel", "size"},
    {"kernel_size", "size"},
};

const char *hint_kwarg_alias(const char *kw, const char *const *have, int nhave) {
  for (size_t i = 0; i < sizeof kw_aliases / sizeof kw_aliases[0]; i++) {
    if (strcmp(kw_aliases[i][0], kw)) continue;
    for (int k = 0; k < nhave; k++)
      if (have[k] && !strcmp(have[k], kw_aliases[i][1])) return kw_aliases[i][1];
  }
  return NULL;
}
