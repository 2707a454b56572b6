"""torch_models.py - the example networks (examples/*.nn) as PyTorch modules, for bench/run.py.

Written from the .nn sources, independently of the conformance suite (test/exec/conformance),
so that the benchmark imports nothing from test/.  Only the inference path matters here:
dropout is identity in eval mode, targets and losses are left out.  Every module takes its
inputs batch first, as the nncc executables do ([batch, C, H, W], [batch, seq, K] or
[batch, seq] token ids), and returns the model's outputs.  The parameter values are PyTorch's
default initialisation; bench/weights.py copies them into nncc, matching the parameters in
order, so every module declares its layers in its .nn file's order.

MODELS maps the example name (the file stem; bench/models/ for lstm and gru) to a constructor.
"""
import torch
import torch.nn as nn


class GlobalAvgPool(nn.Module):
    """[B, C, H, W] -> [B, C], as nncc's global_avgpool."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.f5 = nn.Linear(16 * 5 * 5, 120)
        self.f6 = nn.Linear(120, 84)
        self.out = nn.Linear(84, 10)
        self.pool = nn.AvgPool2d(2)

    def forward(self, image):
        x = self.pool(torch.tanh(self.c1(image)))
        x = self.pool(torch.tanh(self.c3(x)))
        x = self.f5(torch.flatten(x, 1))
        x = self.f6(torch.tanh(x))
        return self.out(torch.tanh(x))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                 nn.Linear(128, 10))

    def forward(self, pixels):
        return self.net(pixels)


class AlexNet(nn.Module):
    def __init__(self):
        super().__init__()
        lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, stride=2), lrn(),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, stride=2), lrn(),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2))
        self.classifier = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 1000), nn.Softmax(dim=1))

    def forward(self, image):
        return self.classifier(torch.flatten(self.features(image), 1))


class VGG16(nn.Module):
    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for c in self.CFG:
            if c == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU()]
                cin = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 1000))

    def forward(self, image):
        return self.classifier(torch.flatten(self.features(image), 1))


def conv_relu(cin, cout, k, pad=0):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad), nn.ReLU())


class Inception3a(nn.Module):
    """GoogLeNet's module 3a on [192, 28, 28], then global average pooling and dense(10)."""

    def __init__(self, cin=192, c1=64, c3r=96, c3=128, c5r=16, c5=32, pp=32):
        super().__init__()
        self.a = conv_relu(cin, c1, 1)
        self.b = nn.Sequential(conv_relu(cin, c3r, 1), conv_relu(c3r, c3, 3, 1))
        self.c = nn.Sequential(conv_relu(cin, c5r, 1), conv_relu(c5r, c5, 5, 2))
        self.d = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_relu(cin, pp, 1))
        self.gap = GlobalAvgPool()
        self.out = nn.Linear(c1 + c3 + c5 + pp, 10)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x), self.c(x), self.d(x)], dim=1)
        return self.out(self.gap(y))


class Residual(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.c2(torch.relu(self.c1(x))))


class ResNetMini(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.r1 = Residual(16)
        self.r2 = Residual(16)
        self.pool = nn.MaxPool2d(2)
        self.gap = GlobalAvgPool()
        self.out = nn.Linear(16, 10)

    def forward(self, image):
        x = self.r2(self.r1(torch.relu(self.stem(image))))
        return self.out(self.gap(self.pool(x)))


class CharRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(4, 3, batch_first=True)
        self.out = nn.Linear(3, 4)

    def forward(self, chars):
        h, _ = self.rnn(chars)
        return self.out(h)


class Sentiment(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(1000, 64)
        self.lstm = nn.LSTM(64, 128, batch_first=True)
        self.out = nn.Linear(128, 10)

    def forward(self, words):
        h, _ = self.lstm(self.emb(words))
        return self.out(h[:, -1])


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5000, 100)
        self.gru = nn.GRU(100, 64, batch_first=True, bidirectional=True)
        self.lstm = nn.LSTM(128, 64, num_layers=2, batch_first=True)
        self.out = nn.Linear(64, 17)

    def forward(self, words):
        h, _ = self.gru(self.emb(words))
        h2, _ = self.lstm(h)
        return self.out(h2)


class LSTM(nn.Module):
    """bench/models/lstm.nn: one LSTM(128 -> 256) layer, every hidden state returned; its
    parameters are named as nncc names them (h.weight_ih_l0, ...)."""

    def __init__(self):
        super().__init__()
        self.h = nn.LSTM(128, 256, batch_first=True)

    def forward(self, x):
        return self.h(x)[0]


class GRU(nn.Module):
    """bench/models/gru.nn: one GRU(128 -> 256) layer, every hidden state returned."""

    def __init__(self):
        super().__init__()
        self.h = nn.GRU(128, 256, batch_first=True)

    def forward(self, x):
        return self.h(x)[0]


class RecurrentTrain(nn.Module):
    """bench/models/lstm_train.nn and gru_train.nn: the LSTM or GRU layer of the inference rows
    (128 -> 256), then a classifier on its last hidden state."""

    def __init__(self, cell):
        super().__init__()
        self.h = cell(128, 256, batch_first=True)
        self.logits = nn.Linear(256, 10)

    def forward(self, x):
        return self.logits(self.h(x)[0][:, -1])


def LSTMTrain():
    return RecurrentTrain(nn.LSTM)


def GRUTrain():
    return RecurrentTrain(nn.GRU)


class CharLSTM(nn.Module):
    """examples/char_lstm.nn: byte embedding 32, LSTM 128, a 256-way classifier at every step;
    the logits come back as [batch * seq, 256] for F.cross_entropy."""

    def __init__(self):
        super().__init__()
        self.e = nn.Embedding(256, 32)
        self.h = nn.LSTM(32, 128, batch_first=True)
        self.logits = nn.Linear(128, 256)

    def forward(self, x):
        return self.logits(self.h(self.e(x))[0]).reshape(-1, 256)


MODELS = {
    "lenet5": LeNet5,
    "mlp": MLP,
    "alexnet": AlexNet,
    "vgg16": VGG16,
    "resnet_mini": ResNetMini,
    "inception": Inception3a,
    "char_rnn": CharRNN,
    "sentiment": Sentiment,
    "tagger": Tagger,
    "lstm": LSTM,
    "gru": GRU,
}
