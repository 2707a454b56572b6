"""models.py - the example models (examples/*.nn) written by hand in PyTorch.

Each module is written the way the .nn file reads, so that its state_dict keys are the
names docs/language.md ("Parameter names") gives nncc's parameters:
  - a binding with one parametric call outside a pipe names it directly (`c1.weight`);
  - a pipe is an nn.Sequential whose stages are numbered from 0, parameter-free stages
    (relu, maxpool2d, flatten, dropout, global_avgpool) included, a plain name at the head
    excluded (`h1 = dense(pixels, 256) |> relu` -> h1.0.weight);
  - a block is a submodule named after the binding that calls it, its own bindings inside
    (`r1.f.0.weight`), its returned pipe numbered under it (`b1.0.0.weight`);
  - recurrent layers are torch.nn.RNN/LSTM/GRU with batch_first=True, so their names are
    torch's (`h.weight_ih_l0`, `..._reverse`).
Every module's forward takes the model's inputs as keyword arguments (i32 token ids arrive as
int32 tensors) and returns {output name: tensor}, in the model's declaration order.
Dropout is the identity: the modules are always used in eval mode.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class GlobalAvgPool(nn.Module):
    """global_avgpool: [N, C, H, W] -> [N, C]."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def conv3(cin, cout):
    """vgg16.nn's block conv3(x, channels): x |> conv2d(channels, kernel=3, pad=1) |> relu."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.f5 = nn.Linear(16 * 5 * 5, 120)
        self.f6 = nn.Linear(120, 84)
        self.logits = nn.Linear(84, 10)

    def forward(self, image):
        s2 = F.avg_pool2d(torch.tanh(self.c1(image)), 2)
        s4 = F.avg_pool2d(torch.tanh(self.c3(s2)), 2)
        f5 = self.f5(torch.flatten(s4, 1))
        f6 = self.f6(torch.tanh(f5))
        return {"logits": self.logits(torch.tanh(f6))}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.h1 = nn.Sequential(nn.Linear(784, 256), nn.ReLU())
        self.h2 = nn.Sequential(nn.Linear(256, 128), nn.ReLU())
        self.logits = nn.Linear(128, 10)

    def forward(self, pixels):
        return {"logits": self.logits(self.h2(self.h1(pixels)))}


class AlexNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1)
        self.fc6 = nn.Linear(256 * 6 * 6, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, 1000)

    def forward(self, image):
        lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        pool1 = F.max_pool2d(F.relu(self.conv1(image)), 3, stride=2)
        norm1 = lrn(pool1)
        pool2 = F.max_pool2d(F.relu(self.conv2(norm1)), 3, stride=2)
        norm2 = lrn(pool2)
        conv3 = self.conv3(norm2)
        conv4 = self.conv4(F.relu(conv3))
        conv5 = self.conv5(F.relu(conv4))
        pool5 = F.max_pool2d(F.relu(conv5), 3, stride=2)
        fc6 = self.fc6(torch.flatten(pool5, 1))
        fc7 = self.fc7(F.relu(fc6))
        fc8 = self.fc8(F.relu(fc7))
        return {"prob": F.softmax(fc8, dim=-1)}


class VGG16(nn.Module):
    def __init__(self):
        super().__init__()
        self.b1 = nn.Sequential(conv3(3, 64), conv3(64, 64), nn.MaxPool2d(2))
        self.b2 = nn.Sequential(conv3(64, 128), conv3(128, 128), nn.MaxPool2d(2))
        self.b3 = nn.Sequential(conv3(128, 256), conv3(256, 256), conv3(256, 256), nn.MaxPool2d(2))
        self.b4 = nn.Sequential(conv3(256, 512), conv3(512, 512), conv3(512, 512), nn.MaxPool2d(2))
        self.b5 = nn.Sequential(conv3(512, 512), conv3(512, 512), conv3(512, 512), nn.MaxPool2d(2))
        self.fc6 = nn.Sequential(nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5))
        self.fc7 = nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5))
        self.logits = nn.Linear(4096, 1000)

    def forward(self, image):
        x = self.b5(self.b4(self.b3(self.b2(self.b1(image)))))
        return {"logits": self.logits(self.fc7(self.fc6(x)))}


class Inception(nn.Module):
    """inception.nn's block inception(x, c1, c3r, c3, c5r, c5, pp)."""

    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(cin, c1, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(cin, c3r, 1), nn.ReLU(), nn.Conv2d(c3r, c3, 3, padding=1), nn.ReLU())
        self.c = nn.Sequential(nn.Conv2d(cin, c5r, 1), nn.ReLU(), nn.Conv2d(c5r, c5, 5, padding=2), nn.ReLU())
        self.d = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(cin, pp, 1), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x), self.c(x), self.d(x)], dim=1)


