"""Case 1: torchvision's StochasticDepth (its function is torch.fx-wrapped)."""
import torch
from torch import nn
from torchvision.ops import StochasticDepth


class Block(nn.Module):
    def __init__(self, c: int, p: float):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.sd = StochasticDepth(p, "row")

    def forward(self, x):
        return x + self.sd(torch.relu(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(Block(8, 0.2), Block(8, 0.4))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(x.mean((2, 3)))
