"""A shape check by ``assert`` inside a block (diffusers' Downsample2D writes one): traced
through, left out of the output as ``python -O`` leaves it out, so the block's conv is tapped.
(Here, not in a test file: pytest rewrites the asserts of test modules.)"""
from torch import nn


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        assert x.shape[1] == self.channels, "wrong channel count"
        return self.conv(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.down = Downsample(8)

    def forward(self, x):
        return self.down(self.stem(x))
