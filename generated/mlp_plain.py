# Plain rendering of mlp.py:MLP, traced at input (1, 784).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 784)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {
    'format': 1, 'kind': 'plain', 'source': 'mlp.py:MLP', 'class': 'MLP',
    'input_shapes': ['1,784'], 'params': 235146, 'depends': [],
}


class MLP(nn.Module):
    """Plain rendering of MLP."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(256, 128)
        self.act2 = nn.ReLU()
        self.drop = nn.Dropout(p=0.2)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        x = self.act1(self.fc1(x.flatten(1)))
        x = self.drop(self.act2(self.fc2(x)))
        return self.head(x)


def build_model() -> MLP:
    return MLP()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 784, generator=g),)
