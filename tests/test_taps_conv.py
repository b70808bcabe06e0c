"""aimgen/taps/conv.py: Conv1d/2d/3d read the memory in every group; the sum form (MemoryConvNd,
GroupedMemoryConvNd) computes exactly the literal form (a widened conv over the concatenation)."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from aimgen import runtime
from aimgen.taps import REGISTRY
from aimgen.taps.conv import GroupedMemoryConv2d, MemoryConv1d, MemoryConv2d, MemoryConv3d, center_tap_pads
from tapcheck import forms_agree


@pytest.mark.parametrize("layer,shape", [
    (nn.Conv2d(6, 4, 3, padding=1), (2, 6, 9, 9)),
    (nn.Conv2d(6, 4, 3, padding=1, groups=2), (2, 6, 9, 9)),
    (nn.Conv1d(4, 4, 3, padding=1, groups=4), (2, 4, 12)),
    (nn.Conv3d(2, 3, 3, padding=1), (2, 2, 4, 5, 6)),
    (nn.Conv2d(4, 4, 3, stride=2, padding=0, groups=4), (2, 4, 9, 9)),
], ids=["conv2d", "grouped", "depthwise1d", "conv3d", "depthwise_valid_stride2"])
def test_sum_and_literal_forms_compute_the_same(layer, shape):
    forms_agree(nn.Sequential(layer), torch.randn(*shape))


def test_a_grouped_conv_reads_through_the_center_tap_by_default_or_its_whole_kernel():
    layer = nn.Sequential(nn.Conv2d(4, 4, 5, padding=2, groups=4))
    summ, _ = forms_agree(layer, torch.randn(2, 4, 8, 8))
    assert getattr(summ, "0").memory_weight.shape == (4, 1, 1, 1)  # 25x fewer weights than the kernel
    full, _ = forms_agree(layer, torch.randn(2, 4, 8, 8), group_kernel="full")
    assert getattr(full, "0").memory_weight.shape == (4, 1, 5, 5)


@pytest.mark.parametrize("kernel,stride,padding,dilation,groups,mode,k", [
    (kn, s, p, d, g, m, k) for kn, s, p, d, g, m, k in itertools.product(
        (1, 3, 4), (1, 2), (0, 1, "same"), (1, 2), (1, 4), ("zeros", "reflect"), (1, 2))
    if not (p == "same" and s != 1)])
def test_the_runtime_layers_equal_a_widened_conv(kernel, stride, padding, dilation, groups, mode, k):
    """Every geometry: the memory's part equals the widened layer's memory slots (the center tap
    only, for the pointwise kernel), including paddings that are not 'same' and padding modes;
    one memory channel is read as its values (1x1) or its unfolded patches (k x k), then add_product
    (the patches only for a memory per sample: the per-sample rows are what reach that path)."""
    torch.manual_seed(0)
    for cls, memory_kernel in ((MemoryConv2d, None), (GroupedMemoryConv2d, "pointwise"),
                               (GroupedMemoryConv2d, "full")):
        if cls is MemoryConv2d and groups > 1:
            continue
        extra = {"memory_kernel": memory_kernel} if memory_kernel else {}
        layer = cls(8, 12, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=mode, memory_channels=k, **extra)
        wide = nn.Conv2d(8 + groups * k, 12, kernel, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, padding_mode=mode)
        memory = layer.memory_weight.detach()
        if memory_kernel == "pointwise":
            full = torch.zeros(12, k, kernel, kernel)
            full[:, :, (kernel - 1) // 2, (kernel - 1) // 2] = memory[:, :, 0, 0]
            memory = full
        with torch.no_grad():
            wide.weight.copy_(torch.cat([layer.weight, memory], 1))
            wide.bias.copy_(layer.bias)
        if cls is MemoryConv2d:
            expected = "conv" if k > 1 or mode != "zeros" else \
                "value" if kernel == 1 and padding in (0, "same") else \
                "patches" if padding != "same" else "conv"
            assert layer.memory_read == expected
        x = torch.randn(2, 8, 11, 11)
        for rows in (1, 2):  # a memory shared by the batch (convolved once), and one per sample
            m = torch.randn(rows, k, 11, 11)
            cat = runtime.cat_grouped(x, m, groups) if groups > 1 else runtime.cat_channels(x, m)
            assert (layer(x, m) - wide(cat)).abs().max() < 1e-5, (cls.__name__, memory_kernel, rows)


def test_center_tap_pads_crop_or_pad_to_the_center():
    assert center_tap_pads((3, 3), (1, 1), (1, 1)) == (0, 0, 0, 0)       # 'same': nothing to move
    assert center_tap_pads((3,), (0,), (1,)) == (-1, -1)                  # 'valid': crop one each side
    assert center_tap_pads((4,), "same", (1,)) == (0, 0)                  # even kernel, PyTorch's split


def test_the_kind_owns_its_types_and_runtime():
    kind = REGISTRY.get("conv")
    assert kind.owns(nn.Conv2d(1, 1, 1)) and not kind.owns(nn.Linear(1, 1))
    assert REGISTRY.kind_for(MemoryConv3d(1, 1, 1)) is kind  # a generated layer is still a conv
    assert {MemoryConv1d, MemoryConv2d, MemoryConv3d, GroupedMemoryConv2d} <= set(kind.runtime_objects)
    assert kind.sizes(nn.Conv2d(3, 5, 1)) == (3, 5)
