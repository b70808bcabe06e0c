"""aimgen/taps/conv_transpose.py: transposed convs widen on their input axis (dim 0 of the
weight), k rows per group; the sum form reads the memory with one ungrouped transposed conv."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from aimgen.taps import REGISTRY
from aimgen.taps.conv_transpose import MemoryConvTranspose2d
from tapcheck import forms_agree


@pytest.mark.parametrize("layer,shape", [
    (nn.ConvTranspose2d(4, 6, 2, stride=2), (2, 4, 5, 5)),
    (nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2), (2, 4, 5, 5)),
    (nn.ConvTranspose1d(4, 4, 3, stride=2, padding=1, output_padding=1), (2, 4, 7)),
], ids=["plain", "grouped", "1d_output_padding"])
def test_sum_and_literal_forms_compute_the_same(layer, shape):
    forms_agree(nn.Sequential(layer), torch.randn(*shape))


def test_the_literal_weight_puts_each_groups_memory_rows_after_its_own():
    kind = REGISTRY.get("conv_transpose")
    from aimgen.taps import TapSite, TapWidth
    site = TapSite(node="", qualname="up", layer_type="ConvTranspose2d", kind="conv_transpose", axis=1,
                   in_size=4, out_size=6, groups=2, kernel=(2, 2), spatial=(5, 5), weight="up.weight")
    weight, memory = torch.randn(4, 3, 2, 2), torch.randn(1, 6, 2, 2)
    wide = kind.to_literal(site, weight, memory, TapWidth(1))
    assert wide.shape == (6, 3, 2, 2)
    assert torch.equal(wide[0:2], weight[0:2]) and torch.equal(wide[2], memory[0, 0:3])
    assert torch.equal(wide[3:5], weight[2:4]) and torch.equal(wide[5], memory[0, 3:6])
    back = kind.to_sum(site, wide, TapWidth(1))
    assert torch.equal(back[0], weight) and torch.equal(back[1], memory)


def test_the_runtime_layer_keeps_the_base_weight_shape():
    layer = MemoryConvTranspose2d(4, 6, 2, stride=2, groups=2, memory_channels=3)
    assert layer.weight.shape == (4, 3, 2, 2) and layer.memory_weight.shape == (3, 6, 2, 2)
