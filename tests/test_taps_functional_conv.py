"""aimgen/taps/functional_conv.py: F.conv*d on a parameter, or on a weight computed in forward
(weight standardisation): the sum form adds the memory's own parameter beside the weight."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aimgen
from aimgen.errors import PlanError
from tapcheck import forms_agree


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.1)
        self.b = nn.Parameter(torch.zeros(4))
        self.dw = nn.Parameter(torch.randn(4, 1, 3, 3) * 0.1)

    def forward(self, x):
        x = F.conv2d(x, self.w, self.b, padding=1)
        return F.conv2d(x, self.dw, None, 2, 1, 1, 4)


def test_sum_and_literal_forms_compute_the_same():
    summ, lit = forms_agree(Functional(), torch.randn(2, 3, 8, 8))
    assert summ.w.shape == (4, 3, 3, 3) and summ.w_memory.shape == (4, 1, 3, 3)
    assert summ.dw_memory.shape == (4, 1, 1, 1)  # depthwise: the center tap
    assert lit.w.shape == (4, 4, 3, 3) and lit.dw.shape == (4, 2, 3, 3)


class Standardised(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))

    def forward(self, x):
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, w, None, 1, 1)


def test_a_computed_weight_is_tapped_in_the_sum_form_and_listed_in_the_literal_form():
    x = torch.randn(2, 3, 8, 8)
    model = Standardised()
    conv = aimgen.convert(model, x[:1], base_weights=model.state_dict(), updates="none", budget=100.0)
    (site,) = conv.plan.taps
    assert site.computed_weight and site.qualname == ":conv2d"
    aim = conv.build().eval()
    with torch.no_grad():
        assert (aim(x) - model(x)).abs().max() < 1e-5
        aim.memory_weight.normal_()
        assert (aim(x) - model(x)).abs().max() > 1e-3
    with pytest.raises(PlanError, match="no layer of the model can read the memory: its 1 weight layer call.* is "
                                        "computed in forward: only the sum form"):   # and nothing else reads it
        aimgen.convert(model, x[:1], form="literal")
