"""aimgen/codegen/expressions.py: one node as an expression; values as markers; train/eval
constants as self.training; numbers marked so a class can make them parameters."""
from __future__ import annotations

import operator

import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F

from aimgen.codegen.expressions import CONST, MARK, Expressions
from aimgen.errors import RenderError
from aimgen.sourcecopy import SourceCopier


def graph_with(fn, *args, **kwargs):
    g = fx.Graph()
    x = g.placeholder("x")
    node = g.call_function(fn, (x, *args), kwargs)
    return node


def test_operators_subscripts_and_functions():
    ex = Expressions({}, SourceCopier())
    add = graph_with(operator.add, 2)
    assert ex.expression(add).replace(f"{CONST}0{CONST}", "2") == f"{MARK}x{MARK} + 2"
    item = graph_with(operator.getitem, (slice(None), 0))
    assert "[:, " in ex.expression(item)
    relu = graph_with(F.relu)
    assert ex.expression(relu) == f"F.relu({MARK}x{MARK})"


def test_train_eval_constants_become_self_training_or_a_conditional():
    drop = graph_with(F.dropout, 0.1, True)
    ex = Expressions({drop.name: {(0, 2): (True, False), (0, 1): (0.1, 0.0)}}, SourceCopier())
    assert ex.expression(drop) == f"F.dropout({MARK}x{MARK}, (0.1 if self.training else 0.0), self.training)"


def test_numbers_are_marked_and_fx_proxies_in_messages_are_hidden():
    ex = Expressions({}, SourceCopier())
    code = ex.expression(graph_with(torch._assert, "got Proxy(getattr_1)"))
    assert "got ..." in code and "Proxy" not in code
    ex.expression(graph_with(torch.flatten, 1))
    assert list(ex.constants.values()) == [1]


def test_each_number_knows_the_argument_it_fills():
    """What a differing constant of a block is named after (``self.stride``)."""
    ex = Expressions({}, SourceCopier())
    ex.expression(graph_with(F.conv2d, None, None, (2, 2), (1, 1), (1, 1), 4))
    assert list(ex.labels.values()) == ["stride", "stride", "padding", "padding", "dilation", "dilation", "groups"]
    ex = Expressions({}, SourceCopier())
    ex.expression(graph_with(torch.flatten, 1, end_dim=-1))
    ex.expression(graph_with(operator.mul, 3))        # no schema of its own: no name
    assert list(ex.labels.values()) == ["start_dim", "end_dim", ""]


def test_a_function_the_file_cannot_import_is_refused_by_name():
    def local(x):
        return x

    with pytest.raises(RenderError, match="defined inside a function"):
        Expressions({}, SourceCopier()).expression(graph_with(local))
