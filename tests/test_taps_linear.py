"""aimgen/taps/linear.py: Linear layers read memory features on their last axis, broadcast over
the middle axes of (N, ..., D) inputs without a copy in the sum form."""
from __future__ import annotations

import torch
from torch import nn

import aimgen
from aimgen.taps.linear import MemoryLinear, computes_f_linear, is_linear_subclass
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


def test_a_linear_on_a_sequence_first_input_reads_each_samples_memory_along_its_axis():
    """(T, N, D), as torch.nn's transformer takes by default: the batch is the second axis, and
    the memory features are lined up on it (``.transpose(0, 1)``): each sample reads its own."""
    class SeqFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):  # (N, T, D) -> (T, N, D) for fc
            return self.out(self.fc(x.transpose(0, 1)).mean(0))

    torch.manual_seed(0)
    base = SeqFirst()
    conv = aimgen.convert(base, torch.randn(2, 5, 8), base_weights=base.state_dict())
    assert sorted(t.qualname for t in conv.plan.taps) == ["fc", "out"] and not conv.plan.skipped
    assert "self.fc(transpose, memory.features(1, transpose).transpose(0, 1))" in conv.source
    aim = conv.build()
    aim.load_state_dict(conv.state_dict)
    x = torch.randn(3, 5, 8)
    with torch.no_grad():
        assert (aim.eval()(x) - base.eval()(x)).abs().max() < 1e-6
        aim.fc.memory_weight.normal_()
        m = torch.randn(3, aim.fc.memory_weight.shape[1])   # one row per sample
        seq = x.transpose(0, 1)
        want = aim.fc.weight @ seq.unsqueeze(-1) + aim.fc.bias[:, None] + (aim.fc.memory_weight @ m.T).T[None, :, :, None]
        got = aim.fc(seq, m[None])
    assert (got - want.squeeze(-1)).abs().max() < 1e-5


def test_a_linear_whose_input_has_no_batch_axis_is_skipped_with_the_reason():
    class Table(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos = nn.Parameter(torch.randn(5, 8))
            self.fc = nn.Linear(8, 8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):  # fc reads a table, the same whatever the input
            return self.out(x + self.fc(self.pos)).mean(1)

    plan = aimgen.convert(Table(), torch.randn(2, 5, 8)).plan
    assert [t.qualname for t in plan.taps] == ["out"]
    assert "same whatever the model's input" in {s.qualname: s.reason for s in plan.skipped}["fc"]


def test_a_linear_subclass_is_checked_for_the_linear_function_by_its_values():
    class MatmulLinear(nn.Linear):
        def forward(self, x):
            return x @ self.weight.T + self.bias

    class Doubled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    assert not is_linear_subclass(nn.Linear(4, 3)) and not is_linear_subclass(nn.Conv1d(4, 3, 1))
    assert is_linear_subclass(MatmulLinear(4, 3)) and is_linear_subclass(Doubled(4, 3))
    x = torch.randn(2, 5, 4)
    same, doubled = MatmulLinear(4, 3), Doubled(4, 3)
    assert computes_f_linear(same, x, same(x))
    assert not computes_f_linear(doubled, x, doubled(x))
    assert not computes_f_linear(same, x, (same(x),))
