"""aimgen/literals.py: constants written exactly, or refused naming where they came from."""
from __future__ import annotations

import math

import pytest
import torch

from aimgen.errors import RenderError
from aimgen.literals import index_literal, literal


@pytest.mark.parametrize("value", [None, True, 3, -2.5, 1e-06, "it's", (1,), (1, 2), [1, (2, 3)], {"a": 1},
                                   slice(1, None, 2), torch.float16, torch.device("cpu"), torch.channels_last])
def test_literals_round_trip(value):
    assert eval(literal(value), {"torch": torch}) == value


def test_special_floats_and_refusals():
    assert literal(float("inf")) == "float('inf')" and literal(-math.inf) == "-float('inf')"
    assert literal(float("nan")) == "float('nan')"
    with pytest.raises(RenderError, match="operation add: cannot write the constant"):
        literal(object(), where="operation add")


def test_index_literals_read_like_subscripts():
    assert index_literal((slice(None), 0, Ellipsis), repr) == ":, 0, ..."
    assert index_literal((slice(1, None, 2),), repr) == "1::2,"
