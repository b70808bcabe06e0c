"""benchmarks/phases.py: the stopwatches run.py wraps around aimgen's phases."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import phases  # noqa: E402

import aimgen  # noqa: E402


def test_every_phase_it_wraps_exists_and_a_conversion_fills_them():
    # a target renamed or moved in aimgen broke run.py at its start (2026-12-07: the ONNX checks
    # had moved from aimgen.validate into aimgen.onnx_checks and its worker)
    phases.instrument()
    phases.reset()
    aimgen.convert(torchvision.models.resnet18(num_classes=10), torch.randn(1, 3, 32, 32))
    spent = phases.reset()
    assert set(phases.CONVERT) <= set(spent) and all(spent[p] > 0 for p in phases.CONVERT)
    assert phases.reset() == {}
