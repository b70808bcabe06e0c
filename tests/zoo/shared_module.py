"""Case 2: one conv called at two resolutions, one Linear called twice, one ReLU reused."""
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.proj = nn.Linear(8, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.act(self.stem(x))
        a = self.act(self.shared(x))                      # full resolution
        b = self.act(self.shared(F.max_pool2d(x, 2)))     # half resolution, same weights
        v = a.mean((2, 3)) + b.mean((2, 3))
        v = self.act(self.proj(v))
        v = self.proj(v)                                  # same Linear again
        return self.head(v)
