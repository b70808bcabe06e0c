"""The conversion report (aimgen.report): the per-layer table and the JSON."""
from __future__ import annotations

import json
import sys

import torch

import aimgen
from aimgen import report

from conftest import EXAMPLES

sys.path.insert(0, str(EXAMPLES))
from tiny_cnn import TinyCNN  # noqa: E402


def test_table_and_json_say_the_same_plan():
    result = aimgen.convert(TinyCNN(), torch.randn(1, 3, 32, 32))
    text = report.table_text(result.plan, title="aimgen: tiny")
    rows = report.rows(result.plan)
    assert [r[0] for r in rows if r[2] == "tapped"] == ["conv1", "conv2", "fc"]
    for layer, _, status, _, _ in rows:
        assert layer in text and status in text
    assert text.rstrip().splitlines()[-1] == result.plan.summary()
    data = json.loads(report.to_json(result.plan, {"source": "tiny"}))
    assert data["source"] == "tiny" and data["aim_params"] == result.plan.aim_params
