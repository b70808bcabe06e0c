"""Leaf modules are written as constructor calls read back from their attributes, and each is
verified by rebuilding it: any torch.nn leaf, not a fixed list."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from aimgen.errors import RenderError
from aimgen.modules import constructor

LEAVES = [
    nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.Conv1d(4, 8, 5, dilation=2, padding_mode="reflect", padding=4),
    nn.ConvTranspose3d(2, 4, 3, stride=2, output_padding=1), nn.BatchNorm2d(64, momentum=0.01),
    nn.BatchNorm1d(7, affine=False), nn.LayerNorm((5, 6), elementwise_affine=False), nn.GroupNorm(4, 32),
    nn.InstanceNorm2d(3, affine=True), nn.ReLU(inplace=True), nn.GELU(approximate="tanh"), nn.SiLU(),
    nn.Hardswish(), nn.LeakyReLU(0.2), nn.PReLU(8), nn.Softmax(dim=1), nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    nn.AvgPool2d(2, count_include_pad=False), nn.AdaptiveAvgPool2d((1, 1)), nn.Dropout(0.3), nn.Dropout2d(0.1),
    nn.Linear(10, 3, bias=False), nn.Bilinear(3, 4, 5), nn.Embedding(100, 16, padding_idx=0),
    nn.EmbeddingBag(10, 3, mode="max"), nn.Flatten(1, -1), nn.Unflatten(1, (2, 3)), nn.Identity(),
    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.PixelShuffle(2),
    nn.MultiheadAttention(32, 4, batch_first=True), nn.LSTM(8, 16, num_layers=2, batch_first=True),
    nn.GRU(4, 4, bidirectional=True), nn.RNN(4, 4, nonlinearity="relu"),
    nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), nn.ZeroPad2d((1, 2, 3, 4)), nn.ChannelShuffle(2),
]


@pytest.mark.parametrize("module", LEAVES, ids=lambda m: type(m).__name__)
def test_constructor_rebuilds_the_module(module):
    ctor = constructor(module, "layer")
    rebuilt = eval(ctor.source(), {"nn": nn, "torch": torch})
    assert repr(rebuilt) == repr(module)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in module.state_dict().items()}


def test_overrides_widen_an_argument_by_source():
    ctor = constructor(nn.Conv2d(64, 128, 3, padding=1, groups=2), "layer1.conv", {"in_channels": "64 + 2 * 1"})
    assert ctor.source() == "nn.Conv2d(64 + 2 * 1, 128, 3, padding=1, groups=2)"


def test_a_module_that_cannot_be_rebuilt_is_refused_by_name():
    class Local(nn.Module):  # defined in a function: not importable by name
        def forward(self, x):
            return x

    with pytest.raises(RenderError, match=r"layer blocks.0 \(Local\): its class is not importable"):
        constructor(Local(), "blocks.0")


def test_non_float32_modules_keep_their_dtype():
    ctor = constructor(nn.Linear(3, 2).double(), "fc")
    assert ctor.source() == "nn.Linear(3, 2, dtype=torch.float64)"
