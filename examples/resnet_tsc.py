"""ResNet for time-series classification (Wang, Yan & Oates 2017; the configuration
evaluated by Ismail Fawaz et al. 2019, "Deep learning for time series classification: a
review"), as a Conv1d model.

Three residual blocks of 64, 128 and 128 filters. Each block: three convolutions with kernel
lengths 8, 5 and 3 (stride 1, the length kept), each with batch normalisation, a ReLU after
the first two; the shortcut is a 1x1 convolution with batch normalisation where the number of
channels changes, batch normalisation alone where it does not; the block's output is
ReLU(shortcut + main path). Then global average pooling over time and a linear layer to the
classes (the softmax is in the loss). About 505k parameters for a univariate series.

Input: ``(batch, channels, length)``, z-normalised series. ``build_model()`` takes no
argument; ``aimgen experiment`` passes the data's ``in_channels`` and ``num_classes`` by keyword.
"""
import warnings

import torch
from torch import nn

PUBLISHED_AS = "ResNet"  # aimgen experiment prints the published ResNet accuracy beside the base arm

# padding="same" with an even kernel (8) pads 3 left and 4 right, as Keras's "same" does; torch
# warns that it copies the input to do so, once per process. The copy is intended.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, kernels=(8, 5, 3)):
        super().__init__()
        widths = (in_channels, channels, channels, channels)
        self.convs = nn.ModuleList(nn.Conv1d(widths[i], widths[i + 1], k, padding="same")
                                   for i, k in enumerate(kernels))
        self.bns = nn.ModuleList(nn.BatchNorm1d(channels) for _ in kernels)
        if in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv1d(in_channels, channels, 1), nn.BatchNorm1d(channels))
        else:
            self.shortcut = nn.BatchNorm1d(channels)

    def forward(self, x):
        y = x
        last = len(self.convs) - 1
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            y = bn(conv(y))
            if i < last:
                y = torch.relu(y)
        return torch.relu(y + self.shortcut(x))


class ResNetTSC(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, filters=(64, 128, 128)):
        super().__init__()
        widths = (in_channels, *filters)
        self.blocks = nn.Sequential(*[ResidualBlock(widths[i], widths[i + 1]) for i in range(len(filters))])
        self.fc = nn.Linear(filters[-1], num_classes)

    def forward(self, x):
        x = self.blocks(x)
        return self.fc(x.mean(dim=2))  # global average pooling over time


def build_model(in_channels: int = 1, num_classes: int = 2) -> ResNetTSC:
    return ResNetTSC(in_channels, num_classes)
