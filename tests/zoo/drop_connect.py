"""Stochastic depth as a function of the block's own code, told the mode (segmentation_models_pytorch's
EfficientNet encoder): train() and eval() take different paths inside it."""
import torch
from torch import nn


def drop_connect(inputs, p, training):
    """smp's EfficientNet: stochastic depth as a function told the mode (returns x in eval())."""
    if not training:
        return inputs
    keep = 1 - p
    mask = torch.floor(keep + torch.rand([inputs.shape[0], 1, 1, 1], dtype=inputs.dtype, device=inputs.device))
    return inputs / keep * mask


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        y = self.bn(self.conv(x))
        y = drop_connect(y, 0.2, training=self.training)
        return x + y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(Block(8), Block(8))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))
