"""aimgen/taps/functional_linear.py: F.linear on a parameter reads memory features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tapcheck import forms_agree


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 8) * 0.1)
        self.b = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return F.linear(x, self.w, self.b)


def test_sum_and_literal_forms_compute_the_same():
    summ, lit = forms_agree(Head(), torch.randn(4, 6, 8))
    k = summ.w_memory.shape[1]
    assert summ.w.shape == (3, 8) and lit.w.shape == (3, 8 + k)
