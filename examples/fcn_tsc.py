"""FCN for time-series classification (Wang, Yan & Oates 2017, "Time series classification
from scratch with deep neural networks: a strong baseline"), as a Conv1d model.

As the paper describes it: three convolution blocks of 128, 256 and 128 filters with kernel
lengths 8, 5 and 3 (stride 1, the length kept), each followed by batch normalisation and a
ReLU; global average pooling over time; a linear layer to the classes (the softmax is in the
loss). About 265k parameters for a univariate series.

Input: ``(batch, channels, length)``, z-normalised series. ``build_model()`` takes no
argument (``aimgen convert examples/fcn_tsc.py --input-shape 1,1,150``); ``aimgen experiment``
passes the data's ``in_channels`` and ``num_classes`` by keyword.
"""
import warnings

import torch
from torch import nn

PUBLISHED_AS = "FCN"  # aimgen experiment prints the published FCN accuracy beside the base arm

# padding="same" with an even kernel (8) pads 3 left and 4 right, as Keras's "same" does; torch
# warns that it copies the input to do so, once per process. The copy is intended.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")


class ConvBlock(nn.Module):
    """Conv1d (same length) -> BatchNorm1d -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, padding="same")
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class FCN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, filters=(128, 256, 128), kernels=(8, 5, 3)):
        super().__init__()
        widths = (in_channels, *filters)
        self.blocks = nn.Sequential(*[ConvBlock(widths[i], widths[i + 1], kernels[i]) for i in range(len(filters))])
        self.fc = nn.Linear(filters[-1], num_classes)

    def forward(self, x):
        x = self.blocks(x)
        return self.fc(x.mean(dim=2))  # global average pooling over time


def build_model(in_channels: int = 1, num_classes: int = 2) -> FCN:
    return FCN(in_channels, num_classes)
