# Plain rendering of tiny_cnn.py:TinyCNN, traced at input (1, 3, 32, 32).
# Written by aimgen; edit freely. Standalone: imports torch and the standard library only.
import math

import torch
import torch.nn.functional as F
from torch import nn

EXAMPLE_INPUT_SHAPES = [(1, 3, 32, 32)]
EXAMPLE_INPUT_DTYPES = ['float32']
# What aimgen planned; `aimgen validate` checks the model against it.
AIMGEN = {
    'format': 1, 'kind': 'plain', 'source': 'tiny_cnn.py:TinyCNN', 'class': 'TinyCNN',
    'input_shapes': ['1,3,32,32'], 'params': 5418, 'depends': [],
}


class TinyCNN(nn.Module):
    """Plain rendering of TinyCNN."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.drop = nn.Dropout(p=0.1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.drop(x))


def build_model() -> TinyCNN:
    return TinyCNN()


def example_inputs(batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Inputs shaped like EXAMPLE_INPUT_SHAPES at any batch size: seeded random values."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, 3, 32, 32, generator=g),)