class Inception3a(nn.Module):
    def __init__(self):
        super().__init__()
        self.y = Inception(192, 64, 96, 128, 16, 32, 32)
        self.logits = nn.Sequential(GlobalAvgPool(), nn.Linear(256, 10))

    def forward(self, x):
        return {"logits": self.logits(self.y(x))}


class Residual(nn.Module):
    """resnet_mini.nn's block residual(x, channels): relu(x + f)."""

    def __init__(self, ch):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x):
        return F.relu(x + self.f(x))


class ResNetMini(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.r1 = Residual(16)
        self.r2 = nn.Sequential(Residual(16), nn.MaxPool2d(2))
        self.logits = nn.Sequential(GlobalAvgPool(), nn.Linear(16, 10))

    def forward(self, image):
        return {"logits": self.logits(self.r2(self.r1(self.stem(image))))}


class CharRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.h = nn.RNN(4, 3, batch_first=True)
        self.logits = nn.Linear(3, 4)

    def forward(self, chars):
        h, _ = self.h(chars)
        return {"logits": self.logits(h)}


class Sentiment(nn.Module):
    def __init__(self):
        super().__init__()
        self.e = nn.Embedding(1000, 64)
        self.h = nn.LSTM(64, 128, batch_first=True)
        self.logits = nn.Linear(128, 10)

    def forward(self, words):
        h, _ = self.h(self.e(words.long()))
        return {"logits": self.logits(h[:, -1])}


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.e = nn.Embedding(5000, 100)
        self.h = nn.GRU(100, 64, batch_first=True, bidirectional=True)
        self.h2 = nn.LSTM(128, 64, num_layers=2, batch_first=True)
        self.scores = nn.Linear(64, 17)

    def forward(self, words):
        h, _ = self.h(self.e(words.long()))
        h2, _ = self.h2(h)
        return {"scores": self.scores(h2)}


def _w(*names):
    out = []
    for n in names:
        out += [n + ".weight", n + ".bias"]
    return out


def _rnn(prefix, layers, bidir=False):
    out = []
    for l in range(layers):
        for suf in [""] + (["_reverse"] if bidir else []):
            out += ["%s.%s_l%d%s" % (prefix, k, l, suf) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return out


# The state_dict keys docs/language.md ("Parameter names") gives each example, written out by hand from the
# naming rule (not from the modules above), so that run.py --check-names can compare them.
EXPECTED_NAMES = {
    "lenet5": _w("c1", "c3", "f5", "f6", "logits"),
    "mlp": _w("h1.0", "h2.0", "logits"),
    "alexnet": _w("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"),
    "vgg16": _w("b1.0.0", "b1.1.0", "b2.0.0", "b2.1.0", "b3.0.0", "b3.1.0", "b3.2.0",
                "b4.0.0", "b4.1.0", "b4.2.0", "b5.0.0", "b5.1.0", "b5.2.0",
                "fc6.1", "fc7.0", "logits"),
    "inception": _w("y.a.0", "y.b.0", "y.b.2", "y.c.0", "y.c.2", "y.d.1", "logits.1"),
    "resnet_mini": _w("stem.0", "r1.f.0", "r1.f.2", "r2.0.f.0", "r2.0.f.2", "logits.1"),
    "char_rnn": _rnn("h", 1) + _w("logits"),
    "sentiment": ["e.weight"] + _rnn("h", 1) + _w("logits"),
    "tagger": ["e.weight"] + _rnn("h", 1, bidir=True) + _rnn("h2", 2) + _w("scores"),
}
