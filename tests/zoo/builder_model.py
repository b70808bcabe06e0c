"""Case: a model put together by a builder from a layer list, as ultralytics builds its YOLO
models (ultralytics/nn/tasks.py), with the patterns that code uses:

- the root forward takes ``*args, **kwargs`` and hands them on (``self.predict(x, *args,
  **kwargs)``), and routes each layer's input by a ``from`` index the builder set on it;
- one activation module shared by every Conv as a class attribute (``Conv.default_act``);
- ``list(self.cv1(x).chunk(2, 1))`` in C2f, then ``y.extend(...)``;
- a head whose output differs in train() and eval() (logits; then (probabilities, logits)),
  which holds a Conv of its own;
- the builder tags every layer after building it (``m.i, m.f, m.type, m.np``).
"""
import torch
from torch import nn


class Conv(nn.Module):
    default_act = nn.SiLU()  # one module, shared by every Conv

    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = self.default_act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cv1 = Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)

    def forward(self, x):
        return x + self.cv2(self.cv1(x))


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class Concat(nn.Module):
    def forward(self, x):
        return torch.cat(x, 1)


class Classify(nn.Module):
    def __init__(self, c1, c2):
        super().__init__()
        self.conv = Conv(c1, 32, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(32, c2)

    def forward(self, x):
        x = self.linear(self.pool(self.conv(x)).flatten(1))
        if self.training:
            return x
        return x.softmax(1), x


LAYERS = [  # from, module, arguments (as a model's yaml lists them)
    (-1, Conv, (3, 16, 3, 2)),
    (-1, C2f, (16, 16, 1)),
    (-1, Conv, (16, 32, 3, 2)),
    (-1, C2f, (32, 32, 2)),
    ([-1, 2], Concat, ()),
    (-1, Classify, (64, 10)),
]


class BuiltModel(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for i, (f, cls, args) in enumerate(LAYERS):
            m = cls(*args)
            m.i, m.f, m.type, m.np = i, f, cls.__name__, sum(p.numel() for p in m.parameters())
            layers.append(m)
        self.model = nn.Sequential(*layers)

    def forward(self, x, *args, **kwargs):
        return self.predict(x, *args, **kwargs)

    def predict(self, x, profile=False):
        y = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x)
        return x


def built_with_settings():
    """As ultralytics' builder leaves its models: every BatchNorm's eps and momentum set after
    the modules are built (ultralytics/utils/torch_utils.py: initialize_weights)."""
    model = BuiltModel()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.03
    return model
