"""Cases 4 and 5: a submodule torch.fx cannot trace (control flow on a tensor value, a helper
function and a module constant), and a torch.fx-wrapped function defined in this file."""
import math

import torch
import torch.fx
from torch import nn

THRESHOLD = 0.0
SCALE = 1.5


def _clip(x, limit):
    return x.clamp(-limit, limit)


def scaled_swish(x):
    return x * torch.sigmoid(SCALE * x)


torch.fx.wrap("scaled_swish")


class Gate(nn.Module):
    def __init__(self, channels: int, limit: float = 3.0):
        super().__init__()
        self.channels = channels
        self.limit = limit
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        if x.mean() > THRESHOLD:  # control flow on a tensor value: not traceable
            x = _clip(x, self.limit)
        return x * self.scale.view(1, -1, 1, 1) * math.sqrt(2.0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gate = Gate(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = scaled_swish(self.conv(x))
        x = self.gate(x)
        return self.fc(x.mean((2, 3)))
