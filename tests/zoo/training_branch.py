"""Case 1: `if self.training` in a submodule, a custom dropout, and F.dropout(..., self.training)."""
import torch
import torch.nn.functional as F
from torch import nn

NOISE = 0.5


class NoisyIdentity(nn.Module):
    """Adds noise in train mode only: the branch is on self.training (kept whole, copied)."""

    def __init__(self, scale: float = NOISE):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        if self.training:
            return x + self.scale * torch.randn_like(x)
        return x


class MyDropout(nn.Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = (torch.rand_like(x) > self.p).to(x.dtype)
        return x * keep / (1 - self.p)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.noise = NoisyIdentity()
        self.drop = MyDropout(0.25)
        self.fc = nn.Linear(8, 4)
        self.p = 0.3

    def forward(self, x):
        x = self.noise(torch.relu(self.conv(x)))
        x = F.dropout(x, self.p, self.training)
        x = x.mean((2, 3))
        return self.fc(self.drop(x))
