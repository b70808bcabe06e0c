"""benchmarks/tensor_memory.py: the exact tensor-memory counter the benchmarks' memory rows use."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from tensor_memory import PeakTensorMemory  # noqa: E402


def test_counts_each_storage_once_until_its_last_view_is_gone():
    weight = torch.ones(250)  # made before: its views are not the step's
    with PeakTensorMemory() as counted:
        a = torch.zeros(1000)            # 4000 bytes
        view = a.view(10, 100)           # same storage: not counted again
        a.add_(1)                        # in place: nothing new
        del a
        b = torch.ones(500)              # 2000 bytes: 6000 live (the view keeps a's storage)
        del view                         # a's storage goes: 2000 live
        c = torch.ones(750)              # 3000 bytes: 5000 live, below the peak
        weight.t()
    assert counted.peak == 6000 and counted.live == 5000
    del b, c


def test_a_training_step_counts_activations_and_gradients():
    model = torch.nn.Linear(100, 100)
    x = torch.randn(64, 100)
    with PeakTensorMemory() as counted:
        model(x).square().mean().backward()
    grads = sum(p.grad.numel() * 4 for p in model.parameters())
    assert counted.live >= grads          # the gradients outlive the step
    assert counted.peak >= grads + 64 * 100 * 4  # and the output was alive with (some of) them
