"""aimgen/diffing.py: the plain and the AiM rendering as a unified diff: a reviewer reads what
the memory adds, inside the block class, once."""
from __future__ import annotations

import torch
import torchvision

from aimgen.diffing import diff_text
from aimgen.loader import InputSpec


def test_the_diff_shows_a_blocks_change_once():
    model = torchvision.models.resnet18(num_classes=10)
    text = diff_text(model, [InputSpec((1, 3, 64, 64))], source_name="resnet18")
    added = [line for line in text.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert sum("self.conv1 = MemoryConv2d(" in line for line in added) == 2  # the stem, and once in BasicBlock
    assert sum("out = self.conv2(out, memory.channels(1, out))" in line for line in added) == 1
    assert any(line.startswith("-        out = self.conv1(x)") for line in text.splitlines())
    assert "\x1b[" not in text
    colored = diff_text(model, [InputSpec((1, 3, 64, 64))], source_name="resnet18", color=True)
    assert "\x1b[32m+" in colored
