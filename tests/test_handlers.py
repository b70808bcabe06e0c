"""Each tap handler: widened weights keep the base values in place and zero the memory slots,
so the widened layer on [x, memory] equals the base layer on x, for every kind and grouping."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aimgen
from aimgen.handlers import REGISTRY

CASES = {
    "conv2d": (lambda: nn.Conv2d(6, 4, 3, padding=1), (2, 6, 9, 9)),
    "conv2d_groups": (lambda: nn.Conv2d(6, 4, 3, padding=1, groups=2), (2, 6, 9, 9)),
    "conv1d_depthwise": (lambda: nn.Conv1d(4, 4, 3, padding=1, groups=4), (2, 4, 12)),
    "conv3d": (lambda: nn.Conv3d(2, 3, 3, padding=1), (2, 2, 4, 5, 6)),
    "convtranspose2d_groups": (lambda: nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2), (2, 4, 5, 5)),
    "linear_sequence": (lambda: nn.Linear(8, 3), (2, 7, 8)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_widened_layer_with_zero_memory_weights_equals_the_base(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    layer = build()
    model = nn.Sequential(layer)
    x = torch.randn(*shape)
    result = aimgen.convert(model, x[:1], base_weights=model.state_dict(), updates="none", memory_size=32,
                            budget=100.0)
    (site,) = result.plan.taps
    aim = result.build().eval()
    with torch.no_grad():
        assert (aim(x) - model(x)).abs().max() < 1e-5
    handler = REGISTRY.get(site.handler)
    widened = handler.widen_weight(site, layer.weight.detach())
    assert tuple(widened.shape) == tuple(aim.get_parameter(site.weight).shape)
    # making the memory weights non-zero must make the memory matter, in every group
    with torch.no_grad():
        aim.get_parameter(site.weight).add_(0.5)
        mem = aim.memory.read()
        a = aim.forward_with_memory(x, mem)[0]
        b = aim.forward_with_memory(x, mem + 1.0)[0]
    assert (a - b).abs().max() > 1e-3


def test_functional_conv_and_linear_on_parameters_are_tapped():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.1)
            self.b = nn.Parameter(torch.zeros(4))
            self.head = nn.Parameter(torch.randn(2, 4) * 0.1)

        def forward(self, x):
            y = F.relu(F.conv2d(x, self.w, self.b, padding=1))
            return F.linear(y.mean((2, 3)), self.head)

    model = Functional()
    x = torch.randn(3, 3, 8, 8)
    result = aimgen.convert(model, x[:1], base_weights=model.state_dict(), updates="none", memory_size=64,
                            budget=100.0)
    assert sorted(t.layer_type for t in result.plan.taps) == ["F.conv2d", "F.linear"]
    aim = result.build().eval()
    assert aim.w.shape == (4, 4, 3, 3) and aim.head.shape[1] > 4
    with torch.no_grad():
        assert (aim(x) - model(x)).abs().max() < 1e-5


def test_a_computed_weight_is_skipped_with_the_reason():
    class Standardized(nn.Conv2d):
        def forward(self, x):
            w = self.weight
            w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
            return F.conv2d(x, w, self.bias, self.stride, self.padding)

    model = nn.Sequential(Standardized(3, 4, 3, padding=1))
    plan = aimgen.convert(model, torch.randn(1, 3, 8, 8)).plan
    assert plan.taps == []
    assert "computed in forward" in plan.skipped[0].reason


def test_registry_lists_every_tappable_type():
    types = REGISTRY.layer_types
    for name in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
                 "Linear", "F.conv2d", "F.linear"):
        assert name in types
