"""Case 7: a dataclass output and a NamedTuple output defined in this file."""
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn


@dataclass
class Output:
    logits: torch.Tensor
    features: torch.Tensor


class Pair(NamedTuple):
    first: torch.Tensor
    second: torch.Tensor


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        f = torch.relu(self.conv(x)).mean((2, 3))
        return Output(logits=self.fc(f), features=f)


class PairNet(Net):
    def forward(self, x):
        f = torch.relu(self.conv(x)).mean((2, 3))
        return Pair(self.fc(f), f)
