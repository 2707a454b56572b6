# The reference for example_params_torch.test: tagger.nn's recurrent layers as torch modules.
import torch.nn as nn

layers = {
    "h": nn.GRU(100, 64, batch_first=True, bidirectional=True),
    "h2": nn.LSTM(128, 64, num_layers=2, batch_first=True),
}
for prefix, m in layers.items():
    for name, t in m.state_dict().items():
        print("%s.%s[%s]" % (prefix, name, ", ".join(str(d) for d in t.shape)))
