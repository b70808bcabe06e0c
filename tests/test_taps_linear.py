"""aimgen/taps/linear.py: Linear layers read memory features on their last axis, broadcast over
the middle axes of (N, ..., D) inputs without a copy in the sum form."""
from __future__ import annotations

import torch
from torch import nn

import aimgen
from aimgen.taps.linear import MemoryLinear
from tapcheck import forms_agree


def test_sum_and_literal_forms_compute_the_same_on_vectors_and_sequences():
    forms_agree(nn.Sequential(nn.Linear(8, 3)), torch.randn(3, 8))
    forms_agree(nn.Sequential(nn.Linear(8, 3)), torch.randn(3, 7, 8))


def test_the_memory_is_broadcast_not_copied_over_the_middle_axes():
    layer = MemoryLinear(8, 3, memory_features=4)
    x, m = torch.randn(2, 7, 8), torch.randn(2, 1, 4)
    y = layer(x, m)
    assert y.shape == (2, 7, 3)
    want = nn.functional.linear(torch.cat([x, m.expand(2, 7, 4)], -1), torch.cat([layer.weight, layer.memory_weight], 1),
                                layer.bias)
    assert (y - want).abs().max() < 1e-6


def test_a_linear_whose_input_has_no_batch_first_is_skipped_with_the_reason():
    class SeqFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):  # (N, T, D) -> (T, N, D) for fc
            return self.out(self.fc(x.transpose(0, 1)).mean(0))

    plan = aimgen.convert(SeqFirst(), torch.randn(2, 5, 8)).plan
    assert [t.qualname for t in plan.taps] == ["out"]
    assert "batch" in {s.qualname: s.reason for s in plan.skipped}["fc"]
